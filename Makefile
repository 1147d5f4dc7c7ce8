# Each target bootstraps .venv on a fresh machine (Python 3.11 + pip is all it needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgepool-installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgepool demo

test: $(STAMP)
	$(BIN)/ruff check edgepool tests benchmarks
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/quantization.py
	$(BIN)/python benchmarks/inspect_model.py
	$(BIN)/python benchmarks/harness.py
	$(BIN)/python benchmarks/coreml.py

lint: $(STAMP)
	$(BIN)/ruff check edgepool tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
