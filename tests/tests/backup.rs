//! Backup and restore of a node (`mxmesh backup`, `mxmesh restore`) and the rule book as a
//! file (`mxctl rules export|import`), with real nodes, real SMTP clients and a real sink.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mxmesh_tests::{
    Cluster, Node, NodeOpts, Sink, SinkMode, bin, edit_config, message, mxctl_at, send_python,
    wait_for,
};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);
/// Messages quarantined before the single-node backup.
const HELD: usize = 5;
/// Messages sent (and relayed) while the backup is taken.
const FLOWING: usize = 20;

/// Runs `mxmesh ARGS`; returns (success, stdout + stderr).
fn mxmesh(args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("mxmesh")).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hold_rule() -> Value {
    json!({"name": "hold", "priority": 1, "action": "quarantine", "reason": "held",
           "when": {"field": "subject", "op": "contains", "value": "hold-me"}})
}

/// (id, status) of every entry whose subject contains `subject`, as `node` lists them.
fn listed(node: &Node, subject: &str) -> Vec<(String, String)> {
    let (_, l) = node.api(
        "GET",
        &format!("/api/v1/quarantine?subject={subject}&limit=1000"),
        None,
    );
    let mut items: Vec<(String, String)> = l["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    let s = |k: &str| i[k].as_str().unwrap_or_default().to_string();
                    (s("id"), s("status"))
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

fn status_of(node: &Node, id: &str) -> Value {
    node.api("GET", &format!("/api/v1/quarantine/{id}"), None).1["status"].clone()
}

fn rule_ids(node: &Node) -> Vec<String> {
    let (_, r) = node.api("GET", "/api/v1/rules", None);
    let mut ids: Vec<String> = r["rules"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn send(node: &Node, subject: &str) {
    let m = message(subject, "body\r\n");
    let r = send_python(node.smtp, "a@example.org", &["user@example.com"], &m, false);
    assert_eq!(r["ok"], true, "{subject}: {r}");
}

/// Moves a stopped node's data directory aside (restore never deletes one).
fn move_data_aside(node: &Node) {
    std::fs::rename(node.dir.join("data"), node.dir.join("data.old")).unwrap();
}

#[test]
fn online_backup_while_mail_flows_restores_the_same_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let (s, _) = node.api("POST", "/api/v1/rules", Some(&hold_rule()));
    assert_eq!(s, 201);
    for i in 0..HELD {
        send(&node, &format!("hold-me {i}"));
    }
    let before = listed(&node, "hold-me");
    assert_eq!(before.len(), HELD, "{before:?}");

    // Mail keeps flowing (relayed, not held) while the running node writes the backup.
    let backup = dir.path().join("backup");
    let config = node.config.clone();
    let smtp = node.smtp;
    let flowing = std::thread::spawn(move || {
        for i in 0..FLOWING {
            let m = message(&format!("pass {i}"), "body\r\n");
            let r = send_python(smtp, "a@example.org", &["user@example.com"], &m, false);
            assert_eq!(r["ok"], true, "{r}");
        }
    });
    let (ok, out) = mxmesh(&["backup", "--config", path(&config), "--out", path(&backup)]);
    assert!(ok, "{out}");
    assert!(out.contains("online, by the running node"), "{out}");
    assert!(out.contains("files") && out.contains("bytes"), "{out}");
    flowing.join().unwrap();
    sink.wait_count(FLOWING, CONVERGE);

    let (ok, out) = mxmesh(&["backup", "--config", path(&config), "--out", path(&backup)]);
    assert!(
        !ok && out.contains("not empty"),
        "an existing backup is never overwritten: {out}"
    );

    // Stopped: a backup opens the store itself; a restore refuses the data dir in use.
    node.terminate();
    let offline = dir.path().join("offline");
    let (ok, out) = mxmesh(&["backup", "--config", path(&config), "--out", path(&offline)]);
    assert!(ok && out.contains("offline"), "{out}");
    let (ok, out) = mxmesh(&[
        "restore",
        "--config",
        path(&config),
        "--from",
        path(&backup),
    ]);
    assert!(!ok && out.contains("move the directory aside"), "{out}");
    assert!(
        node.dir.join("data").join("CURRENT").is_file(),
        "nothing deleted"
    );

    // Restored into a new data dir, the node lists the same quarantine and serves its bytes.
    edit_config(&config, |t| {
        t.get_mut("node")
            .and_then(toml::Value::as_table_mut)
            .unwrap()
            .insert("data_dir".into(), "data-restored".into());
    });
    let (ok, out) = mxmesh(&[
        "restore",
        "--config",
        path(&config),
        "--from",
        path(&backup),
    ]);
    assert!(ok, "{out}");
    node.spawn();
    let after = wait_for(CONVERGE, || {
        let l = listed(&node, "hold-me");
        (l == before).then_some(l)
    });
    assert!(
        after.is_some(),
        "restored: {:?}, before: {before:?}",
        listed(&node, "hold-me")
    );
    let (s, raw) = node.api_bytes(&format!("/api/v1/quarantine/{}/raw", before[0].0));
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&raw).contains("hold-me"));
    assert!(
        wait_for(CONVERGE, || node
            .log()
            .contains("restored store settled")
            .then_some(()))
        .is_some(),
        "{}",
        node.log()
    );
}

#[test]
fn a_restored_node_resurrects_no_deleted_rule_and_no_released_message() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let (s, _) = cluster.nodes[1].api("POST", "/api/v1/rules", Some(&hold_rule()));
    assert_eq!(s, 201);
    let doomed = json!({"name": "doomed", "action": "tag",
                        "when": {"field": "subject", "op": "contains", "value": "zzz"}});
    let (s, body) = cluster.nodes[1].api("POST", "/api/v1/rules", Some(&doomed));
    assert_eq!(s, 201);
    let doomed_id = body["id"].as_str().unwrap().to_string();
    for node in &cluster.nodes {
        assert!(wait_for(CONVERGE, || (rule_ids(node).len() == 2).then_some(())).is_some());
    }
    send(&cluster.nodes[1], "hold-me released");
    send(&cluster.nodes[1], "hold-me kept");
    let ids = wait_for(CONVERGE, || {
        let l = listed(&cluster.nodes[0], "hold-me");
        (l.len() == 2 && listed(&cluster.nodes[2], "hold-me").len() == 2).then_some(l)
    })
    .expect("mx1 and mx3 list mx2's quarantine");
    let id_of = |subject: &str| {
        let (_, l) = cluster.nodes[0].api(
            "GET",
            &format!("/api/v1/quarantine?subject={subject}"),
            None,
        );
        l["items"][0]["id"].as_str().unwrap().to_string()
    };
    let released = id_of("hold-me%20released");
    let kept = id_of("hold-me%20kept");
    assert_eq!(ids.len(), 2);

    // Back up mx2, then change what the backup holds: a rule deleted on mx2, a message of
    // mx2 released (asked on mx1), another quarantined on mx2.
    let backup = dir.path().join("mx2-backup");
    let mx2_config = cluster.nodes[1].config.clone();
    let (ok, out) = mxmesh(&[
        "backup",
        "--config",
        path(&mx2_config),
        "--out",
        path(&backup),
    ]);
    assert!(ok && out.contains("online"), "{out}");
    let (s, _) = cluster.nodes[1].api("DELETE", &format!("/api/v1/rules/{doomed_id}"), None);
    assert_eq!(s, 200);
    let (s, body) = cluster.nodes[0].api(
        "POST",
        &format!("/api/v1/quarantine/{released}/release"),
        None,
    );
    assert_eq!(s, 202, "{body}");
    sink.wait_count(1, CONVERGE);
    send(&cluster.nodes[1], "hold-me lost");
    for node in &cluster.nodes {
        let seen = wait_for(CONVERGE, || {
            let l = listed(node, "hold-me");
            let done = rule_ids(node).len() == 1
                && l.len() == 3
                && status_of(node, &released) == "released";
            done.then_some(())
        });
        assert!(
            seen.is_some(),
            "{} before the restore: {:?}",
            node.admin,
            listed(node, "hold-me")
        );
    }
    let lost = id_of("hold-me%20lost");

    // mx2 loses its disk and comes back from the backup.
    cluster.nodes[1].terminate();
    move_data_aside(&cluster.nodes[1]);
    let (ok, out) = mxmesh(&[
        "restore",
        "--config",
        path(&mx2_config),
        "--from",
        path(&backup),
    ]);
    assert!(ok, "{out}");
    cluster.nodes[1].spawn();
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let mx2 = &cluster.nodes[1];
    assert!(
        wait_for(CONVERGE, || mx2
            .log()
            .contains("restored store settled")
            .then_some(()))
        .is_some(),
        "{}",
        mx2.log()
    );
    for node in &cluster.nodes {
        let settled = wait_for(CONVERGE, || {
            let ok = rule_ids(node).len() == 1
                && status_of(node, &released) == "released"
                && status_of(node, &kept) == "quarantined"
                && status_of(node, &lost) == "deleted";
            ok.then_some(())
        });
        assert!(
            settled.is_some(),
            "{} after the restore: rules {:?}, quarantine {:?}",
            node.admin,
            rule_ids(node),
            listed(node, "hold-me")
        );
        assert!(
            !rule_ids(node).contains(&doomed_id),
            "the deleted rule stays deleted"
        );
    }
    for node in &cluster.nodes {
        let (s, body) = node.api(
            "POST",
            &format!("/api/v1/quarantine/{released}/release"),
            None,
        );
        assert_eq!(s, 409, "{} a second release is refused: {body}", node.admin);
    }
    // The kept message still releases, and each release is delivered once.
    let (s, body) =
        cluster.nodes[2].api("POST", &format!("/api/v1/quarantine/{kept}/release"), None);
    assert_eq!(s, 202, "{body}");
    let got = sink.wait_count(2, CONVERGE);
    let subjects: Vec<String> = got
        .iter()
        .map(|(_, raw)| String::from_utf8_lossy(raw).into_owned())
        .collect();
    assert_eq!(
        subjects
            .iter()
            .filter(|m| m.contains("hold-me released"))
            .count(),
        1,
        "the released message reached the downstream exactly once"
    );
    assert_eq!(sink.messages().len(), 2, "nothing else was delivered");
}

