#!/usr/bin/env bash
# Drain benchmark: how fast the relay empties an outbox of queued deliveries.
#
#   bench/drain.sh [RUNS]      RUNS (default 3) fills and drains; prints each and the median
#
# Each run: starts the relay on a fresh outbox with the workload's config (rate limits
# off, `max_backoff = 1s`) while nothing listens on the sink's port; posts the workload's
# events with fresh ids, 200 per request (bench/tools.py fill), until DELIVERIES (default
# 100000) deliveries are queued; stops the relay and waits 1.5 s, so that every retry
# the failed attempts scheduled is due; starts the sink; then starts the relay again and
# polls the sink's /count until every delivery has arrived (bench/tools.py drain).
#
# Reported: seconds from exec to the first and to the last delivery, deliveries per
# second over the whole (including start-up) and from the first delivery, the relay's
# CPU seconds and peak RSS over the drain. The workload sends 30 % of its deliveries to
# one destination, and each destination's worker sends in order, one at a time, so the
# busiest destination sets the pace.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="${1:-${RUNS:-3}}"
DELIVERIES="${DELIVERIES:-100000}"
export RUST_LOG="${RUST_LOG:-info}"

need curl "apt-get install curl"
need python3 "apt-get install python3"
need ss "apt-get install iproute2"
check_port_free "$RELAY_PORT"
check_port_free "$SINK_PORT"
build_relay
prepare_harness
mkdir -p "$WORK/logs"

RELAY_PID=""
SINK_PID=""
trap 'for p in $RELAY_PID $SINK_PID; do stop_pid "$p"; done' EXIT

fill_outbox() {
    local store="$1" log="$2"
    "$BIN" serve --config "$store/relay.toml" 2>>"$log" &
    RELAY_PID=$!
    wait_http "$RELAY_URL"
    python3 "$ROOT/bench/tools.py" fill "$RELAY_URL" "$H/payloads/bodies.jsonl" \
        --deliveries "$DELIVERIES" > "$store/fill.json"
    stop_pid "$RELAY_PID"; RELAY_PID=""
}

start_sink() {
    SINK_ADDR="127.0.0.1:$SINK_PORT" "$SINK_BIN" >/dev/null 2>&1 &
    SINK_PID=$!
    wait_http "$SINK_URL/count"
}

echo "# $(date -u +%FT%TZ) $(machine_line)"
echo "# relay $(git -C "$ROOT" describe --always --dirty), $DELIVERIES deliveries, rate limits off"
results=()
for run in $(seq 1 "$RUNS"); do
    store="$WORK/drain-$run"; log="$WORK/logs/drain-$run.log"
    rm -rf "$store"; mkdir -p "$store"; : > "$log"
    make_config "$store/relay.db" --max-backoff 1s > "$store/relay.toml"
    fill_outbox "$store" "$log"
    queued="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])' \
        < <(python3 "$ROOT/bench/tools.py" outbox "$store/relay.db"))"
    echo "run $run: filled $(cat "$store/fill.json"); $queued pending"
    sleep 1.5
    start_sink
    result="$(python3 "$ROOT/bench/tools.py" drain --bin "$BIN" --config "$store/relay.toml" \
        --sink "$SINK_URL" --expect "$queued" --log "$log")"
    stop_pid "$SINK_PID"; SINK_PID=""
    echo "run $run: drained $result; outbox $(python3 "$ROOT/bench/tools.py" outbox "$store/relay.db")"
    results+=("$result")
done

printf '%s\n' "${results[@]}" | python3 "$ROOT/bench/tools.py" drain-summary
