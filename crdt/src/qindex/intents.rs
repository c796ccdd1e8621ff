//! Release and delete requests ("intents"): recorded by any node, carried out by the owner.

use super::QuarantineIndex;
use super::error::{self, IndexError};
use super::model::{
    DoneRecord, EntryStatus, IndexEntry, Intent, IntentAction, IntentOutcome, IntentRecord,
    ItemKind, PendingAction,
};
use super::store::Item;

/// What the owner does about a request, from [`QuarantineIndex::begin_intent_own`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentStep {
    /// The entry is quarantined: carry `action` out, then call
    /// [`QuarantineIndex::finish_intent_own`].
    Execute {
        /// The entry.
        entry_id: String,
        /// What to do.
        action: IntentAction,
    },
    /// Nothing to do: the request is answered (now or before) with this outcome.
    Done(IntentOutcome),
}

impl QuarantineIndex {
    /// Every request known here, in request id order.
    pub fn intents(&self) -> impl Iterator<Item = &Intent> {
        self.intents.values()
    }

    /// One request.
    pub fn intent(&self, request_id: &str) -> Option<&Intent> {
        self.intents.get(request_id)
    }

    /// Records, as node `me`, a request to release or delete the entry `entry_id` (of any
    /// owner). `pending.requested_by` must be `me`. Refused if the entry is unknown here or no
    /// longer quarantined, or if the request id is taken by a different request; recording
    /// the same request twice changes nothing.
    pub fn request(
        &mut self,
        me: &str,
        entry_id: &str,
        pending: PendingAction,
    ) -> Result<&Intent, IndexError> {
        error::check_id("me", me)?;
        error::check_pending("request", &pending)?;
        if pending.requested_by != me {
            let (me, requested_by) = (me.to_string(), pending.requested_by);
            return Err(IndexError::NotRequester { me, requested_by });
        }
        let entry = self
            .get(entry_id)
            .ok_or_else(|| IndexError::NotFound(entry_id.to_string()))?;
        let status = entry.status;
        let record = IntentRecord {
            request_id: pending.request_id,
            entry_id: entry.id.clone(),
            owner: entry.node.clone(),
            action: pending.action,
            requested_by: pending.requested_by,
            admin: pending.admin,
            requested_ms: pending.requested_ms,
            seq: 0,
        };
        let rid = record.request_id.clone();
        if let Some(existing) = self.logs.get(me).and_then(|log| log.intents.get(&*rid)) {
            if (IntentRecord {
                seq: existing.seq,
                ..record
            }) == *existing
            {
                return Ok(&self.intents[&rid]);
            }
            return Err(IndexError::DuplicateRequest(rid));
        }
        let purged = self
            .logs
            .get(me)
            .and_then(|log| log.current(ItemKind::Intent, &rid));
        if purged.is_some() || self.intents.contains_key(&rid) {
            return Err(IndexError::DuplicateRequest(rid));
        }
        if status.is_terminal() {
            let id = record.entry_id;
            return Err(IndexError::Gone { id, status });
        }
        self.write_own(me, Item::Intent(record))?;
        Ok(&self.intents[&rid])
    }

    /// The undone requests for entries of `owner`, oldest first. The owner runs
    /// [`begin_intent_own`](Self::begin_intent_own) on each.
    pub fn pending_for(&self, owner: &str) -> Vec<&Intent> {
        let Some(by_entry) = self.undone.get(owner) else {
            return Vec::new();
        };
        let mut keys: Vec<&(u64, String)> = by_entry.values().flatten().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|(_, request_id)| self.intents.get(request_id))
            .collect()
    }

    /// Looks at request `request_id` as its owner `me`: if the entry is quarantined, returns
    /// [`IntentStep::Execute`] (nothing recorded yet); otherwise answers the request at
    /// `now_ms` with the outcome `already …` or `not found` and returns it. An answered
    /// request returns its outcome again.
    pub fn begin_intent_own(
        &mut self,
        me: &str,
        request_id: &str,
        now_ms: u64,
    ) -> Result<IntentStep, IndexError> {
        let intent = self.owned_intent(me, request_id)?;
        if let Some(done) = intent.done {
            return Ok(IntentStep::Done(done.outcome));
        }
        let (entry_id, action) = (intent.entry_id.clone(), intent.action);
        match self.get_of(me, &entry_id).map(|entry| entry.status) {
            Some(EntryStatus::Quarantined) => Ok(IntentStep::Execute { entry_id, action }),
            status => {
                let outcome = status.map_or(IntentOutcome::NotFound, IntentOutcome::already);
                self.answer(me, request_id, outcome, now_ms)?;
                Ok(IntentStep::Done(outcome))
            }
        }
    }

    /// Records, as owner `me`, that request `request_id` was carried out at `now_ms`: the
    /// entry becomes released or deleted and the request is answered, in one step. If the
    /// entry is no longer quarantined, only the answer `already …` is recorded; an answered
    /// request returns its outcome again.
    pub fn finish_intent_own(
        &mut self,
        me: &str,
        request_id: &str,
        now_ms: u64,
    ) -> Result<IntentOutcome, IndexError> {
        let intent = self.owned_intent(me, request_id)?;
        if let Some(done) = intent.done {
            return Ok(done.outcome);
        }
        let (entry_id, action) = (intent.entry_id.clone(), intent.action);
        let outcome = match self.get_of(me, &entry_id) {
            Some(entry) if entry.status == EntryStatus::Quarantined => {
                let entry = IndexEntry {
                    status: action.status(),
                    status_ms: now_ms,
                    pending: None,
                    ..entry.clone()
                };
                self.check_seqs(me, 2)?;
                self.write_own(me, Item::Entry(entry))?;
                match action {
                    IntentAction::Release => IntentOutcome::Released,
                    IntentAction::Delete => IntentOutcome::Deleted,
                }
            }
            Some(entry) => IntentOutcome::already(entry.status),
            None => IntentOutcome::NotFound,
        };
        self.answer(me, request_id, outcome, now_ms)?;
        Ok(outcome)
    }

    fn owned_intent(&self, me: &str, request_id: &str) -> Result<&Intent, IndexError> {
        let intent = self
            .intents
            .get(request_id)
            .ok_or_else(|| IndexError::UnknownRequest(request_id.to_string()))?;
        if intent.owner != me {
            return Err(IndexError::NotIntentOwner {
                me: me.to_string(),
                owner: intent.owner.clone(),
                request_id: request_id.to_string(),
            });
        }
        Ok(intent)
    }

    fn answer(
        &mut self,
        me: &str,
        request_id: &str,
        outcome: IntentOutcome,
        done_ms: u64,
    ) -> Result<(), IndexError> {
        let record = DoneRecord {
            request_id: request_id.to_string(),
            outcome,
            done_ms,
            seq: 0,
        };
        self.write_own(me, Item::Done(record)).map(|_| ())
    }

    /// Fails unless `me` can still write `count` items.
    fn check_seqs(&self, me: &str, count: u64) -> Result<(), IndexError> {
        let first = self.next_seq(me)?;
        if first.saturating_add(count - 1) > super::SEQ_MAX {
            return Err(IndexError::SeqExhausted(me.to_string()));
        }
        Ok(())
    }
}
