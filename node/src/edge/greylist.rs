//! Mesh-wide greylisting. A triplet (client network, sender, recipient) seen for the first
//! time is deferred with `451 4.7.1`; a retry after the delay passes on any node, because
//! every node's sightings are replicated ([`crate::cluster::owned`]): each node writes only
//! its own sightings, in the node store (synced) and in the shared [`OwnedMap`], and reads
//! everyone's. A triplet that passed is remembered for `remember_days` from its last pass;
//! one that never passed is forgotten `retry_window_hours` after the delay.
//!
//! Skipped: senders on the greylist allow list, senders that passed greylisting with
//! `auto_allow_after` distinct triplets mesh-wide, and (with `skip_spf_pass`) clients with
//! SPF `pass` for the sender's domain.
//!
//! Keys are hashes (SHA-256, 128 bits kept) of the triplet, so no address is replicated.

use std::net::IpAddr;
use std::sync::Arc;

use mxmesh_crdt::owned::{Item, OwnedMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::cluster::owned::{SharedMap, read, write};
use crate::store::{Batch, Cf, Store, StoreError};

/// Sightings this node keeps of its own (and of each other node) at most.
pub const GREYLIST_ENTRIES_MAX: usize = 500_000;
/// An own sighting of a passing triplet is rewritten (its memory extended) at most this
/// often, so a busy triplet does not cost a synced write per message.
pub const REFRESH_MS: u64 = 3_600_000;
/// Longest greylist delay accepted, in seconds.
pub const DELAY_SECS_MAX: u64 = 86_400;
/// Longest memory of a passed triplet, in days.
pub const REMEMBER_DAYS_MAX: u64 = 365;
/// Longest retry window, in hours.
pub const RETRY_WINDOW_HOURS_MAX: u64 = 720;
/// Allow-list entries at most.
pub const ALLOW_SENDERS_MAX: usize = 10_000;
/// Longest allow-list entry, in bytes.
pub const ALLOW_SENDER_BYTES_MAX: usize = 256;
/// Name of the setting in the rule book (`/api/v1/settings/greylist`).
pub const SETTING: &str = "greylist";

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// The cluster-wide greylist settings (`GET/PUT /api/v1/settings/greylist`). Which domains
/// are greylisted is per node (`[[domains]] greylist`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreylistSettings {
    /// Seconds a new triplet must wait before a retry passes (default 300).
    pub delay_secs: u64,
    /// Days a triplet that passed is remembered after its last pass (default 36).
    pub remember_days: u64,
    /// Hours after the delay during which a retry is still recognised (default 48).
    pub retry_window_hours: u64,
    /// A sender whose triplets passed this many times mesh-wide skips greylisting
    /// (default 5; 0 turns it off).
    pub auto_allow_after: u32,
    /// Senders never greylisted: `user@domain`, `@domain` or `domain`.
    pub allow_senders: Vec<String>,
    /// Clients with SPF `pass` for the sender's domain skip greylisting (default true;
    /// needs `[filter]`).
    pub skip_spf_pass: bool,
}

impl Default for GreylistSettings {
    fn default() -> Self {
        GreylistSettings {
            delay_secs: 300,
            remember_days: 36,
            retry_window_hours: 48,
            auto_allow_after: 5,
            allow_senders: Vec::new(),
            skip_spf_pass: true,
        }
    }
}

