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

.PHONY: setup browser demo test test-fast lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Bytecode for curate's own modules, as a non-editable install has: where PYTHONDONTWRITEBYTECODE is set (this CI
# machine, many container images) an editable install gets none, and every command and every extraction guard child
# compiled them again (0.1 s of CPU for all of them). Up-to-date files are skipped.
setup: $(VENV)/.installed browser
	@$(BIN)/python -m curate.runners.class_archive
	@$(BIN)/python -m compileall -q curate

# The report test renders the HTML report in headless Chromium (Debian package `chromium`). Installed quietly when
# this user may run apt-get; otherwise one line says what to run, and that test skips saying the same.
BROWSER_HINT := note: the report rendering test needs headless Chromium and skips without it; to run it: sudo apt-get install -y chromium
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then apt=apt-get; elif sudo -n true >/dev/null 2>&1; then apt="sudo -n apt-get"; else apt=; fi; \
	if [ -n "$$apt" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing headless Chromium for the report test (apt-get install chromium)"; \
	  DEBIAN_FRONTEND=noninteractive $$apt install -y -q chromium >/dev/null 2>&1 \
	    || { DEBIAN_FRONTEND=noninteractive $$apt update -q >/dev/null 2>&1 \
	         && DEBIAN_FRONTEND=noninteractive $$apt install -y -q chromium >/dev/null 2>&1; } \
	    || echo "$(BROWSER_HINT) (apt-get failed here)"; \
	else echo "$(BROWSER_HINT)"; fi

# Also wraps the shared real math pages into a WARC under the run dir, runs two iterations with the committed
# annotations/demo labels, then prints the loop's story (pipelines/demo.py).
demo: setup
	$(BIN)/python pipelines/demo.py $(foreach pattern,$(INPUT),--input '$(pattern)') --out $(OUT) --config $(CONFIG) \
		--shared $(SHARED) -- $(ARGS)

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

# Peers that cannot share the product's environment (openwebmath-text-extract pins resiliparse 1.1.0) live in
# their own venv; the benchmarks run with $(BIN)/python and call them through $(PEERS_VENV)/bin/python.
PEERS_VENV ?= .venv-peers
$(PEERS_VENV)/.installed: benchmarks/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r benchmarks/peers/requirements.txt
	touch $@

bench: setup $(PEERS_VENV)/.installed
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache
