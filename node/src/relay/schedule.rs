//! When to try again: pure functions of attempts and time (no clock reads).

/// Delay before the next attempt after `attempts` failed ones: doubles from `initial_secs`
/// up to `max_secs`.
pub fn retry_delay_secs(attempts: u32, initial_secs: u64, max_secs: u64) -> u64 {
    let shift = attempts.saturating_sub(1).min(32);
    initial_secs.saturating_mul(1u64 << shift).min(max_secs)
}

/// Whether a message created at `created_ms` has outlived the queue lifetime at `now_ms`.
pub fn expired(created_ms: u64, now_ms: u64, lifetime_hours: u64) -> bool {
    now_ms.saturating_sub(created_ms) >= lifetime_hours.saturating_mul(3_600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let d: Vec<u64> = (1..=8).map(|a| retry_delay_secs(a, 60, 3600)).collect();
        assert_eq!(d, vec![60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_delay_secs(0, 60, 3600), 60);
        assert_eq!(retry_delay_secs(u32::MAX, 60, 3600), 3600);
    }

    #[test]
    fn lifetime() {
        assert!(!expired(0, 3_599_999, 1));
        assert!(expired(0, 3_600_000, 1));
        assert!(!expired(10, 5, 1), "clock going backwards never expires");
    }
}
