# The README's commands. `make demo` and `make test` work on a fresh machine with Python 3.11 and Java 17.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared/data
INPUT ?= $(SHARED)/cc-warc/*/*.warc.gz $(SHARED)/web-warc/*/*.warc.gz
OUT ?= runs/demo
CONFIG ?= pipelines/demo.yaml
ARGS ?=
export JAVA_HOME ?= $(shell [ -d /usr/lib/jvm/java-17-openjdk-amd64 ] && echo /usr/lib/jvm/java-17-openjdk-amd64)
export PYSPARK_PYTHON := $(abspath $(BIN)/python)

.PHONY: setup demo test test-fast lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/curate run $(foreach pattern,$(INPUT),--input '$(pattern)') --out $(OUT) --config $(CONFIG) $(ARGS)

lint: setup
	$(BIN)/ruff check curate tests benchmarks
	$(BIN)/ruff format --check curate tests benchmarks
	$(BIN)/mypy curate

format: setup
	$(BIN)/ruff format curate tests benchmarks
	$(BIN)/ruff check --fix curate tests benchmarks

test: lint
	$(BIN)/python -m pytest -q -ra --durations=15

# Unit tests only: no JVM.
test-fast: setup
	$(BIN)/python -m pytest -q tests/unit

bench: setup
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache
