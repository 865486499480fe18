# Belfry: `make run` starts the platform, `make test` checks everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The official AsyncAPI JSON Schemas (npm @asyncapi/specs), which tests/unit/test_asyncapi.py
# validates docs/asyncapi.yaml against; fetched into the venv, never copied into the repo.
ASYNCAPI_SPECS := 6.11.1
SPECS  := $(VENV)/asyncapi-specs
SPECS_STAMP := $(SPECS)/.version-$(ASYNCAPI_SPECS)

.PHONY: help venv lint typecheck browser test bench run token demo emulator clean

help:
	@echo "make run    - the whole platform in one process on 127.0.0.1:$${BELFRY_PORT:-8080}"
	@echo "make test   - install what is needed, then ruff, mypy and the whole test suite"
	@echo "make bench  - benchmarks, one JSON line per figure"
	@echo "make token SUB=alice GROUPS=admin - a bearer token that a local run accepts"
	@echo "make demo   - play both products' stories against a running platform"

$(STAMP): pyproject.toml $(SPECS_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(SPECS_STAMP):
	rm -rf $(SPECS) && mkdir -p $(SPECS)
	cd $(SPECS) && npm pack --silent @asyncapi/specs@$(ASYNCAPI_SPECS) >/dev/null
	tar -xzf $(SPECS)/asyncapi-specs-$(ASYNCAPI_SPECS).tgz -C $(SPECS) --strip-components=1
	rm -f $(SPECS)/asyncapi-specs-$(ASYNCAPI_SPECS).tgz
	test -f $(SPECS)/schemas/3.0.0.json
	touch $@

venv: $(STAMP)

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

demo: $(STAMP)
	$(BIN)/python -m services.platform.demo

emulator: $(STAMP)
	$(BIN)/python -m emulators.chime --host 127.0.0.1 --port 9911

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
