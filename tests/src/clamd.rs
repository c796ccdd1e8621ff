//! A real clamd for virus-scanning tests, with a one-signature database (EICAR).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{THIRD_PARTY_START_ATTEMPTS, candidate_port, wait_for};

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
    /// The loopback TCP address it listens on.
    pub addr: SocketAddr,
    /// Its directory: config, database and log.
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
        for _ in 0..THIRD_PARTY_START_ATTEMPTS {
            if let Some(clamd) = Clamd::try_start(dir) {
                return clamd;
            }
        }
        panic!("clamd: no free port in {THIRD_PARTY_START_ATTEMPTS} attempts");
    }

    /// Starts clamd on a candidate port; None when the port turned out to be taken
    /// (clamd exits: "Cannot bind").
    fn try_start(dir: &Path) -> Option<Clamd> {
        let port = candidate_port("127.0.0.1", false);
        let d = dir.display();
        let conf = dir.join("clamd.conf");
        let log_path = dir.join("clamd.log");
        let _ = std::fs::remove_file(&log_path);
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nDatabaseDirectory {d}/db\nTCPSocket {port}\nTCPAddr 127.0.0.1\n\
                 LogFile {d}/clamd.log\nPidFile {d}/clamd.pid\nScanMail yes\nScanArchive yes\n"
            ),
        )
        .unwrap();
        let mut child = Command::new("/usr/sbin/clamd")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd (clamav-daemon) installed by the test command");
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        // clamd logs "TCP: Bound to [127.0.0.1]:PORT" once it has its port, and exits when
        // it cannot bind it.
        let bound = wait_for(Duration::from_secs(60), || {
            if log().contains(&format!("TCP: Bound to [127.0.0.1]:{port}")) {
                return Some(true);
            }
            child.try_wait().ok().flatten().map(|_| false)
        });
        match bound {
            Some(true) => {}
            Some(false) if log().contains("Cannot bind") => return None,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("clamd did not start:\n{}", log());
            }
        }
        let clamd = Clamd {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            dir: dir.to_path_buf(),
            child,
        };
        let up = wait_for(Duration::from_secs(60), || clamd.ping().then_some(()));
        assert!(up.is_some(), "clamd does not answer:\n{}", clamd.log());
        Some(clamd)
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
