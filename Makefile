# Belfry: `make run` starts the platform, `make test` checks everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv lint typecheck test bench run token demo emulator clean

help:
	@echo "make run    - the whole platform in one process on 127.0.0.1:$${BELFRY_PORT:-8080}"
	@echo "make test   - install what is needed, then ruff, mypy and the whole test suite"
	@echo "make bench  - benchmarks, one JSON line per figure"
	@echo "make token SUB=alice GROUPS=admin - a bearer token that a local run accepts"
	@echo "make demo   - play both products' stories against a running platform"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared services emulators tests bench

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

run: $(STAMP)
	$(BIN)/python -m services.platform

token: $(STAMP)
	@$(BIN)/python -m shared.auth token --sub "$(SUB)" --groups "$(GROUPS)"

demo: $(STAMP)
	$(BIN)/python -m services.platform.demo

emulator: $(STAMP)
	$(BIN)/python -m emulators.chime --host 127.0.0.1 --port 9911

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
