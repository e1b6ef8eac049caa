# The README's commands. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: install node run test test-sqlite test-postgres lint format translations bench clean

# Python packages, and the npm packages where npm is installed (`make run` needs only Python:
# without npm the API runs, and /api/v1/docs says how to install Swagger UI)
install: $(VENV)/.installed
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory -s node; \
	else echo "npm not found: the API docs page needs Swagger UI (install Node.js, then make node)"; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node: node_modules/.installed

# newman (the live checks) and swagger-ui-dist (the API docs page), pinned in package-lock.json.
# No install scripts: none of them needs one (swagger-ui-dist's would only send analytics).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# `make run PORT=8080` (HOST=0.0.0.0 to listen on every interface)
run: install
	HOST=$(HOST) PORT=$(PORT) bash scripts/run.sh

test: install node
	bash scripts/test.sh

test-sqlite: install node
	LOYALTY_TEST_DB=sqlite $(BIN)/pytest -m "not e2e"

test-postgres: install node
	LOYALTY_TEST_DB=postgres $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy loyalty
	$(BIN)/python scripts/long_functions.py

# The pages' strings: extract them, add the new ones to each language's .po (translate those:
# msgstr), compile the .mo files the app reads (committed, so a fresh clone needs no step;
# tests/web/test_translations.py fails when one is missing, untranslated or not compiled)
TRANSLATIONS := loyalty/web/translations
translations: install
	$(BIN)/pybabel -q extract -F loyalty/web/babel.cfg -o $(TRANSLATIONS)/messages.pot \
	  --no-location --sort-output --omit-header -k lazy_gettext -k _l loyalty/web
	$(BIN)/pybabel -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) \
	  --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date
	$(BIN)/pybabel -q compile -d $(TRANSLATIONS) --statistics

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .mypy_cache .hypothesis
