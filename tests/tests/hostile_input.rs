//! Hostile input against a real node (issue 7, "Bad input"): SMTP smuggling end to end
//! against a deliberately lenient downstream, recipient floods, STARTTLS abuse, slow and
//! idle clients, and admin API floods, oversized bodies and path tricks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode, TOKEN, fixture, self_signed, wait_for};
use serde_json::Value;

/// The nine near misses of `<CRLF>.<CRLF>` (issue 7, bad input §1).
const SMUGGLING_VARIANTS: [&[u8]; 9] = [
    b"\n.\n",
    b"\n.\r",
    b"\r.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
];
const SMUGGLED: &[u8] =
    b"MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nforged\r\n";

/// A line-oriented SMTP client on a raw socket.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        c.expect("220");
        c
    }

    /// The next whole reply (all continuation lines), or "" at EOF.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    fn expect(&mut self, code: &str) -> String {
        let r = self.reply();
        assert!(r.starts_with(code), "expected {code}, got {r:?}");
        r
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    fn cmd(&mut self, line: &str, code: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.expect(code)
    }
}

/// The lenient receiver fixture: ends DATA at any `<CR|LF>.<CR|LF>` and drops NULs.
struct Lenient {
    addr: SocketAddr,
    file: std::path::PathBuf,
    child: Child,
}

impl Lenient {
    fn start(dir: &Path) -> Lenient {
        Lenient::start_script("lenient_sink.py", dir.join("lenient.jsonl"), &[])
    }

