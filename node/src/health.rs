//! Whether this node takes traffic: the one place that says `ok`, `draining` or
//! `store_error`. The SMTP sessions, the admin API, the DNS helper and the published mesh
//! state all read it; SIGTERM and the drain API set it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::Store;

/// This node's health. Cheap to clone; clones share the draining switch.
#[derive(Clone)]
pub struct Health {
    /// Taken out of new traffic (SIGTERM or the drain API).
    draining: Arc<AtomicBool>,
    store: Store,
}

impl Health {
    /// Not draining; `store` is watched for failing writes.
    pub fn new(store: Store) -> Health {
        Health {
            draining: Arc::new(AtomicBool::new(false)),
            store,
        }
    }

    /// `ok`, `draining`, or `store_error` while store writes fail (mail gets 451 then, so
    /// the node also leaves the DNS set until writes work again).
    pub fn get(&self) -> &'static str {
        if self.is_draining() {
            "draining"
        } else if self.store.write_error().is_some() {
            "store_error"
        } else {
            "ok"
        }
    }

    /// Whether the node is draining (no new sessions).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts or ends draining.
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::SeqCst);
    }
}
