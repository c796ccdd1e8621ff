//! mxload against a tiny in-test SMTP responder on 127.0.0.1: canned replies,
//! real sockets, and counts kept by the server side so that the client's
//! report can be checked against what actually arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mxmesh_tools::load::message::DOT_PROBE_LINE;
use mxmesh_tools::load::{self, LoadConfig, SessionReuse};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longest command or data line the responder reads; mxload stays far below.
const LINE_MAX_BYTES: u64 = 4096;

/// How the responder answers.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    pipelining: bool,
    banner: &'static str,
    /// A reply starting "421" is followed by hanging up, as servers do.
    mail_reply: &'static str,
    rcpt_reply: &'static str,
    final_reply: &'static str,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            pipelining: true,
            banner: "220 responder.test ESMTP ready\r\n",
            mail_reply: "250 2.1.0 ok\r\n",
            rcpt_reply: "250 2.1.5 ok\r\n",
            final_reply: "250 2.0.0 queued\r\n",
        }
    }
}

/// What the responder saw.
#[derive(Debug, Default)]
struct Counts {
    connections: AtomicUsize,
    /// Message bodies received in full (whatever the final reply).
    messages: AtomicUsize,
    /// Bodies whose un-stuffed form has the dot probe line exactly once, intact.
    probes_intact: AtomicUsize,
    /// Sum of un-stuffed body sizes.
    bytes: AtomicUsize,
    resets: AtomicUsize,
    quits: AtomicUsize,
    /// Commands that arrived before the reply to the previous one was sent
    /// (seen as several lines in one read): proof of pipelining.
    pipelined_batches: AtomicUsize,
}

struct Responder {
    addr: SocketAddr,
    counts: Arc<Counts>,
}

impl Responder {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, behaviour, Arc::clone(&shared)));
            }
        });
        Responder { addr, counts }
    }

    fn count(&self, pick: impl Fn(&Counts) -> &AtomicUsize) -> usize {
        pick(&self.counts).load(Ordering::SeqCst)
    }
}

async fn serve(stream: TcpStream, behaviour: Behaviour, counts: Arc<Counts>) {
    let (read_half, mut writer) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    writer.write_all(behaviour.banner.as_bytes()).await.unwrap();
    if !behaviour.banner.starts_with('2') {
        return;
    }
    let mut rcpt_ok = false;
    loop {
        let Some(line) = read_line(&mut reader).await else {
            return;
        };
        if !reader.buffer().is_empty() {
            counts.pipelined_batches.fetch_add(1, Ordering::SeqCst);
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &str = match verb.as_str() {
            "EHLO" if behaviour.pipelining => {
                "250-responder.test\r\n250-PIPELINING\r\n250 SIZE 100000000\r\n"
            }
            "EHLO" => "250-responder.test\r\n250 SIZE 100000000\r\n",
            "HELO" => "250 responder.test\r\n",
            "MAIL" if behaviour.mail_reply.starts_with("421") => {
                let _ = writer.write_all(behaviour.mail_reply.as_bytes()).await;
                return;
            }
            "MAIL" => behaviour.mail_reply,
            "RCPT" => {
                rcpt_ok = behaviour.rcpt_reply.starts_with('2');
                behaviour.rcpt_reply
            }
            "DATA" if rcpt_ok => {
                writer.write_all(b"354 go ahead\r\n").await.unwrap();
                let Some(body) = read_body(&mut reader).await else {
                    return;
                };
                record_body(&counts, &body);
                rcpt_ok = false;
                behaviour.final_reply
            }
            "DATA" => "554 5.5.1 no valid recipients\r\n",
            "RSET" => {
                counts.resets.fetch_add(1, Ordering::SeqCst);
                rcpt_ok = false;
                "250 2.0.0 ok\r\n"
            }
            "QUIT" => {
                counts.quits.fetch_add(1, Ordering::SeqCst);
                writer.write_all(b"221 2.0.0 bye\r\n").await.unwrap();
                return;
            }
            _ => "500 5.5.2 what?\r\n",
        };
        if writer.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One CRLF-terminated line without its CRLF; `None` at EOF.
async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut line = Vec::new();
    let read = (&mut *reader)
        .take(LINE_MAX_BYTES)
        .read_until(b'\n', &mut line)
        .await
        .ok()?;
    if read == 0 {
        return None;
    }
    let line = line
        .strip_suffix(b"\r\n")
        .expect("client lines end in CRLF");
    Some(String::from_utf8(line.to_vec()).unwrap())
}

/// The message after DATA, un-stuffed, up to the lone "." line.
async fn read_body(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader).await?;
        if line == "." {
            return Some(body);
        }
        body.extend_from_slice(line.strip_prefix('.').unwrap_or(&line).as_bytes());
        body.extend_from_slice(b"\r\n");
    }
}