    /// Starts a fixture script that takes `--port 0 --file F` (plus `extra`), appends one
    /// JSON line per transaction to F, and prints `READY PORT` once listening.
    fn start_script(script: &str, file: PathBuf, extra: &[&std::ffi::OsStr]) -> Lenient {
        let mut child = Command::new("python3")
            .arg(fixture(script))
            .args(["--port", "0", "--file"])
            .arg(&file)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("{script}: {line:?}"));
        Lenient {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            file,
            child,
        }
    }

    fn transactions(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Lenient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message per variant, each with a smuggled transaction after the near miss.
fn smuggling_session(addr: SocketAddr) -> Vec<String> {
    let mut c = Client::connect(addr);
    c.cmd("EHLO attacker.test", "250");
    let mut replies = Vec::new();
    for (i, variant) in SMUGGLING_VARIANTS.iter().enumerate() {
        c.cmd("MAIL FROM:<sender@remote.test>", "250");
        c.cmd("RCPT TO:<user@example.com>", "250");
        c.cmd("DATA", "354");
        let mut data = format!("Subject: variant {i}\r\n\r\nreal").into_bytes();
        data.extend_from_slice(variant);
        data.extend_from_slice(SMUGGLED);
        data.extend_from_slice(b"\r\n.\r\n");
        c.send(&data);
        replies.push(c.reply());
    }
    c.cmd("QUIT", "221");
    replies
}

/// The same messages in one pipelined write, replies read until the server closes (the
/// lenient fixture answers the smuggled commands too, so replies cannot be paired).
fn blast(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let mut all = b"EHLO attacker.test\r\n".to_vec();
    for (i, variant) in SMUGGLING_VARIANTS.iter().enumerate() {
        all.extend_from_slice(
            format!("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<user@example.com>\r\nDATA\r\nSubject: variant {i}\r\n\r\nreal").as_bytes(),
        );
        all.extend_from_slice(variant);
        all.extend_from_slice(SMUGGLED);
        all.extend_from_slice(b"\r\n.\r\n");
    }
    all.extend_from_slice(b"QUIT\r\n");
    c.send(&all);
    let mut rest = Vec::new();
    let _ = c.r.read_to_end(&mut rest);
}

#[test]
fn smuggling_never_reaches_even_a_lenient_downstream() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture really is vulnerable: fed directly, it takes the smuggled mail.
    let direct = Lenient::start(&dir.path().join("direct").tap_mkdir());
    blast(direct.addr);
    let forged = direct
        .transactions()
        .iter()
        .filter(|t| t["from"].as_str().unwrap_or("").contains("evil.test"))
        .count();
    assert!(
        forged >= 8,
        "the lenient fixture should be fooled: {forged}"
    );

    let lenient = Lenient::start(&dir.path().join("behind").tap_mkdir());
    let node = Node::start(&dir.path().join("mx1"), &NodeOpts::new(lenient.addr));
    let replies = smuggling_session(node.smtp);
    for (variant, reply) in SMUGGLING_VARIANTS.iter().zip(&replies) {
        let want = if variant.contains(&0) {
            "554 5.6.0"
        } else {
            "250"
        };
        assert!(reply.starts_with(want), "{variant:?}: {reply:?}");
    }
    // 8 messages accepted, 8 relayed, none forged — neither inbound nor on relay output.
    let got = wait_for(Duration::from_secs(20), || {
        let t = lenient.transactions();
        (t.len() >= 8).then_some(t)
    })
    .unwrap_or_else(|| panic!("relayed: {:?}", lenient.transactions()));
    std::thread::sleep(Duration::from_secs(2));
    let all = lenient.transactions();
    assert_eq!(all.len(), 8, "{all:?}");
    assert_eq!(got.len(), 8);
    for t in &all {
        assert_eq!(t["from"], "<sender@remote.test>", "{t}");
        assert!(t["data"].as_str().unwrap().contains("forged"), "{t}");
    }
    // Relayed, whatever their spam score made of them (accepted or tagged).
    let (_, stats) = node.api("GET", "/api/v1/stats", None);
    let passed = |k: &str| stats["total"][k].as_u64().unwrap_or(0);
    assert_eq!(passed("accepted") + passed("tagged"), 8, "{stats}");
    assert_eq!(stats["total"]["relayed"], 8, "{stats}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn recipient_floods_get_452_beyond_the_limit_and_100_always_pass() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(&dir.path().join("mx1"), &NodeOpts::new(sink.addr));
    let mut c = Client::connect(node.smtp);
    c.cmd("EHLO flood.test", "250");
    c.cmd("MAIL FROM:<a@remote.test>", "250");
    // Default limit 1000: the first 100 (RFC 5321 §4.5.3.1.8) and up to 1000 pass.
    for i in 0..1000 {
        c.cmd(&format!("RCPT TO:<u{i}@example.com>"), "250");
    }
    for i in 1000..1010 {
        c.cmd(&format!("RCPT TO:<u{i}@example.com>"), "452 4.5.3");
    }
    c.cmd("DATA", "354");
    c.send(b"Subject: flood\r\n\r\nx\r\n.\r\n");
    c.expect("250");
    let m = sink.wait_count(1, Duration::from_secs(20));
    assert_eq!(m[0].0["to"].as_array().unwrap().len(), 1000);
}

#[test]
fn starttls_twice_and_tls_garbage_are_refused_and_the_node_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let (cert, key) = self_signed(&dir.path().join("tls"), "mx1.example.com");
    let mut o = NodeOpts::new(sink.addr);
    o.smtp_extra = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let node = Node::start(&dir.path().join("mx1"), &o);

    // Garbage instead of a ClientHello: the handshake fails and the connection closes.
    for garbage in [
        &b"\x16\x03\x01\xff\xff garbage"[..],
        b"EHLO not-tls\r\n",
        &[0u8; 70_000],
    ] {
        let mut c = Client::connect(node.smtp);
        c.cmd("EHLO x.test", "250");
        c.cmd("STARTTLS", "220");
        let _ = c.w.write_all(garbage);
        let mut rest = Vec::new();
        let _ = c.r.read_to_end(&mut rest);
        assert!(
            !String::from_utf8_lossy(&rest).contains("250"),
            "no SMTP after a failed handshake: {rest:?}"
        );
    }

    // STARTTLS inside TLS: 503, session goes on (Python's smtplib does the TLS).
    let script = r#"
import smtplib, ssl, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)
s.ehlo("x.test")
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.ehlo("x.test")
print("advertised", "starttls" in s.esmtp_features)
print("again", s.docmd("STARTTLS")[0])
s.sendmail("a@remote.test", ["u@example.com"], "Subject: after\r\n\r\nok\r\n")
print("sent")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &node.smtp.ip().to_string()])
        .arg(node.smtp.port().to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("advertised False"), "{text} {:?}", out.stderr);
    assert!(text.contains("again 503"), "{text}");
    assert!(text.contains("sent"), "{text}");
    sink.wait_count(1, Duration::from_secs(20));
}

