//! Durations as people say them in chat: "3 h 12 min", "2 d 4 h", "45 s".
//!
//! Two units at most: a reader wants the size of a wait, not its exact length.

use std::time::Duration;

/// `duration` in its two largest units, the smaller one left out when it is zero.
pub fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_two_largest_units() {
        let cases = [
            (0, "0 s"),
            (45, "45 s"),
            (60, "1 min"),
            (119, "1 min"),
            (3600, "1 h"),
            (3 * 3600 + 12 * 60 + 59, "3 h 12 min"),
            (86_400, "1 d"),
            (2 * 86_400 + 4 * 3600 + 59 * 60, "2 d 4 h"),
        ];

        for (seconds, expected) in cases {
            assert_eq!(human(Duration::from_secs(seconds)), expected, "{seconds} s");
        }
    }
}
