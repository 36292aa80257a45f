# Every target installs what it needs: a fresh clone runs `make demo` or `make test` directly.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench fuzz clean

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

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.run

fuzz: install
	$(BIN)/pip install --quiet atheris
	$(BIN)/python fuzz/fuzz_decoders.py -max_total_time=$${FUZZ_SECONDS:-300}

clean:
	rm -rf $(VENV) demo-data bench-data .pytest_cache .mypy_cache .ruff_cache
