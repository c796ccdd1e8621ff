//! The only module that knows RocksDB.
//!
//! Everything durable is a key/value pair in one of a few column families ([`Cf`]). Writes
//! are collected into a [`Batch`] and committed by one committer thread that groups the
//! batches of concurrent sessions into one RocksDB write batch, written with `sync = true`
//! when any member needs durability: one WAL sync for the whole group (group commit), and
//! all or nothing. A caller is told `Ok` only after that write returned.
//!
//! [`StoreKind::Memory`] (the simulator) runs the same code on an in-memory RocksDB
//! environment: no disk, small write buffers, and commits written inline on the calling
//! task instead of by the committer thread (see [`StoreKind`]).

pub mod backup;
pub mod bayes;
mod committer;
mod kind;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch};

pub use committer::{COMMIT_GROUP_MAX, COMMIT_QUEUE_MAX};
pub use kind::{MEMORY_WRITE_BUFFER_BYTES, MemEnv, StoreKind};

/// Column families. Keys are chosen so that iteration order is useful (ULIDs sort by time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    /// Raw message bytes by message id, shared by the relay queue and the quarantine.
    Messages,
    /// Relay queue entries by message id.
    Queue,
    /// Quarantine entries by message id.
    Quarantine,
    /// The rule book document and other replicated documents.
    Rules,
    /// Node-local bookkeeping (counters, schema version).
    Meta,
    /// Trace events: `<time ulid>` → event, for `/api/v1/trace`.
    Trace,
    /// The learned Bayes corpus: records by `(owner, digest)` and owner floors
    /// ([`bayes`]).
    Bayes,
    /// Copies of other nodes' quarantined messages this node holds (`e/<id>` → entry,
    /// `r/<id>` → raw bytes), dropped once the message leaves quarantine.
    Copies,
    /// This node's own greylist triplets (`crate::edge::greylist`): key → item JSON.
    Greylist,
}

impl Cf {
    const ALL: [Cf; 9] = [
        Cf::Messages,
        Cf::Queue,
        Cf::Quarantine,
        Cf::Rules,
        Cf::Meta,
        Cf::Trace,
        Cf::Bayes,
        Cf::Copies,
        Cf::Greylist,
    ];

    /// Its RocksDB name (also the `cf` label of the store metrics).
    pub fn name(self) -> &'static str {
        match self {
            Cf::Messages => "messages",
            Cf::Queue => "queue",
            Cf::Quarantine => "quarantine",
            Cf::Rules => "rules",
            Cf::Meta => "meta",
            Cf::Trace => "trace",
            Cf::Bayes => "bayes",
            Cf::Copies => "copies",
            Cf::Greylist => "greylist",
        }
    }
}

/// The room one column family takes ([`Store::sizes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfSize {
    /// The column family.
    pub cf: Cf,
    /// Its live SST files (on disk, compressed; the WAL, shared by all, is not counted).
    pub sst_bytes: u64,
    /// Its memtables (written to the WAL, not yet flushed to an SST file).
    pub memtable_bytes: u64,
}

/// A store failure; the SMTP layer turns any of these into a 4xx.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be opened.
    #[error("store at {path}: cannot open: {message}")]
    Open { path: String, message: String },
    /// A write failed.
    #[error("store write failed: {0}")]
    Write(String),
    /// A read failed.
    #[error("store read failed: {0}")]
    Read(String),
    /// The store is shutting down; nothing more is written.
    #[error("store is shutting down")]
    Closed,
}

/// `Cf::Meta` key written by [`Store::probe`].
const PROBE_KEY: &[u8] = b"store-probe";

/// One write operation inside a [`Batch`].
#[derive(Debug, Clone)]
enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
}

/// An atomic group of writes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Put(cf, key.into(), value.into()));
        self
    }
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete(cf, key.into()));
        self
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Whether writes currently fail: set by the committer when a write fails, cleared by the
/// next write that succeeds (see [`Store::probe`]).
#[derive(Default)]
pub struct WriteHealth {
    failing: Mutex<Option<String>>,
}

