//! Relay: a persistent queue delivering accepted mail to each domain's downstream server,
//! at least once, with exponential backoff, a queue lifetime and DSN bounces.
//!
//! The queue lives in the store (`Cf::Queue` + `Cf::Messages`); [`queue::Schedule`] only
//! says when each entry is due and is rebuilt from the store at start, so the queue
//! survives restarts.
//!
//! Recipients in our domains go to the domain's `relay_to`; any other recipient (a DSN to
//! an outside sender, or outbound mail) is delivered by MX ([`by_mx`]: [`mx`] lookups,
//! [`mx_order`], [`destination`] limits), a DSN through `[relay] bounce_relay` when set.

pub mod body;
pub mod by_mx;
pub mod deliver;
pub mod destination;
pub mod dsn;
pub mod feed;
pub mod mx;
pub mod mx_order;
pub mod queue;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use crate::config::Config;
use crate::stats::{Stats, bump};
use crate::store::{Batch, Cf, Store, StoreError};
use crate::trace::{self, TraceEvent};
use queue::{Origin, QueueEntry, RcptState, Recipient, Schedule};

/// Longest the worker sleeps without looking at the schedule.
const IDLE_WAKE_MS: u64 = 1000;
/// How often the worker rescans the stored queue for entries the schedule does not hold
/// (beyond `SCHEDULE_ENTRIES_MAX`, or lost to a failed delivery task).
const RESCAN_INTERVAL_MS: u64 = 60_000;

/// The relay queue of this node. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    store: Store,
    stats: Arc<Stats>,
    schedule: Mutex<Schedule>,
    wake: Notify,
    deliveries: Arc<Semaphore>,
    connections: deliver::ConnectionCache,
    mx: mx::MxResolver,
    destinations: destination::DestinationLimits,
    /// Entries added and gone, for the queue's shadows (queue copies).
    feed: feed::QueueFeed,
}

