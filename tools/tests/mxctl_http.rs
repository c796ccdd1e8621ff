//! The mxctl binary against a tiny in-test HTTP responder on 127.0.0.1: what
//! goes on the wire (method, path, token, body) and what the operator sees
//! (stdout, stderr, exit status).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

/// One request as the responder saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    target: String,
    /// Header names lower-cased.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A canned answer.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn json_answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
    }
}

/// Serves exactly one request with `answer` on a fresh port, and hands back
/// what it saw.
fn respond_once(answer: Answer) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let seen = serve(stream, &answer);
        sender.send(seen).unwrap();
    });
    (addr, receiver)
}

fn serve(stream: TcpStream, answer: &Answer) -> Seen {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap().to_string();
    let target = parts.next().unwrap().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();

    let mut writer = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    writer.write_all(head.as_bytes()).unwrap();
    writer.write_all(&answer.body).unwrap();
    Seen {
        method,
        target,
        headers,
        body,
    }
}

fn mxctl(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxctl"))
        .env("MXMESH_URL", format!("http://{addr}"))
        .env("MXMESH_TOKEN", "s3cret")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn stats_sends_the_token_and_prints_pretty_json() {
    let (addr, seen) = respond_once(json_answer(200, r#"{"total":{"received":2}}"#));
    let output = mxctl(addr, &["stats"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "{\n  \"total\": {\n    \"received\": 2\n  }\n}\n"
    );
    let seen = seen.recv().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/api/v1/stats")
    );
    assert_eq!(
        seen.headers.get("authorization").map(String::as_str),
        Some("Bearer s3cret")
    );
}

#[test]
fn compact_output_on_request() {
    let (addr, _seen) = respond_once(json_answer(200, r#"{ "self": "mx1", "members": [] }"#));
    let output = mxctl(addr, &["cluster", "--json"], b"");
    let expected = serde_json::json!({"self": "mx1", "members": []}).to_string();
    assert_eq!(text(&output.stdout), format!("{expected}\n"));
}

#[test]
fn health_sends_no_token() {
    let (addr, seen) = respond_once(json_answer(200, r#"{"status":"ok"}"#));
    let output = mxctl(addr, &["health"], b"");
    assert!(output.status.success());
    let seen = seen.recv().unwrap();
    assert_eq!(seen.target, "/healthz");
    assert_eq!(seen.headers.get("authorization"), None);
}

#[test]
fn rule_from_stdin_is_posted_as_json() {
    let (addr, seen) = respond_once(json_answer(201, r#"{"id":"r-1","name":"block"}"#));
    let rule = br#"{"name":"block","action":"reject","when":{"field":"subject","op":"contains","value":"x"}}"#;
    let output = mxctl(addr, &["rules", "add", "--file", "-"], rule);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let seen = seen.recv().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", "/api/v1/rules")
    );
    assert_eq!(
        seen.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        sent,
        serde_json::from_slice::<serde_json::Value>(rule).unwrap()
    );
}

#[test]
fn server_errors_go_to_stderr_with_status_and_exit_1() {
    let (addr, seen) = respond_once(json_answer(404, r#"{"error":"no rule with id r-404"}"#));
    let output = mxctl(addr, &["rules", "get", "r-404"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "");
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        format!(
            "mxctl: GET http://{addr}/api/v1/rules/r-404: HTTP 404 Not Found: no rule with id r-404\n"
        )
    );
    assert_eq!(seen.recv().unwrap().method, "GET");
}

#[test]
fn raw_message_is_written_unchanged() {
    let message = b"Subject: spam\r\n\r\n{not json}\r\n".to_vec();
    let (addr, seen) = respond_once(Answer {
        status: 200,
        content_type: "message/rfc822",
        body: message.clone(),
    });
    let output = mxctl(addr, &["quarantine", "raw", "q-7"], b"");
    assert!(output.status.success());
    assert_eq!(output.stdout, message);
    assert_eq!(seen.recv().unwrap().target, "/api/v1/quarantine/q-7/raw");
}

#[test]
fn quarantine_list_sends_filters_as_query() {
    let (addr, seen) = respond_once(json_answer(200, r#"{"items":[],"next":null}"#));
    let output = mxctl(
        addr,
        &[
            "quarantine",
            "list",
            "--sender",
            "a@b.example",
            "--limit",
            "5",
        ],
        b"",
    );
    assert!(output.status.success());
    assert_eq!(
        seen.recv().unwrap().target,
        "/api/v1/quarantine?sender=a%40b.example&limit=5"
    );
}

#[test]
fn an_unreachable_node_is_named() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let output = mxctl(addr, &["queue", "flush"], b"");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("mxctl: POST http://{addr}/api/v1/queue/flush: ")),
        "{stderr}"
    );
}

#[test]
fn every_command_has_help() {
    let groups: &[&[&str]] = &[
        &[],
        &["rules"],
        &["rules", "add"],
        &["rules", "update"],
        &["quarantine"],
        &["quarantine", "list"],
        &["quarantine", "raw"],
        &["cluster"],
        &["stats"],
        &["trace"],
        &["queue"],
        &["queue", "flush"],
        &["node"],
        &["node", "drain"],
        &["health"],
    ];
    for args in groups {
        let output = Command::new(env!("CARGO_BIN_EXE_mxctl"))
            .args(*args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?} --help");
        assert!(text(&output.stdout).contains("Usage: mxctl"), "{args:?}");
    }
}
