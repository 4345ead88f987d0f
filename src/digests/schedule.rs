//! When a digest fires: a time of day on some weekdays in an IANA time zone.
//!
//! Fire times are computed in the zone, from the wall clock there: a 09:00 digest fires at
//! 09:00 local time whatever the offset that day. On a daylight-saving change a time can
//! be missing (spring forward) or happen twice (fall back); it then fires at the first
//! instant after the gap, or at the first of the two, and only once either way. What a
//! digest says and when it was last sent are the `digests` module's.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono::{Days as DayCount, Weekday};
use chrono_tz::Tz;

const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A set of weekdays, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    /// Every day of the week.
    pub const ALL: Days = Days(0b111_1111);

    /// Parses `mon-fri`, `mon,wed,fri`, `sat-sun` or a mix such as `mon-wed,fri`; a range
    /// may wrap (`fri-mon`). The error says what was not understood.
    pub fn parse(text: &str) -> Result<Days, String> {
        let mut mask = 0u8;
        for item in text.split(',').map(str::trim) {
            mask |= match item.split_once('-') {
                Some((first, last)) => range(day(first)?, day(last)?),
                None => 1 << day(item)?,
            };
        }
        Ok(Days(mask))
    }

    /// Whether `weekday` is one of the days.
    pub fn has(self, weekday: Weekday) -> bool {
        self.0 & (1 << weekday.num_days_from_monday()) != 0
    }
}

fn day(name: &str) -> Result<u32, String> {
    let lower = name.trim().to_ascii_lowercase();
    let found = NAMES
        .iter()
        .position(|n| lower.len() >= 3 && n.starts_with(&lower[..3]));
    match found {
        Some(index) if is_day_name(&lower, index) => Ok(index as u32),
        _ => Err(format!(
            "`{}` is not a day; use `mon` to `sun`, a range such as `mon-fri` or a list \
             such as `mon,wed,fri`",
            name.trim()
        )),
    }
}

/// `mon` or `monday`: the short name or the whole English name.
fn is_day_name(lower: &str, index: usize) -> bool {
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    lower == NAMES[index] || lower == full[index]
}

fn range(first: u32, last: u32) -> u8 {
    let mut mask = 0u8;
    let mut day = first;
    loop {
        mask |= 1 << day;
        if day == last {
            return mask;
        }
        day = (day + 1) % 7;
    }
}

/// A time of day on some weekdays in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The local time of day.
    pub at: NaiveTime,
    /// The weekdays it fires on.
    pub days: Days,
    /// The zone the time and days are read in.
    pub zone: Tz,
}

impl Schedule {
    /// The first fire time strictly after `after` (unix ms).
    pub fn next_after(&self, after: i64) -> i64 {
        let start = local_date(after, self.zone);
        for offset in 0..=8 {
            let Some(date) = start.checked_add_days(DayCount::new(offset)) else {
                break;
            };
            if !self.days.has(date.weekday()) {
                continue;
            }
            let fire = resolve(self.zone, date.and_time(self.at));
            if fire > after {
                return fire;
            }
        }
        // Days is never empty, so one of the next eight dates is a fire day; only a date
        // beyond chrono's range gets here.
        i64::MAX
    }

    /// The first fire time after `after` on the zone's clock, such as
    /// `2026-01-05 09:00 CET (Europe/Paris)`, for operators.
    pub fn next_local(&self, after: i64) -> String {
        let next = DateTime::<Utc>::from_timestamp_millis(self.next_after(after));
        let local = next.unwrap_or_default().with_timezone(&self.zone);
        format!(
            "{} ({})",
            local.format("%Y-%m-%d %H:%M %Z"),
            self.zone.name()
        )
    }

    /// The latest fire time in `(after, now]`, if there is one.
    pub fn latest_in(&self, after: i64, now: i64) -> Option<i64> {
        // Starting a week before `now` bounds the walk after a long stop.
        let week = 8 * 86_400_000;
        let mut latest = None;
        let mut fire = self.next_after(after.max(now.saturating_sub(week)));
        while fire <= now {
            latest = Some(fire);
            fire = self.next_after(fire);
        }
        latest
    }
}

