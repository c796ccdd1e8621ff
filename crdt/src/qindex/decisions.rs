//! Per-recipient decisions on an entry (who a message was released to or deleted for, one
//! by one) and how a request names its recipient on the wire. The module documentation of
//! `qindex` ("Decisions per recipient") gives the rules.

use super::model::{EntryStatus, IndexEntry, IntentAction};

/// Why [`IndexEntry::decide`] did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// The entry is no longer quarantined (its status).
    Entry(EntryStatus),
    /// The recipient was already decided (released or deleted for it).
    Recipient(EntryStatus),
    /// The address is not a recipient of the message.
    NotRecipient,
}

impl IndexEntry {
    /// Whether any recipient was decided on its own.
    pub fn has_decisions(&self) -> bool {
        !self.recipients_released.is_empty() || !self.recipients_deleted.is_empty()
    }

    /// The join of two versions of this entry under the same seq that
    /// [agree](Self::agrees_with): each part an older relay may have dropped (score and
    /// symbols; the per-recipient decisions) taken from whichever version has it. `None`
    /// when `other` adds nothing to `self`. Commutative, associative and idempotent on
    /// agreeing versions, so replicas converge on the fullest version whatever reached
    /// them first.
    pub fn joined_with(&self, other: &IndexEntry) -> Option<IndexEntry> {
        let mut joined = IndexEntry {
            pending: None,
            ..self.clone()
        };
        let mut changed = false;
        if joined.score.is_none() && other.score.is_some() {
            joined.score = other.score;
            joined.symbols = other.symbols.clone();
            changed = true;
        }
        if !joined.has_decisions() && other.has_decisions() {
            joined.recipients_released = other.recipients_released.clone();
            joined.recipients_deleted = other.recipients_deleted.clone();
            changed = true;
        }
        changed.then_some(joined)
    }

    /// How recipient `rcpt` (case-insensitive) was decided: `None` while it is undecided
    /// (the entry is quarantined and no decision names it) or not a recipient at all.
    pub fn decision_for(&self, rcpt: &str) -> Option<EntryStatus> {
        let is = |r: &String| r.eq_ignore_ascii_case(rcpt);
        if !self.recipients.iter().any(is) {
            return None;
        }
        if self.recipients_released.iter().any(is) {
            return Some(EntryStatus::Released);
        }
        if self.recipients_deleted.iter().any(is) {
            return Some(EntryStatus::Deleted);
        }
        // Otherwise the status speaks for the recipient: the whole message was decided (or
        // expired, or moved) at once.
        Some(self.status).filter(|status| status.is_terminal())
    }

    /// Whether the message is still held for recipient `rcpt` (case-insensitive): the
    /// entry is quarantined, `rcpt` is one of its recipients and undecided.
    pub fn held_for(&self, rcpt: &str) -> bool {
        self.status == EntryStatus::Quarantined
            && self.recipients.iter().any(|r| r.eq_ignore_ascii_case(rcpt))
            && self.decision_for(rcpt).is_none()
    }

    /// The recipients nobody decided for yet, in order (every recipient of an entry without
    /// decisions; none once the entry is terminal).
    pub fn undecided(&self) -> Vec<String> {
        if self.status.is_terminal() {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for r in &self.recipients {
            if self.decision_for(r).is_none() && !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
                out.push(r.clone());
            }
        }
        out
    }

    /// Carries out `action` for recipient `rcpt` (`None`: every undecided recipient) on a
    /// quarantined entry at `now_ms`: the recipient is recorded as released or deleted and,
    /// once nobody is left undecided, the entry becomes terminal (`released` if any
    /// recipient was released, else `deleted`). A whole-message action on an entry without
    /// decisions only sets the status (as before per-recipient decisions existed). Returns
    /// the recipients acted for (the relay's recipients for a release), or the refusal.
    pub fn decide(
        &mut self,
        rcpt: Option<&str>,
        action: IntentAction,
        now_ms: u64,
    ) -> Result<Vec<String>, Decided> {
        if self.status.is_terminal() {
            return Err(Decided::Entry(self.status));
        }
        let undecided = self.undecided();
        let targets: Vec<String> = match rcpt {
            None => undecided.clone(),
            Some(rcpt) => {
                if !self.recipients.iter().any(|r| r.eq_ignore_ascii_case(rcpt)) {
                    return Err(Decided::NotRecipient);
                }
                if let Some(how) = self.decision_for(rcpt) {
                    return Err(Decided::Recipient(how));
                }
                // Every spelling of the address on the entry is the same mailbox.
                let same = |r: &&String| r.eq_ignore_ascii_case(rcpt);
                let first = self.recipients.iter().find(same).cloned();
                first.into_iter().collect()
            }
        };
        let whole = targets.len() == undecided.len();
        if !(whole && !self.has_decisions() && rcpt.is_none()) {
            let list = match action {
                IntentAction::Release => &mut self.recipients_released,
                IntentAction::Delete => &mut self.recipients_deleted,
            };
            list.extend(targets.iter().cloned());
        }
        if whole {
            self.status = if !self.has_decisions() {
                action.status()
            } else if self.recipients_released.is_empty() {
                EntryStatus::Deleted
            } else {
                EntryStatus::Released
            };
            self.status_ms = now_ms;
        }
        Ok(targets)
    }

    /// Adds the decisions of `other` (another version of this message: a held copy, the
    /// index's view) that this one lacks; a recipient released anywhere counts as released.
    /// Returns whether anything was added.
    pub fn absorb_decisions(&mut self, other: &IndexEntry) -> bool {
        let mut changed = false;
        for r in &other.recipients_released {
            if !self
                .recipients_released
                .iter()
                .any(|m| m.eq_ignore_ascii_case(r))
            {
                self.recipients_deleted
                    .retain(|m| !m.eq_ignore_ascii_case(r));
                self.recipients_released.push(r.clone());
                changed = true;
            }
        }
        for r in &other.recipients_deleted {
            let known = |m: &String| m.eq_ignore_ascii_case(r);
            if !self.recipients_released.iter().any(known)
                && !self.recipients_deleted.iter().any(known)
            {
                self.recipients_deleted.push(r.clone());
                changed = true;
            }
        }
        changed
    }
}

/// Marks a per-recipient request in an [`IntentRecord`](super::IntentRecord)'s `entry_id`:
/// `{message id}#rcpt{position}`.
///
/// Why there: a node of a release before per-recipient requests decodes records with
/// unknown fields dropped, and relays what it decoded. A separate field would reach an
/// old owner (or a new owner through an old relay) as a whole-message request. An old
/// owner instead looks `{id}#rcpt{n}` up, finds no such entry and answers `not found`,
/// changing nothing; every node relays the field as it is.
pub const RECIPIENT_MARK: &str = "#rcpt";

/// The `entry_id` an [`IntentRecord`](super::IntentRecord) carries for a request about message `entry_id`,
/// for the recipient at position `recipient` or the whole message.
pub fn request_target(entry_id: &str, recipient: Option<u32>) -> String {
    match recipient {
        Some(n) => format!("{entry_id}{RECIPIENT_MARK}{n}"),
        None => entry_id.to_string(),
    }
}

/// The message id and recipient position a record's `entry_id` names (the inverse of
/// [`request_target`]); an id without a well-formed mark is a whole-message request.
pub fn parse_target(target: &str) -> (&str, Option<u32>) {
    if let Some((id, n)) = target.rsplit_once(RECIPIENT_MARK)
        && !id.is_empty()
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = n.parse::<u32>()
    {
        return (id, Some(n));
    }
    (target, None)
}
