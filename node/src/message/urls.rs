//! URLs of the body: found in text, taken from HTML links, reduced to their hosts; and the
//! registrable domain of a host, which the URIBL lookups and the link checks compare.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

use crate::filter::UrlFact;

/// URLs kept per message at most (the first ones, without repeats).
pub const URLS_MAX: usize = 256;
/// Longest host name accepted (RFC 1035).
const HOST_LEN_MAX: usize = 253;

/// A URL in plain text: a scheme or `www.`, then no white space or delimiter.
static TEXT_URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:https?://|www\.)[^\s<>"'()\[\]{}]+"#).expect("static regex")
});

/// Second-level labels under which registrations happen one level deeper
/// (`example.co.uk`, `example.com.au`): a compact stand-in for the public suffix list,
/// enough for grouping the hosts of one domain.
const SECOND_LEVEL_SUFFIXES: &[&str] = &[
    "ac", "co", "com", "edu", "gov", "gv", "lg", "ltd", "me", "mil", "ne", "net", "nic", "nom",
    "or", "org", "plc", "sch",
];

/// Adds the URLs found in `text` (bare, `link_text` none) to `out`, bounded by [`URLS_MAX`].
pub fn from_text(text: &str, out: &mut Vec<UrlFact>) {
    for found in TEXT_URL.find_iter(text) {
        if out.len() >= URLS_MAX {
            return;
        }
        let url = found
            .as_str()
            .trim_end_matches(['.', ',', ';', ':', '!', '?']);
        if let Some(fact) = parse(url) {
            push_new(out, fact);
        }
    }
}

/// Adds an HTML link to `out` when its href is a web URL, bounded by [`URLS_MAX`].
pub fn from_link(href: &str, text: &str, out: &mut Vec<UrlFact>) {
    if out.len() >= URLS_MAX {
        return;
    }
    if let Some(mut fact) = parse(href) {
        fact.link_text = Some(text.trim().to_string());
        push_new(out, fact);
    }
}

fn push_new(out: &mut Vec<UrlFact>, fact: UrlFact) {
    if !out.contains(&fact) {
        out.push(fact);
    }
}

/// The host facts of an `http(s)://` or `www.` URL; `None` for anything else (mailto,
/// relative links, garbage).
pub fn parse(url: &str) -> Option<UrlFact> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(scheme_end) = ["http://", "https://"]
        .iter()
        .find_map(|s| lower.starts_with(s).then_some(s.len()))
    {
        &url[scheme_end..]
    } else if lower.starts_with("www.") {
        url
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((_, host)) => (true, host),
        None => (false, authority),
    };
    let host = strip_port(host_port)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_is_ip = host.parse::<IpAddr>().is_ok();
    let name_ok = host.contains('.')
        && host.len() <= HOST_LEN_MAX
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && !host.split('.').any(str::is_empty);
    if !(host_is_ip || name_ok) {
        return None;
    }
    Some(UrlFact {
        host,
        host_is_ip,
        userinfo,
        link_text: None,
    })
}

/// `host:port` → `host`; `[v6]:port` → `v6`.
fn strip_port(host_port: &str) -> &str {
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    }
}

/// The registrable domain of a host name: its last two labels, or three under a
/// second-level suffix such as `co.uk` (see [`SECOND_LEVEL_SUFFIXES`]). An IP address,
/// or a name of fewer labels, is returned whole.
pub fn registrable_domain(host: &str) -> &str {
    if host.parse::<IpAddr>().is_ok() {
        return host;
    }
    let labels: Vec<&str> = host.rsplitn(4, '.').collect();
    let keep = match labels.as_slice() {
        [tld, second, _, ..] if tld.len() == 2 && SECOND_LEVEL_SUFFIXES.contains(second) => 3,
        _ => 2,
    };
    if labels.len() <= keep {
        return host;
    }
    let cut: usize = labels[..keep].iter().map(|l| l.len() + 1).sum();
    &host[host.len() + 1 - cut..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_reduce_to_hosts() {
        let url = parse("HTTPS://user:pw@WWW.Example.COM.:8080/a?b#c").unwrap();
        assert_eq!(url.host, "www.example.com");
        assert!(url.userinfo && !url.host_is_ip);
        let ip = parse("http://192.0.2.7/x").unwrap();
        assert!(ip.host_is_ip);
        assert_eq!(
            parse("http://[2001:db8::1]:80/").unwrap().host,
            "2001:db8::1"
        );
        assert_eq!(parse("www.example.org/x").unwrap().host, "www.example.org");
        for bad in [
            "mailto:a@b.test",
            "/relative",
            "http://",
            "http://nodots/",
            "http://a..b/",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_urls_are_found_once() {
        let mut out = Vec::new();
        from_text(
            "See http://a.example/x. Or (www.b.example), again http://a.example/x!",
            &mut out,
        );
        let hosts: Vec<&str> = out.iter().map(|u| u.host.as_str()).collect();
        assert_eq!(hosts, ["a.example", "www.b.example"]);
        let many: String = (0..URLS_MAX + 10)
            .map(|i| format!("http://h{i}.example "))
            .collect();
        let mut out = Vec::new();
        from_text(&many, &mut out);
        assert_eq!(out.len(), URLS_MAX);
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable_domain("a.b.example.com"), "example.com");
        assert_eq!(registrable_domain("example.com"), "example.com");
        assert_eq!(
            registrable_domain("www.shop.example.co.uk"),
            "example.co.uk"
        );
        assert_eq!(registrable_domain("example.co.uk"), "example.co.uk");
        assert_eq!(registrable_domain("localhost"), "localhost");
        assert_eq!(registrable_domain("192.0.2.1"), "192.0.2.1");
    }
}
