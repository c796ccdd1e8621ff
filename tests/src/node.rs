//! One `mxmesh node` process: its config, start and restart, signals, and the admin API.
//!
//! A node's first start binds port 0 for every listener and reports the ports in its ready
//! file (`mxmesh node --ready-file`); the harness then writes those ports into the config
//! ("pins" it), so a restart comes back on the same addresses. Only a restart can meet a
//! port in use (released a moment ago, not yet free again); it is retried, bounded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{TOKEN, bin, wait_for};

/// How long a node may take from exec to its ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts tried when the node exits because an address it must bind is in use.
pub const SPAWN_ATTEMPTS: usize = 50;
/// Pause between those starts.
const SPAWN_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// What the node's log says when a listener's address is taken.
const ADDRESS_IN_USE: &str = "Address already in use";

/// Options for a test node.
#[derive(Clone)]
pub struct NodeOpts {
    /// `[node] id`.
    pub id: String,
    /// The loopback address every listener binds (port 0).
    pub ip: String,
    /// The downstream of both accepted domains.
    pub relay_to: String,
    /// Appended after `[relay]`: more sections (`[mesh]`, `[dns]`, `[filter]`).
    pub extra: String,
    /// Lines added to `[smtp]`.
    pub smtp_extra: String,
    /// Lines added to `[admin]`.
    pub admin_extra: String,
    /// Lines added to both `[[domains]]` entries (e.g. `greylist = true`).
    pub domain_extra: String,
    /// Lines added to `[relay]` (e.g. `trusted_networks = […]`).
    pub relay_extra: String,
}

impl NodeOpts {
    /// Node `mx1` on 127.0.0.1, relaying to `relay_to`.
    pub fn new(relay_to: SocketAddr) -> NodeOpts {
        NodeOpts {
            id: "mx1".into(),
            ip: "127.0.0.1".into(),
            relay_to: relay_to.to_string(),
            extra: String::new(),
            smtp_extra: String::new(),
            admin_extra: String::new(),
            domain_extra: String::new(),
            relay_extra: String::new(),
        }
    }

    /// The config file's text: SMTP and admin on port 0 of `ip`, `extra` appended.
    pub fn config_text(&self) -> String {
        let (id, ip, relay_to) = (&self.id, &self.ip, &self.relay_to);
        format!(
            "[node]\nid = \"{id}\"\ndata_dir = \"data\"\n\n\
             [smtp]\nlisten = \"{ip}:0\"\nhostname = \"{id}.example.com\"\n{}\n\n\
             [[domains]]\nname = \"example.com\"\nrelay_to = \"{relay_to}\"\n{}\n\n\
             [[domains]]\nname = \"example.org\"\nrelay_to = \"{relay_to}\"\n{}\n\n\
             [admin]\nlisten = \"{ip}:0\"\ntokens_file = \"admin.tokens\"\n{}\n\n\
             [relay]\nretry_initial_secs = 1\nretry_max_secs = 2\n{}\n{}\n",
            self.smtp_extra,
            self.domain_extra,
            self.domain_extra,
            self.admin_extra,
            self.relay_extra,
            self.extra
        )
    }
}

/// The addresses a node bound, from its ready file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The SMTP listener.
    pub smtp: SocketAddr,
    /// The admin API.
    pub admin: SocketAddr,
    /// The mesh's QUIC endpoint, with `[mesh]`.
    pub mesh: Option<SocketAddr>,
    /// The embedded DNS server, with `[dns] listen`.
    pub dns: Option<SocketAddr>,
    /// The `[submission] listen` socket, with `[submission]`.
    pub submission: Option<SocketAddr>,
    /// The `[submission] implicit_tls_listen` socket, when set.
    pub submission_tls: Option<SocketAddr>,
}

