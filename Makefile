# Two entry points: `make demo` (local sandbox) and `make test` (whole suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/statelint --ignore=URI,FLOAT statemachine.json

bench: $(STAMP)
	$(BIN)/python bench/preprocess.py

demo:
	@echo "The local sandbox is not built yet (issue 4). 'make test' runs the whole pipeline against moto." >&2
	@exit 2

clean:
	rm -rf $(VENV) .pytest_cache
