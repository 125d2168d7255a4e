# Two entry points: `make demo` (local sandbox) and `make test` (whole suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo evaluate lint bench bench-search clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/statelint --ignore=URI,FLOAT statemachine.json

bench: $(STAMP)
	$(BIN)/python bench/preprocess.py

bench-search: $(STAMP)
	$(BIN)/python bench/search.py

demo: $(STAMP)
	$(BIN)/python -m sandbox serve

evaluate: $(STAMP)
	$(BIN)/python -m sandbox evaluate --bibs ../shared/eval-data/rbnr-set1/labels.csv --faces ../shared/eval-data/faces-dev/identities.csv

clean:
	rm -rf $(VENV) .pytest_cache
