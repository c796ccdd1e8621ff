//! Per-minute history of this node's counters, for the console's graphs
//! (`GET /api/v1/stats/series`).
//!
//! Housekeeping calls [`Recorder::record`] every [`RECORD_INTERVAL`]: what the counters
//! grew by since the last call is added to the current minute's entry in the store
//! (`Cf::Meta`, key `series/` + the minute since the epoch, big-endian, so keys sort by
//! time). Minutes with nothing counted are not written. Entries older than
//! [`RETENTION_MINUTES`] are deleted as time moves on, at most [`PRUNE_MAX`] per call,
//! so the history stays bounded at 30 days. [`SeriesQuery::aggregate`] (pure) sums the
//! minutes into `step`-wide buckets.

use std::time::Duration;

use mxmesh_crdt::counters::{CounterKind, Counters};

use crate::store::{Batch, Cf, Store, StoreError};

/// How long the history is kept: 30 days of minutes.
pub const RETENTION_MINUTES: u64 = 30 * 24 * 60;
/// How often housekeeping folds the counters' growth into the current minute.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(10);
/// Old minutes deleted per [`Recorder::record`] call at most (the rest go next time).
pub const PRUNE_MAX: usize = 1_000;
/// Buckets one answer holds at most (a day of minutes, or 30 days of half hours).
pub const POINTS_MAX: u64 = 1_440;
/// The bucket width when the query names none, in minutes.
pub const STEP_DEFAULT_MINUTES: u64 = 1;
/// The window when the query names no `since`, in minutes.
pub const WINDOW_DEFAULT_MINUTES: u64 = 60;
/// One minute in milliseconds.
pub const MINUTE_MS: u64 = 60_000;

/// Key prefix of the history in `Cf::Meta`.
const KEY_PREFIX: &[u8] = b"series/";

/// A history query that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    /// `metric` names no counter.
    #[error("metric: {0:?} is not a counter (expected one of {1})")]
    Metric(String, String),
    /// `step` is not a whole number of minutes of at least one.
    #[error("step: {0} seconds is not a positive multiple of 60")]
    Step(u64),
    /// The window holds more buckets than [`POINTS_MAX`].
    #[error(
        "since/step: {0} buckets asked for, at most {POINTS_MAX} (widen step or shorten the window)"
    )]
    TooManyPoints(u64),
    /// `since` lies in the future.
    #[error("since: {0} ms is after now")]
    Future(u64),
}

/// Which counter, over which minutes, in buckets of how many minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesQuery {
    /// The counter.
    pub metric: CounterKind,
    /// First minute (since the epoch) of the first bucket; a multiple of `step_min`.
    pub since_min: u64,
    /// The minute after the last one counted.
    pub until_min: u64,
    /// Bucket width in minutes (≥ 1).
    pub step_min: u64,
}

impl SeriesQuery {
    /// Builds a query from API values: `since_ms` (older than 30 days is clipped), `now_ms`,
    /// `step_secs` (a multiple of 60).
    pub fn new(
        metric: &str,
        since_ms: Option<u64>,
        step_secs: Option<u64>,
        now_ms: u64,
    ) -> Result<SeriesQuery, SeriesError> {
        let metric = metric_kind(metric)?;
        let step_secs = step_secs.unwrap_or(STEP_DEFAULT_MINUTES * 60);
        if step_secs == 0 || !step_secs.is_multiple_of(60) {
            return Err(SeriesError::Step(step_secs));
        }
        let step_min = step_secs / 60;
        let now_min = now_ms / MINUTE_MS;
        let until_min = now_min + 1;
        let since_ms =
            since_ms.unwrap_or(now_ms.saturating_sub(WINDOW_DEFAULT_MINUTES * MINUTE_MS));
        if since_ms > now_ms {
            return Err(SeriesError::Future(since_ms));
        }
        let oldest = until_min.saturating_sub(RETENTION_MINUTES);
        let since_min = (since_ms / MINUTE_MS).max(oldest);
        let since_min = since_min - since_min % step_min;
        let q = SeriesQuery {
            metric,
            since_min,
            until_min,
            step_min,
        };
        if q.buckets() > POINTS_MAX {
            return Err(SeriesError::TooManyPoints(q.buckets()));
        }
        Ok(q)
    }

    /// The query as another node sends it ([`SeriesArgs`]), checked the same way.
    pub fn from_args(a: &SeriesArgs) -> Result<SeriesQuery, SeriesError> {
        let q = SeriesQuery {
            metric: metric_kind(&a.metric)?,
            since_min: a.since_min,
            until_min: a.until_min.max(a.since_min),
            step_min: a.step_min,
        };
        if q.step_min == 0 {
            return Err(SeriesError::Step(0));
        }
        if q.buckets() > POINTS_MAX {
            return Err(SeriesError::TooManyPoints(q.buckets()));
        }
        Ok(q)
    }

    /// The query as it travels to another node.
    pub fn args(&self) -> SeriesArgs {
        SeriesArgs {
            metric: self.metric.as_str().to_string(),
            since_min: self.since_min,
            until_min: self.until_min,
            step_min: self.step_min,
        }
    }

