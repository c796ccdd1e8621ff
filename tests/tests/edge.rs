//! What outside tools and RFCs expect of the SMTP edge and the DNS helper, checked with
//! real clients: `RCPT TO:<Postmaster>` is accepted (RFC 5321 §4.5.1); an SMTPUTF8
//! transaction is recorded `with UTF8SMTP` (RFC 6531); STARTTLS keeps the server's cipher
//! order and resumes sessions (openssl s_client, as testssl.sh checks); the DNS helper
//! refuses other classes and zone transfers, and answers without a warning per query.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mxmesh_tests::faults::Smtp;
use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode, message, self_signed, send_python};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn bare_postmaster_reaches_the_first_domains_postmaster() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let r = send_python(
        node.smtp,
        "someone@remote.test",
        &["postmaster"],
        &message("to the postmaster", "hello\r\n"),
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let got = sink.wait_count(1, WAIT);
    assert_eq!(got[0].0["to"][0], "postmaster@example.com", "{}", got[0].0);
}

#[test]
fn an_smtputf8_transaction_is_received_with_utf8smtp() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let (mut smtp, code, _) = Smtp::connect(node.smtp, WAIT).unwrap();
    assert_eq!(code, 220);
    assert_eq!(smtp.cmd("EHLO client.test").unwrap().0, 250);
    let mail = smtp
        .cmd("MAIL FROM:<jos\u{e9}@remote.test> SMTPUTF8")
        .unwrap();
    assert_eq!(mail.0, 250, "{mail:?}");
    assert_eq!(smtp.cmd("RCPT TO:<user@example.com>").unwrap().0, 250);
    assert_eq!(smtp.cmd("DATA").unwrap().0, 354);
    let end = smtp.cmd("Subject: utf8\r\n\r\nbonjour\r\n.").unwrap();
    assert_eq!(end.0, 250, "{end:?}");
    smtp.quit();
    let got = sink.wait_count(1, WAIT);
    let text = String::from_utf8_lossy(&got[0].1);
    assert!(text.contains("with UTF8SMTP id"), "{text}");
}

/// `openssl s_client` over STARTTLS with TLS 1.2 and `args`; its whole output.
fn s_client(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.to_string(),
            "-starttls",
            "smtp",
        ])
        .args(["-tls1_2", "-servername", "mx1.example.com"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tls_node(dir: &Path, sink: &Sink) -> Node {
    let (cert, key) = self_signed(&dir.join("certs"), "mx1.example.com");
    let mut opts = NodeOpts::new(sink.addr);
    opts.smtp_extra = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    Node::start(&dir.join("node"), &opts)
}

#[test]
fn starttls_prefers_the_servers_cipher_order_and_resumes_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = tls_node(dir.path(), &sink);
    // The client prefers ChaCha20; the server's order puts AES-256-GCM first.
    let out = s_client(
        node.smtp,
        &[
            "-cipher",
            "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384",
        ],
    );
    assert!(
        out.contains("Cipher is ECDHE-RSA-AES256-GCM-SHA384"),
        "the server's choice wins:\n{out}"
    );
    // Resumption by ticket, then by session id (no ticket).
    for (what, extra) in [("ticket", None), ("session id", Some("-no_ticket"))] {
        let sess = dir.path().join(format!("{}.sess", what.replace(' ', "_")));
        let sess = sess.to_str().unwrap();
        let mut first = vec!["-sess_out", sess];
        first.extend(extra);
        let out = s_client(node.smtp, &first);
        assert!(
            out.contains("New, TLSv1.2"),
            "{what}: first session:\n{out}"
        );
        let mut again = vec!["-sess_in", sess];
        again.extend(extra);
        let out = s_client(node.smtp, &again);
        assert!(
            out.contains("Reused, TLSv1.2"),
            "{what}: not resumed:\n{out}"
        );
    }
}

/// dig with a class and extra arguments; (status, whole output).
fn dig_class(server: SocketAddr, name: &str, rtype: &str, class: &str) -> (String, String) {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "-c",
            class,
            "-q",
            name,
            "-t",
            rtype,
        ])
        .args(["+time=2", "+tries=1", "+norecurse"])
        .output()
        .expect("dig (bind9-dnsutils) installed by the test command");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    (status, text)
}

#[test]
fn the_dns_helper_refuses_other_classes_and_transfers_and_does_not_warn_per_query() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut opts = NodeOpts::new(sink.addr);
    opts.extra = "\n[dns]\nlisten = \"127.0.0.1:0\"\nname = \"mx.example.com.\"\n\
                  publish_address = \"127.0.0.1\"\nttl = 5\n"
        .into();
    let node = Node::start(&dir.path().join("node"), &opts);
    let dns = node.dns.expect("the node reports its DNS server");
    let answered = mxmesh_tests::wait_for(WAIT, || {
        let (status, a) = mxmesh_tests::dig(dns, "mx.example.com.", "A");
        (status == "NOERROR" && a == ["127.0.0.1"]).then_some(())
    });
    assert!(answered.is_some(), "the helper answers IN A");
    for _ in 0..5 {
        assert_eq!(mxmesh_tests::dig(dns, "mx.example.com.", "A").0, "NOERROR");
    }
    let (status, text) = dig_class(dns, "mx.example.com.", "A", "CH");
    assert_eq!(status, "REFUSED", "class CH:\n{text}");
    assert!(
        !text.contains("flags: qr aa"),
        "no authoritative answer for CH:\n{text}"
    );
    for xfr in ["ixfr=1", "axfr"] {
        let (status, text) = dig_class(dns, "mx.example.com.", xfr, "IN");
        assert!(
            status == "REFUSED" || text.contains("Transfer failed"),
            "{xfr} is refused:\n{text}"
        );
        assert!(
            !text.contains("IN\tSOA"),
            "{xfr} returns no records:\n{text}"
        );
    }
    let log = node.log();
    assert!(
        !log.contains("unexpected lookup skip"),
        "a warning per answered query:\n{log}"
    );
}
