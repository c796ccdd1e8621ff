//! JSON shapes of the API and parsing of query parameters.

use serde_json::Value;

use super::ApiError;

/// RFC 3339 time for API output.
pub fn rfc3339(ms: u64) -> String {
    mail_parser::DateTime::from_timestamp((ms / 1000) as i64).to_rfc3339()
}

/// `since=` as milliseconds since the epoch or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    mail_parser::DateTime::parse_rfc3339(s)
        .filter(|d| d.is_valid())
        .map(|d| (d.to_timestamp().max(0) as u64) * 1000)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "since: {s:?} is neither milliseconds nor an RFC 3339 time"
            ))
        })
}

/// Parses a JSON request body, naming the problem.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object, got nothing",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body: invalid JSON: {e}")))
}
