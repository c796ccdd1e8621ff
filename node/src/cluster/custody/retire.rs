//! Retiring a live node: it drains, hands its quarantined messages to other nodes in
//! batches ([`handover`]: up to [`HANDOVER_BATCH_MAX`] messages per call, one synced write
//! for the batch on the new owner and one here, [`HANDOVER_CALLS_IN_FLIGHT`] calls at once),
//! waits until its own index shows every adoption (so the
//! new owners' entries have travelled), waits until the release/delete requests recorded
//! for it are forwarded to the new owners, and records itself as departed in the rule book.
//!
//! Started by the `retire` operation (`POST /api/v1/nodes/{id}/retire` on any node, which
//! forwards it); asking again reports the progress, so `mxctl node retire` polls.

mod handover;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use serde::{Deserialize, Serialize};

use super::settings::{Departure, DepartureKind};
use super::{Custody, copies, encode_raw};
use crate::cluster::rpc::{self, RpcRequest};
use crate::relay::Relay;
use crate::relay::queue::QueueEntry;
pub use handover::{Batch, plan, serve_adopt_batch};

/// Queue entries one hand-over round lists at most (rounds repeat until none is left).
pub const QUEUE_HANDOVER_BATCH: usize = 10_000;

/// Quarantined messages one hand-over call carries at most.
pub const HANDOVER_BATCH_MAX: usize = 256;
/// Payload of one hand-over call at most, estimated from the messages' sizes (the mesh frame
/// is 16 MiB; a single larger message still goes, alone).
pub const HANDOVER_CALL_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Hand-over calls in flight at once (to one or several new owners).
pub const HANDOVER_CALLS_IN_FLIGHT: usize = 4;
/// Messages one `adopt_batch` call may carry (the new owner's bound on input).
pub const ADOPT_ITEMS_MAX: usize = 1024;

/// Hand-over rounds at most (each retries the messages the previous one could not move).
pub const RETIRE_ROUNDS_MAX: usize = 20;
/// Pause between two hand-over rounds, and between two looks while waiting.
pub const RETIRE_PAUSE: Duration = Duration::from_millis(250);
/// Longest a retire waits for the adoptions to reach its index and for its requests to be
/// forwarded, in pauses without progress (the wait goes on while the count of what is left
/// shrinks).
pub const RETIRE_WAIT_PAUSES_MAX: usize = 480;

/// Where a retire stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetireState {
    /// Not started.
    #[default]
    Idle,
    /// Handing over.
    Running,
    /// Every message moved and the departure recorded.
    Done,
    /// Stopped short; `error` says why (asking again starts over with what is left).
    Failed,
}

