//! The web console in a real browser: headless Debian Chromium driven by Selenium
//! (`tests/fixtures/console_browser.py`) against a 3-node mesh — sign in on mx1, a rule
//! whose error shows at its field, then fixed; mail sent to mx2, found and released in
//! mx3's console; the downstream gets it once; an allow entry added on mx1 (its error shown
//! at the field first) seen in mx2's console and mx3's API, deleted on mx2; digest settings
//! edited on mx1 (error at the field first) read back from the other nodes' APIs and a
//! "send digests now"; a symbol weight edited on mx1 (a value that is not a number and one
//! out of range first, each refused at its row) read back from mx3's and every node's API;
//! then every page the console routes, opened on every node (signed
//! in on each) and checked against the mesh's data (members, rule, held message, trace,
//! queues, list entry, settings and weight; drain and undrain); no JavaScript errors. Screenshots of
//! every page on every node go to `target/tmp/console-screenshots/` (the test prints it). Plus the session rules seen from outside:
//! the cookie is HttpOnly and SameSite=Strict, state changes need the CSRF header,
//! sign-out ends the session, and `/ui/` answers carry the Content-Security-Policy.

use std::process::Command;
use std::time::Duration;

use mxmesh_tests::{Cluster, Node, Sink, SinkMode, TOKEN, fixture};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(20);
const DELIVERY: Duration = Duration::from_secs(30);

fn three_nodes() -> (tempfile::TempDir, Sink, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    (dir, sink, cluster)
}

/// Where the screenshots go: under the target directory, kept after the test.
fn screenshot_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn console_in_chromium_signs_in_edits_a_rule_and_releases_mail_from_another_node() {
    let (_dir, sink, cluster) = three_nodes();
    let shots = screenshot_dir("console-screenshots");
    println!("console screenshots: {}", shots.display());
    let nonce = format!("{:x}", std::process::id());
    let admin: Vec<String> = cluster.nodes.iter().map(|n| n.url("")).collect();
    let out = Command::new("python3")
        .arg(fixture("console_browser.py"))
        .env("MX_ADMIN", admin.join(" "))
        .env("MX_SMTP2", cluster.nodes[1].smtp.to_string())
        .env("MX_TOKEN", TOKEN)
        .env("MX_SHOTS", &shots)
        .env("MX_NONCE", &nonce)
        .output()
        .expect("python3 with selenium (scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser run failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    let released = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RELEASED "))
        .expect("the script names the message it released")
        .trim()
        .to_string();
    // The body word, not the subject: a digest would list the subject, never the body.
    let body_word = format!("body-{nonce}");
    let got = sink.wait_count(1, DELIVERY);
    let copies = |msgs: &[(Value, Vec<u8>)]| {
        msgs.iter()
            .filter(|(_, raw)| String::from_utf8_lossy(raw).contains(&body_word))
            .count()
    };
    assert_eq!(copies(&got), 1, "the released message arrived downstream");
    // A second release, from yet another node, is refused: the message goes out once.
    let (s, _) = cluster.nodes[0].api(
        "POST",
        &format!("/api/v1/quarantine/{released}/release"),
        None,
    );
    assert_eq!(s, 409, "a second release is refused");
    let (_, entry) = cluster.nodes[1].api("GET", &format!("/api/v1/quarantine/{released}"), None);
    assert_eq!(entry["status"], "released", "{entry}");
    assert_eq!(copies(&sink.messages()), 1, "still one copy downstream");
    lists_and_settings_seen_from_the_api(&cluster, &nonce);
    every_page_shot_on_every_node(&shots);
}

/// The pages the browser run opens on every node (each saved as `NN-<node>-<page>.png`).
const TOUR_PAGES: [&str; 11] = [
    "overview",
    "drained",
    "rules",
    "rule-form",
    "history",
    "quarantine",
    "message",
    "trace",
    "queues",
    "lists",
    "settings",
];

