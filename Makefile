# Two entry points for a fresh machine (Python >= 3.10 with venv and pip):
#   make demo   set everything up, run the main job on the embedded default benchmarks, write the leaderboard
#   make test   set everything up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=70.1"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/vdpm-harness run --model random --bench dsr-synth,motion-basics --out results
	cat results/leaderboard.md

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results
