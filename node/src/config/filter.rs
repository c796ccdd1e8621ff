//! `[filter]`: how the facts phase gathers what the verdict reads (DNS, DNSBL,
//! SPF/DKIM/DMARC, clamd, archive limits). Absent section = no network lookups at all;
//! archive limits then take their defaults.

use std::net::SocketAddr;

use serde::Deserialize;

use super::validate_host_port;

/// Default bound on one DNS lookup.
pub const DNS_TIMEOUT_DEFAULT_MS: u64 = 2000;
/// Largest accepted `dns_timeout_ms` (a session must never wait longer than this per lookup).
pub const DNS_TIMEOUT_MAX_MS: u64 = 30_000;
/// Default bound on one clamd scan.
pub const CLAMD_TIMEOUT_DEFAULT_MS: u64 = 10_000;
/// Largest accepted `clamd_timeout_ms`.
pub const CLAMD_TIMEOUT_MAX_MS: u64 = 120_000;
/// DNSBL zones in `dnsbl` at most.
pub const DNSBL_ZONES_MAX: usize = 32;
/// URIBL zones in `uribl` at most.
pub const URIBL_ZONES_MAX: usize = 8;
/// Default nesting of archives inside archives inspected (deeper is a bomb).
pub const ARCHIVE_DEPTH_DEFAULT: u32 = 3;
/// Default entries per message across all archives (more is a bomb).
pub const ARCHIVE_ENTRIES_DEFAULT: u32 = 1000;
/// Default bytes expanded per message across all archives (more is a bomb).
pub const ARCHIVE_EXPANDED_DEFAULT_BYTES: u64 = 100 * 1024 * 1024;
/// Default ratio expanded/compressed of one archive (more is a bomb).
pub const ARCHIVE_RATIO_DEFAULT: u64 = 100;

/// What to do when a lookup (DNS) or a scan (clamd) fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Record the failure in the facts (`temperror`, not listed, no virus) and go on.
    Skip,
    /// Answer `451` so the sender retries later.
    Tempfail,
}

/// `[filter]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// DNS server for DNSBL/SPF/DKIM/DMARC lookups; the system resolver when absent.
    pub resolver: Option<SocketAddr>,
    /// DNSBL zones checked for the client address (rule field `dnsbl:ZONE`).
    #[serde(default)]
    pub dnsbl: Vec<String>,
    /// URIBL/SURBL zones checked for the domains of the body's URLs (symbol
    /// `URIBL_LISTED`), with the same DNS bounds as `dnsbl`.
    #[serde(default)]
    pub uribl: Vec<String>,
    /// Bound on each DNS lookup.
    #[serde(default = "dns_timeout_default")]
    pub dns_timeout_ms: u64,
    /// A DNS failure: go on with `temperror` facts, or answer 451.
    #[serde(default = "skip")]
    pub on_dns_failure: OnFailure,
    /// Whether SPF, DKIM and DMARC are checked (rule fields `spf`, `dkim`, `dmarc`).
    #[serde(default = "yes")]
    pub authentication: bool,
    /// clamd's TCP address (`host:port`) for virus scanning (rule field `virus`).
    pub clamd: Option<String>,
    /// Bound on one clamd scan.
    #[serde(default = "clamd_timeout_default")]
    pub clamd_timeout_ms: u64,
    /// clamd unreachable, slow or failing: go on unscanned, or answer 451 (the default).
    #[serde(default = "tempfail")]
    pub on_clamd_failure: OnFailure,
    /// Archives nested inside archives, at most (deeper is an `archive.bomb`).
    #[serde(default = "archive_depth_default")]
    pub archive_max_depth: u32,
    /// Entries across all archives of one message, at most.
    #[serde(default = "archive_entries_default")]
    pub archive_max_entries: u32,
    /// Bytes expanded across all archives of one message, at most.
    #[serde(default = "archive_expanded_default")]
    pub archive_max_expanded_bytes: u64,
    /// Expanded size / compressed size of one archive, at most.
    #[serde(default = "archive_ratio_default")]
    pub archive_max_ratio: u64,
}

