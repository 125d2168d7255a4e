# Two entry points: `make demo` (local sandbox) and `make test` (whole suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo evaluate lint mutants mutants-listed bench bench-search bench-event-day bench-cost clean

$(STAMP): requirements.txt requirements-dev.txt requirements-sandbox.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt -r requirements-sandbox.txt
	touch $(STAMP)

# Two workers (the CI machine's cores), one test module per worker at a time: module fixtures
# (the browser, the sandbox, the engines) start once. `make test WORKERS=0` runs in one process.
WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/statelint --ignore=URI,FLOAT statemachine.json
	$(BIN)/cfn-lint infra/resources.yaml
	$(BIN)/python -m scripts.policies --check
	$(BIN)/python -m scripts.api_template

# Mutation testing, not in CI (too slow for 2 cores). `mutants`: mutmut generates mutants of the
# domain modules ([tool.mutmut] in pyproject.toml) and prints the kill rate per module.
# `mutants-listed`: issue 14's fixed list of one-line bugs in other layers, each must fail its tests.
mutants: $(STAMP)
	$(BIN)/python -m scripts.mutation

mutants-listed: $(STAMP)
	$(BIN)/python -m scripts.mutants

bench: $(STAMP)
	$(BIN)/python -m bench.preprocess

bench-search: $(STAMP)
	$(BIN)/python -m bench.search

bench-event-day: $(STAMP)
	$(BIN)/python -m bench.event_day --baseline --old

bench-cost: $(STAMP)
	$(BIN)/python -m bench.cost

demo: $(STAMP)
	$(BIN)/python -m sandbox serve

evaluate: $(STAMP)
	$(BIN)/python -m sandbox evaluate --bibs ../shared/eval-data/rbnr-set1/labels.csv --faces ../shared/eval-data/faces-dev/identities.csv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
