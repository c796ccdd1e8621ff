//! Harness for multi-process tests: real `mxmesh` binaries, a Python aiosmtpd sink,
//! Python's smtplib and swaks as clients, reqwest for the admin API.
//!
//! The binaries come from the same target directory as the test executable; the README's
//! test command builds them first (`cargo build --workspace --all-targets`).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod faults;

/// The admin token every test node accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// Path of a workspace binary next to the test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --all-targets` before the tests",
        p.display()
    );
    p
}

/// Path of a workspace example program (built by `cargo build --all-targets`).
pub fn example_bin(name: &str) -> PathBuf {
    let p = bin("mxmesh").with_file_name("examples").join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --all-targets` before the tests",
        p.display()
    );
    p
}

/// Path of a file in tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A free TCP port on `ip` (bound and released; a tiny race we accept in tests).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
    child: Option<Child>,
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

/// Result of one smtplib send.
pub fn send_python(
    server: SocketAddr,
    from: &str,
    to: &[&str],
    message: &[u8],
    starttls: bool,
) -> Value {
    send_with(server, &Client::default(), from, to, message, starttls)
}

/// Where an smtplib client connects from and what it says in EHLO.
#[derive(Clone)]
pub struct Client {
    /// Local address to bind (any 127.0.0.x works on Linux loopback).
    pub source: Option<String>,
    pub helo: String,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            source: None,
            helo: "client.test".into(),
        }
    }
}

impl Client {
    /// A client connecting from `ip` and greeting as `helo`.
    pub fn from(ip: &str, helo: &str) -> Client {
        Client {
            source: Some(ip.into()),
            helo: helo.into(),
        }
    }
}

/// Result of one smtplib send from `client`.
pub fn send_with(
    server: SocketAddr,
    client: &Client,
    from: &str,
    to: &[&str],
    message: &[u8],
    starttls: bool,
) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, message).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(fixture("send.py"))
        .arg("--server")
        .arg(server.to_string())
        .arg("--from")
        .arg(from)
        .arg("--file")
        .arg(&file);
    for t in to {
        cmd.arg("--to").arg(t);
    }
    if starttls {
        cmd.arg("--starttls");
    }
    cmd.arg("--helo").arg(&client.helo);
    if let Some(source) = &client.source {
        cmd.arg("--source").arg(source);
    }
    let out = cmd.output().expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "send.py printed {text:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A plain test message with CRLF line endings.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\r\nTo: user@example.com\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n\r\n{body}",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// A free UDP port on `ip` (for the QUIC mesh listener).
pub fn free_udp_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `mxmesh ca …`; panics with its stderr on failure.
pub fn mxmesh_ca(args: &[&std::ffi::OsStr]) {
    let out = Command::new(bin("mxmesh"))
        .arg("ca")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mxmesh ca {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A cluster CA in `dir` with certificates for `ids`.
pub fn make_certs(dir: &Path, ids: &[&str]) {
    mxmesh_ca(&["init".as_ref(), "--out".as_ref(), dir.as_os_str()]);
    for id in ids {
        mxmesh_ca(&[
            "issue".as_ref(),
            "--ca".as_ref(),
            dir.as_os_str(),
            "--node".as_ref(),
            id.as_ref(),
            "--out".as_ref(),
            dir.as_os_str(),
        ]);
    }
}

/// The `[mesh]` section for a node.
pub fn mesh_section(
    listen: SocketAddr,
    seeds: &[SocketAddr],
    certs: &Path,
    cert_id: &str,
) -> String {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "\n[mesh]\nlisten = \"{listen}\"\nseeds = [{}]\ncluster_id = \"test-mesh\"\nca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        seeds.join(", "),
        certs.join("ca.pem").display(),
        certs.join(format!("{cert_id}.pem")).display(),
        certs.join(format!("{cert_id}.key")).display(),
    )
}

/// N nodes `mx1..mxN` on 127.0.0.1..N, one cluster CA, each seeded with the others.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub mesh_addrs: Vec<SocketAddr>,
}

impl Cluster {
    pub fn start(n: usize, relay_to: SocketAddr) -> Cluster {
        Cluster::start_with(n, relay_to, |_| String::new())
    }

    /// Like [`Cluster::start`], with `more(i)` appended to node i's config (1-based).
    pub fn start_with(n: usize, relay_to: SocketAddr, more: impl Fn(usize) -> String) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (1..=n).map(|i| format!("mx{i}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        make_certs(&dir.path().join("certs"), &id_refs);
        let mesh_addrs: Vec<SocketAddr> = (1..=n)
            .map(|i| {
                let ip = format!("127.0.0.{i}");
                format!("{ip}:{}", free_udp_port(&ip)).parse().unwrap()
            })
            .collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut o = NodeOpts::new(relay_to);
            o.id = ids[i].clone();
            o.ip = format!("127.0.0.{}", i + 1);
            let seeds: Vec<SocketAddr> = mesh_addrs
                .iter()
                .copied()
                .filter(|a| *a != mesh_addrs[i])
                .collect();
            o.extra = mesh_section(mesh_addrs[i], &seeds, &dir.path().join("certs"), &ids[i])
                + &more(i + 1);
            nodes.push(Node::start(&dir.path().join(&ids[i]), &o));
        }
        Cluster {
            dir,
            nodes,
            mesh_addrs,
        }
    }

    /// Waits until every node sees exactly the `expected` member ids, all live.
    pub fn wait_members(&self, expected: &[&str], timeout: Duration) {
        for node in &self.nodes {
            if node.child.is_none() {
                continue;
            }
            let ok = wait_for(timeout, || {
                let (_, c) = node.api("GET", "/api/v1/cluster", None);
                let mut live: Vec<String> = c["members"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["live"] == true)
                    .map(|m| m["id"].as_str().unwrap_or_default().to_string())
                    .collect();
                live.sort();
                (live == expected).then_some(())
            });
            assert!(
                ok.is_some(),
                "{} does not see {expected:?}: {}",
                node.admin,
                node.api("GET", "/api/v1/cluster", None).1
            );
        }
    }
}

/// A self-signed certificate and key (openssl) in `dir`: (cert, key).
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Asks `server` for `name` with dig; returns (status, answers) — answers as `+short` lines.
pub fn dig(server: SocketAddr, name: &str, rtype: &str) -> (String, Vec<String>) {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            name,
            rtype,
            "+time=2",
            "+tries=1",
            "+norecurse",
        ])
        .output()
        .expect("dig (bind9-dnsutils) installed by the test command");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| format!("no answer: {text}"));
    let mut answers: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    answers.sort();
    (status, answers)
}

/// A real BIND 9 (`named`, installed by the test command) serving one zone on loopback,
/// with a TSIG key allowed to change the A and AAAA records of one name (RFC 2136).
pub struct Bind {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    /// The key file as `tsig-keygen` wrote it (`key "NAME" { …; secret "…"; };`).
    pub key_file: PathBuf,
    child: Child,
}

impl Bind {
    /// Starts named for `zone` (e.g. `example.com.`), letting key `key_name` update `name`.
    pub fn start(dir: &Path, zone: &str, name: &str, key_name: &str) -> Bind {
        std::fs::create_dir_all(dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let out = Command::new("/usr/sbin/tsig-keygen")
            .args(["-a", "hmac-sha256", key_name])
            .output()
            .expect("tsig-keygen (bind9) installed by the test command");
        assert!(out.status.success());
        let key_file = dir.join("tsig.key");
        std::fs::write(&key_file, &out.stdout).unwrap();
        let zone_file = write_zone(&dir, zone, "");
        let conf = format!(
            "include \"{}\";\n\
             zone \"{zone}\" {{ type primary; file \"{}\"; update-policy {{ grant {key_name} name {name} A AAAA; }}; }};\n",
            key_file.display(),
            zone_file.display()
        );
        Bind::run(&dir, &conf, key_file, zone)
    }

    /// Starts named serving `zones`: (zone name such as `bl.test.`, records in zone-file
    /// syntax relative to the zone). SOA and NS are added.
    pub fn serve(dir: &Path, zones: &[(&str, &str)]) -> Bind {
        std::fs::create_dir_all(dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let mut conf = String::new();
        for (zone, records) in zones {
            let file = write_zone(&dir, zone, records);
            conf.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{}\"; }};\n",
                file.display()
            ));
        }
        let probe = zones.first().map_or(".", |(zone, _)| *zone);
        Bind::run(&dir, &conf, dir.join("no-key"), probe)
    }

    fn run(dir: &Path, zones_conf: &str, key_file: PathBuf, probe_zone: &str) -> Bind {
        let port = loop {
            let port = free_udp_port("127.0.0.1");
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let conf = dir.join("named.conf");
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; session-keyfile \"{d}/session.key\"; \
                 listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; \
                 dnssec-validation no; notify no; }};\n\
                 controls {{ }};\n{zones_conf}"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("named.log")).unwrap();
        let child = Command::new("/usr/sbin/named")
            .args(["-g", "-n", "1", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("named (bind9) installed by the test command");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let bind = Bind {
            dir: dir.to_path_buf(),
            addr,
            key_file,
            child,
        };
        let up = wait_for(Duration::from_secs(20), || {
            (dig(addr, probe_zone, "SOA").0 == "NOERROR").then_some(())
        });
        assert!(up.is_some(), "named did not start:\n{}", bind.log());
        bind
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }
}

/// Writes `<zone>db` with SOA, NS and `records`; returns its path. The root zone `.`
/// makes the server authoritative for every name (all others are NXDOMAIN).
fn write_zone(dir: &Path, zone: &str, records: &str) -> PathBuf {
    let (file, ns) = match zone {
        "." => (dir.join("root.db"), "ns1.".to_string()),
        _ => (dir.join(format!("{zone}db")), format!("ns1.{zone}")),
    };
    std::fs::write(
        &file,
        format!(
            "$TTL 30\n@ IN SOA {ns} hostmaster.{ns} 1 3600 600 86400 30\n@ IN NS {ns}\n{ns} IN A 127.0.0.1\n{records}\n"
        ),
    )
    .unwrap();
    file
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The EICAR anti-virus test file (68 bytes), assembled at run time so that no file in
/// the repository is itself the test signature.
pub fn eicar() -> Vec<u8> {
    let head = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$";
    let tail = r"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    format!("{head}{tail}").into_bytes()
}

/// The signature name the test database gives EICAR.
pub const EICAR_SIGNATURE: &str = "Mxmesh-Test-Eicar";

/// A real clamd (Debian `clamav-daemon`, installed by the test command) listening on
/// loopback TCP with a database of one signature: EICAR, by MD5 of the file and by its
/// bytes anywhere in a scanned object.
pub struct Clamd {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Child,
}

impl Clamd {
    pub fn start(dir: &Path) -> Clamd {
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        let eicar = eicar();
        let md5 = Command::new("md5sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&eicar)?;
                c.wait_with_output()
            })
            .expect("md5sum");
        let md5 = String::from_utf8_lossy(&md5.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        std::fs::write(
            db.join("test.hdb"),
            format!("{md5}:{}:{EICAR_SIGNATURE}\n", eicar.len()),
        )
        .unwrap();
        std::fs::write(
            db.join("test.ndb"),
            format!("{EICAR_SIGNATURE}:0:*:{}\n", hex_of(&eicar)),
        )
        .unwrap();
        let port = free_port("127.0.0.1");
        let d = dir.display();
        let conf = dir.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nDatabaseDirectory {d}/db\nTCPSocket {port}\nTCPAddr 127.0.0.1\n\
                 LogFile {d}/clamd.log\nPidFile {d}/clamd.pid\nScanMail yes\nScanArchive yes\n"
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/clamd")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd (clamav-daemon) installed by the test command");
        let clamd = Clamd {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            dir: dir.to_path_buf(),
            child,
        };
        let up = wait_for(Duration::from_secs(60), || clamd.ping().then_some(()));
        assert!(up.is_some(), "clamd did not start:\n{}", clamd.log());
        clamd
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(self.addr) else {
            return false;
        };
        let mut reply = String::new();
        s.write_all(b"zPING\0").is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.starts_with("PONG")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("clamd.log")).unwrap_or_default()
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
