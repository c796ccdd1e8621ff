//! Validation of a parsed config: value ranges, cross-field rules and files that must
//! exist, with errors that name the file and the key at fault.

use std::path::Path;

use super::*;

impl Config {
    /// Checks everything serde cannot: value ranges, cross-field rules, files that must exist.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        validate_node_id(&self.node.id).map_err(|m| bad("node.id", m))?;
        if self.smtp.hostname.trim().is_empty() {
            return Err(bad("smtp.hostname", "must not be empty".into()));
        }
        if self.smtp.max_message_size < 1024 {
            return Err(bad(
                "smtp.max_message_size",
                "must be at least 1024 bytes".into(),
            ));
        }
        if self.smtp.max_recipients < SMTP_RECIPIENTS_MIN {
            return Err(bad(
                "smtp.max_recipients",
                format!("must be at least {SMTP_RECIPIENTS_MIN} (RFC 5321 section 4.5.3.1.8)"),
            ));
        }
        if !(1..=SMTP_CONNECTIONS_MAX).contains(&self.smtp.max_connections) {
            return Err(bad(
                "smtp.max_connections",
                format!("must be from 1 to {SMTP_CONNECTIONS_MAX}"),
            ));
        }
        match (&self.smtp.tls_cert, &self.smtp.tls_key) {
            (Some(_), None) => {
                return Err(bad("smtp.tls_key", "required when tls_cert is set".into()));
            }
            (None, Some(_)) => {
                return Err(bad("smtp.tls_cert", "required when tls_key is set".into()));
            }
            (Some(c), Some(k)) => {
                must_exist(c).map_err(|m| bad("smtp.tls_cert", m))?;
                must_exist(k).map_err(|m| bad("smtp.tls_key", m))?;
            }
            (None, None) => {}
        }
        if self.domains.is_empty() {
            return Err(bad(
                "domains",
                "at least one [[domains]] entry is required".into(),
            ));
        }
        for (i, d) in self.domains.iter().enumerate() {
            if d.name.trim().is_empty() || d.name.contains(char::is_whitespace) {
                return Err(bad(
                    &format!("domains[{i}].name"),
                    format!("invalid domain {:?}", d.name),
                ));
            }
            validate_host_port(&d.relay_to)
                .map_err(|m| bad(&format!("domains[{i}].relay_to"), m))?;
            edge::validate(i, d).map_err(|(key, m)| bad(&key, m))?;
            outbound::validate_dkim(i, d).map_err(|(key, m)| bad(&key, m))?;
        }
        must_exist(&self.admin.tokens_file).map_err(|m| bad("admin.tokens_file", m))?;
        validate_api_rate(&self.admin).map_err(|(key, m)| bad(key, m))?;
        if let Some(mesh) = &self.mesh {
            if mesh.cluster_id.trim().is_empty() {
                return Err(bad("mesh.cluster_id", "must not be empty".into()));
            }
            for (i, s) in mesh.seeds.iter().enumerate() {
                validate_host_port(s).map_err(|m| bad(&format!("mesh.seeds[{i}]"), m))?;
            }
        }
        if let Some(dns) = &self.dns {
            validate_dns(dns).map_err(|(key, m)| bad(key, m))?;
        }
        if let Some(filter) = &self.filter {
            filter.validate().map_err(|(key, m)| bad(&key, m))?;
        }
        let r = &self.relay;
        if r.retry_initial_secs == 0 {
            return Err(bad("relay.retry_initial_secs", "must be at least 1".into()));
        }
        if r.retry_max_secs < r.retry_initial_secs {
            return Err(bad(
                "relay.retry_max_secs",
                "must be >= relay.retry_initial_secs".into(),
            ));
        }
        if r.queue_lifetime_hours == 0 {
            return Err(bad(
                "relay.queue_lifetime_hours",
                "must be at least 1".into(),
            ));
        }
        if !(1..=RELAY_DELIVERIES_MAX).contains(&r.max_concurrent_deliveries) {
            return Err(bad(
                "relay.max_concurrent_deliveries",
                format!("must be from 1 to {RELAY_DELIVERIES_MAX}"),
            ));
        }
        if r.destination_concurrency == 0 {
            return Err(bad(
                "relay.destination_concurrency",
                "must be at least 1".into(),
            ));
        }
        outbound::validate_trusted(&r.trusted_networks).map_err(|(key, m)| bad(&key, m))?;
        if let Some(s) = &self.submission {
            outbound::validate_submission(s, &self.smtp).map_err(|(key, m)| bad(&key, m))?;
        }
        if let Some(b) = &r.bounce_relay {
            validate_host_port(b).map_err(|m| bad("relay.bounce_relay", m))?;
        }
        if self.quarantine.retention_days == 0 {
            return Err(bad(
                "quarantine.retention_days",
                "must be at least 1".into(),
            ));
        }
        for (key, value, max) in self.upper_bounds() {
            if value > max {
                return Err(bad(
                    key,
                    format!("{value} is larger than the maximum {max}"),
                ));
            }
        }
        Ok(())
    }

    /// Values whose products with time units must not overflow, with their maximums.
    fn upper_bounds(&self) -> [(&'static str, u64, u64); 8] {
        const DAY_SECS: u64 = 86_400;
        [
            (
                "smtp.command_timeout_secs",
                self.smtp.command_timeout_secs,
                DAY_SECS,
            ),
            (
                "smtp.session_timeout_secs",
                self.smtp.session_timeout_secs,
                7 * DAY_SECS,
            ),
            ("smtp.greet_pause_ms", self.smtp.greet_pause_ms, 60_000),
            (
                "relay.retry_max_secs",
                self.relay.retry_max_secs,
                30 * DAY_SECS,
            ),
            (
                "relay.queue_lifetime_hours",
                self.relay.queue_lifetime_hours,
                24 * 365,
            ),
            ("relay.timeout_secs", self.relay.timeout_secs, 3600),
            (
                "relay.destination_concurrency",
                self.relay.destination_concurrency as u64,
                DESTINATION_CONCURRENCY_MAX as u64,
            ),
            (
                "quarantine.retention_days",
                self.quarantine.retention_days,
                3650,
            ),
        ]
    }
}

