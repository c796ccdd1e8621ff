//! Custody of quarantined messages across nodes (README, "Quarantine copies, retire and
//! forget"): copies of each message on `copies − 1` other nodes ([`copies`]), the hand-over
//! of a retiring node's quarantine ([`retire`]), and the take-over by a copy holder when an
//! owner is forgotten ([`copies::sweep`]). The rule book records the setting and the nodes
//! that left ([`settings`]).

pub mod copies;
pub mod retire;
pub mod settings;
pub mod shadow;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::clock::Clock;
use crate::health::Health;
use crate::mesh::Mesh;
use crate::quarantine::Quarantine;
use crate::relay::Relay;
use crate::rules::Rules;
use crate::store::Store;
use settings::CustodyBook;

/// Self-check of the simulator (`mxmesh-sim --break copies`): while set, a holder answers
/// `hold_copy` and `hold_shadows` without storing anything, so a copy the owner counts is
/// not there when its disk is lost. Never set outside that check.
pub static BREAK_COPIES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How often copies are pushed, held copies swept and orphaned messages adopted.
pub const CUSTODY_INTERVAL: Duration = Duration::from_millis(250);
/// The job's name (see `crate::mesh::Job`).
pub const JOB: &str = "custody";

/// This node's custody work. Cheap to clone.
#[derive(Clone)]
pub struct Custody {
    inner: Arc<Inner>,
}

struct Inner {
    quarantine: Quarantine,
    relay: Relay,
    rules: Arc<Rules>,
    health: Health,
    clock: Clock,
    /// This node's store (queue shadows live in `Cf::Copies`).
    store: Store,
    /// The queue-shadow worker's state.
    shadows: shadow::ShadowState,
    mesh: OnceLock<Weak<Mesh>>,
    retire: Mutex<retire::Progress>,
    /// One custody pass at a time (the job and a retire never interleave their copies).
    pass: tokio::sync::Mutex<()>,
    /// Payload bytes of the copies this node sent that a holder took (before framing).
    copy_bytes_sent: AtomicU64,
}

impl Custody {
    /// Custody over `quarantine` and `relay` (whose queue a retire hands over and whose
    /// entries get shadows), reading settings and departures from `rules`.
    pub fn new(
        store: Store,
        quarantine: Quarantine,
        relay: Relay,
        rules: Arc<Rules>,
        health: Health,
        clock: Clock,
    ) -> Custody {
        Custody {
            inner: Arc::new(Inner {
                quarantine,
                relay,
                rules,
                health,
                clock,
                store,
                shadows: shadow::ShadowState::default(),
                mesh: OnceLock::new(),
                retire: Mutex::new(retire::Progress::default()),
                pass: tokio::sync::Mutex::new(()),
                copy_bytes_sent: AtomicU64::new(0),
            }),
        }
    }

    /// Gives custody the mesh it sends copies and hand-overs over (held weakly).
    pub fn attach(&self, mesh: &Arc<Mesh>) {
        let _ = self.inner.mesh.set(Arc::downgrade(mesh));
    }

    fn mesh(&self) -> Option<Arc<Mesh>> {
        self.inner.mesh.get().and_then(Weak::upgrade)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.inner.quarantine.node_id()
    }

    /// The relay whose queue gets shadows.
    pub fn relay(&self) -> &Relay {
        &self.inner.relay
    }

    /// The quarantine it works on.
    pub fn quarantine(&self) -> &Quarantine {
        &self.inner.quarantine
    }

    /// The settings and departures as the rule book holds them now.
    pub fn book(&self) -> Arc<CustodyBook> {
        self.inner.rules.custody()
    }

    /// Own quarantined messages with fewer holders than `copies` asks (departed holders
    /// not counted): the `/metrics` gauge of messages inside their single-copy window.
    pub fn under_copied(&self) -> usize {
        let book = self.book();
        let wanted = book.quarantine.copies as usize;
        self.inner
            .quarantine
            .index()
            .under_copied_count(wanted, &|n: &str| book.is_departed(n))
    }

    /// Payload bytes of the copies this node sent and a holder took, since start.
    pub fn copy_bytes_sent(&self) -> u64 {
        self.inner.copy_bytes_sent.load(Ordering::Relaxed)
    }

    /// Whether this node left the mesh (it then takes nothing over and copies nothing).
    pub fn departed(&self) -> bool {
        self.book().is_departed(self.node_id())
    }
}

/// Message bytes as they travel inside a JSON operation.
pub fn encode_raw(raw: &[u8]) -> String {
    B64.encode(raw)
}

/// Reads message bytes sent by [`encode_raw`]; the error names the field.
pub fn decode_raw(text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text)
        .map_err(|e| format!("raw: not base64 ({e})"))
}
