//! The SMTP-edge keys of `[[domains]]`: greylisting and recipient verification.

use serde::Deserialize;

/// Default time a callout's "exists" answer is trusted.
pub const CALLOUT_POSITIVE_TTL_DEFAULT_SECS: u64 = 86_400;
/// Default time a callout's "unknown" answer is trusted.
pub const CALLOUT_NEGATIVE_TTL_DEFAULT_SECS: u64 = 3_600;
/// Longest callout TTL accepted.
pub const CALLOUT_TTL_MAX_SECS: u64 = 30 * 86_400;

/// `[[domains]] verify_recipients`: how unknown recipients are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Every recipient of the domain is accepted (the default).
    #[default]
    Off,
    /// Ask the domain's `relay_to` server with a null-sender RCPT probe.
    Callout,
    /// Look the recipient up in `recipients_file`.
    List,
}

/// `[[domains]] verify_unreachable`: what a callout does when the downstream can't be asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unreachable {
    /// `451 4.4.3`: the sender retries later (the default).
    #[default]
    Tempfail,
    /// Accept the recipient.
    Accept,
}

pub(super) fn default_positive_ttl() -> u64 {
    CALLOUT_POSITIVE_TTL_DEFAULT_SECS
}

pub(super) fn default_negative_ttl() -> u64 {
    CALLOUT_NEGATIVE_TTL_DEFAULT_SECS
}

/// Checks the edge keys of one `[[domains]]` entry; `(key, message)` names the fault.
pub(super) fn validate(i: usize, d: &super::DomainSection) -> Result<(), (String, String)> {
    let key = |k: &str| format!("domains[{i}].{k}");
    match (d.verify_recipients, &d.recipients_file) {
        (VerifyMode::List, None) => {
            return Err((
                key("recipients_file"),
                "required when verify_recipients = \"list\"".into(),
            ));
        }
        (VerifyMode::List, Some(path)) => {
            super::must_exist(path).map_err(|m| (key("recipients_file"), m))?;
        }
        (_, Some(_)) => {
            return Err((
                key("recipients_file"),
                "only read when verify_recipients = \"list\"".into(),
            ));
        }
        (_, None) => {}
    }
    for (name, ttl) in [
        ("callout_positive_ttl_secs", d.callout_positive_ttl_secs),
        ("callout_negative_ttl_secs", d.callout_negative_ttl_secs),
    ] {
        if !(1..=CALLOUT_TTL_MAX_SECS).contains(&ttl) {
            return Err((key(name), format!("1 to {CALLOUT_TTL_MAX_SECS} seconds")));
        }
    }
    Ok(())
}
