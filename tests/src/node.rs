//! One `mxmesh node` process: its config, start and restart, signals, and the admin API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{TOKEN, bin, free_port, wait_for};

/// Options for a test node.
#[derive(Clone)]
pub struct NodeOpts {
    pub id: String,
    pub ip: String,
    pub relay_to: String,
    pub extra: String,
    pub smtp_extra: String,
}

impl NodeOpts {
    pub fn new(relay_to: SocketAddr) -> NodeOpts {
        NodeOpts {
            id: "mx1".into(),
            ip: "127.0.0.1".into(),
            relay_to: relay_to.to_string(),
            extra: String::new(),
            smtp_extra: String::new(),
        }
    }
}

/// Runs `mxmesh node --config CONFIG` through `launcher` (the binary itself, or a wrapper
/// such as `ip netns exec NS mxmesh`), logging to `DIR/node.log`, and waits until
/// `/healthz` on `admin` answers; panics with the log if it never does.
pub fn spawn_node(mut launcher: Command, config: &Path, dir: &Path, admin: SocketAddr) -> Child {
    let log_path = dir.join("node.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let child = launcher
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://{admin}/healthz");
    let ok = wait_for(Duration::from_secs(30), || {
        reqwest::blocking::get(&url)
            .ok()
            .filter(|r| r.status().is_success())
    });
    assert!(
        ok.is_some(),
        "node {} did not become healthy; log:\n{}",
        config.display(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    child
}

/// One `mxmesh node` process with its own data directory.
pub struct Node {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub smtp: SocketAddr,
    pub admin: SocketAddr,
    pub(crate) child: Option<Child>,
}

impl Node {
    /// Writes a config under `dir` and starts the node; waits for /healthz.
    pub fn start(dir: &Path, o: &NodeOpts) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("admin.tokens"), format!("tester {TOKEN}\n")).unwrap();
        let smtp: SocketAddr = format!("{}:{}", o.ip, free_port(&o.ip)).parse().unwrap();
        let admin: SocketAddr = format!("{}:{}", o.ip, free_port(&o.ip)).parse().unwrap();
        let text = format!(
            "[node]\nid = \"{}\"\ndata_dir = \"data\"\n\n[smtp]\nlisten = \"{smtp}\"\nhostname = \"{}.example.com\"\n{}\n\n[[domains]]\nname = \"example.com\"\nrelay_to = \"{}\"\n\n[[domains]]\nname = \"example.org\"\nrelay_to = \"{}\"\n\n[admin]\nlisten = \"{admin}\"\ntokens_file = \"admin.tokens\"\n\n[relay]\nretry_initial_secs = 1\nretry_max_secs = 2\n{}\n",
            o.id, o.id, o.smtp_extra, o.relay_to, o.relay_to, o.extra
        );
        let config = dir.join("node.toml");
        std::fs::write(&config, text).unwrap();
        let mut n = Node {
            dir: dir.to_path_buf(),
            config,
            smtp,
            admin,
            child: None,
        };
        n.spawn();
        n
    }

    /// (Re)starts the process with the same config and data.
    pub fn spawn(&mut self) {
        let child = spawn_node(
            Command::new(bin("mxmesh")),
            &self.config,
            &self.dir,
            self.admin,
        );
        self.child = Some(child);
    }

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
