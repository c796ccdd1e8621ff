//! Unit tests of search, counts, serialisation and the million-entry timing print.

use std::time::Instant;

use super::*;

#[test]
fn search_filters_orders_and_pages() {
    let mut index = QuarantineIndex::new();
    for (node, id, ms) in [
        ("n1", "a", 10),
        ("n2", "b", 30),
        ("n1", "c", 20),
        ("n3", "d", 30),
    ] {
        index.upsert_own(node, entry(node, id, ms)).expect("add");
    }
    let mut special = entry("n2", "e", 25);
    special.sender = "Bob@ÉXAMPLE.com".into();
    special.subject = "Rechnung Nr. 7".into();
    special.recipients = vec!["Ops@Corp.example".into()];
    index.upsert_own("n2", special).expect("add");
    index
        .set_status_own("n1", "c", EntryStatus::Released, 40)
        .expect("release");
    assert_eq!(all(&index), ["d", "b", "e", "c", "a"]);

    let q = |f: &dyn Fn(&mut IndexQuery)| {
        let mut query = IndexQuery::default();
        f(&mut query);
        ids(&index.search(&query).0)
    };
    assert_eq!(q(&|q| q.sender = Some("bob@éxample".into())), ["e"]);
    assert_eq!(q(&|q| q.rcpt = Some("OPS@corp".into())), ["e"]);
    assert_eq!(
        q(&|q| q.rcpt = Some("postmaster".into())),
        ["d", "b", "c", "a"]
    );
    assert_eq!(q(&|q| q.subject = Some("RECHNUNG".into())), ["e"]);
    assert_eq!(q(&|q| q.node = Some("n1".into())), ["c", "a"]);
    assert_eq!(q(&|q| q.since_ms = Some(25)), ["d", "b", "e"]);
    assert_eq!(q(&|q| q.status = Some(EntryStatus::Released)), ["c"]);
    assert_eq!(
        q(&|q| {
            q.node = Some("n2".into());
            q.subject = Some("of".into());
        }),
        ["b"]
    );

    let mut query = IndexQuery {
        limit: 2,
        ..IndexQuery::default()
    };
    let (page, next) = index.search(&query);
    assert_eq!(ids(&page), ["d", "b"]);
    let next = next.expect("more");
    assert_eq!(next.to_string(), "30:b");
    index
        .upsert_own("n3", entry("n3", "newer", 99))
        .expect("arrives meanwhile");
    index
        .upsert_own("n3", entry("n3", "between", 28))
        .expect("arrives meanwhile");
    query.cursor = Some(next.to_string().parse().expect("cursor"));
    let (page, next) = index.search(&query);
    assert_eq!(ids(&page), ["between", "e"]);
    query.cursor = next;
    let (page, next) = index.search(&query);
    assert_eq!(
        (ids(&page), next),
        (vec!["c".to_string(), "a".to_string()], None)
    );
    query.since_ms = Some(50);
    query.cursor = Some(Cursor {
        received_ms: 20,
        id: "c".into(),
    });
    assert_eq!(index.search(&query), (Vec::new(), None));
    assert_eq!(
        index
            .search(&IndexQuery {
                limit: 1,
                ..IndexQuery::default()
            })
            .0
            .len(),
        1
    );
}

#[test]
fn one_id_claimed_by_two_owners_is_listed_once_per_owner() {
    let mut index = QuarantineIndex::new();
    index.upsert_own("n1", entry("n1", "x", 10)).expect("add");
    index.upsert_own("n2", entry("n2", "x", 10)).expect("add");
    index.upsert_own("n2", entry("n2", "y", 5)).expect("add");
    let (page, next) = index.search(&IndexQuery {
        limit: 1,
        ..IndexQuery::default()
    });
    assert_eq!(
        page.iter().map(|e| e.node.as_str()).collect::<Vec<_>>(),
        ["n2", "n1"]
    );
    let query = IndexQuery {
        limit: 1,
        cursor: next,
        ..IndexQuery::default()
    };
    assert_eq!(ids(&index.search(&query).0), ["y"]);
}

#[test]
fn counts() {
    let mut index = QuarantineIndex::new();
    for k in 0..5 {
        index
            .upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
    }
    index.upsert_own("n2", entry("n2", "b", 1)).expect("add");
    index
        .set_status_own("n1", "a1", EntryStatus::Deleted, 9)
        .expect("delete");
    assert_eq!((index.live_entries("n1"), index.live_entries("n2")), (4, 1));
    assert_eq!((index.live_entries("n9"), index.total_entries()), (0, 6));
    assert_eq!(index.owners().collect::<Vec<_>>(), ["n1", "n2"]);
}

#[test]
fn serialises_with_a_schema_version_and_round_trips() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    n1.upsert_own("n1", entry("n1", "b", 11)).expect("add");
    n1.set_status_own("n1", "a", EntryStatus::Released, 12)
        .expect("release");
    n1.purge_expired_own("n1", 100).expect("purge");
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);
    n2.request("n2", "b", pending("n2", "r1", IntentAction::Delete))
        .expect("ask");
    let partial = n1.delta_since(&BTreeMap::new(), 1);
    n2.apply(partial).expect("nothing new");

    let json = serde_json::to_value(&n2).expect("serialise");
    assert_eq!(json["v"], 1);
    let back: QuarantineIndex = serde_json::from_value(json.clone()).expect("deserialise");
    assert_eq!(back, n2);
    assert_eq!(
        back.get("b")
            .and_then(|e| e.pending.as_ref())
            .map(|p| p.action),
        Some(IntentAction::Delete)
    );

    let delta = n2.delta_since(&BTreeMap::new(), 100);
    let text = serde_json::to_string(&delta).expect("serialise delta");
    assert!(text.starts_with("{\"v\":1,"));
    let parsed: IndexDelta = serde_json::from_str(&text).expect("parse delta");
    assert_eq!(parsed, delta);

    let mut wrong = json;
    wrong["v"] = 7.into();
    let err = serde_json::from_value::<QuarantineIndex>(wrong).expect_err("version");
    assert!(
        err.to_string().contains("unsupported schema version 7"),
        "{err}"
    );
    let err = serde_json::from_str::<IndexDelta>(r#"{"v":1,"owners":[{"node":"n1"}]}"#);
    assert!(err.is_err(), "from and to are required");
}

