# One entry point for every check; CI (.ci/run) calls these same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run scenarios test test-nojit lint format typecheck check bench schema proto clean clean-kernels

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

## run: the service on 0.0.0.0:50051 with the retail example and an embedded Redis (.journeyman/)
run: $(STAMP)
	$(BIN)/journeyman serve

## scenarios: check the example journeys and run their marketer scenario tests
scenarios: $(STAMP)
	$(BIN)/journeyman rules check rules/
	$(BIN)/journeyman rules test rules/

## test: the whole suite, then the kernel tests again with the JIT off for coverage
test: $(STAMP)
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-nojit

# With the JIT off, the holdout hash's intended uint64 wrap-around is numpy scalar arithmetic,
# which warns on overflow; compiled, it wraps silently as it should.
test-nojit: $(STAMP)
	NUMBA_DISABLE_JIT=1 $(BIN)/pytest -q tests/property tests/unit/engine \
		-W "ignore:overflow encountered in scalar:RuntimeWarning" \
		--cov=engine --cov-report=term-missing:skip-covered --cov-fail-under=90

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy engine server

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

schema: $(STAMP)
	$(BIN)/python -m server.schemas rules

## proto: regenerate journeyman/ (Python gRPC code) from proto/; commit the result
proto: $(STAMP)
	$(BIN)/python scripts/protogen.py

# numba's cache only notices changes to a kernel's own file, not to the kernels it calls.
clean-kernels:
	find engine -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-kernels
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
