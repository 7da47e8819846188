# Deskline: `make demo` runs the system on virtual consoles, `make test` checks it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deskline-installed

.PHONY: all demo test browser lint typecheck bench clean

all: test

# Installs only when the pins or the package metadata change, so a second
# `make test` reuses the environment as it is.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/deskline demo

# The dashboard's browser tests drive Debian's chromium (apt, once; a no-op
# when it is there). `make demo` does not need it.
browser:
	@sh tools/install-browser.sh

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check firmware host tests bench tools
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/basedpyright --project firmware/pyrightconfig.json

bench: $(STAMP)
	$(BIN)/python bench/firmware.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/flash.py
	$(BIN)/python bench/update.py
	$(BIN)/python bench/dashboard.py

clean:
	rm -rf $(VENV) build artifacts *.egg-info host/*.egg-info
