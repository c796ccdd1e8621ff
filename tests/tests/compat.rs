//! The wire-compatibility fixtures can be made again (README, "Versions side by side"):
//! `mxmesh-sim compat-fixtures` still records every kind the committed release fixtures
//! hold, so the next release's fixtures are made the same way. That the current code
//! reads the committed ones is `node/tests/wire_compat.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use mxmesh_tests::bin;

/// Every file under `dir`, relative to it, with the numbered exchanges of a sync kind
/// (`frames/<kind>/<nn>-…`, how many depends on the run) as one `frames/<kind>/*-…`.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(kind_of(path.strip_prefix(dir).expect("under dir")));
            }
        }
    }
    out
}

fn kind_of(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let numbered = name
        .split_once('-')
        .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
    match numbered {
        Some((_, side)) if file.starts_with("frames") => file.with_file_name(format!("*-{side}")),
        _ => file.to_path_buf(),
    }
}

#[test]
fn the_generator_makes_every_fixture_the_release_has() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(bin("mxmesh-sim"))
        .args(["compat-fixtures", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let release = mxmesh_tests::manifest_dir().join("fixtures/compat/v0.1.0");
    let made = files(out.path());
    let missing: Vec<_> = files(&release).difference(&made).cloned().collect();
    assert!(missing.is_empty(), "not made again: {missing:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
}
