//! The operator commands on the outbox: `deliveries`, `replay` and `purge`.
//!
//! They open the store named by the config file directly, so they work while the relay
//! runs (it notices replayed deliveries within a second) and need none of its secrets.

use std::io::Write;
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
        // Names can be any length: the columns widen to the longest, so rows stay aligned.
        let widths = Widths {
            destination: column_width("DESTINATION", rows.iter().map(|r| &r.destination)),
            rule: column_width("RULE", rows.iter().map(|r| &r.rule)),
        };
        let now = now_ms();
        let header = [
            "ID",
            "STATE",
            "DESTINATION",
            "RULE",
            "ATTEMPTS",
            "AGE",
            "LAST ERROR",
        ];
        let lines = std::iter::once(widths.line(header.map(str::to_owned)))
            .chain(rows.iter().map(|row| widths.line(cells(row, now))));
        // A reader that stops early (`| head`) is not an error, and must not be a panic.
        let mut out = std::io::stdout().lock();
        let _ = lines
            .into_iter()
            .try_for_each(|line| writeln!(out, "{line}"));
        Ok(())
    })
}

/// The widths of the columns that hold names.
struct Widths {
    destination: usize,
    rule: usize,
}

impl Widths {
    fn line(&self, [id, state, destination, rule, attempts, age, error]: [String; 7]) -> String {
        let (dw, rw) = (self.destination, self.rule);
        format!(
            "{id:>8}  {state:<7}  {destination:<dw$}  {rule:<rw$}  \
             {attempts:>8}  {age:>9}  {error}"
        )
    }
}

fn column_width<'a>(header: &str, values: impl Iterator<Item = &'a String>) -> usize {
    values
        .map(|v| v.chars().count())
        .fold(header.len(), usize::max)
}

fn cells(row: &DeliveryRow, now: i64) -> [String; 7] {
    let age = Duration::from_secs(((now - row.created_at).max(0) / 1000) as u64);
    [
        row.id.to_string(),
        row.state.as_str().to_owned(),
        row.destination.clone(),
        row.rule.clone(),
        row.attempts.to_string(),
        humantime::format_duration(age).to_string(),
        row.last_error.as_deref().unwrap_or("-").to_owned(),
    ]
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

/// Opens the outbox named by the config file and runs `work` on it; the exit code says
/// how it went, after any error is printed.
pub(super) fn with_outbox(
    config: &Path,
    work: impl FnOnce(&Outbox) -> Result<(), StoreError>,
) -> ExitCode {
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

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_widen_to_the_longest_name() {
        let names = ["everything-to-console".to_owned(), "review".to_owned()];
        let widths = Widths {
            destination: column_width("DESTINATION", std::iter::empty()),
            rule: column_width("RULE", names.iter()),
        };

        let cells = |rule: &str| ["7", "sent", "console", rule, "1", "5s", "-"].map(str::to_owned);
        let long = widths.line(cells("everything-to-console"));
        let short = widths.line(cells("review"));

        assert_eq!(
            long,
            "       7  sent     console      everything-to-console         1         5s  -"
        );
        assert_eq!(
            long.len(),
            short.len(),
            "rows stay aligned:\n{long}\n{short}"
        );
    }
}
