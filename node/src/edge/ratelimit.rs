//! Mesh-wide rate limits: messages per minute per client (address or network) and per
//! sender, counted across every node, `451 4.7.0` beyond.
//!
//! Each node counts the messages it accepts in per-minute windows, in its own entries of a
//! replicated [`OwnedMap`] (key: what is limited and the minute; value: this node's count),
//! synced every [`crate::cluster::RATE_SYNC`] interval. A node's view of a key is the sum
//! of every node's count. The rate is a sliding estimate over the current and the previous
//! minute: `previous × (1 − elapsed fraction of the current minute) + current`.
//!
//! **Overshoot.** A node admits while its view is below the limit; other nodes' counts
//! reach it within the staleness `S` of the sync (one sync interval plus one exchange).
//! During a burst spread over `N` nodes each admitting at rate `r`, the mesh can admit at
//! most `limit + (N − 1) × r × S` in a window, and never more than `N × limit` (each node
//! stops at the limit on its own counts alone). BENCHMARKS.md §12 measures it.
//!
//! Counts live in memory only. A node writes them as owner `<node id>#<start time ms>`, one
//! owner per incarnation: a restarted node counts under a new owner instead of overwriting
//! the counts of its past life (which peers still hold until their windows expire), so no
//! node's view of a counter goes backwards across a restart (the simulator checks it).

use std::net::IpAddr;

use mxmesh_crdt::owned::OwnedMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::cluster::owned::{SharedMap, read, write};

/// Counter keys one node keeps (and of each other node) at most.
pub const RATE_KEYS_MAX: usize = 200_000;
/// Largest limit accepted, messages per minute.
pub const LIMIT_MAX: u64 = 10_000_000;
/// Name of the setting in the rule book (`/api/v1/settings/ratelimit`).
pub const SETTING: &str = "ratelimit";
const MINUTE_MS: u64 = 60_000;

/// The cluster-wide rate limits (`GET/PUT /api/v1/settings/ratelimit`); 0 turns one off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateSettings {
    /// Messages per minute from one client address or network, mesh-wide (default 0: off).
    pub per_client_per_minute: u64,
    /// Prefix length grouping IPv4 clients (default 32: one address).
    pub client_prefix_v4: u8,
    /// Prefix length grouping IPv6 clients (default 64).
    pub client_prefix_v6: u8,
    /// Messages per minute from one envelope sender, mesh-wide (default 0: off).
    pub per_sender_per_minute: u64,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            per_client_per_minute: 0,
            client_prefix_v4: 32,
            client_prefix_v6: 64,
            per_sender_per_minute: 0,
        }
    }
}

impl RateSettings {
    /// Checks every bound; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("per_client_per_minute", self.per_client_per_minute),
            ("per_sender_per_minute", self.per_sender_per_minute),
        ] {
            if v > LIMIT_MAX {
                return Err(format!("ratelimit settings: {key}: at most {LIMIT_MAX}"));
            }
        }
        if !(8..=32).contains(&self.client_prefix_v4) {
            return Err("ratelimit settings: client_prefix_v4: 8 to 32".into());
        }
        if !(16..=128).contains(&self.client_prefix_v6) {
            return Err("ratelimit settings: client_prefix_v6: 16 to 128".into());
        }
        Ok(())
    }
}

/// What the limiter says of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateVerdict {
    /// Under every limit; counted.
    Counted,
    /// Over a limit: which one, and the rate seen.
    Over {
        /// `client` or `sender`.
        what: &'static str,
        /// The mesh-wide rate estimate when refused.
        rate: u64,
    },
}

/// This node's view of the mesh-wide counters.
#[derive(Clone)]
pub struct RateLimiter {
    node_id: String,
    map: SharedMap<u64>,
    clock: Clock,
}

