//! `mxmesh demo` as a newcomer runs it: it starts three nodes, prints each node's SMTP,
//! admin, console and DNS address, carries mail to its sink, publishes its nodes in DNS,
//! answers the admin API and signs in to each console with the printed token, and stops
//! cleanly on Ctrl-C.
//!
//! The demo uses fixed ports on 127.0.0.1..3 (below the ephemeral range, so no other test's
//! port-0 listener can hold them).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mxmesh_tests::bind::dig;
use mxmesh_tests::faults::send_one;
use mxmesh_tests::{bin, wait_for};
use serde_json::Value;

/// How long the demo may take to print its banner (three nodes, no corpus to learn).
const BANNER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long mail, DNS and membership may take to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Ctrl-C may take to stop the demo (each node drains).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One node line of the banner: `mx1  smtp A  admin http://B  console http://B/ui/  dns C`.
struct NodeLine {
    id: String,
    smtp: SocketAddr,
    admin: SocketAddr,
    console: String,
    dns: SocketAddr,
}

fn parse_node_line(line: &str) -> Option<NodeLine> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [
            id,
            "smtp",
            smtp,
            "admin",
            admin,
            "console",
            console,
            "dns",
            dns,
        ] => Some(NodeLine {
            id: id.to_string(),
            smtp: smtp.parse().ok()?,
            admin: admin.strip_prefix("http://")?.parse().ok()?,
            console: console.to_string(),
            dns: dns.parse().ok()?,
        }),
        _ => None,
    }
}

/// The demo process; killed if the test fails before it stops it.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the demo's stdout on a thread; every line goes to the channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Lines up to and including the first that contains `marker`.
fn read_until(rx: &mpsc::Receiver<String>, marker: &str, timeout: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(marker);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "no line with {marker:?} within {timeout:?}; output so far:\n{}",
        seen.join("\n")
    );
}

fn admin_get(admin: SocketAddr, token: &str, path: &str) -> Option<Value> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{admin}{path}"))
        .bearer_auth(token)
        .send()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().ok()
}

#[test]
fn the_demo_starts_carries_mail_publishes_its_nodes_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = std::fs::File::create(tmp.path().join("demo.stderr")).unwrap();
    let child = Command::new(bin("mxmesh"))
        .args(["demo", "--nodes", "3", "--dir"])
        .arg(tmp.path().join("demo"))
        .env("MXMESH_CORPUS_DIR", tmp.path().join("no-corpus"))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut demo = Demo(child);
    let rx = lines_of(&mut demo.0);
    let banner = read_until(&rx, "Try:", BANNER_TIMEOUT);
    let text = banner.join("\n");

    let nodes: Vec<NodeLine> = banner.iter().filter_map(|l| parse_node_line(l)).collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["mx1", "mx2", "mx3"], "{text}");
    for (i, n) in nodes.iter().enumerate() {
        let ip = format!("127.0.0.{}", i + 1);
        for addr in [n.smtp, n.admin, n.dns] {
            assert_eq!(
                addr.ip().to_string(),
                ip,
                "{} on its own address: {text}",
                n.id
            );
        }
    }
    let token = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("admin token"))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| panic!("no admin token in the banner:\n{text}"));
    let sink_dir = banner
        .iter()
        .find_map(|l| {
            l.split(" -> ")
                .nth(1)
                .filter(|_| l.contains("downstream sink"))
        })
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no sink directory in the banner:\n{text}"));

    // Mail sent to node 2 reaches the printed sink directory.
    let (code, reply) = send_one(nodes[1].smtp, "hello from the demo test", 2_000);
    assert_eq!(code, 250, "{reply}");
    let arrived = wait_for(SETTLE_TIMEOUT, || {
        std::fs::read_dir(&sink_dir).ok()?.flatten().find(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|m| m.contains("hello from the demo test"))
        })
    });
    assert!(
        arrived.is_some(),
        "the message did not reach {}",
        sink_dir.display()
    );

    // Every node's DNS server publishes all three nodes; the token opens the admin API,
    // where every node sees the other two live.
    for n in &nodes {
        let published = wait_for(SETTLE_TIMEOUT, || {
            let (status, answers) = dig(n.dns, "mx.example.com.", "A");
            (status == "NOERROR" && answers == ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
                .then_some(())
        });
        assert!(
            published.is_some(),
            "{} does not publish all three nodes",
            n.id
        );
        let members = wait_for(SETTLE_TIMEOUT, || {
            let cluster = admin_get(n.admin, &token, "/api/v1/cluster")?;
            let live = cluster["members"]
                .as_array()?
                .iter()
                .filter(|m| m["live"] == true)
                .count();
            (live == 3).then_some(())
        });
        assert!(
            members.is_some(),
            "{} does not see three live members",
            n.id
        );
        assert_eq!(n.console, format!("http://{}/ui/", n.admin));
        let client = reqwest::blocking::Client::new();
        let page = client.get(&n.console).send().unwrap();
        assert_eq!(page.status().as_u16(), 200, "{} console page", n.id);
        let signed_in = client
            .post(format!("http://{}/ui/session", n.admin))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "token": token }).to_string())
            .send()
            .unwrap();
        assert_eq!(
            signed_in.status().as_u16(),
            200,
            "the printed token signs in to {}'s console",
            n.id
        );
    }

    // Ctrl-C stops it cleanly.
    let pid = demo.0.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let exited = wait_for(STOP_TIMEOUT, || demo.0.try_wait().ok().flatten());
    let exited = exited.unwrap_or_else(|| panic!("the demo did not stop within {STOP_TIMEOUT:?}"));
    let log = std::fs::read_to_string(tmp.path().join("demo.stderr")).unwrap_or_default();
    assert!(exited.success(), "exit status {exited}; stderr:\n{log}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("mxmesh demo: stopped")),
        "no stop message after Ctrl-C: {rest:?}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
