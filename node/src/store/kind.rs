//! Where a store keeps its data: on disk (the daemon) or in an in-memory RocksDB
//! environment (the simulator), with the memory mode's tuning.

use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, Env, Options};

use super::StoreError;

/// Memtable size per column family in memory mode (RocksDB's default is 64 MiB).
pub const MEMORY_WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Memtables per column family in memory mode.
const MEMORY_WRITE_BUFFERS_MAX: i32 = 2;
/// Total WAL kept in memory before RocksDB flushes memtables.
const MEMORY_WAL_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Block cache per column family in memory mode (RocksDB's default is 32 MiB).
const MEMORY_BLOCK_CACHE_BYTES: usize = 256 * 1024;

/// Which storage a node's store opens on.
#[derive(Clone, Default)]
pub enum StoreKind {
    /// The data directory on disk, synced writes through the committer thread.
    #[default]
    Disk,
    /// An in-memory environment: the data lives as long as the [`MemEnv`] (so a node
    /// restarted on the same one keeps it; a fresh one is a wiped disk). Commits run inline
    /// on the calling task.
    Memory(MemEnv),
}

/// An in-memory RocksDB environment, shared by every open of one simulated node's store.
#[derive(Clone)]
pub struct MemEnv(Arc<Env>);

impl MemEnv {
    pub fn new() -> Result<MemEnv, StoreError> {
        Env::mem_env()
            .map(|e| MemEnv(Arc::new(e)))
            .map_err(|e| StoreError::Open {
                path: "(memory environment)".into(),
                message: e.to_string(),
            })
    }
}

impl StoreKind {
    /// A memory store on a fresh environment.
    pub fn memory() -> Result<StoreKind, StoreError> {
        MemEnv::new().map(StoreKind::Memory)
    }

    /// Applies this kind's settings to the database or a column family's options.
    pub(super) fn tune(&self, opts: &mut Options) {
        let StoreKind::Memory(env) = self else {
            return;
        };
        opts.set_env(&env.0);
        opts.set_write_buffer_size(MEMORY_WRITE_BUFFER_BYTES);
        opts.set_max_write_buffer_number(MEMORY_WRITE_BUFFERS_MAX);
        opts.set_max_total_wal_size(MEMORY_WAL_BYTES_MAX);
        opts.set_stats_dump_period_sec(0);
        opts.set_stats_persist_period_sec(0);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(MEMORY_BLOCK_CACHE_BYTES));
        opts.set_block_based_table_factory(&table);
    }
}
