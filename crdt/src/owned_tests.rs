use std::collections::BTreeMap;

use super::*;

const DAY: u64 = 86_400_000;

fn map() -> OwnedMap<u32> {
    OwnedMap::new(100)
}

/// Syncs `b` into `a` the way the mesh does: requests until nothing changes.
fn pull(a: &mut OwnedMap<u32>, b: &OwnedMap<u32>, items_max: usize, now: u64) {
    for _ in 0..1000 {
        let delta = b.delta_since(&a.version_vector(), items_max, now);
        if !a.apply(delta, now).expect("delta applies") {
            return;
        }
    }
    panic!("sync did not settle");
}

fn snapshot(m: &OwnedMap<u32>, now: u64) -> BTreeMap<(String, String), (u64, u32)> {
    let mut out = BTreeMap::new();
    let owners: Vec<String> = m.version_vector().into_keys().collect();
    for owner in owners {
        for key in ["k1", "k2", "k3", "k4"] {
            if let Some(i) = m.get(&owner, key, now) {
                out.insert((owner.clone(), key.to_string()), (i.stamp, i.value));
            }
        }
    }
    out
}

#[test]
fn own_writes_get_increasing_stamps() {
    let mut m = map();
    let a = m.put_own("n1", "k1", 1, DAY, 5).unwrap();
    let b = m.put_own("n1", "k1", 2, DAY, 5).unwrap();
    assert!(b.stamp > a.stamp);
    assert_eq!(m.get("n1", "k1", 5).unwrap().value, 2);
    assert_eq!(m.len_of("n1"), 1);
}

#[test]
fn merge_is_idempotent_and_commutative() {
    let now = 10;
    let mut a = map();
    let mut b = map();
    a.put_own("n1", "k1", 1, DAY, now).unwrap();
    a.put_own("n1", "k2", 2, DAY, now).unwrap();
    b.put_own("n2", "k1", 7, DAY, now).unwrap();
    b.put_own("n2", "k3", 8, DAY, now).unwrap();

    let mut ab = a.clone();
    ab.merge(&b, now).unwrap();
    let mut ba = b.clone();
    ba.merge(&a, now).unwrap();
    assert_eq!(snapshot(&ab, now), snapshot(&ba, now));
    assert_eq!(ab.version_vector(), ba.version_vector());

    let before = snapshot(&ab, now);
    assert!(
        !ab.merge(&b, now).unwrap(),
        "a second merge changes nothing"
    );
    assert!(!ab.merge(&a, now).unwrap());
    assert_eq!(snapshot(&ab, now), before);
}

#[test]
fn newer_version_wins_in_any_order() {
    let now = 10;
    let mut owner = map();
    owner.put_own("n1", "k1", 1, DAY, now).unwrap();
    let old = owner.clone();
    owner.put_own("n1", "k1", 2, DAY, now).unwrap();

    let mut x = map();
    x.merge(&owner, now).unwrap();
    x.merge(&old, now).unwrap();
    let mut y = map();
    y.merge(&old, now).unwrap();
    y.merge(&owner, now).unwrap();
    assert_eq!(x.get("n1", "k1", now).unwrap().value, 2);
    assert_eq!(snapshot(&x, now), snapshot(&y, now));
}

#[test]
fn partial_deltas_converge() {
    let now = 10;
    let mut src = map();
    for (i, key) in ["k1", "k2", "k3", "k4"].iter().enumerate() {
        src.put_own("n1", key, i as u32, DAY, now).unwrap();
    }
    src.put_own("n2", "k1", 9, DAY, now).unwrap();
    let mut dst = map();
    pull(&mut dst, &src, 1, now);
    assert_eq!(snapshot(&dst, now), snapshot(&src, now));
    assert_eq!(dst.version_vector(), src.version_vector());
}

#[test]
fn relayed_entries_reach_third_replicas() {
    let now = 10;
    let mut a = map();
    a.put_own("n1", "k1", 1, DAY, now).unwrap();
    let mut b = map();
    pull(&mut b, &a, 10, now);
    let mut c = map();
    pull(&mut c, &b, 10, now);
    assert_eq!(c.get("n1", "k1", now).unwrap().value, 1);
}

#[test]
fn bounded_per_owner_keeps_the_newest() {
    let mut m: OwnedMap<u32> = OwnedMap::new(3);
    for i in 0..10u32 {
        m.put_own("n1", &format!("k{i}"), i, DAY, 10).unwrap();
    }
    assert_eq!(m.len_of("n1"), 3);
    assert!(m.get("n1", "k9", 10).is_some());
    assert!(m.get("n1", "k0", 10).is_none());

    let mut other: OwnedMap<u32> = OwnedMap::new(3);
    let mut big: OwnedMap<u32> = OwnedMap::new(100);
    for i in 0..10u32 {
        big.put_own("n2", &format!("k{i}"), i, DAY, 10).unwrap();
    }
    other.merge(&big, 10).unwrap();
    assert_eq!(other.len_of("n2"), 3, "a replica keeps its bound too");
    assert!(other.get("n2", "k9", 10).is_some());
}

#[test]
fn expired_items_vanish_and_are_not_sent() {
    let mut m = map();
    m.put_own("n1", "k1", 1, 100, 10).unwrap();
    m.put_own("n1", "k2", 2, DAY, 10).unwrap();
    assert!(m.get("n1", "k1", 50).is_some());
    assert!(m.get("n1", "k1", 100).is_none());
    assert_eq!(m.values("k1", 100).count(), 0);

    let delta = m.delta_since(&BTreeMap::new(), 10, 200);
    let keys: Vec<&str> = delta.owners[0]
        .items
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["k2"]);

    let mut late = map();
    let old = m.delta_since(&BTreeMap::new(), 10, 0);
    late.apply(old, 200).unwrap();
    assert!(late.get("n1", "k1", 200).is_none(), "expired on arrival");
    assert_eq!(m.expire(200), 1);
    assert_eq!(m.len(), 1);
    assert_eq!(m.expire(DAY), 1);
    assert!(m.version_vector().is_empty(), "an emptied log is dropped");
    let again = m.put_own("n1", "k3", 3, 2 * DAY, DAY).unwrap();
    assert!(
        again.stamp >= DAY * STAMPS_PER_MS,
        "later stamps stay above earlier ones"
    );
}

#[test]
fn malformed_deltas_change_nothing() {
    let mut m = map();
    m.put_own("n1", "k1", 1, DAY, 10).unwrap();
    let before = m.clone();
    let bad_range = OwnedDelta {
        v: SCHEMA_VERSION,
        owners: vec![OwnerDelta {
            owner: "n2".into(),
            from: 5,
            to: 6,
            items: vec![(
                "k1".to_string(),
                Item {
                    stamp: 9,
                    expires_ms: DAY,
                    value: 3,
                },
            )],
        }],
    };
    let err = m.apply(bad_range, 10).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    let bad_version = OwnedDelta::<u32> {
        v: 99,
        owners: vec![],
    };
    assert_eq!(m.apply(bad_version, 10), Err(OwnedError::Version(99)));
    let long_key = "x".repeat(KEY_BYTES_MAX + 1);
    assert!(m.put_own("n1", &long_key, 1, DAY, 10).is_err());
    assert_eq!(m, before);
}

#[test]
fn owners_are_bounded() {
    let mut m = map();
    for i in 0..OWNERS_MAX {
        m.put_own(&format!("n{i}"), "k1", 1, DAY, 10).unwrap();
    }
    assert!(m.put_own("one-too-many", "k1", 1, DAY, 10).is_err());
}