impl Relay {
    /// The node's wall clock, ms.
    fn now_ms(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    /// The relay of this node over `store`; nothing runs until [`Relay::run`].
    pub fn new(config: Arc<Config>, store: Store, stats: Arc<Stats>) -> Relay {
        let permits = config.relay.max_concurrent_deliveries;
        let resolver = config
            .relay
            .resolver
            .or_else(|| config.filter.as_ref().and_then(|f| f.resolver));
        let per_destination = config.relay.destination_concurrency;
        Relay {
            inner: Arc::new(Inner {
                config,
                store,
                stats,
                schedule: Mutex::new(Schedule::default()),
                wake: Notify::new(),
                deliveries: Arc::new(Semaphore::new(permits)),
                connections: deliver::ConnectionCache::default(),
                mx: mx::MxResolver::new(resolver),
                destinations: destination::DestinationLimits::new(per_destination),
                feed: feed::QueueFeed::default(),
            }),
        }
    }

    /// Adds every stored entry the schedule does not know yet (at start, on flush, and
    /// periodically). Returns how many the schedule holds.
    pub fn load(&self) -> Result<usize, StoreError> {
        let mut found = Vec::new();
        self.inner.store.scan(Cf::Queue, b"", |k, v| {
            let id = String::from_utf8_lossy(k);
            if !self.lock().knows(&id) {
                match QueueEntry::decode(v) {
                    Ok(e) => found.push((e.next_attempt_ms, e.id)),
                    Err(e) => tracing::error!(message_id = %id, error = %e, "relay: undecodable queue entry left in place"),
                }
            }
            found.len() < queue::SCHEDULE_ENTRIES_MAX
        })?;
        let mut sched = self.lock();
        for (at, id) in found {
            if sched.len() >= queue::SCHEDULE_ENTRIES_MAX {
                break;
            }
            if !sched.knows(&id) {
                sched.insert(at, id);
            }
        }
        Ok(sched.len())
    }

    /// Entries scheduled or in delivery (the queue's size as far as the worker knows).
    pub fn scheduled(&self) -> usize {
        self.lock().len()
    }

    /// Builds a queue entry for `recipients`, each routed by its domain.
    pub fn entry(
        &self,
        id: &str,
        sender: &str,
        recipients: &[String],
        subject: &str,
        size: u64,
        origin: Origin,
    ) -> QueueEntry {
        let now = self.now_ms();
        QueueEntry {
            id: id.to_string(),
            sender: sender.to_string(),
            recipients: recipients
                .iter()
                .map(|r| Recipient {
                    addr: r.clone(),
                    relay_to: self.route(r, origin).unwrap_or_default(),
                    state: RcptState::Pending,
                })
                .collect(),
            subject: subject.to_string(),
            size,
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
            origin,
        }
    }

    /// The downstream for an address: its domain's `relay_to`, else (for a DSN) the
    /// bounce relay, else delivery by MX to its domain.
    fn route(&self, addr: &str, origin: Origin) -> Option<String> {
        let domain = addr.rsplit_once('@').map(|(_, d)| d)?;
        let c = &self.inner.config;
        let bounce_relay = match origin {
            Origin::Bounce => c.relay.bounce_relay.clone(),
            Origin::Inbound | Origin::Release | Origin::Outbound | Origin::Digest => None,
        };
        Some(
            c.relay_for(domain)
                .map(str::to_string)
                .or(bounce_relay)
                .unwrap_or_else(|| by_mx::route(domain)),
        )
    }

    /// Adds the entry (and optionally its body) to a batch the caller commits.
    pub fn stage(batch: &mut Batch, entry: &QueueEntry, body: Option<&[u8]>) {
        batch.put(Cf::Queue, entry.id.as_bytes(), entry.encode());
        if let Some(body) = body {
            batch.put(Cf::Messages, entry.id.as_bytes(), body);
        }
    }

    /// Tells the worker about an entry whose batch has been committed (a retry of an
    /// entry already queued).
    pub fn schedule(&self, entry: &QueueEntry) {
        self.lock().insert(entry.next_attempt_ms, entry.id.clone());
        self.inner.wake.notify_one();
    }

    /// Tells the worker and the feed about an entry newly committed to the queue.
    pub fn queued(&self, entry: &QueueEntry) {
        self.schedule(entry);
        self.inner.feed.push(feed::QueueChange::Added {
            id: entry.id.clone(),
            at_ms: self.now_ms(),
        });
    }

    /// The queue's changes (for its shadows on other nodes).
    pub fn feed(&self) -> &feed::QueueFeed {
        &self.inner.feed
    }

    fn left(&self, id: &str) {
        self.inner
            .feed
            .push(feed::QueueChange::Left { id: id.to_string() });
    }

    /// The stored entry and message bytes of queue entry `id`, if it is queued.
    pub fn stored(&self, id: &str) -> Result<Option<(QueueEntry, Vec<u8>)>, StoreError> {
        let store = &self.inner.store;
        let Some(raw) = store.get(Cf::Queue, id.as_bytes())? else {
            return Ok(None);
        };
        let entry = QueueEntry::decode(&raw)
            .map_err(|e| StoreError::Read(format!("queue entry {id}: {e}")))?;
        let body = store
            .get(Cf::Messages, id.as_bytes())?
            .ok_or_else(|| StoreError::Read(format!("queue entry {id} has no message bytes")))?;
        Ok(Some((entry, body)))
    }

    /// Hands queue entry `id` to another node: takes it out of the schedule (refused while
    /// a delivery of it runs), lets `send` deliver entry and bytes (it returns once the
    /// other node holds them durably), then deletes them here in one synced batch. On
    /// failure the entry is scheduled again. Returns whether it was handed over.
    pub async fn hand_over<F, Fut>(&self, id: &str, send: F) -> Result<bool, String>
    where
        F: FnOnce(QueueEntry, Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        if !self.lock().hold_out(id) {
            return Ok(false);
        }
        let outcome = self.hand_over_held(id, send).await;
        match &outcome {
            Ok(true) => self.lock().release_held(id),
            _ => self.lock().readmit(self.now_ms(), id),
        }
        outcome
    }

    async fn hand_over_held<F, Fut>(&self, id: &str, send: F) -> Result<bool, String>
    where
        F: FnOnce(QueueEntry, Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let store = &self.inner.store;
        let Some(raw) = store
            .get(Cf::Queue, id.as_bytes())
            .map_err(|e| e.to_string())?
        else {
            return Ok(true);
        };
        let entry = QueueEntry::decode(&raw).map_err(|e| format!("queue entry {id}: {e}"))?;
        let body = store
            .get(Cf::Messages, id.as_bytes())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("queue entry {id} has no message bytes"))?;
        send(entry, body).await?;
        let mut b = Batch::new();
        b.delete(Cf::Queue, id.as_bytes());
        b.delete(Cf::Messages, id.as_bytes());
        store.commit(b).await.map_err(|e| e.to_string())?;
        self.left(id);
        Ok(true)
    }

