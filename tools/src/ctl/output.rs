//! What an admin API response becomes for the operator: stdout, a file, or a
//! message on stderr with exit status 1.
//!
//! [`render`] decides (pure, tested); [`emit`] does the writing.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::client::{ApiResponse, Method};
use super::commands::{Call, Output, View};
use super::{quarantine_view, tables};

/// Longest piece of a non-JSON error body repeated on stderr.
pub const ERROR_BODY_SHOWN_MAX_CHARS: usize = 2000;

/// A response, decided but not yet written.
#[derive(Debug, PartialEq, Eq)]
pub enum Shown {
    /// Bytes for stdout; exit status 0.
    Stdout(Vec<u8>),
    /// Bytes for the file given with `--out`; exit status 0.
    File { path: PathBuf, bytes: Vec<u8> },
    /// A message for stderr; exit status 1.
    Failure(String),
}

/// Decides how to show `response` to `call`, fetched from `url`.
pub fn render(call: &Call, url: &Url, response: ApiResponse) -> Shown {
    if !response.status.is_success() {
        return Shown::Failure(failure_message(
            call.method,
            url,
            response.status,
            &response.body,
        ));
    }
    match &call.output {
        Output::Raw { out: None } => Shown::Stdout(response.body),
        Output::Raw { out: Some(path) } => Shown::File {
            path: path.clone(),
            bytes: response.body,
        },
        Output::Json { compact } => Shown::Stdout(format_json(&response.body, *compact)),
        Output::Table { json: true, .. } => Shown::Stdout(format_json(&response.body, true)),
        Output::Table { view, json: false } => Shown::Stdout(format_view(*view, &response.body)),
    }
}

/// The readable view of a JSON answer; an answer of another shape is shown as
/// pretty JSON rather than lost.
fn format_view(view: View, body: &[u8]) -> Vec<u8> {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|answer| match view {
            View::Bayes => tables::bayes(&answer),
            View::Classify => tables::classify(&answer),
            View::QuarantineList => quarantine_view::list(&answer),
            View::QuarantineEntry => quarantine_view::entry(&answer),
            View::Forget => super::custody::forget(&answer),
            View::Lists => super::lists::table(&answer),
            View::Series => super::series::table(&answer),
            View::Cluster => super::ops_views::cluster(&answer),
            View::Rules => super::ops_views::rules(&answer),
            View::RulesHistory => super::ops_views::history(&answer),
            View::Queue => super::ops_views::queue(&answer),
            View::Stats => super::ops_views::stats(&answer),
            View::Trace => super::ops_views::trace(&answer),
        });
    match text {
        Some(text) => text.into_bytes(),
        None => format_json(body, false),
    }
}

