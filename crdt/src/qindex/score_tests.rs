//! The score and symbols an entry carries: bounds, records of older versions, and copies
//! relayed by nodes that predate them.

use super::tests::{entry, sync};
use super::*;

fn scored(node: &str, id: &str) -> IndexEntry {
    IndexEntry {
        score: Some(12.5),
        symbols: vec![
            SymbolWeight {
                name: "HTML_LINK_TEXT_MISMATCH".into(),
                weight: 2.5,
            },
            SymbolWeight {
                name: "SPF_PASS".into(),
                weight: -0.2,
            },
        ]
        .into(),
        ..entry(node, id, 10)
    }
}

#[test]
fn score_and_symbols_replicate() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", scored("n1", "a")).expect("add");
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);
    let got = n2.get("a").expect("replicated");
    assert_eq!(got.score, Some(12.5));
    assert_eq!(got.symbols, scored("n1", "a").symbols);
    let wire = serde_json::to_string(&n1).unwrap();
    assert!(
        wire.contains(r#""symbols":[{"name":"HTML_LINK_TEXT_MISMATCH","weight":2.5}"#),
        "{wire}"
    );
}

#[test]
fn a_delta_written_before_scores_still_reads() {
    // An owner's log as a node of the version before scores wrote it.
    let old = r#"{"v":1,"owners":[{"node":"n1","from":0,"to":1,"floor":0,"entries":[
        {"id":"a","node":"n1","received_ms":5,"sender":"s@example.org","recipients":["u@example.com"],
         "subject":"x","size":3,"reason":"spam score 12.5 reached the quarantine threshold 10",
         "rule_id":null,"status":"quarantined","status_ms":5,"seq":1}],
        "intents":[],"dones":[],"purged":[]}]}"#;
    let delta: IndexDelta = serde_json::from_str(old).expect("an old delta parses");
    let mut index = QuarantineIndex::new();
    index.apply(delta).expect("and applies");
    let e = index.get("a").expect("entry");
    assert_eq!((e.score, e.symbols.len()), (None, 0));
    let again = serde_json::to_string(&index).unwrap();
    assert!(
        !again.contains(r#""score""#) && !again.contains(r#""symbols""#),
        "no score is invented: {again}"
    );
}

#[test]
fn a_copy_relayed_by_an_older_node_agrees_with_the_scored_one() {
    let mut owner = QuarantineIndex::new();
    owner.upsert_own("n1", scored("n1", "a")).expect("add");
    let mut newer = QuarantineIndex::new();
    sync(&owner, &mut newer, 100);
    // An older node drops the fields it does not know; its delta carries the same seq.
    let mut lossy = owner.delta_since(&BTreeMap::new(), 100);
    for e in &mut lossy.owners[0].entries {
        e.score = None;
        e.symbols = Symbols::default();
    }
    newer.apply(lossy).expect("no seq conflict");
    assert_eq!(
        newer.get("a").unwrap().score,
        Some(12.5),
        "the full copy stays"
    );
    // A different score under the same seq is a node that reused a seq.
    let mut forged = owner.delta_since(&BTreeMap::new(), 100);
    forged.owners[0].entries[0].score = Some(1.0);
    let err = newer.apply(forged).expect_err("conflict");
    assert!(
        matches!(
            err,
            IndexError::Invalid {
                problem: Problem::SeqConflict(1),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn symbols_are_bounded_and_scores_finite() {
    let mut index = QuarantineIndex::new();
    let mut list: Vec<SymbolWeight> = (0..ENTRY_SYMBOLS_MAX + 5)
        .map(|n| SymbolWeight {
            name: format!("SYMBOL_{n}"),
            weight: 1.0,
        })
        .collect();
    let mut many = scored("n1", "a");
    many.symbols = list.clone().into();
    let err = index.upsert_own("n1", many.clone()).expect_err("too many");
    assert_eq!(err.to_string(), "entry.symbols: more than 32 items");
    list[0].name = "N".repeat(SYMBOL_NAME_BYTES_MAX + 1);
    list[1].weight = f64::NAN;
    many.symbols = list.into();
    many.score = Some(f64::INFINITY);
    let mut fitted = many.clone();
    fitted.fit_to_bounds();
    assert_eq!(fitted.symbols.len(), ENTRY_SYMBOLS_MAX);
    assert_eq!(fitted.score, None);
    assert!(fitted.symbols.iter().all(|s| s.weight.is_finite()));
    assert_eq!(
        fitted.symbols.iter().next().unwrap().name.len(),
        SYMBOL_NAME_BYTES_MAX
    );
    index.upsert_own("n1", fitted).expect("fits");

    let mut bad = scored("n1", "b");
    bad.score = Some(f64::NAN);
    let err = index.upsert_own("n1", bad).expect_err("NaN");
    assert_eq!(err.to_string(), "entry.score: must be a finite number");
    let mut bad = scored("n1", "c");
    let mut list = bad.symbols.to_vec();
    list[1].name = String::new();
    bad.symbols = list.into();
    let err = index.upsert_own("n1", bad).expect_err("empty name");
    assert_eq!(err.to_string(), "entry.symbols[1].name: must not be empty");
}

#[test]
fn symbols_keep_their_order_names_and_exact_weights() {
    let list = vec![
        SymbolWeight {
            name: "BAYES_99".into(),
            weight: 4.5,
        },
        SymbolWeight {
            name: "ODD\tNAME".into(),
            weight: 0.1 + 0.2,
        },
        SymbolWeight {
            name: "SPF_PASS".into(),
            weight: -0.2,
        },
    ];
    let symbols = Symbols::new(&list);
    assert_eq!(symbols.len(), 3);
    let back = symbols.to_vec();
    assert_eq!(back[0], list[0]);
    assert_eq!(
        back[1].name, "ODD\u{fffd}NAME",
        "control characters never enter"
    );
    assert_eq!(back[1].weight, 0.1 + 0.2, "weights round-trip exactly");
    assert_eq!(back[2], list[2]);
    let json = serde_json::to_string(&symbols).unwrap();
    assert_eq!(serde_json::from_str::<Symbols>(&json).unwrap(), symbols);
    assert!(
        json.starts_with(r#"[{"name":"BAYES_99","weight":4.5}"#),
        "{json}"
    );
    assert_eq!(
        (Symbols::default().len(), Symbols::default().iter().count()),
        (0, 0)
    );
}
