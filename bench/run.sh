#!/usr/bin/env bash
# End-to-end load benchmark: redbrick-relay against the sink alone, in one sitting.
#
#   bench/run.sh [RUNS]        RUNS (default 3) pairs of runs, alternating relay / sink
#
# Builds the relay in release, copies the harness (bench/harness) to $WORK,
# then RUNS times: starts the relay on a fresh outbox with the workload's config
# (bench/make_config.py), runs the harness's `run.sh $RELAY_URL redbrick-relay`
# (which starts its own sink on 127.0.0.1:18080), stops the relay and checks its outbox
# (nothing pending, nothing dead); then runs the harness's `run.sh sink`. Prints every
# run, then the medians and spread per concurrency level.
#
# The relay answers once the webhook's messages are committed to the outbox (fsync),
# and delivers afterwards, so a level's deliveries can land after wrk stops: SETTLE
# (default 15 s, waited after each level before the sink is counted and again before
# the next level) must let the queue drain, or deliveries per request come out short
# for that level and long for the next.
#
# Environment: RUNS, SETTLE=15, RUST_LOG=info (the relay's log level; logs go to
# $WORK/logs), RESULTS_DIR=bench/results/<time>, and the harness's own knobs
# (DURATION=20, CONCURRENCY="1 16 64", WARMUP=5, WRK_THREADS=1, ...).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="${1:-${RUNS:-3}}"
export SETTLE="${SETTLE:-15}"
export RUST_LOG="${RUST_LOG:-info}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
export RESULTS_DIR="${RESULTS_DIR:-$ROOT/bench/results/$STAMP}"

need wrk "apt-get install wrk"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need ss "apt-get install iproute2"
check_port_free "$RELAY_PORT"
check_port_free "$SINK_PORT"
build_relay
prepare_harness
mkdir -p "$RESULTS_DIR" "$WORK/logs"

RELAY_PID=""
trap 'if [ -n "$RELAY_PID" ]; then stop_pid "$RELAY_PID"; fi' EXIT

# One harness run against a relay on a fresh outbox, then the outbox check.
relay_run() {
    local run="$1" store="$WORK/store-$1"
    rm -rf "$store"; mkdir -p "$store"
    make_config "$store/relay.db" > "$store/relay.toml"
    "$BIN" serve --config "$store/relay.toml" 2>>"$WORK/logs/relay-$run.log" &
    RELAY_PID=$!
    wait_http "$RELAY_URL"
    RELAY_PID="$RELAY_PID" "$H/run.sh" "$RELAY_URL" redbrick-relay
    stop_pid "$RELAY_PID"; RELAY_PID=""
    local states
    states="$(python3 "$ROOT/bench/tools.py" outbox "$store/relay.db")"
    echo "outbox after run $run: $states" | tee -a "$RESULTS_DIR/outbox.txt"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(d["pending"] or d["dead"])' "$states" \
        || echo "WARNING: deliveries left pending or dead: raise SETTLE" | tee -a "$RESULTS_DIR/outbox.txt"
}

{
    echo "# $(date -u +%FT%TZ) $(machine_line)"
    echo "# relay $(git -C "$ROOT" describe --always --dirty) $(rustc --version) wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}')"
    echo "# runs=$RUNS settle=${SETTLE}s rust_log=$RUST_LOG duration=${DURATION:-20}s"
} | tee "$RESULTS_DIR/sitting.txt"

for run in $(seq 1 "$RUNS"); do
    echo "=== run $run of $RUNS: redbrick-relay" >&2
    relay_run "$run"
    echo "=== run $run of $RUNS: sink alone" >&2
    "$H/run.sh" sink
done

echo
echo "every run:"
python3 "$H/load/report.py" --compare "$RESULTS_DIR"/*.jsonl
echo
echo "medians over $RUNS runs (spread = (max - min) / median):"
python3 "$ROOT/bench/tools.py" medians --markdown --harness "$H" "$RESULTS_DIR"/*.jsonl \
    | tee "$RESULTS_DIR/medians.txt"
echo "results: $RESULTS_DIR"
