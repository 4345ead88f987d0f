//! `render`: what an event would send, printed, with nothing sent; with `--explain`, also
//! why each rule matched or not and when each digest fires next.
//!
//! Parsing, matching and rendering are the `event` and `route` code `serve` runs; this
//! only reads the event file and prints what they produce.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;

use crate::cli::RenderArgs;
use crate::config::Config;
use crate::event::{parse_body, Event};
use crate::outbox::{Outbox, StoreError};
use crate::route::route;
use crate::tasks::{self, Recall};

/// Prints every message of every event; exits 1 when the body is invalid or a message
/// fails to render.
pub fn run(path: &Path, args: &RenderArgs) -> ExitCode {
    let config = match super::load_or_report(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let body = match read_event(&args.event) {
        Ok(body) => body,
        Err(err) => {
            eprintln!("error: cannot read `{}`: {err}", args.event.display());
            return ExitCode::FAILURE;
        }
    };
    let batch = match parse_body(&body, Utc::now()) {
        Ok(batch) => batch,
        Err(err) => {
            eprintln!("error: not a RedBrick webhook body: {err}");
            return ExitCode::FAILURE;
        }
    };

    for skipped in &batch.skipped {
        println!(
            "payload[{}]: unknown event type `{}`, skipped",
            skipped.index, skipped.event
        );
    }
    let recalls = match recall(&config, &batch.events) {
        Ok(recalls) => recalls,
        Err(err) => {
            eprintln!("error: cannot read the task memory: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for (index, (event, recall)) in batch.events.iter().zip(&recalls).enumerate() {
        failed |= print_event(&config, index, event, recall, args.explain);
    }
    if args.explain {
        print_digests(&config, Utc::now().timestamp_millis());
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read_event(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body)?;
        return Ok(body);
    }
    std::fs::read(path)
}

/// What the relay would remember before each event: the store's memory when the relay has
/// run with this config, and the file's earlier events in any case.
fn recall(config: &Config, events: &[Event]) -> Result<Vec<Recall>, StoreError> {
    let path = &config.delivery.store_path;
    if !path.exists() {
        return Ok(tasks::recall_all(HashMap::new(), events));
    }
    tasks::recall_blocking(&Outbox::open(path)?, events)
}

/// Says for every rule whether it matched and, for a transition rule, which move it saw.
fn print_verdicts(config: &Config, event: &Event, recall: &Recall) {
    let previous = recall.previous_stage.as_deref();
    for (rule, verdict) in config.rules.explain(event, previous) {
        match (verdict, previous, &event.stage) {
            (Ok(()), Some(from), Some(to)) if rule.from_stages.is_some() => {
                println!("  rule `{}`: matched: move `{from}` -> `{to}`", rule.name);
            }
            (Ok(()), _, _) => println!("  rule `{}`: matched", rule.name),
            (Err(miss), _, _) => println!("  rule `{}`: no match: {miss}", rule.name),
        }
    }
}

/// Says when each digest fires next: events do not trigger digests, but a user checking
/// what the relay will send wants to know when.
fn print_digests(config: &Config, now: i64) {
    for digest in &config.digests {
        let next = digest.schedule.next_local(now);
        let to = digest.to.join(", ");
        println!("digest `{}`: next at {next}, to {to}", digest.name);
    }
}

/// Prints one event's messages; returns whether any failed to render.
fn print_event(
    config: &Config,
    index: usize,
    event: &Event,
    recall: &Recall,
    explain: bool,
) -> bool {
    println!("event {index}: {} {}", event.kind, event.id);
    if explain {
        print_verdicts(config, event, recall);
    }
    let routed = route(config, event, recall);
    if !routed.matched {
        println!("  no rule matched");
    }
    for message in &routed.messages {
        let kind = &config.targets[&message.destination].destination;
        println!(
            "--- rule `{}` to `{}` ({:?})",
            message.rule, message.destination, kind.kind
        );
        println!("{}", String::from_utf8_lossy(&message.body));
    }
    for held in &routed.held {
        let window = humantime::format_duration(held.window);
        println!(
            "--- rule `{}`: held for a roll-up sent {window} after its first event",
            held.rule
        );
    }
    for failure in &routed.failures {
        eprintln!("error: {failure}");
    }
    !routed.failures.is_empty()
}
