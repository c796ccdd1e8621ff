//! Release/delete requests other nodes recorded in the index for this node's messages
//! while it was down or unreachable: carried out once each, in a mesh job.

use std::time::Duration;

use mxmesh_crdt::qindex::{EntryStatus, Intent, IntentAction, IntentStep, PendingAction};

use crate::clock::Clock;
use crate::quarantine::{Quarantine, QuarantineError};
use crate::relay::Relay;

/// How often this node looks for release/delete requests recorded while it was away.
pub const REQUESTS_INTERVAL: Duration = Duration::from_millis(500);
/// The job's name (see `crate::mesh::Job`).
pub const JOB: &str = "deferred-requests";

/// Carries out deferred requests.
pub struct Requests {
    quarantine: Quarantine,
    relay: Relay,
    clock: Clock,
    custody: super::custody::Custody,
}

impl Requests {
    /// Over this node's quarantine; released messages go to `relay`.
    pub fn new(
        quarantine: Quarantine,
        relay: Relay,
        clock: Clock,
        custody: super::custody::Custody,
    ) -> Requests {
        Requests {
            quarantine,
            relay,
            clock,
            custody,
        }
    }

    /// A request for a message this node handed over (retire) is recorded again for the
    /// new owner, then answered here `already moved`; until the new owner's entry reached
    /// this node's index it waits. Returns whether the request was handled so.
    fn forward_if_moved(&self, intent: &Intent) -> bool {
        let index = self.quarantine.index();
        let moved = index
            .own(&intent.entry_id)
            .is_some_and(|e| e.status == EntryStatus::Moved);
        if !moved {
            return false;
        }
        let me = self.custody.node_id();
        if index.get(&intent.entry_id).is_none_or(|cur| cur.node == me) {
            return true;
        }
        let pending = PendingAction {
            action: intent.action,
            requested_by: me.to_string(),
            admin: format!("{}@{}", intent.admin, intent.requested_by),
            requested_ms: self.clock.now_ms(),
            request_id: self.clock.ulid().to_string(),
            recipient: intent.recipient,
        };
        match index.request(&intent.entry_id, pending) {
            Ok(new) => {
                tracing::info!(request = %intent.request_id, forwarded_as = %new.request_id, owner = %new.owner, "request for a moved message forwarded to its new owner");
                if let Err(e) = index.begin_intent(&intent.request_id, self.clock.now_ms()) {
                    tracing::warn!(request = %intent.request_id, error = %e, "forwarded request not answered");
                }
            }
            Err(e) => {
                tracing::warn!(request = %intent.request_id, error = %e, "request for a moved message not forwarded; retried")
            }
        }
        true
    }

    /// Answers with an error this node's requests whose owner left the mesh for good (it
    /// will never answer them): each is withdrawn from the index and a `request_failed`
    /// trace event says why and, when a copy holder took the message over, who holds it
    /// now (ask again there).
    async fn fail_orphaned(&self) {
        let book = self.custody.book();
        let index = self.quarantine.index();
        for intent in index.my_requests_to(&|owner| book.is_departed(owner)) {
            let now_with = index
                .get(&intent.entry_id)
                .filter(|e| e.node != intent.owner)
                .map(|e| format!("; node {} holds the message now: ask again", e.node));
            let detail = format!(
                "{:?} requested by {} (request {}): owner {} left the mesh{}",
                intent.action,
                intent.admin,
                intent.request_id,
                intent.owner,
                now_with.unwrap_or_else(|| " and no copy survives: the message is lost".into())
            );
            if let Err(e) = index.withdraw(&intent.request_id) {
                tracing::warn!(request = %intent.request_id, error = %e, "orphaned request not withdrawn");
                continue;
            }
            tracing::warn!(request = %intent.request_id, %detail, "request failed");
            if let Err(e) = self
                .quarantine
                .note(&intent.entry_id, "request_failed", &detail)
                .await
            {
                tracing::warn!(request = %intent.request_id, error = %e, "request failure not traced");
            }
        }
    }

    /// Carries out, once each, the requests now waiting for this node.
    pub async fn carry_out(&self) {
        self.fail_orphaned().await;
        let index = self.quarantine.index();
        for intent in index.pending_intents_for_me() {
            if self.forward_if_moved(&intent) {
                continue;
            }
            let request_id = intent.request_id.clone();
            let admin = format!("{}@{}", intent.admin, intent.requested_by);
            let step = match index.begin_intent(&request_id, self.clock.now_ms()) {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(request = %request_id, error = %e, "request not started");
                    continue;
                }
            };
            let IntentStep::Execute {
                entry_id,
                action,
                recipient,
            } = step
            else {
                continue;
            };
            let (q, rcpt, rid) = (&self.quarantine, recipient.as_deref(), Some(&*request_id));
            let done = match action {
                IntentAction::Release => {
                    q.release_for(&entry_id, rcpt, &self.relay, &admin, rid)
                        .await
                }
                IntentAction::Delete => q.delete_for(&entry_id, rcpt, &admin, rid).await,
            };
            match done {
                Ok(_) => {
                    tracing::info!(request = %request_id, id = %entry_id, ?action, ?recipient, "deferred request carried out")
                }
                Err(e @ (QuarantineError::RecipientGone { .. } | QuarantineError::Gone { .. })) => {
                    // The store (the truth) has the decision the index lacks: mirror it, so
                    // the request is answered `already …` on the next pass.
                    tracing::warn!(request = %request_id, id = %entry_id, error = %e, "deferred request: already decided in the store");
                    if let Ok(Some(stored)) = q.get(&entry_id) {
                        q.index().own_upsert(&stored);
                    }
                }
                Err(e) => {
                    tracing::warn!(request = %request_id, id = %entry_id, error = %e, "deferred request failed; will retry")
                }
            }
        }
    }
}
