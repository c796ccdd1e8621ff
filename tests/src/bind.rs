//! A real BIND 9 for DNS tests (RFC 2136 updates, DNSBL zones) and `dig` to query it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{THIRD_PARTY_START_ATTEMPTS, candidate_port, wait_for};

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
    /// Its directory: config, zone files, key and log.
    pub dir: PathBuf,
    /// The address it answers on (UDP and TCP, loopback).
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

    /// Starts named with `zones_conf` on a candidate port; when that port turns out to be
    /// taken (named exits: "unable to listen"), starts it again on another.
    fn run(dir: &Path, zones_conf: &str, key_file: PathBuf, probe_zone: &str) -> Bind {
        let log_path = dir.join("named.log");
        for _ in 0..THIRD_PARTY_START_ATTEMPTS {
            let port = candidate_port("127.0.0.1", true);
            let conf = dir.join("named.conf");
            let d = dir.display();
            std::fs::write(
                &conf,
                format!(
                    "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; session-keyfile \"{d}/session.key\"; \
                     listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; reuseport no; \
                     dnssec-validation no; notify no; }};\n\
                     controls {{ }};\n{zones_conf}"
                ),
            )
            .unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new("/usr/sbin/named")
                .args(["-g", "-n", "1", "-c"])
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("named (bind9) installed by the test command");
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            // named logs "running" once it serves.
            let running = wait_for(Duration::from_secs(20), || {
                if log().lines().any(|l| l.ends_with(" running")) {
                    return Some(true);
                }
                child.try_wait().ok().flatten().map(|_| false)
            });
            // named exits when it cannot listen at all; where another process holds the
            // port it still runs on what it could bind (`reuseport no` makes it say so), and
            // would share the port with that process. Either way: another port.
            let l = log();
            if l.contains("unable to listen") || l.contains("address in use") {
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            match running {
                Some(true) => {
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
                    assert!(up.is_some(), "named does not answer:\n{}", bind.log());
                    return bind;
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("named did not start:\n{}", log());
                }
            }
        }
        panic!("named: no free port in {THIRD_PARTY_START_ATTEMPTS} attempts");
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
