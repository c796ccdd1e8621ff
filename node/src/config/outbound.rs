//! The outbound role's keys: `[submission]`, `[relay] trusted_networks`, and the DKIM keys
//! of `[[domains]]` (`dkim_selector`, `dkim_key`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The default `[submission] listen` (RFC 6409's port).
pub const SUBMISSION_LISTEN_DEFAULT: &str = "0.0.0.0:587";

/// `[submission] tls`: how the `listen` port speaks TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionTls {
    /// Plain text until STARTTLS; AUTH only after it (the default).
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314, as on port 465).
    Implicit,
}

/// `[submission]`: mail from authenticated users, to any domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionSection {
    /// The submission listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// STARTTLS (the default) or implicit TLS on `listen`.
    #[serde(default)]
    pub tls: SubmissionTls,
    /// A second listener with implicit TLS (port 465), optional.
    #[serde(default)]
    pub implicit_tls_listen: Option<SocketAddr>,
    /// `USER $argon2id$…` lines.
    pub users_file: PathBuf,
}

fn default_listen() -> SocketAddr {
    SUBMISSION_LISTEN_DEFAULT
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 587)))
}

/// Checks `[submission]`: TLS configured (AUTH never goes over plain text) and a users
/// file that loads.
pub(super) fn validate_submission(
    s: &SubmissionSection,
    smtp: &super::SmtpSection,
) -> Result<(), (String, String)> {
    if smtp.tls_cert.is_none() {
        return Err((
            "submission".into(),
            "needs smtp.tls_cert and smtp.tls_key: AUTH is only offered over TLS".into(),
        ));
    }
    crate::outbound::Users::load(&s.users_file)
        .map_err(|e| ("submission.users_file".into(), e.to_string()))?;
    Ok(())
}

/// Checks `[relay] trusted_networks`.
pub(super) fn validate_trusted(entries: &[String]) -> Result<(), (String, String)> {
    crate::outbound::TrustedNetworks::parse(entries)
        .map(|_| ())
        .map_err(|m| ("relay.trusted_networks".into(), m))
}

/// Checks the DKIM keys of one `[[domains]]` entry: both or neither, a selector that is a
/// DNS label, a key file that loads.
pub(super) fn validate_dkim(i: usize, d: &super::DomainSection) -> Result<(), (String, String)> {
    let key = |k: &str| format!("domains[{i}].{k}");
    match (&d.dkim_selector, &d.dkim_key) {
        (None, None) => Ok(()),
        (Some(_), None) => Err((key("dkim_key"), "required with dkim_selector".into())),
        (None, Some(_)) => Err((key("dkim_selector"), "required with dkim_key".into())),
        (Some(selector), Some(path)) => {
            crate::dkim::keygen::check_name("selector", selector)
                .map_err(|e| (key("dkim_selector"), e.to_string()))?;
            crate::dkim::DkimKey::load(path).map_err(|e| (key("dkim_key"), e.to_string()))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn check(domain: &str, relay: &str, more: &str) -> Result<Config, String> {
        // The shared minimal config, with lines for its one domain and a [relay] section.
        let text = crate::config::tests::MINIMAL.replace("[admin]", &format!("{domain}\n[admin]"))
            + &format!("[relay]\n{relay}\n")
            + more;
        let c = Config::parse(&text, "t.toml").map_err(|e| e.to_string())?;
        c.validate("t.toml").map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_leave_the_outbound_role_off() {
        let c = check("", "", "").unwrap();
        assert!(c.submission.is_none());
        assert!(c.relay.trusted_networks.is_empty());
        assert!(c.domains[0].dkim_selector.is_none());
    }

    #[test]
    fn bad_outbound_keys_are_named() {
        let err = check("", "trusted_networks = [\"10.0.0.0/33\"]", "").unwrap_err();
        assert!(err.contains("relay.trusted_networks"), "{err}");
        let err = check("dkim_selector = \"mx1\"", "", "").unwrap_err();
        assert!(err.contains("domains[0].dkim_key"), "{err}");
        let err = check(
            "dkim_selector = \"bad selector\"\ndkim_key = \"/dev/null\"",
            "",
            "",
        )
        .unwrap_err();
        assert!(err.contains("domains[0].dkim_selector"), "{err}");
        let err = check(
            "dkim_selector = \"mx1\"\ndkim_key = \"/nonexistent.key\"",
            "",
            "",
        )
        .unwrap_err();
        assert!(err.contains("domains[0].dkim_key"), "{err}");
        let err = check("", "", "[submission]\nusers_file = \"/dev/null\"\n").unwrap_err();
        assert!(
            err.contains("submission") && err.contains("tls_cert"),
            "{err}"
        );
    }

    #[test]
    fn a_dkim_key_from_keygen_and_trusted_networks_validate() {
        let dir = tempfile::tempdir().unwrap();
        let out = crate::dkim::keygen("example.com", "mx1", dir.path()).unwrap();
        let domain = format!(
            "dkim_selector = \"mx1\"\ndkim_key = \"{}\"",
            out.key_path.display()
        );
        let c = check(&domain, "trusted_networks = [\"10.0.0.0/8\", \"::1\"]", "").unwrap();
        assert_eq!(c.relay.trusted_networks.len(), 2);
        assert_eq!(c.domains[0].dkim_selector.as_deref(), Some("mx1"));
    }
}
