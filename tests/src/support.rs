//! What every harness needs: the admin token, where binaries and fixtures are, free
//! loopback ports, and waiting on a condition.

use std::net::TcpListener;
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

/// A free UDP port on `ip` (for the QUIC mesh listener).
pub fn free_udp_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
