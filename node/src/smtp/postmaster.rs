//! `RCPT TO:<Postmaster>` without a domain (RFC 5321 §4.5.1): every SMTP server must accept
//! it. It goes to `postmaster@` the first `[[domains]]` entry of the config (README
//! "Config"), so an MX gateway hands it to that domain's own mail server.

use super::address::{Domain, Mailbox};

/// The path of a bare postmaster recipient, matched without regard to case.
pub const BARE_POSTMASTER: &str = "<postmaster>";

/// The mailbox a bare `<Postmaster>` path stands for: `postmaster@` the first accepted
/// domain. None when `path` is something else, or when no domain is accepted.
pub fn mailbox(path: &str, accepted_domains: &[String]) -> Option<Mailbox> {
    if !path.eq_ignore_ascii_case(BARE_POSTMASTER) {
        return None;
    }
    accepted_domains.first().map(|d| Mailbox {
        local_part: "postmaster".to_string(),
        domain: Domain::Name(d.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_postmaster_in_any_case_goes_to_the_first_domain() {
        let domains = vec!["ours.test".to_string(), "other.test".to_string()];
        for path in ["<postmaster>", "<Postmaster>", "<POSTMASTER>"] {
            let m = mailbox(path, &domains).unwrap();
            assert_eq!(m.to_string(), "postmaster@ours.test");
        }
        assert_eq!(mailbox("<postmaster@ours.test>", &domains), None);
        assert_eq!(mailbox("<postmistress>", &domains), None);
        assert_eq!(mailbox("<postmaster>", &[]), None);
    }
}
