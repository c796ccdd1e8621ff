//! A mesh of `mxmesh node` processes: the cluster CA (`mxmesh ca`), the `[mesh]` section,
//! and N nodes on 127.0.0.1..N seeded with each other.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Node, NodeOpts, bin, free_udp_port, wait_for};

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
