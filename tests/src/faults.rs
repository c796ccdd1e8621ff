//! Helpers for the fault tests (`tests/tests/faults_*.rs`): root checks, a small tmpfs,
//! network namespaces with a bridge and packet drops, nodes inside namespaces, a plain
//! blocking SMTP client and process RSS.
//!
//! Everything a helper makes (mounts, namespaces, links, processes) is undone on drop,
//! also when the test panics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Bound, Node, Sink, TOKEN, bin, spawn_node};

/// Fails the test (never skips it) when not running as root.
pub fn require_root(what: &str) {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        uid, "0",
        "{what} needs root (it mounts file systems / makes network namespaces); \
         run the tests as root (CI does)"
    );
}

/// Runs a command; panics with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs a command and ignores its outcome (cleanup).
fn run_quiet(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A tmpfs of a fixed size mounted by the test; unmounted on drop.
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size_mb: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let opt = format!("size={size_mb}m");
        run(
            "mount",
            &["-t", "tmpfs", "-o", &opt, "tmpfs", path.to_str().unwrap()],
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Remounts read-only (`true`) or read-write.
    pub fn set_read_only(&self, ro: bool) {
        let opt = if ro { "remount,ro" } else { "remount,rw" };
        run("mount", &["-o", opt, self.path.to_str().unwrap()]);
    }

    /// Fills the file system with `name` until ENOSPC; returns the bytes written.
    pub fn fill(&self, name: &str) -> u64 {
        let mut f = std::fs::File::create(self.path.join(name)).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // Small writes to use up the last partial page.
        while let Ok(n) = f.write(&chunk[..512]) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        let _ = f.sync_all();
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        run_quiet("umount", &["-l", self.path.to_str().unwrap()]);
    }
}

/// Resident set size of a process in KiB (from /proc).
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A plain blocking SMTP client (no TLS) that reports reply codes exactly.
pub struct Smtp {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Smtp {
    /// Connects and reads the greeting: (client, greeting code and text).
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<(Smtp, u16, String)> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut s = Smtp { stream, reader };
        let (code, text) = s.reply()?;
        Ok((s, code, text))
    }

    /// One reply: (code, last line). Code 0 when the server closed the connection.
    pub fn reply(&mut self) -> std::io::Result<(u16, String)> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok((0, String::new()));
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, line.trim_end().to_string()));
            }
        }
    }

    pub fn cmd(&mut self, line: &str) -> std::io::Result<(u16, String)> {
        self.stream.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One message in this session; returns the reply to the end of DATA (or the first
    /// failing reply before it). `data` must use CRLF and must not contain a lone dot line.
    pub fn send(&mut self, from: &str, to: &str, data: &[u8]) -> std::io::Result<(u16, String)> {
        for c in [format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{to}>")] {
            let r = self.cmd(&c)?;
            if r.0 != 250 {
                return Ok(r);
            }
        }
        let r = self.cmd("DATA")?;
        if r.0 != 354 {
            return Ok(r);
        }
        self.stream.write_all(data)?;
        if !data.ends_with(b"\r\n") {
            self.stream.write_all(b"\r\n")?;
        }
        self.stream.write_all(b".\r\n")?;
        self.reply()
    }

    pub fn quit(mut self) {
        let _ = self.stream.write_all(b"QUIT\r\n");
        let mut rest = Vec::new();
        let _ = self.stream.read_to_end(&mut rest);
    }
}

/// One whole session with one message: EHLO, MAIL, RCPT, DATA. Returns the final code (or
/// the greeting/EHLO code when the server refused earlier), 0 on a connection error.
pub fn send_one(addr: SocketAddr, subject: &str, size: usize) -> (u16, String) {
    let go = || -> std::io::Result<(u16, String)> {
        let (mut s, code, text) = Smtp::connect(addr, Duration::from_secs(20))?;
        if code != 220 {
            return Ok((code, text));
        }
        let r = s.cmd("EHLO faults.test")?;
        if r.0 != 250 {
            return Ok(r);
        }
        let r = s.send(
            "a@example.org",
            "user@example.com",
            &message_of(subject, size),
        )?;
        s.quit();
        Ok(r)
    };
    go().unwrap_or_else(|e| (0, e.to_string()))
}

/// A message with a unique subject and about `size` bytes of body.
pub fn message_of(subject: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.org\r\nTo: user@example.com\r\nSubject: {subject}\r\nMessage-ID: <{subject}@faults.test>\r\n\r\n"
    )
    .into_bytes();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

/// Kills `node` with SIGKILL, opens the held downstream `sink` ([`Sink::held`]), restarts
/// the node on the same data, and asserts that every subject in `acked` arrives: what got
/// `250` survives the crash.
pub fn assert_acked_survive_kill9(node: &mut Node, sink: &mut Sink, acked: &[String]) {
    node.kill9();
    sink.open();
    node.spawn();
    let got = sink.wait_count(acked.len(), Duration::from_secs(120));
    let seen = subjects(&got);
    let lost: Vec<&String> = acked.iter().filter(|s| !seen.contains_key(*s)).collect();
    assert!(lost.is_empty(), "acked but lost: {lost:?}");
}

/// The subjects found in messages, with how often each was seen.
pub fn subjects(messages: &[(Value, Vec<u8>)]) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    for (_, b) in messages {
        let text = String::from_utf8_lossy(b);
        if let Some(s) = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .map(str::trim)
        {
            *out.entry(s.to_string()).or_insert(0) += 1;
        }
    }
    out
}

