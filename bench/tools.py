#!/usr/bin/env python3
"""Helpers for bench/run.sh, bench/drain.sh and bench/startup.sh (standard library only).

usage:
  tools.py fill URL BODIES --deliveries N [--batch B]
      post the workload's events, each with a fresh id, B per request, until the relay
      has accepted at least N deliveries; prints a JSON summary
  tools.py drain --bin BIN --config CFG --sink URL --expect N [--log FILE]
      start the relay, poll the sink's /count until it reaches N, stop the relay;
      prints a JSON summary (seconds to the first and the last delivery, rate, CPU, RSS)
  tools.py startup --bin BIN --config CFG --url URL --probe FILE [--runs R] [--log FILE]
      R times: start the relay, time the first accepted TCP connection and the first
      answer to a webhook; prints each start and the medians
  tools.py drain-summary < DRAIN_RESULTS
      medians of `drain` results, one JSON per line
  tools.py outbox DB
      deliveries per state in an outbox database, as JSON
  tools.py medians --harness DIR RESULTS.jsonl...
      medians and spread per (label, concurrency) over several runs of the harness
"""
import argparse
import http.client
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

POLL_S = 0.002


def post_json(conn, path, body):
    conn.request("POST", path, body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def workload_events(bodies_path):
    with open(bodies_path) as f:
        for line in f:
            if line.strip():
                yield from json.loads(line)["payload"]


def fill(args):
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    events = list(workload_events(args.bodies))
    accepted = requests = sent_events = cursor = 0
    started = time.perf_counter()
    while accepted < args.deliveries:
        batch = []
        for _ in range(args.batch):
            event = dict(events[cursor % len(events)], id=str(uuid.uuid4()))
            batch.append(event)
            cursor += 1
        body = json.dumps({"version": "v1.0", "events": len(batch), "payload": batch})
        status, answer = post_json(conn, url.path, body)
        if status != 200:
            sys.exit(f"fill: the relay answered {status}: {answer[:300]!r}")
        accepted += json.loads(answer)["deliveries"]
        requests += 1
        sent_events += len(batch)
    seconds = time.perf_counter() - started
    print(json.dumps({"requests": requests, "events": sent_events, "deliveries": accepted,
                      "seconds": round(seconds, 3), "events_per_s": round(sent_events / seconds)}))


def sink_count(sink):
    with urllib.request.urlopen(sink + "/count", timeout=5) as response:
        return json.load(response)["count"]


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def start_relay(binary, config, log):
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([binary, "serve", "--config", config], stdout=out, stderr=out)


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def drain(args):
    started = time.perf_counter()
    relay = start_relay(args.bin, args.config, args.log)
    first = None
    try:
        while True:
            count = sink_count(args.sink)
            now = time.perf_counter() - started
            if count and first is None:
                first = now
            if count >= args.expect:
                break
            if now > args.timeout or relay.poll() is not None:
                sys.exit(f"drain: {count} of {args.expect} delivered after {now:.1f} s")
            time.sleep(POLL_S)
        cpu = proc_cpu_seconds(relay.pid)
        hwm = proc_status_kb(relay.pid, "VmHWM")
    finally:
        stop(relay)
    print(json.dumps({
        "delivered": count, "first_s": round(first, 3), "last_s": round(now, 3),
        "per_s_from_start": round(count / now), "per_s_from_first": round(count / (now - first)),
        "relay_cpu_s": round(cpu, 2), "relay_hwm_mib": round(hwm / 1024, 1)}))


def first_connect_and_answer(host, port, path, probe, started, timeout):
    connected = None
    while time.perf_counter() - started < timeout:
        try:
            with socket.create_connection((host, port), timeout=1):
                pass
        except OSError:
            time.sleep(0.0005)
            continue
        connected = connected or time.perf_counter() - started
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            status, _ = post_json(conn, path, probe)
            return connected, time.perf_counter() - started, status
        except (OSError, http.client.HTTPException):
            time.sleep(0.0005)
        finally:
            conn.close()
    sys.exit("startup: the relay did not answer in time")


def startup(args):
    url = urllib.parse.urlsplit(args.url)
    with open(args.probe, "rb") as f:
        probe = f.read()
    runs = []
    for _ in range(args.runs):
        started = time.perf_counter()
        relay = start_relay(args.bin, args.config, args.log)
        try:
            connect, answer, status = first_connect_and_answer(
                url.hostname, url.port, url.path, probe, started, 30)
            rss = proc_status_kb(relay.pid, "VmRSS")
        finally:
            stop(relay)
        runs.append({"connect_ms": round(connect * 1000, 1), "answer_ms": round(answer * 1000, 1),
                     "status": status, "rss_mib": round(rss / 1024, 1)})
    for i, run in enumerate(runs, 1):
        print(f"  start {i:2}: connect {run['connect_ms']:6.1f} ms, answer {run['answer_ms']:6.1f} ms"
              f" (HTTP {run['status']}, RSS {run['rss_mib']} MiB)")
    answers = [r["answer_ms"] for r in runs]
    print(f"median: connect {statistics.median(r['connect_ms'] for r in runs)} ms, "
          f"answer {statistics.median(answers)} ms (min {min(answers)}, max {max(answers)}), "
          f"RSS {statistics.median(r['rss_mib'] for r in runs)} MiB")


def drain_summary(args):
    runs = [json.loads(line) for line in sys.stdin if line.strip()]
    for key in ("per_s_from_start", "per_s_from_first", "last_s", "relay_cpu_s", "relay_hwm_mib"):
        values = [r[key] for r in runs]
        print(f"{key:>18}: median {statistics.median(values)} (min {min(values)}, max {max(values)})")


def outbox(args):
    with sqlite3.connect(f"file:{args.db}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall()
    counts = {"pending": 0, "sent": 0, "dead": 0}
    counts.update(dict(rows))
    print(json.dumps(counts))


def medians(args):
    sys.path.insert(0, os.path.join(args.harness, "load"))
    import report  # the harness's own derivation of req/s, latencies and checks

    groups = {}
    for path in args.results:
        for record in report.load(path):
            d = report.derive(record)
            groups.setdefault((d["label"], d["c"]), []).append(d)
    head = ["run", "conc", "n", "req/s median", "req/s min-max", "spread %", "p99 ms median",
            "p99 ms min-max", "deliv/req", "relay CPU%", "peak RSS MiB", "idle RSS MiB"]
    rows = [median_row(label, c, ds) for (label, c), ds in sorted(groups.items())]
    print(report.text_table(head, rows))
    if args.markdown:
        print()
        print(report.md_table(head, rows))


def median_row(label, c, ds):
    rps = [d["rps"] for d in ds]
    p99 = [d["p99_ms"] for d in ds]
    med = statistics.median(rps)
    spread = 100 * (max(rps) - min(rps)) / med if med else 0
    flags = "" if all(d["deliv_ok"] for d in ds) else " (!)"
    return [label, str(c), str(len(ds)), f"{med:.0f}", f"{min(rps):.0f}-{max(rps):.0f}",
            f"{spread:.0f}", f"{statistics.median(p99):.2f}", f"{min(p99):.2f}-{max(p99):.2f}",
            f"{statistics.median(d['per_req'] for d in ds):.3f}{flags}",
            f"{statistics.median(d['relay_cpu_pct'] for d in ds):.0f}",
            f"{max(d['hwm_mib'] for d in ds):.0f}",
            f"{max(d['rss_idle_mib'] for d in ds):.1f}"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fill")
    p.add_argument("url")
    p.add_argument("bodies")
    p.add_argument("--deliveries", type=int, required=True)
    p.add_argument("--batch", type=int, default=200)
    p = sub.add_parser("drain")
    for name in ("--bin", "--config", "--sink"):
        p.add_argument(name, required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--log")
    p = sub.add_parser("startup")
    for name in ("--bin", "--config", "--url", "--probe"):
        p.add_argument(name, required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--log")
    sub.add_parser("drain-summary")
    p = sub.add_parser("outbox")
    p.add_argument("db")
    p = sub.add_parser("medians")
    p.add_argument("--harness", required=True)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("results", nargs="+")
    return parser.parse_args()


def main():
    args = parse_args()
    commands = {"fill": fill, "drain": drain, "drain-summary": drain_summary,
                "startup": startup, "outbox": outbox, "medians": medians}
    commands[args.command](args)


if __name__ == "__main__":
    main()