impl WriteHealth {
    fn record(&self, result: &Result<(), StoreError>) {
        let mut f = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                if f.take().is_some() {
                    tracing::warn!("store: writes succeed again");
                }
            }
            Err(e) => {
                if f.is_none() {
                    tracing::error!(error = %e, "store: writes fail; SMTP answers 451 until they work again");
                }
                *f = Some(e.to_string());
            }
        }
    }

    fn get(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The node's durable store. Cheap to clone; the last clone dropped stops the committer
/// thread and closes the database (so the directory can be opened again).
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    writer: Writer,
    health: Arc<WriteHealth>,
    /// Unit tests' fault switch ([`Store::fail_writes`]), shared by clones.
    #[cfg(test)]
    fail_writes: Arc<std::sync::atomic::AtomicBool>,
}

/// Who writes batches: the committer thread (on disk), or the caller itself (in memory,
/// where there is no sync to share and no other OS thread may answer a simulated node).
#[derive(Clone)]
enum Writer {
    Committer {
        handle: committer::Handle,
        _closer: Arc<Closer>,
    },
    Inline,
}

/// Joins the committer thread once every clone of the store is gone.
struct Closer {
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: committer::Handle,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.stop.close();
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// Tells whether every clone of a [`Store`] is gone (its database closed), without
/// keeping it open.
pub struct StoreWatch(std::sync::Weak<DB>);

impl StoreWatch {
    /// True once the database is closed.
    pub fn is_closed(&self) -> bool {
        self.0.strong_count() == 0
    }
}

impl Store {
    /// A watch on this store's lifetime.
    pub fn watch(&self) -> StoreWatch {
        StoreWatch(Arc::downgrade(&self.db))
    }

    /// Opens (or creates) the store under `dir` on disk.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_kind(dir, &StoreKind::Disk)
    }

    /// Opens (or creates) the store under `dir`, on disk or in `kind`'s memory environment
    /// (where `dir` is only a name inside that environment).
    pub fn open_kind(dir: &Path, kind: &StoreKind) -> Result<Store, StoreError> {
        let open_err = |e: String| StoreError::Open {
            path: dir.display().to_string(),
            message: e,
        };
        if let StoreKind::Disk = kind {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(64 * 1024 * 1024);
        kind.tune(&mut opts);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            if *cf == Cf::Messages {
                o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            }
            kind.tune(&mut o);
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| open_err(e.to_string()))?;
        let db = Arc::new(db);
        let health = Arc::new(WriteHealth::default());
        let writer = match kind {
            StoreKind::Disk => {
                let (handle, thread) = committer::spawn(db.clone(), health.clone());
                let closer = Arc::new(Closer {
                    thread: std::sync::Mutex::new(Some(thread)),
                    stop: handle.clone(),
                });
                Writer::Committer {
                    handle,
                    _closer: closer,
                }
            }
            StoreKind::Memory(_) => Writer::Inline,
        };
        Ok(Store {
            db,
            writer,
            health,
            #[cfg(test)]
            fail_writes: Arc::default(),
        })
    }

    /// Unit tests: while `on`, every write of this store and its clones fails (as a full
    /// disk would), reads still work.
    #[cfg(test)]
    pub fn fail_writes(&self, on: bool) {
        self.fail_writes
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes one batch through the committer thread, or inline in memory mode.
    async fn write_batch(&self, batch: Batch, sync: bool) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.fail_writes.load(std::sync::atomic::Ordering::Relaxed) {
            let failed = Err(StoreError::Write("injected by a test".into()));
            self.health.record(&failed);
            return failed;
        }
        match &self.writer {
            Writer::Committer { handle, .. } => handle.commit(batch, sync).await,
            Writer::Inline => {
                let result = write(&self.db, batch, sync);
                self.health.record(&result);
                result
            }
        }
    }