    /// How many buckets the answer has.
    pub fn buckets(&self) -> u64 {
        (self.until_min - self.since_min).div_ceil(self.step_min)
    }

    /// The start of bucket `i`, in milliseconds since the epoch.
    pub fn bucket_start_ms(&self, i: u64) -> u64 {
        (self.since_min + i * self.step_min) * MINUTE_MS
    }

    /// Sums `minutes` (minute, counts) into the buckets; minutes outside the window are
    /// left out.
    pub fn aggregate(&self, minutes: impl IntoIterator<Item = (u64, Counters)>) -> Vec<u64> {
        let mut out = vec![0u64; self.buckets() as usize];
        for (minute, counts) in minutes {
            if minute < self.since_min || minute >= self.until_min {
                continue;
            }
            let i = ((minute - self.since_min) / self.step_min) as usize;
            out[i] = out[i].saturating_add(counts.get(self.metric));
        }
        out
    }

    /// This node's buckets, read from its store.
    pub fn read(&self, store: &Store) -> Result<Vec<u64>, StoreError> {
        let mut minutes = Vec::new();
        let until = key(self.until_min);
        store.scan(Cf::Meta, &key(self.since_min), |k, v| {
            if !k.starts_with(KEY_PREFIX) || k >= until.as_slice() {
                return false;
            }
            if let (Some(m), Ok(c)) = (minute_of(k), serde_json::from_slice::<Counters>(v)) {
                minutes.push((m, c));
            }
            true
        })?;
        Ok(self.aggregate(minutes))
    }
}

/// A [`SeriesQuery`] as forwarded to another node (so every node answers the same buckets).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeriesArgs {
    /// The counter's name.
    pub metric: String,
    /// [`SeriesQuery::since_min`].
    pub since_min: u64,
    /// [`SeriesQuery::until_min`].
    pub until_min: u64,
    /// [`SeriesQuery::step_min`].
    pub step_min: u64,
}

/// The counter a metric name names.
fn metric_kind(name: &str) -> Result<CounterKind, SeriesError> {
    CounterKind::ALL
        .into_iter()
        .find(|k| k.as_str() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = CounterKind::ALL.iter().map(|k| k.as_str()).collect();
            SeriesError::Metric(name.to_string(), names.join(", "))
        })
}

/// Folds the counters' growth into the per-minute history.
pub struct Recorder {
    /// The counters as of the last call.
    last: Counters,
}

impl Recorder {
    /// Starts from the counters as they are now (what was counted before is not history).
    pub fn new(now: Counters) -> Recorder {
        Recorder { last: now }
    }

    /// Adds what grew since the last call to minute `now_ms / 60 000`, and deletes minutes
    /// older than the retention. Counters that went down (lost on a crash) count as zero.
    pub async fn record(
        &mut self,
        store: &Store,
        now: Counters,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let delta = growth(&self.last, &now);
        let minute = now_ms / MINUTE_MS;
        let mut b = Batch::new();
        if delta != Counters::default() {
            let k = key(minute);
            let mut counts = store
                .get(Cf::Meta, &k)?
                .and_then(|v| serde_json::from_slice::<Counters>(&v).ok())
                .unwrap_or_default();
            counts.add(&delta);
            b.put(Cf::Meta, k, serde_json::to_vec(&counts).unwrap_or_default());
        }
        prune(store, minute.saturating_sub(RETENTION_MINUTES), &mut b)?;
        if !b.is_empty() {
            store.commit_relaxed(b).await?;
        }
        self.last = now;
        Ok(())
    }
}

/// Adds deletions of the minutes before `before_min` to `b` (at most [`PRUNE_MAX`]).
fn prune(store: &Store, before_min: u64, b: &mut Batch) -> Result<(), StoreError> {
    let before = key(before_min);
    let mut n = 0usize;
    store.scan(Cf::Meta, KEY_PREFIX, |k, _| {
        if !k.starts_with(KEY_PREFIX) || k >= before.as_slice() || n >= PRUNE_MAX {
            return false;
        }
        b.delete(Cf::Meta, k.to_vec());
        n += 1;
        true
    })
}

/// `now - last`, counter by counter, never below zero.
fn growth(last: &Counters, now: &Counters) -> Counters {
    let g = |k: CounterKind| now.get(k).saturating_sub(last.get(k));
    Counters {
        received: g(CounterKind::Received),
        accepted: g(CounterKind::Accepted),
        tagged: g(CounterKind::Tagged),
        quarantined: g(CounterKind::Quarantined),
        rejected: g(CounterKind::Rejected),
        relayed: g(CounterKind::Relayed),
        deferred: g(CounterKind::Deferred),
        bounced: g(CounterKind::Bounced),
        tempfailed: g(CounterKind::Tempfailed),
    }
}

fn key(minute: u64) -> Vec<u8> {
    let mut k = KEY_PREFIX.to_vec();
    k.extend_from_slice(&minute.to_be_bytes());
    k
}

