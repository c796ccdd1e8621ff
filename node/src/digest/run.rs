//! One digest pass on one node: find the recipients with new held mail for the due period
//! (from this node's copy of the mesh-wide quarantine index), decide per recipient who
//! sends ([`super::choice`]), build and queue this node's share, and record the
//! watermarks with them in one synced write per batch.

use std::collections::HashMap;
use std::str::FromStr;

use mxmesh_crdt::qindex::{Cursor, EntryStatus, IndexEntry, IndexQuery, SEARCH_LIMIT_MAX};

use super::choice::{Decision, View};
use super::mail::{self, Item, ItemLinks};
use super::settings::DigestSettings;
use super::token::{self, Action, Claim, Key};
use super::{Digest, ledger::Ledger};
use crate::quarantine::MeshIndex;
use crate::relay::Relay;
use crate::relay::queue::{Origin, QueueEntry};
use crate::store::{Batch, StoreError};

/// How far back a pass looks for held mail (a recipient whose watermark is older gets a
/// digest of this much).
pub const LOOKBACK_MAX_MS: u64 = 7 * 86_400_000;
/// The window of a recipient without a watermark: the last day.
pub const FIRST_WINDOW_MS: u64 = 86_400_000;
/// Recipients one pass handles at most; the rest wait for the next pass.
pub const PASS_RECIPIENTS_MAX: usize = 100_000;
/// Index entries one pass reads at most.
pub const PASS_ENTRIES_MAX: usize = 2_000_000;
/// Digests queued per synced write.
pub const SEND_BATCH: usize = 256;

/// What one pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Recipients with new held mail in the period.
    pub recipients: usize,
    /// Digests this node queued.
    pub sent: usize,
    /// Recipients whose digest another node (or a later turn or pass) still has to send.
    pub open: usize,
}

/// One recipient's new held mail.
#[derive(Debug, Default)]
pub struct Pending {
    /// Newest first, at most the per-digest bound.
    pub items: Vec<Item>,
    /// Beyond the bound.
    pub more: usize,
}

/// What one pass found.
#[derive(Debug, Default)]
pub struct Found {
    /// Held mail received in `(watermark, period_ms]` per recipient (lowercased).
    pub recipients: HashMap<String, Pending>,
    /// A bound cut the pass short: more recipients wait for the next pass.
    pub truncated: bool,
}

/// Whether `rcpt` is an address of one of `domains` (case-insensitive).
pub fn in_domains(rcpt: &str, domains: &[String]) -> bool {
    rcpt.rsplit_once('@').is_some_and(|(_, domain)| {
        let domain = domain.trim_end_matches('.');
        domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    })
}

/// Held mail received in `(watermark, period_ms]` per recipient `ours` accepts, at most
/// [`PASS_RECIPIENTS_MAX`] recipients and [`PASS_ENTRIES_MAX`] entries read.
pub fn collect(
    index: &MeshIndex,
    ledger: &Ledger,
    ours: &dyn Fn(&str) -> bool,
    period_ms: u64,
    items_max: usize,
    now_ms: u64,
) -> Found {
    let since = period_ms.saturating_sub(LOOKBACK_MAX_MS);
    let mut low_of: HashMap<String, u64> = HashMap::new();
    let mut found: HashMap<String, Pending> = HashMap::new();
    let mut query = IndexQuery {
        since_ms: Some(since),
        status: Some(EntryStatus::Quarantined),
        limit: SEARCH_LIMIT_MAX,
        cursor: Some(Cursor {
            received_ms: period_ms.saturating_add(1),
            id: String::new(),
        }),
        ..IndexQuery::default()
    };
    let mut read = 0;
    let mut truncated = false;
    loop {
        let (entries, next) = index.search(&query);
        read += entries.len();
        for e in &entries {
            // Only the recipients the message is still held for (not released or deleted
            // for them one by one).
            for rcpt in e.recipients.iter().filter(|r| ours(r) && e.held_for(r)) {
                let rcpt = rcpt.to_ascii_lowercase();
                let low = *low_of.entry(rcpt.clone()).or_insert_with(|| {
                    match ledger.watermark(&rcpt, now_ms) {
                        0 => period_ms.saturating_sub(FIRST_WINDOW_MS),
                        mark => mark.max(since),
                    }
                });
                if e.received_ms <= low {
                    continue;
                }
                if !found.contains_key(&rcpt) && found.len() >= PASS_RECIPIENTS_MAX {
                    truncated = true;
                    continue;
                }
                add(found.entry(rcpt).or_default(), e, items_max);
            }
        }
        match next.and_then(|c| Cursor::from_str(&c).ok()) {
            Some(cursor) if read < PASS_ENTRIES_MAX => query.cursor = Some(cursor),
            Some(_) => {
                truncated = true;
                break;
            }
            None => break,
        }
    }
    Found {
        recipients: found,
        truncated,
    }
}

