//! What every harness needs: the admin token, where binaries and fixtures are, a port
//! that refuses connections, and waiting on a condition.
//!
//! No harness picks a "free" port for a process to bind later (another process could
//! take it in between): our own servers bind port 0 and report what they bound (the
//! node's ready file, the sinks' `READY host:port` line), and the third-party servers
//! that cannot (BIND, clamd) are started again on another port when theirs was taken.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// This package's directory (`tests/`) as cargo names it when it runs the tests: the
/// compile-time `env!` value would be the checkout a shared target directory's binary was
/// built in, which a fresh clone elsewhere may reuse as up to date.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Path of a file in tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("fixtures").join(name)
}

/// A TCP address on `ip` where nothing listens, and nothing else can start listening
/// while this is held: the socket is bound but never listens, so a connection to it is
/// refused at once (a downstream or scanner that is down).
pub struct ClosedPort {
    /// The refused address.
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    /// Binds a port on `ip` chosen by the kernel, without listening.
    pub fn bind(ip: &str) -> ClosedPort {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        let socket = if ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .expect("a TCP socket");
        socket.bind(SocketAddr::new(ip, 0)).expect("binding port 0");
        ClosedPort {
            addr: socket.local_addr().expect("bound address"),
            _socket: socket,
        }
    }
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

/// Starts tried for a third-party server (BIND, clamd) that cannot bind port 0 and finds
/// its port taken.
pub const THIRD_PARTY_START_ATTEMPTS: usize = 8;

/// A port on `ip` free for TCP (and UDP, with `udp`) at this instant, for a third-party
/// server that cannot bind port 0 itself, and never handed out before in this process (two
/// tests starting servers at the same moment could otherwise both get a port the kernel
/// freed in between, and BIND binds its ports shared: both would listen, each answering
/// half of the queries). Another process may still take it before the server binds it:
/// the caller starts the server again on another candidate when that happens (at most
/// [`THIRD_PARTY_START_ATTEMPTS`] times).
pub fn candidate_port(ip: &str, udp: bool) -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let tcp = std::net::TcpListener::bind((ip, 0)).expect("binding a TCP port");
        let port = tcp.local_addr().expect("bound address").port();
        if udp && std::net::UdpSocket::bind((ip, port)).is_err() {
            continue;
        }
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}
