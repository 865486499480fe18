# Belfry: `make run` starts the platform, `make test` checks everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Exact pins of every dependency, written by `make lock` from pyproject.toml: the
# production image installs PROD_LOCK, the image's `local` target LOCAL_LOCK, the
# venv (make test, CI) DEV_LOCK. Each is a subset of the next, at the same versions.
PROD_LOCK  := requirements/prod.lock
LOCAL_LOCK := requirements/local.lock
DEV_LOCK   := requirements/dev.lock
# uv writes the locks for Python 3.11 (requires-python) on every platform, keeping
# the pins already there unless pyproject.toml rules them out.
# uv itself at the dev lock's pin (it is in the dev extra), without installing the rest.
UV_PIN  := $(or $(shell grep -m1 -o '^uv==[^ ;]*' $(DEV_LOCK) 2>/dev/null),uv)
COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
           --custom-compile-command "make lock" --quiet
# The official AsyncAPI JSON Schemas (npm @asyncapi/specs), which tests/unit/test_asyncapi.py
# validates docs/asyncapi.yaml against; fetched into the venv, never copied into the repo.
ASYNCAPI_SPECS := 6.11.1
SPECS  := $(VENV)/asyncapi-specs
SPECS_STAMP := $(SPECS)/.version-$(ASYNCAPI_SPECS)

.PHONY: help venv lock lint typecheck browser test bench run token aws demo emulator clean

help:
	@echo "make run    - the whole platform in one process on 127.0.0.1:$${BELFRY_PORT:-8080}"
	@echo "make test   - install what is needed, then ruff, mypy and the whole test suite"
	@echo "make bench  - benchmarks, one JSON line per figure"
	@echo "make lock   - re-pin requirements/*.lock after a change of pyproject.toml"
	@echo "make token SUB=alice GROUPS=admin - a bearer token that a local run accepts"
	@echo "make demo   - play both products' stories against a running platform"
	@echo "make aws ARGS=\"dynamodb list-tables\" - the AWS CLI against a running platform's stand-ins"

# The venv: exactly the dev lock, then Belfry itself (editable, no dependencies of
# its own: the lock has them all). Re-installed when the lock or pyproject.toml changes.
$(STAMP): $(DEV_LOCK) pyproject.toml $(SPECS_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --requirement $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check || { echo 'pip check failed: a dependency of pyproject.toml not locked yet? run make lock' >&2; exit 1; }
	touch $(STAMP)

$(SPECS_STAMP):
	rm -rf $(SPECS) && mkdir -p $(SPECS)
	cd $(SPECS) && npm pack --silent @asyncapi/specs@$(ASYNCAPI_SPECS) >/dev/null
	tar -xzf $(SPECS)/asyncapi-specs-$(ASYNCAPI_SPECS).tgz -C $(SPECS) --strip-components=1
	rm -f $(SPECS)/asyncapi-specs-$(ASYNCAPI_SPECS).tgz
	test -f $(SPECS)/schemas/3.0.0.json
	touch $@

venv: $(STAMP)

# After adding, removing or changing a dependency in pyproject.toml. The dev lock first
# (runtime + local + dev extras), then the local and production locks constrained to
# its versions; pins that pyproject.toml still admits are kept (`make lock UPGRADE=1`
# re-resolves everything to the newest versions allowed).
lock: $(BIN)/uv
	$(COMPILE) $(if $(UPGRADE),--upgrade) --extra local --extra dev -o $(DEV_LOCK)
	$(COMPILE) --extra local --constraint $(DEV_LOCK) -o $(LOCAL_LOCK)
	$(COMPILE) --constraint $(DEV_LOCK) -o $(PROD_LOCK)

# Not the whole venv: with a dependency added to pyproject.toml and not locked yet,
# the venv's `pip check` fails until `make lock` has run.
$(BIN)/uv: $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet '$(UV_PIN)'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared services emulators tests bench

# The browser tests (tests/console) drive Debian's Chromium through Playwright; on a
# machine without it, `make test` installs the package (as root, or with sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	test -x $(CHROMIUM)

browser: $(CHROMIUM)

test: lint typecheck $(CHROMIUM)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

run: $(STAMP)
	$(BIN)/python -m services.platform

# An access token of the running `make run`'s Cognito user pool (docs/sign-in.md);
# LOCAL=1: a local HS256 token, for a platform in BELFRY_AUTH_MODE=local.
token: $(STAMP)
	@$(BIN)/python -m services.platform.tokens --sub "$(SUB)" --groups "$(GROUPS)" $(if $(LOCAL),--local)

# The AWS CLI against the running `make run`'s stand-ins (moto; chime-sdk-* at the Chime
# emulator), found from the same BELFRY_* settings as `make token`: ARGS="dynamodb list-tables".
aws: $(STAMP)
	@$(BIN)/python -m services.platform.aws_cli $(ARGS)

demo: $(STAMP)
	$(BIN)/python -m services.platform.demo

emulator: $(STAMP)
	$(BIN)/python -m emulators.chime --host 127.0.0.1 --port 9911

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
