//! Release and delete requests ("intents"): recorded by any node, carried out by the owner.

use super::QuarantineIndex;
use super::decisions::{Decided, request_target};
use super::error::{self, IndexError};
use super::model::{
    DoneRecord, EntryStatus, Intent, IntentAction, IntentOutcome, IntentRecord, ItemKind,
    PendingAction,
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
        /// For whom: the recipient's address as the entry spells it, or `None` for every
        /// recipient still undecided.
        recipient: Option<String>,
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
    /// owner), for one recipient when `pending.recipient` names its position. `requested_by`
    /// must be `me`. Refused if the entry is unknown here or no longer quarantined, if the
    /// recipient is not held for any more (or out of range), or if the request id is taken by
    /// a different request; recording the same request twice changes nothing.
    ///
    /// Only record a per-recipient request for an owner that reads them: an owner of an
    /// older release answers it `not found` (see [`RECIPIENT_MARK`](super::RECIPIENT_MARK)).
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
        if let Some(n) = pending.recipient
            && status == EntryStatus::Quarantined
        {
            let detail = match entry.recipients.get(n as usize) {
                None => Some(format!("it has no recipient number {n}")),
                Some(rcpt) => entry
                    .decision_for(rcpt)
                    .map(|how| format!("already {how} for {rcpt}")),
            };
            if let Some(detail) = detail {
                let id = entry.id.clone();
                return Err(IndexError::RecipientDecided { id, detail });
            }
        }
        let record = IntentRecord {
            request_id: pending.request_id,
            entry_id: request_target(&entry.id, pending.recipient),
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
            let id = entry_id.to_string();
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

    /// Looks at request `request_id` as its owner `me`: if the entry is quarantined (and, for
    /// a per-recipient request, still held for that recipient), returns
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
        let rcpt_at = intent.recipient;
        let outcome = match self.get_of(me, &entry_id) {
            Some(entry) if entry.status == EntryStatus::Quarantined => match rcpt_at {
                None => None,
                Some(n) => match entry.recipients.get(n as usize) {
                    None => Some(IntentOutcome::NotFound),
                    Some(rcpt) => match entry.decision_for(rcpt) {
                        None => {
                            let recipient = Some(rcpt.clone());
                            let step = IntentStep::Execute {
                                entry_id,
                                action,
                                recipient,
                            };
                            return Ok(step);
                        }
                        Some(how) => Some(IntentOutcome::already(how)),
                    },
                },
            },
            Some(entry) => Some(IntentOutcome::already(entry.status)),
            None => Some(IntentOutcome::NotFound),
        };
        match outcome {
            None => Ok(IntentStep::Execute {
                entry_id,
                action,
                recipient: None,
            }),
            Some(outcome) => {
                self.answer(me, request_id, outcome, now_ms)?;
                Ok(IntentStep::Done(outcome))
            }
        }
    }

    /// Records, as owner `me`, that request `request_id` was carried out at `now_ms`: the
    /// entry records the decision ([`IndexEntry::decide`](super::IndexEntry::decide): for
    /// its recipient, or for every undecided one) and the request is answered, in one step.
    /// If the entry (or the recipient) is no longer held, only the answer `already …` is
    /// recorded; an answered request returns its outcome again.
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
        let rcpt_at = intent.recipient;
        let outcome = match self.get_of(me, &entry_id) {
            Some(entry) => {
                let mut entry = entry.clone();
                entry.pending = None;
                let rcpt = match rcpt_at {
                    None => Ok(None),
                    Some(n) => entry
                        .recipients
                        .get(n as usize)
                        .cloned()
                        .map(Some)
                        .ok_or(()),
                };
                match rcpt.map(|rcpt| entry.decide(rcpt.as_deref(), action, now_ms)) {
                    Ok(Ok(_)) => {
                        self.check_seqs(me, 2)?;
                        self.write_own(me, Item::Entry(entry))?;
                        match action {
                            IntentAction::Release => IntentOutcome::Released,
                            IntentAction::Delete => IntentOutcome::Deleted,
                        }
                    }
                    Ok(Err(Decided::Entry(how) | Decided::Recipient(how))) => {
                        IntentOutcome::already(how)
                    }
                    Ok(Err(Decided::NotRecipient)) | Err(()) => IntentOutcome::NotFound,
                }
            }
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