/// Node ids appear in keys, certificates, DNS names and URLs: keep them plain.
pub fn validate_node_id(id: &str) -> Result<(), String> {
    // One rule for ids everywhere: they also name certificates (`<id>.node.mxmesh`).
    crate::ca::validate_node_id(id).map_err(|e| e.to_string())
}

/// `admin.rate_per_sec` in (0, max], `admin.rate_burst` in [1, max].
fn validate_api_rate(a: &AdminSection) -> Result<(), (&'static str, String)> {
    let max = API_RATE_SETTING_MAX;
    if !(a.rate_per_sec > 0.0 && a.rate_per_sec <= f64::from(max)) {
        return Err((
            "admin.rate_per_sec",
            format!("{} must be above 0 and at most {max}", a.rate_per_sec),
        ));
    }
    if a.rate_burst == 0 || a.rate_burst > max {
        return Err((
            "admin.rate_burst",
            format!("{} must be between 1 and {max}", a.rate_burst),
        ));
    }
    Ok(())
}

pub(super) fn validate_host_port(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected host:port"))?;
    if host.is_empty() {
        return Err(format!("{s:?}: empty host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{s:?}: port {port:?} is not a number 0-65535"))?;
    Ok(())
}

/// `[dns]`: names fully qualified, something to publish to, a usable TSIG key.
fn validate_dns(dns: &DnsSection) -> Result<(), (&'static str, String)> {
    if !dns.name.ends_with('.') {
        return Err((
            "dns.name",
            format!("{:?} must be fully qualified (end with '.')", dns.name),
        ));
    }
    if dns.listen.is_none() && dns.rfc2136.is_none() {
        return Err((
            "dns",
            "set dns.listen (embedded server), dns.rfc2136 (external server), or both".into(),
        ));
    }
    let Some(r) = &dns.rfc2136 else {
        return Ok(());
    };
    validate_host_port(&r.server).map_err(|m| ("dns.rfc2136.server", m))?;
    if !r.zone.ends_with('.') {
        return Err((
            "dns.rfc2136.zone",
            format!("{:?} must be fully qualified (end with '.')", r.zone),
        ));
    }
    let (name, zone) = (dns.name.to_ascii_lowercase(), r.zone.to_ascii_lowercase());
    if name != zone && !name.ends_with(&format!(".{zone}")) && zone != "." {
        return Err((
            "dns.rfc2136.zone",
            format!("{:?} does not contain dns.name {:?}", r.zone, dns.name),
        ));
    }
    if r.tsig_name.trim().is_empty() {
        return Err(("dns.rfc2136.tsig_name", "must not be empty".into()));
    }
    if !TSIG_ALGORITHMS.contains(&r.tsig_algorithm.as_str()) {
        return Err((
            "dns.rfc2136.tsig_algorithm",
            format!(
                "{:?}: expected one of {TSIG_ALGORITHMS:?}",
                r.tsig_algorithm
            ),
        ));
    }
    read_tsig_secret(&r.tsig_secret_file).map_err(|m| ("dns.rfc2136.tsig_secret_file", m))?;
    Ok(())
}

/// Reads a TSIG secret: a file holding just the base64 secret, or a BIND key file as
/// written by `tsig-keygen` (`key "name" { algorithm ...; secret "BASE64"; };`).
pub fn read_tsig_secret(path: &Path) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let encoded = match text.find("secret") {
        Some(at) => text[at + "secret".len()..]
            .split('"')
            .nth(1)
            .ok_or_else(|| format!("{}: `secret` has no quoted value", path.display()))?,
        None => text.trim(),
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("{}: the secret is not base64: {e}", path.display()))?;
    if key.len() < 16 {
        return Err(format!(
            "{}: the secret is {} bytes; use at least 16 (tsig-keygen makes 32)",
            path.display(),
            key.len()
        ));
    }
    Ok(key)
}

pub(super) fn must_exist(p: &Path) -> Result<(), String> {
    if p.exists() {
        Ok(())
    } else {
        Err(format!("file {} does not exist", p.display()))
    }
}