/// The date on the zone's calendar at `ms` (unix ms).
pub(crate) fn local_date(ms: i64, zone: Tz) -> chrono::NaiveDate {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    utc.with_timezone(&zone).date_naive()
}

/// The instant of a local time: the earlier of two on a fall-back day, the first instant
/// after the gap on a spring-forward day.
pub(crate) fn resolve(zone: Tz, local: NaiveDateTime) -> i64 {
    let mut probe = local;
    // Gaps are at most a few hours, so a day's worth of minutes always ends one.
    for _ in 0..=24 * 60 {
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                return at.timestamp_millis();
            }
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
    local.and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris(at: &str, days: &str) -> Schedule {
        Schedule {
            at: NaiveTime::parse_from_str(at, "%H:%M").unwrap(),
            days: Days::parse(days).unwrap(),
            zone: "Europe/Paris".parse().unwrap(),
        }
    }

    fn ms(utc: &str) -> i64 {
        DateTime::parse_from_rfc3339(utc)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn reads_ranges_lists_and_wrapping_ranges() {
        let weekdays = Days::parse("mon-fri").unwrap();
        let listed = Days::parse("mon, wed,Friday").unwrap();
        let wrapped = Days::parse("fri-mon").unwrap();

        assert!(weekdays.has(Weekday::Fri) && !weekdays.has(Weekday::Sat));
        assert!(listed.has(Weekday::Wed) && !listed.has(Weekday::Tue));
        assert!(wrapped.has(Weekday::Sun) && wrapped.has(Weekday::Mon));
        assert!(!wrapped.has(Weekday::Tue));
        assert!(Days::parse("mon-fry").unwrap_err().contains("`fry`"));
        assert!(Days::parse("").is_err());
    }

    #[test]
    fn fires_at_nine_local_in_winter_and_summer() {
        let schedule = paris("09:00", "mon-fri");

        assert_eq!(
            schedule.next_after(ms("2026-01-05T07:00:00Z")),
            ms("2026-01-05T08:00:00Z")
        );
        assert_eq!(
            schedule.next_after(ms("2026-07-06T06:00:00Z")),
            ms("2026-07-06T07:00:00Z")
        );
    }

    #[test]
    fn skips_days_not_listed() {
        let schedule = paris("09:00", "mon-fri");

        let friday_after_nine = ms("2026-01-09T09:00:00Z");

        assert_eq!(
            schedule.next_after(friday_after_nine),
            ms("2026-01-12T08:00:00Z")
        );
    }

    #[test]
    fn a_missing_local_time_fires_right_after_the_gap() {
        let schedule = paris("02:30", "sun");

        let fire = schedule.next_after(ms("2026-03-28T12:00:00Z"));

        assert_eq!(
            fire,
            ms("2026-03-29T01:00:00Z"),
            "03:00 CEST, the first instant"
        );
    }

    #[test]
    fn a_repeated_local_time_fires_at_the_first_of_the_two() {
        let schedule = paris("02:30", "sun,mon");

        let first = schedule.next_after(ms("2026-10-24T12:00:00Z"));
        let next = schedule.next_after(first);

        assert_eq!(first, ms("2026-10-25T00:30:00Z"));
        assert_eq!(next, ms("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn names_the_next_fire_time_on_the_local_clock() {
        let schedule = paris("09:00", "mon-fri");

        let winter = schedule.next_local(ms("2026-01-09T12:00:00Z"));
        let summer = schedule.next_local(ms("2026-07-06T06:00:00Z"));

        assert_eq!(winter, "2026-01-12 09:00 CET (Europe/Paris)");
        assert_eq!(summer, "2026-07-06 09:00 CEST (Europe/Paris)");
    }

    #[test]
    fn finds_the_latest_fire_time_in_a_span() {
        let schedule = paris("09:00", "mon-fri");

        let latest = schedule.latest_in(ms("2026-01-05T00:00:00Z"), ms("2026-01-07T12:00:00Z"));
        let none = schedule.latest_in(ms("2026-01-07T08:00:00Z"), ms("2026-01-07T12:00:00Z"));

        assert_eq!(latest, Some(ms("2026-01-07T08:00:00Z")));
        assert_eq!(none, None);
    }
}
