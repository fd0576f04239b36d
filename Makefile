# Two commands: `make run` (app on SQLite with demo data) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test deps test-deps translations db screenshots clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-deps: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@ $(VENV)/.deps

deps: $(VENV)/.deps
test-deps: $(VENV)/.test-deps

translations: deps
	$(BIN)/python -m blueprints.core.i18n

db: translations
	DEMO_MODE=$${DEMO_MODE:-1} $(BIN)/flask db upgrade
	DEMO_MODE=$${DEMO_MODE:-1} $(BIN)/flask demo load --if-empty

# The jobs consumer (mail, reminders, settlement) runs beside the web server and stops with it.
run: db
	export DEMO_MODE=$${DEMO_MODE:-1}; $(BIN)/flask jobs run & jobs=$$!; trap 'kill $$jobs 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: test-deps
	$(BIN)/python -m blueprints.core.i18n
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmark on PostgreSQL (not part of `make test`): city-scale data, production gunicorn, wrk.
bench: translations
	@command -v wrk >/dev/null || apt-get install -y -q wrk
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