impl RateLimiter {
    /// Empty counters written as this incarnation of `node_id` (`<node id>#<now ms>`).
    pub fn new(node_id: String, clock: Clock) -> RateLimiter {
        RateLimiter {
            node_id: format!("{node_id}#{}", clock.now_ms()),
            map: std::sync::Arc::new(std::sync::RwLock::new(OwnedMap::new(RATE_KEYS_MAX))),
            clock,
        }
    }

    /// The replicated map (for the mesh's sync).
    pub fn map(&self) -> SharedMap<u64> {
        self.map.clone()
    }

    /// Checks one message from `client` by `sender` against `settings`; counts it when
    /// it is under every limit.
    pub fn admit(&self, settings: &RateSettings, client: IpAddr, sender: &str) -> RateVerdict {
        let now = self.clock.now_ms();
        let mut keys = Vec::new();
        if settings.per_client_per_minute > 0 {
            let net = client_group(client, settings);
            keys.push(("client", format!("c:{net}"), settings.per_client_per_minute));
        }
        if settings.per_sender_per_minute > 0 && !sender.is_empty() {
            let digest = Sha256::digest(sender.to_ascii_lowercase().as_bytes());
            let key = format!("s:{}", hex::encode(&digest[..16]));
            keys.push(("sender", key, settings.per_sender_per_minute));
        }
        if keys.is_empty() {
            return RateVerdict::Counted;
        }
        // One write lock for check and count: two sessions on this node never both take
        // the last slot.
        let mut map = write(&self.map);
        for (what, key, limit) in &keys {
            let rate = estimate(&map, key, now);
            if rate >= *limit {
                return RateVerdict::Over { what, rate };
            }
        }
        let minute = now / MINUTE_MS;
        let expires = (minute + 2) * MINUTE_MS;
        for (_, key, _) in &keys {
            let wkey = window_key(key, minute);
            let own = map.get(&self.node_id, &wkey, now).map_or(0, |i| i.value);
            if let Err(e) = map.put_own(&self.node_id, &wkey, own + 1, expires, now) {
                tracing::warn!(error = %e, "rate counter not counted");
            }
        }
        RateVerdict::Counted
    }

    /// The mesh-wide count of `key` (as built by [`RateLimiter::admit`]) in the current
    /// minute, as this node sees it (for the simulator and the benchmark).
    pub fn current(&self, key: &str) -> u64 {
        let now = self.clock.now_ms();
        sum(&read(&self.map), &window_key(key, now / MINUTE_MS), now)
    }

    /// Drops expired windows.
    pub fn purge(&self) {
        write(&self.map).expire(self.clock.now_ms());
    }
}

/// The key of `key`'s window `minute`.
pub fn window_key(key: &str, minute: u64) -> String {
    format!("{key}@{minute}")
}

/// Every node's count of `wkey`.
fn sum(map: &OwnedMap<u64>, wkey: &str, now: u64) -> u64 {
    map.values(wkey, now)
        .map(|(_, i)| i.value)
        .fold(0, u64::saturating_add)
}

/// The sliding rate estimate of `key` at `now`.
pub fn estimate(map: &OwnedMap<u64>, key: &str, now: u64) -> u64 {
    let minute = now / MINUTE_MS;
    let current = sum(map, &window_key(key, minute), now);
    let previous = sum(map, &window_key(key, minute.saturating_sub(1)), now);
    let left = MINUTE_MS - now % MINUTE_MS;
    current + previous * left / MINUTE_MS
}

