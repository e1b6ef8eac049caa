#!/usr/bin/env bash
# Every test: the suite on SQLite, then again on PostgreSQL (real parallel connections, newman and
# schemathesis against gunicorn). Where no PostgreSQL answers, the second pass is skipped with a
# loud message, and the live checks run on SQLite instead; under CI that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PG_HOST=${LOYALTY_TEST_PG_HOST:-127.0.0.1}

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p 5432
  else
    $BIN/python -c "import psycopg, os; psycopg.connect(os.environ.get('LOYALTY_TEST_PG', 'postgresql://postgres@127.0.0.1:5432/postgres'), connect_timeout=3).close()" 2>/dev/null
  fi
}

echo "== lint: ruff, ruff format, mypy =="
$BIN/ruff check .
$BIN/ruff format --check . >/dev/null
$BIN/mypy loyalty
$BIN/python scripts/long_functions.py  # no function in loyalty/ over 60 lines

echo "== pass 1/2: SQLite =="
if pg_up; then
  LOYALTY_TEST_DB=sqlite $BIN/pytest -m "not e2e" "$@"
  echo "== pass 2/2: PostgreSQL ($PG_HOST:5432, a throw-away database) =="
  LOYALTY_TEST_DB=postgres $BIN/pytest "$@"
else
  if [ "${CI:-}" = "true" ]; then
    echo "!! PostgreSQL does not answer on $PG_HOST:5432 and CI must never skip it" >&2
    exit 1
  fi
  LOYALTY_TEST_DB=sqlite $BIN/pytest "$@"
  echo "" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "!! SKIPPED the PostgreSQL pass: nothing answers on $PG_HOST:5432.                   !!" >&2
  echo "!! Concurrency and locking tests did NOT run. Start PostgreSQL and run make test.   !!" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
fi