/// Every page of the tour has its screenshot, for every node: the run reached them all.
fn every_page_shot_on_every_node(shots: &std::path::Path) {
    let names: Vec<String> = std::fs::read_dir(shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for node in ["mx1", "mx2", "mx3"] {
        for page in TOUR_PAGES {
            let suffix = format!("-{node}-{page}.png");
            assert!(
                names.iter().any(|n| n.ends_with(&suffix)),
                "no screenshot of {node}'s {page} page in {}: {names:?}",
                shots.display()
            );
        }
    }
}

/// What the browser run changed, from every node's API: the list entry it added and
/// deleted is gone everywhere and its history shows both; the digest settings and the
/// symbol weight it saved (the thresholds left as they were).
fn lists_and_settings_seen_from_the_api(cluster: &Cluster, nonce: &str) {
    let sender = format!("friend-{nonce}@partner.example");
    for node in &cluster.nodes {
        let (s, lists) = node.api("GET", "/api/v1/lists", None);
        assert_eq!(s, 200, "{lists}");
        assert!(
            !lists.to_string().contains(&sender),
            "the deleted entry is gone: {lists}"
        );
        let (_, digest) = node.api("GET", "/api/v1/settings/digest", None);
        let saved = json!({"enabled": false, "time": "07:30", "time_zone": "Europe/Paris",
            "link_lifetime_hours": 72, "public_url": "https://mx.example.com",
            "sender": "quarantine@example.com", "items_max": 25});
        assert_eq!(digest, saved, "the console's digest settings");
        let (_, spam) = node.api("GET", "/api/v1/settings/spam", None);
        let saved = json!({"tag": 5.0, "quarantine": 10.0, "reject": 15.0,
            "subject_prefix": null, "weights": {"DATE_IN_PAST": 1.25}});
        assert_eq!(spam, saved, "the console's symbol weight");
    }
    let (_, history) = cluster.nodes[2].api("GET", "/api/v1/rules/history", None);
    let list_ops: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["rule_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("list:"))
        })
        .filter_map(|e| e["op"].as_str())
        .collect();
    assert_eq!(list_ops, ["create", "delete"], "{history}");
}

/// Signs in on `node`; returns the cookie pair and the CSRF token.
fn sign_in(c: &Client, node: &Node) -> (String, String) {
    let r = c
        .post(node.url("/ui/session"))
        .header("content-type", "application/json")
        .body(json!({ "token": TOKEN }).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set} lacks {part}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let body: Value = r.json().unwrap();
    assert_eq!(body["admin"], "tester");
    (cookie, body["csrf"].as_str().unwrap().to_string())
}

