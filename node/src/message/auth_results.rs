//! The `Authentication-Results` header (RFC 8601) for relayed mail, and the removal of
//! forged ones: a header that claims this node's authserv-id but came from outside must
//! not reach the downstream server, which trusts it (RFC 8601 §5).

use std::borrow::Cow;

/// One authentication result (`pass`, `fail`, `softfail`, `neutral`, `none`,
/// `temperror`, `permerror`) with what it was about, for the rule fields and the
/// `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The result keyword (RFC 8601 §2.7).
    pub result: &'static str,
    /// `(property, value)` pairs, e.g. `("smtp.mailfrom", "a@b.example")`.
    pub props: Vec<(&'static str, String)>,
}

/// SPF, DKIM (one per signature) and DMARC for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFacts {
    /// The SPF check of the envelope sender (or the HELO name).
    pub spf: Check,
    /// One check per DKIM signature (empty when unsigned).
    pub dkim: Vec<Check>,
    /// The DMARC check of the From domain.
    pub dmarc: Check,
    /// The DMARC policy that applies to the From domain (`none`, `quarantine`, `reject`),
    /// when a DMARC record was found.
    pub dmarc_policy: Option<&'static str>,
}

/// The keyword a timed-out or unreachable check reports.
pub const TEMPERROR: &str = "temperror";

impl AuthFacts {
    /// Every check `temperror` (the facts deadline passed).
    pub fn timed_out() -> AuthFacts {
        let temp = Check {
            result: TEMPERROR,
            props: Vec::new(),
        };
        AuthFacts {
            spf: temp.clone(),
            dkim: vec![temp.clone()],
            dmarc: temp,
            dmarc_policy: None,
        }
    }

    /// The one DKIM result a rule sees: `pass` if any signature passed, else the first
    /// signature's result, `none` without signatures.
    pub fn dkim_summary(&self) -> &'static str {
        if self.dkim.iter().any(|c| c.result == "pass") {
            return "pass";
        }
        self.dkim.first().map_or("none", |c| c.result)
    }

    /// Whether any check could not be completed because of DNS.
    pub fn dns_failed(&self) -> bool {
        self.spf.result == TEMPERROR
            || self.dmarc.result == TEMPERROR
            || self.dkim.iter().any(|c| c.result == TEMPERROR)
    }
}

/// The header name.
pub const HEADER: &str = "Authentication-Results";

/// The header, folded one method per line, ending in CRLF. A message without a DKIM
/// signature shows `dkim=none`.
pub fn header(authserv_id: &str, auth: &AuthFacts) -> String {
    let no_signature = Check {
        result: "none",
        props: Vec::new(),
    };
    let dkim: Vec<&Check> = if auth.dkim.is_empty() {
        vec![&no_signature]
    } else {
        auth.dkim.iter().collect()
    };
    let methods: Vec<String> = std::iter::once(resinfo("spf", &auth.spf))
        .chain(dkim.into_iter().map(|c| resinfo("dkim", c)))
        .chain(std::iter::once(resinfo("dmarc", &auth.dmarc)))
        .collect();
    format!(
        "{HEADER}: {};\r\n\t{}\r\n",
        pvalue(authserv_id),
        methods.join(";\r\n\t")
    )
}

fn resinfo(method: &str, check: &Check) -> String {
    let mut out = format!("{method}={}", check.result);
    for (property, value) in &check.props {
        out.push(' ');
        out.push_str(property);
        out.push('=');
        out.push_str(&pvalue(value));
    }
    out
}

/// A property value: as is when it is a token or an address made of token characters
/// (RFC 8601 `pvalue`), else a quoted string; control characters are dropped.
fn pvalue(value: &str) -> String {
    let clean: String = value.chars().filter(|c| !c.is_control()).collect();
    let token_char = |c: char| c.is_ascii_graphic() && !"()<>,;:\\\"/[]?=".contains(c);
    if !clean.is_empty() && clean.chars().all(token_char) {
        return clean;
    }
    let escaped = clean.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// `raw` without `Authentication-Results` headers whose authserv-id is `authserv_id`
/// (compared case-insensitively). Borrowed when there is nothing to remove.
pub fn strip_forged<'a>(raw: &'a [u8], authserv_id: &str) -> Cow<'a, [u8]> {
    strip_fields(raw, |field| is_ours(field, authserv_id))
}

