#!/usr/bin/env bash
# `make run`: migrate, load the demo into an empty database (a database in use is left as it
# is), then the API (gunicorn) and the job worker (`flask loyalty worker`) side by side, in the
# foreground. Ctrl-C stops both (the worker lets a running job finish); so does either of them
# exiting. HOST and PORT choose where the API listens (`make run PORT=8080`).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
FLASK="$BIN/flask --app wsgi"
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}

if ! [[ $PORT =~ ^[0-9]+$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
  echo "PORT must be a number from 1 to 65535, not '$PORT'" >&2
  exit 2
fi
PORT=$((10#$PORT))
host=${HOST#[}
host=${host%]}
case $host in
  *:*) bind="[$host]:$PORT" ;;  # IPv6
  *) bind="$host:$PORT" ;;
esac
# the address to open: on every interface (0.0.0.0, ::), this machine's loopback
case $host in
  0.0.0.0 | '') url="http://127.0.0.1:$PORT" ;;
  ::) url="http://[::1]:$PORT" ;;
  *) url="http://$bind" ;;
esac

export LOYALTY_PUBLIC_URL=${LOYALTY_PUBLIC_URL:-$url}  # the receipts' feedback links
$FLASK db upgrade || exit
$FLASK loyalty seed-demo --history --url "$url" || exit

# gunicorn's workers and the job worker write their Prometheus counters to one folder, and every
# app server's /metrics adds them up (the job worker's job failures included)
# (app servers' and the job worker's together); the folder starts empty on every run, as
# prometheus_client asks, so counters of processes long gone are not added in
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/instance/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR" && rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db

$BIN/flask --app wsgi loyalty worker &
worker=$!
$BIN/gunicorn --workers 2 --bind "$bind" --access-logfile - wsgi:app &
server=$!

stop() {
  trap - INT TERM
  kill -INT "$worker" 2>/dev/null   # graceful: running jobs finish
  kill -TERM "$server" 2>/dev/null  # graceful: requests in flight finish
  wait "$worker" "$server" 2>/dev/null
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

# say where it answers once it does (gunicorn exits at once if the port is taken)
for _ in $(seq 1 100); do
  kill -0 "$server" 2>/dev/null || break
  if $BIN/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "$url/healthz" 2>/dev/null; then
    echo "Loyalty answers on $url/api/v1 (docs: $url/api/v1/docs). Ctrl-C stops it."
    break
  fi
  sleep 0.2
done

wait -n "$worker" "$server"
status=$?
stop
exit "$status"