/// Writes what [`render`] decided and returns the exit status.
pub fn emit(shown: Shown) -> anyhow::Result<ExitCode> {
    match shown {
        Shown::Stdout(bytes) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                // `mxctl … | head` closing the pipe early is not a failure.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => Err(error).context("cannot write to stdout"),
            }
        }
        Shown::File { path, bytes } => {
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Shown::Failure(message) => {
            eprintln!("mxctl: {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Pretty or compact JSON with a final newline. An empty body (204) prints
/// nothing; a body that is not JSON is passed through as the server sent it.
pub fn format_json(body: &[u8], compact: bool) -> Vec<u8> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    let mut bytes = match serde_json::from_slice::<Value>(body) {
        Ok(value) if compact => value.to_string().into_bytes(),
        Ok(value) => serde_json::to_string_pretty(&value)
            .expect("a parsed Value always serializes")
            .into_bytes(),
        Err(_) => body.to_vec(),
    };
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes
}

/// What the operator reads when the server refused a call: method, URL, status
/// and the server's own words.
pub fn failure_message(method: Method, url: &Url, status: StatusCode, body: &[u8]) -> String {
    let reason = status
        .canonical_reason()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let mut message = format!(
        "{method} {url}: HTTP {}{reason}: {}",
        status.as_u16(),
        server_error_text(body)
    );
    if status == StatusCode::UNAUTHORIZED {
        message.push_str(" (give the admin token with --token or MXMESH_TOKEN)");
    }
    message
}

/// The server's own words: `error` of a `{"error": "..."}` body, else the body text.
fn server_error_text(body: &[u8]) -> String {
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body)
        && let Some(Value::String(error)) = fields.get("error")
    {
        return error.clone();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty response body)".to_string();
    }
    let mut shown: String = text.chars().take(ERROR_BODY_SHOWN_MAX_CHARS).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::client::Endpoint;

    fn json_call(compact: bool) -> Call {
        Call {
            method: Method::Get,
            endpoint: Endpoint::api(&["stats"]),
            body: None,
            output: Output::Json { compact },
        }
    }

    fn url() -> Url {
        Url::parse("http://127.0.0.1:8025/api/v1/stats").unwrap()
    }

    fn respond(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn stdout_text(shown: Shown) -> String {
        match shown {
            Shown::Stdout(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("expected stdout, got {other:?}"),
        }
    }

    #[test]
    fn pretty_by_default_compact_on_request() {
        let body = r#"{"total":{"received":3},"nodes":{}}"#;
        let pretty = stdout_text(render(&json_call(false), &url(), respond(200, body)));
        assert!(pretty.contains("\n  \"total\": {\n"), "{pretty}");
        let compact = stdout_text(render(&json_call(true), &url(), respond(200, body)));
        let expected = serde_json::from_str::<Value>(body).unwrap().to_string();
        assert_eq!(compact, format!("{expected}\n"));
        assert_eq!(compact.lines().count(), 1);
    }

    #[test]
    fn empty_success_prints_nothing_and_text_passes_through() {
        assert_eq!(
            stdout_text(render(&json_call(false), &url(), respond(204, ""))),
            ""
        );
        assert_eq!(
            stdout_text(render(&json_call(false), &url(), respond(200, "ok"))),
            "ok\n"
        );
    }

    #[test]
    fn server_error_message_status_and_url_are_shown() {
        let shown = render(
            &json_call(false),
            &url(),
            respond(404, r#"{"error":"no rule r-9"}"#),
        );
        assert_eq!(
            shown,
            Shown::Failure(
                "GET http://127.0.0.1:8025/api/v1/stats: HTTP 404 Not Found: no rule r-9"
                    .to_string()
            )
        );
    }

    #[test]
    fn unauthorized_hints_at_the_token() {
        let Shown::Failure(message) = render(
            &json_call(false),
            &url(),
            respond(401, r#"{"error":"bad token"}"#),
        ) else {
            panic!("401 must fail");
        };
        assert!(
            message.contains("HTTP 401 Unauthorized: bad token"),
            "{message}"
        );
        assert!(message.contains("MXMESH_TOKEN"), "{message}");
    }

    #[test]
    fn non_json_error_bodies_are_shown_trimmed_and_bounded() {
        let Shown::Failure(message) =
            render(&json_call(false), &url(), respond(502, "  bad gateway\n"))
        else {
            panic!("502 must fail");
        };
        assert!(
            message.ends_with("HTTP 502 Bad Gateway: bad gateway"),
            "{message}"
        );
        let long = "x".repeat(ERROR_BODY_SHOWN_MAX_CHARS * 2);
        let Shown::Failure(message) = render(&json_call(false), &url(), respond(500, &long)) else {
            panic!("500 must fail");
        };
        assert!(
            message.len() < ERROR_BODY_SHOWN_MAX_CHARS + 200,
            "{}",
            message.len()
        );
        let Shown::Failure(message) = render(&json_call(false), &url(), respond(500, "")) else {
            panic!("500 must fail");
        };
        assert!(message.ends_with("(empty response body)"), "{message}");
    }

    #[test]
    fn tables_fall_back_to_json_for_other_shapes_and_json_is_compact() {
        let table = |json| Call {
            output: Output::Table {
                view: View::Bayes,
                json,
            },
            ..json_call(false)
        };
        let body = r#"{"nodes":{"mx1":{"tokens":3}},"tokens":3,"ready":false}"#;
        let text = stdout_text(render(&table(false), &url(), respond(200, body)));
        assert!(
            text.starts_with(
                "NODE   TOKENS
mx1         3
"
            ),
            "{text}"
        );
        let compact = stdout_text(render(&table(true), &url(), respond(200, body)));
        assert_eq!(compact.lines().count(), 1, "{compact}");
        let other = stdout_text(render(&table(false), &url(), respond(200, r#"{"a":1}"#)));
        assert_eq!(other, "{\n  \"a\": 1\n}\n");
    }

    #[test]
    fn raw_output_keeps_bytes() {
        let raw = Call {
            output: Output::Raw { out: None },
            ..json_call(false)
        };
        let body = "Subject: hi\r\n\r\nbody\r\n";
        assert_eq!(
            render(&raw, &url(), respond(200, body)),
            Shown::Stdout(body.as_bytes().to_vec())
        );
        let to_file = Call {
            output: Output::Raw {
                out: Some(PathBuf::from("m.eml")),
            },
            ..json_call(false)
        };
        assert_eq!(
            render(&to_file, &url(), respond(200, body)),
            Shown::File {
                path: PathBuf::from("m.eml"),
                bytes: body.as_bytes().to_vec()
            }
        );
    }
}
