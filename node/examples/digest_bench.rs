//! Digest figures for BENCHMARKS.md: one digest pass for N recipients — time, and the
//! memory the pass adds at its peak.
//!
//! `cargo run --release -p mxmesh-node --example digest_bench -- [RECIPIENTS] [PER_RECIPIENT]`
//! (defaults 10000 and 3). A single node's parts are built over a store on disk; the
//! quarantine is filled through the node's own write path (RECIPIENTS × PER_RECIPIENT held
//! messages of the last hour); then a run is requested and one [`Digest::pass`] collects
//! the recipients from the index, signs every link, builds every digest and queues them
//! with their watermarks (synced writes of [`SEND_BATCH`] digests each). The relay worker
//! does not run, so delivery is not in the figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mxmesh_crdt::qindex::{EntryStatus, IndexEntry};
use mxmesh_node::clock::Clock;
use mxmesh_node::config::Config;
use mxmesh_node::digest::run::SEND_BATCH;
use mxmesh_node::digest::{Digest, DigestParts, STARTUP_WAIT, keys, ledger::Ledger};
use mxmesh_node::health::Health;
use mxmesh_node::quarantine::{Entry, Quarantine};
use mxmesh_node::relay::Relay;
use mxmesh_node::rules::Rules;
use mxmesh_node::stats::Stats;
use mxmesh_node::store::{Batch, Store};

/// Held messages per committed batch while filling.
const FILL_BATCH: usize = 2000;
const DEFAULT_RECIPIENTS: usize = 10_000;
const DEFAULT_PER_RECIPIENT: usize = 3;

fn entry(i: usize, rcpt: usize, now_ms: u64) -> Entry {
    Entry {
        meta: IndexEntry {
            id: format!("01JDIGEST{i:017}"),
            node: "mx1".into(),
            received_ms: now_ms - 3_600_000 + (i as u64 % 3_000_000),
            sender: format!("sender{i}@example.org"),
            recipients: vec![format!("user{rcpt}@example.com")],
            subject: format!("offer number {i} for you"),
            size: 2048,
            reason: "score 12.5 above the quarantine threshold 10".into(),
            rule_id: None,
            score: Some(12.5),
            symbols: Default::default(),
            status: EntryStatus::Quarantined,
            status_ms: now_ms,
            pending: None,
            seq: 0,
            copies: Vec::new(),
            adopted_from: None,
            recipients_released: Vec::new(),
            recipients_deleted: Vec::new(),
        },
        prepend: "Received: from client.test by mx1.example.com\r\n".into(),
    }
}

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn proc_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let recipients: usize = args.next().map_or(Ok(DEFAULT_RECIPIENTS), |a| a.parse())?;
    let per: usize = args
        .next()
        .map_or(Ok(DEFAULT_PER_RECIPIENT), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let text = format!(
        "[node]\nid = \"mx1\"\ndata_dir = \"{}\"\n[smtp]\nlisten = \"127.0.0.1:0\"\nhostname = \"mx1.example.com\"\n\
         [[domains]]\nname = \"example.com\"\nrelay_to = \"127.0.0.1:9\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntokens_file = \"/dev/null\"\n",
        tmp.path().display()
    );
    let config = Arc::new(Config::parse(&text, "bench.toml")?);
    let clock = Clock::system();
    let store = Store::open(tmp.path())?;
    let rules = Arc::new(Rules::load(store.clone(), "mx1".into())?);
    let relay = Relay::new(config.clone(), store.clone(), Arc::new(Stats::default()));
    let quarantine = Quarantine::new(store.clone(), "mx1".into(), clock.clone())?;
    let health = Health::load(store.clone())?;
    let now = clock.now_ms();
    let total = recipients * per;
    let fill = Instant::now();
    for start in (0..total).step_by(FILL_BATCH) {
        let mut batch = Batch::new();
        let entries: Vec<Entry> = (start..(start + FILL_BATCH).min(total))
            .map(|i| entry(i, i % recipients, now))
            .collect();
        for e in &entries {
            Quarantine::stage(&mut batch, e, b"Subject: offer\r\n\r\nbody\r\n");
        }
        store.commit(batch).await?;
        for e in &entries {
            quarantine.added(e);
        }
    }
    println!(
        "filled {total} held messages for {recipients} recipients in {:.1?}",
        fill.elapsed()
    );
    let settings = r#"{"public_url":"https://mx.example.com","sender":"quarantine@example.com"}"#;
    rules
        .set_setting_document("digest", settings, "bench", now)
        .await?;
    keys::ensure(&rules, "bench", now).await?;
    let ledger = Ledger::load("mx1".into(), store.clone(), clock.clone())?;
    let custody = mxmesh_node::cluster::custody::Custody::new(
        store.clone(),
        quarantine.clone(),
        relay.clone(),
        rules.clone(),
        health.clone(),
        clock.clone(),
    );
    let digest = Digest::new(DigestParts {
        node_id: "mx1".into(),
        hostname: "mx1.example.com".into(),
        clock: clock.clone(),
        rules,
        quarantine,
        relay,
        ledger: ledger.clone(),
        custody,
        health,
        mesh: None,
        domains: vec!["example.com".into()],
    });
    tokio::time::sleep(STARTUP_WAIT + Duration::from_millis(100)).await;
    ledger.request_run(clock.now_ms()).await?;
    let rss_before = proc_kib("VmRSS:");
    // Resets VmHWM to the current RSS (Linux), so the peak below is the pass's own.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    digest.pass().await;
    let took = started.elapsed();
    let peak = proc_kib("VmHWM:");
    let status = digest.status();
    println!(
        "pass: {} recipients, {} digests queued (batches of {SEND_BATCH}), complete={} in {:.2?} ({:.0} digests/s)",
        status.recipients,
        status.sent_total,
        status.complete,
        took,
        status.sent_total as f64 / took.as_secs_f64()
    );
    println!(
        "memory: RSS before {:.1} MiB, peak during the pass {:.1} MiB (+{:.1} MiB)",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(rss_before) as f64 / 1024.0
    );
    if let Some(why) = status.waiting {
        anyhow::bail!("the pass did not run: {why}");
    }
    let again = Instant::now();
    digest.pass().await;
    println!(
        "a second look at the same period (complete): {:.2?}",
        again.elapsed()
    );
    Ok(())
}
