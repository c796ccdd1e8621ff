//! A mesh of `mxmesh node` processes: the cluster CA (`mxmesh ca`), the `[mesh]` section,
//! and N nodes on 127.0.0.1..N seeded with each other.
//!
//! Mesh endpoints bind port 0 like every other listener, so the nodes start one after
//! another, each seeded with the endpoints of those already running (the first with none:
//! the others join it); then every config is pinned to name all the others as seeds, for
//! restarts.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Node, NodeOpts, bin, edit_config, wait_for};

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
    /// Holds the certificates and every node's directory; deleted on drop.
    pub dir: tempfile::TempDir,
    /// The nodes, `mx1` at index 0.
    pub nodes: Vec<Node>,
    /// Each node's mesh endpoint, in the order of `nodes`.
    pub mesh_addrs: Vec<SocketAddr>,
}

impl Cluster {
    pub fn start(n: usize, relay_to: SocketAddr) -> Cluster {
        Cluster::start_with(n, relay_to, |_| String::new())
    }

    /// Like [`Cluster::start`], with `more(i)` appended to node i's config (1-based).
    pub fn start_with(n: usize, relay_to: SocketAddr, more: impl Fn(usize) -> String) -> Cluster {
        Cluster::start_domains(n, relay_to, "", more)
    }

    /// Like [`Cluster::start_with`], with `domain_extra` added to every `[[domains]]` entry.
    pub fn start_domains(
        n: usize,
        relay_to: SocketAddr,
        domain_extra: &str,
        more: impl Fn(usize) -> String,
    ) -> Cluster {
        Cluster::start_custom(n, relay_to, |i, o| {
            o.domain_extra = domain_extra.to_string();
            o.extra.push_str(&more(i));
        })
    }

    /// N nodes whose options `custom(i, opts)` sets (1-based; `opts.extra` already holds
    /// the `[mesh]` section: append to it).
    pub fn start_custom(
        n: usize,
        relay_to: SocketAddr,
        custom: impl Fn(usize, &mut NodeOpts),
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (1..=n).map(|i| format!("mx{i}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let certs = dir.path().join("certs");
        make_certs(&certs, &id_refs);
        let mut nodes: Vec<Node> = Vec::new();
        let mut mesh_addrs: Vec<SocketAddr> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let mut o = NodeOpts::new(relay_to);
            o.id = id.clone();
            o.ip = format!("127.0.0.{}", i + 1);
            let listen = format!("{}:0", o.ip).parse().unwrap();
            o.extra = mesh_section(listen, &mesh_addrs, &certs, id);
            custom(i + 1, &mut o);
            let node = Node::start(&dir.path().join(id), &o);
            mesh_addrs.push(node.mesh.expect("a mesh node reports its mesh endpoint"));
            nodes.push(node);
        }
        for (i, node) in nodes.iter().enumerate() {
            let seeds: Vec<toml::Value> = mesh_addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.to_string().into())
                .collect();
            edit_config(&node.config, |t| {
                t.get_mut("mesh")
                    .and_then(toml::Value::as_table_mut)
                    .expect("[mesh]")
                    .insert("seeds".into(), seeds.into());
            });
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
