//! The connecting client as the SMTP session saw it: the name it gave in HELO/EHLO and
//! what reverse DNS says of its address. Mail servers greet with their fully qualified
//! name and have a reverse name that resolves back to them; hosts on access lines
//! (dialup, DSL, cable) that send straight to an MX are mostly infected machines, and
//! they greet with a bare word, an address, or a large provider's name. Clients that are
//! not public (loopback, private ranges) and outbound mail are not judged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Hits;
use crate::filter::{Direction, MessageFacts, ReverseName, is_public_client};
use crate::spam::symbols::*;

/// Large mailbox providers: their servers greet with their own host names, which their
/// reverse names match; a HELO naming one from elsewhere is forged.
const PROVIDERS: &[&str] = &[
    "163.com",
    "aol.com",
    "att.net",
    "comcast.net",
    "compuserve.com",
    "earthlink.net",
    "excite.com",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hotmail.com",
    "icloud.com",
    "juno.com",
    "live.com",
    "lycos.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "netscape.net",
    "outlook.com",
    "qq.com",
    "rediffmail.com",
    "verizon.net",
    "web.de",
    "yahoo.com",
    "yandex.ru",
];

/// Words of reverse names that ISPs give their access lines, alone or with a number
/// (`dsl`, `pool3`).
const ACCESS_WORDS: &[&str] = &[
    "adsl",
    "broadband",
    "cable",
    "catv",
    "cpe",
    "dhcp",
    "dial",
    "dialin",
    "dialup",
    "dsl",
    "dyn",
    "dynamic",
    "dynip",
    "modem",
    "pool",
    "ppp",
    "pppoe",
    "sdsl",
    "vdsl",
    "xdsl",
];

/// Words that name an access line only with a number attached (`host3`, `user12`): alone
/// they are ordinary server names (`host.example.org`).
const NUMBERED_WORDS: &[&str] = &["client", "clients", "host", "ras", "user"];

/// A run of this many digits in a host name is an address written out (`203186114131`).
const DIGIT_RUN_MIN: usize = 8;

/// Adds the client symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    if facts.direction == Direction::Outbound || !is_public_client(facts.client_ip) {
        return;
    }
    helo(facts, hits);
    match &facts.reverse_name {
        ReverseName::Missing => hits.add(RDNS_NONE, facts.client_ip.to_string()),
        ReverseName::Name(name) if provider_of(name).is_none() && access_line(name) => {
            hits.add(RDNS_DYNAMIC, name.as_str())
        }
        _ => {}
    }
}

/// The HELO symbols: an address, a bare word, or a provider's name used from elsewhere.
fn helo(facts: &MessageFacts, hits: &mut Hits) {
    let name = facts.helo.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return;
    }
    if is_address(&name) {
        hits.add(HELO_IP_LITERAL, name);
        return;
    }
    if !name.contains('.') {
        hits.add(HELO_NOT_FQDN, name);
        return;
    }
    let Some(provider) = provider_of(&name) else {
        return;
    };
    let forged = match &facts.reverse_name {
        // Their servers greet with a host name, never the bare domain.
        _ if name == *provider => true,
        ReverseName::Missing => true,
        ReverseName::Name(reverse) => !within(reverse, provider),
        ReverseName::NotChecked => false,
    };
    if forged {
        hits.add(HELO_FORGED_PROVIDER, name);
    }
}

/// `[192.0.2.1]`, `[ipv6:2001:db8::1]` (lowercase, as [`helo`] passes it), or an address
/// without the brackets. Anything else in brackets is a bare word.
fn is_address(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(inner) => match inner.strip_prefix("ipv6:") {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => inner.parse::<Ipv4Addr>().is_ok(),
        },
        None => name.parse::<IpAddr>().is_ok(),
    }
}

/// The provider of [`PROVIDERS`] that `name` is or is under.
fn provider_of(name: &str) -> Option<&'static str> {
    PROVIDERS.iter().copied().find(|p| within(name, p))
}

