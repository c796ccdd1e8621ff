//! `mxmesh backup` and `mxmesh restore`: the command-line side of [`crate::store::backup`].
//!
//! A backup is online: when the node runs (it holds the store's lock), the command asks it
//! through its admin API (`POST /api/v1/backup`, at `[admin] listen` with a token of
//! `[admin] tokens_file`) to write the checkpoint; when it does not run, the command opens
//! the store itself. A restore needs the node stopped and an empty data directory; it
//! copies the backup in and marks the store restored, so that at its next start the node
//! merges what its peers know of its own quarantine log before it serves it again
//! (`quarantine::restore`).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::admin::auth::Tokens;
use crate::config::Config;
use crate::store::Store;
use crate::store::backup::{self, BackupManifest};

/// How long `mxmesh backup` waits for the running node to write the checkpoint.
pub const BACKUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// How long it waits to connect to the node's admin API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from the admin API.
pub const ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// Where `mxmesh backup` asks a running node, when not from the config.
#[derive(Debug, Clone, Default)]
pub struct AdminTarget {
    /// The admin API address (default: `[admin] listen`).
    pub addr: Option<SocketAddr>,
    /// The token (default: the first plain token of `[admin] tokens_file`).
    pub token: Option<String>,
}

/// How a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// By the running node, through its admin API.
    Online,
    /// By this command, from the stopped node's store.
    Offline,
}

/// Writes a backup of the node of `config` into `out` (absent or empty).
pub fn backup(
    config: &Config,
    out: &Path,
    target: &AdminTarget,
) -> anyhow::Result<(BackupManifest, Taken)> {
    let out = std::path::absolute(out).with_context(|| format!("--out {}", out.display()))?;
    if !backup::is_absent_or_empty(&out)? {
        bail!(
            "--out {}: exists and is not empty; choose a new directory (a backup never overwrites one)",
            out.display()
        );
    }
    let data_dir = &config.node.data_dir;
    if !data_dir.join("CURRENT").is_file() {
        bail!(
            "node.data_dir {}: holds no store (no RocksDB CURRENT file)",
            data_dir.display()
        );
    }
    match Store::open(data_dir) {
        Ok(store) => {
            let now = crate::clock::system_now_ms();
            let manifest = store.checkpoint(&config.node.id, &out, now)?;
            Ok((manifest, Taken::Offline))
        }
        Err(crate::store::StoreError::Open { message, .. })
            if message.to_ascii_lowercase().contains("lock") =>
        {
            Ok((ask_running_node(config, &out, target)?, Taken::Online))
        }
        Err(e) => Err(anyhow!(e)),
    }
}

/// `POST /api/v1/backup` to the running node.
fn ask_running_node(
    config: &Config,
    out: &Path,
    target: &AdminTarget,
) -> anyhow::Result<BackupManifest> {
    let addr = match target.addr {
        Some(a) => a,
        None => admin_addr(config)?,
    };
    let token = match &target.token {
        Some(t) => t.clone(),
        None => {
            let file = &config.admin.tokens_file;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("admin.tokens_file {}", file.display()))?;
            Tokens::first_plain(&text).ok_or_else(|| {
                anyhow!(
                    "admin.tokens_file {}: holds only hashed tokens; pass --token",
                    file.display()
                )
            })?
        }
    };
    let body = serde_json::json!({ "dir": out }).to_string();
    let (status, answer) = post(addr, "/api/v1/backup", &token, &body)
        .with_context(|| format!("asking the running node at {addr} for a backup"))?;
    if status != 200 {
        let message = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
        bail!("the running node at {addr} answered {status}: {message}");
    }
    serde_json::from_slice(&answer).context("the running node's backup answer")
}

/// The address to reach `[admin] listen` at (a wildcard address means this host).
fn admin_addr(config: &Config) -> anyhow::Result<SocketAddr> {
    let mut addr = config.admin.listen;
    if addr.port() == 0 {
        bail!("admin.listen {addr}: port 0 names no address to ask; pass --admin ADDR");
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Ok(addr)
}

/// One HTTP/1.0 POST with a bearer token; returns the status and the body.
fn post(addr: SocketAddr, path: &str, token: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(BACKUP_REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream
        .take(ANSWER_BYTES_MAX as u64 + 1)
        .read_to_end(&mut answer)?;
    if answer.len() > ANSWER_BYTES_MAX {
        bail!("answer longer than {ANSWER_BYTES_MAX} bytes");
    }
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("answer without an HTTP header"))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("answer without an HTTP status: {head}"))?;
    Ok((status, answer[split + 4..].to_vec()))
}

/// Copies the backup in `from` into the (absent or empty) data directory of `config` and
/// marks the store restored. Returns the backup's manifest.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<BackupManifest> {
    let data_dir = &config.node.data_dir;
    if !backup::is_absent_or_empty(data_dir)? {
        bail!(
            "node.data_dir {0}: is not empty. Stop the node and move the directory aside \
             (e.g. `mv {0} {0}.old`), then run restore again; restore never deletes data",
            data_dir.display()
        );
    }
    let manifest = backup::read_manifest(from)?;
    if manifest.node != config.node.id {
        bail!(
            "--from {}: is a backup of node {}, the config is node {}",
            from.display(),
            manifest.node,
            config.node.id
        );
    }
    backup::copy_in(from, data_dir)?;
    let store = Store::open(data_dir)?;
    backup::mark_restored(&store, manifest.time_ms).await?;
    store.flush()?;
    Ok(manifest)
}

/// A manifest as the commands print it.
pub fn describe(m: &BackupManifest, dir: &Path) -> String {
    format!(
        "node {}: {} files, {} bytes, checkpoint taken at {} ms since the epoch in {} ms -> {}",
        m.node,
        m.files,
        m.bytes,
        m.time_ms,
        m.took_ms,
        display(dir).display()
    )
}

fn display(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
