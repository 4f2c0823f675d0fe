# One entry point for every check; CI (.ci/run) calls these same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every package `make` installs, pinned with its hashes: the runtime, the dev and bench extras,
# and pip and setuptools (journeyman itself is built without build isolation, by the pinned
# setuptools). The image installs the runtime part, requirements-runtime.lock (same versions).
LOCK := requirements.lock
RUNTIME_LOCK := requirements-runtime.lock
# `make lock` resolves for the machines the project runs on: CPython 3.11 on x86_64 Linux.
UV_VERSION := 0.13.9
LOCK_VENV := .venv-lock
UV_COMPILE := $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --no-strip-markers \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock'
LATEST_VENV := .venv-latest

.PHONY: install lock test-latest run scenarios test test-fast test-nojit lint format typecheck check bench \
	schema proto clean clean-kernels

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## lock: re-pin requirements.lock and requirements-runtime.lock after pyproject.toml changed,
## keeping every pin that still fits; UPGRADE=--upgrade (or "--upgrade-package redis") moves pins.
## Then run `make test` (the stamp depends on the lock) and commit the locks with the result.
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	echo '*' > $(LOCK_VENV)/.gitignore
	$(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	printf 'pip\nsetuptools>=69\n' | $(UV_COMPILE) $(UPGRADE) pyproject.toml - \
		--extra dev --extra bench -o $(LOCK)
	printf 'setuptools>=69\n' | $(UV_COMPILE) pyproject.toml - -c $(LOCK) -o $(RUNTIME_LOCK)

## test-latest: the suite on the newest versions pyproject.toml allows instead of the lock, in a
## venv of its own: early warning that a new release breaks journeyman. Prints what differs.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	echo '*' > $(LATEST_VENV)/.gitignore
	$(LATEST_VENV)/bin/pip install --quiet --upgrade pip 'setuptools>=69'
	$(LATEST_VENV)/bin/pip install --quiet --upgrade --upgrade-strategy eager \
		--no-build-isolation -e '.[dev,bench]'
	@$(LATEST_VENV)/bin/python -c "$$VERSIONS_NOT_LOCKED" $(LOCK)
	$(LATEST_VENV)/bin/pytest

# Prints each installed version that differs from the lock's (argv[1]).
define VERSIONS_NOT_LOCKED
import re, sys
from importlib.metadata import distributions
def key(name): return re.sub(r"[-_.]+", "-", name).lower()
lock = open(sys.argv[1], encoding="utf-8").read()
locked = {key(name): version for name, version in re.findall(r"^([\w.-]+)==([^\s;]+)", lock, re.M)}
print(f"versions that differ from {sys.argv[1]}:")
for dist in sorted(distributions(), key=lambda dist: key(dist.name)):
    name, version = key(dist.name), dist.version
    if name != "journeyman" and locked.get(name) != version:
        print(f"  {name}: {locked.get(name, 'not locked')} -> {version}")
endef
export VERSIONS_NOT_LOCKED

## run: the service on 0.0.0.0:50051 with the retail example and an embedded Redis (.journeyman/)
run: $(STAMP)
	$(BIN)/journeyman serve

## scenarios: check the example journeys and run their marketer scenario tests
scenarios: $(STAMP)
	$(BIN)/journeyman rules check --strict rules/
	$(BIN)/journeyman rules test rules/

## test-fast: the quick loop while editing: no Redis, no server, no whole logs, no fuzzing
test-fast: $(STAMP)
	$(BIN)/pytest -m "not service and not slow"

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
	$(BIN)/mypy engine server benchmarks

check: lint typecheck test

# The timers' benchmark (issue 15) runs after run_all's session, whose 10-minute budget the others
# fill, and adds its run to the same results.json and RESULTS.md (section 12); then the cost of
# time conditions and the contact policy (issue 17, in-process, a few seconds: section 13).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all
	$(BIN)/python -m benchmarks.timers_cost --into-results
	$(BIN)/python -m benchmarks.engine.conditions_cost --into-results

schema: $(STAMP)
	$(BIN)/python scripts/schemas.py rules

## proto: regenerate journeyman/ (Python gRPC code) from proto/; commit the result
proto: $(STAMP)
	$(BIN)/python scripts/protogen.py

# numba's cache only notices changes to a kernel's own file, not to the kernels it calls.
clean-kernels:
	find engine -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-kernels
	rm -rf $(VENV) $(LOCK_VENV) $(LATEST_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
