# Shared by bench/run.sh, bench/drain.sh and bench/startup.sh; sourced, not run.
#
# Environment (defaults):
#   HARNESS=<repo>/bench/harness   the load harness: sink, payloads, wrk script, report
#                                    (another copy of it may be named here, read-only or not)
#   WORK=${TMPDIR:-/tmp}/redbrick-relay-bench   writable scratch: harness copy, stores, logs
#   RELAY_PORT=8080  SINK_PORT=18080

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/bench/harness}"
WORK="${WORK:-${TMPDIR:-/tmp}/redbrick-relay-bench}"
RELAY_PORT="${RELAY_PORT:-8080}"
export SINK_PORT="${SINK_PORT:-18080}"
RELAY_URL="http://127.0.0.1:$RELAY_PORT/webhook"
SINK_URL="http://127.0.0.1:$SINK_PORT"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/redbrick-relay"
H="$WORK/harness"
SINK_BIN="$H/sink/target/release/bench-sink"

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }; }

# Builds the relay in release, before any measurement: never build during one.
build_relay() {
    need cargo "rustup"
    echo "building redbrick-relay (cargo build --release --locked)..." >&2
    (cd "$ROOT" && cargo build --release --locked --quiet)
}

# Copies the harness to $H, so that its build, payloads and results never land in the
# source tree (or a read-only copy), generates its payloads and builds its sink once.
# Our load/bodies.lua replaces the harness's: the same bodies with fresh event ids.
prepare_harness() {
    if [ ! -x "$HARNESS/run.sh" ] || [ ! -f "$HARNESS/payloads/gen_payloads.py" ]; then
        echo "no load harness at \`$HARNESS\` (run.sh, payloads/, sink/): set HARNESS" >&2
        exit 1
    fi
    mkdir -p "$WORK"
    if [ ! -d "$H" ] || ! diff -rq -x target -x results -x bodies.lua -x bodies.jsonl \
        "$HARNESS" "$H" >/dev/null; then
        rm -rf "$H"
        cp -r "$HARNESS" "$H"
        chmod -R u+w "$H"
    fi
    cp "$ROOT/bench/load/unique_ids.lua" "$H/load/bodies.lua"
    if [ ! -s "$H/payloads/bodies.jsonl" ]; then
        python3 "$H/payloads/gen_payloads.py" >/dev/null
    fi
    if [ ! -x "$SINK_BIN" ]; then
        echo "building the sink..." >&2
        cargo build --release --quiet --manifest-path "$H/sink/Cargo.toml"
    fi
}

# Refuses to start when something already listens on a port the benchmark needs.
check_port_free() {
    if ss -Hltn "sport = :$1" | grep -q .; then
        echo "port $1 is in use: stop whatever listens there" >&2; exit 1
    fi
}

# make_config STORE [make_config.py options...] > relay.toml
make_config() {
    local store="$1"; shift
    python3 "$ROOT/bench/make_config.py" --store "$store" --rules-json "$H/payloads/rules.json" \
        --listen "127.0.0.1:$RELAY_PORT" --path /webhook --sink "$SINK_URL" "$@"
}

# Waits until $1 answers any HTTP status (curl's 000 means no answer yet).
wait_http() {
    local url="$1" i
    for i in $(seq 1 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" != 000 ] && return 0
        sleep 0.05
    done
    echo "nothing answers at $url" >&2; exit 1
}

# Sends SIGTERM to a process this script started and waits for it.
stop_pid() {
    local pid="$1"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

machine_line() {
    echo "nproc=$(nproc) cpu=\"$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)\" kernel=$(uname -r)"
}
