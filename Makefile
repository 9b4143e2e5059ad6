# MassMailer — the front door. `make demo` and `make test` work on a fresh clone: each creates
# .venv and installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv lock demo test test-py313 test-fast lint synth deploy destroy clean

# Dependencies: uv.lock pins every package with its hashes (README, "Dependencies"). uv itself is the
# one thing installed with pip, at the version and hashes of requirements-uv.txt, into a virtualenv
# of its own, .tools/uv (so the machine needs python3 with venv, nothing more);
# it then installs .venv (extra "dev") and .venv313 (extra "test") from the lock and nothing else.
# --locked refuses a lock that no longer matches pyproject.toml: run `make lock` after editing it.
UV_DIR := .tools/uv
UV := $(UV_DIR)/bin/uv
export UV_PYTHON_DOWNLOADS := never

$(UV): requirements-uv.txt
	rm -rf $(UV_DIR)
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/python -m pip install -q --disable-pip-version-check \
	  --require-hashes --no-deps --only-binary=:all: -r requirements-uv.txt
	touch $@

# `make lock` re-resolves after a pyproject.toml change, keeping every other pin; LOCK_ARGS moves
# pins, e.g. `make lock LOCK_ARGS="--upgrade-package boto3"` (or --upgrade: everything).
LOCK_ARGS ?=
lock: $(UV)
	$(UV) lock $(LOCK_ARGS)

$(VENV)/.installed: uv.lock pyproject.toml $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync -q --locked --extra dev --python $(PYTHON)
	touch $@

venv: $(VENV)/.installed

# >>> local
# The local runtime (README, "Local runtime"): moto in server mode, the SMTP relay, the SES endpoint
# (mailbox simulator + fault switches), the functions' execution environments, the scheduler loop.
# `make up` runs it in the foreground (PORT=8080; Ctrl-C stops all of it); `make demo` starts it,
# runs a 1,000-recipient campaign through an SES outage, prints a summary and stops it.
PORT ?= 8080
.PHONY: up
up: venv
	$(PY) -m local up --port $(PORT)

demo: venv
	$(PY) -m local demo
# <<< local

# The Lambda runtime is Python 3.13: when this machine has a 3.13 interpreter, the unit tier runs
# under it too (in .venv313), after the full suite under $(PYTHON).
PY313 ?= $(shell PYENV_VERSION=3.13.0 python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || command -v python3.13 2>/dev/null)
VENV313 := .venv313

test: venv
	$(PY) -m pytest -n 2 -q
	@$(MAKE) --no-print-directory test-py313

$(VENV313)/.installed: uv.lock pyproject.toml $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV313) $(UV) sync -q --locked --extra test --python $(PY313)
	touch $@

test-py313:
	@if [ -z "$(PY313)" ]; then echo "test-py313: no Python 3.13 interpreter on this machine; ran under $$($(PY) -V) only"; \
	else $(MAKE) --no-print-directory $(VENV313)/.installed && $(VENV313)/bin/python -m pytest -n 2 -q tests/unit; fi

test-fast: venv
	$(PY) -m pytest -q tests/unit

# mypy on the shared package and the four handlers: pyproject.toml's [tool.mypy] names the files and
# reads modules from their path (the four handler.py are lambdas.<name>.handler; massmailer from layers/).
MYPY := $(PY) -m mypy

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(MYPY)

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

# >>> bench
# `make bench`: every benchmark on this machine, one table, bench/results.json (README, "Performance").
# Postfix's smtp-sink/smtp-source are the SMTP reference; when absent they are installed with apt-get
# (root on Debian/Ubuntu) and the postfix daemon is never started nor enabled. Without them the sink
# is aiosmtpd and the smtp-source rows read "unavailable". BENCH_ARGS passes options (e.g. --quick).
BENCH_ARGS ?=
.PHONY: bench bench-tools

bench-tools:
	@if command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "bench: Postfix's smtp-sink is absent and apt-get needs root: aiosmtpd will be the sink, no smtp-source reference"; \
	  exit 0; \
	fi; \
	echo "bench: installing Postfix's smtp-sink/smtp-source (Debian package postfix; its daemon stays off)"; \
	guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
	  chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null; \
	if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null 2>&1; then \
	  echo "bench: postfix installed (smtp-sink, smtp-source)"; \
	else echo "bench: apt-get could not install postfix: aiosmtpd will be the sink, no smtp-source reference"; fi; \
	(systemctl disable --now postfix; update-rc.d postfix disable; postfix stop) >/dev/null 2>&1; \
	if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; true

bench: venv bench-tools
	$(PY) -m bench $(BENCH_ARGS)
# <<< bench

clean:
	rm -rf $(VENV) $(VENV313) .tools cdk.out build .pytest_cache .ruff_cache
