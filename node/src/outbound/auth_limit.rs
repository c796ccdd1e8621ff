//! Wrong-password rate limit for `[submission]` AUTH, per client address.
//!
//! After [`AUTH_FAILURES_MAX`] wrong passwords within [`AUTH_FAILURE_WINDOW`], further AUTH
//! attempts from that address are refused (`454 4.7.0`) until the window has passed since the
//! first counted failure. The table is bounded by [`AUTH_CLIENTS_MAX`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords allowed per client address within one window.
pub const AUTH_FAILURES_MAX: u32 = 5;
/// The window over which wrong passwords are counted.
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Most client addresses tracked; when full, expired entries are dropped, then the oldest.
pub const AUTH_CLIENTS_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    first: Instant,
    failures: u32,
}

/// Shared wrong-password counts of one listener.
#[derive(Debug, Default)]
pub struct AuthFailures {
    clients: Mutex<HashMap<IpAddr, Entry>>,
}

impl AuthFailures {
    /// Whether `ip` may try AUTH now.
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        match clients.get(&ip) {
            Some(e) if now.duration_since(e.first) < AUTH_FAILURE_WINDOW => {
                e.failures < AUTH_FAILURES_MAX
            }
            _ => true,
        }
    }

    /// Records a wrong password from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= AUTH_CLIENTS_MAX && !clients.contains_key(&ip) {
            make_room(&mut clients, now);
        }
        let entry = clients.entry(ip).or_insert(Entry {
            first: now,
            failures: 0,
        });
        if now.duration_since(entry.first) >= AUTH_FAILURE_WINDOW {
            *entry = Entry {
                first: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// Forgets `ip`'s failures (after a successful AUTH).
    pub fn succeeded(&self, ip: IpAddr) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.remove(&ip);
    }
}

fn make_room(clients: &mut HashMap<IpAddr, Entry>, now: Instant) {
    clients.retain(|_, e| now.duration_since(e.first) < AUTH_FAILURE_WINDOW);
    if clients.len() >= AUTH_CLIENTS_MAX
        && let Some(oldest) = clients
            .iter()
            .min_by_key(|(_, e)| e.first)
            .map(|(ip, _)| *ip)
    {
        clients.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_bound_and_forgives_after_the_window() {
        let limit = AuthFailures::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..AUTH_FAILURES_MAX {
            assert!(limit.allowed(ip, t0));
            limit.failed(ip, t0);
        }
        assert!(!limit.allowed(ip, t0));
        assert!(limit.allowed(other, t0), "another client is not blocked");
        assert!(limit.allowed(ip, t0 + AUTH_FAILURE_WINDOW));
    }

    #[test]
    fn success_forgets_and_the_table_stays_bounded() {
        let limit = AuthFailures::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        limit.failed(ip, t0);
        limit.succeeded(ip);
        assert!(limit.clients.lock().unwrap().is_empty());
        for i in 0..(AUTH_CLIENTS_MAX as u32 + 10) {
            limit.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(limit.clients.lock().unwrap().len() <= AUTH_CLIENTS_MAX);
    }
}