#[test]
fn merge_is_apply_of_everything() {
    let mut n1 = QuarantineIndex::new();
    let mut n2 = QuarantineIndex::new();
    for k in 0..30 {
        n1.upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
        n2.upsert_own("n2", entry("n2", &format!("b{k}"), k))
            .expect("add");
    }
    let mut left = n1.clone();
    left.merge(&n2).expect("merge");
    let mut right = n2.clone();
    right.merge(&n1).expect("merge");
    assert_eq!(left, right);
    assert_eq!(left.total_entries(), 60);
}

/// Builds 1,000,000 entries across 3 owners, each with a score and ten symbols as a
/// quarantined message typically has, and prints the time of 100 searches and the resident
/// memory per entry. Prints only: timings depend on the machine and the profile.
#[test]
fn million_entries_search_timing() {
    const ENTRIES: u64 = 1_000_000;
    let rss_before = resident_bytes();
    let build = Instant::now();
    let mut index = QuarantineIndex::new();
    let owners = ["n1", "n2", "n3"];
    for k in 0..ENTRIES {
        let node = owners[(k % 3) as usize];
        let e = IndexEntry {
            id: format!("01J{k:023}"),
            node: node.to_string(),
            received_ms: 1_700_000_000_000 + k * 7,
            sender: format!("user{}@sender{}.example", k % 5000, k % 97),
            recipients: vec![format!("rcpt{}@corp.example", k % 300)],
            subject: format!("Invoice {k} for your account (spam?)"),
            size: 10_000 + k % 5000,
            reason: "rule matched".to_string(),
            rule_id: Some("01HRULE0000000000000000000".to_string()),
            score: Some(12.5),
            symbols: typical_symbols().into(),
            status: EntryStatus::Quarantined,
            status_ms: 1_700_000_000_000 + k * 7,
            pending: None,
            seq: 0,
            copies: Vec::new(),
            adopted_from: None,
            recipients_released: Vec::new(),
            recipients_deleted: Vec::new(),
        };
        index.upsert_own(node, e).expect("add");
    }
    let built = build.elapsed();
    let rss_after = resident_bytes();
    assert_eq!(index.total_entries(), ENTRIES as usize);

    let queries: Vec<IndexQuery> = (0..100u64)
        .map(|n| match n % 5 {
            0 => IndexQuery::default(),
            1 => IndexQuery {
                sender: Some(format!("USER{}@", n * 37)),
                ..IndexQuery::default()
            },
            2 => IndexQuery {
                node: Some("n2".into()),
                subject: Some("invoice 9".into()),
                ..IndexQuery::default()
            },
            3 => IndexQuery {
                cursor: Some(Cursor {
                    received_ms: 1_700_000_000_000 + n * 60_000,
                    id: "01J".into(),
                }),
                rcpt: Some("rcpt7@".into()),
                ..IndexQuery::default()
            },
            _ => IndexQuery {
                subject: Some("no such subject".into()),
                ..IndexQuery::default()
            },
        })
        .collect();
    let mut by_kind = [std::time::Duration::ZERO; 5];
    let mut found = 0;
    let timer = Instant::now();
    for (n, query) in queries.iter().enumerate() {
        let one = Instant::now();
        found += index.search(query).0.len();
        by_kind[n % 5] += one.elapsed();
    }
    let searched = timer.elapsed();
    println!(
        "1M entries: built in {built:?}; 100 searches in {searched:?} ({:?} each, {found} items)",
        searched / 100
    );
    let kinds = [
        "no filter",
        "rare sender",
        "node+subject",
        "cursor+rcpt",
        "no match",
    ];
    for (kind, total) in kinds.iter().zip(by_kind) {
        println!("  {kind}: {:?} per search", total / 20);
    }
    println!(
        "size_of IndexEntry {} bytes",
        std::mem::size_of::<IndexEntry>()
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "resident memory: {} bytes per entry",
            after.saturating_sub(before) / ENTRIES
        );
    }
}

/// The symbols a typical quarantined message carries (ten, the names of the node's table).
fn typical_symbols() -> Vec<SymbolWeight> {
    let names = [
        "FROM_NAME_SPOOFS_ADDRESS",
        "HTML_LINK_TEXT_MISMATCH",
        "SUBJECT_ALL_CAPS",
        "URL_IP_ADDRESS",
        "BODY_SPAM_PHRASES",
        "MIME_HTML_ONLY",
        "MISSING_MESSAGE_ID",
        "MISSING_DATE",
        "RECEIVED_MISSING",
        "SPF_PASS",
    ];
    let weight = |n: usize| 2.5 - n as f64 * 0.25;
    let symbol = |(n, name): (usize, &str)| SymbolWeight {
        name: name.to_string(),
        weight: weight(n),
    };
    names.into_iter().enumerate().map(symbol).collect()
}

/// Resident set size from /proc (Linux), for the timing test's memory estimate.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
