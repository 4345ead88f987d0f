//! The durable outbox: committing a batch of 64 events (`outbox::Outbox::accept`) and
//! recording deliveries as sent (`mark_sent`), into a database in a temporary folder.
//!
//! Every commit is synced to disk, so these figures are mostly the disk's fsync time:
//! compare them on the same machine only. `mark_sent/64_concurrent` shows what group
//! commit buys when a worker's marks overlap, as they do while a backlog drains.

mod support;

use std::cell::Cell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use redbrick_relay::outbox::{IncomingEvent, NewDelivery, Outbox};
use tokio::runtime::Runtime;

const BATCH: usize = 64;

/// A Slack body of the workload's size.
const BODY: &[u8] = concat!(
    r#"{"text":"Task <https://app.redbrickai.com/1e3fdaf5-094f-4958-9a3a-ddd55e8e561b/"#,
    r#"projects/c9d3f8f2-0a91-48f3-86bd-3e6ece68288c/tasks/26240f02-c74f-4880-9985-718589fe547d"#,
    r#"|26240f02-c74f-4880-9985-718589fe547d> entered stage *Review_1* "#,
    r#"(by reviewer3@example.com) [review1-imaging]"}"#,
)
.as_bytes();

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// `count` fresh events, one delivery each; ids continue from `next`.
fn batch(next: &Cell<u64>, count: usize) -> Vec<IncomingEvent> {
    (0..count)
        .map(|_| {
            let id = next.replace(next.get() + 1);
            IncomingEvent {
                event_id: format!("00000000-0000-4000-8000-{id:012x}"),
                deliveries: vec![NewDelivery {
                    rule: "review1-imaging".into(),
                    destination: "review1-imaging".into(),
                    body: BODY.to_vec(),
                }],
            }
        })
        .collect()
}

fn accept(c: &mut Criterion) {
    let (rt, dir) = (runtime(), tempfile::tempdir().expect("a temporary folder"));
    let outbox = Outbox::open(&dir.path().join("relay.db")).expect("the outbox opens");
    let next = Cell::new(0);

    let mut group = c.benchmark_group("outbox");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("accept/64_events", |b| {
        b.iter_batched(
            || batch(&next, BATCH),
            |events| {
                rt.block_on(outbox.accept(events))
                    .expect("the commit succeeds")
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Times marking `iters` deliveries as sent, `at_once` concurrently, after queueing them.
fn time_marks(
    rt: &Runtime,
    outbox: &Outbox,
    next: &Cell<u64>,
    iters: u64,
    at_once: usize,
) -> Duration {
    let first = next.get() as i64 + 1;
    for _ in 0..iters {
        rt.block_on(outbox.accept(batch(next, at_once)))
            .expect("the commit succeeds");
    }
    let started = Instant::now();
    for chunk in 0..iters as i64 {
        let ids = (0..at_once as i64).map(|i| first + chunk * at_once as i64 + i);
        let marks = ids.map(|id| outbox.mark_sent(id, 0));
        for result in rt.block_on(join_all(marks)) {
            result.expect("the delivery is pending");
        }
    }
    started.elapsed()
}

fn mark_sent(c: &mut Criterion) {
    let (rt, dir) = (runtime(), tempfile::tempdir().expect("a temporary folder"));
    let outbox = Outbox::open(&dir.path().join("relay.db")).expect("the outbox opens");
    let next = Cell::new(0);

    let mut group = c.benchmark_group("outbox");
    group.sample_size(10);
    for (name, at_once) in [("mark_sent/one", 1), ("mark_sent/64_concurrent", BATCH)] {
        group.throughput(Throughput::Elements(at_once as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| time_marks(&rt, &outbox, &next, iters, at_once))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::quick();
    targets = accept, mark_sent
}
criterion_main!(benches);