/// Greylist settings that do not validate; names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("greylist settings: {key}: {message}")]
pub struct GreylistSettingsError {
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl GreylistSettings {
    /// Checks every bound; the error names the key.
    pub fn validate(&self) -> Result<(), GreylistSettingsError> {
        let err = |key, message: String| Err(GreylistSettingsError { key, message });
        if self.delay_secs > DELAY_SECS_MAX {
            return err("delay_secs", format!("at most {DELAY_SECS_MAX}"));
        }
        if !(1..=REMEMBER_DAYS_MAX).contains(&self.remember_days) {
            return err("remember_days", format!("1 to {REMEMBER_DAYS_MAX}"));
        }
        if !(1..=RETRY_WINDOW_HOURS_MAX).contains(&self.retry_window_hours) {
            return err(
                "retry_window_hours",
                format!("1 to {RETRY_WINDOW_HOURS_MAX}"),
            );
        }
        if self.allow_senders.len() > ALLOW_SENDERS_MAX {
            return err(
                "allow_senders",
                format!("at most {ALLOW_SENDERS_MAX} entries"),
            );
        }
        if let Some(bad) = self
            .allow_senders
            .iter()
            .find(|s| s.is_empty() || s.len() > ALLOW_SENDER_BYTES_MAX)
        {
            return err(
                "allow_senders",
                format!("entry {bad:?}: 1 to {ALLOW_SENDER_BYTES_MAX} bytes"),
            );
        }
        Ok(())
    }

    /// Whether `sender` is on the allow list.
    pub fn allows(&self, sender: &str) -> bool {
        let sender = sender.to_ascii_lowercase();
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        self.allow_senders.iter().any(|entry| {
            let entry = entry.to_ascii_lowercase();
            match entry.strip_prefix('@') {
                Some(d) => d == domain,
                None if entry.contains('@') => entry == sender,
                None => entry == domain,
            }
        })
    }
}

/// One node's sighting of a triplet (or, under a sender key, its count of passes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// When the triplet was first seen (the earliest any node saw, once passed).
    pub first_ms: u64,
    /// When it passed on this node; 0 while it has not.
    pub passed_ms: u64,
    /// Passes this node counted (sender keys: triplets of the sender that passed).
    pub passes: u32,
}

/// What the greylist says of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass: the triplet passed before, somewhere in the mesh.
    Known,
    /// Pass: a retry after the delay.
    Retried,
    /// Pass: allow-listed, auto-allowed or SPF pass.
    Skipped(&'static str),
    /// Defer: first sighting, or a retry before the delay; seconds left to wait.
    Defer(u64),
}

/// Where the triplet stands in the merged view, before this node writes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Some node saw it pass.
    Known {
        /// The earliest first sighting known.
        first_ms: u64,
    },
    /// Seen, and the delay has gone by.
    DelayOver {
        /// The earliest first sighting known.
        first_ms: u64,
    },
    /// Seen, the delay not yet over: seconds left.
    TooEarly(u64),
    /// Never seen (or forgotten).
    New,
}

/// Where `triplet` stands in `map` at `now_ms` (pure; every node's sightings count).
pub fn step(map: &OwnedMap<Sighting>, triplet: &str, delay_ms: u64, now_ms: u64) -> Step {
    let mut first: Option<u64> = None;
    let mut passed = false;
    for (_, item) in map.values(triplet, now_ms) {
        first = Some(first.map_or(item.value.first_ms, |f| f.min(item.value.first_ms)));
        passed |= item.value.passed_ms > 0;
    }
    match first {
        None => Step::New,
        Some(first_ms) if passed => Step::Known { first_ms },
        Some(first_ms) if now_ms >= first_ms.saturating_add(delay_ms) => {
            Step::DelayOver { first_ms }
        }
        Some(first_ms) => {
            let left_ms = first_ms.saturating_add(delay_ms).saturating_sub(now_ms);
            Step::TooEarly(left_ms.div_ceil(1000))
        }
    }
}

/// The triplet key: the client's network (/24 for IPv4, /64 for IPv6), the sender and the
/// recipient (lowercased), hashed.
pub fn triplet_key(client: IpAddr, sender: &str, rcpt: &str) -> String {
    let net = client_network(client);
    let digest = Sha256::new()
        .chain_update(net.as_bytes())
        .chain_update([0])
        .chain_update(sender.to_ascii_lowercase().as_bytes())
        .chain_update([0])
        .chain_update(rcpt.to_ascii_lowercase().as_bytes())
        .finalize();
    format!("t:{}", hex::encode(&digest[..16]))
}

