# Two commands set up a fresh clone: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test browser postgres lint typecheck pytest test-lake conformance check scan bench faults fuzz load leaks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each stamp records that the project is installed with that set of extras.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/depictiod serve --config depictio.toml

check: $(VENV)/.installed
	$(BIN)/depictiod check --config depictio.toml

scan: $(VENV)/.installed
	$(BIN)/depictiod scan --config depictio.toml

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# The catalog and ingestion tests run a second time on a DuckLake catalog in PostgreSQL;
# `make test-lake` runs only that second pass.
pytest: $(VENV)/.installed-test browser postgres
	$(BIN)/pytest -q
	DEPICTIOD_TEST_BACKEND=ducklake $(BIN)/pytest -q tests/catalog tests/ingestor

test-lake: $(VENV)/.installed-test postgres
	DEPICTIOD_TEST_BACKEND=ducklake $(BIN)/pytest -q tests/catalog tests/ingestor

test: lint typecheck pytest

# The browser tests (tests/web) drive Debian's Chromium. Installs it when it is missing: as root,
# or through sudo when that needs no password; otherwise says what to install, and those tests skip.
BROWSER_PACKAGES := chromium chromium-driver
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES); \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES); \
	else \
		echo "make browser: $(CHROMIUM) is missing; install the Debian packages $(BROWSER_PACKAGES) as root for the browser tests"; \
	fi

# The DuckLake tests start a throwaway PostgreSQL cluster (tests/postgres.py) with the server binaries
# of Debian's postgresql package, in /usr/lib/postgresql/<version>/bin. Installs the package when they
# are missing: as root, or through sudo when that needs no password; otherwise says what to install,
# and those tests skip.
POSTGRES_PACKAGES := postgresql
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(POSTGRES_PACKAGES); \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(POSTGRES_PACKAGES); \
	else \
		echo "make postgres: initdb and pg_ctl are missing from /usr/lib/postgresql/<version>/bin; install the Debian package $(POSTGRES_PACKAGES) as root for the DuckLake tests"; \
	fi

# The real Depictio CLI against a live depictiod; installs the CLI into .cache/ on first use.
conformance: $(VENV)/.installed-test
	$(BIN)/pytest -q tests/conformance

# Times depictiod against bare tools (DuckDB, polars, os.scandir, a bare Litestar app) on the same generated data; see bench/.
# ingest_two_writers starts a PostgreSQL cluster, so the server binaries are installed first.
bench: $(VENV)/.installed-test postgres
	$(BIN)/python -m bench

# The catalog fault tests with every fault, also those that need root, tmpfs mounts and loop
# devices (a full disk, a file system that turns read-only); see docs/reliability.md.
faults: $(VENV)/.installed-test
	DEPICTIOD_FAULTS=all $(BIN)/pytest -q tests/e2e/test_catalog_faults_live.py

# The API fuzz test with more examples than `make test` runs; FUZZ_EXAMPLES and FUZZ_SEED override them.
FUZZ_EXAMPLES ?= 100
fuzz: $(VENV)/.installed-test
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -s tests/e2e/test_fuzz_live.py

# 32 clients on the read routes of a live depictiod for 60 s while it ingests a 200-run tree; see docs/reliability.md.
load: $(VENV)/.installed-test
	$(BIN)/python -m bench.load_while_ingesting

# 50 starts and stops of the service and 1,000 rescans in one process; open files, threads and memory must stay flat.
leaks: $(VENV)/.installed-test
	$(BIN)/python -m bench.leaks

clean:
	rm -rf $(VENV) var .cache .pytest_cache .mypy_cache .ruff_cache