fn add(p: &mut Pending, e: &IndexEntry, items_max: usize) {
    if p.items.len() >= items_max {
        p.more += 1;
        return;
    }
    p.items.push(Item {
        id: e.id.clone(),
        sender: e.sender.clone(),
        subject: e.subject.clone(),
        received_ms: e.received_ms,
        reason: e.reason.clone(),
    });
}

/// Decides for every recipient, then queues this node's digests in batches.
pub async fn send_due(
    digest: &Digest,
    view: &View,
    key: &Key,
    settings: &DigestSettings,
    period_ms: u64,
    found: Found,
) -> Result<PassReport, StoreError> {
    let now = digest.clock().now_ms();
    let mut report = PassReport {
        recipients: found.recipients.len(),
        open: usize::from(found.truncated),
        ..PassReport::default()
    };
    let mut mine: Vec<(String, Pending)> = Vec::new();
    for (rcpt, pending) in found.recipients {
        let watermark = digest.ledger().watermark(&rcpt, now);
        match view.decide(&rcpt, period_ms, watermark, now) {
            Decision::Done => {}
            Decision::Send => mine.push((rcpt, pending)),
            _ => report.open += 1,
        }
    }
    mine.sort_by(|a, b| a.0.cmp(&b.0));
    for chunk in mine.chunks(SEND_BATCH) {
        send_batch(digest, key, settings, period_ms, chunk).await?;
        report.sent += chunk.len();
    }
    Ok(report)
}

/// Queues the digests of `chunk` and records their watermarks in one synced write.
async fn send_batch(
    digest: &Digest,
    key: &Key,
    settings: &DigestSettings,
    period_ms: u64,
    chunk: &[(String, Pending)],
) -> Result<(), StoreError> {
    let mut batch = Batch::new();
    let mut entries: Vec<QueueEntry> = Vec::with_capacity(chunk.len());
    let mut recipients = Vec::with_capacity(chunk.len());
    for (rcpt, pending) in chunk {
        match queued_digest(digest, key, settings, period_ms, (rcpt, pending)) {
            Ok((entry, bytes)) => {
                Relay::stage(&mut batch, &entry, Some(&bytes));
                entries.push(entry);
            }
            Err(e) => {
                tracing::warn!(recipient = %rcpt, error = %e, "digest not built; recipient skipped")
            }
        }
        recipients.push(rcpt.clone());
    }
    digest
        .ledger()
        .record_sent(&recipients, period_ms, batch)
        .await?;
    for entry in &entries {
        digest.relay().schedule(entry);
    }
    Ok(())
}

/// The relay entry and bytes of `rcpt`'s digest.
fn queued_digest(
    digest: &Digest,
    key: &Key,
    settings: &DigestSettings,
    period_ms: u64,
    (rcpt, pending): (&str, &Pending),
) -> Result<(QueueEntry, Vec<u8>), token::TokenError> {
    let now = digest.clock().now_ms();
    let expires_ms = now.saturating_add(settings.link_lifetime_ms());
    let link = |action: Action, entry: Option<&str>| -> Result<String, token::TokenError> {
        let claim = Claim {
            action,
            recipient: rcpt.to_string(),
            entry: entry.map(str::to_string),
            expires_ms,
        };
        Ok(format!(
            "{}/q/{}",
            settings.base_url(),
            token::sign(key, &claim)?
        ))
    };
    let mut items = Vec::with_capacity(pending.items.len());
    for item in &pending.items {
        let links = ItemLinks {
            release: link(Action::Release, Some(&item.id))?,
            allow: link(Action::Allow, Some(&item.id))?,
            delete: link(Action::Delete, Some(&item.id))?,
        };
        items.push((item.clone(), links));
    }
    let id = digest.clock().ulid().to_string();
    let message_id = format!("{id}.digest@{}", digest.hostname());
    let bytes = mail::build(&mail::Digest {
        to: rcpt,
        from: &settings.sender,
        message_id: &message_id,
        date: &crate::clock::rfc5322_date(now),
        items: &items,
        more: pending.more,
        show_all: &link(Action::Show, None)?,
        links_expire: &crate::clock::rfc5322_date(expires_ms),
        period_ms,
    });
    let subject = mail::subject(items.len() + pending.more);
    let entry = digest.relay().entry(
        &id,
        &settings.sender,
        &[rcpt.to_string()],
        &subject,
        bytes.len() as u64,
        Origin::Digest,
    );
    Ok((entry, bytes))
}

#[cfg(test)]
mod tests {
    use super::in_domains;

    #[test]
    fn only_recipients_of_our_domains_get_digests() {
        let ours = ["example.com".to_string(), "Example.NET".to_string()];
        assert!(in_domains("alice@example.com", &ours));
        assert!(in_domains("Bob@EXAMPLE.net.", &ours));
        assert!(
            !in_domains("carol@outside.example", &ours),
            "outbound mail's recipient"
        );
        assert!(!in_domains("alice@sub.example.com", &ours));
        assert!(!in_domains("postmaster", &ours));
    }
}
