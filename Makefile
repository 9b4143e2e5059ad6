# MassMailer — the front door. `make demo` and `make test` work on a fresh clone: each creates
# .venv and installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv demo test test-fast lint synth deploy destroy clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m local.demo

test: venv
	$(PY) -m pytest -n 2 -q

test-fast: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# >>> infra
synth: venv
	$(PY) app.py -c stage=$(STAGE)

deploy: venv
	npx -y aws-cdk@2 deploy --app "$(PY) app.py" -c stage=$(STAGE) --require-approval never

destroy: venv
	npx -y aws-cdk@2 destroy --app "$(PY) app.py" -c stage=$(STAGE) --force
# <<< infra

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache
