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
# Stage settings live in cdk.json ("stages"); STAGE picks one. `python app.py` does not parse -c,
# so `make synth` hands the stage to the app through CDK_CONTEXT_JSON, the CDK CLI's own channel.
# SKIP_BUNDLING=true skips pip-installing the layer's dependencies (quick, offline synth).
CDK := npx -y aws-cdk@2
SKIP_BUNDLING ?= false
APPROVAL ?= broadening
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20

synth: venv
	rm -rf cdk.out
	CDK_OUTDIR=cdk.out CDK_CONTEXT_JSON='{"stage":"$(STAGE)","skip_bundling":$(SKIP_BUNDLING)}' $(PY) app.py
	@echo "stage $(STAGE) synthesized into cdk.out/"

deploy: venv
	$(CDK) deploy -c stage=$(STAGE) --require-approval $(APPROVAL)

destroy: venv
	$(CDK) destroy -c stage=$(STAGE)
# <<< infra

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache
