# Every target sets itself up from nothing: a .venv with Python 3.13 and the
# pinned requirements (reinstalled when a requirements file changes).
SHELL := /bin/bash
PYTHON ?= python3.13
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
DATA_DIR ?= .local
STAGE ?= dev

.PHONY: setup browser run test fuzz lint bench lambda deploy update reset webhook clean checkov terraform-check clean-checkov

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@if [ ! -x $(PY) ]; then \
		PYBIN=$$(command -v $(PYTHON) || (command -v pyenv >/dev/null && pyenv which python3.13) || echo python3); \
		$$PYBIN -c 'import sys; assert sys.version_info[:2] == (3, 13), "Python 3.13 is required, found " + sys.version' && \
		$$PYBIN -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

test: setup checkov browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The dashboard's browser tests drive Chromium: found, or installed when it can
# be (Debian's package as root or with passwordless sudo, else Playwright's
# download), by tests/chromium.py. When neither works it says so in one line
# and those tests skip. Quick when Chromium is there.
browser: setup
	@$(PY) -m tests.chromium --install

# Long, random property-based runs of tests/test_fuzz.py (make test runs a
# short, fixed set). FUZZ_EXAMPLES per property; failures are kept in .hypothesis/.
FUZZ_EXAMPLES ?= 3000
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -m fuzz tests/test_fuzz.py $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build .pytest_cache

# The embedded default. Variables the caller sets win over these. make passes
# SIGTERM on to runlocal but not a SIGINT sent to make alone (kill -INT, not
# Ctrl-C): --stop-with-parent has runlocal notice that, and make going.
run: setup
	SCHEDULER_LOCAL_MODE=true exec $(PY) manage.py runlocal --port $(PORT) --data-dir $(DATA_DIR) --stop-with-parent

# The original's demo: a webhook a few seconds ahead to a local receiver.
webhook: setup
	SCHEDULER_LOCAL_MODE=true $(PY) manage.py webhookdemo --port $(PORT)

# Each prints its table; a missed target does not stop the others (-).
bench: setup lambda
	-$(PY) -m bench.dispatch
	-$(PY) -m bench.dispatch -n 1000
	-$(PY) -m bench.idle
	$(PY) -m bench.coldstart
	$(PY) -m bench.cost

# checkov (run by tests/test_terraform.py) lives in its own virtualenv: its
# dependencies conflict with the app's pins.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov

checkov: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	@if [ ! -x $(CHECKOV_VENV)/bin/python ]; then \
		PYBIN=$$(command -v $(PYTHON) || (command -v pyenv >/dev/null && pyenv which python3.13) || echo python3); \
		$$PYBIN -m venv $(CHECKOV_VENV); \
	fi
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

# The Terraform checks alone (make test runs them too, as tests).
terraform-check: setup checkov
	terraform fmt -check -recursive terraform/
	$(CHECKOV_VENV)/bin/checkov --directory terraform --framework terraform --skip-download --compact --quiet
	$(PY) -m pytest tests/test_terraform.py

clean: clean-checkov
clean-checkov:
	rm -rf $(CHECKOV_VENV)

# --- Lambda (Zappa) ----------------------------------------------------------
# Both packages of a stage (web + executor) into build/, with their sizes.
lambda: setup
	$(PY) -m deploy.build_lambda --stage $(STAGE)

# Real AWS: see the README's Deployment section. Never run by the tests.
deploy: lambda
	$(PY) -m deploy.zappa_stage deploy $(STAGE)

update: lambda
	$(PY) -m deploy.zappa_stage update $(STAGE)

# The original's destroy-and-recreate, for both functions.
reset: lambda
	$(PY) -m deploy.zappa_stage reset $(STAGE)
