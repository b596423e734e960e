# The README's commands. `make demo` and `make test` each set up .venv on their own.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DATA    ?= don-quixote
export MPLBACKEND := Agg

.PHONY: setup demo test test-fast fuzz format bench clean

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

# The whole suite, one worker per core (pytest-xdist), each test module on one worker so that
# its fixtures are built once.
PARALLEL := -n auto --dist loadscope

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs
	$(BIN)/python -m pytest $(PARALLEL)

# Every concept's tests but the end-to-end ones (marked slow: whole commands, many processes,
# the notebook, the demo, the browser): what to run while changing code, a few minutes.
test-fast: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/python -m pytest $(PARALLEL) -m "not slow"

# Random exploration: hypothesis draws new examples each time, ten times as many as CI's
# fixed ones. A failure prints the example (and a @reproduce_failure blob) to pin in the test.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest $(PARALLEL) tests/test_fuzz.py \
		tests/test_tokenizers.py tests/test_cleaning.py tests/test_prepare.py tests/test_spelling.py \
		tests/test_export.py

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks docs
	$(BIN)/ruff check --fix src tests benchmarks docs

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/generate.py

clean:
	rm -rf $(VENV) runs data
