#!/usr/bin/env bash
# `make run`: the API (gunicorn) and the job worker (`flask loyalty worker`) side by side, in the
# foreground. Ctrl-C stops both (the worker lets a running job finish); so does either of them
# exiting. HOST and PORT choose where the API listens.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

$BIN/flask --app wsgi loyalty worker &
worker=$!
$BIN/gunicorn --workers 2 --bind "${HOST:-127.0.0.1}:${PORT:-5000}" --access-logfile - wsgi:app &
server=$!

stop() {
  trap - INT TERM
  kill -INT "$worker" 2>/dev/null   # graceful: running jobs finish
  kill -TERM "$server" 2>/dev/null  # graceful: requests in flight finish
  wait "$worker" "$server" 2>/dev/null
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

wait -n "$worker" "$server"
status=$?
stop
exit "$status"
