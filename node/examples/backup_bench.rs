//! Backup figures for BENCHMARKS.md: time and size of `mxmesh backup` (a RocksDB
//! checkpoint of the whole store) and of `mxmesh restore` (copying it into an empty data
//! directory) for a store holding N quarantined messages.
//!
//! `cargo run -p mxmesh-node --example backup_bench -- [N] [MESSAGE_BYTES]`
//! (defaults 100000 and 4096). The store is filled through the node's own write path
//! (quarantine entries and their bytes, committed in batches), closed and reopened (so the
//! data sits in SST files as on a node that has run a while), then checkpointed; then
//! [`FILL_BATCH`] more messages are written and it is checkpointed again (the checkpoint
//! flushes them from the memtables first, as on a node taking mail).

use std::time::Instant;

use mxmesh_crdt::qindex::{EntryStatus, IndexEntry};
use mxmesh_node::quarantine::{Entry, Quarantine};
use mxmesh_node::store::backup::{copy_in, dir_size};
use mxmesh_node::store::{Batch, Store};

/// Messages per committed batch while filling.
const FILL_BATCH: usize = 1000;
/// Default number of quarantined messages.
const DEFAULT_MESSAGES: usize = 100_000;
/// Default message size in bytes.
const DEFAULT_MESSAGE_BYTES: usize = 4096;

fn entry(i: usize, size: usize) -> Entry {
    Entry {
        meta: IndexEntry {
            id: format!("01JBENCH{i:018}"),
            node: "mx1".into(),
            received_ms: 1_700_000_000_000 + i as u64,
            sender: format!("sender{i}@example.org"),
            recipients: vec![format!("user{}@example.com", i % 1000)],
            subject: format!("offer number {i} for you"),
            size: size as u64,
            reason: "rule hold".into(),
            rule_id: None,
            score: None,
            symbols: Default::default(),
            status: EntryStatus::Quarantined,
            status_ms: 1_700_000_000_000 + i as u64,
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

/// A message body: mail-like text that compresses about as real mail does (varied words,
/// not one repeated byte).
fn body(i: usize, size: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "offer", "free", "click", "here", "meeting", "invoice", "the", "and", "please", "account",
        "winner", "report", "link", "today", "price", "order",
    ];
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out =
        format!("Subject: offer number {i}\r\nFrom: sender{i}@example.org\r\n\r\n").into_bytes();
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
    }
    out.truncate(size);
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(DEFAULT_MESSAGES), |a| a.parse())?;
    let size: usize = args
        .next()
        .map_or(Ok(DEFAULT_MESSAGE_BYTES), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let filled = Instant::now();
    {
        let store = Store::open(&data)?;
        let mut i = 0;
        while i < n {
            let mut b = Batch::new();
            for j in i..(i + FILL_BATCH).min(n) {
                Quarantine::stage(&mut b, &entry(j, size), &body(j, size));
            }
            store.commit(b).await?;
            i += FILL_BATCH;
        }
        store.flush()?;
    }
    let fill_s = filled.elapsed().as_secs_f64();
    let store = Store::open(&data)?;
    let (data_files, data_bytes) = dir_size(&data)?;
    let out = tmp.path().join("backup");
    let started = Instant::now();
    let manifest = store.checkpoint("mx1", &out, 0)?;
    let backup_s = started.elapsed().as_secs_f64();
    // As on a node taking mail: fresh writes in the memtables, which the checkpoint flushes.
    let mut b = Batch::new();
    for j in n..n + FILL_BATCH {
        Quarantine::stage(&mut b, &entry(j, size), &body(j, size));
    }
    store.commit(b).await?;
    let started = Instant::now();
    store.checkpoint("mx1", &tmp.path().join("backup-busy"), 0)?;
    let busy_s = started.elapsed().as_secs_f64();
    drop(store);
    let restored = tmp.path().join("restored");
    let started = Instant::now();
    copy_in(&out, &restored)?;
    let restore_s = started.elapsed().as_secs_f64();
    println!(
        "messages={n} message_bytes={size} fill_s={fill_s:.1} data_files={data_files} data_mb={:.1} \
         backup_s={backup_s:.2} backup_with_{FILL_BATCH}_unflushed_s={busy_s:.2} backup_files={} backup_mb={:.1} restore_copy_s={restore_s:.2}",
        data_bytes as f64 / 1e6,
        manifest.files,
        manifest.bytes as f64 / 1e6,
    );
    Ok(())
}
