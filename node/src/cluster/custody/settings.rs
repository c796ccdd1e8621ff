//! What the rule book records about custody: the cluster's quarantine settings (`copies`)
//! and the nodes that left the mesh for good (retired or forgotten), one rule-book setting
//! per node (`departed:<id>`), so concurrent records of different nodes never overwrite
//! each other and the record survives restarts and travels with the rule book's sync.

use std::collections::BTreeMap;

use mxmesh_crdt::rulebook::RuleBook;
use serde::{Deserialize, Serialize};

/// The rule-book setting that holds the quarantine settings (JSON).
pub const QUARANTINE_SETTING: &str = "quarantine";
/// The rule-book settings `departed:<node id>`, one per node that left.
pub const DEPARTED_PREFIX: &str = "departed:";
/// Most nodes the rule book records as departed.
pub const DEPARTED_MAX: usize = 10_000;
/// Largest `copies` setting: the owner plus at most this minus one holders.
pub const COPIES_SETTING_MAX: u32 = 4;

/// The cluster's quarantine settings (`GET/PUT /api/v1/settings/quarantine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineSettings {
    /// How many nodes hold each quarantined message (the owner included): 1 to
    /// [`COPIES_SETTING_MAX`]. Default 1.
    #[serde(default = "one")]
    pub copies: u32,
    /// With `copies` ≥ 2, answer `250` for a relayed message only once a peer holds its
    /// queue shadow durably (or [`super::shadow::SYNC_SHADOW_WAIT`] passed); default false:
    /// the shadow is made right after the `250` (README, "Queue copies").
    #[serde(default)]
    pub sync_queue_copies: bool,
}

fn one() -> u32 {
    1
}

impl Default for QuarantineSettings {
    fn default() -> Self {
        QuarantineSettings {
            copies: 1,
            sync_queue_copies: false,
        }
    }
}

impl QuarantineSettings {
    /// Checks the bounds; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=COPIES_SETTING_MAX).contains(&self.copies) {
            return Err(format!(
                "copies: {} must be from 1 to {COPIES_SETTING_MAX}",
                self.copies
            ));
        }
        Ok(())
    }
}

/// How a node left the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepartureKind {
    /// Drained and handed its queue and quarantine over before leaving.
    Retired,
    /// Declared gone for good (its disk lost): its messages with no copy show `lost`.
    Forgotten,
}

/// The record of a node that left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    /// Retired or forgotten.
    pub kind: DepartureKind,
    /// When it was recorded, ms since the epoch.
    pub at_ms: u64,
    /// The node that recorded it.
    pub by: String,
}

/// The custody facts the rule book holds, decoded once per rule-book change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustodyBook {
    /// The quarantine settings (defaults when unset or unreadable).
    pub quarantine: QuarantineSettings,
    /// Nodes that left, by id.
    pub departed: BTreeMap<String, Departure>,
}

impl CustodyBook {
    /// Reads them from `book`; an unreadable record is logged and skipped (a newer
    /// node's format), an unreadable departure still counts as departed (forgotten).
    pub fn of(book: &RuleBook) -> CustodyBook {
        let quarantine = book
            .setting(QUARANTINE_SETTING)
            .and_then(|text| serde_json::from_str::<QuarantineSettings>(&text).ok())
            .filter(|s| s.validate().is_ok())
            .unwrap_or_default();
        let departed = book
            .settings_named(DEPARTED_PREFIX)
            .into_iter()
            .filter_map(|(name, text)| {
                let node = name.strip_prefix(DEPARTED_PREFIX)?.to_string();
                let record = serde_json::from_str(&text).unwrap_or_else(|e| {
                    tracing::warn!(%node, error = %e, "departure record unreadable; taken as forgotten");
                    Departure {
                        kind: DepartureKind::Forgotten,
                        at_ms: 0,
                        by: String::new(),
                    }
                });
                Some((node, record))
            })
            .collect();
        CustodyBook {
            quarantine,
            departed,
        }
    }

    /// Whether `node` left the mesh.
    pub fn is_departed(&self, node: &str) -> bool {
        self.departed.contains_key(node)
    }
}
