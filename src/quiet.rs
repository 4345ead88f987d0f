//! Quiet hours: when a destination takes no messages, and what to send when they end.
//!
//! A destination with `quiet = "20:00-08:00"` holds its messages from 20:00 to 08:00 on
//! its zone's clock, starting on `quiet_days`. Nothing is dropped: the delivery worker
//! leaves them in the outbox, and when the quiet time ends, the messages that arrived
//! during it go out as one message if the destination can merge them within its size
//! limit (one by one otherwise). Merging bodies is the `destination` module's.

use chrono::{Datelike, Days as DayCount, NaiveTime};
use chrono_tz::Tz;

use crate::digests::{local_date, resolve, Days};
use crate::outbox::Pending;

/// The rule name a merged delivery carries: it is no single rule's message any more, and
/// it is never merged again.
pub const MERGED_RULE: &str = "quiet-hours";

/// A destination's quiet hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiet {
    /// Local time the quiet starts.
    pub from: NaiveTime,
    /// Local time it ends: the next day when not after `from`.
    pub until: NaiveTime,
    /// The weekdays a quiet time starts on.
    pub days: Days,
    /// The zone the times and days are read in.
    pub zone: Tz,
}

impl Quiet {
    /// Parses `HH:MM-HH:MM`; the error says what is expected.
    pub fn times(text: &str) -> Result<(NaiveTime, NaiveTime), String> {
        let time = |t: &str| {
            let t = t.trim();
            let shaped = t.len() == 5 && t.as_bytes()[2] == b':';
            NaiveTime::parse_from_str(t, "%H:%M")
                .ok()
                .filter(|_| shaped)
        };
        let parsed = text.split_once('-').map(|(a, b)| (time(a), time(b)));
        match parsed {
            Some((Some(from), Some(until))) if from != until => Ok((from, until)),
            _ => Err(format!(
                "`{text}` is not a quiet time such as `20:00-08:00` (start and end differ)"
            )),
        }
    }

    /// The quiet times (start, end in unix ms) that start up to a week before `now`.
    fn periods(&self, now: i64) -> Vec<(i64, i64)> {
        let today = local_date(now, self.zone);
        let mut periods = Vec::new();
        for back in (0..=7).rev() {
            let Some(day) = today.checked_sub_days(DayCount::new(back)) else {
                continue;
            };
            if !self.days.has(day.weekday()) {
                continue;
            }
            let end_day = if self.until > self.from {
                Some(day)
            } else {
                day.checked_add_days(DayCount::new(1))
            };
            let Some(end_day) = end_day else { continue };
            let start = resolve(self.zone, day.and_time(self.from));
            let end = resolve(self.zone, end_day.and_time(self.until));
            periods.push((start, end));
        }
        periods
    }

    /// The end (unix ms) of the quiet time `now` is in, if it is in one.
    pub fn ends_at(&self, now: i64) -> Option<i64> {
        let periods = self.periods(now);
        let within = periods
            .iter()
            .filter(|(start, end)| *start <= now && now < *end);
        within.map(|(_, end)| *end).max()
    }

    /// The latest quiet time (start, end) that has ended by `now`.
    pub fn last_ended(&self, now: i64) -> Option<(i64, i64)> {
        let periods = self.periods(now);
        periods
            .into_iter()
            .filter(|(_, end)| *end <= now)
            .max_by_key(|(_, end)| *end)
    }
}

/// The deliveries at the head of `pending` that were held by the quiet time that ended
/// last: those accepted during it, in order. Fewer than two need no merging.
pub fn held<'a>(quiet: &Quiet, pending: &'a [Pending], now: i64) -> &'a [Pending] {
    let Some((start, end)) = quiet.last_ended(now) else {
        return &[];
    };
    let count = pending
        .iter()
        .take_while(|p| {
            let during = start <= p.created_at && p.created_at < end;
            during && p.next_attempt_at <= now && p.rule != MERGED_RULE
        })
        .count();
    &pending[..count]
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn quiet(times: &str, days: &str) -> Quiet {
        let (from, until) = Quiet::times(times).unwrap();
        Quiet {
            from,
            until,
            days: Days::parse(days).unwrap(),
            zone: "Europe/Paris".parse().unwrap(),
        }
    }

    fn ms(utc: &str) -> i64 {
        DateTime::parse_from_rfc3339(utc)
            .unwrap()
            .timestamp_millis()
    }

    fn pending(id: i64, created_at: i64) -> Pending {
        Pending {
            id,
            event_id: format!("e{id}"),
            rule: "r".into(),
            destination: "chat".into(),
            body: Vec::new(),
            attempts: 0,
            created_at,
            next_attempt_at: created_at,
        }
    }

    #[test]
    fn an_overnight_quiet_time_runs_past_midnight_in_its_zone() {
        let quiet = quiet("20:00-08:00", "mon-fri");

        let evening = quiet.ends_at(ms("2026-01-05T19:30:00Z"));
        let night = quiet.ends_at(ms("2026-01-06T03:00:00Z"));
        let morning = quiet.ends_at(ms("2026-01-06T07:00:00Z"));

        assert_eq!(
            evening,
            Some(ms("2026-01-06T07:00:00Z")),
            "20:30 CET is quiet"
        );
        assert_eq!(night, Some(ms("2026-01-06T07:00:00Z")));
        assert_eq!(morning, None, "08:00 CET is not");
    }

    #[test]
    fn a_quiet_time_starts_only_on_its_days() {
        let quiet = quiet("20:00-08:00", "mon-fri");

        let saturday_night = quiet.ends_at(ms("2026-01-10T22:00:00Z"));
        let friday_night = quiet.ends_at(ms("2026-01-10T03:00:00Z"));

        assert_eq!(saturday_night, None);
        assert_eq!(friday_night, Some(ms("2026-01-10T07:00:00Z")));
    }

    #[test]
    fn refuses_malformed_quiet_times() {
        assert!(Quiet::times("20:00-8:00").is_err());
        assert!(Quiet::times("20:00").is_err());
        assert!(Quiet::times("20:00-20:00").is_err());
        assert!(Quiet::times("12:00-14:00").is_ok());
    }

    #[test]
    fn quiet_hours_hold_three_messages_and_release_them_together() {
        let quiet = quiet("20:00-08:00", "mon-fri");
        let queue = [
            pending(1, ms("2026-01-05T20:00:00Z")),
            pending(2, ms("2026-01-05T23:00:00Z")),
            pending(3, ms("2026-01-06T05:00:00Z")),
            pending(4, ms("2026-01-06T07:30:00Z")),
        ];

        let during = quiet.ends_at(ms("2026-01-06T06:59:00Z"));
        let released = held(&quiet, &queue, ms("2026-01-06T07:00:00Z"));

        assert_eq!(
            during,
            Some(ms("2026-01-06T07:00:00Z")),
            "held until 08:00 CET"
        );
        let ids: Vec<i64> = released.iter().map(|p| p.id).collect();
        assert_eq!(
            ids,
            [1, 2, 3],
            "the message after the quiet time is not merged"
        );
    }
}