impl Default for FilterSection {
    /// The values of an empty `[filter]` section.
    fn default() -> Self {
        toml::from_str("").expect("every [filter] key has a default")
    }
}

fn dns_timeout_default() -> u64 {
    DNS_TIMEOUT_DEFAULT_MS
}
fn clamd_timeout_default() -> u64 {
    CLAMD_TIMEOUT_DEFAULT_MS
}
fn skip() -> OnFailure {
    OnFailure::Skip
}
fn tempfail() -> OnFailure {
    OnFailure::Tempfail
}
fn yes() -> bool {
    true
}
fn archive_depth_default() -> u32 {
    ARCHIVE_DEPTH_DEFAULT
}
fn archive_entries_default() -> u32 {
    ARCHIVE_ENTRIES_DEFAULT
}
fn archive_expanded_default() -> u64 {
    ARCHIVE_EXPANDED_DEFAULT_BYTES
}
fn archive_ratio_default() -> u64 {
    ARCHIVE_RATIO_DEFAULT
}

impl FilterSection {
    /// Checks values serde cannot; the error names the key (without the `filter.` prefix).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((format!("filter.{key}"), message));
        if self.dnsbl.len() > DNSBL_ZONES_MAX {
            return bad("dnsbl", format!("at most {DNSBL_ZONES_MAX} zones"));
        }
        for (i, zone) in self.dnsbl.iter().enumerate() {
            if let Err(m) = validate_zone(zone) {
                return bad(&format!("dnsbl[{i}]"), m);
            }
        }
        if self.uribl.len() > URIBL_ZONES_MAX {
            return bad("uribl", format!("at most {URIBL_ZONES_MAX} zones"));
        }
        for (i, zone) in self.uribl.iter().enumerate() {
            if let Err(m) = validate_zone(zone) {
                return bad(&format!("uribl[{i}]"), m);
            }
        }
        if !(1..=DNS_TIMEOUT_MAX_MS).contains(&self.dns_timeout_ms) {
            return bad(
                "dns_timeout_ms",
                format!(
                    "{} is outside 1..={DNS_TIMEOUT_MAX_MS}",
                    self.dns_timeout_ms
                ),
            );
        }
        if let Some(clamd) = &self.clamd {
            validate_host_port(clamd).or_else(|m| bad("clamd", m))?;
        }
        if !(1..=CLAMD_TIMEOUT_MAX_MS).contains(&self.clamd_timeout_ms) {
            return bad(
                "clamd_timeout_ms",
                format!(
                    "{} is outside 1..={CLAMD_TIMEOUT_MAX_MS}",
                    self.clamd_timeout_ms
                ),
            );
        }
        let at_least_one = [
            ("archive_max_entries", u64::from(self.archive_max_entries)),
            (
                "archive_max_expanded_bytes",
                self.archive_max_expanded_bytes,
            ),
            ("archive_max_ratio", self.archive_max_ratio),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        Ok(())
    }
}

/// A DNSBL zone: a plain DNS name (letters, digits, `-`, `.`, `_`), not empty.
fn validate_zone(zone: &str) -> Result<(), String> {
    let name = zone.strip_suffix('.').unwrap_or(zone);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("{zone:?} is not a DNS zone name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> FilterSection {
        toml::from_str(toml_text).expect("valid TOML for [filter]")
    }

    #[test]
    fn uribl_zones_are_checked() {
        let ok = section("uribl = [\"multi.surbl.org\", \"uribl.test.\"]");
        assert_eq!(ok.uribl, ["multi.surbl.org", "uribl.test."]);
        assert!(ok.validate().is_ok());
        assert!(FilterSection::default().uribl.is_empty());
        let bad = section("uribl = [\"ok.test\", \"not a zone\"]");
        let (key, message) = bad.validate().unwrap_err();
        assert_eq!(key, "filter.uribl[1]");
        assert!(message.contains("not a DNS zone name"), "{message}");
        let many: Vec<String> = (0..=URIBL_ZONES_MAX)
            .map(|i| format!("\"z{i}.test\""))
            .collect();
        let (key, _) = section(&format!("uribl = [{}]", many.join(",")))
            .validate()
            .unwrap_err();
        assert_eq!(key, "filter.uribl");
    }
}
