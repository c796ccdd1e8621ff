use super::*;
use crate::store::StoreKind;

fn open(id: &str) -> (Bayes, Store, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_kind(&tmp.path().join(id), &StoreKind::memory().unwrap()).unwrap();
    let bayes = Bayes::open(store.clone(), id.to_string(), Clock::system()).unwrap();
    (bayes, store, tmp)
}

fn message(n: u32, word: &str) -> Vec<u8> {
    format!(
        "From: sender{n}@example.com\r\nSubject: {word} number {n}\r\n\r\n{word} {word} body {n}\r\n"
    )
    .into_bytes()
}

fn peer(id: &str) -> Peer {
    Peer {
        node_id: id.to_string(),
        addr: "127.0.0.1:1".parse().unwrap(),
    }
}

/// `to` pulls from `from` until nothing changes (as the mesh's pull loop does).
fn pull(to: &Bayes, from: &Bayes) {
    for _ in 0..BAYES_SYNC_ROUNDS_MAX {
        let request = to.request().unwrap();
        let answer = from.serve(&peer("x"), &request).unwrap();
        if !to.apply(&answer).unwrap() {
            return;
        }
    }
    panic!("sync did not settle");
}

#[tokio::test]
async fn learn_relearn_and_forget() {
    let (bayes, _store, _tmp) = open("n1");
    let raw = message(1, "viagra");
    let first = bayes.learn(&raw, Class::Spam).await.unwrap();
    assert_eq!(first.outcome, LearnOutcome::Learned);
    assert_eq!(first.digest.0, crate::bayes::digest(&raw));
    let again = bayes.learn(&raw, Class::Spam).await.unwrap();
    assert_eq!(again.outcome, LearnOutcome::AlreadyLearned);
    let moved = bayes.learn(&raw, Class::Ham).await.unwrap();
    assert_eq!(moved.outcome, LearnOutcome::Moved { from: Class::Spam });
    let s = bayes.status();
    assert_eq!((s.spam_learned, s.ham_learned), (0, 1));
    assert!(!s.ready);
    assert_eq!(s.nodes["n1"].winning.ham, 1);
    assert_eq!(bayes.forget(first.digest).await.unwrap(), Some(Class::Ham));
    let s = bayes.status();
    assert_eq!((s.spam_learned, s.ham_learned, s.tokens), (0, 0, 0));
    assert_eq!(bayes.forget(first.digest).await.unwrap(), None);
    bayes.audit().unwrap();
}

#[tokio::test]
async fn what_is_acknowledged_is_restored_from_the_store() {
    let (bayes, store, _tmp) = open("n1");
    let spam = bayes
        .learn(&message(1, "pills"), Class::Spam)
        .await
        .unwrap();
    bayes
        .learn(&message(2, "meeting"), Class::Ham)
        .await
        .unwrap();
    bayes.forget(spam.digest).await.unwrap();
    bayes
        .learn(&message(3, "lottery"), Class::Spam)
        .await
        .unwrap();
    let again = Bayes::open(store, "n1".into(), Clock::system()).unwrap();
    assert_eq!(again.status(), bayes.status());
    assert_eq!(again.fingerprint(), bayes.fingerprint());
    again.audit().unwrap();
}

#[tokio::test]
async fn sync_converges_and_applied_deltas_are_stored() {
    let (a, _sa, _ta) = open("a");
    let (b, sb, _tb) = open("b");
    let raw = message(1, "casino");
    let learned = a.learn(&raw, Class::Spam).await.unwrap();
    b.learn(&raw, Class::Spam).await.unwrap(); // the same message on both sides
    a.learn(&message(2, "lunch"), Class::Ham).await.unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint());
    pull(&b, &a);
    pull(&a, &b);
    assert_eq!(a.fingerprint(), b.fingerprint());
    let s = b.status();
    assert_eq!((s.spam_learned, s.ham_learned), (1, 1), "counted once");
    // A forget on b reaches a.
    b.forget(learned.digest).await.unwrap();
    pull(&a, &b);
    assert_eq!(a.status().spam_learned, 0);
    // b's writes are ordered: once this learn is stored, so is every delta applied before.
    b.learn(&message(3, "gift"), Class::Spam).await.unwrap();
    let reopened = Bayes::open(sb, "b".into(), Clock::system()).unwrap();
    assert_eq!(reopened.fingerprint(), b.fingerprint());
    a.audit().unwrap();
    b.audit().unwrap();
}

#[tokio::test]
async fn a_bad_delta_changes_nothing() {
    let (a, _s, _t) = open("a");
    a.learn(&message(1, "x"), Class::Spam).await.unwrap();
    let before = a.fingerprint();
    assert!(a.apply(b"not json").is_err());
    let bad = br#"{"v":1,"owners":[{"node":"b","from":0,"to":1,"floor":0,"records":[{"owner":"c","digest":"00","seq":1,"stamp_ms":1,"op":{"kind":"forget"}}]}]}"#;
    assert!(a.apply(bad).is_err());
    assert_eq!(a.fingerprint(), before);
    assert!(a.serve(&peer("b"), b"[1,2]").is_err());
}

