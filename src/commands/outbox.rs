//! The operator commands on the outbox: `deliveries`, `replay` and `purge`.
//!
//! They open the store named by the config file directly, so they work while the relay
//! runs (it notices replayed deliveries within a second) and need none of its secrets.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{DeliveriesArgs, PurgeArgs, ReplayArgs};
use crate::config::Config;
use crate::outbox::{DeliveryRow, Outbox, State, StoreError};

/// Prints a table of deliveries, newest first.
pub fn deliveries(config: &Path, args: &DeliveriesArgs) -> ExitCode {
    with_outbox(config, |outbox| {
        let rows = outbox.list(args.state, args.destination.as_deref(), args.limit)?;
        println!(
            "{:>8}  {:<7}  {:<16}  {:<20}  {:>8}  {:>9}  LAST ERROR",
            "ID", "STATE", "DESTINATION", "RULE", "ATTEMPTS", "AGE"
        );
        let now = now_ms();
        for row in &rows {
            println!("{}", format_row(row, now));
        }
        Ok(())
    })
}

fn format_row(row: &DeliveryRow, now: i64) -> String {
    let age = Duration::from_secs(((now - row.created_at).max(0) / 1000) as u64);
    format!(
        "{:>8}  {:<7}  {:<16}  {:<20}  {:>8}  {:>9}  {}",
        row.id,
        row.state.as_str(),
        row.destination,
        row.rule,
        row.attempts,
        humantime::format_duration(age).to_string(),
        row.last_error.as_deref().unwrap_or("-"),
    )
}

/// Puts dead letters back in the queue, by id or all at once.
///
/// Exits 1 when an id given was not replayed (no such delivery, or not dead), saying
/// why for each on standard error.
pub fn replay(config: &Path, args: &ReplayArgs) -> ExitCode {
    let mut skipped = Vec::new();
    let code = with_outbox(config, |outbox| {
        let replayed = if args.dead {
            outbox.replay_dead(args.destination.as_deref())?
        } else {
            let outcome = outbox.replay(&args.ids)?;
            skipped = outcome.skipped;
            outcome.count
        };
        println!("{replayed} deliveries back in the queue");
        Ok(())
    });
    for (id, reason) in &skipped {
        eprintln!("error: delivery {id} not replayed: {reason}");
    }
    if skipped.is_empty() {
        code
    } else {
        ExitCode::FAILURE
    }
}

/// Deletes sent deliveries and dead letters past their age.
pub fn purge(config: &Path, args: &PurgeArgs) -> ExitCode {
    with_outbox(config, |outbox| {
        let now = now_ms();
        let wanted = [
            (State::Sent, args.sent_older_than),
            (State::Dead, args.dead_older_than),
        ];
        for (state, age) in wanted {
            if let Some(age) = age {
                let purged = outbox.purge(state, age.as_millis() as i64, now)?;
                println!("{purged} {state} deliveries deleted");
            }
        }
        Ok(())
    })
}

fn with_outbox(config: &Path, work: impl FnOnce(&Outbox) -> Result<(), StoreError>) -> ExitCode {
    let path = match Config::store_path(config) {
        Ok(path) => path,
        Err(err) => {
            super::report(&err);
            return ExitCode::from(2);
        }
    };
    if !path.exists() {
        eprintln!(
            "error: no outbox at `{}`: has the relay run with this config?",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    match Outbox::open(&path).and_then(|outbox| work(&outbox)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