impl Bound {
    /// Reads a ready file; None while it is absent or not yet whole.
    pub fn read(path: &Path) -> Option<Bound> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        let addr = |k: &str| v[k].as_str().and_then(|s| s.parse().ok());
        Some(Bound {
            smtp: addr("smtp")?,
            admin: addr("admin")?,
            mesh: addr("mesh"),
            dns: addr("dns"),
            submission: addr("submission"),
            submission_tls: addr("submission_tls"),
        })
    }
}

/// How one start of a node ended.
enum Started {
    Ready(Child, Bound),
    /// The process exited before it was ready; its status and the log it wrote.
    Exited(String, String),
}

/// Runs `launcher() node --config CONFIG --ready-file DIR/ready.json` (`launcher` makes the
/// binary itself, or a wrapper such as `ip netns exec NS mxmesh`), logging to
/// `DIR/node.log`, and waits for the ready file. A start that fails because an address is
/// in use is tried again, at most [`SPAWN_ATTEMPTS`] times; any other failure panics
/// with the log.
pub fn spawn_node(launcher: impl Fn() -> Command, config: &Path, dir: &Path) -> (Child, Bound) {
    let mut last = String::new();
    for _ in 0..SPAWN_ATTEMPTS {
        match start_once(launcher(), config, dir) {
            Started::Ready(child, bound) => return (child, bound),
            Started::Exited(status, log) if log.contains(ADDRESS_IN_USE) => {
                last = format!("{status}:\n{log}");
                std::thread::sleep(SPAWN_RETRY_PAUSE);
            }
            Started::Exited(status, log) => {
                panic!("node {} {status}; log:\n{log}", config.display())
            }
        }
    }
    panic!(
        "node {}: an address stayed in use over {SPAWN_ATTEMPTS} starts; last {last}",
        config.display()
    )
}

/// One start: waits for the ready file or the process's exit.
fn start_once(mut launcher: Command, config: &Path, dir: &Path) -> Started {
    let log_path = dir.join("node.log");
    let ready = dir.join("ready.json");
    let _ = std::fs::remove_file(&ready);
    let log_before = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut child = launcher
        .arg("node")
        .arg("--config")
        .arg(config)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let outcome = wait_for(READY_TIMEOUT, || {
        if let Some(b) = Bound::read(&ready) {
            return Some(Ok(b));
        }
        child.try_wait().ok().flatten().map(Err)
    });
    let this_log = || {
        let all = std::fs::read(&log_path).unwrap_or_default();
        String::from_utf8_lossy(all.get(log_before..).unwrap_or_default()).to_string()
    };
    match outcome {
        Some(Ok(bound)) => Started::Ready(child, bound),
        Some(Err(status)) => Started::Exited(format!("exited ({status})"), this_log()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Started::Exited(format!("not ready within {READY_TIMEOUT:?}"), this_log())
        }
    }
}

/// Rewrites `config` so every listener names the address it was bound to (and so a
/// restart binds the same ones); `more` edits the config further.
pub fn pin_config(config: &Path, bound: &Bound, more: impl FnOnce(&mut toml::Table)) {
    edit_config(config, |t| {
        set(t, &["smtp", "listen"], bound.smtp.to_string().into());
        set(t, &["admin", "listen"], bound.admin.to_string().into());
        if let Some(mesh) = bound.mesh {
            set(t, &["mesh", "listen"], mesh.to_string().into());
        }
        if let Some(dns) = bound.dns {
            set(t, &["dns", "listen"], dns.to_string().into());
        }
        if let Some(submission) = bound.submission {
            set(t, &["submission", "listen"], submission.to_string().into());
        }
        if let Some(implicit) = bound.submission_tls {
            let key = ["submission", "implicit_tls_listen"];
            set(t, &key, implicit.to_string().into());
        }
        more(t);
    });
}

/// Reads `config` as TOML, lets `f` change it and writes it back.
pub fn edit_config(config: &Path, f: impl FnOnce(&mut toml::Table)) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    f(&mut table);
    std::fs::write(config, toml::to_string(&table).unwrap()).unwrap();
}

