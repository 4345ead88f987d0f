#!/usr/bin/env python3
"""Writes a relay.toml that configures redbrick-relay exactly like the shared workload.

The workload (bench/harness/payloads/rules.json) has 10 rules and
one Slack-shaped template per event type. Each rule becomes a `[[rules]]` entry with its
events, stage and projects, sending to its own `slack` destination at SINK + target, with
the template's inner text as inline `text` (the relay builds the `{"text": ...}` JSON
itself) and the harness's variable names mapped to the relay's.

`--total-rules N` adds synthetic rules up to N (for the startup benchmark). They are
spread like real configs: each names 1-5 projects from a pool that grows with the rule
count, an event type and, for stage events, one stage. Their projects never overlap the
workload's, so the workload's deliveries per request stay the same.

usage: make_config.py --store PATH [--rules-json PATH] [--listen ADDR] [--path PATH]
                      [--sink URL] [--total-rules N] [--max-backoff DURATION] > relay.toml
"""
import argparse
import json
import os
import random
import re
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))

# The harness names its template fields after RedBrick's JSON; the relay's context uses
# snake case (README.md, "Templates").
VARIABLES = {
    "orgId": "org_id",
    "projectId": "project_id",
    "taskId": "task_id",
    "stageName": "stage",
    "updatedBy": "updated_by",
    "taskName": "task_name",
    "rule": "rule",
    "event": "event",
    "id": "event_id",
    "timestamp": "timestamp",
}

STAGES = ["Label", "Review_1", "Review_2", "Output", "Failed_Review_1"]
KINDS = ["TASK_ENTERED_STAGE"] * 7 + ["TASK_CREATED"] * 3 + ["TASK_DELETED"] * 2


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_rules = os.path.join(HERE, "harness", "payloads", "rules.json")
    parser.add_argument("--rules-json", default=default_rules)
    parser.add_argument("--store", required=True, help="the outbox database file")
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--path", default="/webhook")
    parser.add_argument("--sink", default="http://127.0.0.1:18080")
    parser.add_argument("--total-rules", type=int, default=0)
    parser.add_argument("--max-backoff", help="e.g. 1s: caps retry waits (drain benchmark)")
    return parser.parse_args()


def inner_text(template):
    """The `text` of a `{"text": ...}` template, with the relay's variable names."""
    text = json.loads(template)["text"]

    def rename(match):
        name = match.group(1)
        if name not in VARIABLES:
            sys.exit(f"make_config.py: template variable `{name}` has no relay equivalent")
        return "{{" + VARIABLES[name] + "}}"

    return re.sub(r"\{\{\s*([A-Za-z_]+)\s*\}\}", rename, text)


def toml_str(value):
    # A JSON string is a valid TOML basic string for the characters that occur here.
    return json.dumps(value, ensure_ascii=False)


def toml_list(values):
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def rule_block(name, event, stage, projects, destination, text):
    lines = [
        "[[rules]]",
        f"name = {toml_str(name)}",
        f"events = {toml_list([event])}",
        f"projects = {toml_list(projects)}",
    ]
    if stage is not None:
        lines.append(f"stages = {toml_list([stage])}")
    lines += [f"to = {toml_list([destination])}", f"text = {toml_str(text)}", ""]
    return "\n".join(lines)


def destination_block(name, url):
    # rate = 0: no rate limit, so the drain measures the relay, not Slack's quota.
    return f"[destinations.{toml_str(name)}]\nkind = \"slack\"\nurl = {toml_str(url)}\nrate = 0\n"


def workload(spec, sink):
    texts = {event: inner_text(t) for event, t in spec["templates"].items()}
    rules, destinations = [], []
    for rule in spec["rules"]:
        name = rule["name"]
        text = texts[rule["event"]]
        rules.append(rule_block(name, rule["event"], rule.get("stage"), rule["projects"], name, text))
        destinations.append(destination_block(name, sink + rule["target"]))
    return rules, destinations, texts


def synthetic(count, texts, sink, taken):
    """`count` extra rules over count/10 destinations and max(20, count/5) projects, none
    of them in `taken` (the workload's projects)."""
    rng = random.Random(61)
    pool = []
    while len(pool) < max(20, count // 5):
        project = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if project not in taken:
            pool.append(project)
    n_destinations = max(1, count // 10) if count else 0
    rules = []
    for index in range(count):
        event = rng.choice(KINDS)
        stage = rng.choice(STAGES) if event == "TASK_ENTERED_STAGE" else None
        projects = rng.sample(pool, rng.randint(1, 5))
        destination = f"synthetic-{index % n_destinations:04d}"
        rules.append(rule_block(f"synthetic-{index:05d}", event, stage, projects, destination, texts[event]))
    destinations = [
        destination_block(f"synthetic-{d:04d}", f"{sink}/services/T0RBAI/S{d:04d}/synthetic")
        for d in range(n_destinations)
    ]
    return rules, destinations


def main():
    args = parse_args()
    with open(args.rules_json) as f:
        spec = json.load(f)
    rules, destinations, texts = workload(spec, args.sink)
    extra = max(0, args.total_rules - len(rules))
    taken = set(spec["projects"].values())
    more_rules, more_destinations = synthetic(extra, texts, args.sink, taken)

    out = [
        "# Generated by bench/make_config.py: the shared benchmark workload.",
        f"# {len(rules)} workload rules + {extra} synthetic rules.",
        "",
        "[server]",
        f"listen = {toml_str(args.listen)}",
        f"path = {toml_str(args.path)}",
        "",
        "[store]",
        f"path = {toml_str(args.store)}",
        "",
    ]
    if args.max_backoff:
        out += ["[delivery]", f"max_backoff = {toml_str(args.max_backoff)}", ""]
    out += destinations + more_destinations + rules + more_rules
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
