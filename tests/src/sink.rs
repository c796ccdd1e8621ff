//! The downstream server: a Python aiosmtpd sink that stores what it receives and can
//! misbehave on request (tempfail, reject a recipient, offer STARTTLS). It binds a port the
//! kernel chooses and says which; a held sink keeps its port but refuses connections until
//! opened (a downstream that is down, then comes back).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{fixture, wait_for};

/// The Python aiosmtpd sink, on a port the kernel chose.
pub struct Sink {
    /// Where it listens (or, held, refuses).
    pub addr: SocketAddr,
    /// Where it stores what it receives.
    pub dir: PathBuf,
    child: Child,
    /// Written to open a held sink.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Where the sink's stderr goes (beside `dir`), shown when it fails to come up.
    stderr_path: PathBuf,
}

/// How the sink misbehaves.
#[derive(Default, Clone)]
pub struct SinkMode {
    /// Answer the first N DATA commands with 451.
    pub tempfail_first: u32,
    /// Refuse recipients containing this with 550.
    pub reject_rcpt: Option<String>,
    /// Offer STARTTLS with this (certificate, key).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Sink {
    /// A listening sink on 127.0.0.1.
    pub fn start(dir: &Path, mode: SinkMode) -> Sink {
        Sink::start_on("127.0.0.1", dir, mode)
    }

    /// Like [`Sink::start`], listening on `host` (e.g. a bridge address made by a test).
    pub fn start_on(host: &str, dir: &Path, mode: SinkMode) -> Sink {
        Sink::start_at(host, 0, dir, mode)
    }

    /// Like [`Sink::start_on`], on a fixed `port` (e.g. an outside MX on port 25 at an
    /// address of the test's own loopback range; needs root below 1024).
    pub fn start_at(host: &str, port: u16, dir: &Path, mode: SinkMode) -> Sink {
        let mut sink = Sink::run(host, port, dir, &mode, false);
        sink.expect_line("READY");
        sink
    }

    /// A downstream that is down: its port is bound (nobody else can take it) but
    /// refuses connections until [`Sink::open`].
    pub fn held(dir: &Path, mode: SinkMode) -> Sink {
        let mut sink = Sink::run("127.0.0.1", 0, dir, &mode, true);
        sink.expect_line("HELD");
        sink
    }

    /// Starts listening (a held sink comes up); a no-op when already listening.
    pub fn open(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            stdin.write_all(b"open\n").unwrap();
            drop(stdin);
            self.expect_line("READY");
        }
    }

    fn run(host: &str, port: u16, dir: &Path, mode: &SinkMode, hold: bool) -> Sink {
        let stderr_path = dir.with_extension("stderr");
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
            .stdin(if hold { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(stderr_file(&stderr_path));
        if hold {
            cmd.arg("--hold");
        }
        if let Some(r) = &mode.reject_rcpt {
            cmd.arg("--reject-rcpt").arg(r);
        }
        if let Some((cert, key)) = &mode.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd)");
        Sink {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            dir: dir.to_path_buf(),
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            stderr_path,
            child,
        }
    }

    /// Reads the sink's next line, which must be `WORD host:port`; records the address.
    fn expect_line(&mut self, word: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let addr = line
            .strip_prefix(word)
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| {
                let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
                panic!("sink did not say {word} host:port: {line:?}; its stderr: {stderr}")
            });
        self.addr = addr;
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

/// A file for the sink's stderr (its errors, if it cannot start); nothing if it cannot
/// be made.
fn stderr_file(path: &Path) -> Stdio {
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}
