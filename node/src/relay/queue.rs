//! Relay queue entries as stored, and the in-memory schedule of when each is due.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Where a queued message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Accepted over SMTP.
    Inbound,
    /// Released from quarantine.
    Release,
    /// A delivery status notification we generated.
    Bounce,
    /// A quarantine digest we generated (`crate::digest`).
    Digest,
    /// Accepted from a trusted network or an authenticated user (the outbound role).
    Outbound,
}

/// Delivery state of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum RcptState {
    /// Not delivered yet (due for another attempt).
    Pending,
    /// Accepted by the downstream server.
    Delivered,
    /// Failed for good, with the reason (the reply, or why it was given up).
    Failed(String),
}

/// One recipient and the server it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The recipient's address, as given in `RCPT TO`.
    pub addr: String,
    /// `host:port` of the downstream server, or `mx:<domain>` for delivery by MX.
    pub relay_to: String,
    /// Whether it is pending, delivered or failed (with the reply).
    pub state: RcptState,
}

/// A message waiting for relay. The raw bytes live under the same id in `Cf::Messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The message id; the raw message is stored under the same key in `Cf::Messages`.
    pub id: String,
    /// The envelope sender (`MAIL FROM`; empty for a bounce).
    pub sender: String,
    /// The recipients and where each of them stands.
    pub recipients: Vec<Recipient>,
    /// The message's subject, for listings (empty when it has none).
    pub subject: String,
    /// The queued message's size in bytes.
    pub size: u64,
    /// When it was queued, in milliseconds since the epoch.
    pub created_ms: u64,
    /// Delivery attempts that ended with a recipient still pending.
    pub attempts: u32,
    /// When the next delivery attempt is due, in milliseconds since the epoch.
    pub next_attempt_ms: u64,
    /// The last temporary failure's reply, if any.
    pub last_error: Option<String>,
    /// Where the message came from (what queued it).
    pub origin: Origin,
}

impl QueueEntry {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("queue entries always serialise")
    }

    pub fn decode(bytes: &[u8]) -> Result<QueueEntry, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Recipients still to be delivered.
    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients
            .iter()
            .filter(|r| r.state == RcptState::Pending)
    }

    /// True when no recipient is pending any more.
    pub fn finished(&self) -> bool {
        self.pending().next().is_none()
    }
}

/// Which entries are due when, and which are being delivered right now. An id is in at
/// most one of the two, once: a message is never handed to two deliveries at a time, and
/// the queue's size counts it once. An id rescheduled while its delivery is still running
/// waits in `after_flight` and becomes due when that delivery ends.
#[derive(Debug, Default)]
pub struct Schedule {
    due: BTreeSet<(u64, String)>,
    at: HashMap<String, u64>,
    in_flight: HashSet<String>,
    after_flight: HashMap<String, u64>,
    /// Ids being handed to another node (retire): never scheduled meanwhile.
    held_out: HashSet<String>,
}

/// Entries the schedule holds at most; past that the relay stops loading more from the
/// store until some are delivered (the store still holds all of them, and the periodic
/// rescan picks them up).
pub const SCHEDULE_ENTRIES_MAX: usize = 1_000_000;

impl Schedule {
    /// Schedules `id` at `at_ms` (moving it if it was scheduled already). An id in flight
    /// is scheduled when its delivery ends ([`Schedule::done`]).
    pub fn insert(&mut self, at_ms: u64, id: String) {
        if self.held_out.contains(&id) {
            return;
        }
        if self.in_flight.contains(&id) {
            self.after_flight.insert(id, at_ms);
            return;
        }
        if let Some(old) = self.at.insert(id.clone(), at_ms) {
            self.due.remove(&(old, id.clone()));
        }
        self.due.insert((at_ms, id));
    }

    /// Scheduled or being delivered.
    pub fn knows(&self, id: &str) -> bool {
        self.at.contains_key(id) || self.in_flight.contains(id)
    }

    pub fn len(&self) -> usize {
        self.due.len() + self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns up to `max` ids due at or before `now_ms`; they are in flight
    /// until [`Schedule::done`].
    pub fn take_due(&mut self, now_ms: u64, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.due.first() {
                Some((at, _)) if *at <= now_ms => {
                    if let Some((_, id)) = self.due.pop_first() {
                        self.at.remove(&id);
                        self.in_flight.insert(id.clone());
                        out.push(id);
                    }
                }
                _ => break,
            }
        }
        out
    }

    /// The delivery of `id` ended; if it was rescheduled meanwhile, it is scheduled now.
    pub fn done(&mut self, id: &str) {
        self.in_flight.remove(id);
        if let Some(at_ms) = self.after_flight.remove(id) {
            self.insert(at_ms, id.to_string());
        }
    }

