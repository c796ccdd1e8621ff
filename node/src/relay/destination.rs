//! Per-destination concurrency: at most `[relay] destination_concurrency` deliveries to one
//! destination domain at once (like Postfix's `default_destination_concurrency_limit`), so
//! a burst of bounces or outbound mail to one provider does not open a connection per
//! message and get us rate-limited there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Destinations tracked at once; beyond, idle ones are forgotten, and when none is idle
/// the extra destinations share one overflow limit.
pub const DESTINATIONS_TRACKED_MAX: usize = 4096;

/// The limits of every destination.
pub struct DestinationLimits {
    per_destination: usize,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    overflow: Arc<Semaphore>,
}

impl DestinationLimits {
    /// `per_destination` deliveries at once per destination (at least 1).
    pub fn new(per_destination: usize) -> DestinationLimits {
        let per_destination = per_destination.max(1);
        DestinationLimits {
            per_destination,
            limits: Mutex::new(HashMap::new()),
            overflow: Arc::new(Semaphore::new(per_destination)),
        }
    }

    /// Waits for a delivery slot to `destination`; the slot is freed when dropped.
    pub async fn acquire(&self, destination: &str) -> Option<OwnedSemaphorePermit> {
        self.semaphore(destination).acquire_owned().await.ok()
    }

    fn semaphore(&self, destination: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = limits.get(destination) {
            return s.clone();
        }
        if limits.len() >= DESTINATIONS_TRACKED_MAX {
            let full = self.per_destination;
            limits.retain(|_, s| s.available_permits() < full);
            if limits.len() >= DESTINATIONS_TRACKED_MAX {
                return self.overflow.clone();
            }
        }
        let s = Arc::new(Semaphore::new(self.per_destination));
        limits.insert(destination.to_string(), s.clone());
        s
    }

    /// Deliveries in flight to `destination` (for tests and diagnostics).
    pub fn in_flight(&self, destination: &str) -> usize {
        let limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .get(destination)
            .map_or(0, |s| self.per_destination - s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_destination_is_limited_others_are_not() {
        let limits = DestinationLimits::new(2);
        let a1 = limits.acquire("a.test").await.unwrap();
        let _a2 = limits.acquire("a.test").await.unwrap();
        assert_eq!(limits.in_flight("a.test"), 2);
        assert_eq!(
            limits.semaphore("a.test").available_permits(),
            0,
            "a third delivery to a.test waits"
        );
        let _b = limits.acquire("b.test").await.unwrap();
        drop(a1);
        let _a3 = limits.acquire("a.test").await.unwrap();
        assert_eq!(limits.in_flight("a.test"), 2);
    }
}