// ------------------------------------------------------------------ network namespaces

/// N network namespaces on one bridge made by the test, with the host on the bridge too.
/// Names are unique per run; everything is deleted on drop.
pub struct Netns {
    /// The namespaces' names, namespace i at index i.
    pub names: Vec<String>,
    /// The bridge's name (on the host).
    pub bridge: String,
    /// `10.a.b` — namespace i has `10.a.b.(i+1)`, the host `10.a.b.254`.
    pub prefix: String,
    host_veths: Vec<String>,
}

impl Netns {
    pub fn create(n: usize) -> Netns {
        let pid = std::process::id();
        let tag = format!("{:x}", (pid ^ (now_nanos() as u32)) & 0xffff);
        let names: Vec<String> = (0..n).map(|i| format!("mxf{tag}n{i}")).collect();
        let bridge = format!("mxf{tag}br");
        let prefix = format!("10.{}.{}", 200 + (pid % 50), (now_nanos() % 250) as u32 + 1);
        let mut me = Netns {
            names: Vec::new(),
            bridge: bridge.clone(),
            prefix: prefix.clone(),
            host_veths: Vec::new(),
        };
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        run(
            "ip",
            &["addr", "add", &format!("{prefix}.254/24"), "dev", &bridge],
        );
        run("ip", &["link", "set", &bridge, "up"]);
        for (i, ns) in names.iter().enumerate() {
            run("ip", &["netns", "add", ns]);
            me.names.push(ns.clone());
            let host_end = format!("mxf{tag}h{i}");
            run(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            );
            me.host_veths.push(host_end.clone());
            run("ip", &["link", "set", &host_end, "master", &bridge]);
            run("ip", &["link", "set", &host_end, "up"]);
            let addr = format!("{}/24", me.ip(i));
            me.exec(i, &["ip", "addr", "add", &addr, "dev", "eth0"]);
            me.exec(i, &["ip", "link", "set", "eth0", "up"]);
            me.exec(i, &["ip", "link", "set", "lo", "up"]);
        }
        me
    }

