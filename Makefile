# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-unit lint broker-stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/triage demo

test: setup
	$(VENV)/bin/python -m pytest

test-unit: setup
	$(VENV)/bin/python -m pytest tests/unit

broker-stop: setup
	$(VENV)/bin/triage broker stop

clean:
	rm -rf $(VENV) .triage build *.egg-info .pytest_cache .hypothesis
