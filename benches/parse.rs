//! Envelope parsing: a request body to a validated batch (`event::parse_body`).

mod support;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redbrick_relay::event::parse_body;
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    let now = Utc::now();
    let mut group = c.benchmark_group("parse");
    for (name, body, events) in [
        ("one_event", support::ONE_EVENT, 1),
        ("three_events", support::THREE_EVENTS, 3),
    ] {
        group.throughput(Throughput::Elements(events));
        group.bench_function(name, |b| {
            b.iter(|| parse_body(black_box(body.as_bytes()), now).expect("the body is valid"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::quick();
    targets = parse
}
criterion_main!(benches);
