//! Release/delete requests other nodes recorded in the index for this node's messages
//! while it was down or unreachable: carried out once each, in a mesh job.

use std::time::Duration;

use mxmesh_crdt::qindex::{IntentAction, IntentStep};

use crate::clock::Clock;
use crate::quarantine::Quarantine;
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
}

impl Requests {
    /// Over this node's quarantine; released messages go to `relay`.
    pub fn new(quarantine: Quarantine, relay: Relay, clock: Clock) -> Requests {
        Requests {
            quarantine,
            relay,
            clock,
        }
    }

    /// Carries out, once each, the requests now waiting for this node.
    pub async fn carry_out(&self) {
        let index = self.quarantine.index();
        for (request_id, admin) in index.pending_for_me() {
            let step = match index.begin_intent(&request_id, self.clock.now_ms()) {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(request = %request_id, error = %e, "request not started");
                    continue;
                }
            };
            let IntentStep::Execute { entry_id, action } = step else {
                continue;
            };
            let q = &self.quarantine;
            let done = match action {
                IntentAction::Release => {
                    q.release(&entry_id, &self.relay, &admin, Some(&request_id))
                        .await
                }
                IntentAction::Delete => q.delete(&entry_id, &admin, Some(&request_id)).await,
            };
            match done {
                Ok(_) => {
                    tracing::info!(request = %request_id, id = %entry_id, ?action, "deferred request carried out")
                }
                Err(e) => {
                    tracing::warn!(request = %request_id, id = %entry_id, error = %e, "deferred request failed; will retry")
                }
            }
        }
    }
}