    /// The last write error while writes fail (disk full, I/O error), else None.
    pub fn write_error(&self) -> Option<String> {
        self.health.get()
    }

    /// A tiny synced write that clears [`Store::write_error`] once writes work again.
    /// RocksDB recovers from a full disk by itself (its SstFileManager polls for free
    /// space every 5 s and resumes); this only notices it without waiting for mail.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let mut b = Batch::new();
        b.put(
            Cf::Meta,
            PROBE_KEY,
            crate::clock::system_now_ms().to_be_bytes(),
        );
        self.commit(b).await
    }

    /// Commits `batch` durably (synced), sharing the sync with concurrent commits.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.write_batch(batch, true).await
    }

    /// Commits `batch` without waiting for a sync (bookkeeping whose loss is harmless:
    /// trace events, counters, deletions of already-delivered mail).
    pub async fn commit_relaxed(&self, batch: Batch) -> Result<(), StoreError> {
        self.write_batch(batch, false).await
    }

    /// Reads one value.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.handle(cf), key)
            .map_err(|e| StoreError::Read(e.to_string()))
    }

    /// Visits entries in key order starting at `from` (inclusive), until `visit` returns false.
    pub fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mode = IteratorMode::From(from, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.handle(cf), mode) {
            let (k, v) = item.map_err(|e| StoreError::Read(e.to_string()))?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// Visits entries in reverse key order strictly before `before` (newest first for ULID
    /// keys): the continuation of a newest-first listing.
    pub fn scan_rev_before(
        &self,
        cf: Cf,
        before: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mode = IteratorMode::From(before, rocksdb::Direction::Reverse);
        for item in self.db.iterator_cf(self.handle(cf), mode) {
            let (k, v) = item.map_err(|e| StoreError::Read(e.to_string()))?;
            if *k >= *before {
                continue;
            }
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// Visits entries in reverse key order (newest first for ULID keys).
    pub fn scan_rev(
        &self,
        cf: Cf,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for item in self.db.iterator_cf(self.handle(cf), IteratorMode::End) {
            let (k, v) = item.map_err(|e| StoreError::Read(e.to_string()))?;
            if !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// What each column family takes, in [`Cf`] order. A size RocksDB cannot tell reads 0.
    pub fn sizes(&self) -> Vec<CfSize> {
        let int = |cf: Cf, name: &rocksdb::properties::PropName| {
            let value = self.db.property_int_value_cf(self.handle(cf), name);
            value.ok().flatten().unwrap_or(0)
        };
        let size = |cf: Cf| CfSize {
            cf,
            sst_bytes: int(cf, rocksdb::properties::LIVE_SST_FILES_SIZE),
            memtable_bytes: int(cf, rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES),
        };
        Cf::ALL.into_iter().map(size).collect()
    }

    fn handle(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }

    /// Waits for queued commits to finish and syncs the WAL (graceful shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush_wal(true)
            .map_err(|e| StoreError::Write(e.to_string()))
    }
}

/// Applies a batch to RocksDB: by the committer thread, or inline in memory mode.
fn write(db: &DB, batch: Batch, sync: bool) -> Result<(), StoreError> {
    let mut wb = WriteBatch::default();
    for op in batch.ops {
        match op {
            Op::Put(cf, k, v) => wb.put_cf(cf_of(db, cf), k, v),
            Op::Delete(cf, k) => wb.delete_cf(cf_of(db, cf), k),
        }
    }
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(sync);
    db.write_opt(wb, &wo)
        .map_err(|e| StoreError::Write(e.to_string()))
}

fn cf_of(db: &DB, cf: Cf) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf.name())
        .expect("every column family is created at open")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn committed_batches_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut handles = Vec::new();
            for i in 0..50u32 {
                let s = store.clone();
                handles.push(tokio::spawn(async move {
                    let mut b = Batch::new();
                    b.put(Cf::Queue, format!("k{i:03}"), format!("v{i}"));
                    s.commit(b).await
                }));
            }
            for h in handles {
                h.await.unwrap().unwrap();
            }
        }
        let store = Store::open(dir.path()).unwrap();
        let mut n = 0;
        store
            .scan(Cf::Queue, b"", |k, v| {
                let i: u32 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
                assert_eq!(v, format!("v{i}").as_bytes());
                n += 1;
                true
            })
            .unwrap();
        assert_eq!(n, 50);
    }

    #[tokio::test]
    async fn memory_store_survives_reopen_on_its_env_and_a_fresh_env_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = &tmp.path().join("mx1");
        let kind = StoreKind::memory().unwrap();
        {
            let store = Store::open_kind(dir, &kind).unwrap();
            let mut b = Batch::new();
            b.put(Cf::Queue, "k", "v");
            store.commit(b).await.unwrap();
            // rust-rocksdb creates the (empty) directory; every file stays in memory.
            let on_disk = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
            assert_eq!(on_disk, 0, "memory mode wrote files to the disk");
        }
        let again = Store::open_kind(dir, &kind).unwrap();
        assert_eq!(again.get(Cf::Queue, b"k").unwrap(), Some(b"v".to_vec()));
        let fresh = Store::open_kind(dir, &StoreKind::memory().unwrap()).unwrap();
        assert_eq!(fresh.get(Cf::Queue, b"k").unwrap(), None);
    }

    #[tokio::test]
    async fn sizes_show_memtables_then_sst_files_after_reopen() {
        const VALUE_BYTES: usize = 1024;
        const KEYS: usize = 100;
        let dir = tempfile::tempdir().unwrap();
        let of = |store: &Store, cf: Cf| {
            let sizes = store.sizes();
            assert_eq!(sizes.len(), Cf::ALL.len());
            *sizes.iter().find(|s| s.cf == cf).unwrap()
        };
        {
            let store = Store::open(dir.path()).unwrap();
            let mut b = Batch::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for k in 0..KEYS {
                let value: Vec<u8> = (0..VALUE_BYTES)
                    .map(|_| {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        (x >> 56) as u8
                    })
                    .collect();
                b.put(Cf::Bayes, format!("k{k:03}"), value);
            }
            store.commit(b).await.unwrap();
            let bayes = of(&store, Cf::Bayes);
            assert!(
                bayes.memtable_bytes >= (KEYS * VALUE_BYTES) as u64,
                "{bayes:?}"
            );
            assert_eq!(bayes.sst_bytes, 0, "{bayes:?}");
            assert!(of(&store, Cf::Queue).memtable_bytes < bayes.memtable_bytes);
        }
        // Reopening replays the WAL and flushes what it recovered to SST files.
        let store = Store::open(dir.path()).unwrap();
        let bayes = of(&store, Cf::Bayes);
        assert!(
            bayes.sst_bytes >= (KEYS * VALUE_BYTES) as u64 / 2,
            "{bayes:?}"
        );
        assert_eq!(of(&store, Cf::Queue).sst_bytes, 0);
    }

    #[tokio::test]
    async fn delete_and_reverse_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Batch::new();
        b.put(Cf::Trace, "a", "1")
            .put(Cf::Trace, "b", "2")
            .put(Cf::Trace, "c", "3");
        store.commit(b).await.unwrap();
        let mut b = Batch::new();
        b.delete(Cf::Trace, "b");
        store.commit_relaxed(b).await.unwrap();
        let mut keys = Vec::new();
        store
            .scan_rev(Cf::Trace, |k, _| {
                keys.push(k.to_vec());
                true
            })
            .unwrap();
        assert_eq!(keys, vec![b"c".to_vec(), b"a".to_vec()]);
        assert_eq!(store.get(Cf::Trace, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(Cf::Trace, b"b").unwrap(), None);
    }
}
