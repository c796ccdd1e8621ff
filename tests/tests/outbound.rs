//! The outbound role against real clients and a real BIND 9: mail submitted with swaks
//! (`--auth` over STARTTLS, or implicit TLS) or relayed from a `trusted_networks` client
//! leaves by MX for an outside domain, DKIM-signed with the submitting node's own selector,
//! and the signature verifies (mail-auth) against the TXT record BIND serves. AUTH before
//! STARTTLS, MAIL before AUTH, wrong passwords (then the rate limit) and relaying from an
//! untrusted client are refused.
//!
//! Fixed addresses (the outside MXs on port 25, the clients' source addresses) are in
//! 127.0.41.0/24, this file's loopback range; each test uses its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mxmesh_tests::faults::Smtp;
use mxmesh_tests::{Bind, Cluster, Node, NodeOpts, Sink, SinkMode, bin, self_signed};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery staple";
/// Wrong passwords a client may send before AUTH is refused (the node's
/// `AUTH_FAILURES_MAX`).
const AUTH_FAILURES_MAX: usize = 5;

/// `mxmesh dkim keygen`: the key file and the zone line it printed.
fn dkim_keygen(dir: &Path, domain: &str, selector: &str) -> (PathBuf, String) {
    let out = Command::new(bin("mxmesh"))
        .args(["dkim", "keygen", "--domain", domain, "--selector", selector])
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap().trim().to_string();
    (dir.join(format!("{selector}.{domain}.key")), line)
}

