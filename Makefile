# Two commands: `make search` runs the default search, `make test` runs the test suite.
# Each creates ./.venv and installs amlfs into it on first use. Extra search overrides: make search ARGS="seed=1"
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: search test install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

search: $(STAMP)
	$(VENV)/bin/python -m amlfs.search $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile $(ARGS)
