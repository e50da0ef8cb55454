# lifelab: two commands on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint lab bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dev,cluster]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/lifelab run --ticks 100000

test: $(STAMP)
	$(BIN)/ruff check lifelab tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check lifelab tests
	$(BIN)/ruff format --check lifelab tests

bench: $(STAMP)
	$(BIN)/lifelab bench loop --ticks 200000
	$(BIN)/lifelab bench loop --ticks 20000 --events-per-tick 64 --batch-size 64

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