/// A retire's progress, as the `retire` operation answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The retiring node.
    pub node: String,
    /// Where it stands.
    pub state: RetireState,
    /// Quarantined messages it held when it started.
    pub total: usize,
    /// Messages handed over so far.
    pub moved: usize,
    /// Hand-overs that failed in the last round.
    pub failed: usize,
    /// Relay queue entries it held when the queue hand-over started.
    #[serde(default)]
    pub queue_total: usize,
    /// Queue entries handed over so far.
    #[serde(default)]
    pub queue_moved: usize,
    /// Messages moved, by new owner.
    pub successors: BTreeMap<String, usize>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Custody {
    /// Starts retiring this node (unless it is running or done) and answers the progress.
    pub fn retire(&self, admin: &str) -> Progress {
        let mut p = self.inner.retire.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(p.state, RetireState::Idle | RetireState::Failed) {
            *p = Progress {
                node: self.node_id().to_string(),
                state: RetireState::Running,
                ..Progress::default()
            };
            let (me, admin) = (self.clone(), admin.to_string());
            tokio::spawn(async move { me.run_retire(&admin).await });
        }
        p.clone()
    }

    /// The progress of this node's retire.
    pub fn retire_progress(&self) -> Progress {
        let p = self.inner.retire.lock().unwrap_or_else(|e| e.into_inner());
        p.clone()
    }

    fn progress(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.inner.retire.lock().unwrap_or_else(|e| e.into_inner()));
    }

    async fn run_retire(&self, admin: &str) {
        let outcome = self.retire_steps(admin).await;
        self.progress(|p| match outcome {
            Ok(()) => p.state = RetireState::Done,
            Err(why) => {
                tracing::warn!(error = %why, "retire stopped");
                p.state = RetireState::Failed;
                p.error = Some(why);
            }
        });
    }

    async fn retire_steps(&self, admin: &str) -> Result<(), String> {
        self.inner
            .health
            .set_drained(true)
            .await
            .map_err(|e| e.to_string())?;
        let q = self.quarantine();
        q.set_retiring(true);
        let _one = self.inner.pass.lock().await;
        let me = self.node_id().to_string();
        let total = q.index().live_unadopted_of(&me).len();
        self.progress(|p| p.total = total);
        let mut moved_ids = Vec::new();
        for _ in 0..RETIRE_ROUNDS_MAX {
            let left = q.index().live_unadopted_of(&me);
            if left.is_empty() {
                break;
            }
            let failed = self.hand_over_round(&left, &mut moved_ids).await;
            self.progress(|p| p.failed = failed);
            if failed > 0 {
                tokio::time::sleep(RETIRE_PAUSE).await;
            }
        }
        let left = q.index().live_unadopted_of(&me).len();
        if left > 0 {
            return Err(format!(
                "{left} quarantined messages could not be handed over in {RETIRE_ROUNDS_MAX} rounds (no live healthy peer took them)"
            ));
        }
        self.hand_over_queue().await?;
        self.wait_until("the new owners' entries reach this node's index", || {
            let index = q.index();
            let seen = |id: &String| index.get(id).is_some_and(|e| e.node != me);
            moved_ids.retain(|id| !seen(id));
            moved_ids.len()
        })
        .await?;
        self.wait_until("requests recorded for this node are forwarded", || {
            q.index().pending_for_me().len()
        })
        .await?;
        let departure = Departure {
            kind: DepartureKind::Retired,
            at_ms: self.inner.clock.now_ms(),
            by: me.clone(),
        };
        self.inner
            .rules
            .record_departure(&me, &departure, admin, departure.at_ms)
            .await
            .map_err(|e| e.to_string())
    }

    /// Hands the relay queue over, entry by entry, each to the live holder of its shadow
    /// (which turns it into a queue entry) else to the best live candidate; an entry in
    /// delivery right now is retried in the next round.
    async fn hand_over_queue(&self) -> Result<(), String> {
        let relay = &self.inner.relay;
        let list = |relay: &Relay| relay.list(QUEUE_HANDOVER_BATCH).map_err(|e| e.to_string());
        self.progress(|p| p.queue_total = relay.scheduled());
        for _ in 0..RETIRE_ROUNDS_MAX {
            let entries = list(relay)?;
            if entries.is_empty() {
                return Ok(());
            }
            for entry in entries {
                let candidates = copies::candidates(self, &entry.id, &[]).await;
                let holders = self.shadow_holders(&entry.id);
                let shadow_holder = holders.iter().find(|h| candidates.contains(h));
                let Some(to) = shadow_holder.or(candidates.first()).cloned() else {
                    return Err("no live healthy peer to hand the relay queue to".into());
                };
                let mesh = self.mesh();
                let send = |entry: QueueEntry, body: Vec<u8>| async move {
                    let req = RpcRequest::TakeQueued {
                        entry: Box::new(entry),
                        body: encode_raw(&body),
                    };
                    rpc::call(mesh.as_deref(), &to, &req)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                };
                match relay.hand_over(&entry.id, send).await {
                    Ok(true) => self.progress(|p| p.queue_moved += 1),
                    Ok(false) => {}
                    Err(why) => {
                        tracing::warn!(id = %entry.id, error = %why, "retire: queue hand-over failed; retried")
                    }
                }
            }
            tokio::time::sleep(RETIRE_PAUSE).await;
        }
        match list(relay)?.len() {
            0 => Ok(()),
            left => Err(format!(
                "{left} relay queue entries could not be handed over in {RETIRE_ROUNDS_MAX} rounds"
            )),
        }
    }

    /// One round: `left` in batches, [`HANDOVER_CALLS_IN_FLIGHT`] at once; the ids moved go
    /// into `moved_ids`. Answers how many could not be moved.
    async fn hand_over_round(
        &self,
        left: &[mxmesh_crdt::qindex::IndexEntry],
        moved_ids: &mut Vec<String>,
    ) -> usize {
        let peers = copies::peers(self).await;
        if peers.is_empty() {
            tracing::warn!("retire: no live healthy peer to hand the quarantine to; retried");
            return left.len();
        }
        let mut failed = 0;
        let mut calls = futures::stream::iter(plan(left, &peers))
            .map(|batch| self.hand_over_batch(batch))
            .buffer_unordered(HANDOVER_CALLS_IN_FLIGHT);
        while let Some(outcome) = calls.next().await {
            match outcome {
                Ok((to, ids)) => {
                    self.progress(|p| {
                        p.moved += ids.len();
                        *p.successors.entry(to).or_default() += ids.len();
                    });
                    moved_ids.extend(ids);
                }
                Err((n, why)) => {
                    failed += n;
                    tracing::warn!(error = %why, "retire: hand-over failed; retried");
                }
            }
        }
        failed
    }

    /// Waits until `left` (what is still to come) is 0; gives up after
    /// [`RETIRE_WAIT_PAUSES_MAX`] pauses in a row in which it did not shrink.
    async fn wait_until(&self, what: &str, mut left: impl FnMut() -> usize) -> Result<(), String> {
        let mut last = usize::MAX;
        let mut idle = 0;
        while idle < RETIRE_WAIT_PAUSES_MAX {
            let now = left();
            if now == 0 {
                return Ok(());
            }
            idle = if now < last { 0 } else { idle + 1 };
            last = now;
            tokio::time::sleep(RETIRE_PAUSE).await;
        }
        Err(format!(
            "retire: timed out waiting until {what} ({last} left)"
        ))
    }
}
