//! SMTP clients for the tests: Python's smtplib (`fixtures/send.py`) from a chosen source
//! address and HELO, swaks (as the README's quick start uses it), and a plain test message.

use std::net::SocketAddr;
use std::process::Command;

use serde_json::Value;

use crate::fixture;

/// Result of one smtplib send.
pub fn send_python(
    server: SocketAddr,
    from: &str,
    to: &[&str],
    message: &[u8],
    starttls: bool,
) -> Value {
    send_with(server, &Client::default(), from, to, message, starttls)
}

/// Where an smtplib client connects from and what it says in EHLO.
#[derive(Clone)]
pub struct Client {
    /// Local address to bind (any 127.0.0.x works on Linux loopback).
    pub source: Option<String>,
    /// The name given in EHLO.
    pub helo: String,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            source: None,
            helo: "client.test".into(),
        }
    }
}

impl Client {
    /// A client connecting from `ip` and greeting as `helo`.
    pub fn from(ip: &str, helo: &str) -> Client {
        Client {
            source: Some(ip.into()),
            helo: helo.into(),
        }
    }
}

/// Result of one smtplib send from `client`.
pub fn send_with(
    server: SocketAddr,
    client: &Client,
    from: &str,
    to: &[&str],
    message: &[u8],
    starttls: bool,
) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, message).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(fixture("send.py"))
        .arg("--server")
        .arg(server.to_string())
        .arg("--from")
        .arg(from)
        .arg("--file")
        .arg(&file);
    for t in to {
        cmd.arg("--to").arg(t);
    }
    if starttls {
        cmd.arg("--starttls");
    }
    cmd.arg("--helo").arg(&client.helo);
    if let Some(source) = &client.source {
        cmd.arg("--source").arg(source);
    }
    let out = cmd.output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "send.py printed {text:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A plain test message with CRLF line endings.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\r\nTo: user@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n\r\n{body}",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// What one swaks run did.
pub struct Swaks {
    /// Whether swaks exited 0 (the server took the message with a 2xx).
    pub ok: bool,
    /// The SMTP transcript swaks printed.
    pub transcript: String,
}

/// Sends one message with swaks, as a new user would: `headers` go through `--header`
/// (replacing swaks' own header of that name, or adding one), `body` through `--body`;
/// swaks adds Date, Message-Id, To, From and X-Mailer itself.
pub fn send_swaks(server: SocketAddr, from: &str, to: &str, headers: &[&str], body: &str) -> Swaks {
    let mut cmd = Command::new("swaks");
    cmd.arg("--server")
        .arg(server.to_string())
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .arg("--body")
        .arg(body);
    for header in headers {
        cmd.arg("--header").arg(header);
    }
    let out = cmd.output().expect("swaks installed by the test command");
    Swaks {
        ok: out.status.success(),
        transcript: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
