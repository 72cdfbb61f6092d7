#!/usr/bin/env bash
# Start Celery workers for the `*_celery` jobs (workflows/defs/executors.py).
#
# One machine (broker, instance and data folder all local):
#   scripts/celery_workers.sh --local 2        # redis-server on a private unix socket + 2 workers, Ctrl-C stops all
#
# Across machines (docs/deploy.md): on every worker host, with the shared settings exported,
#   export WORKFLOWS_CELERY_BROKER=redis://queue.internal:6379/0 WORKFLOWS_CELERY_BACKEND=redis://queue.internal:6379/1
#   export DAGSTER_HOME=<shared folder>/dagster_home         # holds deploy/dagster.yaml (Postgres)
#   export DAGSTER_PG_HOST=db.internal DAGSTER_PG_PORT=5432 DAGSTER_PG_USER=dagster DAGSTER_PG_PASSWORD=... DAGSTER_PG_DB=dagster
#   export WORKFLOWS_DATA_DIR=<shared data folder>           # the shared data folder (NFS / ReadWriteMany)
#   scripts/celery_workers.sh 1                              # a GPU host: one worker per GPU is enough
#
# Each worker runs one step at a time (--pool solo); a training step claims a free GPU of
# its host (or a CPU slot) itself (workflows/ml/placement.py). Stop with Ctrl-C / SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV_BIN:-$PWD/.venv/bin}"
export PATH="$BIN:$PATH" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

local_mode=0
if [[ "${1:-}" == "--local" ]]; then local_mode=1; shift; fi
workers="${1:-2}"

pids=()
# Secrets (the local Redis password, the broker URL that holds it) live only in this private folder
# (0700, files 0600), removed on exit; never on a command line, where `ps` shows them.
umask 077
private="$(mktemp -d -t workflows-celery-XXXXXX)"
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait || true
  rm -rf -- "$private"
}
trap cleanup EXIT INT TERM

if (( local_mode )); then
  command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server" >&2; exit 2; }
  # Our own Redis, reachable only through a unix socket in the private folder (no TCP port: nobody else's
  # Redis can be on it, and nobody else can reach ours), with a password as well: a task message names a job
  # that a worker imports and runs, so the broker must not take one from anyone else.
  password="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
  socket="$private/redis.sock"
  printf 'port 0\nunixsocket %s\nunixsocketperm 700\nrequirepass %s\nsave ""\nappendonly no\ndir %s\n' \
    "$socket" "$password" "$private" > "$private/redis.conf"
  setsid redis-server "$private/redis.conf" > "$private/redis.log" 2>&1 &
  pids+=("$!")
  # Workers start only once this very Redis answers an authenticated PING on its socket (the password goes
  # through the environment, never a command line).
  if ! REDIS_SOCKET="$socket" REDIS_PASSWORD="$password" python - "${pids[-1]}" <<'PING'
import os, sys, time
import redis
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(int(sys.argv[1]), 0)  # our redis-server is still running
    except ProcessLookupError:
        sys.exit("redis-server exited")
    try:
        if redis.Redis(unix_socket_path=os.environ["REDIS_SOCKET"], password=os.environ["REDIS_PASSWORD"]).ping():
            sys.exit(0)
    except (redis.ConnectionError, FileNotFoundError):
        time.sleep(0.2)
sys.exit("no answer on its socket after 60 s")
PING
  then
    echo "local broker did not start; its log:" >&2
    cat "$private/redis.log" >&2
    exit 3
  fi
  export WORKFLOWS_CELERY_BROKER="redis+socket://:$password@$socket?virtual_host=0"
  export WORKFLOWS_CELERY_BACKEND="redis+socket://:$password@$socket?virtual_host=1"
  export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/dagster_home}" WORKFLOWS_DATA_DIR="${WORKFLOWS_DATA_DIR:-$PWD/data}"
  printf 'export WORKFLOWS_CELERY_BROKER=%q WORKFLOWS_CELERY_BACKEND=%q\n' \
    "$WORKFLOWS_CELERY_BROKER" "$WORKFLOWS_CELERY_BACKEND" > "$private/broker.env"
  announce="broker: our redis-server on the unix socket $socket (password required; it answered an authenticated PING); where runs are launched: source $private/broker.env"
fi
: "${WORKFLOWS_CELERY_BROKER:?set WORKFLOWS_CELERY_BROKER (e.g. redis://queue.internal:6379/0) or use --local}"
: "${WORKFLOWS_CELERY_BACKEND:?set WORKFLOWS_CELERY_BACKEND (e.g. redis://queue.internal:6379/1) or use --local}"
: "${DAGSTER_HOME:?set DAGSTER_HOME to the shared instance (deploy/dagster.yaml across machines)}"

config="$private/celery.yaml"
printf 'execution:\n  config:\n    broker: %s\n    backend: %s\n' "$WORKFLOWS_CELERY_BROKER" "$WORKFLOWS_CELERY_BACKEND" > "$config"
# said once every file in the private folder is written (a reader may look at them as soon as it reads this)
if [[ -n "${announce:-}" ]]; then echo "$announce"; fi
for i in $(seq 0 $((workers - 1))); do
  setsid dagster-celery worker start -A dagster_celery.app -y "$config" -n "w$i@%h" -- --pool solo &
  sleep 5  # one at a time: workers on a fresh SQLite instance would race to create its tables
  pids+=("$!")
done
echo "$workers worker(s) on $(hostname); DAGSTER_HOME=$DAGSTER_HOME WORKFLOWS_DATA_DIR=${WORKFLOWS_DATA_DIR:-<default>}"
wait