#[test]
fn sessions_need_csrf_for_changes_and_end_at_sign_out() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(
        &dir.path().join("mx1"),
        &mxmesh_tests::NodeOpts::new(sink.addr),
    );
    let c = Client::new();
    let page = c.get(node.url("/ui/")).send().unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(page.text().unwrap().contains("app.js"));
    let wrong = c
        .post(node.url("/ui/session"))
        .header("content-type", "application/json")
        .body(r#"{"token":"wrong"}"#)
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let form = c
        .post(node.url("/ui/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(form.status().as_u16(), 400, "a form post cannot sign in");

    let (cookie, csrf) = sign_in(&c, &node);
    let get = c
        .get(node.url("/api/v1/rules"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(get.status().as_u16(), 200, "reads need only the cookie");
    let rule = json!({"name": "n", "priority": 1, "action": "tag", "when": {"field": "subject", "op": "contains", "value": "x"}});
    let post = |csrf: Option<&str>| {
        let mut r = c
            .post(node.url("/api/v1/rules"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(rule.to_string());
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(post(None), 403, "no CSRF header");
    assert_eq!(post(Some("forged")), 403, "a wrong CSRF token");
    assert_eq!(post(Some(&csrf)), 201);
    let bad = c
        .post(node.url("/api/v1/rules"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body(
            r#"{"name":"n","action":"tag","when":{"field":"subject","op":"containz","value":"x"}}"#,
        )
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let bad: Value = bad.json().unwrap();
    assert_eq!(bad["field"], "when.op", "{bad}");

    let out = c
        .delete(node.url("/ui/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let after = c
        .get(node.url("/api/v1/rules"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(after.status().as_u16(), 401, "signed out");
    let who: Value = c
        .get(node.url("/ui/session"))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(who["admin"], Value::Null);
}

#[test]
fn series_answers_for_every_live_node_and_the_total() {
    let (_dir, sink, cluster) = three_nodes();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let msg = mxmesh_tests::message(&format!("series {i}"), "hello");
        let r =
            mxmesh_tests::send_python(node.smtp, "a@example.org", &["b@example.com"], &msg, false);
        assert_eq!(r["ok"], true, "{r}");
    }
    sink.wait_count(3, DELIVERY);
    let per_node = mxmesh_tests::wait_for(DELIVERY, || {
        let (s, v) =
            cluster.nodes[2].api("GET", "/api/v1/stats/series?metric=received&step=60", None);
        assert_eq!(s, 200, "{v}");
        let sum = |a: &Value| {
            a.as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).sum::<u64>())
        };
        let nodes: Vec<u64> = ["mx1", "mx2", "mx3"]
            .iter()
            .filter_map(|n| sum(&v["nodes"][n]))
            .collect();
        (nodes == [1, 1, 1] && sum(&v["total"]) == Some(3)).then_some(v)
    })
    .expect("each node's minute shows its message, and the total all three");
    assert_eq!(
        per_node["times"].as_array().unwrap().len(),
        per_node["total"].as_array().unwrap().len()
    );
    let (s, v) = cluster.nodes[0].api("GET", "/api/v1/stats/series?metric=nope", None);
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("metric"), "{v}");
}

#[test]
fn settings_and_list_errors_name_the_field_the_console_shows_them_at() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(
        &dir.path().join("mx1"),
        &mxmesh_tests::NodeOpts::new(sink.addr),
    );
    let cases = [
        ("/api/v1/settings/digest", json!({"time": "25:00"}), "time"),
        (
            "/api/v1/settings/digest",
            json!({"public_url": "ftp://x"}),
            "public_url",
        ),
        (
            "/api/v1/settings/quarantine",
            json!({"copies": 9}),
            "copies",
        ),
        (
            "/api/v1/settings/spam",
            json!({"tag": 8, "quarantine": 4}),
            "quarantine",
        ),
        (
            "/api/v1/settings/spam",
            json!({"weights": {"DATE_IN_PAST": "abc"}}),
            "weights.DATE_IN_PAST",
        ),
        (
            "/api/v1/settings/spam",
            json!({"weights": {"DATE_IN_PAST": 500}}),
            "weights.DATE_IN_PAST",
        ),
        (
            "/api/v1/settings/spam",
            json!({"weights": {"NOT_A_SYMBOL": 1}}),
            "weights.NOT_A_SYMBOL",
        ),
        ("/api/v1/settings/spam", json!({"reject": "high"}), "reject"),
    ];
    for (path, body, field) in cases {
        let (s, v) = node.api("PUT", path, Some(&body));
        assert_eq!(s, 400, "{path} {body}: {v}");
        assert_eq!(v["field"], field, "{path} {body}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    }
    let (s, v) = node.api(
        "POST",
        "/api/v1/lists",
        Some(&json!({"kind": "allow", "sender": "a@b..example", "scope": "*"})),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("sender")), "{v}");
    // Nothing changed.
    let (_, digest) = node.api("GET", "/api/v1/settings/digest", None);
    assert_eq!(digest["time"], "08:00");
    let (_, q) = node.api("GET", "/api/v1/settings/quarantine", None);
    assert_eq!(q["copies"], 1);
    let (_, spam) = node.api("GET", "/api/v1/settings/spam", None);
    assert_eq!(spam["weights"], json!({}));
    assert_eq!(spam["reject"], 15.0);
    // The table the console's weights form lists: every symbol, its family and default.
    let (s, table) = node.api("GET", "/api/v1/spam/symbols", None);
    assert_eq!(s, 200, "{table}");
    let symbols = table["symbols"].as_array().unwrap();
    let date = symbols
        .iter()
        .find(|x| x["name"] == "DATE_IN_PAST")
        .expect("DATE_IN_PAST is in the table");
    assert_eq!(
        (&date["family"], &date["weight"]),
        (&json!("headers"), &json!(0.5))
    );
    assert!(symbols.len() >= 40 && symbols.iter().all(|x| x["description"].is_string()));
}
