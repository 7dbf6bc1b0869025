# A fresh checkout needs only `make run` or `make test`: both bootstrap .venv
# from the machine's python3 and (re)install when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/futon.yaml

.PHONY: run test lint bench clean sandbox

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) sandbox
	$(BIN)/futon serve --config $(CONFIG)

test: $(STAMP) sandbox irc-clients
	$(BIN)/ruff check futon tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check futon tests bench
	$(BIN)/ruff format --check futon tests bench

# bash-readonly runs commands in bubblewrap and refuses to run without it.
# Install it when we can (root with apt-get); never fail the build when we
# cannot — the sandbox tests then fail and say why.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; } \
	      || echo "warning: could not install bubblewrap; bash-readonly will refuse to run" >&2; \
	  else \
	    echo "warning: bwrap not found and cannot be installed here; bash-readonly will refuse to run" >&2; \
	  fi; \
	}; true

# The IRC tests drive a real terminal client, ii (Debian package `ii`).
# Install it when we can (root with apt-get); never fail the build when we
# cannot — the ii test then fails and says why.
.PHONY: irc-clients
irc-clients:
	@command -v ii >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q ii || { apt-get update -q && apt-get install -y -q ii; } \
	      || echo "warning: could not install ii; the ii IRC client test will fail" >&2; \
	  else \
	    echo "warning: ii not found and cannot be installed here; the ii IRC client test will fail" >&2; \
	  fi; \
	}; true

bench: $(STAMP) sandbox
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
