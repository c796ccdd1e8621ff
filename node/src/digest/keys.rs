//! The cluster's link keys, kept in the rule book (replicated to every node over the
//! mesh's mutual TLS, never shown by the API): setting `digest-key:<slot>` holds
//! `{"generation","secret","created_ms"}`, slot = generation mod [`KEY_SLOTS`]. A rotation
//! writes the next generation into the next slot, so the last `KEY_SLOTS - 1` replaced keys
//! stay readable for the links they signed (rotating more often than that within one link
//! lifetime retires the oldest links early).

use serde::{Deserialize, Serialize};

use super::token::{Key, KeyRing, SECRET_BYTES};
use crate::rules::{Rules, RulesError};

/// Key slots kept in the rule book.
pub const KEY_SLOTS: u64 = 4;
/// Setting name prefix of the key slots.
const KEY_PREFIX: &str = "digest-key:";

/// A key as stored.
#[derive(Debug, Serialize, Deserialize)]
struct StoredKey {
    generation: u64,
    /// Hex.
    secret: String,
    created_ms: u64,
}

/// The keys the rule book holds (unreadable slots are skipped).
pub fn ring(rules: &Rules) -> KeyRing {
    let keys = rules
        .setting_documents(KEY_PREFIX)
        .into_iter()
        .filter_map(|(name, doc)| {
            let stored: StoredKey = serde_json::from_str(&doc).ok()?;
            let secret = hex::decode(&stored.secret).ok()?;
            let slot_ok = name == slot_name(stored.generation);
            (slot_ok && secret.len() == SECRET_BYTES).then_some(Key {
                generation: stored.generation,
                secret,
                created_ms: stored.created_ms,
            })
        })
        .collect();
    KeyRing { keys }
}

/// Makes the first key when the mesh has none; returns the current generation.
pub async fn ensure(rules: &Rules, admin: &str, now_ms: u64) -> Result<u64, RulesError> {
    match ring(rules).current() {
        Some(k) => Ok(k.generation),
        None => rotate(rules, admin, now_ms).await,
    }
}

/// Writes a new key (the next generation); links signed before keep working until they
/// expire. Returns the new generation.
pub async fn rotate(rules: &Rules, admin: &str, now_ms: u64) -> Result<u64, RulesError> {
    let generation = ring(rules).current().map_or(1, |k| k.generation + 1);
    let secret: [u8; SECRET_BYTES] = rand::random();
    let stored = StoredKey {
        generation,
        secret: hex::encode(secret),
        created_ms: now_ms,
    };
    let document = serde_json::to_string(&stored).unwrap_or_default();
    rules
        .set_setting_document(&slot_name(generation), &document, admin, now_ms)
        .await?;
    Ok(generation)
}

fn slot_name(generation: u64) -> String {
    format!("{KEY_PREFIX}{}", generation % KEY_SLOTS)
}
