//! The owner's carry-out of per-recipient decisions: a release for one recipient relays to
//! that recipient only, once; the bytes stay held for the others; the last decision makes
//! the entry terminal; a whole-message release after it relays to the rest only.

use std::sync::Arc;

use mxmesh_crdt::qindex::{IntentAction, IntentStep, PendingAction, QuarantineIndex};

use super::super::Status;
use super::super::tests::entry;
use super::*;
use crate::clock::Clock;
use crate::config::Config;
use crate::relay::queue::QueueEntry;
use crate::stats::Stats;
use crate::store::Store;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

struct Owner {
    _dir: tempfile::TempDir,
    store: Store,
    q: Quarantine,
    relay: Relay,
}

/// Node mx1 holding message `01A` for alice and bob (bytes `raw`).
async fn owner() -> Owner {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[node]\nid = \"mx1\"\ndata_dir = \"{}\"\n[smtp]\nlisten = \"127.0.0.1:2525\"\nhostname = \"mx1.example.com\"\n\
         [[domains]]\nname = \"example.com\"\nrelay_to = \"127.0.0.1:9\"\n\
         [admin]\nlisten = \"127.0.0.1:8025\"\ntokens_file = \"/dev/null\"\n",
        dir.path().display()
    );
    let config = Config::parse(&text, "t.toml").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut held = entry("01A", 1_000, "held");
    held.meta.recipients = vec![ALICE.into(), BOB.into()];
    let mut b = Batch::new();
    Quarantine::stage(&mut b, &held, b"raw");
    store.commit(b).await.unwrap();
    let q = Quarantine::new(store.clone(), "mx1".into(), Clock::system()).unwrap();
    q.index().own_upsert(&held);
    let relay = Relay::new(Arc::new(config), store.clone(), Arc::new(Stats::default()));
    Owner {
        _dir: dir,
        store,
        q,
        relay,
    }
}

impl Owner {
    /// Every relay queue entry: (id, recipients).
    fn queued(&self) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        self.store
            .scan(Cf::Queue, b"", |_, v| {
                let e = QueueEntry::decode(v).unwrap();
                out.push((e.id, e.recipients.into_iter().map(|r| r.addr).collect()));
                true
            })
            .unwrap();
        out
    }

    fn stored(&self) -> Entry {
        self.q.get("01A").unwrap().unwrap()
    }
}

#[tokio::test]
async fn a_recipient_release_relays_to_that_recipient_once_and_the_last_decision_ends_it() {
    let o = owner().await;
    o.q.release_for("01A", Some("Alice@Example.com"), &o.relay, "link", None)
        .await
        .unwrap();
    assert_eq!(
        o.queued(),
        [("01A.0".to_string(), vec![ALICE.to_string()])],
        "relayed to alice only"
    );
    let e = o.stored();
    assert_eq!(e.meta.status, Status::Quarantined, "still held for bob");
    assert_eq!(e.meta.recipients_released, [ALICE]);
    assert_eq!(
        o.q.raw("01A").unwrap(),
        b"raw",
        "bob's copy keeps its bytes"
    );
    assert_eq!(o.q.live_entries(), 1);
    let shown = o.q.index().get("01A").unwrap();
    assert_eq!(shown.recipients_released, [ALICE], "the index follows");
    assert!(shown.held_for(BOB) && !shown.held_for(ALICE));

    let again =
        o.q.release_for("01A", Some(ALICE), &o.relay, "link", None)
            .await;
    assert!(
        matches!(again, Err(QuarantineError::RecipientGone { .. })),
        "{again:?}"
    );
    assert!(again.unwrap_err().to_string().contains("already released"));
    assert_eq!(o.queued().len(), 1, "nothing relayed the second time");
    let stranger =
        o.q.delete_for("01A", Some("eve@example.com"), "x", None)
            .await;
    assert!(matches!(
        stranger,
        Err(QuarantineError::NotRecipient { .. })
    ));

    o.q.delete_for("01A", Some(BOB), "link", None)
        .await
        .unwrap();
    let e = o.stored();
    assert_eq!(
        e.meta.status,
        Status::Released,
        "released to alice, deleted for bob"
    );
    assert_eq!(e.meta.recipients_deleted, [BOB]);
    assert_eq!(
        o.store.get(Cf::Messages, b"01A").unwrap(),
        None,
        "bytes gone"
    );
    assert_eq!(o.queued().len(), 1, "bob never got it");
    assert_eq!(o.q.live_entries(), 0);
    assert_eq!(
        o.q.index().get("01A").map(|e| e.status),
        Some(Status::Released)
    );
}

