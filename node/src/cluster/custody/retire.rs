//! Retiring a live node: it drains, hands every quarantined message to another node (which
//! adopts it after a synced write), waits until its own index shows every adoption (so the
//! new owners' entries have travelled), waits until the release/delete requests recorded
//! for it are forwarded to the new owners, and records itself as departed in the rule book.
//!
//! Started by the `retire` operation (`POST /api/v1/nodes/{id}/retire` on any node, which
//! forwards it); asking again reports the progress, so `mxctl node retire` polls.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::{Departure, DepartureKind};
use super::{Custody, copies, encode_raw};
use crate::cluster::rpc::{self, RpcRequest};
use crate::relay::Relay;
use crate::relay::queue::QueueEntry;

/// Queue entries one hand-over round lists at most (rounds repeat until none is left).
pub const QUEUE_HANDOVER_BATCH: usize = 10_000;

/// Hand-over rounds at most (each retries the messages the previous one could not move).
pub const RETIRE_ROUNDS_MAX: usize = 20;
/// Pause between two hand-over rounds, and between two looks while waiting.
pub const RETIRE_PAUSE: Duration = Duration::from_millis(250);
/// Longest a retire waits for the adoptions to reach its index and for its requests to be
/// forwarded, in pauses.
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
            let mut failed = 0;
            for e in left {
                match self.hand_over_one(&e).await {
                    Ok(to) => {
                        moved_ids.push(e.id.clone());
                        self.progress(|p| {
                            p.moved += 1;
                            *p.successors.entry(to).or_default() += 1;
                        });
                    }
                    Err(why) => {
                        failed += 1;
                        tracing::warn!(id = %e.id, error = %why, "retire: hand-over failed; retried");
                    }
                }
            }
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
            moved_ids
                .iter()
                .all(|id| q.index().get(id).is_some_and(|e| e.node != me))
        })
        .await?;
        self.wait_until("requests recorded for this node are forwarded", || {
            q.index().pending_for_me().is_empty()
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

    /// Hands one message to the first live holder of a copy, else to the best candidate.
    async fn hand_over_one(&self, e: &mxmesh_crdt::qindex::IndexEntry) -> Result<String, String> {
        let candidates = copies::candidates(self, &e.id, &[]).await;
        let to = e
            .copies
            .iter()
            .find(|h| candidates.contains(h))
            .or_else(|| candidates.first())
            .cloned()
            .ok_or_else(|| "no live healthy peer to hand the message to".to_string())?;
        let mesh = self.mesh();
        let send = |entry: crate::quarantine::Entry, raw: Vec<u8>| {
            let req = RpcRequest::Adopt {
                entry: Box::new(entry),
                raw: encode_raw(&raw),
            };
            let to = to.clone();
            async move {
                rpc::call(mesh.as_deref(), &to, &req)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        };
        self.quarantine()
            .hand_over(&e.id, &to, send)
            .await
            .map_err(|e| e.to_string())?;
        Ok(to)
    }

    async fn wait_until(&self, what: &str, done: impl Fn() -> bool) -> Result<(), String> {
        for _ in 0..RETIRE_WAIT_PAUSES_MAX {
            if done() {
                return Ok(());
            }
            tokio::time::sleep(RETIRE_PAUSE).await;
        }
        Err(format!("retire: timed out waiting until {what}"))
    }
}
