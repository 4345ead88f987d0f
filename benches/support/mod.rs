//! What the benchmarks share: events and bodies shaped like the shared load workload
//! (`bench/harness/payloads`), and criterion settings that keep `cargo bench` short.
//!
//! Each bench binary includes this module and uses part of it.
#![allow(dead_code)] // each bench binary uses a different part of this module

use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::Criterion;
use redbrick_relay::event::{Event, EventKind};
use serde_json::json;

/// Short runs: the whole `cargo bench` stays within a few minutes on 2 cores.
pub fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args()
}

/// A single-event body of the workload (its first line).
pub const ONE_EVENT: &str = include_str!("../data/one-event.json");

/// A batched body of the workload: two stage events and a deletion (its line 14).
pub const THREE_EVENTS: &str = include_str!("../data/three-events.json");

/// Stage names of the workload.
pub const STAGES: [&str; 5] = ["Label", "Review_1", "Review_2", "Output", "Failed_Review_1"];

/// An event type drawn like the workload's mix: mostly stage events.
pub fn kind(rng: &mut fastrand::Rng) -> EventKind {
    match rng.u8(0..12) {
        0..=6 => EventKind::TaskEnteredStage,
        7..=9 => EventKind::TaskCreated,
        _ => EventKind::TaskDeleted,
    }
}

/// A project id of the form RedBrick uses, numbered so pools are reproducible.
pub fn project_id(number: usize) -> String {
    format!("00000000-0000-4000-8000-{number:012x}")
}

/// An event of `kind` in `project`, with a stage for stage events and a task name for
/// the others, as RedBrick sends them.
pub fn event(kind: EventKind, project: &str, stage: &str) -> Event {
    let staged = kind == EventKind::TaskEnteredStage;
    Event {
        kind,
        id: "7d820321-e780-4bc4-872f-9bfbb9dda14d".into(),
        timestamp: json!(1_764_720_056_912_i64),
        time: Utc.timestamp_millis_opt(1_764_720_056_912).unwrap(),
        org_id: "1e3fdaf5-094f-4958-9a3a-ddd55e8e561b".into(),
        project_id: project.into(),
        task_id: "ee616630-cafa-4baa-9216-42b14adf8007".into(),
        task_name: (!staged).then(|| "CT_abdomen_88011.nii.gz".into()),
        stage: staged.then(|| stage.into()),
        updated_by: Some("reviewer1@example.com".into()),
    }
}