#[tokio::test]
async fn an_admin_release_after_a_recipient_release_relays_to_the_rest_only() {
    let o = owner().await;
    o.q.release_for("01A", Some(BOB), &o.relay, "link", None)
        .await
        .unwrap();
    o.q.release("01A", &o.relay, "admin", None).await.unwrap();
    let mut queued = o.queued();
    queued.sort();
    assert_eq!(
        queued,
        [
            ("01A".to_string(), vec![ALICE.to_string()]),
            ("01A.1".to_string(), vec![BOB.to_string()]),
        ]
    );
    let e = o.stored();
    assert_eq!(e.meta.status, Status::Released);
    assert_eq!(e.meta.recipients_released, [BOB, ALICE]);
    assert!(matches!(
        o.q.release("01A", &o.relay, "admin", None).await,
        Err(QuarantineError::Gone { .. })
    ));
}

#[tokio::test]
async fn a_deferred_recipient_request_is_carried_out_for_its_recipient_once() {
    let o = owner().await;
    // mx2 records alice's release twice (two clicks) while mx1 is out of reach.
    let mut mx2 = QuarantineIndex::new();
    mx2.apply(o.q.index().delta_since(&Default::default(), 1000))
        .unwrap();
    for rid in ["01R1", "01R2"] {
        let pending = PendingAction {
            action: IntentAction::Release,
            requested_by: "mx2".into(),
            admin: "digest link".into(),
            requested_ms: 5,
            request_id: rid.into(),
            recipient: Some(0),
        };
        mx2.request("mx2", "01A", pending).unwrap();
    }
    o.q.index()
        .apply(mx2.delta_since(&o.q.index().version_vector(), 1000), 10)
        .unwrap();
    let mut relayed = 0;
    for intent in o.q.index().pending_intents_for_me() {
        let rid = intent.request_id.clone();
        match o.q.index().begin_intent(&rid, 20).unwrap() {
            IntentStep::Execute {
                entry_id,
                recipient,
                ..
            } => {
                assert_eq!(recipient.as_deref(), Some(ALICE));
                o.q.release_for(&entry_id, recipient.as_deref(), &o.relay, "l", Some(&rid))
                    .await
                    .unwrap();
                relayed += 1;
            }
            IntentStep::Done(outcome) => assert_eq!(outcome.as_str(), "already released"),
        }
    }
    assert_eq!(relayed, 1);
    assert_eq!(o.queued(), [("01A.0".to_string(), vec![ALICE.to_string()])]);
    assert!(o.q.index().pending_intents_for_me().is_empty());
    assert_eq!(o.stored().meta.status, Status::Quarantined);
}

#[tokio::test]
async fn a_restored_store_takes_the_recipients_released_after_the_backup() {
    // The past life: 01A held for alice and bob (the backup), then released to alice; a
    // peer holds that log.
    let past = owner().await;
    past.q
        .release_for("01A", Some(ALICE), &past.relay, "link", None)
        .await
        .unwrap();
    let mut peer = QuarantineIndex::new();
    peer.apply(past.q.index().delta_since(&Default::default(), 1000))
        .unwrap();
    // The restored store holds the backup: 01A undecided.
    let o = owner().await;
    crate::store::backup::mark_restored(&o.store, 1)
        .await
        .unwrap();
    let q = Quarantine::new(o.store.clone(), "mx1".into(), Clock::system()).unwrap();
    assert!(q.is_restoring());
    q.index()
        .apply(peer.delta_since(&q.index().version_vector(), 1000), 10)
        .unwrap();
    q.settle_restored("test").await;
    let stored = q.get("01A").unwrap().unwrap();
    assert_eq!(
        stored.meta.recipients_released,
        [ALICE],
        "the store follows"
    );
    assert_eq!(stored.meta.status, Status::Quarantined, "bob is still held");
    let again = q
        .release_for("01A", Some(ALICE), &o.relay, "link", None)
        .await;
    assert!(
        matches!(again, Err(QuarantineError::RecipientGone { .. })),
        "{again:?}"
    );
    assert!(o.queued().is_empty(), "alice is not released to again");
    q.release("01A", &o.relay, "admin", None).await.unwrap();
    assert_eq!(o.queued(), [("01A".to_string(), vec![BOB.to_string()])]);
}

#[tokio::test]
async fn an_adopted_message_keeps_its_decisions() {
    let o = owner().await;
    o.q.delete_for("01A", Some(BOB), "link", None)
        .await
        .unwrap();
    let (entry, raw) = (o.stored(), o.q.raw("01A").unwrap());
    // mx2 takes it over (a retire hand-over sends the owner's entry as stored).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mx2 = Quarantine::new(store, "mx2".into(), Clock::system()).unwrap();
    let adopted = mx2.adopt(&entry, &raw, "mx1").await.unwrap();
    assert_eq!(adopted.meta.recipients_deleted, [BOB]);
    let shown = mx2.index().get("01A").unwrap();
    assert!(shown.held_for(ALICE) && !shown.held_for(BOB));
    let err = mx2
        .delete_for("01A", Some(BOB), "x", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already deleted for"), "{err}");
}
