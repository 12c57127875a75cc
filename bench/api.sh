#!/usr/bin/env bash
# The HTTP API's enqueue benchmark (BENCHMARKS.md, "HTTP API: enqueue"):
# a release `pushrelay run` with its API on a free loopback port, its own
# database, and wrk driving (a) single enqueues, POST /v1/notifications,
# 64 connections, and (b) the batch endpoint, 1,000 notifications per
# request. Prints wrk's report and one machine-readable line per run.
#
#   bench/api.sh                      # both runs, 20 s each
#   DURATION=60 bench/api.sh single   # one run, longer
#   DEVICES=1000 bench/api.sh         # the first 1,000 users have an iOS device
#                                     # on the simulator, so the worker sends too
#   SEND_AT=2099-01-01T00:00:00Z bench/api.sh batch
#                                     # scheduled: the enqueue alone, no fan-out
#
# Environment: ENQUEUE_BATCH (500: api.enqueue_batch), DATABASE_URL (default postgres://postgres@127.0.0.1:5432/pushrelay_api_bench;
# the database is dropped and recreated), CONNECTIONS (64), BATCH_CONNECTIONS (4),
# THREADS (2), BATCH (1000), LOAD_MAX (1.0: wait until the 1-minute load average
# is below it before each run), PUSHRELAY_BIN (default: build the release binary).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${*:-single batch}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-4}
THREADS=${THREADS:-2}
BATCH=${BATCH:-1000}
DEVICES=${DEVICES:-0}
LOAD_MAX=${LOAD_MAX:-1.0}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pushrelay_api_bench}
export APP=demo
export BATCH

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)" >&2
    apt-get install -y wrk >/dev/null
fi
if [[ -z ${PUSHRELAY_BIN:-} ]]; then
    cargo build --release --quiet
    PUSHRELAY_BIN=${CARGO_TARGET_DIR:-target}/release/pushrelay
fi

# The database: recreated, migrated, a key that no rate limit slows.
db=${DATABASE_URL##*/}
server=${DATABASE_URL%/*}/postgres
export PGOPTIONS=--client-min-messages=warning
psql -q "$server" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
run() { "$PUSHRELAY_BIN" --config config.toml "$@"; }
run migrate >/dev/null 2>&1
PUSHRELAY_KEY=$(run keys create --name api-bench --scopes send,read --rate 10000000 2>/dev/null | tail -n1)
export PUSHRELAY_KEY
if ((DEVICES > 0)); then
    psql -q "$DATABASE_URL" -c "INSERT INTO pushrelay.devices (app, user_id, platform, token)
        SELECT 'demo', 'bench-user-' || i, 'ios', md5('a' || i) || md5('b' || i)
          FROM generate_series(0, $DEVICES - 1) i"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
# The binary itself in the background (not a shell function), so $! is
# the daemon's pid and the trap stops it.
PUSHRELAY__API__LISTEN=127.0.0.1:$port PUSHRELAY__METRICS__LISTEN= \
    PUSHRELAY__TELEMETRY__LEVEL=warn PUSHRELAY__API__ENQUEUE_BATCH=${ENQUEUE_BATCH:-500} \
    "$PUSHRELAY_BIN" --config config.toml run >/tmp/pushrelay-api-bench.log 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fs "$base/readyz" >/dev/null && break
    kill -0 "$daemon" 2>/dev/null || { cat /tmp/pushrelay-api-bench.log; exit 1; }
    sleep 0.1
done
curl -fs "$base/readyz" >/dev/null

count() { psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM pushrelay.notifications"; }
# The worker fans out what the previous run enqueued before the next run
# starts, and the machine is quiet (other builds and benches skew it).
fanned_out() {
    while [[ $(psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM pushrelay.notifications WHERE state = 'pending' AND send_at <= now()") != 0 ]]; do
        sleep 0.2
    done
}
settle() {
    fanned_out
    while awk -v max="$LOAD_MAX" '{ exit !($1 >= max) }' /proc/loadavg; do
        echo "waiting for a quiet machine: load $(cut -d' ' -f1-3 /proc/loadavg) (LOAD_MAX=$LOAD_MAX)" >&2
        sleep 60
    done
    echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# CPU seconds so far of the daemon, and of the PostgreSQL backends serving
# this database (the pools keep their connections for the whole run; the
# server is shared with other work, so not the postmaster's total).
cpu() {
    local tck pg pids
    tck=$(getconf CLK_TCK)
    pids=$(psql -qtA "$DATABASE_URL" -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    pg=$(for p in $pids; do cat "/proc/$p/stat" 2>/dev/null; done |
        awk '{ s += $14 + $15 } END { print s + 0 }')
    awk -v d="$(awk '{ print $14 + $15 }' "/proc/$daemon/stat")" -v pg="$pg" -v t="$tck" \
        'BEGIN { printf "%.2f %.2f\n", d / t, pg / t }'
}

# wrk's latency distribution value for a percentile line, in ms.
ms() {
    awk -v p="$1" '$1 == p {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v); exit }'
}

for what in $RUNS; do
    settle
    before=$(count)
    read -r d0 pg0 < <(cpu)
    case $what in
    single)
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/enqueue.lua "$base/v1/notifications")
        ;;
    batch)
        out=$(wrk -t"$THREADS" -c"$BATCH_CONNECTIONS" -d"${DURATION}s" --latency --timeout 10s -s bench/batch.lua "$base/v1/notifications/batch")
        ;;
    *)
        echo "unknown run $what (single, batch)" >&2
        exit 2
        ;;
    esac
    echo "$out"
    # The worker's fan-out of what was enqueued runs during the run: wait
    # for it, so its share is counted too.
    fanned_out
    read -r d1 pg1 < <(cpu)
    after=$(count)
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    non2xx=$(awk -F= '/^non_2xx=/ { print $2 }' <<<"$out")
    p50=$(ms 50% <<<"$out")
    p99=$(ms 99% <<<"$out")
    per=$([[ $what == batch ]] && echo "$BATCH" || echo 1)
    # Notifications the database holds afterwards, per second of the run:
    # what was enqueued, not just answered.
    stored=$(awk -v n=$((after - before)) -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }')
    # CPU per enqueued notification, enqueue and fan-out included.
    n=$((after - before))
    daemon_us=$(awk -v a="$d0" -v b="$d1" -v n="$n" 'BEGIN { printf "%.1f", n ? (b - a) * 1e6 / n : 0 }')
    db_us=$(awk -v a="$pg0" -v b="$pg1" -v n="$n" 'BEGIN { printf "%.1f", n ? (b - a) * 1e6 / n : 0 }')
    echo "run=$what requests_per_sec=$rps notifications_per_sec=$stored p50_ms=$p50 p99_ms=$p99 non_2xx=$non2xx per_request=$per connections=$([[ $what == batch ]] && echo "$BATCH_CONNECTIONS" || echo "$CONNECTIONS") daemon_cpu_us=$daemon_us db_cpu_us=$db_us"
    if [[ $non2xx != 0 ]]; then
        echo "some requests were refused; see /tmp/pushrelay-api-bench.log" >&2
    fi
done
