//! The node's wall clock. Pure code (the filter, the crdt crate, the relay schedule, the
//! DNS set) never reads it: it takes `now_ms` as a parameter.
//!
//! Every part of a node that needs wall time asks the node's [`Clock`] (carried in
//! `Config::clock`). The daemon's clock is the system clock. The simulator gives each node
//! a clock derived from tokio's clock (virtual, paused time) plus a per-node skew it can
//! step while the node runs, to play clocks that run ahead or behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a [`Clock`] reads its time from.
#[derive(Debug, Clone, Copy, Default)]
enum Base {
    /// `SystemTime::now()`: the daemon.
    #[default]
    System,
    /// `epoch_ms` plus the time tokio's clock has moved since `origin` (virtual time on a
    /// paused runtime): the simulator.
    Runtime {
        epoch_ms: u64,
        origin: tokio::time::Instant,
    },
}

/// A node's wall clock: a base plus a skew (ms, may be negative). Clones share the skew, so
/// whoever made the clock can step it while the node runs.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    base: Base,
    skew_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock, without skew (the daemon's).
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `epoch_ms` now and then moves with tokio's clock (so on a paused
    /// runtime it moves with virtual time). Call it inside the runtime whose clock it follows.
    pub fn runtime(epoch_ms: u64) -> Clock {
        Clock {
            base: Base::Runtime {
                epoch_ms,
                origin: tokio::time::Instant::now(),
            },
            skew_ms: Arc::default(),
        }
    }

    /// A clock on the same base with its own skew, starting at `skew_ms`.
    pub fn with_own_skew(&self, skew_ms: i64) -> Clock {
        Clock {
            base: self.base,
            skew_ms: Arc::new(AtomicI64::new(skew_ms)),
        }
    }

    /// Steps this clock (and every clone) to read `skew_ms` away from its base.
    pub fn set_skew(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }

    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.load(Ordering::Relaxed)
    }

    /// A fresh ULID whose time is this clock's (ids sort by it) and whose random part comes
    /// from the thread's generator (seeded in the simulator).
    pub fn ulid(&self) -> ulid::Ulid {
        ulid::Ulid::from_parts(self.now_ms(), rand::random::<u128>())
    }

    /// Milliseconds since the Unix epoch, as this clock reads them.
    pub fn now_ms(&self) -> u64 {
        let base = match self.base {
            Base::System => system_now_ms(),
            Base::Runtime { epoch_ms, origin } => {
                epoch_ms.saturating_add(origin.elapsed().as_millis() as u64)
            }
        };
        base.saturating_add_signed(self.skew_ms())
    }
}

/// Milliseconds since the Unix epoch by the system clock. Only for values no decision
/// depends on (the store's health probe); everything else asks the node's [`Clock`].
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 5322 date-time for headers (Received, DSN).
pub fn rfc5322_date(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    mail_parser::DateTime::from_timestamp(secs).to_rfc822()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack for reads of a moving clock that happen a few instructions apart.
    const READ_SLACK_MS: u64 = 1_000;

    #[tokio::test]
    async fn runtime_clock_starts_at_its_epoch_and_skew_steps_every_clone() {
        let base = Clock::runtime(1_000_000);
        assert!(base.now_ms() - 1_000_000 < READ_SLACK_MS);
        let ahead = base.with_own_skew(5_000);
        let shared = ahead.clone();
        shared.set_skew(-30_000);
        assert_eq!(ahead.skew_ms(), -30_000, "clones share the skew");
        assert_eq!(base.skew_ms(), 0, "the base clock is not stepped");
        let (b, a) = (base.now_ms(), ahead.now_ms());
        assert!(b - a >= 30_000 && b - a < 30_000 + READ_SLACK_MS, "{b} {a}");
    }

    #[test]
    fn system_clock_is_the_system_time() {
        let before = system_now_ms();
        let now = Clock::system().now_ms();
        assert!(
            now >= before && now - before < READ_SLACK_MS,
            "{before} {now}"
        );
    }
}
