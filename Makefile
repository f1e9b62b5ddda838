# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint clean

$(BIN)/botkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/botkit
	$(BIN)/botkit run

lint: $(BIN)/botkit
	$(BIN)/ruff check botkit bots tests
	$(BIN)/ruff format --check botkit bots tests

test: $(BIN)/botkit lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