fn record_body(counts: &Counts, body: &[u8]) {
    counts.messages.fetch_add(1, Ordering::SeqCst);
    counts.bytes.fetch_add(body.len(), Ordering::SeqCst);
    let text = String::from_utf8_lossy(body);
    let dotted: Vec<&str> = text
        .split("\r\n")
        .filter(|line| line.starts_with('.'))
        .collect();
    if dotted == [DOT_PROBE_LINE] {
        counts.probes_intact.fetch_add(1, Ordering::SeqCst);
    }
}

fn config(addr: SocketAddr, sessions: usize, messages: usize) -> LoadConfig {
    LoadConfig {
        target: addr.to_string(),
        sessions,
        messages,
        size_bytes: 3000,
        from: "load@mxload.test".to_string(),
        rcpt: "user@example.com".to_string(),
        ehlo_name: "mxload.test".to_string(),
        session_reuse: SessionReuse::Reuse,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn pipelined_sessions_are_reused_and_every_message_arrives() {
    let responder = Responder::start(Behaviour::default()).await;
    let report = load::run(&config(responder.addr, 5, 57)).await.unwrap();

    assert_eq!(
        (
            report.accepted,
            report.tempfailed,
            report.rejected,
            report.errors
        ),
        (57, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(responder.count(|c| &c.messages), 57);
    assert_eq!(
        responder.count(|c| &c.probes_intact),
        57,
        "dot-stuffing round trip"
    );
    assert_eq!(
        responder.count(|c| &c.bytes),
        57 * 3000,
        "every message has the requested size"
    );
    assert_eq!(
        responder.count(|c| &c.connections),
        5,
        "one connection per session"
    );
    assert!(
        responder.count(|c| &c.pipelined_batches) >= 57,
        "MAIL, RCPT and DATA arrive together"
    );
    assert_eq!(responder.count(|c| &c.resets), 0);
    assert!(report.latency.is_some());
    assert_eq!(report.accepted_bytes, 57 * 3000);
    assert!(!report.all_failed());
    // The responder counts QUIT before its 221, and mxload waits for the 221.
    assert_eq!(responder.count(|c| &c.quits), 5);
}

#[tokio::test]
async fn one_session_per_message_without_pipelining() {
    let responder = Responder::start(Behaviour {
        pipelining: false,
        ..Behaviour::default()
    })
    .await;
    let config = LoadConfig {
        session_reuse: SessionReuse::NewPerMessage,
        ..config(responder.addr, 3, 12)
    };
    let report = load::run(&config).await.unwrap();

    assert_eq!(report.accepted, 12, "{report:?}");
    assert_eq!(responder.count(|c| &c.messages), 12);
    assert_eq!(responder.count(|c| &c.probes_intact), 12);
    assert_eq!(responder.count(|c| &c.connections), 12);
    assert_eq!(
        responder.count(|c| &c.pipelined_batches),
        0,
        "no pipelining when not offered"
    );
    assert_eq!(responder.count(|c| &c.quits), 12);
}

#[tokio::test]
async fn refused_recipients_are_counted_as_rejected_and_the_session_reset() {
    let responder = Responder::start(Behaviour {
        rcpt_reply: "550 5.7.1 relay denied\r\n",
        ..Behaviour::default()
    })
    .await;
    let report = load::run(&config(responder.addr, 2, 9)).await.unwrap();

    assert_eq!(
        (report.accepted, report.rejected, report.errors),
        (0, 9, 0),
        "{report:?}"
    );
    assert!(report.all_failed());
    assert_eq!(report.latency, None);
    assert_eq!(
        report.first_refusal.as_deref(),
        Some("RCPT TO: 550 5.7.1 relay denied")
    );
    assert_eq!(responder.count(|c| &c.messages), 0);
    assert_eq!(responder.count(|c| &c.resets), 9);
    assert_eq!(
        responder.count(|c| &c.connections),
        2,
        "a refusal does not cost the session"
    );
}

#[tokio::test]
async fn temporary_failure_after_data_is_counted_as_tempfailed() {
    let responder = Responder::start(Behaviour {
        final_reply: "451 4.3.0 try later\r\n",
        ..Behaviour::default()
    })
    .await;
    let report = load::run(&config(responder.addr, 3, 10)).await.unwrap();

    assert_eq!((report.accepted, report.tempfailed), (0, 10), "{report:?}");
    assert_eq!(
        responder.count(|c| &c.messages),
        10,
        "the bodies were sent in full"
    );
    assert_eq!(
        report.first_refusal.as_deref(),
        Some("end of data: 451 4.3.0 try later")
    );
}

#[tokio::test]
async fn a_refusing_banner_is_a_tempfail_per_message() {
    let responder = Responder::start(Behaviour {
        banner: "421 4.3.2 too busy\r\n",
        ..Behaviour::default()
    })
    .await;
    let report = load::run(&config(responder.addr, 2, 4)).await.unwrap();

    assert_eq!(report.tempfailed, 4, "{report:?}");
    assert_eq!(
        report.first_refusal.as_deref(),
        Some("banner: 421 4.3.2 too busy")
    );
}

#[tokio::test]
async fn a_server_closing_with_421_mid_transaction_is_a_tempfail() {
    let responder = Responder::start(Behaviour {
        mail_reply: "421 4.3.2 shutting down\r\n",
        ..Behaviour::default()
    })
    .await;
    let report = load::run(&config(responder.addr, 2, 6)).await.unwrap();

    assert_eq!((report.tempfailed, report.errors), (6, 0), "{report:?}");
    assert_eq!(
        report.first_refusal.as_deref(),
        Some("MAIL FROM: 421 4.3.2 shutting down")
    );
    assert_eq!(
        responder.count(|c| &c.connections),
        6,
        "a closed session is replaced"
    );
    assert_eq!(
        responder.count(|c| &c.resets),
        0,
        "no RSET into a closed session"
    );
}

#[tokio::test]
async fn garbage_from_the_server_is_an_error() {
    let responder = Responder::start(Behaviour {
        banner: "hello there\r\n",
        ..Behaviour::default()
    })
    .await;
    let report = load::run(&config(responder.addr, 1, 3)).await.unwrap();

    assert_eq!(report.errors, 3, "{report:?}");
    let first_error = report.first_error.unwrap();
    assert!(
        first_error.starts_with("banner: malformed reply line"),
        "{first_error}"
    );
}

#[tokio::test]
async fn an_unreachable_server_makes_every_message_an_error() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let report = load::run(&config(addr, 4, 8)).await.unwrap();

    assert_eq!(report.errors, 8, "{report:?}");
    assert!(report.all_failed());
    let first_error = report.first_error.unwrap();
    assert!(
        first_error.starts_with(&format!("connect to {addr}: ")),
        "{first_error}"
    );
}

#[tokio::test]
async fn more_sessions_than_messages_opens_only_what_is_needed() {
    let responder = Responder::start(Behaviour::default()).await;
    let report = load::run(&config(responder.addr, 10, 3)).await.unwrap();

    assert_eq!(report.accepted, 3);
    assert_eq!(responder.count(|c| &c.connections), 3);
}

#[tokio::test]
async fn the_binary_prints_one_json_object_and_exits_by_outcome() {
    let responder = Responder::start(Behaviour::default()).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxload"))
        .args([
            "--to",
            &responder.addr.to_string(),
            "--sessions",
            "4",
            "--messages",
            "20",
            "--size",
            "2048",
        ])
        .arg("--json")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "messages",
        "sessions",
        "size",
        "elapsed_s",
        "accepted",
        "tempfailed",
        "rejected",
        "errors",
        "msgs_per_s",
        "mb_per_s",
    ] {
        assert!(json[key].is_number(), "{key} in {json}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            json["latency_ms"][key].is_number(),
            "latency_ms.{key} in {json}"
        );
    }
    assert_eq!(json["accepted"], 20);
    assert_eq!(json["size"], 2048);
    assert_eq!(responder.count(|c| &c.messages), 20);

    let refusing = Responder::start(Behaviour {
        rcpt_reply: "550 5.1.1 no such user\r\n",
        ..Behaviour::default()
    })
    .await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxload"))
        .args(["--to", &refusing.addr.to_string(), "--messages", "5"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "every message failed");
    let human = String::from_utf8_lossy(&output.stdout);
    assert!(human.contains("rejected     5"), "{human}");
}

#[tokio::test]
async fn the_binary_names_a_bad_flag() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxload"))
        .args(["--to", "nowhere", "--messages", "5"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--to \"nowhere\""), "{stderr}");
}
