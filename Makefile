# The README's commands. `make demo` and `make test` each set up .venv on their own.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= don-quixote
export MPLBACKEND := Agg

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

# torch==2.13.0 first: its CPU wheel is what we want, and an unpinned torch would pull CUDA.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job: prepare the book, train a short demo, print a sample.
demo: $(STAMP)
	$(BIN)/python -m wordgpt.demo --dataset $(DATA)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs
	$(BIN)/python -m pytest

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks docs
	$(BIN)/ruff check --fix src tests benchmarks docs

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/generate.py

clean:
	rm -rf $(VENV) runs data
