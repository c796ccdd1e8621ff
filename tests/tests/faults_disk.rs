//! Faults 2: disk full. The node's data directory is a small tmpfs made by the test; a
//! filler file takes the rest of it. While the store cannot write, every message gets a
//! 4xx (never a 250), /healthz and /metrics say so; when the space returns the same process
//! accepts mail again, and nothing acked before, during or after is lost (checked after a
//! SIGKILL). Needs root (mount); fails with a clear message otherwise.

use std::time::{Duration, Instant};

use mxmesh_tests::faults::{Tmpfs, assert_acked_survive_kill9, eventually, require_root, send_one};
use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode};

#[test]
fn disk_full_gives_4xx_never_250_and_recovers_without_restart() {
    require_root("the disk-full test");
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    // Larger than the 64 MiB RocksDB keeps free for a memtable flush before it resumes.
    let fs = Tmpfs::mount(&node_dir.join("data"), 256);
    // Downstream stays down until the end, so every acked message is still in the store.
    let mut sink = Sink::held(&dir.path().join("sink"), SinkMode::default());
    let mut node = Node::start(&node_dir, &NodeOpts::new(sink.addr));
    let pid = node.pid();
    let mut acked = Vec::new();
    for i in 0..3 {
        let s = format!("before-{i}");
        let r = send_one(node.smtp, &s, 2000);
        assert_eq!(r.0, 250, "{s}: {r:?}");
        acked.push(s);
    }

    let filled = fs.fill("filler");
    assert!(filled > 0);
    // RocksDB may still have preallocated WAL space: those 250s are genuinely durable.
    // Keep sending until the store runs out; from then on every answer must be a 4xx.
    let mut first_4xx = None;
    for i in 0..400 {
        let s = format!("full-{i}");
        let (code, text) = send_one(node.smtp, &s, 512 * 1024);
        match code {
            250 => acked.push(s),
            400..=499 => {
                first_4xx = Some((i, text));
                break;
            }
            _ => panic!("{s}: unexpected {code} {text}; log:\n{}", node.log()),
        }
    }
    let (n_before, text) = first_4xx.expect("the store never ran out of space");
    assert!(text.starts_with("451"), "{text}");
    eprintln!(
        "disk full: {n_before} messages of 512 KiB accepted into preallocated space, then 4xx"
    );
    for i in 0..5 {
        let s = format!("still-full-{i}");
        let (code, text) = send_one(node.smtp, &s, 10_000);
        assert!(
            (400..500).contains(&code),
            "{s} while the disk is full: {code} {text}"
        );
    }
    let health = reqwest::blocking::get(node.url("/healthz")).unwrap();
    assert_eq!(health.status().as_u16(), 503, "/healthz while writes fail");
    assert!(health.text().unwrap().contains("store_error"));
    let metrics = reqwest::blocking::get(node.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("mxmesh_store_write_failing{node=\"mx1\"} 1"),
        "{metrics}"
    );

    // Space returns: the same process accepts mail again.
    std::fs::remove_file(fs.path.join("filler")).unwrap();
    let freed = Instant::now();
    let mut n = 0;
    eventually(
        Duration::from_secs(60),
        "mail accepted again after space returned",
        || {
            n += 1;
            let s = format!("after-{n}");
            let (code, text) = send_one(node.smtp, &s, 10_000);
            assert!(
                code == 250 || (400..500).contains(&code),
                "{s}: {code} {text}"
            );
            if code == 250 {
                acked.push(s);
            }
            code == 250
        },
    );
    eprintln!("recovered {:?} after the space returned", freed.elapsed());
    assert_eq!(node.pid(), pid, "recovered without a restart");
    eventually(Duration::from_secs(10), "/healthz ok again", || {
        reqwest::blocking::get(node.url("/healthz"))
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });
    for i in 0..5 {
        let s = format!("after-more-{i}");
        let r = send_one(node.smtp, &s, 10_000);
        assert_eq!(r.0, 250, "{s}: {r:?}");
        acked.push(s);
    }

    // Nothing acked is lost, also across a SIGKILL.
    assert_acked_survive_kill9(&mut node, &mut sink, &acked);
    eprintln!("disk full: {} acked, 0 lost", acked.len());
}
