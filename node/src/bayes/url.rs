//! URLs in text and HTML attributes → features of their hosts.
//!
//! Only the host matters, reduced to its registrable domain (`www.offers.example.co.uk` →
//! `example.co.uk`): the part a sender must buy, which a campaign reuses while it varies
//! everything else. Paths and query strings are per-recipient noise. A host that is an IP
//! literal gives the single feature `u:ip`, never the address itself (addresses are
//! collection- and era-specific); a URL with a user-info part (`http://bank.com@evil/`)
//! gives `u:userinfo`, one with an explicit port `u:port`.
//!
//! The registrable domain is an approximation without the Public Suffix List: the last two
//! labels, or the last three when the top-level label is a two-letter country code and the
//! second-level label is one of the generic second levels countries use (`co`, `com`,
//! `org`, `ac`, `gov`, …). It errs towards a longer domain on rare suffixes, which only
//! makes a feature more specific.

use super::hash::{Kind, Sink};

/// Characters of a host at most; longer ones are not hosts.
const HOST_MAX_CHARS: usize = 253;

/// URLs looked at per call at most (a message of nothing but links stays cheap).
const URLS_PER_TEXT_MAX: usize = 256;

/// Second-level labels under which country-code registries sell names.
const GENERIC_SECOND_LEVELS: &[&str] = &[
    "ac", "co", "com", "edu", "gob", "go", "gov", "ltd", "me", "mil", "ne", "net", "nic", "or",
    "org", "plc", "sch",
];

/// Adds the features of every `http://`, `https://` or `www.` URL found in `text`.
pub(crate) fn text_urls(text: &str, sink: &mut impl Sink) {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut found = 0;
    while pos < bytes.len() && found < URLS_PER_TEXT_MAX && !sink.full() {
        let Some(start) = next_url_start(bytes, pos) else {
            return;
        };
        let end = url_end(bytes, start);
        url_features(&text[start..end], sink);
        found += 1;
        pos = end.max(start + 1);
    }
}

/// Where the next URL starts at or after `from`: `http://`, `https://`, or `www.` at a
/// word start. Each of them is found through the byte after its scheme or its `www` — a
/// `:` or a `.` — so memchr2 leaves out every other byte (a test compares it with a
/// byte-by-byte scan, which cost ~19 instructions per byte of text).
fn next_url_start(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    memchr::memchr2_iter(b':', b'.', rest).find_map(|n| {
        let at = from + n;
        let before = |len: usize, word: &[u8]| {
            (at >= from + len && bytes[at - len..at].eq_ignore_ascii_case(word)).then(|| at - len)
        };
        if bytes[at] == b':' {
            if !bytes[at..].starts_with(b"://") {
                return None;
            }
            return before(4, b"http").or_else(|| before(5, b"https"));
        }
        before(3, b"www").filter(|&s| s == 0 || !bytes[s - 1].is_ascii_alphanumeric())
    })
}

/// The end of a URL that starts at `start`: the first space, quote or angle bracket.
fn url_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>'))
        .map_or(bytes.len(), |n| start + n)
}

/// Adds the features of one URL (absolute `scheme://…`, or starting with `www.`); other
/// URLs (relative, `mailto:`) give nothing.
pub(crate) fn url_features(url: &str, sink: &mut impl Sink) {
    let url = url.trim();
    let rest = if let Some(i) = url.find("://") {
        let scheme = &url[..i];
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return;
        }
        &url[i + 3..]
    } else if url.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("www.")) {
        url
    } else {
        return;
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host_port = match authority.rsplit_once('@') {
        Some((_, host)) => {
            sink.push(Kind::Url, "userinfo");
            host
        }
        None => authority,
    };
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            sink.push(Kind::Url, "port");
            host
        }
        _ => host_port,
    };
    host_feature(host, sink);
}

fn host_feature(host: &str, sink: &mut impl Sink) {
    let host = host.trim_end_matches(['.', ',', ';', ')', ']']);
    if host.is_empty() || host.chars().count() > HOST_MAX_CHARS {
        return;
    }
    if is_ip_literal(host) {
        sink.push(Kind::Url, "ip");
        return;
    }
    if let Some(domain) = registrable_domain(host) {
        sink.push(Kind::Url, &domain);
    }
}

