//! The node's one wall clock. Pure code (the filter, the crdt crate, the relay schedule)
//! never calls this: it takes `now_ms` as a parameter, so the simulator can drive time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 5322 date-time for headers (Received, DSN).
pub fn rfc5322_date(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    mail_parser::DateTime::from_timestamp(secs).to_rfc822()
}