/// A users file with `alice`, written by `mxmesh submission hash-user`.
fn users_file(dir: &Path) -> PathBuf {
    let mut child = Command::new(bin("mxmesh"))
        .args(["submission", "hash-user", "--user", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{PASSWORD}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("alice $argon2id$"), "{line}");
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("submission.users");
    std::fs::write(&path, line).unwrap();
    path
}

/// swaks to `server` with `args`; (exit ok, transcript).
fn swaks(server: SocketAddr, to: &str, args: &[&str]) -> (bool, String) {
    swaks_subject(server, to, "outbound test", args)
}

/// Like [`swaks`], with the Subject given.
fn swaks_subject(server: SocketAddr, to: &str, subject: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .arg("--server")
        .arg(server.to_string())
        .args(["--from", "alice@example.com", "--to", to])
        .arg("--header")
        .arg(format!("Subject: {subject}"))
        .args(["--body", "Hello from the outbound role.\n"])
        .args(args)
        .output()
        .expect("swaks installed by the test command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// swaks arguments for AUTH PLAIN as alice with `password`.
fn auth_args(password: &str) -> Vec<&str> {
    vec![
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        password,
    ]
}

/// Verifies the DKIM signatures of `message` with mail-auth, asking `bind` for the keys;
/// returns (domain, selector, passed) for each.
fn verify_dkim(bind: SocketAddr, message: &[u8]) -> Vec<(String, String, bool)> {
    use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    let mut server = NameServerConfig::udp_and_tcp(bind.ip());
    for connection in &mut server.connections {
        connection.port = bind.port();
    }
    let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
    let auth = mail_auth::MessageAuthenticator::new(config, ResolverOpts::default()).unwrap();
    let parsed = mail_auth::AuthenticatedMessage::parse(message).expect("a parsable message");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(auth.verify_dkim(mail_auth::Parameters::new(&parsed)));
    results
        .iter()
        .map(|r| {
            let (d, s) = r
                .signature()
                .map(|s| (s.d.clone(), s.s.clone()))
                .unwrap_or_default();
            (d, s, r.result() == &mail_auth::DkimResult::Pass)
        })
        .collect()
}

#[test]
fn mail_submitted_on_node_2_reaches_the_outside_mx_signed_with_node_2s_selector() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("dkim");
    let signing: Vec<(PathBuf, String)> = (1..=3)
        .map(|i| dkim_keygen(&keys, "example.com", &format!("mx{i}")))
        .collect();
    let records: String = signing
        .iter()
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let bind = Bind::serve(
        &dir.path().join("bind"),
        &[
            ("example.com.", records.as_str()),
            ("outside.test.", "@ IN MX 10 mx\nmx IN A 127.0.41.10\n"),
        ],
    );
    let outside = Sink::start_at(
        "127.0.41.10",
        25,
        &dir.path().join("outside"),
        SinkMode::default(),
    );
    let downstream = Sink::start(&dir.path().join("downstream"), SinkMode::default());
    let users = users_file(&dir.path().join("users"));
    let (cert, key) = self_signed(&dir.path().join("certs"), "mx.example.com");
    let cluster = Cluster::start_custom(3, downstream.addr, |i, o: &mut NodeOpts| {
        o.smtp_extra = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            key.display()
        );
        o.domain_extra = format!(
            "dkim_selector = \"mx{i}\"\ndkim_key = \"{}\"",
            signing[i - 1].0.display()
        );
        o.relay_extra = format!("resolver = \"{}\"", bind.addr);
        o.extra.push_str(&format!(
            "\n[submission]\nlisten = \"127.0.0.{i}:0\"\nusers_file = \"{}\"\n",
            users.display()
        ));
    });
    let node2 = &cluster.nodes[1];
    let submission = node2
        .submission
        .expect("node 2 reports its submission port");
    let mut args = vec!["--tls"];
    args.extend(auth_args(PASSWORD));
    let (ok, transcript) = swaks(submission, "friend@outside.test", &args);
    assert!(ok, "{transcript}");
    assert!(transcript.contains("235 2.7.0"), "{transcript}");
    let got = outside.wait_count(1, WAIT);
    assert_eq!(got[0].0["to"][0], "friend@outside.test", "{}", got[0].0);
    let text = String::from_utf8_lossy(&got[0].1);
    assert!(text.contains("Subject: outbound test"), "{text}");
    let verified = verify_dkim(bind.addr, &got[0].1);
    assert_eq!(
        verified,
        vec![("example.com".to_string(), "mx2".to_string(), true)],
        "one signature, by node 2's selector, that verifies:\n{text}"
    );
    assert!(
        downstream.messages().is_empty(),
        "outbound mail is not handed to the inbound downstream"
    );
}

/// A single node with submission (STARTTLS on `listen`, implicit TLS on a second port),
/// `trusted_networks` holding one address, and `outside.test`'s MX at `mx_ip`.
struct Edge {
    _dir: tempfile::TempDir,
    _bind: Bind,
    node: Node,
    outside: Sink,
    downstream: Sink,
}

fn single_node(mx_ip: &str, trusted: &str) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let bind = Bind::serve(
        &dir.path().join("bind"),
        &[(
            "outside.test.",
            format!("@ IN MX 10 mx\nmx IN A {mx_ip}\n").as_str(),
        )],
    );
    let outside = Sink::start_at(mx_ip, 25, &dir.path().join("outside"), SinkMode::default());
    let downstream = Sink::start(&dir.path().join("downstream"), SinkMode::default());
    let users = users_file(&dir.path().join("users"));
    let (cert, key) = self_signed(&dir.path().join("certs"), "mx1.example.com");
    let mut o = NodeOpts::new(downstream.addr);
    o.smtp_extra = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    o.relay_extra = format!(
        "resolver = \"{}\"\ntrusted_networks = [\"{trusted}/32\"]",
        bind.addr
    );
    o.extra = format!(
        "\n[submission]\nlisten = \"127.0.0.1:0\"\nimplicit_tls_listen = \"127.0.0.1:0\"\nusers_file = \"{}\"\n",
        users.display()
    );
    let node = Node::start(&dir.path().join("node"), &o);
    Edge {
        _dir: dir,
        _bind: bind,
        node,
        outside,
        downstream,
    }
}