/// The key under which passes of `sender` are counted.
pub fn sender_key(sender: &str) -> String {
    let digest = Sha256::digest(sender.to_ascii_lowercase().as_bytes());
    format!("s:{}", hex::encode(&digest[..16]))
}

/// The client's network as greylisting groups it: `a.b.c.0/24` or the /64 of an IPv6
/// address (an IPv4-mapped IPv6 address counts as IPv4).
pub fn client_network(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// This node's greylist: the replicated sightings and the store that keeps its own.
#[derive(Clone)]
pub struct Greylist {
    node_id: String,
    map: SharedMap<Sighting>,
    store: Store,
    clock: Clock,
}

impl Greylist {
    /// Loads this node's own sightings from `store` (dropping expired ones).
    pub fn load(node_id: String, store: Store, clock: Clock) -> Result<Greylist, StoreError> {
        let mut map = OwnedMap::new(GREYLIST_ENTRIES_MAX);
        let now = clock.now_ms();
        // Expired and unreadable rows stay until the next [`Greylist::purge`].
        store.scan(Cf::Greylist, b"", |key, value| {
            let key = String::from_utf8_lossy(key).into_owned();
            match serde_json::from_slice::<Item<Sighting>>(value) {
                Ok(item) if item.expires_ms > now => {
                    if let Err(e) = map.restore(&node_id, &key, item) {
                        tracing::warn!(key, error = %e, "greylist entry not restored");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(key, error = %e, "greylist entry unreadable; ignored"),
            }
            true
        })?;
        Ok(Greylist {
            node_id,
            map: Arc::new(std::sync::RwLock::new(map)),
            store,
            clock,
        })
    }

    /// The replicated map (for the mesh's sync).
    pub fn map(&self) -> SharedMap<Sighting> {
        self.map.clone()
    }

    /// Decides for one recipient and records what this node saw (synced to the store
    /// before it answers). `spf_pass` is asked only when the triplet would be deferred.
    pub async fn check<F>(
        &self,
        settings: &GreylistSettings,
        client: IpAddr,
        sender: &str,
        rcpt: &str,
        spf_pass: F,
    ) -> Result<Verdict, StoreError>
    where
        F: std::future::Future<Output = bool>,
    {
        if settings.allows(sender) {
            return Ok(Verdict::Skipped("allow-listed sender"));
        }
        let now = self.clock.now_ms();
        let triplet = triplet_key(client, sender, rcpt);
        let delay_ms = settings.delay_secs.saturating_mul(1000);
        let remember_ms = settings.remember_days.saturating_mul(DAY_MS);
        let before = step(&read(&self.map), &triplet, delay_ms, now);
        match before {
            Step::Known { first_ms } => {
                self.refresh(&triplet, first_ms, now, remember_ms).await?;
                return Ok(Verdict::Known);
            }
            Step::DelayOver { first_ms } => {
                let seen = Sighting {
                    first_ms,
                    passed_ms: now,
                    passes: 1,
                };
                self.record(&triplet, seen, now.saturating_add(remember_ms), now)
                    .await?;
                if !sender.is_empty() {
                    self.count_pass(sender, now, remember_ms).await?;
                }
                return Ok(Verdict::Retried);
            }
            Step::TooEarly(_) | Step::New => {}
        }
        if settings.auto_allow_after > 0 && self.passes_of(sender, now) >= settings.auto_allow_after
        {
            return Ok(Verdict::Skipped("sender passed greylisting before"));
        }
        if settings.skip_spf_pass && !sender.is_empty() && spf_pass.await {
            return Ok(Verdict::Skipped("SPF pass"));
        }
        let after_skips = step(&read(&self.map), &triplet, delay_ms, now);
        match after_skips {
            Step::TooEarly(left) => Ok(Verdict::Defer(left)),
            _ => {
                let window_ms = settings.retry_window_hours.saturating_mul(HOUR_MS);
                let expires = now.saturating_add(delay_ms).saturating_add(window_ms);
                let seen = Sighting {
                    first_ms: now,
                    passed_ms: 0,
                    passes: 0,
                };
                self.record(&triplet, seen, expires, now).await?;
                Ok(Verdict::Defer(settings.delay_secs))
            }
        }
    }

    /// Passes of `sender`'s triplets counted mesh-wide.
    pub fn passes_of(&self, sender: &str, now_ms: u64) -> u32 {
        if sender.is_empty() {
            return 0;
        }
        let key = sender_key(sender);
        read(&self.map)
            .values(&key, now_ms)
            .map(|(_, item)| item.value.passes)
            .fold(0u32, u32::saturating_add)
    }

    /// Whether `client`/`sender`/`rcpt` would pass now (no write; for tests and the sim).
    pub fn would_pass(&self, settings: &GreylistSettings, triplet: &str) -> bool {
        let delay_ms = settings.delay_secs.saturating_mul(1000);
        matches!(
            step(&read(&self.map), triplet, delay_ms, self.clock.now_ms()),
            Step::Known { .. } | Step::DelayOver { .. }
        )
    }

    /// Own sightings held (for metrics).
    pub fn own_entries(&self) -> usize {
        read(&self.map).len_of(&self.node_id)
    }

    /// Drops expired sightings from memory and own ones (and those evicted by the bound)
    /// from the store. Returns the rows deleted.
    pub async fn purge(&self) -> Result<usize, StoreError> {
        let now = self.clock.now_ms();
        write(&self.map).expire(now);
        let mut gone = Vec::new();
        {
            let map = read(&self.map);
            self.store.scan(Cf::Greylist, b"", |key, _| {
                let key = String::from_utf8_lossy(key);
                if map.get(&self.node_id, &key, now).is_none() {
                    gone.push(key.into_owned());
                }
                true
            })?;
        }
        if gone.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::new();
        for key in &gone {
            batch.delete(Cf::Greylist, key.clone().into_bytes());
        }
        self.store.commit_relaxed(batch).await?;
        Ok(gone.len())
    }

    async fn refresh(
        &self,
        triplet: &str,
        first_ms: u64,
        now: u64,
        remember_ms: u64,
    ) -> Result<(), StoreError> {
        let own = read(&self.map).get(&self.node_id, triplet, now).cloned();
        let stale = own
            .as_ref()
            .is_none_or(|item| item.value.passed_ms == 0 || item.stamp / 1000 + REFRESH_MS <= now);
        if !stale {
            return Ok(());
        }
        let passes = own.map_or(0, |i| i.value.passes).saturating_add(1);
        let seen = Sighting {
            first_ms,
            passed_ms: now,
            passes,
        };
        self.record(triplet, seen, now.saturating_add(remember_ms), now)
            .await
    }

    async fn count_pass(&self, sender: &str, now: u64, remember_ms: u64) -> Result<(), StoreError> {
        let key = sender_key(sender);
        let own = read(&self.map).get(&self.node_id, &key, now).cloned();
        let seen = Sighting {
            first_ms: own.as_ref().map_or(now, |i| i.value.first_ms),
            passed_ms: now,
            passes: own.map_or(0, |i| i.value.passes).saturating_add(1),
        };
        self.record(&key, seen, now.saturating_add(remember_ms), now)
            .await
    }

    /// Writes an own sighting to the replicated map, then to the store (synced) before
    /// the caller answers. A sighting the store refused stays in memory (it did happen);
    /// the client gets a 4xx and retries.
    async fn record(
        &self,
        key: &str,
        seen: Sighting,
        expires_ms: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let item = write(&self.map)
            .put_own(&self.node_id, key, seen, expires_ms, now)
            .map_err(|e| StoreError::Write(format!("greylist: {e}")))?;
        let value = serde_json::to_vec(&item).map_err(|e| StoreError::Write(e.to_string()))?;
        let mut batch = Batch::new();
        batch.put(Cf::Greylist, key.as_bytes().to_vec(), value);
        self.store.commit(batch).await
    }
}

#[cfg(test)]
#[path = "greylist_tests.rs"]
mod tests;