fn minute_of(k: &[u8]) -> Option<u64> {
    let b: [u8; 8] = k.strip_prefix(KEY_PREFIX)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_800_000_000_000;

    fn counts(received: u64, quarantined: u64) -> Counters {
        Counters {
            received,
            quarantined,
            ..Counters::default()
        }
    }

    #[test]
    fn query_checks_its_parameters() {
        assert!(matches!(
            SeriesQuery::new("nope", None, None, NOW_MS),
            Err(SeriesError::Metric(..))
        ));
        assert_eq!(
            SeriesQuery::new("received", None, Some(90), NOW_MS),
            Err(SeriesError::Step(90))
        );
        assert_eq!(
            SeriesQuery::new("received", None, Some(0), NOW_MS),
            Err(SeriesError::Step(0))
        );
        assert!(matches!(
            SeriesQuery::new("received", Some(0), Some(60), NOW_MS),
            Err(SeriesError::TooManyPoints(_))
        ));
        assert_eq!(
            SeriesQuery::new("received", Some(NOW_MS + 1), None, NOW_MS),
            Err(SeriesError::Future(NOW_MS + 1))
        );
        let q = SeriesQuery::new("relayed", None, None, NOW_MS).unwrap();
        assert_eq!(q.metric, CounterKind::Relayed);
        assert_eq!(q.buckets(), WINDOW_DEFAULT_MINUTES + 1);
    }

    #[test]
    fn since_older_than_retention_is_clipped() {
        let q = SeriesQuery::new("received", Some(0), Some(3600), NOW_MS).unwrap();
        assert!(q.until_min - q.since_min <= RETENTION_MINUTES + q.step_min);
        assert_eq!(q.buckets(), 721);
    }

    #[test]
    fn aggregate_sums_minutes_into_steps() {
        let now_min = NOW_MS / MINUTE_MS;
        let since = (now_min - 9) * MINUTE_MS;
        let q = SeriesQuery::new("quarantined", Some(since), Some(300), NOW_MS).unwrap();
        assert_eq!(q.since_min % 5, 0);
        let minutes = (q.since_min..q.until_min).map(|m| (m, counts(10, 1)));
        let out = q.aggregate(minutes.chain([(q.since_min - 1, counts(0, 99))]));
        let total: u64 = out.iter().sum();
        assert_eq!(total, q.until_min - q.since_min);
        assert!(out[..out.len() - 1].iter().all(|&n| n == 5));
        assert_eq!(q.bucket_start_ms(1), (q.since_min + 5) * MINUTE_MS);
    }

    #[test]
    fn growth_never_goes_below_zero() {
        let d = growth(&counts(10, 5), &counts(12, 3));
        assert_eq!((d.received, d.quarantined), (2, 0));
    }

    #[tokio::test]
    async fn recorder_adds_up_per_minute_and_expires_old_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut r = Recorder::new(counts(100, 0));
        let old_ms = NOW_MS - (RETENTION_MINUTES + 5) * MINUTE_MS;
        r.record(&store, counts(101, 0), old_ms).await.unwrap();
        r.record(&store, counts(103, 1), NOW_MS).await.unwrap();
        r.record(&store, counts(104, 1), NOW_MS + 1).await.unwrap();
        r.record(&store, counts(104, 1), NOW_MS + MINUTE_MS)
            .await
            .unwrap();
        let q = SeriesQuery::new(
            "received",
            Some(NOW_MS - 120 * MINUTE_MS),
            None,
            NOW_MS + MINUTE_MS,
        )
        .unwrap();
        let out = q.read(&store).unwrap();
        assert_eq!(out.iter().sum::<u64>(), 3, "the two growths of this minute");
        assert_eq!(out[out.len() - 2], 3);
        assert_eq!(
            store.get(Cf::Meta, &key(old_ms / MINUTE_MS)).unwrap(),
            None,
            "expired"
        );
        let q = SeriesQuery::new("quarantined", Some(NOW_MS - MINUTE_MS), None, NOW_MS).unwrap();
        assert_eq!(q.read(&store).unwrap().iter().sum::<u64>(), 1);
    }

    #[tokio::test]
    async fn pruning_is_bounded_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Batch::new();
        for m in 0..(PRUNE_MAX as u64 + 10) {
            b.put(Cf::Meta, key(m), serde_json::to_vec(&counts(1, 0)).unwrap());
        }
        store.commit(b).await.unwrap();
        let mut r = Recorder::new(Counters::default());
        r.record(&store, Counters::default(), NOW_MS).await.unwrap();
        assert!(
            store
                .get(Cf::Meta, &key(PRUNE_MAX as u64 - 1))
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get(Cf::Meta, &key(PRUNE_MAX as u64))
                .unwrap()
                .is_some()
        );
        r.record(&store, Counters::default(), NOW_MS).await.unwrap();
        assert!(
            store
                .get(Cf::Meta, &key(PRUNE_MAX as u64 + 9))
                .unwrap()
                .is_none()
        );
    }
}
