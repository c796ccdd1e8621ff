//! Filtering depth against real components: a BIND 9 on loopback serves the DNSBL zone,
//! SPF records, a DKIM key and a DMARC policy; clients connect from chosen 127.0.0.x
//! addresses so that SPF pass and fail are both real; messages are DKIM-signed here with
//! mail-auth; a real clamd with a one-signature database scans; zip bombs and renamed
//! executables are built here with the zip crate.

use std::io::{Cursor, Write};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mxmesh_tests::{
    Bind, Clamd, Client, ClosedPort, EICAR_SIGNATURE, Node, NodeOpts, Sink, SinkMode, eicar,
    send_with,
};
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const WITHIN: Duration = Duration::from_secs(15);
/// The address SPF allows for sender.test; PASS_IP is it, FAIL_IP is not.
const PASS_IP: &str = "127.0.0.2";
const FAIL_IP: &str = "127.0.0.3";
/// Listed in bl.test.
const LISTED_IP: &str = "127.0.0.4";

/// A 64-bit Linux executable header (64 bytes) and the start of a Windows executable.
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00\x01\x00\x00\x00\
    \x00\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
    \x00\x00\x00\x00\x40\x00\x38\x00\x00\x00\x40\x00\x00\x00\x00\x00";
const PE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00";

struct Setup {
    _dir: tempfile::TempDir,
    _bind: Option<Bind>,
    _clamd: Option<Clamd>,
    sink: Sink,
    node: Node,
}

impl Setup {
    /// A sink and a node with `filter` as its `[filter]` section (none when empty).
    fn start(
        dir: tempfile::TempDir,
        bind: Option<Bind>,
        clamd: Option<Clamd>,
        filter: &str,
    ) -> Setup {
        let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
        let mut opts = NodeOpts::new(sink.addr);
        opts.extra = filter.to_string();
        let node = Node::start(&dir.path().join("node"), &opts);
        Setup {
            _dir: dir,
            _bind: bind,
            _clamd: clamd,
            sink,
            node,
        }
    }

    fn rule(&self, rule: Value) {
        let (status, body) = self.node.api("POST", "/api/v1/rules", Some(&rule));
        assert_eq!(status, 201, "{body}");
    }

    fn send(&self, client: &Client, from: &str, message: &[u8]) -> Value {
        send_with(
            self.node.smtp,
            client,
            from,
            &["user@example.com"],
            message,
            false,
        )
    }

    /// The relayed copy of the message whose Subject is `subject`.
    fn relayed(&self, subject: &str) -> String {
        let needle = format!("Subject: {subject}\r\n");
        let found = mxmesh_tests::wait_for(WITHIN, || {
            self.sink
                .messages()
                .into_iter()
                .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
                .find(|m| m.contains(&needle))
        });
        found.unwrap_or_else(|| panic!("{subject:?} was not relayed; log:\n{}", self.node.log()))
    }

