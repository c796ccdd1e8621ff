//! Unit tests of `relay`.

use super::*;

const HOUR_MS: u64 = 3_600_000;

fn relay_in(dir: &std::path::Path) -> (Relay, Store) {
    let text = format!(
        "[node]\nid = \"mx1\"\ndata_dir = \"{}\"\n[smtp]\nlisten = \"127.0.0.1:2525\"\nhostname = \"mx1.example.com\"\n\
         [[domains]]\nname = \"example.com\"\nrelay_to = \"127.0.0.1:9\"\n\
         [[domains]]\nname = \"example.org\"\nrelay_to = \"127.0.0.1:9\"\n\
         [admin]\nlisten = \"127.0.0.1:8025\"\ntokens_file = \"/dev/null\"\n\
         [relay]\nqueue_lifetime_hours = 120\n",
        dir.display()
    );
    let config = Config::parse(&text, "t.toml").unwrap();
    let store = Store::open(dir).unwrap();
    let relay = Relay::new(Arc::new(config), store.clone(), Arc::new(Stats::default()));
    (relay, store)
}

/// An inbound entry created at `created_ms` whose last attempt just failed with a 4xx.
fn deferred(relay: &Relay, created_ms: u64) -> (QueueEntry, QueueEntry) {
    let mut e = relay.entry(
        "01TESTLIFETIME",
        "sender@example.org",
        &["user@example.com".to_string()],
        "stuck",
        10,
        Origin::Inbound,
    );
    e.created_ms = created_ms;
    e.attempts = 40;
    let before = e.clone();
    e.last_error = Some("421 4.4.0 downstream unreachable".into());
    (before, e)
}

fn queued(store: &Store) -> Vec<QueueEntry> {
    let mut out = Vec::new();
    store
        .scan(Cf::Queue, b"", |_, v| {
            out.push(QueueEntry::decode(v).unwrap());
            true
        })
        .unwrap();
    out
}

const T0: u64 = 1_700_000_000_000;
const STUCK_BODY: &[u8] = b"Subject: stuck\r\n\r\nx\r\n";

/// A relay whose store holds one message deferred since `t0`, and that attempt's result.
async fn stored_deferred(t0: u64) -> (tempfile::TempDir, Relay, Store, QueueEntry, QueueEntry) {
    let dir = tempfile::tempdir().unwrap();
    let (relay, store) = relay_in(dir.path());
    let (before, e) = deferred(&relay, t0);
    let mut b = Batch::new();
    Relay::stage(&mut b, &before, Some(STUCK_BODY));
    store.commit(b).await.unwrap();
    (dir, relay, store, before, e)
}

#[tokio::test]
async fn before_the_queue_lifetime_a_deferred_message_stays_queued() {
    let (_dir, relay, store, before, e) = stored_deferred(T0).await;
    let (t0, body) = (T0, STUCK_BODY);
    let now = t0 + 120 * HOUR_MS - 1;
    relay.conclude(before, e, body, now).await.unwrap();
    let q = queued(&store);
    assert_eq!(q.len(), 1, "still queued, no DSN: {q:?}");
    assert_eq!(q[0].attempts, 41);
    assert!(q[0].next_attempt_ms > now, "retried later");
    assert_eq!(q[0].recipients[0].state, RcptState::Pending);
}

#[tokio::test]
async fn at_the_queue_lifetime_the_message_bounces_with_a_dsn() {
    let (_dir, relay, store, before, e) = stored_deferred(T0).await;
    let (t0, body) = (T0, STUCK_BODY);
    relay
        .conclude(before, e, body, t0 + 120 * HOUR_MS)
        .await
        .unwrap();
    let q = queued(&store);
    assert_eq!(q.len(), 1, "the original is gone, one DSN queued: {q:?}");
    let dsn = &q[0];
    assert_eq!(dsn.origin, Origin::Bounce);
    assert_eq!(dsn.sender, "", "DSNs use the null sender");
    assert_eq!(dsn.recipients[0].addr, "sender@example.org");
    assert!(
        store
            .get(Cf::Messages, b"01TESTLIFETIME")
            .unwrap()
            .is_none(),
        "the original's bytes are gone"
    );
    let text =
        String::from_utf8(store.get(Cf::Messages, dsn.id.as_bytes()).unwrap().unwrap()).unwrap();
    assert!(
        text.contains("queue lifetime of 120 hours exceeded"),
        "{text}"
    );
    assert!(text.contains("421 4.4.0 downstream unreachable"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; user@example.com"),
        "{text}"
    );
}
