//! Rule matching (`rules::RuleSet::matching`) with 10, 1,000 and 10,000 rules.
//!
//! Rules are spread the way real configs are: each takes one event type, 1 to 5 project
//! ids and, for stage events, one stage. The number of projects grows with the rules (an
//! organisation with 10,000 rules has thousands of projects) at the shared workload's
//! density: about two rule entries per project, and half the events from projects no
//! rule names. Each iteration matches the same 64 events, drawn like the workload; the
//! figure to read is the time per event (criterion's `elem/s`), which must not grow by
//! more than 2x from 10 to 10,000 rules.
//!
//! `match_dense` is the adversarial case: 10,000 rules over 20 projects (as many as the
//! workload has), where hundreds of rules share each (event type, project) and only the
//! stage tells them apart.

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redbrick_relay::event::{Event, EventKind};
use redbrick_relay::rules::{Pattern, Rule, RuleSet, TemplateChoice};

/// Events matched per iteration.
const EVENTS: usize = 64;

/// `count` rules over `projects` projects, reproducibly.
fn rules(count: usize, projects: usize) -> RuleSet {
    let mut rng = fastrand::Rng::with_seed(6);
    let rules = (0..count)
        .map(|index| {
            let kind = support::kind(&mut rng);
            let stages = (kind == EventKind::TaskEnteredStage)
                .then(|| vec![Pattern::new(support::STAGES[rng.usize(..5)])]);
            let ids = (0..rng.usize(1..=5))
                .map(|_| support::project_id(rng.usize(..projects)))
                .collect();
            Rule {
                name: format!("rule-{index}"),
                events: Some(vec![kind]),
                projects: Some(ids),
                exclude_projects: Vec::new(),
                stages,
                exclude_stages: Vec::new(),
                from_stages: None,
                to: vec!["slack".into()],
                template: TemplateChoice::Default,
                stop: false,
                group: None,
            }
        })
        .collect();
    RuleSet::new(rules)
}

/// The events each iteration matches: half of them from the rules' projects.
fn events(projects: usize) -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..EVENTS)
        .map(|_| {
            let project = support::project_id(rng.usize(..2 * projects));
            let stage = support::STAGES[rng.usize(..5)];
            support::event(support::kind(&mut rng), &project, stage)
        })
        .collect()
}

fn match_all(rules: &RuleSet, events: &[Event]) -> usize {
    events
        .iter()
        .map(|e| black_box(rules.matching(e, None)).len())
        .sum()
}

fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for count in [10, 1_000, 10_000] {
        let projects = count * 3 / 2;
        let (rules, events) = (rules(count, projects), events(projects));
        group.bench_with_input(BenchmarkId::new("rules", count), &count, |b, _| {
            b.iter(|| match_all(&rules, &events))
        });
    }
    group.finish();
}

fn dense(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_dense");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let (rules, events) = (rules(10_000, 20), events(20));
    group.bench_function("rules/10000_over_20_projects", |b| {
        b.iter(|| match_all(&rules, &events))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::quick();
    targets = scaling, dense
}
criterion_main!(benches);
