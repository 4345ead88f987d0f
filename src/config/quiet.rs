//! A destination's quiet hours checked: `quiet`, `quiet_days` and `quiet_timezone`.
//!
//! Days and zones are read as for digests. What quiet hours do is the `quiet` module's.

use chrono_tz::Tz;

use super::digests::{days, zone};
use super::raw::RawDestination;
use super::validate::Checker;
use crate::digests::Days;
use crate::quiet::Quiet;

/// A destination's `quiet`, `quiet_days` and `quiet_timezone`: `Some(None)` when it has no
/// quiet hours, `None` after a problem.
pub(super) fn check(
    checker: &mut Checker<'_>,
    raw: &RawDestination,
    key: &str,
) -> Option<Option<Quiet>> {
    let Some(value) = &raw.quiet else {
        for (field, set) in [
            ("quiet_days", &raw.quiet_days),
            ("quiet_timezone", &raw.quiet_timezone),
        ] {
            if let Some(set) = set {
                let message = format!("`{field}` needs `quiet`, such as `quiet = \"20:00-08:00\"`");
                checker.problem(set.span(), format!("{key}.{field}"), message);
            }
        }
        let stray = raw.quiet_days.is_some() || raw.quiet_timezone.is_some();
        return (!stray).then_some(None);
    };
    let times = Quiet::times(value.get_ref())
        .map_err(|message| checker.problem(value.span(), format!("{key}.quiet"), message))
        .ok();
    let days = match &raw.quiet_days {
        Some(value) => days(checker, value, &format!("{key}.quiet_days")),
        None => Some(Days::ALL),
    };
    let zone = match &raw.quiet_timezone {
        Some(value) => zone(checker, value, &format!("{key}.quiet_timezone")),
        None => Some(Tz::UTC),
    };
    let (from, until) = times?;
    Some(Some(Quiet {
        from,
        until,
        days: days?,
        zone: zone?,
    }))
}
