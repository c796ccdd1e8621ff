use std::net::IpAddr;

use super::*;
use crate::store::StoreKind;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node(id: &str, dir: &std::path::Path, clock: &Clock) -> Greylist {
    let store = Store::open_kind(&dir.join(id), &StoreKind::Disk).unwrap();
    Greylist::load(id.to_string(), store, clock.clone()).unwrap()
}

fn quick() -> GreylistSettings {
    GreylistSettings {
        delay_secs: 60,
        skip_spf_pass: false,
        ..GreylistSettings::default()
    }
}

#[test]
fn networks_group_clients() {
    assert_eq!(client_network(ip("192.0.2.77")), "192.0.2.0/24");
    assert_eq!(client_network(ip("::ffff:192.0.2.77")), "192.0.2.0/24");
    assert_eq!(client_network(ip("2001:db8:1:2:3::9")), "2001:db8:1:2::/64");
    let a = triplet_key(ip("192.0.2.1"), "A@x.org", "b@example.com");
    let b = triplet_key(ip("192.0.2.200"), "a@X.org", "B@example.com");
    let c = triplet_key(ip("192.0.3.1"), "a@x.org", "b@example.com");
    assert_eq!(a, b, "same /24, case-insensitive");
    assert_ne!(a, c);
}

#[test]
fn settings_validate_and_allow() {
    let mut s = GreylistSettings::default();
    assert!(s.validate().is_ok());
    s.remember_days = 0;
    assert_eq!(s.validate().unwrap_err().key, "remember_days");
    let s = GreylistSettings {
        allow_senders: vec![
            "@good.org".into(),
            "boss@corp.net".into(),
            "partner.io".into(),
        ],
        ..GreylistSettings::default()
    };
    assert!(s.allows("any@GOOD.org"));
    assert!(s.allows("boss@corp.net"));
    assert!(!s.allows("other@corp.net"));
    assert!(s.allows("x@partner.io"));
    assert!(!s.allows("x@sub.partner.io"));
}

#[test]
fn step_reads_every_node() {
    let mut map = OwnedMap::new(10);
    assert_eq!(step(&map, "t:1", 1000, 5000), Step::New);
    let seen = Sighting {
        first_ms: 5000,
        passed_ms: 0,
        passes: 0,
    };
    map.put_own("n1", "t:1", seen, 100_000, 5000).unwrap();
    assert_eq!(step(&map, "t:1", 1000, 5500), Step::TooEarly(1));
    let later = Sighting {
        first_ms: 5400,
        ..seen
    };
    map.put_own("n2", "t:1", later, 100_000, 5400).unwrap();
    assert_eq!(
        step(&map, "t:1", 1000, 6000),
        Step::DelayOver { first_ms: 5000 },
        "the earliest sighting of any node counts"
    );
    let passed = Sighting {
        passed_ms: 6000,
        passes: 1,
        ..seen
    };
    map.put_own("n2", "t:1", passed, 100_000, 6000).unwrap();
    assert_eq!(
        step(&map, "t:1", 1000, 6001),
        Step::Known { first_ms: 5000 }
    );
    assert_eq!(step(&map, "t:1", 1000, 100_000), Step::New, "expired");
}

#[tokio::test]
async fn deferred_on_one_node_passes_on_another_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock1 = Clock::system();
    let clock2 = clock1.with_own_skew(0);
    let one = node("n1", dir.path(), &clock1);
    let two = node("n2", dir.path(), &clock2);
    let s = quick();
    let (client, from, to) = (ip("198.51.100.7"), "s@outside.org", "r@example.com");
    let v = one
        .check(&s, client, from, to, async { false })
        .await
        .unwrap();
    assert_eq!(v, Verdict::Defer(60));
    let v = one
        .check(&s, client, from, to, async { false })
        .await
        .unwrap();
    assert!(matches!(v, Verdict::Defer(left) if left <= 60));

    // Node 2 learns node 1's sighting (what the mesh's sync does), then the delay passes.
    let now = clock2.now_ms();
    write(&two.map).merge(&read(&one.map), now).expect("merge");
    clock2.set_skew(61_000);
    let v = two
        .check(&s, client, from, to, async { false })
        .await
        .unwrap();
    assert_eq!(v, Verdict::Retried);
    assert_eq!(two.passes_of(from, clock2.now_ms()), 1);

    // Node 2 restarts: its pass is remembered from its own store.
    drop(two);
    let two = node_reopen("n2", dir.path(), &clock2);
    let key = triplet_key(client, from, to);
    assert!(two.would_pass(&s, &key));
    let v = two
        .check(&s, client, from, to, async { false })
        .await
        .unwrap();
    assert_eq!(v, Verdict::Known);
}

fn node_reopen(id: &str, dir: &std::path::Path, clock: &Clock) -> Greylist {
    // The store of the dropped handle closes with its last clone.
    for _ in 0..100 {
        if let Ok(store) = Store::open_kind(&dir.join(id), &StoreKind::Disk) {
            return Greylist::load(id.to_string(), store, clock.clone()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("store {id} did not reopen");
}

#[tokio::test]
async fn skips_allow_list_spf_and_frequent_senders() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let g = node("n1", dir.path(), &clock);
    let client = ip("203.0.113.9");
    let s = GreylistSettings {
        allow_senders: vec!["@trusted.org".into()],
        auto_allow_after: 2,
        ..quick()
    };
    let v = g.check(&s, client, "a@trusted.org", "r@example.com", async {
        false
    });
    assert_eq!(v.await.unwrap(), Verdict::Skipped("allow-listed sender"));
    let spf = GreylistSettings {
        skip_spf_pass: true,
        ..s.clone()
    };
    let v = g.check(&spf, client, "a@spf.org", "r@example.com", async { true });
    assert_eq!(v.await.unwrap(), Verdict::Skipped("SPF pass"));

    // Two triplets of one sender pass after the delay; the third is not greylisted.
    for rcpt in ["r1@example.com", "r2@example.com"] {
        clock.set_skew(0);
        let v = g.check(&s, client, "f@often.org", rcpt, async { false });
        assert!(matches!(v.await.unwrap(), Verdict::Defer(_)));
        clock.set_skew(61_000);
        let v = g.check(&s, client, "f@often.org", rcpt, async { false });
        assert_eq!(v.await.unwrap(), Verdict::Retried);
    }
    let v = g.check(&s, client, "f@often.org", "r3@example.com", async { false });
    assert_eq!(
        v.await.unwrap(),
        Verdict::Skipped("sender passed greylisting before")
    );
}

#[tokio::test]
async fn purge_drops_expired_rows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let g = node("n1", dir.path(), &clock);
    let s = quick();
    let v = g.check(&s, ip("192.0.2.1"), "a@b.org", "r@example.com", async {
        false
    });
    assert!(matches!(v.await.unwrap(), Verdict::Defer(_)));
    assert_eq!(g.own_entries(), 1);
    assert_eq!(g.purge().await.unwrap(), 0);
    clock.set_skew(60_000 + 49 * 3_600_000);
    assert_eq!(g.purge().await.unwrap(), 1);
    assert_eq!(g.own_entries(), 0);
}
