# Every target sets itself up from nothing: a .venv with Python 3.13 and the
# pinned requirements (reinstalled when a requirements file changes).
SHELL := /bin/bash
PYTHON ?= python3.13
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAGE ?= dev

.PHONY: setup run test lint bench lambda deploy update reset webhook clean

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

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build .pytest_cache

# --- Lambda (Zappa) ----------------------------------------------------------
# Both packages of a stage (web + executor) into build/, with their sizes.
lambda: setup
	$(PY) deploy/build_lambda.py --stage $(STAGE)

# Real AWS: see the README's Deployment section. Never run by the tests.
deploy: lambda
	$(PY) deploy/zappa_stage.py deploy $(STAGE)

update: lambda
	$(PY) deploy/zappa_stage.py update $(STAGE)

# The original's destroy-and-recreate, for both functions.
reset: lambda
	$(PY) deploy/zappa_stage.py reset $(STAGE)

bench: setup lambda
	$(PY) bench/coldstart.py