    /// The quarantine reason of the message whose subject is `subject`.
    fn quarantined(&self, subject: &str) -> String {
        let (status, body) = self.node.api(
            "GET",
            &format!("/api/v1/quarantine?subject={subject}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        match body["items"].as_array().map(Vec::as_slice) {
            Some([one]) => one["reason"].as_str().unwrap().to_string(),
            _ => panic!("{subject:?}: expected one quarantined message, got {body}"),
        }
    }
}

/// The unfolded `X-Spam-Symbols` header of a relayed message.
fn spam_symbols(message: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n\t", " ");
    let line = unfolded.lines().find(|l| l.starts_with("X-Spam-Symbols:"));
    line.unwrap_or_else(|| panic!("no X-Spam-Symbols in {message}"))
        .to_string()
}

/// A DKIM key for sender.test, selector `sel`: (signer key bytes, DNS TXT record).
fn dkim_key() -> (Vec<u8>, String) {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let public = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap().public_key();
    let p = base64::engine::general_purpose::STANDARD.encode(public);
    (
        pkcs8,
        format!("sel._domainkey.sender IN TXT \"v=DKIM1; k=ed25519; p={p}\""),
    )
}

fn dkim_sign(pkcs8: &[u8], message: &[u8]) -> Vec<u8> {
    let key = Ed25519Key::from_pkcs8_der(pkcs8).unwrap();
    let signature = DkimSigner::from_key(key)
        .domain("sender.test")
        .selector("sel")
        .headers(["From", "To", "Subject", "Message-ID"])
        .sign(message)
        .unwrap();
    [signature.to_header().as_bytes(), message].concat()
}

fn mail(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: user@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@sender.test>\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// A message with one base64 attachment.
fn with_attachment(subject: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: a@example.org\r\nTo: user@example.com\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
         see attachment\r\n--b1\r\nContent-Type: application/pdf; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {}\r\n--b1--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, data) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// BIND serving the zone `test.`: sender.test (SPF, DKIM, DMARC, SPF limit cases) and
/// the DNSBL zone bl.test. One zone, so that names outside the records are NXDOMAIN (the
/// DMARC tree walk asks `_dmarc.test.` too).
fn dns(dir: &Path, dkim_record: &str) -> Bind {
    let mut records = format!(
        "sender IN TXT \"v=spf1 ip4:{PASS_IP} -all\"\n{dkim_record}\n_dmarc.sender IN TXT \"v=DMARC1; p=reject\"\n\
         soft.sender IN TXT \"v=spf1 ~all\"\n\
         voids.sender IN TXT \"v=spf1 a:nx1.sender.test a:nx2.sender.test a:nx3.sender.test ip4:{PASS_IP} -all\"\n\
         twovoids.sender IN TXT \"v=spf1 a:nx1.sender.test a:nx2.sender.test ip4:{PASS_IP} -all\"\n"
    );
    // l0 → l1 → … → l11: twelve DNS-querying terms, over the limit of ten.
    for i in 0..11 {
        records.push_str(&format!(
            "l{i}.sender IN TXT \"v=spf1 include:l{}.sender.test -all\"\n",
            i + 1
        ));
    }
    records.push_str(&format!(
        "l11.sender IN TXT \"v=spf1 ip4:{PASS_IP} -all\"\n"
    ));
    let listed = LISTED_IP.split('.').rev().collect::<Vec<_>>().join(".");
    records.push_str(&format!("{listed}.bl IN A 127.0.0.2\n"));
    Bind::serve(&dir.join("bind"), &[("test.", &records)])
}

fn auth_setup() -> (Setup, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (key, record) = dkim_key();
    let bind = dns(dir.path(), &record);
    let filter = format!(
        "\n[filter]\nresolver = \"{}\"\ndnsbl = [\"bl.test\"]\ndns_timeout_ms = 2000\n",
        bind.addr
    );
    (Setup::start(dir, Some(bind), None, &filter), key)
}

/// The Authentication-Results header of a relayed message, unfolded.
fn auth_results(relayed: &str) -> String {
    let start = relayed
        .find("Authentication-Results: ")
        .unwrap_or_else(|| panic!("no Authentication-Results in {relayed}"));
    let rest = &relayed[start..];
    let mut end = rest.find("\r\n").unwrap();
    while rest[end + 2..].starts_with('\t') || rest[end + 2..].starts_with(' ') {
        end += 2 + rest[end + 2..].find("\r\n").unwrap();
    }
    rest[..end].replace("\r\n\t", " ")
}

#[test]
fn spf_dkim_and_dmarc_are_checked_and_reported() {
    let (s, key) = auth_setup();
    s.rule(
        json!({"name": "spoof", "priority": 10, "action": "reject", "reason": "spoofed sender",
        "when": {"all": [{"field": "spf", "op": "equals", "value": "fail"},
                         {"field": "dmarc", "op": "equals", "value": "fail"}]}}),
    );
    let good = Client::from(PASS_IP, "good.sender.test");
    let bad = Client::from(FAIL_IP, "bad.sender.test");

    let signed = dkim_sign(&key, &mail("a@sender.test", "signed", "hello"));
    assert_eq!(s.send(&good, "a@sender.test", &signed)["code"], 250);
    let signed_relayed = s.relayed("signed");
    let symbols = spam_symbols(&signed_relayed);
    for name in ["SPF_PASS(-0.20)", "DKIM_PASS(-0.20)", "DMARC_PASS(-0.50)"] {
        assert!(symbols.contains(name), "{name} in {symbols}");
    }
    let header = auth_results(&signed_relayed);
    assert!(
        header.starts_with("Authentication-Results: mx1.example.com;"),
        "{header}"
    );
    assert!(
        header.contains("spf=pass smtp.mailfrom=a@sender.test"),
        "{header}"
    );
    assert!(
        header.contains("dkim=pass header.d=sender.test header.s=sel"),
        "{header}"
    );
    assert!(
        header.contains("dmarc=pass header.from=sender.test"),
        "{header}"
    );

    // Tampered after signing: DKIM fails; SPF still passes, so DMARC passes by SPF.
    let tampered = String::from_utf8(dkim_sign(&key, &mail("a@sender.test", "tampered", "hello")))
        .unwrap()
        .replace("hello", "HELLO, send money");
    assert_eq!(
        s.send(&good, "a@sender.test", tampered.as_bytes())["code"],
        250
    );
    let header = auth_results(&s.relayed("tampered"));
    assert!(header.contains("spf=pass"), "{header}");
    assert!(header.contains("dkim=fail"), "{header}");
    assert!(header.contains("dmarc=pass"), "{header}");

    // A signed header changed: the signature itself does not verify.
    let resubjected =
        String::from_utf8(dkim_sign(&key, &mail("a@sender.test", "original", "hello")))
            .unwrap()
            .replace("Subject: original", "Subject: resubjected");
    assert_eq!(
        s.send(&good, "a@sender.test", resubjected.as_bytes())["code"],
        250
    );
    let header = auth_results(&s.relayed("resubjected"));
    assert!(header.contains("dkim=fail"), "{header}");

    // From a host SPF does not allow, unsigned: SPF and DMARC fail, the rule rejects.
    let reply = s.send(&bad, "a@sender.test", &mail("a@sender.test", "forged", "x"));
    assert_eq!(reply["code"], 550, "{reply}");
    assert!(
        reply["reply"].as_str().unwrap().contains("spoofed sender"),
        "{reply}"
    );

    // softfail and none, and no DKIM signature at all.
    assert_eq!(
        s.send(
            &bad,
            "b@soft.sender.test",
            &mail("b@soft.sender.test", "soft", "x")
        )["code"],
        250
    );
    let soft = s.relayed("soft");
    let header = auth_results(&soft);
    assert!(header.contains("spf=softfail"), "{header}");
    assert!(header.contains("dkim=none"), "{header}");
    // sender.test publishes p=reject (its subdomains inherit it): failing DMARC weighs most.
    let symbols = spam_symbols(&soft);
    for name in [
        "SPF_SOFTFAIL(1.00)",
        "DKIM_NONE(0.00)",
        "DMARC_FAIL_REJECT(4.00)",
    ] {
        assert!(symbols.contains(name), "{name} in {symbols}");
    }
    assert_eq!(
        s.send(
            &bad,
            "c@nowhere.sender.test",
            &mail("c@nowhere.sender.test", "nospf", "x")
        )["code"],
        250
    );
    assert!(auth_results(&s.relayed("nospf")).contains("spf=none"));
}

#[test]
fn spf_lookup_limits_give_permerror() {
    let (s, _) = auth_setup();
    let good = Client::from(PASS_IP, "good.sender.test");
    // Two void lookups are allowed, the third is a permerror (RFC 7208 §4.6.4).
    let send = |from: &str, subject: &str| {
        assert_eq!(s.send(&good, from, &mail(from, subject, "x"))["code"], 250);
        auth_results(&s.relayed(subject))
    };
    let two = send("a@twovoids.sender.test", "two voids");
    assert!(two.contains("spf=pass"), "{two}");
    assert!(send("a@voids.sender.test", "three voids").contains("spf=permerror"));
    // Eleven includes: more than ten DNS-querying terms.
    assert!(send("a@l0.sender.test", "eleven includes").contains("spf=permerror"));
    assert!(send("a@l10.sender.test", "one include").contains("spf=pass"));
}

#[test]
fn forged_authentication_results_are_removed() {
    let (s, _) = auth_setup();
    let good = Client::from(PASS_IP, "good.sender.test");
    let forged = [
        b"Authentication-Results: mx1.example.com; spf=pass; dkim=pass; dmarc=pass\r\n".as_slice(),
        &mail("a@sender.test", "forged results", "x"),
    ]
    .concat();
    assert_eq!(s.send(&good, "a@sender.test", &forged)["code"], 250);
    let relayed = s.relayed("forged results");
    assert_eq!(
        relayed.matches("Authentication-Results:").count(),
        1,
        "{relayed}"
    );
    assert!(auth_results(&relayed).contains("dkim=none"), "{relayed}");
}

#[test]
fn a_client_listed_in_a_dnsbl_zone_meets_the_rule() {
    let (s, _) = auth_setup();
    s.rule(
        json!({"name": "dnsbl", "priority": 1, "action": "reject", "reason": "listed in bl.test",
        "when": {"field": "dnsbl:bl.test", "op": "equals", "value": "127.0.0.2"}}),
    );
    let listed = Client::from(LISTED_IP, "listed.test");
    let reply = s.send(
        &listed,
        "a@sender.test",
        &mail("a@sender.test", "from listed", "x"),
    );
    assert_eq!(reply["code"], 550, "{reply}");
    assert!(
        reply["reply"]
            .as_str()
            .unwrap()
            .contains("listed in bl.test")
    );
    let clean = Client::from(PASS_IP, "good.sender.test");
    assert_eq!(
        s.send(
            &clean,
            "a@sender.test",
            &mail("a@sender.test", "from clean", "x")
        )["code"],
        250
    );
    s.relayed("from clean");
}

/// A resolver address that takes queries and never answers (UDP), with nothing on TCP.
fn silent_resolver() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

#[test]
fn dns_failure_skips_or_tempfails_as_configured_and_never_hangs() {
    let silent = silent_resolver();
    let addr = silent.local_addr().unwrap();
    let filter = |mode: &str| {
        format!(
            "\n[filter]\nresolver = \"{addr}\"\ndnsbl = [\"bl.test\"]\ndns_timeout_ms = 300\non_dns_failure = \"{mode}\"\n"
        )
    };
    let skip = Setup::start(tempfile::tempdir().unwrap(), None, None, &filter("skip"));
    let client = Client::from(PASS_IP, "good.sender.test");
    let started = Instant::now();
    let reply = skip.send(
        &client,
        "a@sender.test",
        &mail("a@sender.test", "skipped", "x"),
    );
    assert_eq!(reply["code"], 250, "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let header = auth_results(&skip.relayed("skipped"));
    assert!(header.contains("spf=temperror"), "{header}");

    let tempfail = Setup::start(
        tempfile::tempdir().unwrap(),
        None,
        None,
        &filter("tempfail"),
    );
    let started = Instant::now();
    let reply = tempfail.send(
        &client,
        "a@sender.test",
        &mail("a@sender.test", "deferred", "x"),
    );
    assert_eq!(reply["code"], 451, "{reply}");
    assert!(
        reply["reply"].as_str().unwrap().contains("4.4.3"),
        "{reply}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn clamd_finds_eicar_in_an_attachment_and_inside_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let clamd = Clamd::start(&dir.path().join("clamd"));
    let filter = format!(
        "\n[filter]\nauthentication = false\nclamd = \"{}\"\n",
        clamd.addr
    );
    let s = Setup::start(dir, None, Some(clamd), &filter);
    s.rule(
        json!({"name": "virus", "priority": 1, "action": "quarantine", "reason": "virus found",
        "when": {"field": "virus", "op": "contains", "value": EICAR_SIGNATURE}}),
    );
    let client = Client::default();
    let plain = with_attachment("eicar plain", "readme.txt", &eicar());
    assert_eq!(s.send(&client, "a@example.org", &plain)["code"], 250);
    assert_eq!(s.quarantined("eicar plain"), "virus found");
    let zipped = with_attachment(
        "eicar zipped",
        "docs.zip",
        &zip_of(&[("docs/readme.txt", &eicar())]),
    );
    assert_eq!(s.send(&client, "a@example.org", &zipped)["code"], 250);
    assert_eq!(s.quarantined("eicar zipped"), "virus found");
    let clean = with_attachment("clean attachment", "readme.txt", b"just text");
    assert_eq!(s.send(&client, "a@example.org", &clean)["code"], 250);
    s.relayed("clean attachment");
}

#[test]
fn an_unreachable_clamd_tempfails_by_default() {
    let closed = ClosedPort::bind("127.0.0.1");
    let filter = format!(
        "\n[filter]\nauthentication = false\nclamd = \"{}\"\n",
        closed.addr
    );
    let s = Setup::start(tempfile::tempdir().unwrap(), None, None, &filter);
    let reply = s.send(
        &Client::default(),
        "a@example.org",
        &mail("a@example.org", "unscanned", "x"),
    );
    assert_eq!(reply["code"], 451, "{reply}");
}

/// A zip nested `levels` deep around a harmless file.
fn nested_zip(levels: usize) -> Vec<u8> {
    let mut bytes = zip_of(&[("core.txt", b"hello")]);
    for level in 0..levels {
        bytes = zip_of(&[(&format!("level{level}.zip"), &bytes)]);
    }
    bytes
}

/// One deflated block shared by many entries (an overlapping-entry bomb).
fn overlapping_zip() -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    writer.start_file("kernel", options).unwrap();
    writer.write_all(&vec![0u8; 64 * 1024]).unwrap();
    for i in 0..50 {
        writer
            .shallow_copy_file("kernel", &format!("copy{i}"))
            .unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn zip_bombs_quarantine_and_renamed_executables_are_found_by_type() {
    let s = Setup::start(tempfile::tempdir().unwrap(), None, None, "");
    s.rule(
        json!({"name": "bomb", "priority": 1, "action": "quarantine", "reason": "archive bomb",
        "when": {"field": "archive.bomb", "op": "equals", "value": true}}),
    );
    s.rule(json!({"name": "executables", "priority": 2, "action": "quarantine", "reason": "executable",
        "when": {"field": "attachment.type", "op": "in",
                 "value": ["application/x-executable", "application/vnd.microsoft.portable-executable"]}}));
    let client = Client::default();
    let send = |subject: &str, name: &str, bytes: &[u8]| {
        let reply = s.send(
            &client,
            "a@example.org",
            &with_attachment(subject, name, bytes),
        );
        assert_eq!(reply["code"], 250, "{subject}: {reply}");
    };
    send("nested bomb", "archive.zip", &nested_zip(6));
    assert_eq!(s.quarantined("nested bomb"), "archive bomb");
    send("overlap bomb", "archive.zip", &overlapping_zip());
    assert_eq!(s.quarantined("overlap bomb"), "archive bomb");
    send(
        "ratio bomb",
        "zeros.zip",
        &zip_of(&[("zeros.bin", &vec![0u8; 4 << 20])]),
    );
    assert_eq!(s.quarantined("ratio bomb"), "archive bomb");
    send("elf invoice", "invoice.pdf", ELF);
    assert_eq!(s.quarantined("elf invoice"), "executable");
    send("zipped pe", "report.zip", &zip_of(&[("report.pdf", PE)]));
    assert_eq!(s.quarantined("zipped pe"), "executable");
    send("shallow zip", "nested.zip", &nested_zip(2));
    s.relayed("shallow zip");
}
