//! `/api/v1/learn…`, `/api/v1/bayes` and `/api/v1/classify`: the learned Bayes corpus
//! (shared mesh-wide, see `cluster::bayes`) and a dry run of the filter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use mxmesh_crdt::bayes::{Class, Digest, LearnOutcome};
use serde_json::{Value, json};

use super::dto::{BayesDto, ClassifyDto, LearnDto};
use super::{Api, ApiError};
use crate::cluster::bayes::{BayesOpError, Learned};
use crate::message::EnvelopeFacts;

/// Header lines a learned message may start with before one must look like a header.
const HEADER_LINES_CHECKED_MAX: usize = 200;
/// Query parameters `POST /api/v1/classify` takes.
const CLASSIFY_KEYS: [&str; 5] = ["from", "rcpt", "ip", "helo", "hostname"];

/// `POST /api/v1/learn/{spam|ham}`: learns the body, a raw message.
pub async fn learn(
    State(api): State<Api>,
    Path(class): Path<String>,
    body: Bytes,
) -> Result<Json<LearnDto>, ApiError> {
    let class = parse_class(&class)?;
    check_message(&body)?;
    let learned = api.bayes.learn(&body, class).await.map_err(op_error)?;
    Ok(Json(learn_dto(learned, class)))
}

/// Parses `spam` or `ham`; anything else is a 400.
pub fn parse_class(text: &str) -> Result<Class, ApiError> {
    Class::from_str(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The answer to a learn.
pub fn learn_dto(learned: Learned, class: Class) -> LearnDto {
    let digest = learned.digest.to_hex();
    match learned.outcome {
        LearnOutcome::AlreadyLearned => LearnDto {
            digest,
            learned: false,
            reason: Some(format!("already learned as {class}")),
            moved_from: None,
        },
        LearnOutcome::Learned => LearnDto {
            digest,
            learned: true,
            reason: None,
            moved_from: None,
        },
        LearnOutcome::Moved { from } => LearnDto {
            digest,
            learned: true,
            reason: None,
            moved_from: Some(from.to_string()),
        },
    }
}

/// `DELETE /api/v1/learn/{digest}`: forgets a message mesh-wide.
pub async fn forget(
    State(api): State<Api>,
    Path(digest): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let digest = Digest::from_str(&digest).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let was = api.bayes.forget(digest).await.map_err(op_error)?;
    Ok(Json(json!({
        "digest": digest.to_hex(),
        "forgotten": was.is_some(),
        "was": was.map(Class::as_str),
    })))
}

/// `GET /api/v1/bayes`.
pub async fn status(State(api): State<Api>) -> Json<BayesDto> {
    Json(api.bayes.status().into())
}

/// `POST /api/v1/classify[?from=&rcpt=&ip=&helo=&hostname=]`: what the filter would decide
/// for the body, a raw message. `hostname` is the client's reverse name as an MTA wrote it
/// (`unknown` = none); without it the facts phase looks it up. Stores nothing.
pub async fn classify(
    State(api): State<Api>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<ClassifyDto>, ApiError> {
    if let Some(k) = params.keys().find(|k| !CLASSIFY_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?} (expected one of {CLASSIFY_KEYS:?})"
        )));
    }
    check_message(&body)?;
    let ip = match params.get("ip") {
        Some(text) => IpAddr::from_str(text)
            .map_err(|_| ApiError::bad_request(format!("ip {text:?} is not an IP address")))?,
        None => IpAddr::from([127, 0, 0, 1]),
    };
    let to: Vec<String> = params.get("rcpt").cloned().into_iter().collect();
    let envelope = EnvelopeFacts {
        from: params.get("from").map_or("", String::as_str),
        to: &to,
        helo: params.get("helo").map_or("", String::as_str),
        client_ip: ip,
        reverse_name: params.get("hostname").map(String::as_str),
    };
    let classified = api
        .inbound
        .classify(&body, &envelope, api.config.clock.now_ms())
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(super::dto::classify_dto(classified)))
}

/// 400 unless `raw` looks like a message: not empty, no NUL bytes, a header section that
/// ends in an empty line, and header lines that are fields or their continuations.
pub fn check_message(raw: &[u8]) -> Result<(), ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request("empty body: expected a raw message"));
    }
    if raw.contains(&0) {
        return Err(ApiError::bad_request(
            "the body has NUL bytes: expected a raw message (RFC 5322 text)",
        ));
    }
    let Some(end) = header_end(raw) else {
        return Err(ApiError::bad_request(
            "not a message: no empty line ends the header section",
        ));
    };
    let mut lines = raw[..end]
        .split(|b| *b == b'\n')
        .take(HEADER_LINES_CHECKED_MAX);
    let first = lines.next().unwrap_or_default();
    if !is_field(first) {
        return Err(ApiError::bad_request(
            "not a message: it does not start with a header field (Name: value)",
        ));
    }
    for (n, line) in lines.enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !line.is_empty() && !continuation && !is_field(line) {
            return Err(ApiError::bad_request(format!(
                "not a message: header line {} is not a field (Name: value)",
                n + 2
            )));
        }
    }
    Ok(())
}

/// Where the header section ends (the index of the empty line), if it does.
fn header_end(raw: &[u8]) -> Option<usize> {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = raw.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `Name:` with a name of printable ASCII other than `:` (RFC 5322 field-name).
fn is_field(line: &[u8]) -> bool {
    match line.iter().position(|b| *b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|b| (33..=126).contains(b)),
        _ => false,
    }
}

/// How a failed learn or forget is answered.
pub fn op_error(e: BayesOpError) -> ApiError {
    match e {
        BayesOpError::Corpus(e) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        BayesOpError::Store(_) | BayesOpError::Stopped => ApiError::unavailable(e),
    }
}

/// `GET /api/v1/settings/spam`: the cluster's thresholds and weight overrides.
pub async fn settings(State(api): State<Api>) -> Json<crate::spam::SpamSettings> {
    Json((*api.rules.spam_settings()).clone())
}

/// `PUT /api/v1/settings/spam`: replaces them, mesh-wide (they live in the rule book). A bad
/// value, or one of the wrong type, gets 400 `{"error","field"}` naming the key.
pub async fn put_settings(
    State(api): State<Api>,
    axum::Extension(admin): axum::Extension<super::Admin>,
    body: Bytes,
) -> Result<Json<crate::spam::SpamSettings>, axum::response::Response> {
    use axum::response::IntoResponse as _;
    let settings = super::spam::parse_settings(&body).map_err(super::dto::invalid_settings)?;
    let now = api.config.clock.now_ms();
    match api.rules.set_spam_settings(settings, &admin.0, now).await {
        Ok(stored) => Ok(Json(stored)),
        Err(crate::rules::RulesError::Store(e)) => Err(ApiError::unavailable(e).into_response()),
        Err(crate::rules::RulesError::Settings(e)) => {
            Err(super::dto::invalid_settings(e.to_string()))
        }
        Err(e) => Err(ApiError::bad_request(e.to_string()).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_pass_and_junk_does_not() {
        let ok = b"From: a@example.com\r\nSubject: hi\r\n\tmore\r\n\r\nbody\r\n";
        assert!(check_message(ok).is_ok());
        assert!(check_message(b"Subject: x\n\nbody").is_ok());
        for bad in [
            &b""[..],
            b"just some text without headers",
            b"Subject: x\r\nno end of headers",
            b"\x00\x01\x02binary\r\n\r\n",
            b"Subject: x\r\nnot a header line\r\n\r\nbody",
            b": empty name\r\n\r\nbody",
        ] {
            assert!(check_message(bad).is_err(), "{bad:?}");
        }
    }
}
