//! The single-copy window of queued messages: from the commit that preceded the `250` to
//! the moment a peer's answer said it holds the shadow. The last [`WINDOW_SAMPLES_MAX`]
//! windows are kept, for the quantiles `/metrics` shows.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Windows kept for the quantiles.
pub const WINDOW_SAMPLES_MAX: usize = 4096;

/// The recent windows, ms.
#[derive(Default)]
pub struct Windows {
    samples: Mutex<VecDeque<u64>>,
}

impl Windows {
    /// Records one window.
    pub fn record(&self, window_ms: u64) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.len() >= WINDOW_SAMPLES_MAX {
            s.pop_front();
        }
        s.push_back(window_ms);
    }

    /// The `q`-quantile (0 to 1) of the recent windows, 0 without any.
    pub fn quantile(&self, q: f64) -> u64 {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let mut sorted: Vec<u64> = s.iter().copied().collect();
        drop(s);
        quantile_of(&mut sorted, q)
    }
}

/// The `q`-quantile of `values` (nearest rank), 0 when empty.
pub fn quantile_of(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_over_the_recent_windows() {
        let w = Windows::default();
        assert_eq!(w.quantile(0.99), 0);
        for ms in 1..=100 {
            w.record(ms);
        }
        assert_eq!(w.quantile(0.5), 50);
        assert_eq!(w.quantile(0.99), 99);
        assert_eq!(w.quantile(1.0), 100);
        for _ in 0..WINDOW_SAMPLES_MAX {
            w.record(7);
        }
        assert_eq!(w.quantile(1.0), 7, "old windows age out");
    }
}
