//! Online backups of the store (RocksDB checkpoints) and the restored mark.
//!
//! A checkpoint is a consistent copy of every column family at one point in time: RocksDB
//! flushes the memtables and hard-links (or copies) the live SST files into a new directory,
//! so taking one does not stop writes. Beside the database files the backup holds
//! [`MANIFEST_FILE`], which names the node and the time of the backup. A store copied back
//! from a backup is marked restored ([`mark_restored`]) until the node has merged what its
//! peers know of its quarantine log (`quarantine::restore`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreError};

/// The file in a backup directory that describes it.
pub const MANIFEST_FILE: &str = "mxmesh-backup.json";
/// `Cf::Meta` key present while a restored store has not yet rejoined: the backup's time
/// (ms since the epoch, big-endian u64).
pub const RESTORED_KEY: &[u8] = b"restored-from-backup-ms";
/// Files one backup or restore handles at most (a store has a few hundred at most).
pub const BACKUP_FILES_MAX: usize = 100_000;

/// What a backup wrote, as `mxmesh backup` prints it and `POST /api/v1/backup` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// The node whose store this is.
    pub node: String,
    /// When the checkpoint was taken (ms since the epoch).
    pub time_ms: u64,
    /// Files in the backup (the manifest excluded).
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// How long the checkpoint took, in milliseconds.
    pub took_ms: u64,
}

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target directory holds files already.
    #[error("{0} exists and is not empty: choose a new directory (a backup never overwrites one)")]
    NotEmpty(PathBuf),
    /// A file system operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// RocksDB refused the checkpoint.
    #[error("checkpoint into {path}: {message}")]
    Checkpoint {
        /// The target directory.
        path: PathBuf,
        /// RocksDB's message.
        message: String,
    },
    /// The backup directory is not a usable backup.
    #[error("{path}: not an mxmesh backup: {message}")]
    NotABackup {
        /// The directory at fault.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
    /// More files than [`BACKUP_FILES_MAX`].
    #[error("{0}: more than {BACKUP_FILES_MAX} files")]
    TooManyFiles(PathBuf),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// True when `dir` does not exist or is an empty directory.
pub fn is_absent_or_empty(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Refuses a non-empty `out`, and removes an empty one (RocksDB creates the directory of a
/// checkpoint itself and refuses an existing one).
fn prepare_out(out: &Path) -> Result<(), BackupError> {
    if !is_absent_or_empty(out)? {
        return Err(BackupError::NotEmpty(out.to_path_buf()));
    }
    if out.exists() {
        std::fs::remove_dir(out).map_err(io_err(out))?;
    }
    Ok(())
}

/// The number of files under `dir` (not recursive: a store is flat) and their total size,
/// the manifest excluded.
pub fn dir_size(dir: &Path) -> Result<(usize, u64), BackupError> {
    let mut files = 0usize;
    let mut bytes = 0u64;
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let meta = entry.metadata().map_err(io_err(&entry.path()))?;
        if meta.is_file() && entry.file_name() != MANIFEST_FILE {
            files += 1;
            bytes += meta.len();
            if files > BACKUP_FILES_MAX {
                return Err(BackupError::TooManyFiles(dir.to_path_buf()));
            }
        }
    }
    Ok((files, bytes))
}

impl Store {
    /// Writes a consistent checkpoint of the whole store into `out` (which must not exist
    /// or be empty) with its [`MANIFEST_FILE`]; `now_ms` dates it. Blocking: run it off
    /// the async runtime.
    pub fn checkpoint(
        &self,
        node: &str,
        out: &Path,
        now_ms: u64,
    ) -> Result<BackupManifest, BackupError> {
        prepare_out(out)?;
        let started = std::time::Instant::now();
        let checkpoint_err = |e: rocksdb::Error| BackupError::Checkpoint {
            path: out.to_path_buf(),
            message: e.to_string(),
        };
        let cp = rocksdb::checkpoint::Checkpoint::new(&*self.db).map_err(checkpoint_err)?;
        cp.create_checkpoint(out).map_err(checkpoint_err)?;
        let (files, bytes) = dir_size(out)?;
        let manifest = BackupManifest {
            node: node.to_string(),
            time_ms: now_ms,
            files,
            bytes,
            took_ms: started.elapsed().as_millis() as u64,
        };
        write_manifest(out, &manifest)?;
        Ok(manifest)
    }

    /// The backup time a restored store was marked with, until [`Store::clear_restored`].
    pub fn restored_mark(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .get(Cf::Meta, RESTORED_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    /// Removes the restored mark (the node has rejoined).
    pub async fn clear_restored(&self) -> Result<(), StoreError> {
        let mut b = Batch::new();
        b.delete(Cf::Meta, RESTORED_KEY);
        self.commit(b).await
    }
}

/// Marks `store` as restored from a backup taken at `backup_ms`.
pub async fn mark_restored(store: &Store, backup_ms: u64) -> Result<(), StoreError> {
    let mut b = Batch::new();
    b.put(Cf::Meta, RESTORED_KEY, backup_ms.to_be_bytes());
    store.commit(b).await
}

fn write_manifest(dir: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let text = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
    std::fs::write(&path, text).map_err(io_err(&path))
}

/// Reads the manifest of the backup in `dir`.
pub fn read_manifest(dir: &Path) -> Result<BackupManifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let not_backup = |message: String| BackupError::NotABackup {
        path: dir.to_path_buf(),
        message,
    };
    let text = std::fs::read(&path).map_err(|e| not_backup(format!("{MANIFEST_FILE}: {e}")))?;
    serde_json::from_slice(&text).map_err(|e| not_backup(format!("{MANIFEST_FILE}: {e}")))
}

/// Copies the database files of the backup in `from` into `data_dir` (absent or empty;
/// never overwritten). Returns the backup's manifest. The caller marks the store restored.
pub fn copy_in(from: &Path, data_dir: &Path) -> Result<BackupManifest, BackupError> {
    let manifest = read_manifest(from)?;
    if !from.join("CURRENT").is_file() {
        return Err(BackupError::NotABackup {
            path: from.to_path_buf(),
            message: "no RocksDB CURRENT file".into(),
        });
    }
    if !is_absent_or_empty(data_dir)? {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let mut copied = 0usize;
    for entry in std::fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let path = entry.path();
        if !entry.file_type().map_err(io_err(&path))?.is_file()
            || entry.file_name() == MANIFEST_FILE
        {
            continue;
        }
        copied += 1;
        if copied > BACKUP_FILES_MAX {
            return Err(BackupError::TooManyFiles(from.to_path_buf()));
        }
        let target = data_dir.join(entry.file_name());
        std::fs::copy(&path, &target).map_err(io_err(&target))?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_checkpoint_restores_into_a_new_dir_marked_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let out = tmp.path().join("backup");
        {
            let store = Store::open(&data).unwrap();
            let mut b = Batch::new();
            b.put(Cf::Quarantine, "k", "v");
            store.commit(b).await.unwrap();
            let m = store.checkpoint("mx1", &out, 42).unwrap();
            assert_eq!((m.node.as_str(), m.time_ms), ("mx1", 42));
            assert!(m.files > 0 && m.bytes > 0, "{m:?}");
            let again = store.checkpoint("mx1", &out, 43).unwrap_err();
            assert!(matches!(again, BackupError::NotEmpty(_)), "{again}");
        }
        let restored = tmp.path().join("restored");
        let m = copy_in(&out, &restored).unwrap();
        assert_eq!(m.time_ms, 42);
        assert!(matches!(
            copy_in(&out, &restored).unwrap_err(),
            BackupError::NotEmpty(_)
        ));
        let store = Store::open(&restored).unwrap();
        assert_eq!(
            store.get(Cf::Quarantine, b"k").unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(store.restored_mark().unwrap(), None);
        mark_restored(&store, 42).await.unwrap();
        assert_eq!(store.restored_mark().unwrap(), Some(42));
        store.clear_restored().await.unwrap();
        assert_eq!(store.restored_mark().unwrap(), None);
    }

    #[test]
    fn a_directory_without_a_manifest_is_not_a_backup() {
        let tmp = tempfile::tempdir().unwrap();
        let err = copy_in(tmp.path(), &tmp.path().join("d")).unwrap_err();
        assert!(err.to_string().contains(MANIFEST_FILE), "{err}");
    }
}
