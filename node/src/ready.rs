//! The ready file. `mxmesh node --ready-file PATH` writes it once every listener is bound
//! and serving: one JSON object with the addresses actually bound, so whoever starts a
//! node (a test harness, a script, a supervisor) can put port 0 in the config and learn
//! the ports afterwards, with no window in which another process could take them.
//!
//! ```json
//! {"node":"mx1","pid":4242,"smtp":"127.0.0.1:40411","admin":"127.0.0.1:40413",
//!  "mesh":"127.0.0.1:51020","dns":"127.0.0.1:40415"}
//! ```
//!
//! `mesh`, `dns`, `submission` and `submission_tls` are `null` when not configured. The file appears whole (written
//! beside it, then renamed) and is removed when the node stops gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a running node bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// The node id.
    pub node: String,
    /// The node's process id.
    pub pid: u32,
    /// The SMTP listener.
    pub smtp: SocketAddr,
    /// The admin API.
    pub admin: SocketAddr,
    /// The mesh's QUIC endpoint (UDP), with `[mesh]`.
    pub mesh: Option<SocketAddr>,
    /// The embedded DNS server (UDP and TCP, one port), with `[dns] listen`.
    pub dns: Option<SocketAddr>,
    /// The `[submission] listen` socket, with `[submission]`.
    #[serde(default)]
    pub submission: Option<SocketAddr>,
    /// The `[submission] implicit_tls_listen` socket, when set.
    #[serde(default)]
    pub submission_tls: Option<SocketAddr>,
}

/// The ready file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("ready file {path}: {source}")]
pub struct ReadyError {
    /// The file at fault.
    pub path: PathBuf,
    /// What went wrong.
    pub source: std::io::Error,
}

/// Writes `bound` to `path` atomically: a temporary file beside it, then a rename.
pub fn write(path: &Path, bound: &Bound) -> Result<(), ReadyError> {
    let err = |source| ReadyError {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = serde_json::to_string(bound).map_err(|e| err(std::io::Error::other(e)))?;
    std::fs::write(&tmp, text + "\n").map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads a ready file written by [`write`].
pub fn read(path: &Path) -> Result<Bound, ReadyError> {
    let err = |source| ReadyError {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(err)?;
    serde_json::from_str(&text)
        .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Removes the ready file (a stopped node is not ready); a missing file is fine.
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "ready file not removed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let b = Bound {
            node: "mx1".into(),
            pid: 7,
            smtp: "127.0.0.1:2525".parse().unwrap(),
            admin: "127.0.0.1:8025".parse().unwrap(),
            mesh: None,
            dns: Some("127.0.0.1:5353".parse().unwrap()),
            submission: Some("127.0.0.1:5587".parse().unwrap()),
            submission_tls: None,
        };
        write(&path, &b).unwrap();
        assert_eq!(read(&path).unwrap(), b);
        assert!(!dir.path().join("ready.json.tmp").exists());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"mesh\":null"), "{text}");
        remove(&path);
        remove(&path);
        assert!(!path.exists());
        let err = write(&dir.path().join("no/such/dir/ready"), &b).unwrap_err();
        assert!(err.to_string().contains("no/such/dir/ready"), "{err}");
    }
}
