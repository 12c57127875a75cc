#!/usr/bin/env bash
# The support console's pages under load (BENCHMARKS.md, "Support
# console"): a release `pushrelay run` on a free loopback port against the
# database a `pushrelay bench` run left behind (its users, devices,
# notifications, deliveries and attempts), signed in with a read key, and
# wrk on each page in turn. Prints one line per page: requests/s, p50, p99.
#
#   target/release/pushrelay bench         # fills pushrelay_bench
#   bench/console.sh                       # 10 s per page, 8 connections
#
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/pushrelay_bench),
# DURATION (10), CONNECTIONS (8), PUSHRELAY_BIN (default: build the release binary),
# ANALYZE (1; 0 leaves the statistics as the bench's bulk load left them).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-8}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pushrelay_bench}
export PGOPTIONS=--client-min-messages=warning
# The bench's app, on the simulator (nothing is sent: the backlog is done).
export PUSHRELAY__APPS__BENCH__IOS__PROVIDER=simulator
export PUSHRELAY__APPS__BENCH__ANDROID__PROVIDER=simulator

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)" >&2
    apt-get install -y wrk >/dev/null
fi
if [[ -z ${PUSHRELAY_BIN:-} ]]; then
    cargo build --release --quiet
    PUSHRELAY_BIN=${CARGO_TARGET_DIR:-target}/release/pushrelay
fi
run() { "$PUSHRELAY_BIN" --config config.toml "$@"; }
q() { psql -qtA "$DATABASE_URL" -c "$1"; }
if ! q "SELECT 1 FROM pushrelay.attempts LIMIT 1" | grep -q 1; then
    echo "error: $DATABASE_URL has no attempts; run \`pushrelay bench\` first" >&2
    exit 1
fi
run migrate >/dev/null 2>&1
# Fresh statistics, as autovacuum would have them after the bench's bulk
# load (it is off on some machines); ANALYZE=0 keeps the stale ones.
if [[ ${ANALYZE:-1} != 0 ]]; then
    q "ANALYZE" >/dev/null
fi
key=$(run keys create --name console-bench --scopes read 2>/dev/null | tail -n1)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
PUSHRELAY__API__LISTEN=127.0.0.1:$port PUSHRELAY__METRICS__LISTEN= PUSHRELAY__TELEMETRY__LEVEL=warn \
    "$PUSHRELAY_BIN" --config config.toml run >/tmp/pushrelay-console-bench.log 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fs "$base/healthz" >/dev/null && break
    kill -0 "$daemon" 2>/dev/null || { cat /tmp/pushrelay-console-bench.log; exit 1; }
    sleep 0.1
done
cookie=$(curl -fs -o /dev/null -D - --data-urlencode "key=$key" "$base/console/sign-in" |
    awk -F'[=;]' 'tolower($1) ~ /^set-cookie: pushrelay_console$/ { print "pushrelay_console=" $2 }')

echo "database: $(q "SELECT count(*) FROM pushrelay.devices") devices, $(q "SELECT count(*) FROM pushrelay.notifications") notifications, $(q "SELECT count(*) FROM pushrelay.attempts") attempts"
# A notification with the most attempts, the user with the most
# notifications, and the last 8 characters of one device's token.
notification=$(q "SELECT d.notification_id FROM pushrelay.deliveries d ORDER BY d.attempts DESC, d.id LIMIT 1")
user=$(q "SELECT user_id FROM pushrelay.notifications WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1")
token_end=$(q "SELECT right(token, 8) FROM pushrelay.devices ORDER BY id DESC LIMIT 1")

ms() {
    awk -v p="$1" '$1 == p {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        print (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v); exit }'
}
for page in overview "users/$user" "notifications/$notification" "search?q=$token_end" "search?q=$user"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$base/console/$page")
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Cookie: $cookie" "$base/console/$page")
    printf 'page=%-60s status=%s rps=%s p50_ms=%s p99_ms=%s non2xx3xx=%s\n' "$page" "$status" \
        "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")" "$(ms 50% <<<"$out")" "$(ms 99% <<<"$out")" \
        "$(awk '/Non-2xx or 3xx/ { print $5 }' <<<"$out")"
done