#[test]
fn slow_and_idle_clients_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut o = NodeOpts::new(sink.addr);
    o.smtp_extra =
        "command_timeout_secs = 3\nsession_timeout_secs = 4\nmax_connections = 500".into();
    let node = Node::start(&dir.path().join("mx1"), &o);

    // 1 byte per second: the session deadline cuts it off, with a 421.
    let mut c = Client::connect(node.smtp);
    let started = Instant::now();
    let mut cut = String::new();
    for b in b"EHLO slow.client.test\r\n".iter().cycle() {
        if c.w.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
        c.w.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = c.w.peek(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains("421")
        {
            cut = String::from_utf8_lossy(&buf[..n]).to_string();
            break;
        }
        c.w.set_nonblocking(false).unwrap();
    }
    assert!(cut.contains("421"), "slow client not cut off: {cut:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // 10,000 idle connections: at most 500 at a time get a session (and lose it at the idle
    // timeout), the rest get 421 at once; memory stays bounded; every socket is closed by
    // the node within the timeouts; then a real client is served again.
    let before = rss_kb(&node);
    let mut idle: Vec<(TcpStream, Vec<u8>, bool)> = (0..10_000)
        .map(|_| {
            let s = TcpStream::connect(node.smtp).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, Vec::new(), false)
        })
        .collect();
    let mut peak = before;
    let mut peak_sessions = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && idle.iter().any(|(_, _, closed)| !closed) {
        for (s, got, closed) in idle.iter_mut().filter(|(_, _, c)| !c) {
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => *closed = true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => *closed = true,
            }
        }
        peak = peak.max(rss_kb(&node));
        let in_session = idle
            .iter()
            .filter(|(_, g, c)| !c && g.starts_with(b"220") && !g.windows(4).any(|w| w == b"421 "))
            .count();
        peak_sessions = peak_sessions.max(in_session);
        std::thread::sleep(Duration::from_millis(100));
    }
    let busy = idle
        .iter()
        .filter(|(_, g, _)| g.starts_with(b"421 4.7.0"))
        .count();
    let open = idle.iter().filter(|(_, _, c)| !c).count();
    assert!(
        peak_sessions <= 500,
        "concurrent sessions beyond max_connections: {peak_sessions}"
    );
    assert!(busy > 0, "no connection was refused as busy");
    assert_eq!(open, 0, "connections the node never closed");
    assert!(
        peak < before + 200 * 1024,
        "RSS {before} kB → peak {peak} kB with 10,000 idle connections"
    );
    drop(idle);
    let mut c = Client::connect(node.smtp);
    c.cmd("EHLO after.test", "250");
}

