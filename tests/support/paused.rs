//! Paused time that moves only when the test moves it, for tests that assert how long the
//! relay waits (backoff, `Retry-After`, timeouts) without waiting that long.
//!
//! Tokio's paused clock jumps to the next timer whenever the runtime has nothing to run,
//! even while a request is crossing a real socket or the outbox's writer thread is
//! syncing; that would fire the relay's timeouts at random. A running blocking task holds
//! those jumps off (as tokio documents), so time moves only in [`PausedTime::advance_until`],
//! a small step at a time, with a real pause after each step in which sockets and threads
//! catch up. A wait the relay makes therefore lasts at least its length in paused time.

use std::sync::mpsc;
use std::time::Duration;

use tokio::time::Instant;

/// Paused time moved per step: fine enough to measure waits of a second or more.
const STEP: Duration = Duration::from_millis(10);

/// Real time given to sockets and threads after each step.
const BREATHE: Duration = Duration::from_millis(1);

/// Holds tokio's paused clock still except while the test advances it. Needs a test
/// started with `#[tokio::test(start_paused = true)]`.
pub struct PausedTime {
    // Dropping it ends the blocking task that holds the automatic jumps off.
    _release: mpsc::Sender<()>,
}

impl PausedTime {
    pub fn new() -> PausedTime {
        let (release, held) = mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = held.recv();
        });
        PausedTime { _release: release }
    }

    /// Moves time forward step by step until `done()` holds, returning `true`, or until
    /// `limit` has passed, returning `false`.
    pub async fn advance_until(&self, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done() {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::advance(STEP).await;
            tokio::task::spawn_blocking(|| std::thread::sleep(BREATHE))
                .await
                .expect("a sleeping blocking task does not panic");
        }
    }
}

/// The time between each request and the next, from their arrival times.
pub fn gaps(arrivals: &[Instant]) -> Vec<Duration> {
    arrivals.windows(2).map(|w| w[1] - w[0]).collect()
}
