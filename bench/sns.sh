#!/usr/bin/env bash
# Sends through Amazon SNS (BENCHMARKS.md, "Amazon SNS"): a release
# `pushrelay run` with an app routed through SNS (moto's server, the tests'
# local SNS, on a free loopback port), N Android devices inserted by SQL
# (no endpoints yet), then two rounds of one notification per device:
#   first   every send makes its endpoint: CreatePlatformEndpoint,
#           GetEndpointAttributes, Publish
#   again   every device has a checked endpoint: Publish alone
# Prints per round the deliveries/s and the CPU time of the daemon and of
# moto per delivery. moto (one Python process) is the bottleneck; the
# daemon's CPU per delivery is pushrelay's own cost of an SNS send (SigV4
# signing, the query-string body, the XML answer, the database work).
#
#   bench/sns.sh              # N=2000
#   N=5000 bench/sns.sh
#
# Environment: N (2000), PUSHRELAY_BIN (default: build the release binary),
# CONCURRENCY (the Android lane's sends at a time, 64).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-2000}
CONCURRENCY=${CONCURRENCY:-64}
DB=pushrelay_bench_sns
URL=postgres://postgres@127.0.0.1:5432/$DB
export PGOPTIONS=--client-min-messages=warning
if [[ -z ${PUSHRELAY_BIN:-} ]]; then
    cargo build --release --quiet
    PUSHRELAY_BIN=${CARGO_TARGET_DIR:-target}/release/pushrelay
fi
MOTO=$(.ci/moto-venv)
PY=$(dirname "$MOTO")/python
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
q() { psql -qtA "$URL" -c "$1"; }
# utime + stime of a process, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

work=$(mktemp -d)
moto_port=$(free_port)
"$MOTO" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
moto=$!
daemon=
trap 'kill $moto $daemon 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$moto_port") 2>/dev/null && break
    sleep 0.1
done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
app=$("$PY" -c "
import boto3
c = boto3.client('sns', region_name='eu-west-1', endpoint_url='http://127.0.0.1:$moto_port')
print(c.create_platform_application(Name='bench', Platform='GCM',
      Attributes={'PlatformCredential': 'x'})['PlatformApplicationArn'])")

psql -qX -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
cat >"$work/config.toml" <<TOML
[database]
url = "$URL"
[api]
listen = ""
[metrics]
listen = ""
[telemetry]
level = "warn"
[lanes.android]
concurrency = $CONCURRENCY
[apps.bench.android]
provider = "sns"
platform_application_arn = "$app"
endpoint_url = "http://127.0.0.1:$moto_port"
TOML
run() { "$PUSHRELAY_BIN" --config "$work/config.toml" "$@"; }
run migrate >/dev/null
q "INSERT INTO pushrelay.devices (app, user_id, platform, token)
   SELECT 'bench', 'u' || i, 'android', 'fcm-bench-token-' || i FROM generate_series(1, $N) i"
"$PUSHRELAY_BIN" --config "$work/config.toml" run >"$work/daemon.log" 2>&1 &
daemon=$!

round() {
    local name=$1 want=$2
    local d0 m0 t0
    d0=$(ticks $daemon) m0=$(ticks $moto) t0=$(date +%s.%N)
    q "INSERT INTO pushrelay.notifications (app, user_id, body)
       SELECT 'bench', 'u' || i, 'hello' FROM generate_series(1, $N) i"
    until [[ $(q "SELECT count(*) FROM pushrelay.deliveries WHERE state = 'delivered'") -ge $want ]]; do
        kill -0 $daemon 2>/dev/null || { cat "$work/daemon.log"; exit 1; }
        sleep 0.05
    done
    local d1 m1 t1
    d1=$(ticks $daemon) m1=$(ticks $moto) t1=$(date +%s.%N)
    awk -v n="$N" -v name="$name" -v s="$(echo "$t1 - $t0" | bc)" -v dc=$((d1 - d0)) -v mc=$((m1 - m0)) -v hz="$hz" 'BEGIN {
        printf "%-6s %6d deliveries in %6.2f s: %7.0f/s; CPU per delivery: pushrelay %5.0f us, moto %5.0f us\n",
            name, n, s, n / s, dc / hz / n * 1e6, mc / hz / n * 1e6 }'
}
round first "$N"
round again $((2 * N))
failed=$(q "SELECT count(*) FROM pushrelay.deliveries WHERE state <> 'delivered'")
endpoints=$(q "SELECT count(DISTINCT sns_endpoint_arn) FROM pushrelay.devices")
echo "not delivered: $failed; endpoints stored: $endpoints of $N devices"