    /// Takes a queue entry another node handed over (or one whose owner left the mesh):
    /// stored with the writes of `batch` (synced), then scheduled. An id this node already
    /// queues is kept as it is (`batch` is still committed).
    pub async fn take_over(
        &self,
        entry: &QueueEntry,
        body: &[u8],
        mut batch: Batch,
    ) -> Result<(), StoreError> {
        let known = self
            .inner
            .store
            .get(Cf::Queue, entry.id.as_bytes())?
            .is_some();
        if !known {
            Relay::stage(&mut batch, entry, Some(body));
        }
        self.inner.store.commit(batch).await?;
        if !known {
            self.queued(entry);
        }
        Ok(())
    }

    /// The oldest `limit` entries of the queue.
    pub fn list(&self, limit: usize) -> Result<Vec<QueueEntry>, StoreError> {
        let mut out = Vec::new();
        self.inner.store.scan(Cf::Queue, b"", |_, v| {
            if let Ok(e) = QueueEntry::decode(v) {
                out.push(e);
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Makes every entry due now (`postqueue -f`), including stored ones the schedule
    /// did not hold.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.load()?;
        self.lock().make_all_due(self.now_ms());
        self.inner.wake.notify_one();
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.inner
            .schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The worker: delivers due entries until `shutdown` turns true, then waits for the
    /// deliveries in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut last_rescan = self.now_ms();
        loop {
            if self.now_ms().saturating_sub(last_rescan) >= RESCAN_INTERVAL_MS {
                last_rescan = self.now_ms();
                let me = self.clone();
                if let Ok(Err(e)) = crate::rt::blocking(move || me.load()).await {
                    tracing::warn!(error = %e, "relay: queue rescan failed");
                }
            }
            if *shutdown.borrow() {
                break;
            }
            let free = self.inner.deliveries.available_permits();
            let due = self.lock().take_due(self.now_ms(), free);
            for id in due {
                let Ok(permit) = self.inner.deliveries.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    // An inner task, so a panic in one delivery cannot lose the id.
                    let worker = me.clone();
                    let task_id = id.clone();
                    if tokio::spawn(async move { worker.process(&task_id).await })
                        .await
                        .is_err()
                    {
                        tracing::error!(message_id = %id, "relay: delivery task failed; will retry");
                        me.retry_later(&id);
                    }
                    me.lock().done(&id);
                    me.inner.wake.notify_one();
                    drop(permit);
                });
            }
            let sleep_ms = self
                .lock()
                .next_due_ms()
                .map(|t| t.saturating_sub(self.now_ms()))
                .unwrap_or(IDLE_WAKE_MS)
                .clamp(1, IDLE_WAKE_MS);
            let all_busy = self.inner.deliveries.available_permits() == 0;
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(if all_busy { 10 } else { sleep_ms })) => {}
                _ = shutdown.changed() => {}
            }
        }
        let total = self.inner.config.relay.max_concurrent_deliveries as u32;
        let _ = self.inner.deliveries.acquire_many(total).await;
    }

    /// One attempt for one entry: deliver, record outcomes, bounce, reschedule or finish.
    async fn process(&self, id: &str) {
        if let Err(e) = self.try_process(id).await {
            tracing::warn!(message_id = id, error = %e, "relay: store error; will retry");
            self.retry_later(id);
        }
    }

    fn retry_later(&self, id: &str) {
        let delay_ms = self
            .inner
            .config
            .relay
            .retry_initial_secs
            .saturating_mul(1000);
        self.lock()
            .insert(self.now_ms().saturating_add(delay_ms), id.to_string());
    }

    async fn try_process(&self, id: &str) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let Some(raw_entry) = store.get(Cf::Queue, id.as_bytes())? else {
            return Ok(());
        };
        let Ok(mut entry) = QueueEntry::decode(&raw_entry) else {
            tracing::error!(
                message_id = id,
                "relay: undecodable queue entry left in place"
            );
            return Ok(());
        };
        let Some(body) = store.get(Cf::Messages, id.as_bytes())? else {
            return Err(StoreError::Read(format!(
                "message bytes of queue entry {id} are missing"
            )));
        };
        let before = entry.clone();
        self.attempt(&mut entry, &body).await;
        self.conclude(before, entry, &body, self.now_ms()).await
    }

    /// After an attempt at `now`: fails what outlived the queue lifetime (so it bounces),
    /// then settles. `now` is a parameter so the lifetime can be tested without waiting.
    async fn conclude(
        &self,
        before: QueueEntry,
        mut entry: QueueEntry,
        body: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        let cfg = &self.inner.config.relay;
        if !entry.finished() && schedule::expired(entry.created_ms, now, cfg.queue_lifetime_hours) {
            let why = format!(
                "queue lifetime of {} hours exceeded; last error: {}",
                cfg.queue_lifetime_hours,
                entry.last_error.clone().unwrap_or_default()
            );
            for r in entry
                .recipients
                .iter_mut()
                .filter(|r| r.state == RcptState::Pending)
            {
                r.state = RcptState::Failed(why.clone());
            }
        }
        self.settle(before, entry, body, now).await
    }

    /// Tries every pending recipient, grouped by downstream server.
    async fn attempt(&self, entry: &mut QueueEntry, body: &[u8]) {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in entry.recipients.iter().enumerate() {
            if r.state == RcptState::Pending {
                groups.entry(r.relay_to.clone()).or_default().push(i);
            }
        }
        for (relay_to, idx) in groups {
            if relay_to.is_empty() {
                for i in idx {
                    entry.recipients[i].state =
                        RcptState::Failed("550 5.1.2 no route to the recipient's domain".into());
                }
                continue;
            }
            let rcpts: Vec<String> = idx
                .iter()
                .map(|&i| entry.recipients[i].addr.clone())
                .collect();
            let outcomes = {
                let _hold = crate::rt::hold_for_real_io();
                self.deliver_group(&relay_to, &entry.sender, &rcpts, body)
                    .await
            };
            for (i, o) in idx.into_iter().zip(outcomes) {
                match o {
                    deliver::Outcome::Delivered => entry.recipients[i].state = RcptState::Delivered,
                    deliver::Outcome::Permanent(why) => {
                        entry.recipients[i].state = RcptState::Failed(why)
                    }
                    deliver::Outcome::Temporary(why) => entry.last_error = Some(why),
                }
            }
        }
    }

    /// One attempt for the recipients of one route: a `host:port`, or by MX.
    async fn deliver_group(
        &self,
        relay_to: &str,
        sender: &str,
        rcpts: &[String],
        body: &[u8],
    ) -> Vec<deliver::Outcome> {
        let cfg = &self.inner.config;
        let timeout = Duration::from_secs(cfg.relay.timeout_secs);
        let Some(domain) = by_mx::domain_of(relay_to) else {
            let attempt = deliver::Attempt {
                relay_to,
                server_name: None,
                helo: &cfg.smtp.hostname,
                sender,
                recipients: rcpts,
                body,
                timeout,
            };
            return deliver::deliver(&attempt, &self.inner.connections).await;
        };
        let _slot = self.inner.destinations.acquire(domain).await;
        let attempt = by_mx::MxAttempt {
            domain,
            helo: &cfg.smtp.hostname,
            sender,
            recipients: rcpts,
            body,
            timeout,
            port: by_mx::SMTP_PORT,
        };
        by_mx::deliver(&attempt, &self.inner.mx, &self.inner.connections).await
    }

    /// Commits the attempt's result: finished entries go, others are rescheduled; newly
    /// failed recipients get a DSN in the same batch.
    async fn settle(
        &self,
        before: QueueEntry,
        mut entry: QueueEntry,
        body: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        let node = self.inner.config.node.id.clone();
        let newly = |f: &dyn Fn(&RcptState) -> bool| -> Vec<(String, String)> {
            entry
                .recipients
                .iter()
                .zip(&before.recipients)
                .filter(|(a, b)| f(&a.state) && a.state != b.state)
                .map(|(a, _)| {
                    let why = match &a.state {
                        RcptState::Failed(w) => w.clone(),
                        _ => String::new(),
                    };
                    (a.addr.clone(), why)
                })
                .collect()
        };
        let delivered = newly(&|s| *s == RcptState::Delivered);
        let failed = newly(&|s| matches!(s, RcptState::Failed(_)));
        let mut batch = Batch::new();
        let mut bounce = None;
        if !failed.is_empty() && entry.origin != Origin::Bounce && !entry.sender.is_empty() {
            bounce = self.stage_bounce(&mut batch, &entry, &failed, body, now);
        }
        let mut events = Vec::new();
        let ev = |event: &str, rcpts: Vec<String>, detail: String| TraceEvent {
            time_ms: now,
            node: node.clone(),
            message_id: entry.id.clone(),
            event: event.into(),
            sender: entry.sender.clone(),
            recipients: rcpts,
            detail,
            score: None,
            symbols: Vec::new(),
        };
        if !delivered.is_empty() {
            events.push(ev(
                "relayed",
                delivered.iter().map(|d| d.0.clone()).collect(),
                String::new(),
            ));
        }
        if !failed.is_empty() {
            events.push(ev(
                "bounced",
                failed.iter().map(|d| d.0.clone()).collect(),
                failed[0].1.clone(),
            ));
        }
        if entry.finished() {
            batch
                .delete(Cf::Queue, entry.id.as_bytes())
                .delete(Cf::Messages, entry.id.as_bytes());
        } else {
            entry.attempts += 1;
            let cfg = &self.inner.config.relay;
            let delay = schedule::retry_delay_secs(
                entry.attempts,
                cfg.retry_initial_secs,
                cfg.retry_max_secs,
            );
            entry.next_attempt_ms = now.saturating_add(delay.saturating_mul(1000));
            batch.put(Cf::Queue, entry.id.as_bytes(), entry.encode());
            let pending = entry.pending().map(|r| r.addr.clone()).collect();
            events.push(ev(
                "deferred",
                pending,
                entry.last_error.clone().unwrap_or_default(),
            ));
        }
        for e in &events {
            trace::record(&mut batch, e);
        }
        // Not synced: losing this batch in a crash only rolls the entry back to its last
        // synced state, in which the message is still queued, so it is retried (delivered
        // at least once, as promised) and nothing acknowledged can be lost. A later synced
        // write makes it durable anyway. This halves the fsyncs per relayed message.
        self.inner.store.commit_relaxed(batch).await?;
        self.count(&delivered, &failed, &entry);
        match entry.finished() {
            true => self.left(&entry.id),
            false => self.schedule(&entry),
        }
        if let Some(b) = bounce {
            self.queued(&b);
        }
        Ok(())
    }

    fn count(
        &self,
        delivered: &[(String, String)],
        failed: &[(String, String)],
        entry: &QueueEntry,
    ) {
        let s = &self.inner.stats;
        if !delivered.is_empty() {
            bump(&s.relayed);
        }
        if !failed.is_empty() {
            bump(&s.bounced);
        }
        if !entry.finished() {
            bump(&s.deferred);
        }
    }

    /// Queues a DSN to the original sender in `batch`.
    fn stage_bounce(
        &self,
        batch: &mut Batch,
        entry: &QueueEntry,
        failed: &[(String, String)],
        body: &[u8],
        now: u64,
    ) -> Option<QueueEntry> {
        let host = &self.inner.config.smtp.hostname;
        let failures: Vec<dsn::Failure> = failed
            .iter()
            .map(|(rcpt, reason)| dsn::Failure { rcpt, reason })
            .collect();
        let id = self.inner.config.clock.ulid().to_string();
        let date = crate::clock::rfc5322_date(now);
        let boundary = format!("{id}/{host}");
        let msg = dsn::build(&dsn::BounceInput {
            reporting_host: host,
            original_id: &entry.id,
            original_sender: &entry.sender,
            failures: &failures,
            original: body,
            date: &date,
            boundary: &boundary,
        });
        let dsn_entry = self.entry(
            &id,
            "",
            std::slice::from_ref(&entry.sender),
            "Undelivered Mail Returned to Sender",
            msg.len() as u64,
            Origin::Bounce,
        );
        if dsn_entry.recipients.iter().all(|r| r.relay_to.is_empty()) {
            tracing::warn!(
                message_id = %entry.id,
                sender = %entry.sender,
                "relay: bounce not sent: the sender's address has no domain"
            );
            return None;
        }
        Relay::stage(batch, &dsn_entry, Some(&msg));
        Some(dsn_entry)
    }
}

#[cfg(test)]
mod tests;
