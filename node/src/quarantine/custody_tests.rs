//! Hand-over and adoption in batches (a retire's unit of work): all or nothing on both
//! sides, repeatable after a crash, and never a message released on two nodes.

use std::sync::{Arc, Mutex};

use super::super::tests::entry;
use super::*;
use crate::clock::Clock;
use crate::store::Store;

/// A quarantine of node `node` holding `entries` (bytes `raw-<id>`).
async fn open(node: &str, entries: &[Entry]) -> (tempfile::TempDir, Quarantine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut b = Batch::new();
    for e in entries {
        let raw = format!("raw-{}", e.meta.id);
        Quarantine::stage(&mut b, e, raw.as_bytes());
    }
    if !b.is_empty() {
        store.commit(b).await.unwrap();
    }
    let q = Quarantine::new(store, node.into(), Clock::system()).unwrap();
    (dir, q)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Messages as a hand-over sends them: entry and bytes.
type Items = Vec<(Entry, Vec<u8>)>;
/// What a `send` closure was given, for the test to look at.
type Sent = Arc<Mutex<Items>>;
/// What a `send` closure answers.
type Answer = std::future::Ready<Result<(), String>>;

fn recording(sent: &Sent) -> impl FnOnce(Items) -> Answer {
    let sent = sent.clone();
    move |items| {
        sent.lock().unwrap().extend(items);
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn a_batch_hands_over_every_live_message_in_one_call() {
    let mut released = entry("01D", 4, "d");
    released.meta.status = Status::Released;
    let live = [
        entry("01A", 1, "a"),
        entry("01B", 2, "b"),
        entry("01C", 3, "c"),
    ];
    let mut all = live.to_vec();
    all.push(released);
    let (_d, q) = open("mx1", &all).await;
    q.set_retiring(true);
    let sent = Sent::default();
    let asked = ids(&["01A", "01B", "01C", "01D", "01NONE"]);
    let moved = q
        .hand_over_batch(&asked, "mx2", recording(&sent))
        .await
        .unwrap();

    assert_eq!(moved, ids(&["01A", "01B", "01C"]));
    let sent = sent.lock().unwrap();
    let got: Vec<(String, Vec<u8>)> = sent
        .iter()
        .map(|(e, raw)| (e.meta.id.clone(), raw.clone()))
        .collect();
    let want: Vec<(String, Vec<u8>)> = live
        .iter()
        .map(|e| (e.meta.id.clone(), format!("raw-{}", e.meta.id).into_bytes()))
        .collect();
    assert_eq!(got, want, "only the live messages travel, with their bytes");
    for id in &moved {
        let e = q.get(id).unwrap().unwrap();
        assert_eq!(e.meta.status, Status::Moved, "{id} is a moved tombstone");
        assert!(matches!(q.raw(id), Err(QuarantineError::Gone { .. })));
        assert_eq!(q.index().get(id).unwrap().status, Status::Moved);
    }
    assert_eq!(q.live_entries(), 0);
}

#[tokio::test]
async fn a_failed_call_leaves_every_message_of_the_batch_here() {
    let (_d, q) = open("mx1", &[entry("01A", 1, "a"), entry("01B", 2, "b")]).await;
    q.set_retiring(true);
    let refuse = |_items: Vec<(Entry, Vec<u8>)>| {
        std::future::ready(Err::<(), String>("node mx2 is not live".to_string()))
    };
    let err = q
        .hand_over_batch(&ids(&["01A", "01B"]), "mx2", refuse)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("01A (and 1 more)") && err.to_string().contains("mx2"),
        "{err}"
    );
    for id in ["01A", "01B"] {
        assert_eq!(q.get(id).unwrap().unwrap().meta.status, Status::Quarantined);
        assert_eq!(q.raw(id).unwrap(), format!("raw-{id}").into_bytes());
    }
    assert_eq!(q.live_entries(), 2);
}

#[tokio::test]
async fn only_a_retiring_node_hands_messages_over() {
    let (_d, q) = open("mx1", &[entry("01A", 1, "a")]).await;
    let sent = Sent::default();
    let err = q
        .hand_over_batch(&ids(&["01A"]), "mx2", recording(&sent))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not retiring"), "{err}");
    assert!(sent.lock().unwrap().is_empty(), "nothing was sent");
    assert_eq!(
        q.get("01A").unwrap().unwrap().meta.status,
        Status::Quarantined
    );
}

#[tokio::test]
async fn a_message_expired_while_its_batch_travels_is_not_marked_moved() {
    let (_d, q) = open("mx1", &[entry("01A", 1, "a"), entry("01B", 50, "b")]).await;
    q.set_retiring(true);
    let here = q.clone();
    // Retention runs while the call is in flight (the lock is not held meanwhile).
    let send = move |items: Vec<(Entry, Vec<u8>)>| async move {
        assert_eq!(items.len(), 2);
        assert_eq!(here.expire(10).await.map_err(|e| e.to_string())?, 1);
        Ok::<(), String>(())
    };
    let moved = q
        .hand_over_batch(&ids(&["01A", "01B"]), "mx2", send)
        .await
        .unwrap();
    assert_eq!(moved, ids(&["01B"]));
    assert!(q.get("01A").unwrap().is_none(), "expired here, not marked");
    assert_eq!(q.get("01B").unwrap().unwrap().meta.status, Status::Moved);
    assert_eq!(q.live_entries(), 0);
}

#[tokio::test]
async fn a_batch_is_adopted_in_one_write_and_adopting_it_again_changes_nothing() {
    let (_d, q) = open("mx2", &[]).await;
    let mut a = entry("01A", 1, "a");
    a.meta.copies = vec!["mx2".into(), "mx3".into()];
    let items = vec![
        (a, b"raw-a".to_vec()),
        (entry("01B", 2, "b"), b"raw-b".to_vec()),
    ];
    // mx2 held a copy of 01A: the adoption drops it in the same batch.
    q.hold_copy(&items[0].0, b"raw-a").await.unwrap();

    let adopted = q.adopt_batch(&items, "mx1").await.unwrap();
    assert_eq!(adopted.len(), 2);
    for (e, (sent, raw)) in adopted.iter().zip(&items) {
        assert_eq!(e.meta.id, sent.meta.id);
        assert_eq!(
            (e.meta.node.as_str(), e.meta.adopted_from.as_deref()),
            ("mx2", Some("mx1"))
        );
        assert_eq!(&q.raw(&e.meta.id).unwrap(), raw);
    }
    assert_eq!(
        adopted[0].meta.copies,
        ["mx3"],
        "neither the old owner nor mx2 is a holder"
    );
    assert!(q.copy_entry("01A").unwrap().is_none(), "the held copy went");
    assert_eq!(q.live_entries(), 2);

    // The retiring node crashed before it marked them moved and sends them again.
    let again = q.adopt_batch(&items, "mx1").await.unwrap();
    assert_eq!(again, adopted);
    assert_eq!(q.live_entries(), 2, "nothing adopted twice");
}

#[tokio::test]
async fn an_id_given_twice_in_one_batch_is_adopted_once() {
    let (_d, q) = open("mx2", &[]).await;
    let item = (entry("01A", 1, "a"), b"raw-a".to_vec());
    let adopted = q.adopt_batch(&[item.clone(), item], "mx1").await.unwrap();
    assert_eq!(adopted[0], adopted[1]);
    assert_eq!(q.live_entries(), 1);
}

#[tokio::test]
async fn a_batch_with_a_message_not_quarantined_is_refused_whole() {
    let (_d, q) = open("mx2", &[]).await;
    let mut released = entry("01B", 2, "b");
    released.meta.status = Status::Released;
    let items = vec![
        (entry("01A", 1, "a"), b"raw-a".to_vec()),
        (released, b"raw-b".to_vec()),
    ];
    let err = q.adopt_batch(&items, "mx1").await.unwrap_err();
    assert!(
        matches!(err, QuarantineError::Gone { ref id, .. } if id == "01B"),
        "{err}"
    );
    assert!(
        q.get("01A").unwrap().is_none(),
        "nothing of the batch was stored"
    );
    assert_eq!(q.live_entries(), 0);
}
