# Two commands on a fresh machine: `make run` and `make test` (`make bench` for figures).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/botkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/botkit
	$(BIN)/botkit run

lint: $(BIN)/botkit
	$(BIN)/ruff check botkit bots tests bench docs
	$(BIN)/ruff format --check botkit bots tests bench docs

# A worker per core, at most 4: each starts its own PostgreSQL cluster and browser.
test: $(BIN)/botkit lint
	$(BIN)/pytest -q -n auto --maxprocesses 4

# Not part of `test`: minutes of work, and figures to read rather than pass or fail.
bench: $(BIN)/botkit
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache bench/.cache
