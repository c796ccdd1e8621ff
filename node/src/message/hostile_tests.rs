//! Hostile MIME through the facts step (issue 7, bad input §5): deep nesting, header
//! bombs, malformed boundaries, base64/QP garbage and RFC 2047 abuse. Each must finish
//! quickly on the default 2 MiB thread stack, never panic, and keep the facts within the
//! named bounds.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{ATTACHMENTS_MAX, BODY_TEXT_MAX_BYTES, EnvelopeFacts, HEADERS_MAX, facts};
use crate::filter::MessageFacts;
use crate::message::archive::ArchiveLimits;

/// A hostile message of up to the default size limit must be done within this (debug build).
const FACTS_TIME_MAX: Duration = Duration::from_secs(20);

/// Runs `facts` on a fresh thread with the default stack, as a runtime worker would.
fn run(raw: Vec<u8>) -> MessageFacts {
    let to = vec!["user@example.com".to_string()];
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let started = Instant::now();
            let env = EnvelopeFacts {
                from: "a@example.org",
                to: &to,
                helo: "h",
                client_ip: IpAddr::from([127, 0, 0, 1]),
                reverse_name: None,
            };
            let f = facts(&raw, &env, &ArchiveLimits::default());
            assert!(
                started.elapsed() < FACTS_TIME_MAX,
                "took {:?}",
                started.elapsed()
            );
            assert!(f.headers.len() <= HEADERS_MAX);
            assert!(f.body_text.len() <= BODY_TEXT_MAX_BYTES + 4);
            assert!(f.attachments.len() <= ATTACHMENTS_MAX);
            f
        })
        .unwrap()
        .join()
        .expect("facts must not panic or overflow the stack")
}

fn nested(depth: usize) -> Vec<u8> {
    let mut m = String::from("From: a@example.org\r\nSubject: nest\r\nMIME-Version: 1.0\r\n");
    for i in 0..depth {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for i in (0..depth).rev() {
        m.push_str(&format!("--b{i}--\r\n"));
    }
    m.into_bytes()
}

#[test]
fn mime_nesting_of_100_1000_and_100000_levels() {
    for depth in [100, 1_000, 100_000] {
        let f = run(nested(depth));
        assert_eq!(f.subject, "nest", "depth {depth}");
    }
}

#[test]
fn header_bombs() {
    let mut many = String::new();
    for i in 0..200_000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("Subject: many\r\n\r\nbody\r\n");
    assert_eq!(run(many.into_bytes()).headers.len(), HEADERS_MAX);

    let long = format!("Subject: {}\r\n\r\nbody\r\n", "x".repeat(10 * 1024 * 1024));
    run(long.into_bytes());

    let mut folded = String::from("Subject: folded");
    for _ in 0..500_000 {
        folded.push_str("\r\n w");
    }
    folded.push_str("\r\n\r\nbody\r\n");
    run(folded.into_bytes());
}

#[test]
fn malformed_boundaries() {
    let cases = [
        // Declared but never used.
        "Content-Type: multipart/mixed; boundary=\"nope\"\r\n\r\nno parts here\r\n".to_string(),
        // Empty boundary.
        "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\nx\r\n----\r\n".into(),
        // Never closed.
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nopen".into(),
        // A boundary of 100 KB.
        format!(
            "Content-Type: multipart/mixed; boundary=\"{0}\"\r\n\r\n--{0}\r\n\r\nx\r\n--{0}--\r\n",
            "q".repeat(100_000)
        ),
        // 100,000 empty parts.
        format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n{}--b--\r\n",
            "--b\r\n\r\n".repeat(100_000)
        ),
        // Boundary that is a prefix of the content everywhere.
        format!(
            "Content-Type: multipart/mixed; boundary=-\r\n\r\n{}\r\n",
            "---\r\n".repeat(200_000)
        ),
    ];
    for c in cases {
        run(format!("From: a@example.org\r\nMIME-Version: 1.0\r\n{c}").into_bytes());
    }
}

#[test]
fn base64_and_quoted_printable_garbage() {
    let parts = [
        ("base64", "!!!!@@@@####$$$$%%%%^^^^\r\n".repeat(50_000)),
        ("base64", "QUJD=QUJD=====QQ\r\n".repeat(50_000)),
        ("base64", "A".repeat(5 * 1024 * 1024)),
        ("quoted-printable", "=ZZ=0=\r\n=\r\n=G1=\r\n".repeat(50_000)),
        ("quoted-printable", "=".repeat(1024 * 1024)),
        ("x-unknown-encoding", "whatever\r\n".repeat(1000)),
    ];
    for (enc, body) in parts {
        let m = format!(
            "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: {enc}\r\n\r\n{body}\r\n\
             --b\r\nContent-Type: application/octet-stream; name=x.bin\r\nContent-Disposition: attachment; filename=x.bin\r\n\
             Content-Transfer-Encoding: {enc}\r\n\r\n{body}\r\n--b--\r\n"
        );
        run(m.into_bytes());
    }
}

#[test]
fn rfc2047_abuse() {
    let words = "=?utf-8?B?w6k=?= ".repeat(100_000);
    let bad_charset = "=?x-no-such-charset?Q?abc?= ".repeat(10_000);
    let broken = "=?utf-8?Q?=ZZ=?= =?utf-8?B?!!!?= =?utf-8?X?x?= =?=?= =?".repeat(10_000);
    let nested = "=?utf-8?B?PT91dGYtOD9CP1BUOTFkR1l0T0Q5Q1A=?=";
    let long_word = format!("=?utf-8?B?{}?=", "QUFB".repeat(500_000));
    for subject in [words, bad_charset, broken, nested.to_string(), long_word] {
        let m = format!(
            "From: =?utf-8?B?{}?= <a@example.org>\r\nSubject: {subject}\r\nContent-Type: text/plain; name=\"{subject}\"\r\n\r\nbody\r\n",
            "QQ==".repeat(1000)
        );
        run(m.into_bytes());
    }
}