#[test]
fn rules_export_then_import_on_another_mesh_gives_the_same_rule_book() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let source = Node::start(&dir.path().join("source"), &NodeOpts::new(sink.addr));
    for (name, value) in [("one", "a"), ("two", "b"), ("three", "c")] {
        let rule = json!({"name": name, "action": "tag", "priority": 5,
                          "when": {"field": "subject", "op": "contains", "value": value}});
        let (s, _) = source.api("POST", "/api/v1/rules", Some(&rule));
        assert_eq!(s, 201);
    }
    let file = dir.path().join("rules.json");
    let (ok, out, err) = mxctl_at(&source, &["rules", "export", "--out", path(&file)]);
    assert!(ok, "{out}{err}");
    let exported = std::fs::read_to_string(&file).unwrap();
    let (ok, stdout, _) = mxctl_at(&source, &["rules", "export"]);
    assert!(ok);
    assert_eq!(stdout.trim_end(), exported, "stdout and --out agree");

    let target = Cluster::start(2, sink.addr);
    target.wait_members(&["mx1", "mx2"], CONVERGE);
    let (ok, out, err) = mxctl_at(
        &target.nodes[0],
        &["rules", "import", path(&file), "--dry-run"],
    );
    assert!(
        ok && out.contains("3 created") && out.contains("dry run"),
        "{out}{err}"
    );
    assert!(
        rule_ids(&target.nodes[0]).is_empty(),
        "a dry run changes nothing"
    );
    let (ok, out, err) = mxctl_at(&target.nodes[0], &["rules", "import", path(&file)]);
    assert!(
        ok && out.contains("3 created, 0 updated, 0 unchanged"),
        "{out}{err}"
    );
    let synced = wait_for(CONVERGE, || {
        (rule_ids(&target.nodes[1]).len() == 3).then_some(())
    });
    assert!(synced.is_some(), "the imported rules reach mx2");
    let (ok, out, err) = mxctl_at(&target.nodes[1], &["rules", "import", path(&file)]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("0 created, 0 updated, 3 unchanged"),
        "importing twice changes nothing: {out}"
    );
    for node in &target.nodes {
        let same = wait_for(CONVERGE, || {
            let (ok, text, _) = mxctl_at(node, &["rules", "export"]);
            (ok && text.trim_end() == exported).then_some(())
        });
        assert!(
            same.is_some(),
            "{} holds the exported rule book",
            node.admin
        );
    }

    // One rule changed in the file: updated; a bad rule names itself and its field.
    let mut rules: Vec<Value> = serde_json::from_str(&exported).unwrap();
    rules[0]["priority"] = json!(7);
    std::fs::write(&file, serde_json::to_string(&rules).unwrap()).unwrap();
    let (ok, out, err) = mxctl_at(&target.nodes[0], &["rules", "import", path(&file)]);
    assert!(
        ok && out.contains("0 created, 1 updated, 2 unchanged"),
        "{out}{err}"
    );
    rules[1]["action"] = json!("explode");
    std::fs::write(&file, serde_json::to_string(&rules).unwrap()).unwrap();
    let (ok, out, err) = mxctl_at(&target.nodes[0], &["rules", "import", path(&file)]);
    assert!(!ok, "{out}");
    let id = rules[1]["id"].as_str().unwrap();
    assert!(
        err.contains(&format!("rule #2 (id {id}")) && err.contains("action"),
        "{err}"
    );
}
