//! The command line as an operator meets it: --help, `mxmesh check`, `mxctl`, `mxload`.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode, TOKEN, bin};

#[test]
fn every_binary_has_help() {
    for (b, args) in [
        ("mxmesh", vec!["--help"]),
        ("mxmesh", vec!["node", "--help"]),
        ("mxmesh", vec!["check", "--help"]),
        ("mxmesh", vec!["demo", "--help"]),
        ("mxctl", vec!["--help"]),
        ("mxload", vec!["--help"]),
    ] {
        let out = Command::new(bin(b)).args(&args).output().unwrap();
        assert!(out.status.success(), "{b} {args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{b} {args:?}"
        );
    }
}

/// Runs `mxmesh check --config P`.
fn check(p: &std::path::Path) -> std::process::Output {
    Command::new(bin("mxmesh"))
        .arg("check")
        .arg("--config")
        .arg(p)
        .output()
        .unwrap()
}

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("admin.tokens"), "t\n").unwrap();
    let p = dir.join("c.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const GOOD: &str = r#"
[node]
id = "mx1"
data_dir = "data"
[smtp]
listen = "127.0.0.1:2525"
hostname = "mx1.example.com"
[[domains]]
name = "example.com"
relay_to = "127.0.0.1:2526"
[admin]
listen = "127.0.0.1:8025"
tokens_file = "admin.tokens"
"#;

#[test]
fn check_accepts_good_and_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(dir.path(), GOOD);
    let out = check(&p);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cases = [
        (
            GOOD.replace("relay_to = \"127.0.0.1:2526\"", "relay_to = \"nowhere\""),
            "domains[0].relay_to",
        ),
        (GOOD.replace("hostname =", "hostnam ="), "hostnam"),
        (
            GOOD.replace("listen = \"127.0.0.1:2525\"", "listen = \"not an address\""),
            "listen",
        ),
        (
            GOOD.replace(
                "tokens_file = \"admin.tokens\"",
                "tokens_file = \"missing.tokens\"",
            ),
            "admin.tokens_file",
        ),
        (GOOD.replace("id = \"mx1\"", "id = \"\""), "node.id"),
        (
            format!("{GOOD}\n[filter]\ndns_timeout_ms = 0\n"),
            "filter.dns_timeout_ms",
        ),
        (
            GOOD.replace(
                "hostname = \"mx1.example.com\"",
                "hostname = \"mx1.example.com\"\nmax_connections = 100001",
            ),
            "smtp.max_connections",
        ),
        (
            GOOD.replace(
                "hostname = \"mx1.example.com\"",
                "hostname = \"mx1.example.com\"\nmax_recipients = 99",
            ),
            "smtp.max_recipients",
        ),
        (
            format!("{GOOD}\n[relay]\nmax_concurrent_deliveries = 4097\n"),
            "relay.max_concurrent_deliveries",
        ),
        (
            format!("{GOOD}\n[filter]\ndnsbl = [\"not a zone\"]\n"),
            "filter.dnsbl[0]",
        ),
        (
            format!("{GOOD}\n[filter]\non_dns_failure = \"ignore\"\n"),
            "on_dns_failure",
        ),
        (
            format!("{GOOD}\n[filter]\nclamd = \"localhost\"\n"),
            "filter.clamd",
        ),
        (
            format!("{GOOD}\n[filter]\narchive_max_ratio = 0\n"),
            "filter.archive_max_ratio",
        ),
    ];
    for (text, key) in cases {
        let p = write_config(dir.path(), &text);
        let out = check(&p);
        assert!(!out.status.success(), "{key} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "error for {key} does not name it: {err}");
        assert!(err.contains("c.toml"), "error names the file: {err}");
    }
    let out = Command::new(bin("mxmesh"))
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[test]
fn mxctl_and_mxload_against_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let url = format!("http://{}", node.admin);
    let mxctl = |args: &[&str]| {
        let out = Command::new(bin("mxctl"))
            .env("MXMESH_URL", &url)
            .env("MXMESH_TOKEN", TOKEN)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = mxctl(&[
        "rules",
        "add",
        "--json",
        r#"{"name":"q","action":"quarantine","when":{"field":"from","op":"equals","value":"load@mxload.test"}}"#,
    ]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = mxctl(&["rules", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.starts_with("ID ") && out.contains("  q  "),
        "a table row for q: {out}"
    );
    let (ok, _, err) = mxctl(&[
        "rules",
        "add",
        "--json",
        r#"{"name":"bad","action":"nope","when":{"field":"subject","op":"contains","value":"x"}}"#,
    ]);
    assert!(!ok, "a bad rule is an error");
    assert!(err.contains("400") && err.contains("action"), "{err}");

    let out = Command::new(bin("mxload"))
        .args([
            "--to",
            &node.smtp.to_string(),
            "--sessions",
            "4",
            "--messages",
            "40",
            "--size",
            "2048",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accepted"], 40, "{report}");
    let (ok, out, _) = mxctl(&["quarantine", "list", "--limit", "1000", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        40,
        "mxload's sender hits the rule"
    );
    let (ok, out, _) = mxctl(&["--json", "stats"]);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert!(ok && stats["total"]["quarantined"] == 40, "{out}");
    let (ok, out, _) = mxctl(&["stats"]);
    assert!(ok, "{out}");
    assert_eq!(
        table_cell(&out, "TOTAL", "QUARANTINED").as_deref(),
        Some("40"),
        "{out}"
    );

    // Bulk: ids given, one of them no longer quarantined the second time.
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let (ok, out, err) = mxctl(&["--json", "quarantine", "delete", ids[0], ids[1]]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert!(ok, "{out}{err}");
    assert_eq!(
        (&summary["done"], &summary["already"]),
        (&json!(2), &json!(0)),
        "{summary}"
    );
    let (ok, out, err) = mxctl(&["--json", "quarantine", "delete", ids[1], ids[2]]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert!(ok, "already deleted is not a failure: {out}{err}");
    assert_eq!(
        (&summary["done"], &summary["already"]),
        (&json!(1), &json!(1)),
        "{summary}"
    );
    // Bulk by search: every entry still quarantined from that sender is released once.
    let (ok, out, err) = mxctl(&["quarantine", "release", "--sender", "load@mxload.test"]);
    assert!(ok, "{out}{err}");
    let released = out
        .lines()
        .find(|l| l.starts_with("released"))
        .unwrap_or_default();
    assert!(
        released.ends_with(" 37"),
        "a table row of 37 released: {out}"
    );
    sink.wait_count(37, Duration::from_secs(60));
    let (ok, out, _) = mxctl(&["--json", "quarantine", "release", "--all"]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert!(
        ok && summary["matched"] == 0,
        "nothing left quarantined: {out}"
    );
    // Neither ids nor a search, or both: a clear error, nothing done.
    let (ok, _, err) = mxctl(&["quarantine", "release"]);
    assert!(!ok && err.contains("give entry ids"), "{err}");
    let (ok, _, err) = mxctl(&["quarantine", "delete", ids[3], "--all"]);
    assert!(!ok && err.contains("not both"), "{err}");
}

#[test]
fn check_verifies_the_mesh_certificate_names_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    mxmesh_tests::make_certs(&certs, &["mx1", "mx2"]);
    let listen: std::net::SocketAddr = "127.0.0.1:7946".parse().unwrap();
    let good = format!(
        "{GOOD}{}",
        mxmesh_tests::mesh_section(listen, &[], &certs, "mx1")
    );
    let p = write_config(dir.path(), &good);
    let out = check(&p);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let wrong = format!(
        "{GOOD}{}",
        mxmesh_tests::mesh_section(listen, &[], &certs, "mx2")
    );
    let p = write_config(dir.path(), &wrong);
    let out = check(&p);
    assert!(
        !out.status.success(),
        "a certificate for mx2 must not pass for node mx1"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mx1") && err.contains("mx2") && err.contains("[mesh]"),
        "{err}"
    );
}

#[test]
fn dkim_keygen_writes_the_key_and_prints_its_txt_record() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(bin("mxmesh"))
            .args([
                "dkim",
                "keygen",
                "--domain",
                "example.com",
                "--selector",
                "mx2",
                "--out",
            ])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("mx2._domainkey.example.com. IN TXT \"v=DKIM1; k=ed25519; p="),
        "{stdout}"
    );
    let key = dir.path().join("mx2.example.com.key");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.contains("BEGIN PRIVATE KEY"), "{pem}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = run();
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("mx2.example.com.key"));
}

/// The cell of a `mxctl` table in the row starting with `row` under the column `column`
/// (cells are separated by two or more spaces; every cell here is filled).
fn table_cell(table: &str, row: &str, column: &str) -> Option<String> {
    let cells = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut lines = table.lines();
    let header = cells(lines.next()?);
    let at = header.iter().position(|h| h == column)?;
    let line = lines.find(|l| l.starts_with(row))?;
    cells(line).get(at).cloned()
}