/// `raw` without the header fields (continuation lines included) for which `remove`
/// holds; the body is untouched. Borrowed when there is nothing to remove.
pub fn strip_fields(raw: &[u8], remove: impl Fn(&[u8]) -> bool) -> Cow<'_, [u8]> {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 2);
    let mut keep: Vec<(usize, usize)> = Vec::new();
    let mut removed = false;
    for (start, end) in header_fields(&raw[..header_end]) {
        if remove(&raw[start..end]) {
            removed = true;
        } else {
            keep.push((start, end));
        }
    }
    if !removed {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (start, end) in keep {
        out.extend_from_slice(&raw[start..end]);
    }
    out.extend_from_slice(&raw[header_end..]);
    Cow::Owned(out)
}

/// The authserv-id of the first `Authentication-Results` header in `headers` (our own
/// trace headers, e.g. the prefix stored with a quarantined message).
pub fn authserv_id(headers: &str) -> Option<&str> {
    let line = headers
        .lines()
        .find_map(|l| l.strip_prefix(HEADER)?.strip_prefix(':'))?;
    let id = line.trim_start().split(';').next()?.trim();
    (!id.is_empty()).then_some(id)
}

/// Byte ranges of each header field, continuation lines included.
fn header_fields(headers: &[u8]) -> Vec<(usize, usize)> {
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut line_start = 0;
    while line_start < headers.len() {
        let line_end = headers[line_start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(headers.len(), |p| line_start + p + 1);
        let continuation = matches!(headers[line_start], b' ' | b'\t');
        match fields.last_mut() {
            Some(last) if continuation => last.1 = line_end,
            _ => fields.push((line_start, line_end)),
        }
        line_start = line_end;
    }
    fields
}

fn is_ours(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = field.iter().position(|&c| c == b':') else {
        return false;
    };
    let (name, value) = (&field[..colon], &field[colon + 1..]);
    if !name.trim_ascii().eq_ignore_ascii_case(HEADER.as_bytes()) {
        return false;
    }
    let value = String::from_utf8_lossy(value);
    let id = value
        .trim_start()
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    id.trim_matches('"').eq_ignore_ascii_case(authserv_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: &'static str, props: &[(&'static str, &str)]) -> Check {
        Check {
            result,
            props: props.iter().map(|(p, v)| (*p, v.to_string())).collect(),
        }
    }

    #[test]
    fn header_lists_every_method() {
        let auth = AuthFacts {
            spf: check("pass", &[("smtp.mailfrom", "a@sender.test")]),
            dkim: vec![check(
                "fail",
                &[("header.d", "sender.test"), ("header.s", "sel")],
            )],
            dmarc: check("fail", &[("header.from", "sender.test")]),
            dmarc_policy: Some("reject"),
        };
        assert_eq!(
            header("mx1.example.com", &auth),
            "Authentication-Results: mx1.example.com;\r\n\
             \tspf=pass smtp.mailfrom=a@sender.test;\r\n\
             \tdkim=fail header.d=sender.test header.s=sel;\r\n\
             \tdmarc=fail header.from=sender.test\r\n"
        );
    }

    #[test]
    fn no_signature_is_dkim_none_and_odd_values_are_quoted() {
        let auth = AuthFacts {
            spf: check("none", &[("smtp.helo", "bad helo;\r\nX-Evil: 1")]),
            dkim: Vec::new(),
            dmarc: check("none", &[]),
            dmarc_policy: None,
        };
        assert_eq!(
            header("mx1", &auth),
            "Authentication-Results: mx1;\r\n\
             \tspf=none smtp.helo=\"bad helo;X-Evil: 1\";\r\n\
             \tdkim=none;\r\n\
             \tdmarc=none\r\n"
        );
    }

    #[test]
    fn our_authserv_id_is_found_in_our_trace_headers() {
        let auth = AuthFacts::timed_out();
        let prefix = format!("Received: from x\r\n{}", header("mx1.example.com", &auth));
        assert_eq!(authserv_id(&prefix), Some("mx1.example.com"));
        assert_eq!(authserv_id("Received: from x\r\n"), None);
    }

    #[test]
    fn forged_headers_with_our_id_are_removed_others_kept() {
        let raw = b"Authentication-Results: MX1.example.com;\r\n\tspf=pass\r\n\
                    Authentication-Results: other.example; dkim=pass\r\n\
                    Subject: hi\r\n\r\n\
                    Authentication-Results: mx1.example.com; in the body\r\n";
        let out = strip_forged(raw, "mx1.example.com");
        assert_eq!(
            out.as_ref(),
            b"Authentication-Results: other.example; dkim=pass\r\n\
              Subject: hi\r\n\r\n\
              Authentication-Results: mx1.example.com; in the body\r\n"
        );
        let clean = b"Subject: hi\r\n\r\nbody\r\n";
        assert!(matches!(
            strip_forged(clean, "mx1.example.com"),
            Cow::Borrowed(_)
        ));
    }
}
