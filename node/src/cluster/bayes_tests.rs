use super::*;
use crate::store::StoreKind;

fn open(id: &str) -> (Bayes, Store, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_kind(&tmp.path().join(id), &StoreKind::memory().unwrap()).unwrap();
    let bayes = Bayes::open(store.clone(), id.to_string(), Clock::system(), Peers::None).unwrap();
    (bayes, store, tmp)
}

/// A node with a mesh on a fresh store (a new or wiped data directory); it settles alone
/// only after `wait`.
fn open_meshed(id: &str, wait: Duration) -> (Bayes, Store, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_kind(&tmp.path().join(id), &StoreKind::memory().unwrap()).unwrap();
    let bayes = Bayes::open_waiting(
        store.clone(),
        id.to_string(),
        Clock::system(),
        Peers::Mesh,
        wait,
    )
    .unwrap();
    (bayes, store, tmp)
}

/// Long enough that a test never sees it pass.
const NEVER: Duration = Duration::from_secs(3600);

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
    let again = Bayes::open(store, "n1".into(), Clock::system(), Peers::None).unwrap();
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
    let reopened = Bayes::open(sb, "b".into(), Clock::system(), Peers::None).unwrap();
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

#[tokio::test]
async fn the_mail_paths_parsed_message_gets_the_same_probability() {
    let (a, _s, _t) = open("a");
    let min = u32::try_from(crate::bayes::MIN_LEARNED_PER_CLASS).unwrap();
    let probe = message(9999, "offer");
    for n in 0..min {
        a.learn(&message(n, "offer"), Class::Spam).await.unwrap();
        let parsed = crate::message::parse(&probe);
        assert_eq!(
            a.probability_parsed(&probe, parsed.as_ref()),
            None,
            "not ready yet"
        );
        a.learn(&message(n, "meeting"), Class::Ham).await.unwrap();
    }
    let parsed = crate::message::parse(&probe);
    let once = a.probability_parsed(&probe, parsed.as_ref());
    assert!(once.is_some_and(|p| p > 0.5), "{once:?}");
    assert_eq!(once, a.probability(&probe));
    // The mail path's verdict: the same probability, and the unfamiliarity beside it.
    let verdict = a.verdict_parsed(&probe, parsed.as_ref());
    assert_eq!(verdict.map(|v| v.probability), once);
    assert_eq!(
        verdict.and_then(|v| v.unfamiliar),
        None,
        "fewer than 20 plain words"
    );
}

#[tokio::test]
async fn a_learn_whose_store_write_fails_is_not_applied() {
    let (a, store, _t) = open("a");
    let (b, _sb, _tb) = open("b");
    a.learn(&message(1, "pills"), Class::Spam).await.unwrap();
    let before = (a.status(), a.fingerprint());
    store.fail_writes(true);
    let err = a
        .learn(&message(2, "casino"), Class::Spam)
        .await
        .unwrap_err();
    assert!(matches!(err, BayesOpError::Store(_)), "{err}");
    let first = crate::bayes::digest(&message(1, "pills"));
    let err = a.forget(Digest(first)).await.unwrap_err();
    assert!(matches!(err, BayesOpError::Store(_)), "{err}");
    assert_eq!((a.status(), a.fingerprint()), before, "nothing applied");
    // A peer pulling now sees only what was stored.
    pull(&b, &a);
    assert_eq!(b.status().spam_learned, 1);
    // Once writes work again the same learn goes through, with the seq the failure left free.
    store.fail_writes(false);
    let learned = a.learn(&message(2, "casino"), Class::Spam).await.unwrap();
    assert_eq!(learned.outcome, LearnOutcome::Learned);
    pull(&b, &a);
    assert_eq!(b.fingerprint(), a.fingerprint());
    let reopened = Bayes::open(store, "a".into(), Clock::system(), Peers::None).unwrap();
    assert_eq!(reopened.fingerprint(), a.fingerprint());
    a.audit().unwrap();
}

#[tokio::test]
async fn a_wiped_node_takes_its_log_back_from_a_peer_before_it_learns() {
    let (old_n1, _s, _t) = open("n1");
    let (n2, _s2, _t2) = open("n2");
    for n in 1..=3 {
        old_n1
            .learn(&message(n, "lottery"), Class::Spam)
            .await
            .unwrap();
    }
    old_n1
        .learn(&message(4, "minutes"), Class::Ham)
        .await
        .unwrap();
    n2.learn(&message(5, "agenda"), Class::Ham).await.unwrap();
    pull(&n2, &old_n1);
    let mesh_wide = n2.status();
    assert_eq!((mesh_wide.spam_learned, mesh_wide.ham_learned), (3, 2));
    drop(old_n1);

    // n1 restarts on a wiped store: it waits for a peer before writing anything.
    let (n1, store, _t1) = open_meshed("n1", NEVER);
    assert!(!n1.is_settled());
    assert!(n1.digest().unwrap().starts_with(UNSETTLED_DIGEST_PREFIX));
    let early = {
        let n1 = n1.clone();
        tokio::spawn(async move { n1.learn(&message(6, "jackpot"), Class::Spam).await })
    };
    tokio::task::yield_now().await;
    assert!(
        !early.is_finished(),
        "a learn waits until the own log is settled"
    );
    pull(&n1, &n2);
    n1.wait_settled().await.unwrap();
    early.await.unwrap().unwrap();
    // Its old records came back re-issued; with the new learn, everything counts once.
    pull(&n2, &n1);
    pull(&n1, &n2);
    let s = n2.status();
    assert_eq!((s.spam_learned, s.ham_learned), (4, 2), "{s:?}");
    assert_eq!(s.nodes["n1"].winning.spam, 4);
    assert_eq!(n1.status(), s);
    assert_eq!(n1.fingerprint(), n2.fingerprint());
    // Learning an old message again on n1 writes nothing: it knows it learned it.
    let again = n1.learn(&message(2, "lottery"), Class::Spam).await.unwrap();
    assert_eq!(again.outcome, LearnOutcome::AlreadyLearned);
    // What it took back is in its store.
    let reopened = Bayes::open(store, "n1".into(), Clock::system(), Peers::Mesh).unwrap();
    assert_eq!(reopened.status(), n1.status());
    n1.audit().unwrap();
    n2.audit().unwrap();
}

#[tokio::test]
async fn a_node_with_a_mesh_but_no_peer_settles_alone_after_the_wait() {
    let (n1, _s, _t) = open_meshed("n1", Duration::ZERO);
    n1.wait_settled().await.unwrap();
    let learned = n1.learn(&message(1, "offer"), Class::Spam).await.unwrap();
    assert_eq!(learned.outcome, LearnOutcome::Learned);
    assert_eq!(n1.digest(), Some(n1.fingerprint()));
}