/// Whether `name` is `domain` or a name under it.
fn within(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Whether a reverse name is that of an access line: below its last two labels it has
/// three numbers up to 255 joined by `-`, `.`, `_` or `x` (`24-205-211-91`), a run of
/// [`DIGIT_RUN_MIN`] digits, or a word (split at `.`, `-`, `_`) of [`ACCESS_WORDS`] with
/// an optional number, or of [`NUMBERED_WORDS`] with one.
fn access_line(name: &str) -> bool {
    let mut labels = name.rsplitn(3, '.');
    let (Some(_tld), Some(_domain), Some(host)) = (labels.next(), labels.next(), labels.next())
    else {
        return false;
    };
    has_octet_run(host)
        || longest_digit_run(host) >= DIGIT_RUN_MIN
        || host.split(['.', '-', '_']).any(access_word)
}

/// Whether one word of a host name says "access line".
fn access_word(word: &str) -> bool {
    let stem = word.trim_end_matches(|c: char| c.is_ascii_digit());
    let numbered = stem.len() < word.len();
    ACCESS_WORDS.contains(&stem) || (numbered && NUMBERED_WORDS.contains(&stem))
}

/// Three numbers of at most three digits, each up to 255, joined by single separators:
/// three neighbouring runs of digits with one `-`, `.`, `_` or `x` between each two.
fn has_octet_run(host: &str) -> bool {
    let runs: Vec<(usize, usize)> = digit_runs(host).collect();
    let octet = |&(start, end): &(usize, usize)| {
        end - start <= 3 && host[start..end].parse::<u16>().is_ok_and(|n| n <= 255)
    };
    let joined = |pair: &[(usize, usize)]| {
        let (gap, next) = (pair[0].1, pair[1].0);
        next == gap + 1 && matches!(host.as_bytes()[gap], b'-' | b'.' | b'_' | b'x')
    };
    runs.windows(3)
        .any(|three| three.iter().all(octet) && three.windows(2).all(joined))
}

/// The length of the longest run of ASCII digits in `host`.
fn longest_digit_run(host: &str) -> usize {
    digit_runs(host)
        .map(|(start, end)| end - start)
        .max()
        .unwrap_or(0)
}

/// `(start, end)` byte offsets of each maximal run of ASCII digits, in order.
fn digit_runs(host: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = host.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + bytes[at..].iter().position(u8::is_ascii_digit)?;
        let len = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        at = start + len;
        Some((start, at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spam::checks::test_support::names;

    fn client(ip: &str, helo: &str, reverse: ReverseName) -> MessageFacts {
        MessageFacts {
            client_ip: ip.parse().expect("address"),
            helo: helo.into(),
            reverse_name: reverse,
            ..MessageFacts::default()
        }
    }

    fn named(name: &str) -> ReverseName {
        ReverseName::given(name)
    }

    #[test]
    fn a_mail_server_is_clean() {
        let facts = client("192.0.2.1", "mx1.example.com", named("mx1.example.com"));
        assert!(names(check, &facts).is_empty());
        let yahoo = client(
            "192.0.2.1",
            "n38.grp.scd.yahoo.com",
            named("n38.grp.scd.yahoo.com"),
        );
        assert!(names(check, &yahoo).is_empty());
        let unchecked = client("192.0.2.1", "mail.example.org", ReverseName::NotChecked);
        assert!(names(check, &unchecked).is_empty());
    }

    #[test]
    fn helo_shapes() {
        let bare = client("192.0.2.1", "john000", named("mx.example.com"));
        assert_eq!(names(check, &bare), [HELO_NOT_FQDN]);
        let literal = client("192.0.2.1", "[192.0.2.1]", named("mx.example.com"));
        assert_eq!(names(check, &literal), [HELO_IP_LITERAL]);
        let address = client("192.0.2.1", "192.0.2.9", named("mx.example.com"));
        assert_eq!(names(check, &address), [HELO_IP_LITERAL]);
        let v6 = client("192.0.2.1", "[IPv6:2001:db8::1]", named("mx.example.com"));
        assert_eq!(names(check, &v6), [HELO_IP_LITERAL]);
        // Brackets around anything but an address make no address literal.
        for word in ["[x]", "[]", "[ipv6:nonsense]"] {
            let facts = client("192.0.2.1", word, named("mx.example.com"));
            assert_eq!(names(check, &facts), [HELO_NOT_FQDN], "{word}");
        }
        let dotted = client("192.0.2.1", "[192.0.2]", named("mx.example.com"));
        assert!(names(check, &dotted).is_empty());
        let long = "a".repeat(100_000);
        let facts = client("192.0.2.1", &long, named("mx.example.com"));
        assert_eq!(names(check, &facts), [HELO_NOT_FQDN]);
    }

    #[test]
    fn a_provider_claimed_from_elsewhere_is_forged() {
        let bare = client("192.0.2.1", "aol.com", named("mail.example.net"));
        assert_eq!(names(check, &bare), [HELO_FORGED_PROVIDER]);
        let elsewhere = client("192.0.2.1", "mx4.hotmail.com", named("mail.example.net"));
        assert_eq!(names(check, &elsewhere), [HELO_FORGED_PROVIDER]);
        let nameless = client("192.0.2.1", "mx4.hotmail.com", ReverseName::Missing);
        assert_eq!(names(check, &nameless), [HELO_FORGED_PROVIDER, RDNS_NONE]);
        let own = client("192.0.2.1", "mx4.hotmail.com", named("bay4.hotmail.com"));
        assert!(names(check, &own).is_empty());
        // A name merely ending in a provider's letters is not that provider.
        let lookalike = client("192.0.2.1", "mx.notaol.com", named("mx.example.net"));
        assert!(names(check, &lookalike).is_empty());
    }

    #[test]
    fn access_line_names() {
        for name in [
            "24-205-211-91.rno-cres.charterpipeline.net",
            "157.red-80-32-90.pooles.rima-tde.net",
            "203186114131.ctinets.com",
            "c-24-98-25-152.atl.client2.attbi.com",
            "adsl12.example.net",
            "pool-71-1-2-3.nycmny.fios.verizon.net",
            "host3.example.org",
            "user12.dial.example.net",
            "p5x8x44.dip.t-dialin.net",
        ] {
            assert!(access_line(name), "{name}");
        }
        for name in [
            "mail.example.com",
            "mx2.freebsd.org",
            "mail-ej1-f54.google.com",
            "a8-12.smtp-out.amazonses.com",
            "sonic301-21.consmr.mail.ne1.yahoo.com",
            "example.com",
            "o1.email.sendgrid.net",
            "lugh.tuatha.org",
            "host.example.org",
            "client.mail.example.org",
            "256-1-2.example.org",
        ] {
            assert!(!access_line(name), "{name}");
        }
        // Large providers' own servers are never judged access lines, whatever their names.
        for name in [
            "out203-205-221-240.mail.qq.com",
            "st43p00im-ztfb10073301.me.com",
        ] {
            let facts = client("192.0.2.1", "mx.example.com", named(name));
            assert!(names(check, &facts).is_empty(), "{name}");
        }
    }

    #[test]
    fn reverse_dns() {
        let none = client("192.0.2.1", "mx.example.com", ReverseName::Missing);
        assert_eq!(names(check, &none), [RDNS_NONE]);
        let dynamic = client(
            "192.0.2.1",
            "mx.example.com",
            named("12-243-62-67.client.attbi.com"),
        );
        assert_eq!(names(check, &dynamic), [RDNS_DYNAMIC]);
        assert_eq!(named("Unknown"), ReverseName::Missing);
        assert_eq!(named("MX.Example.com."), named("mx.example.com"));
    }

    #[test]
    fn inside_clients_and_outbound_mail_are_not_judged() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.5",
            "::1",
            "fd00::5",
            "fe80::1",
        ] {
            let facts = client(ip, "localhost", ReverseName::Missing);
            assert!(names(check, &facts).is_empty(), "{ip}");
        }
        for ip in ["::ffff:10.0.0.1", "::ffff:127.0.0.1"] {
            let facts = client(ip, "localhost", ReverseName::Missing);
            assert!(names(check, &facts).is_empty(), "{ip}");
        }
        let mapped = client("::ffff:192.0.2.1", "laptop", ReverseName::Missing);
        assert_eq!(names(check, &mapped), [HELO_NOT_FQDN, RDNS_NONE]);
        let mut outbound = client("192.0.2.1", "laptop", ReverseName::Missing);
        outbound.direction = Direction::Outbound;
        assert!(names(check, &outbound).is_empty());
    }
}
