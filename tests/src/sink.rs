//! The downstream server: a Python aiosmtpd sink that stores what it receives and can
//! misbehave on request (tempfail, reject a recipient, offer STARTTLS).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{fixture, wait_for};

/// The Python aiosmtpd sink.
pub struct Sink {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Child,
}

/// How the sink misbehaves.
#[derive(Default, Clone)]
pub struct SinkMode {
    pub tempfail_first: u32,
    pub reject_rcpt: Option<String>,
    /// Offer STARTTLS with this (certificate, key).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Sink {
    pub fn start(dir: &Path, port: u16, mode: SinkMode) -> Sink {
        Sink::start_on("127.0.0.1", dir, port, mode)
    }

    /// Like [`Sink::start`], listening on `host` (e.g. a bridge address made by a test).
    pub fn start_on(host: &str, dir: &Path, port: u16, mode: SinkMode) -> Sink {
        let mut cmd = Command::new("python3");
        cmd.arg(fixture("sink.py"))
            .arg("--host")
            .arg(host)
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir)
            .arg("--tempfail-first")
            .arg(mode.tempfail_first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(r) = &mode.reject_rcpt {
            cmd.arg("--reject-rcpt").arg(r);
        }
        if let Some((cert, key)) = &mode.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("READY"), "sink did not start: {line:?}");
        Sink {
            addr: format!("{host}:{port}").parse().unwrap(),
            dir: dir.to_path_buf(),
            child,
        }
    }

    /// Messages stored so far, in arrival order: (envelope json, bytes).
    pub fn messages(&self) -> Vec<(Value, Vec<u8>)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let env = std::fs::read_to_string(p.with_extension("json")).unwrap();
                (
                    serde_json::from_str(&env).unwrap(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived.
    pub fn wait_count(&self, n: usize, timeout: Duration) -> Vec<(Value, Vec<u8>)> {
        wait_for(timeout, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| panic!("sink got {} messages, expected {n}", self.messages().len()))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
