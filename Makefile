# A fresh checkout needs only `make run` or `make test`: both bootstrap .venv
# from the machine's python3 and (re)install when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= futon/data/config/futon.yaml

.PHONY: run test lint bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) sandbox
	$(BIN)/futon serve --config $(CONFIG)

test: $(STAMP) packages agents-cli
	$(BIN)/ruff check futon tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check futon tests bench
	$(BIN)/ruff format --check futon tests bench
	$(BIN)/mypy

# Debian packages the product or its tests use, as "command:package":
# bubblewrap (the sandbox every tool process runs in), ii (a real terminal IRC client),
# chromium (the web page's browser test, driven by Playwright without a
# browser download), ngircd and inspircd (real IRC networks for bot mode),
# openssl (a self-signed certificate for the TLS-verification test),
# postgresql (throwaway clusters for the PostgreSQL evidence store's tests,
# tests/pg_cluster.py: initdb lives in /usr/lib/postgresql/*/bin, off PATH).
# Installed when missing and we can (root with apt-get); the build never
# fails here — a test that needs a missing one fails (or, for the optional
# InspIRCd, skips) and says why. Packaged IRC servers would start a system
# service on 6667, futon's embedded port (and postgresql one on 5432): it is
# disabled again at once.
DEBIAN_PACKAGES := bwrap:bubblewrap ii:ii chromium:chromium ngircd:ngircd inspircd:inspircd openssl:openssl \
                   initdb:postgresql

.PHONY: packages sandbox
packages:
	@for pair in $(DEBIAN_PACKAGES); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] && continue; \
	  ls /usr/lib/postgresql/*/bin/$$cmd >/dev/null 2>&1 && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    { apt-get install -y -q $$pkg || { apt-get update -q && apt-get install -y -q $$pkg; }; } \
	      && { case $$pkg in ngircd|inspircd|postgresql) systemctl disable --now $$pkg >/dev/null 2>&1 || true;; esac; } \
	      || echo "warning: could not install $$pkg; the tests that need it will say so" >&2; \
	  else \
	    echo "warning: $$cmd not found and cannot be installed here; the tests that need it will say so" >&2; \
	  fi; \
	done; true

# The real Claude Code and Codex CLIs the claude-code and codex-cli driver
# presets are tested against (tests/agents/test_real_clients.py): test
# dependencies of the drivers, not of the daemon. The exact versions are in
# agents-cli/package-lock.json; `npm ci` installs them into
# agents-cli/node_modules (gitignored) when missing, with Debian's nodejs and
# npm when npm itself is missing and we are root. Never fails the build: the
# tests that need a CLI fail and say why.
.PHONY: agents-cli
agents-cli:
	@[ -x agents-cli/node_modules/.bin/claude ] && [ -x agents-cli/node_modules/.bin/codex ] && exit 0; \
	if ! command -v npm >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q nodejs npm || { apt-get update -q && apt-get install -y -q nodejs npm; }; \
	fi; \
	if command -v npm >/dev/null 2>&1; then \
	  (cd agents-cli && npm ci --no-audit --no-fund --loglevel=error) \
	    || echo "warning: npm ci in agents-cli failed; the real-client tests will say so" >&2; \
	else \
	  echo "warning: npm not found and cannot be installed here; the real-client tests will say so" >&2; \
	fi; true

# `make run` needs only the sandbox.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || $(MAKE) --no-print-directory packages DEBIAN_PACKAGES=bwrap:bubblewrap

bench: $(STAMP) sandbox
	$(BIN)/python bench/run_all.py

# A newcomer's tour, no API key needed: a human asks in IRC, a scripted
# Claude explores, hops to edit, fixes the bug, hops to test; the evidence
# thread is printed at the end.
demo: $(STAMP) sandbox
	$(BIN)/python demo/run.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
