//! How often to send and when to try again: rate limits, backoff and the relay's clock.
//!
//! Pure arithmetic on durations, so that the worker's loop stays readable and this can be
//! tested without sockets. Time comes from tokio's clock, which tests can pause and move.
//! Nothing here sleeps or sends: the worker does the waiting.

use std::time::Duration;

use tokio::time::Instant;

/// When to retry, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; it doubles with each further failure.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// After this long since acceptance, a delivery is given up as a dead letter.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` consecutive failures (from 1), with `jitter` in `0..=1`
    /// spreading it over its upper half so that many queued messages do not retry in step.
    pub fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let full = self
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The wait before the next attempt: the backoff, or longer if the platform asked
    /// (`Retry-After`), but never past the ceiling.
    pub fn next_wait(&self, failures: u32, asked: Option<Duration>, jitter: f64) -> Duration {
        let backoff = self.backoff(failures, jitter);
        match asked {
            Some(asked) => asked.max(backoff).min(self.max_backoff.max(backoff)),
            None => backoff,
        }
    }
}

/// A destination's rate limit: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Messages per second; 0 disables the limit.
    pub per_second: f64,
    /// Messages that may go back to back after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// No limit at all.
    pub const NONE: RateLimit = RateLimit {
        per_second: 0.0,
        burst: 1,
    };
}

/// A token bucket for one sequential sender.
#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            last: now,
        }
    }

    /// Takes a token for a send at `now`, returning how long to wait before sending.
    pub fn take(&mut self, now: Instant) -> Duration {
        if self.limit.per_second <= 0.0 {
            return Duration::ZERO;
        }
        let capacity = f64::from(self.limit.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(capacity);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limit.per_second)
        }
    }

    /// Replaces the limit (after a reload), keeping the tokens already earned.
    pub fn set_limit(&mut self, limit: RateLimit) {
        self.limit = limit;
    }
}

/// Wall-clock milliseconds that move with tokio's clock, so paused-time tests see stored
/// times advance exactly as their timers do.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: i64,
    start: Instant,
}

impl Clock {
    /// A clock reading the system time now.
    pub fn new() -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock {
            wall_at_start: wall,
            start: Instant::now(),
        }
    }

    /// Unix time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.wall_at_start + self.start.elapsed().as_millis() as i64
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let policy = RetryPolicy {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_age: Duration::from_secs(60),
        };

        let waits: Vec<u64> = (1..=6).map(|n| policy.backoff(n, 1.0).as_secs()).collect();

        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(policy.backoff(3, 0.0), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let policy = RetryPolicy::default();

        let asked = policy.next_wait(1, Some(Duration::from_secs(2)), 0.0);
        let huge = policy.next_wait(1, Some(Duration::from_secs(86_400)), 0.0);

        assert_eq!(asked, Duration::from_secs(2));
        assert_eq!(huge, policy.max_backoff);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_paces() {
        let now = Instant::now();
        let mut bucket = Bucket::new(
            RateLimit {
                per_second: 2.0,
                burst: 2,
            },
            now,
        );

        let waits: Vec<Duration> = (0..4).map(|_| bucket.take(now)).collect();

        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [0, 0, 500, 1000]);
    }
}
