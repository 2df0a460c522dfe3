# Two entry points for a fresh machine: `make demo` and `make test`. Each builds .venv if needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pytest-xdist: one worker per core (at most 4), a test file's tests on one worker so that its
# module fixtures (a trained model) are built once, in the order tests/conftest.py gives (longest files
# first; xdist's own reorder, by test count, is off); PARALLEL= runs in this process.
PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

.PHONY: demo demo-quick test test-quality test-fast lint format bench bench-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/alltokens demo

demo-quick: $(VENV)/.installed
	$(BIN)/alltokens demo --quick

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q --durations=15 $(PARALLEL) -m "not quality"

# the quality floors of recipes too long for `make test` (~20 min on 2 cores): a seed per core
test-quality: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -rP --durations=5 -m quality -n 2 --dist loadgroup

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q $(PARALLEL) -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# bench-only: open_clip for bench/clip_train.py. --no-deps, because its torchvision does not load beside
# this CPU torch and pip would swap torch for a CUDA build; the benchmark stands in for torchvision.
bench-deps: $(VENV)/.installed-test
	$(BIN)/pip install --quiet --no-deps open-clip-torch ftfy regex wcwidth

clean:
	rm -rf $(VENV) build *.egg-info