    /// Takes `id` out of the schedule while it is handed to another node: false (nothing
    /// changed) while a delivery of it runs. Until [`Schedule::readmit`] or
    /// [`Schedule::release_held`], inserting it does nothing.
    pub fn hold_out(&mut self, id: &str) -> bool {
        if self.in_flight.contains(id) {
            return false;
        }
        if let Some(at) = self.at.remove(id) {
            self.due.remove(&(at, id.to_string()));
        }
        self.held_out.insert(id.to_string());
        true
    }

    /// The hand-over of `id` failed: it is scheduled again at `at_ms`.
    pub fn readmit(&mut self, at_ms: u64, id: &str) {
        self.held_out.remove(id);
        self.insert(at_ms, id.to_string());
    }

    /// The hand-over of `id` succeeded (its entry is gone from the store): forgotten.
    pub fn release_held(&mut self, id: &str) {
        self.held_out.remove(id);
    }

    /// When the next entry is due.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Makes every scheduled entry due now (queue flush).
    pub fn make_all_due(&mut self, now_ms: u64) {
        let ids: Vec<String> = self.at.keys().cloned().collect();
        for id in ids {
            self.insert(now_ms, id);
        }
        for at_ms in self.after_flight.values_mut() {
            *at_ms = now_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_held_out_for_a_hand_over_is_never_due() {
        let mut s = Schedule::default();
        s.insert(10, "a".into());
        s.insert(10, "b".into());
        assert_eq!(s.take_due(10, 1), ["a"]);
        assert!(!s.hold_out("a"), "a delivery of it runs");
        assert!(s.hold_out("b"));
        s.insert(5, "b".into());
        assert_eq!(s.take_due(100, 10), Vec::<String>::new(), "b is held out");
        s.readmit(20, "b");
        assert_eq!(s.take_due(100, 10), ["b"]);
        s.done("b");
        assert!(s.hold_out("b"));
        s.release_held("b");
        assert!(!s.knows("b"));
    }

    #[test]
    fn schedule_yields_due_in_time_order() {
        let mut s = Schedule::default();
        s.insert(30, "c".into());
        s.insert(10, "a".into());
        s.insert(20, "b".into());
        assert_eq!(s.take_due(5, 10), Vec::<String>::new());
        assert_eq!(s.take_due(20, 10), vec!["a".to_string(), "b".to_string()]);
        assert!(s.knows("a"), "in flight");
        assert_eq!(s.next_due_ms(), Some(30));
        s.insert(40, "c".into());
        assert_eq!(
            s.next_due_ms(),
            Some(40),
            "rescheduling moves, never duplicates"
        );
        s.make_all_due(21);
        assert_eq!(s.take_due(21, 5), vec!["c".to_string()]);
        s.done("a");
        s.done("b");
        s.done("c");
        assert!(s.is_empty());
        assert!(!s.knows("a"));
    }

    #[test]
    fn an_entry_rescheduled_in_flight_counts_once_and_is_handed_out_once() {
        let mut s = Schedule::default();
        s.insert(10, "a".into());
        assert_eq!(s.take_due(10, 5), vec!["a".to_string()]);
        s.insert(1_000, "a".into());
        assert_eq!(
            s.len(),
            1,
            "rescheduled during its delivery, still one entry"
        );
        s.make_all_due(20);
        assert_eq!(
            s.take_due(20, 5),
            Vec::<String>::new(),
            "not handed to a second delivery while the first runs"
        );
        s.done("a");
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due_ms(), Some(20), "the flush reached it");
        assert_eq!(s.take_due(20, 5), vec!["a".to_string()]);
        s.done("a");
        assert!(s.is_empty());
    }

    #[test]
    fn entry_round_trips_and_tracks_pending() {
        let mut e = QueueEntry {
            id: "01J".into(),
            sender: "a@b".into(),
            recipients: vec![
                Recipient {
                    addr: "x@example.com".into(),
                    relay_to: "h:25".into(),
                    state: RcptState::Pending,
                },
                Recipient {
                    addr: "y@example.com".into(),
                    relay_to: "h:25".into(),
                    state: RcptState::Delivered,
                },
            ],
            subject: "s".into(),
            size: 3,
            created_ms: 1,
            attempts: 0,
            next_attempt_ms: 1,
            last_error: None,
            origin: Origin::Inbound,
        };
        assert_eq!(QueueEntry::decode(&e.encode()).unwrap(), e);
        assert!(!e.finished());
        e.recipients[0].state = RcptState::Failed("550 no".into());
        assert!(e.finished());
    }
}
