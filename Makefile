# The two commands of the README: `make demo` and `make test`.
# Both bootstrap .venv from the checked-in development lock when it is missing or stale.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9
DEMO_DIR ?= .demo
AS_OF  ?= 2026-11-24
DAYS   ?= 2
PYTEST_ARGS ?=
# make test runs the suite on every core (pytest-xdist): whole modules per worker, so a module's
# shared setup (a demo org, an Airflow, a browser) is built once; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
PARALLEL := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

export UV_CACHE_DIR ?= $(HOME)/.cache/uv
export GX_ANALYTICS_ENABLED := false

.PHONY: install chromium lock demo test test-fast compose-test lint bench clean

install: $(STAMP) chromium

# The report's browser tests drive Debian's Chromium; install it when it is missing and we may.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium is missing and cannot be installed here (needs root and apt-get): the browser tests will fail" >&2; \
	fi

$(STAMP): requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) 2>&1 | grep -v '^WARNING: Location' || true
	@# Compiled now: machines with PYTHONDONTWRITEBYTECODE would recompile Airflow in every process.
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# Regenerate the locks after changing requirements.txt or requirements-dev.txt (`make lock`; not
# automatic, so that a fresh clone never resolves again): requirements.lock is what the image
# installs (the Dockerfile), requirements-dev.lock adds the tests' tools to exactly those versions
# (what make test installs). Pins already in a lock are kept where they still fit.
lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==$(UV_VERSION); }
	$(BIN)/uv pip compile --quiet --python-version 3.11 requirements.txt -o requirements.lock
	$(BIN)/uv pip compile --quiet --python-version 3.11 requirements-dev.txt -c requirements.lock -o requirements-dev.lock

demo: $(STAMP)
	$(BIN)/python -m sa_hygiene demo --dir $(DEMO_DIR) --as-of $(AS_OF) --days $(DAYS)

test: $(STAMP) chromium
	@$(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# The unit tests only (no server, Airflow or browser): a quick check while working; make test runs all.
test-fast: $(STAMP)
	@$(BIN)/python -m pytest $(PARALLEL) -m unit $(PYTEST_ARGS)

# docker-compose.yaml as containers, the README's way (deploy/compose-test.sh): starts Docker if
# needed, builds the image, brings the stack up, runs the snapshot, the report and a digest, then
# takes it down. Needs no virtualenv; not part of make test or CI (README, "The compose test").
compose-test:
	bash deploy/compose-test.sh

lint: $(STAMP)
	$(BIN)/ruff check include dags plugins tests bench deploy

bench: $(STAMP)
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/dag_parse.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
