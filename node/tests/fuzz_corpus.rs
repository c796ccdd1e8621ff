//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and a bounded number of
//! deterministic mutations of it through the fuzz target bodies, as an ordinary test, so CI
//! checks every target without building libFuzzer (see RELIABILITY.md, "Fuzzing").
//! `MXMESH_FUZZ_REPLAY_ITERS` sets the mutations per target (default 3000).

#[allow(dead_code)]
#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::PathBuf;

/// This package's directory as cargo names it when it runs the tests (the compile-time
/// value may be another checkout that shared the target directory).
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn corpus_dir(target: &str) -> PathBuf {
    package_dir().join("../fuzz/corpus").join(target)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("corpus of {target}: {e}"))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("corpus file"))
        .collect()
}

/// xorshift64*: deterministic, so a failure reproduces from its iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to these parsers, used by the mutator.
const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\r\n.\r\n",
    b"\x00",
    b"\xff",
    b"<",
    b">",
    b"@",
    b":",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"--",
    b"=?",
    b"?=",
    b"DATA\r\n",
    b"MAIL FROM:<>",
    b"STARTTLS\r\n",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            2 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(at..at, token.iter().copied());
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied());
            }
            4 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            _ => {
                let byte = rng.next() as u8;
                let n = rng.below(300);
                data.splice(at..at, std::iter::repeat_n(byte, n));
            }
        }
    }
    data
}

fn iterations() -> usize {
    std::env::var("MXMESH_FUZZ_REPLAY_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn replay(name: &str) {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known target");
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "empty corpus for {name}");
    for seed in &seeds {
        target(seed);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    for i in 0..iterations() {
        let input = mutate(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| target(&input));
        if outcome.is_err() {
            let path = std::env::temp_dir().join(format!("mxmesh-fuzz-{name}-{i}"));
            let _ = std::fs::write(&path, &input);
            panic!(
                "{name}: mutation {i} failed; input saved to {}",
                path.display()
            );
        }
    }
}

#[test]
fn smtp_commands() {
    replay("smtp_commands");
}

#[test]
fn data_framer() {
    replay("data_framer");
}

#[test]
fn message_pipeline() {
    replay("message_pipeline");
}

#[test]
fn rule_json() {
    replay("rule_json");
}

#[test]
fn mesh_decoders() {
    replay("mesh_decoders");
}

#[test]
fn every_target_has_a_test_and_a_corpus() {
    for (name, _) in targets::TARGETS {
        assert!(corpus_dir(name).is_dir(), "no corpus for {name}");
        let bin = package_dir()
            .join("../fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(bin.is_file(), "no fuzz target file for {name}");
    }
}

/// Fresh automerge sync messages (the kind the committed `rules_sync_*` seeds were made
/// from) go through the mesh decoders target too, so a change to the rule book's sync format
/// is exercised even before the corpus is regenerated.
#[test]
fn fresh_rules_sync_messages_pass_the_mesh_decoders_target() {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == "mesh_decoders")
        .expect("known target");
    let seeds = targets::rules_sync_seeds();
    assert!(!seeds.is_empty());
    for seed in &seeds {
        target(seed);
    }
}
