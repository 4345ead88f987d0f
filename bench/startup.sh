#!/usr/bin/env bash
# Start-up benchmark: exec to ready with 1,000 rules.
#
#   bench/startup.sh [RUNS]    RUNS (default 20) starts
#
# Generates a config with the workload's 10 rules plus 990 synthetic ones over 99 more
# destinations (bench/make_config.py --total-rules), each rule with its own inline
# template, which every start compiles and tries on sample events. Measures:
#   - `redbrick-relay check` (load and validate everything serve loads) with hyperfine,
#     when it is installed (apt-get install hyperfine);
#   - `serve`: from exec to the first accepted TCP connection, and to the first answer
#     to a real webhook (the harness's probe.json, committed to the outbox), which is
#     the readiness that counts. The first start creates the outbox; later ones reopen it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS="${1:-${RUNS:-20}}"
RULES="${RULES:-1000}"
export RUST_LOG="${RUST_LOG:-info}"

need python3 "apt-get install python3"
need ss "apt-get install iproute2"
check_port_free "$RELAY_PORT"
build_relay
prepare_harness
mkdir -p "$WORK/logs"

store="$WORK/startup"
rm -rf "$store"; mkdir -p "$store"
make_config "$store/relay.db" --total-rules "$RULES" > "$store/relay.toml"
echo "# $(date -u +%FT%TZ) $(machine_line)"
echo "# relay $(git -C "$ROOT" describe --always --dirty); $("$BIN" check --config "$store/relay.toml")"

if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --warmup 3 --runs "$RUNS" -N "$BIN check --config $store/relay.toml"
else
    echo "hyperfine not installed: skipping the timing of \`check\`" >&2
fi

echo "serve, exec to ready ($RUNS starts):"
python3 "$ROOT/bench/tools.py" startup --bin "$BIN" --config "$store/relay.toml" \
    --url "$RELAY_URL" --probe "$H/payloads/probe.json" --runs "$RUNS" \
    --log "$WORK/logs/startup.log"
