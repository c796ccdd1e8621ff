//! Unit tests of `config`.

use super::*;

/// The smallest valid config (one domain, an admin listener); other modules' tests extend it.
pub(crate) const MINIMAL: &str = r#"
[node]
id = "mx1"
data_dir = "/tmp/x"
[smtp]
listen = "127.0.0.1:2525"
hostname = "mx1.example.com"
[[domains]]
name = "example.com"
relay_to = "127.0.0.1:2526"
[admin]
listen = "127.0.0.1:8025"
tokens_file = "/dev/null"
"#;

#[test]
fn minimal_config_parses_with_defaults() {
    let c = Config::parse(MINIMAL, "t.toml").unwrap();
    c.validate("t.toml").unwrap();
    assert_eq!(c.smtp.max_message_size, MESSAGE_SIZE_MAX_DEFAULT_BYTES);
    assert_eq!(c.relay.retry_initial_secs, 60);
    assert_eq!(c.quarantine.retention_days, 30);
    assert_eq!(c.relay_for("EXAMPLE.com."), Some("127.0.0.1:2526"));
    assert_eq!(c.relay_for("other.com"), None);
}

#[test]
fn unknown_key_is_named() {
    let text = MINIMAL.replace("hostname =", "hostnme = \"x\"\nhostname =");
    let err = Config::parse(&text, "t.toml").unwrap_err().to_string();
    assert!(err.contains("hostnme"), "{err}");
    assert!(err.starts_with("t.toml"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("id = \"mx1\"", "id = \"mx 1\"", "node.id"),
        (
            "relay_to = \"127.0.0.1:2526\"",
            "relay_to = \"nowhere\"",
            "domains[0].relay_to",
        ),
        (
            "hostname = \"mx1.example.com\"",
            "hostname = \"\"",
            "smtp.hostname",
        ),
    ];
    for (from, to, key) in cases {
        let c = Config::parse(&MINIMAL.replace(from, to), "t.toml").unwrap();
        let err = c.validate("t.toml").unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{err}");
    }
}

#[test]
fn admin_rate_limit_defaults_and_bounds() {
    let c = Config::parse(MINIMAL, "t.toml").unwrap();
    assert_eq!((c.admin.rate_per_sec, c.admin.rate_burst), (200.0, 400));
    let tokens = "tokens_file = \"/dev/null\"";
    let set = |line: &str| MINIMAL.replace(tokens, &format!("{tokens}\n{line}"));
    let c = Config::parse(&set("rate_per_sec = 0.5\nrate_burst = 3"), "t.toml").unwrap();
    c.validate("t.toml").unwrap();
    assert_eq!((c.admin.rate_per_sec, c.admin.rate_burst), (0.5, 3));
    for (line, key) in [
        ("rate_per_sec = 0.0", "admin.rate_per_sec"),
        ("rate_per_sec = -1.0", "admin.rate_per_sec"),
        ("rate_per_sec = nan", "admin.rate_per_sec"),
        ("rate_per_sec = 2e6", "admin.rate_per_sec"),
        ("rate_burst = 0", "admin.rate_burst"),
        ("rate_burst = 2000000", "admin.rate_burst"),
    ] {
        let c = Config::parse(&set(line), "t.toml").unwrap();
        let err = c.validate("t.toml").unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{line}: {err}");
    }
}

#[test]
fn wrong_type_is_a_parse_error_naming_the_key() {
    let text = MINIMAL.replace("listen = \"127.0.0.1:2525\"", "listen = 25");
    let err = Config::parse(&text, "t.toml").unwrap_err().to_string();
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn filter_section_defaults_and_errors_name_the_key() {
    let c = Config::parse(&format!("{MINIMAL}[filter]\n"), "t.toml").unwrap();
    c.validate("t.toml").unwrap();
    let f = c.filter.unwrap();
    assert_eq!(f.dns_timeout_ms, filter::DNS_TIMEOUT_DEFAULT_MS);
    assert_eq!(f.on_dns_failure, OnFailure::Skip);
    assert_eq!(f.on_clamd_failure, OnFailure::Tempfail);
    assert!(f.authentication);
    assert_eq!(f.archive_max_depth, filter::ARCHIVE_DEPTH_DEFAULT);
    assert!(Config::parse(MINIMAL, "t.toml").unwrap().filter.is_none());

    let cases = [
        ("dnsbl = [\"bad zone\"]", "filter.dnsbl[0]"),
        ("dnsbl = [\"\"]", "filter.dnsbl[0]"),
        ("dns_timeout_ms = 0", "filter.dns_timeout_ms"),
        ("dns_timeout_ms = 999999", "filter.dns_timeout_ms"),
        ("clamd = \"nohost\"", "filter.clamd"),
        ("clamd_timeout_ms = 0", "filter.clamd_timeout_ms"),
        ("archive_max_ratio = 0", "filter.archive_max_ratio"),
        ("archive_max_entries = 0", "filter.archive_max_entries"),
    ];
    for (line, key) in cases {
        let c = Config::parse(&format!("{MINIMAL}[filter]\n{line}\n"), "t.toml").unwrap();
        let err = c.validate("t.toml").unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{line}: {err}");
    }
    for line in [
        "on_dns_failure = \"maybe\"",
        "resolver = \"nowhere\"",
        "archive_max_depth = -1",
    ] {
        let err = Config::parse(&format!("{MINIMAL}[filter]\n{line}\n"), "t.toml")
            .unwrap_err()
            .to_string();
        let key = line.split(' ').next().unwrap();
        assert!(err.contains(key), "{line}: {err}");
    }
}

fn dns_config(extra: &str) -> Config {
    let text = format!(
        "{MINIMAL}[dns]\nname = \"mx.example.com.\"\npublish_address = \"127.0.0.1\"\n{extra}"
    );
    Config::parse(&text, "t.toml").unwrap()
}

fn dns_error(extra: &str) -> String {
    dns_config(extra)
        .validate("t.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn dns_needs_a_server_or_a_publisher() {
    assert!(dns_error("").contains("`dns`"));
    dns_config("listen = \"127.0.0.1:5353\"")
        .validate("t.toml")
        .unwrap();
}

#[test]
fn rfc2136_section_is_checked_key_by_key() {
    let dir = std::env::temp_dir().join(format!("mxmesh-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bind_key = dir.join("bind.key");
    std::fs::write(
        &bind_key,
        "key \"mxmesh.\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==\";\n};\n",
    )
    .unwrap();
    let bare = dir.join("bare.key");
    std::fs::write(&bare, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==\n").unwrap();
    let short = dir.join("short.key");
    std::fs::write(&short, "c2hvcnQ=").unwrap();
    let section = |server: &str, zone: &str, alg: &str, file: &Path| {
        format!(
            "rfc2136 = {{ server = \"{server}\", zone = \"{zone}\", tsig_name = \"mxmesh.\", tsig_algorithm = \"{alg}\", tsig_secret_file = \"{}\" }}",
            file.display()
        )
    };
    let ok = section("127.0.0.1:53", "example.com.", "hmac-sha256", &bind_key);
    dns_config(&ok).validate("t.toml").unwrap();
    let ok = section("127.0.0.1:53", "mx.example.com.", "hmac-sha512", &bare);
    dns_config(&ok).validate("t.toml").unwrap();
    assert_eq!(
        read_tsig_secret(&bind_key).unwrap(),
        read_tsig_secret(&bare).unwrap()
    );
    let cases = [
        (
            section("nowhere", "example.com.", "hmac-sha256", &bare),
            "dns.rfc2136.server",
        ),
        (
            section("127.0.0.1:53", "example.com", "hmac-sha256", &bare),
            "dns.rfc2136.zone",
        ),
        (
            section("127.0.0.1:53", "other.org.", "hmac-sha256", &bare),
            "dns.rfc2136.zone",
        ),
        (
            section("127.0.0.1:53", "example.com.", "hmac-md5", &bare),
            "dns.rfc2136.tsig_algorithm",
        ),
        (
            section("127.0.0.1:53", "example.com.", "hmac-sha256", &short),
            "dns.rfc2136.tsig_secret_file",
        ),
        (
            section(
                "127.0.0.1:53",
                "example.com.",
                "hmac-sha256",
                &dir.join("missing"),
            ),
            "dns.rfc2136.tsig_secret_file",
        ),
    ];
    for (extra, key) in cases {
        let err = dns_error(&extra);
        assert!(err.contains(&format!("`{key}`")), "{extra}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