#[test]
fn auth_needs_tls_and_the_right_password_and_wrong_ones_are_rate_limited() {
    let edge = single_node("127.0.41.11", "127.0.41.99");
    let submission = edge.node.submission.unwrap();
    // Before STARTTLS: AUTH is neither offered nor accepted, MAIL needs AUTH.
    let (mut smtp, code, _) = Smtp::connect(submission, WAIT).unwrap();
    assert_eq!(code, 220);
    let (code, last) = smtp.cmd("EHLO client.test").unwrap();
    assert_eq!(code, 250);
    assert!(
        last.contains("STARTTLS"),
        "the last EHLO line, not AUTH: {last}"
    );
    let (code, text) = smtp.cmd("AUTH PLAIN AGFsaWNlAHdob2V2ZXI=").unwrap();
    assert_eq!(code, 538, "AUTH before STARTTLS: {text}");
    let (code, text) = smtp.cmd("MAIL FROM:<alice@example.com>").unwrap();
    assert_eq!(code, 530, "MAIL before AUTH: {text}");
    smtp.quit();
    // Over STARTTLS but without AUTH: 530.
    let (ok, t) = swaks(submission, "friend@outside.test", &["--tls"]);
    assert!(!ok && t.contains("530 5.7.0"), "{t}");
    // Wrong passwords: 535 each, then 454 even for the right one, from that client.
    let wrong: Vec<&str> = ["--tls", "--local-interface", "127.0.41.30"]
        .into_iter()
        .chain(auth_args("wrong"))
        .collect();
    for attempt in 0..AUTH_FAILURES_MAX {
        let (ok, t) = swaks(submission, "friend@outside.test", &wrong);
        assert!(!ok && t.contains("535 5.7.8"), "attempt {attempt}: {t}");
    }
    let right_from_there: Vec<&str> = ["--tls", "--local-interface", "127.0.41.30"]
        .into_iter()
        .chain(auth_args(PASSWORD))
        .collect();
    let (ok, t) = swaks(submission, "friend@outside.test", &right_from_there);
    assert!(!ok && t.contains("454 4.7.0"), "rate-limited: {t}");
    // Another client with the right password, on the implicit-TLS port: delivered by MX.
    let implicit = edge.node.submission_tls.unwrap();
    let good: Vec<&str> = ["--tls-on-connect", "--local-interface", "127.0.41.31"]
        .into_iter()
        .chain(auth_args(PASSWORD))
        .collect();
    let (ok, t) = swaks(implicit, "friend@outside.test", &good);
    assert!(ok && t.contains("235 2.7.0"), "{t}");
    let got = edge.outside.wait_count(1, WAIT);
    assert_eq!(got[0].0["from"], "alice@example.com", "{}", got[0].0);
    assert!(edge.downstream.messages().is_empty());
    outbound_rules_see_direction_and_user(&edge, &good);
}

/// A rule on `direction` and `auth_user` quarantines alice's outbound mail, where admins
/// see it as they see inbound mail; the same subject inbound is not touched.
fn outbound_rules_see_direction_and_user(edge: &Edge, submit: &[&str]) {
    let rule = serde_json::json!({"name": "hold alice", "priority": 1, "action": "quarantine",
        "reason": "outbound hold",
        "when": {"all": [{"field": "direction", "op": "equals", "value": "outbound"},
                         {"field": "auth_user", "op": "equals", "value": "alice"},
                         {"field": "subject", "op": "contains", "value": "hold-me"}]}});
    let (status, body) = edge.node.api("POST", "/api/v1/rules", Some(&rule));
    assert_eq!(status, 201, "{body}");
    let implicit = edge.node.submission_tls.unwrap();
    let (ok, t) = swaks_subject(implicit, "friend@outside.test", "hold-me out", submit);
    assert!(ok, "{t}");
    let (_, list) = edge
        .node
        .api("GET", "/api/v1/quarantine?subject=hold-me", None);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["sender"], "alice@example.com", "{list}");
    assert_eq!(items[0]["recipients"][0], "friend@outside.test", "{list}");
    let (ok, t) = swaks_subject(
        edge.node.smtp,
        "user@example.com",
        "hold-me in",
        &["--local-interface", "127.0.41.32"],
    );
    assert!(ok, "{t}");
    edge.downstream.wait_count(1, WAIT);
}

#[test]
fn only_trusted_networks_relay_on_port_25() {
    let edge = single_node("127.0.41.12", "127.0.41.40");
    let smtp = edge.node.smtp;
    let (ok, t) = swaks(
        smtp,
        "friend@outside.test",
        &["--local-interface", "127.0.41.41"],
    );
    assert!(
        !ok && t.contains("550 5.7.1"),
        "an untrusted client relays: {t}"
    );
    let (ok, t) = swaks(
        smtp,
        "friend@outside.test",
        &["--local-interface", "127.0.41.40"],
    );
    assert!(ok, "the trusted client is refused: {t}");
    let got = edge.outside.wait_count(1, WAIT);
    assert_eq!(got[0].0["to"][0], "friend@outside.test", "{}", got[0].0);
    // Inbound mail from the untrusted client still reaches our domain's downstream.
    let (ok, t) = swaks(
        smtp,
        "user@example.com",
        &["--local-interface", "127.0.41.41"],
    );
    assert!(ok, "{t}");
    edge.downstream.wait_count(1, WAIT);
}
