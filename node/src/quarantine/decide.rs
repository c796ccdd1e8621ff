//! Release and delete, for the whole message or for one recipient: the owner's carry-out
//! of a decision (`IndexEntry::decide`), committed in one synced batch with the relay queue
//! entry it makes, so each recipient is relayed to (or deleted for) at most once.

use mxmesh_crdt::qindex::{Decided, IndexEntry, IntentAction};

use super::{Entry, Quarantine, QuarantineError};
use crate::message::auth_results;
use crate::relay::Relay;
use crate::relay::body as relay_body;
use crate::relay::queue::Origin;
use crate::store::{Batch, Cf};
use crate::trace;

impl Quarantine {
    /// Releases an entry to all its recipients still undecided (see
    /// [`Quarantine::release_for`]).
    pub async fn release(
        &self,
        id: &str,
        relay: &Relay,
        admin: &str,
        request: Option<&str>,
    ) -> Result<Entry, QuarantineError> {
        self.release_for(id, None, relay, admin, request).await
    }

    /// Releases an entry to recipient `rcpt` only, or (`None`) to every recipient still
    /// undecided: a relay queue entry with exactly those recipients is committed with the
    /// entry's decision in one synced batch, so it happens once per recipient
    /// ([`IndexEntry::decide`]). When no recipient is left undecided the entry becomes a
    /// tombstone and its bytes belong to the queue entry (same id); otherwise the bytes stay
    /// held and the queue entry (id `{id}.{position}`) gets its own copy.
    pub async fn release_for(
        &self,
        id: &str,
        rcpt: Option<&str>,
        relay: &Relay,
        admin: &str,
        request: Option<&str>,
    ) -> Result<Entry, QuarantineError> {
        let (_guard, e, to, now) = self
            .decide(id, rcpt, IntentAction::Release, request)
            .await?;
        let raw = self.raw(id)?;
        let terminal = e.meta.status.is_terminal();
        let queue_id = match terminal {
            true => e.meta.id.clone(),
            false => partial_queue_id(&e.meta, &to),
        };
        // As on the direct relay path, with the authserv-id our prepended header names.
        let ours = auth_results::authserv_id(&e.prepend);
        let body = relay_body::prepare(&e.prepend, &raw, ours, None);
        let q = relay.entry(
            &queue_id,
            &e.meta.sender,
            &to,
            &e.meta.subject,
            body.len() as u64,
            Origin::Release,
        );
        let mut b = Batch::new();
        Relay::stage(&mut b, &q, Some(&body));
        b.put(Cf::Quarantine, e.meta.id.as_bytes(), e.encode());
        trace::record(&mut b, &self.event_for(&e, &to, "released", admin, now));
        self.store.commit(b).await?;
        if terminal {
            self.removed(1);
        }
        self.mirror(&e, request, now);
        relay.queued(&q);
        Ok(e)
    }

    /// Deletes an entry for all its recipients still undecided (see
    /// [`Quarantine::delete_for`]).
    pub async fn delete(
        &self,
        id: &str,
        admin: &str,
        request: Option<&str>,
    ) -> Result<Entry, QuarantineError> {
        self.delete_for(id, None, admin, request).await
    }

    /// Deletes an entry for recipient `rcpt` only, or (`None`) for every recipient still
    /// undecided. Once nobody is left undecided the bytes go and the entry stays as a
    /// tombstone (`released` if it was released to anyone, else `deleted`).
    pub async fn delete_for(
        &self,
        id: &str,
        rcpt: Option<&str>,
        admin: &str,
        request: Option<&str>,
    ) -> Result<Entry, QuarantineError> {
        let (_guard, e, to, now) = self.decide(id, rcpt, IntentAction::Delete, request).await?;
        let terminal = e.meta.status.is_terminal();
        let mut b = Batch::new();
        b.put(Cf::Quarantine, e.meta.id.as_bytes(), e.encode());
        if terminal {
            b.delete(Cf::Messages, e.meta.id.as_bytes());
        }
        trace::record(&mut b, &self.event_for(&e, &to, "deleted", admin, now));
        self.store.commit(b).await?;
        if terminal {
            self.removed(1);
        }
        self.mirror(&e, request, now);
        Ok(e)
    }

    /// The start both actions share: once the store is settled, under the mutation lock
    /// (returned: hold it until the commit), the live entry with `action` decided for
    /// `rcpt` (or everyone undecided) in memory, the recipients it decided and the time.
    /// Nothing is written yet.
    async fn decide(
        &self,
        id: &str,
        rcpt: Option<&str>,
        action: IntentAction,
        request: Option<&str>,
    ) -> Result<(MutationGuard, Entry, Vec<String>, u64), QuarantineError> {
        self.wait_settled().await?;
        let guard = self.mutate.clone().lock_owned().await;
        let mut e = self.live(id)?;
        self.not_retiring(id)?;
        self.no_older_request(id, request)?;
        let now = self.clock.now_ms();
        let to = e
            .meta
            .decide(rcpt, action, now)
            .map_err(|why| decided_error(id, rcpt, why))?;
        Ok((guard, e, to, now))
    }
}

/// Held while an entry is decided and committed: one mutation of the quarantine at a time.
type MutationGuard = tokio::sync::OwnedMutexGuard<()>;

/// The relay queue id of a release to some recipients while others stay held: the
/// message id and the position of the first of them, unique per message (a recipient is
/// released once) and apart from the message's own id, under which its bytes stay held.
fn partial_queue_id(meta: &IndexEntry, to: &[String]) -> String {
    let first = to.first().map(String::as_str).unwrap_or_default();
    let at = meta.recipients.iter().position(|r| r == first).unwrap_or(0);
    format!("{}.{at}", meta.id)
}

/// Why [`IndexEntry::decide`] refused, as the quarantine's error.
fn decided_error(id: &str, rcpt: Option<&str>, why: Decided) -> QuarantineError {
    let (id, rcpt) = (id.to_string(), rcpt.unwrap_or_default().to_string());
    match why {
        Decided::Entry(status) => QuarantineError::Gone { id, status },
        Decided::Recipient(status) => QuarantineError::RecipientGone { id, rcpt, status },
        Decided::NotRecipient => QuarantineError::NotRecipient { id, rcpt },
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
