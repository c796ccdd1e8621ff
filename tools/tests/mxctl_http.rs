//! The mxctl binary against a tiny in-test HTTP responder on 127.0.0.1: what
//! goes on the wire (method, path, token, body) and what the operator sees
//! (stdout, stderr, exit status).

mod support;

use std::process::Command;

use support::*;

#[test]
fn stats_sends_the_token_and_prints_a_row_per_node_and_a_total() {
    let answer =
        r#"{"nodes":{"mx1":{"received":2,"relayed":1}},"total":{"received":2,"relayed":1}}"#;
    let (addr, seen) = respond_once(json_answer(200, answer));
    let output = mxctl(addr, &["stats"], b"");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "NODE   RECEIVED  RELAYED\nmx1           2        1\nTOTAL         2        1\n"
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
fn an_answer_of_another_shape_is_shown_as_pretty_json() {
    let (addr, _seen) = respond_once(json_answer(200, r#"{"total":{"received":2}}"#));
    let output = mxctl(addr, &["stats"], b"");
    assert_eq!(
        text(&output.stdout),
        "{\n  \"total\": {\n    \"received\": 2\n  }\n}\n"
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
    // Bound but never listening: connections are refused, and no other process can take
    // the port while the test runs.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = closed.local_addr().unwrap();
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
        &["learn"],
        &["forget"],
        &["bayes"],
        &["classify"],
        &["settings"],
        &["settings", "spam"],
        &["settings", "spam", "set"],
        &["quarantine", "learn"],
        &["quarantine", "release"],
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
