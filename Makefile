# The README's commands. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install node run test test-sqlite test-postgres lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(FLASK) db upgrade
	$(FLASK) loyalty seed-demo
	HOST=$(HOST) PORT=$(PORT) bash scripts/run.sh

test: install node
	bash scripts/test.sh

test-sqlite: install
	LOYALTY_TEST_DB=sqlite $(BIN)/pytest -m "not e2e"

test-postgres: install node
	LOYALTY_TEST_DB=postgres $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy loyalty
	$(BIN)/python scripts/long_functions.py

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .mypy_cache .hypothesis
