# Every target installs what it needs: a fresh clone runs `make demo` or `make test` directly.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench fuzz clean browser screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python -m peernode.demo

lint: install
	$(BIN)/ruff check protocol peernode tests bench tools fuzz
	$(BIN)/ruff format --check protocol peernode tests bench tools fuzz
	$(BIN)/mypy

# Two worker processes: most tests wait on daemons and sockets, so the suite takes half the time
# on two cores (each test makes its own ports, homes and network namespaces).
test: lint browser
	$(BIN)/pytest -q -n 2

# Headless Chromium for the web page's end-to-end tests (tests/test_webui_browser.py): Debian's
# package, never a test tool's own download. Needs root (or sudo) once on a fresh machine.
browser:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y chromium; } || \
		sudo sh -c 'apt-get update && apt-get install -y chromium' || \
		echo "chromium could not be installed: the browser tests will be skipped"

# The web page in both languages, as PNGs in docs/screenshots/ (needs chromium).
screenshots: install browser
	$(BIN)/python -m tools.screenshots

# PouchDB, the replication baseline: a missing npm only leaves that figure "not measured".
bench: install
	-cd bench/pouchdb && npm install --no-audit --no-fund --loglevel=error
	$(BIN)/python -m bench.run

fuzz: install
	$(BIN)/pip install --quiet atheris
	$(BIN)/python fuzz/fuzz_decoders.py -max_total_time=$${FUZZ_SECONDS:-300}

clean:
	rm -rf $(VENV) demo-data bench-data .pytest_cache .mypy_cache .ruff_cache