    /// Address of namespace `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, i + 1)
    }

    /// The host's address on the bridge.
    pub fn host_ip(&self) -> String {
        format!("{}.254", self.prefix)
    }

    /// Runs a command inside namespace `i`; panics on failure.
    pub fn exec(&self, i: usize, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.names[i].as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Silently drops every packet namespace `i` sends to the namespaces `to`: their
    /// addresses get a permanent neighbour entry with a MAC address nobody has, so frames
    /// leave, the bridge floods them and every interface discards them (a real silent
    /// loss, no error to the sender). Traffic to the host (sink, admin API) still flows.
    /// (This kernel has no netem, u32 classifier or iptables; the neighbour table works
    /// everywhere.)
    pub fn drop_to(&self, i: usize, to: &[usize]) {
        for &j in to {
            let mac = format!("02:00:00:de:ad:{j:02x}");
            self.exec(
                i,
                &[
                    "ip",
                    "neigh",
                    "replace",
                    &self.ip(j),
                    "lladdr",
                    &mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ],
            );
        }
    }

    /// Undoes [`Netns::drop_to`]: the addresses are resolved by ARP again.
    pub fn heal(&self, i: usize, to: &[usize]) {
        for &j in to {
            self.exec(i, &["ip", "neigh", "del", &self.ip(j), "dev", "eth0"]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for v in &self.host_veths {
            run_quiet("ip", &["link", "del", v]);
        }
        for ns in &self.names {
            // Processes still inside are ours (NsNode drops first); delete anyway.
            run_quiet("ip", &["netns", "del", ns]);
        }
        run_quiet("ip", &["link", "del", &self.bridge]);
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A `mxmesh node` running inside a network namespace (`ip netns exec`), on fixed ports:
/// the namespace is the test's own, so no other process can hold them.
pub struct NsNode {
    /// The node id.
    pub id: String,
    /// The network namespace it runs in.
    pub ns: String,
    /// Its directory: config, tokens, data and log.
    pub dir: PathBuf,
    /// Its config file (`node.toml` in `dir`).
    pub config: PathBuf,
    /// Its SMTP address (port 2525 on the namespace's IP).
    pub smtp: SocketAddr,
    /// Its admin API address (port 8025 on the namespace's IP).
    pub admin: SocketAddr,
    child: Option<Child>,
}

impl NsNode {
    /// Writes a config (`extra` appended: e.g. the `[mesh]` section) and starts the node.
    pub fn start(dir: &Path, ns: &str, id: &str, ip: &str, relay_to: &str, extra: &str) -> NsNode {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("admin.tokens"), format!("tester {TOKEN}\n")).unwrap();
        let smtp: SocketAddr = format!("{ip}:2525").parse().unwrap();
        let admin: SocketAddr = format!("{ip}:8025").parse().unwrap();
        let text = format!(
            "[node]\nid = \"{id}\"\ndata_dir = \"data\"\n\n[smtp]\nlisten = \"{smtp}\"\nhostname = \"{id}.example.com\"\n\n[[domains]]\nname = \"example.com\"\nrelay_to = \"{relay_to}\"\n\n[[domains]]\nname = \"example.org\"\nrelay_to = \"{relay_to}\"\n\n[admin]\nlisten = \"{admin}\"\ntokens_file = \"admin.tokens\"\n\n[relay]\nretry_initial_secs = 1\nretry_max_secs = 2\n{extra}\n"
        );
        let config = dir.join("node.toml");
        std::fs::write(&config, text).unwrap();
        let mut n = NsNode {
            id: id.to_string(),
            ns: ns.to_string(),
            dir: dir.to_path_buf(),
            config,
            smtp,
            admin,
            child: None,
        };
        n.spawn();
        n
    }

    pub fn spawn(&mut self) {
        let launcher = || {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.ns]).arg(bin("mxmesh"));
            c
        };
        let (child, bound): (Child, Bound) = spawn_node(launcher, &self.config, &self.dir);
        assert_eq!((bound.smtp, bound.admin), (self.smtp, self.admin));
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// An authorised POST of a raw body (a message); (status, json or Null); 0 when
    /// unreachable.
    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let c = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let req = c
            .post(format!("http://{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .header("content-type", "message/rfc822")
            .body(body.to_vec());
        match req.send() {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// An authorised API call; (status, json or Null); status 0 when unreachable.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let c = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = c
            .request(m, format!("http://{}{path}", self.admin))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        match req.send() {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `ip netns exec` execs the binary, so this is the node itself.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` until it holds, panicking with `what` after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