#[tokio::test]
async fn no_vote_until_both_classes_reach_the_minimum() {
    let (a, _s, _t) = open("a");
    let raw = message(1, "offer");
    a.learn(&raw, Class::Spam).await.unwrap();
    assert_eq!(a.probability(&raw), None);
}

/// The class `raw` is learned as on `replica`.
fn class_on(replica: &Bayes, raw: &[u8]) -> Option<Class> {
    let digest = Digest(crate::bayes::digest(raw));
    replica.read(|c| c.class_of(&digest))
}

/// A node restarted on a wiped store writes before it has synced anything back: its new
/// record must still reach a peer that holds its past life's records under the seqs it
/// would otherwise reuse (found by the simulator's crash-restart scenario). Its past life's
/// records it never took back are dropped everywhere, as `restore_own` documents.
#[tokio::test]
async fn a_wiped_node_s_first_write_reaches_peers_that_hold_its_past_life() {
    let (a, _sa, _ta) = open("a");
    let (b, _sb, _tb) = open("b");
    let (old, new) = (message(1, "pills"), message(2, "casino"));
    a.learn(&old, Class::Spam).await.unwrap();
    a.learn(&message(3, "loans"), Class::Spam).await.unwrap();
    pull(&b, &a);
    let (wiped, _sw, _tw) = open("a");
    wiped.learn(&new, Class::Spam).await.unwrap();
    pull(&b, &wiped);
    pull(&wiped, &b);
    assert_eq!(class_on(&b, &new), Some(Class::Spam));
    assert_eq!(class_on(&b, &old), None);
    assert_eq!(wiped.fingerprint(), b.fingerprint());
    b.audit().unwrap();
    wiped.audit().unwrap();
}

/// A wiped node that synced its past life's records back before writing keeps them: they
/// are re-issued with its new record, and both replicas end alike.
#[tokio::test]
async fn a_wiped_node_keeps_what_it_synced_back_before_writing() {
    let (a, _sa, _ta) = open("a");
    let (b, _sb, _tb) = open("b");
    let (old, new) = (message(1, "pills"), message(2, "meeting"));
    a.learn(&old, Class::Spam).await.unwrap();
    pull(&b, &a);
    let (wiped, store, _tw) = open("a");
    pull(&wiped, &b);
    wiped.learn(&new, Class::Ham).await.unwrap();
    pull(&b, &wiped);
    for replica in [&wiped, &b] {
        assert_eq!(class_on(replica, &old), Some(Class::Spam));
        assert_eq!(class_on(replica, &new), Some(Class::Ham));
    }
    assert_eq!(wiped.fingerprint(), b.fingerprint());
    let reopened = Bayes::open(store, "a".into(), Clock::system()).unwrap();
    assert_eq!(reopened.fingerprint(), wiped.fingerprint());
}

/// Learns `raw` in `bayes`'s memory only: a learn whose store write has not landed yet.
fn learn_unstored(bayes: &Bayes, raw: &[u8], class: Class) {
    let digest = Digest(crate::bayes::digest(raw));
    let tokens = crate::bayes::tokenize(raw);
    let mut corpus = bayes.0.corpus.write().unwrap();
    corpus
        .learn(&bayes.0.node_id, digest, class, &tokens, 1)
        .unwrap();
    bayes.forget_fingerprint();
}

#[tokio::test]
async fn peers_get_own_records_once_stored_so_a_crash_reuses_no_seq_they_hold() {
    let (a, store_a, _ta) = open("a");
    let (b, _sb, _tb) = open("b");
    a.learn(&message(1, "stored"), Class::Spam).await.unwrap();
    learn_unstored(&a, &message(2, "pending"), Class::Spam);
    assert_eq!(a.status().spam_learned, 2);
    pull(&b, &a);
    assert_eq!(b.status().spam_learned, 1, "the unstored record stays home");
    // a crashes before that write lands, restarts from its store, and gives the lost
    // record's seq to its next learn: b never held the lost one, so it takes the new one.
    drop(a);
    let a = Bayes::open(store_a, "a".into(), Clock::system()).unwrap();
    assert_eq!(a.status().spam_learned, 1);
    a.learn(&message(3, "after"), Class::Ham).await.unwrap();
    pull(&b, &a);
    assert_eq!(b.fingerprint(), a.fingerprint());
    let s = b.status();
    assert_eq!((s.spam_learned, s.ham_learned), (1, 1));
    b.audit().unwrap();
}
