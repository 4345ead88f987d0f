//! Message rendering: the shipped default templates for Slack and Teams
//! (`render::Renderer`), and the whole of `route::route` for one event (matching, the
//! template context, rendering and the destinations' HTTP bodies).

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use redbrick_relay::config::Config;
use redbrick_relay::event::{Event, EventKind};
use redbrick_relay::links::Links;
use redbrick_relay::render::{event_context, with_route, Markup, Renderer};
use redbrick_relay::route::route;
use redbrick_relay::tasks::Recall;

const SHIPPED: [(&str, &str); 3] = [
    (
        "task-created",
        include_str!("../templates/task-created.hbs"),
    ),
    (
        "task-entered-stage",
        include_str!("../templates/task-entered-stage.hbs"),
    ),
    (
        "task-deleted",
        include_str!("../templates/task-deleted.hbs"),
    ),
];

/// One rule, default templates, to a Slack and a Teams destination: two messages.
const CONFIG: &str = r#"
[destinations.slack]
kind = "slack"
url = "https://hooks.slack.test/services/T/B/x"

[destinations.teams]
kind = "teams"
url = "https://teams.test/workflows/x"

[[rules]]
name = "review-ready"
events = ["TASK_ENTERED_STAGE"]
stages = ["Review_*"]
to = ["slack", "teams"]
"#;

fn stage_event() -> Event {
    support::event(
        EventKind::TaskEnteredStage,
        "c9d3f8f2-0a91-48f3-86bd-3e6ece68288c",
        "Review_1",
    )
}

fn templates(c: &mut Criterion) {
    let mut renderer = Renderer::new();
    for (name, source) in SHIPPED {
        renderer
            .add(name, source)
            .expect("the shipped templates compile");
    }
    let links = Links::new("https://app.redbrickai.com");
    let event = stage_event();
    let context = with_route(
        event_context(&event, &Recall::default(), None, &links),
        "review-ready",
        "x",
    );

    let mut group = c.benchmark_group("render");
    group.bench_function("context", |b| {
        b.iter(|| {
            with_route(
                event_context(black_box(&event), &Recall::default(), None, &links),
                "r",
                "x",
            )
        })
    });
    for (name, markup) in [("slack", Markup::Slack), ("teams", Markup::Teams)] {
        group.bench_function(name, |b| {
            b.iter(|| renderer.render("task-entered-stage", markup, black_box(&context)))
        });
    }
    group.finish();
}

fn whole_route(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder can be created");
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, CONFIG).expect("the config file can be written");
    let config = Config::load_with_env(&path, |_| None).expect("the config is valid");
    let event = stage_event();

    c.bench_function("route/slack_and_teams", |b| {
        b.iter(|| route(&config, black_box(&event), &Recall::default()))
    });
}

criterion_group! {
    name = benches;
    config = support::quick();
    targets = templates, whole_route
}
criterion_main!(benches);