/// Dotted or bracketed numeric hosts, and bare numbers (`http://3627734218/`).
fn is_ip_literal(host: &str) -> bool {
    let numeric = host
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'x' | b'X'));
    host.starts_with('[') || numeric && host.bytes().any(|b| b.is_ascii_digit())
}

/// The registrable part of a host name, lowercased; `None` when it is not a host name
/// (no dot, or characters no host has).
pub(crate) fn registrable_domain(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_lowercase();
    let valid = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    if !host.contains('.') || !host.chars().all(valid) {
        return None;
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return None;
    }
    let n = labels.len();
    let tld = labels[n - 1];
    let second = labels[n - 2];
    let keep = if n >= 3 && tld.len() == 2 && GENERIC_SECOND_LEVELS.contains(&second) {
        3
    } else {
        2
    };
    Some(labels[n - keep..].join("."))
}

#[cfg(test)]
mod tests {
    use super::super::hash::TextSink;
    use super::*;

    fn features(text: &str) -> Vec<String> {
        let mut sink = TextSink::new();
        text_urls(text, &mut sink);
        sink.into_features()
    }

    fn starts_with_ci(bytes: &[u8], prefix: &[u8]) -> bool {
        bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
    }

    /// The byte-by-byte scan `next_url_start` replaced: the model it must agree with.
    fn url_start_model(bytes: &[u8], from: usize) -> Option<usize> {
        (from..bytes.len()).find(|&i| {
            let at = &bytes[i..];
            let http = starts_with_ci(at, b"http")
                && (starts_with_ci(&at[4..], b"://") || starts_with_ci(&at[4..], b"s://"));
            let www =
                starts_with_ci(at, b"www.") && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
            http || www
        })
    }

    proptest::proptest! {
        #[test]
        fn url_starts_agree_with_a_byte_by_byte_scan(
            text in "([hH][tT][tT][pP][sS]?|[wW]{1,4}|:|/|\\.|a| ){0,24}",
            from in 0usize..8,
        ) {
            let bytes = text.as_bytes();
            let from = from.min(bytes.len());
            proptest::prop_assert_eq!(next_url_start(bytes, from), url_start_model(bytes, from), "{:?}", text);
        }
    }

    #[test]
    fn url_starts_in_plain_cases() {
        assert_eq!(next_url_start(b"see http://a.example", 0), Some(4));
        assert_eq!(next_url_start(b"HTTPS://a.example", 0), Some(0));
        assert_eq!(next_url_start(b"awww.x www.y.example", 0), Some(7));
        assert_eq!(next_url_start(b"ftp://x http:/ www", 0), None);
        assert_eq!(next_url_start(b"http://a http://b", 1), Some(9));
    }

    #[test]
    fn registrable_domains() {
        let r = |h| registrable_domain(h);
        assert_eq!(r("www.Example.COM").as_deref(), Some("example.com"));
        assert_eq!(r("a.b.example.co.uk").as_deref(), Some("example.co.uk"));
        assert_eq!(r("shop.example.de").as_deref(), Some("example.de"));
        assert_eq!(r("example.com.").as_deref(), Some("example.com"));
        assert_eq!(r("localhost"), None);
        assert_eq!(r("bad_host!.com"), None);
    }

    #[test]
    fn urls_in_text() {
        let f = features(
            "see http://www.Offers.example.co.uk/x?y=1, then https://user@evil.example:8080/ \
             and www.other.example.org. Not: swww.nope.com mailto:a@b.c",
        );
        assert_eq!(
            f,
            [
                "u:example.co.uk",
                "u:userinfo",
                "u:port",
                "u:evil.example",
                "u:example.org",
            ]
        );
    }

    #[test]
    fn ip_hosts_give_one_feature_not_the_address() {
        assert_eq!(
            features("http://192.0.2.7/a http://3627734218/ http://[2001:db8::1]/"),
            ["u:ip"]
        );
    }

    #[test]
    fn hostile_urls_do_not_panic() {
        features("http://");
        features("https://@:/");
        features(&"http://a".repeat(10_000));
        features("www.");
        features("http://é.€/ http://x.y.z:99999999999999999999/");
        for url in [
            "./\u{fffd}s\u{fffd}i",
            "é",
            "ww€",
            "www€.x",
            "http€://",
            "h€",
        ] {
            let mut sink = TextSink::new();
            url_features(url, &mut sink);
        }
    }
}