/// The client's group: the address masked to the configured prefix.
pub fn client_group(client: IpAddr, settings: &RateSettings) -> String {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    let prefix = match client {
        IpAddr::V4(_) => settings.client_prefix_v4,
        IpAddr::V6(_) => settings.client_prefix_v6,
    };
    match ipnet::IpNet::new(client, prefix) {
        Ok(net) => net.trunc().to_string(),
        Err(_) => client.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(client: u64, sender: u64) -> RateSettings {
        RateSettings {
            per_client_per_minute: client,
            per_sender_per_minute: sender,
            ..RateSettings::default()
        }
    }

    #[test]
    fn a_node_stops_at_the_limit_on_its_own_counts() {
        let clock = Clock::system();
        clock.set_skew(-((clock.now_ms() % MINUTE_MS) as i64)); // start of a minute
        let rl = RateLimiter::new("n1".into(), clock);
        let s = settings(3, 0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(rl.admit(&s, ip, "a@b.org"), RateVerdict::Counted);
        }
        assert!(matches!(
            rl.admit(&s, ip, "a@b.org"),
            RateVerdict::Over { what: "client", .. }
        ));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(rl.admit(&s, other, "a@b.org"), RateVerdict::Counted);
    }

    #[test]
    fn counts_of_every_node_add_up() {
        let clock = Clock::system();
        clock.set_skew(-((clock.now_ms() % MINUTE_MS) as i64));
        let one = RateLimiter::new("n1".into(), clock.clone());
        let two = RateLimiter::new("n2".into(), clock.clone());
        let s = settings(0, 4);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..2 {
            assert_eq!(one.admit(&s, ip, "x@y.org"), RateVerdict::Counted);
            assert_eq!(two.admit(&s, ip, "X@y.org"), RateVerdict::Counted);
        }
        write(&one.map)
            .merge(&read(&two.map), clock.now_ms())
            .unwrap();
        assert!(matches!(
            one.admit(&s, ip, "x@y.org"),
            RateVerdict::Over {
                what: "sender",
                rate: 4
            }
        ));
    }

    #[test]
    fn a_restart_never_takes_counts_back() {
        let clock = Clock::system();
        clock.set_skew(-((clock.now_ms() % MINUTE_MS) as i64));
        let s = settings(100, 0);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let first_life = RateLimiter::new("n1".into(), clock.clone());
        let peer = RateLimiter::new("n2".into(), clock.clone());
        for _ in 0..2 {
            assert_eq!(first_life.admit(&s, ip, ""), RateVerdict::Counted);
        }
        let merge = |from: &RateLimiter| {
            write(&peer.map)
                .merge(&read(&from.map), clock.now_ms())
                .unwrap();
        };
        merge(&first_life);
        let key = "c:192.0.2.9/32";
        assert_eq!(peer.current(key), 2);
        // The node restarts (memory lost) and counts one more before it syncs.
        let base = clock.skew_ms();
        clock.set_skew(base + 5);
        let second_life = RateLimiter::new("n1".into(), clock.clone());
        assert_eq!(second_life.admit(&s, ip, ""), RateVerdict::Counted);
        merge(&second_life);
        assert_eq!(peer.current(key), 3, "the peer's view did not go back");
    }

    #[test]
    fn the_previous_minute_fades_out() {
        let clock = Clock::system();
        clock.set_skew(-((clock.now_ms() % MINUTE_MS) as i64));
        let rl = RateLimiter::new("n1".into(), clock.clone());
        let s = settings(10, 0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(rl.admit(&s, ip, ""), RateVerdict::Counted);
        }
        let base = clock.skew_ms();
        clock.set_skew(base + MINUTE_MS as i64 + 30_000); // half into the next minute
        let rate = estimate(&read(&rl.map), "c:192.0.2.1/32", clock.now_ms());
        assert!((4..=5).contains(&rate), "{rate}");
        assert_eq!(rl.admit(&s, ip, ""), RateVerdict::Counted);
    }

    #[test]
    fn groups_and_settings() {
        let s = RateSettings {
            client_prefix_v4: 24,
            ..RateSettings::default()
        };
        assert_eq!(
            client_group("192.0.2.77".parse().unwrap(), &s),
            "192.0.2.0/24"
        );
        assert_eq!(
            client_group("2001:db8:1:2:3::9".parse().unwrap(), &s),
            "2001:db8:1:2::/64"
        );
        let bad = RateSettings {
            client_prefix_v4: 40,
            ..RateSettings::default()
        };
        assert!(bad.validate().unwrap_err().contains("client_prefix_v4"));
    }
}
