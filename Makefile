# journeygraph: the two quick-start commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint unit bench clean

# torch comes first and pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

## Set up, generate and load the demo world if the store is empty, serve on 127.0.0.1:8000.
run: $(STAMP)
	$(BIN)/journeygraph serve --demo --host $(HOST) --port $(PORT)

## Set up, lint, type-check and run the whole test suite.
test: $(STAMP) $(CHROMIUM) lint
	$(BIN)/pytest

# The browser tests drive Debian's chromium (never a browser a tool downloads). Installed
# when make runs as root with apt (CI, containers); elsewhere those tests skip and say why.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "not root: browser tests will skip (install Debian's chromium to run them)"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
