//! After the heal: waiting for convergence, and the end-of-run checks of the mail (each
//! message decided once, nothing lost) and of the rule book against the ledger.

use super::*;

/// Waits until every running node has the same rule digest, index version vector and Bayes
/// corpus fingerprint.
pub(crate) async fn converge(world: &World, settle: Duration) -> Option<()> {
    let deadline = Instant::now() + settle;
    while Instant::now() < deadline {
        if divergence(world).is_empty() {
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Empty when all running nodes agree; otherwise what differs, and which nodes hold each
/// version.
pub(super) fn divergence(world: &World) -> String {
    let mut digests: Groups = BTreeMap::new();
    let mut vectors: Groups = BTreeMap::new();
    let mut corpora: Groups = BTreeMap::new();
    for i in world.up() {
        if let Some(s) = world.handle(i) {
            let id = world.nodes[i].id.clone();
            corpora
                .entry(s.bayes.fingerprint())
                .or_default()
                .push(id.clone());
            let rules = format!("{} rules", s.rules.list().len());
            digests
                .entry(rules + " " + &s.rules.digest())
                .or_default()
                .push(id.clone());
            vectors
                .entry(format!("{:?}", s.quarantine.index().version_vector()))
                .or_default()
                .push(id);
        }
    }
    let mut out = String::new();
    for (groups, what) in [
        (&digests, "rule books"),
        (&vectors, "index version vectors"),
        (&corpora, "Bayes corpora"),
    ] {
        if groups.len() > 1 {
            out.push_str(&format!(
                "{} different {what} ({}); ",
                groups.len(),
                holders(groups)
            ));
        }
    }
    out
}

/// Versions of one replicated type, each with the nodes that hold it.
type Groups = BTreeMap<String, Vec<String>>;

/// `mx1 mx2 | mx3`: who holds which version (the versions themselves are long).
fn holders(groups: &Groups) -> String {
    let mut parts: Vec<String> = groups
        .iter()
        .map(|(version, nodes)| {
            let short: String = version.chars().take(24).collect();
            format!("{} hold {short}", nodes.join(" "))
        })
        .collect();
    parts.sort();
    parts.join(" | ")
}

/// Every acked message is delivered or quarantined; every release delivered exactly once.
/// Returns the number of duplicate deliveries (allowed: relay is at least once).
pub(super) async fn check_mail(
    world: &World,
    ledger: &Ledger,
    settle: Duration,
    violations: &mut Vec<String>,
) -> usize {
    // A deferred release (202) and a delete of the same message: the owner serves them in
    // the order they were made, so a final `Deleted` is a correct outcome then.
    let superseded = |t: &String| {
        matches!(ledger.released_via.get(t), Some((_, 202)))
            && ledger.deleted_msgs.contains(t)
            && final_status(world, t).as_deref() == Some("Deleted")
    };
    let want_delivered: Vec<&String> = ledger
        .acked
        .iter()
        .filter(|(t, q)| {
            !ledger.wiped.contains(*t) && (!**q || (ledger.released.contains(*t) && !superseded(t)))
        })
        .map(|(t, _)| t)
        .collect();
    let deadline = Instant::now() + settle;
    let mut counts = delivered(world);
    while Instant::now() < deadline && want_delivered.iter().any(|t| !counts.contains_key(*t)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        counts = delivered(world);
    }
    for t in &want_delivered {
        if !counts.contains_key(*t) {
            let by = ledger.accepted_by.get(*t).map(|n| format!("mx{}", n + 1));
            let how = match (ledger.acked.get(*t), ledger.released_via.get(*t)) {
                (Some(true), Some((node, status))) => {
                    format!(
                        "quarantined, then released through mx{} (HTTP {status})",
                        node + 1
                    )
                }
                _ => "accepted for relay".into(),
            };
            violations.push(format!(
                "acked message {t} ({how}; accepted by {}) was never delivered{}",
                by.unwrap_or_default(),
                index_view(world, t)
            ));
        }
    }
    for t in &ledger.released {
        if counts.get(t).copied().unwrap_or(0) > 1 {
            violations.push(format!(
                "released message {t} delivered {} times",
                counts[t]
            ));
        }
    }
    let held: BTreeSet<String> = world
        .up()
        .first()
        .and_then(|i| world.handle(*i))
        .map(|s| {
            let q = mxmesh_crdt::qindex::IndexQuery {
                limit: mxmesh_crdt::qindex::SEARCH_LIMIT_MAX,
                ..Default::default()
            };
            s.quarantine
                .index()
                .search(&q)
                .0
                .into_iter()
                .filter_map(|e| e.subject.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for (t, q) in &ledger.acked {
        if *q
            && !ledger.wiped.contains(t)
            && !ledger.released.contains(t)
            && !held.contains(t)
            && !counts.contains_key(t)
        {
            violations.push(format!(
                "acked quarantined message {t} is in no node's index"
            ));
        }
    }
    counts.values().filter(|c| **c > 1).count()
}

/// The status of the entry whose subject starts with `token`, in the first running node's
/// index.
fn final_status(world: &World, token: &str) -> Option<String> {
    let s = world.up().first().and_then(|i| world.handle(*i))?;
    let q = mxmesh_crdt::qindex::IndexQuery {
        subject: Some(token.to_string()),
        ..Default::default()
    };
    let (found, _) = s.quarantine.index().search(&q);
    found.first().map(|e| format!("{:?}", e.status))
}

/// How each running node's index sees the entry whose subject starts with `token`.
fn index_view(world: &World, token: &str) -> String {
    let mut out = String::new();
    for i in world.up() {
        let Some(s) = world.handle(i) else { continue };
        let q = mxmesh_crdt::qindex::IndexQuery {
            subject: Some(token.to_string()),
            ..Default::default()
        };
        let (found, _) = s.quarantine.index().search(&q);
        let view = found
            .first()
            .map(|e| format!("{:?}, pending {}", e.status, e.pending.is_some()))
            .unwrap_or_else(|| "absent".into());
        out.push_str(&format!("; {}: {view}", world.nodes[i].id));
    }
    out
}

/// Deliveries at the sink, by token (from the Message-ID).
pub(crate) fn delivered(world: &World) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(&world.sink.dir) else {
        return counts;
    };
    for e in dir.flatten() {
        if e.path().extension().is_some_and(|x| x == "eml")
            && let Ok(text) = std::fs::read_to_string(e.path())
            && let Some(at) = text.find("Message-ID: <sim-")
        {
            let token: String = text[at + 13..].chars().take_while(|c| *c != '@').collect();
            *counts.entry(token).or_insert(0) += 1;
        }
    }
    counts
}

pub(super) fn check_rules(world: &World, ledger: &Ledger, violations: &mut Vec<String>) {
    for i in world.up() {
        let Some(s) = world.handle(i) else { continue };
        for r in s.rules.list() {
            if ledger.deleted_rules.contains(&r.id) {
                violations.push(format!(
                    "{}: deleted rule {} came back",
                    world.nodes[i].id, r.id
                ));
            }
        }
    }
}
