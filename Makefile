# The two commands: `make run` and `make test`. Both create .venv and install
# requirements.txt on first use (and again only when it changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck migrate bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput -v 0

run: migrate
	$(PY) manage.py check
	$(PY) manage.py describe_config
	$(PY) manage.py demo

# A development server on the embedded defaults, at http://$(SERVE_ADDR)/ (the admin at /admin/):
# `manage.py dev_setup` migrates, creates a superuser when there is none (DJANGO_SUPERUSER_USERNAME /
# DJANGO_SUPERUSER_PASSWORD, default admin / admin) and loads the demo jobs into an empty database;
# it refuses outside ENVIRONMENT=development, and then nothing is served.
.PHONY: serve
SERVE_ADDR ?= 127.0.0.1:8000
serve: $(STAMP)
	$(PY) manage.py dev_setup
	$(PY) manage.py runserver $(SERVE_ADDR)

# The whole suite on SQLite, and again on PostgreSQL when DATABASE_URL names one
# (see bin/run-tests); ruff and mypy first. PYTEST_ARGS passes options through.
test: $(STAMP) lint typecheck
	env -u DATABASE_URL $(PY) manage.py migrate --noinput -v 0
	PY=$(PY) bin/run-tests $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy common videogen

# Benchmarks print figures and ratios against a baseline measured in the same run.
# costs/report/jobs/tempfiles need PostgreSQL (DATABASE_URL, default the local server; each creates and drops
# its own marked database, named by VIDEOGEN_BENCH_DB_NAME); services/cache need Redis (REDIS_URL).
# bench/report.py builds 1M jobs / 5M ledger rows (most of the run's half hour; it needs psql):
# `make bench REPORT_ARGS="--jobs 100000 --rows 500000"` for a quicker look.
REPORT_ARGS ?=
bench: migrate
	$(PY) bench/costs.py
	$(PY) bench/report.py $(REPORT_ARGS)
	$(PY) -m bench.jobs
	$(PY) -m bench.tempfiles
	$(PY) -m bench.services
	$(PY) -m bench.auth
	$(PY) -m bench.storage
	$(PY) -m bench.log
	$(PY) -m bench.cache

clean:
	rm -rf $(VENV) var .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