/// Resident memory of the node process, from /proc.
fn rss_kb(node: &Node) -> u64 {
    let pid = node.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// The test node's admin rate limit: a bucket of this many requests per client address,
/// refilled so slowly (one request per 1,000 s) that no token comes back while the test
/// runs, however slow the machine: the flood's outcome is exact, not a race.
const API_BURST: usize = 20;
const API_RATE_PER_SEC: f64 = 0.001;
/// Requests in the flood.
const FLOOD: usize = 100;

/// A client whose connections come from `ip` (any 127/8 address reaches the node on
/// loopback), so it has its own rate-limit bucket.
fn client_from(ip: [u8; 4]) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

#[test]
fn admin_api_oversized_bodies_floods_and_path_tricks() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut o = NodeOpts::new(sink.addr);
    o.admin_extra = format!("rate_per_sec = {API_RATE_PER_SEC}\nrate_burst = {API_BURST}");
    let node = Node::start(&dir.path().join("mx1"), &o);
    // Ten requests from 127.0.0.1, within its bucket.
    let client = client_from([127, 0, 0, 1]);

    // 2 MiB of JSON: 413, and no rule was created.
    let big = format!(
        "{{\"name\":\"x\",\"priority\":1,\"action\":\"accept\",\"when\":{{\"field\":\"subject\",\"op\":\"contains\",\"value\":\"{}\"}}}}",
        "a".repeat(2 << 20)
    );
    let r = client
        .post(node.url("/api/v1/rules"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(
        node.api("GET", "/api/v1/rules", None).1["rules"],
        serde_json::json!([])
    );

    // Path tricks: never a file, never another route, never a 500. (A new client: the
    // server closed the connection of the 413 without reading the body.)
    let client = client_from([127, 0, 0, 1]);
    for path in [
        "/api/v1/../../etc/passwd",
        "/api/v1/rules/..%2f..%2fetc%2fpasswd",
        "/api/v1/quarantine/%2e%2e%2f%2e%2e%2fetc%2fpasswd/raw",
        "/api/v1/rules/%00",
        "/api//v1/rules",
        "/API/V1/RULES",
        "/api/v1/nodes/..%2fmx1/drain",
        "/api/v1/quarantine/",
    ] {
        let r = client
            .get(format!("http://{}{path}", node.admin))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        assert!(matches!(status, 400 | 404 | 405), "{path}: {status} {body}");
        assert!(!body.contains("root:"), "{path}: {body}");
    }

    // A flood without a token from 127.0.0.2: exactly its bucket gets through (and is
    // refused by authentication), everything after it is throttled with 429 and a
    // Retry-After that follows the configured rate.
    let flooder = client_from([127, 0, 0, 2]);
    let mut statuses = std::collections::BTreeMap::new();
    let mut retry_after = None;
    for _ in 0..FLOOD {
        let r = flooder.get(node.url("/api/v1/stats")).send().unwrap();
        if r.status().as_u16() == 429 {
            retry_after = r.headers().get("retry-after").cloned();
        }
        *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
    }
    let expected = std::collections::BTreeMap::from([(401, API_BURST), (429, FLOOD - API_BURST)]);
    assert_eq!(statuses, expected);
    let retry_after: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(
        (2..=1000).contains(&retry_after),
        "one token per 1000 s: Retry-After {retry_after}"
    );
    // The token does not get around the limit (it is checked before authentication) …
    let r = flooder
        .get(node.url("/api/v1/stats"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    // … and other clients are served meanwhile: the bucket is the flooder's own.
    let r = client_from([127, 0, 0, 3])
        .get(node.url("/api/v1/stats"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn size_lies_and_endless_lines_get_552_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut o = NodeOpts::new(sink.addr);
    o.smtp_extra = "max_message_size = 5000000".into();
    let node = Node::start(&dir.path().join("mx1"), &o);
    let before = rss_kb(&node);
    let chunk = vec![b'x'; 1 << 20];

    // A 10 MB command line: refused, session usable.
    let mut c = Client::connect(node.smtp);
    c.cmd("EHLO liar.test", "250");
    for _ in 0..10 {
        c.send(&chunk);
    }
    c.send(b"\r\n");
    c.expect("500 5.5.2");
    c.cmd("NOOP", "250");

    // SIZE=10, then 20 MB: 552, nothing stored.
    c.cmd("MAIL FROM:<a@remote.test> SIZE=10", "250");
    c.cmd("RCPT TO:<u@example.com>", "250");
    c.cmd("DATA", "354");
    for _ in 0..20 {
        c.send(b"line\r\n");
        c.send(&chunk);
        c.send(b"\r\n");
    }
    c.send(b".\r\n");
    c.expect("552 5.3.4");

    // A 100 MB line with no newline inside DATA: 552 at the end, memory bounded.
    c.cmd("MAIL FROM:<a@remote.test>", "250");
    c.cmd("RCPT TO:<u@example.com>", "250");
    c.cmd("DATA", "354");
    for _ in 0..100 {
        c.send(&chunk);
    }
    c.send(b"\r\n.\r\n");
    c.expect("552 5.3.4");
    c.cmd("QUIT", "221");
    let after = rss_kb(&node);
    assert!(
        after < before + 64 * 1024,
        "RSS {before} kB → {after} kB after 130 MB of hostile input"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(sink.messages().is_empty());
    let (_, stats) = node.api("GET", "/api/v1/stats", None);
    assert_eq!(stats["total"]["accepted"], 0, "{stats}");
}

#[test]
fn address_tricks_get_consistent_answers_and_never_relay_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(&dir.path().join("mx1"), &NodeOpts::new(sink.addr));
    let long_local = format!("<{}@example.com>", "l".repeat(65));
    let long_domain = format!("<u@{}.example.com>", "d".repeat(250));
    let tricks = [
        "<user%victim.test@example.com>",
        "<user@victim.test@example.com>",
        "<\"user@victim.test\"@example.com>",
        "<victim.test!user@example.com>",
        "<@example.com:user@victim.test>",
        "<@victim.test:user@example.com>",
        "<user@[127.0.0.1]>",
        "<user@[IPv6:::1]>",
        "<\"quoted local\"@example.com>",
        "<user@example.com.>",
        "<user@victim.test>",
        "<user@EXAMPLE.COM>",
        "<postmaster>",
        &long_local,
        &long_domain,
        "user@example.com",
        "<user@example.com",
    ];
    let answers = |_: usize| -> Vec<String> {
        let mut c = Client::connect(node.smtp);
        c.cmd("EHLO tricks.test", "250");
        let out = tricks
            .iter()
            .map(|t| {
                c.cmd("RSET", "250");
                c.cmd("MAIL FROM:<a@remote.test>", "250");
                c.send(format!("RCPT TO:{t}\r\n").as_bytes());
                let r = c.reply();
                if r.starts_with("250") {
                    c.cmd("DATA", "354");
                    c.send(b"Subject: trick\r\n\r\nx\r\n.\r\n");
                    c.expect("250");
                }
                r[..3].to_string()
            })
            .collect();
        c.cmd("QUIT", "221");
        out
    };
    let first = answers(0);
    assert_eq!(
        first,
        answers(1),
        "the same address always gets the same answer"
    );
    for (t, code) in tricks.iter().zip(&first) {
        eprintln!("{t} → {code}");
    }
    let accepted = first.iter().filter(|c| *c == "250").count();
    let delivered = sink.wait_count(accepted * 2, Duration::from_secs(30));
    for (env, _) in &delivered {
        for rcpt in env["to"].as_array().unwrap() {
            let r = rcpt.as_str().unwrap().to_ascii_lowercase();
            let domain = r.rsplit('@').next().unwrap().trim_end_matches('.');
            assert!(
                domain == "example.com" || domain == "example.org",
                "a recipient outside our domains was relayed: {r}"
            );
        }
    }
    // The relay only ever talks to the configured downstream; these are refused outright.
    for (t, code) in tricks.iter().zip(&first) {
        if t.contains("victim.test>") || t.contains("[127") || t.contains("[IPv6") {
            assert_ne!(code, "250", "{t} must not be accepted");
        }
    }
}

#[test]
fn injected_starttls_replies_from_downstream_are_never_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(&dir.path().join("tls"), "inject.test");
    let inject = Lenient::start_script(
        "inject_sink.py",
        dir.path().join("inject.jsonl"),
        &[
            "--cert".as_ref(),
            cert.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ],
    );
    let downstream = inject.addr;
    let node = Node::start(&dir.path().join("mx1"), &NodeOpts::new(downstream));
    for i in 0..3 {
        let mut c = Client::connect(node.smtp);
        c.cmd("EHLO c.test", "250");
        c.cmd("MAIL FROM:<a@remote.test>", "250");
        c.cmd(&format!("RCPT TO:<u{i}@example.com>"), "250");
        c.cmd("DATA", "354");
        c.send(format!("Subject: {i}\r\n\r\nbody\r\n.\r\n").as_bytes());
        c.expect("250");
        c.cmd("QUIT", "221");
    }
    let got = wait_for(Duration::from_secs(30), || {
        let t = inject.transactions();
        (t.len() >= 3).then_some(t)
    })
    .unwrap_or_else(|| panic!("delivered: {:?}\n{}", inject.transactions(), node.log()));
    assert_eq!(got.len(), 3, "{got:?}");
    for t in &got {
        assert_eq!(t["tls"], true, "delivered over TLS only: {t}");
        assert!(
            t["from"].as_str().unwrap().starts_with("<a@remote.test>"),
            "{t}"
        );
        assert_eq!(t["rcpt"].as_array().unwrap().len(), 1, "{t}");
    }
}