/// Sets `path` (section names, then the key) in a TOML table; the sections must exist.
fn set(t: &mut toml::Table, path: &[&str], value: toml::Value) {
    let (key, sections) = path.split_last().expect("a key");
    let mut table = t;
    for s in sections {
        table = table
            .get_mut(*s)
            .and_then(toml::Value::as_table_mut)
            .unwrap_or_else(|| panic!("config has no [{s}]"));
    }
    table.insert(key.to_string(), value);
}

/// One `mxmesh node` process with its own data directory.
pub struct Node {
    /// The node's directory: config, tokens, data, log, ready file.
    pub dir: PathBuf,
    /// Its config file (pinned to the bound ports after the first start).
    pub config: PathBuf,
    /// The SMTP listener, as bound.
    pub smtp: SocketAddr,
    /// The admin API, as bound.
    pub admin: SocketAddr,
    /// The mesh endpoint, with `[mesh]`.
    pub mesh: Option<SocketAddr>,
    /// The embedded DNS server, with `[dns] listen`.
    pub dns: Option<SocketAddr>,
    /// The submission listener (STARTTLS), with `[submission]`.
    pub submission: Option<SocketAddr>,
    /// The implicit-TLS submission listener, with `[submission] implicit_tls_listen`.
    pub submission_tls: Option<SocketAddr>,
    /// The running process; `None` while stopped.
    pub(crate) child: Option<Child>,
}

impl Node {
    /// Writes a config under `dir` (listeners on port 0) and starts the node; waits for
    /// its ready file and pins the config to the ports it bound.
    pub fn start(dir: &Path, o: &NodeOpts) -> Node {
        Node::start_text(dir, &o.config_text())
    }

    /// Like [`Node::start`] with a config text of the caller's (listeners on port 0, or
    /// fixed ports); an admin token file is written beside it.
    pub fn start_text(dir: &Path, text: &str) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("admin.tokens"), format!("tester {TOKEN}\n")).unwrap();
        let config = dir.join("node.toml");
        std::fs::write(&config, text).unwrap();
        let (child, bound) = spawn_node(|| Command::new(bin("mxmesh")), &config, dir);
        pin_config(&config, &bound, |_| {});
        Node {
            dir: dir.to_path_buf(),
            config,
            smtp: bound.smtp,
            admin: bound.admin,
            mesh: bound.mesh,
            dns: bound.dns,
            submission: bound.submission,
            submission_tls: bound.submission_tls,
            child: Some(child),
        }
    }

    /// Restarts the process with the same config and data, on the same addresses.
    pub fn spawn(&mut self) {
        let (child, bound) = spawn_node(|| Command::new(bin("mxmesh")), &self.config, &self.dir);
        let before = (self.smtp, self.admin, self.mesh, self.dns);
        assert_eq!(
            (bound.smtp, bound.admin, bound.mesh, bound.dns),
            before,
            "a restarted node binds its pinned addresses"
        );
        self.child = Some(child);
    }

    /// Everything the node logged, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            if Instant::now() > end {
                let _ = c.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin API URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// An authorised API call; returns (status, json body or Null).
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let c = reqwest::blocking::Client::new();
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = c.request(m, self.url(path)).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An authorised call with a raw body (e.g. a message); returns (status, json or Null).
    pub fn api_raw(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = reqwest::blocking::Client::new()
            .request(m, self.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "message/rfc822")
            .body(body.to_vec())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Raw bytes of an authorised GET.
    pub fn api_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let r = reqwest::blocking::Client::new()
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `mxctl ARGS` against `node`'s admin API with the test token; returns (exit ok,
/// stdout, stderr).
pub fn mxctl_at(node: &Node, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("mxctl"))
        .env("MXMESH_URL", format!("http://{}", node.admin))
        .env("MXMESH_TOKEN", TOKEN)
        .args(args)
        .output()
        .expect("running mxctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
