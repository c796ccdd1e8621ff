//! The current code reads what earlier versions put on the mesh wire (README, "Versions side
//! by side"). Each directory under `tests/fixtures/compat/` holds what one release wrote
//! (`mxmesh-sim compat-fixtures --out tests/fixtures/compat/vX.Y.Z`): every frame kind
//! with its answer, every gossip key, quarantine-index and Bayes deltas, every forwarded
//! operation with its answer, and a rule-book conversation. Every release's fixtures stay,
//! so this test keeps checking the versions that may still run beside this one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mxmesh_crdt::qindex::{IndexDelta, IndexEntry, QuarantineIndex};
use mxmesh_crdt::rule::Rule;
use mxmesh_crdt::rulebook::{RuleBook, SyncSession};
use mxmesh_crdt::{BayesCorpus, BayesDelta};
use mxmesh_node::cluster::index::decode_version_vector;
use mxmesh_node::cluster::keys;
use mxmesh_node::cluster::rpc::{QueueView, RpcRequest, decode_request};
use mxmesh_node::cluster::view::NodeView;
use mxmesh_node::mesh::frame::{self, FRAME_VERSION, Frame};
use mxmesh_node::mesh::gossip::{EnvelopeCodec, unframe};
use mxmesh_node::mesh::members::Member;
use mxmesh_node::mesh::{MessageKind, RemoteError};
use mxmesh_node::trace::TraceEvent;
use serde_json::Value;

/// This package's directory as cargo names it when it runs the tests (the compile-time
/// value may be another checkout that shared the target directory).
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Every release whose fixtures are kept.
fn releases() -> Vec<PathBuf> {
    let root = package_dir().join("../tests/fixtures/compat");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|d| d.expect("fixture dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no release fixtures under {}",
        root.display()
    );
    dirs
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One recorded exchange: the request frame and the answer frame (or the refusal in it).
struct Recorded {
    name: String,
    from: String,
    request: Frame,
    answer: Result<Frame, RemoteError>,
}

/// The exchanges of `kind` a release recorded, their frames checked: this version's header
/// layout, a request this node would hand to its handler, an answer it would accept.
fn recorded(release: &Path, kind: MessageKind) -> Vec<Recorded> {
    let manifest = json(&release.join("manifest.json"));
    let listed = manifest["files"]["frames"][kind.to_string()]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no {kind} frames listed", release.display()));
    assert!(
        !listed.is_empty(),
        "{}: no {kind} frames",
        release.display()
    );
    let dir = release.join("frames").join(kind.to_string());
    listed
        .iter()
        .map(|item| {
            let name = item["name"].as_str().expect("frame name").to_string();
            let at = |side: &str| dir.join(format!("{name}-{side}.bin"));
            let request = frame::decode_exact(&read(&at("request")))
                .unwrap_or_else(|e| panic!("{}: {e}", at("request").display()));
            assert_eq!(
                request.header.version,
                FRAME_VERSION,
                "{}",
                at("request").display()
            );
            assert_eq!(request.header.kind, kind, "{}", at("request").display());
            request
                .header
                .check_request()
                .unwrap_or_else(|e| panic!("{} refused: {e:?}", at("request").display()));
            let answer = frame::decode_exact(&read(&at("answer")))
                .unwrap_or_else(|e| panic!("{}: {e}", at("answer").display()));
            assert!(answer.header.is_response(), "{}", at("answer").display());
            assert_eq!(answer.header.kind, kind, "{}", at("answer").display());
            let answer = if answer.header.is_error() {
                Err(frame::decode_error(&answer.body))
            } else {
                Ok(answer)
            };
            Recorded {
                name,
                from: item["from"].as_str().unwrap_or_default().to_string(),
                request,
                answer,
            }
        })
        .collect()
}

fn answer_body(r: &Recorded) -> &[u8] {
    match &r.answer {
        Ok(frame) => &frame.body,
        Err(e) => panic!("{}: refused: {e:?}", r.name),
    }
}

#[tokio::test]
async fn gossip_frames_decode_with_the_senders_claim() {
    let mut codec = EnvelopeCodec::new().await.expect("envelope codec");
    for release in releases() {
        for r in recorded(&release, MessageKind::GOSSIP) {
            let (claimed, chitchat) = unframe(&r.request.body)
                .unwrap_or_else(|| panic!("{}: gossip {} unframed", release.display(), r.name));
            assert_eq!(claimed, r.from, "gossip {} claims its sender", r.name);
            codec
                .decode(chitchat)
                .await
                .unwrap_or_else(|e| panic!("{}: gossip {}: {e}", release.display(), r.name));
        }
    }
}

#[test]
fn rules_sync_messages_are_received() {
    for release in releases() {
        for r in recorded(&release, MessageKind::RULES_SYNC) {
            for body in [&r.request.body[..], answer_body(&r)] {
                if body.is_empty() {
                    continue;
                }
                let (mut book, mut session) = (RuleBook::new(), SyncSession::new());
                session
                    .receive(&mut book, body)
                    .unwrap_or_else(|e| panic!("{}: rules {}: {e}", release.display(), r.name));
            }
        }
    }
}

#[test]
fn a_rule_conversation_gives_the_same_rules() {
    for release in releases() {
        let dir = release.join("rules-conversation");
        let manifest = json(&release.join("manifest.json"));
        let messages = manifest["files"]["rules-conversation"]
            .as_array()
            .expect("conversation listed");
        assert!(!messages.is_empty());
        let (mut book, mut session) = (RuleBook::new(), SyncSession::new());
        for name in messages {
            let path = dir.join(name.as_str().expect("message name"));
            session
                .receive(&mut book, &read(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let _ = session.generate(&book);
        }
        let got: Vec<Value> = book.list().iter().map(Rule::to_json).collect();
        assert_eq!(
            Value::Array(got),
            json(&dir.join("rules.json")),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn index_deltas_apply() {
    for release in releases() {
        let mut entries = 0;
        for r in recorded(&release, MessageKind::INDEX_SYNC) {
            decode_version_vector(&r.request.body)
                .unwrap_or_else(|e| panic!("{}: index {}: {e:?}", release.display(), r.name));
            let delta: IndexDelta = serde_json::from_slice(answer_body(&r))
                .unwrap_or_else(|e| panic!("{}: index {}: {e}", release.display(), r.name));
            entries += delta.owners.iter().map(|o| o.entries.len()).sum::<usize>();
            QuarantineIndex::new()
                .apply(delta)
                .unwrap_or_else(|e| panic!("{}: index {}: {e}", release.display(), r.name));
        }
        assert!(
            entries > 0,
            "{}: no index delta carries entries",
            release.display()
        );
    }
}

#[test]
fn bayes_deltas_apply() {
    for release in releases() {
        let mut records = 0;
        for r in recorded(&release, MessageKind::BAYES_SYNC) {
            serde_json::from_slice::<BTreeMap<String, u64>>(&r.request.body)
                .unwrap_or_else(|e| panic!("{}: bayes {}: {e}", release.display(), r.name));
            let delta: BayesDelta = serde_json::from_slice(answer_body(&r))
                .unwrap_or_else(|e| panic!("{}: bayes {}: {e}", release.display(), r.name));
            records += delta.owners.iter().map(|o| o.records.len()).sum::<usize>();
            BayesCorpus::new()
                .apply(delta)
                .unwrap_or_else(|e| panic!("{}: bayes {}: {e}", release.display(), r.name));
        }
        assert!(
            records > 0,
            "{}: no Bayes delta carries records",
            release.display()
        );
    }
}

#[test]
fn every_forwarded_operation_and_its_answer_decode() {
    for release in releases() {
        let mut ops = BTreeSet::new();
        for r in recorded(&release, MessageKind::RPC) {
            let request = decode_request(&r.request.body)
                .unwrap_or_else(|e| panic!("{}: rpc {}: {e:?}", release.display(), r.name));
            let at = format!("{}: rpc {}", release.display(), r.name);
            if r.answer.is_err() {
                continue;
            }
            let body = answer_body(&r);
            let op = match request {
                RpcRequest::Raw { .. } => {
                    assert!(body.starts_with(b"Subject:") || !body.is_empty(), "{at}");
                    "raw"
                }
                RpcRequest::Release { .. } | RpcRequest::Delete { .. } => {
                    let entry: IndexEntry =
                        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert!(!entry.id.is_empty(), "{at}");
                    if matches!(request, RpcRequest::Release { .. }) {
                        "release"
                    } else {
                        "delete"
                    }
                }
                RpcRequest::Trace { .. } => {
                    let events: Vec<TraceEvent> =
                        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert!(!events.is_empty(), "{at}");
                    "trace"
                }
                RpcRequest::Queue => {
                    let view: QueueView =
                        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(view.size, view.entries.len(), "{at}");
                    "queue"
                }
                RpcRequest::Flush => {
                    assert!(
                        serde_json::from_slice::<bool>(body)
                            .unwrap_or_else(|e| panic!("{at}: {e}"))
                    );
                    "flush"
                }
                RpcRequest::Drain | RpcRequest::Undrain => {
                    let health: String =
                        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert!(
                        ["ok", "draining"].contains(&health.as_str()),
                        "{at}: {health}"
                    );
                    if matches!(request, RpcRequest::Drain) {
                        "drain"
                    } else {
                        "undrain"
                    }
                }
                newer => panic!("{at}: {newer:?} is newer than this release's operations"),
            };
            ops.insert(op);
        }
        let all = BTreeSet::from([
            "raw", "release", "delete", "trace", "queue", "flush", "drain", "undrain",
        ]);
        assert_eq!(ops, all, "{}: operations recorded", release.display());
    }
}

#[test]
fn gossip_keys_read_as_this_version_reads_them() {
    let known = [
        keys::HEALTH,
        keys::SMTP_ADDR,
        keys::ADMIN_ADDR,
        keys::RULES_DIGEST,
        keys::QUARANTINE_ENTRIES,
        keys::QINDEX_SEQ,
        keys::COUNTERS,
        keys::DNS_ADDR,
        keys::BAYES_DIGEST,
    ];
    for release in releases() {
        let nodes = json(&release.join("gossip-keys.json"));
        let nodes = nodes.as_object().expect("nodes");
        assert!(!nodes.is_empty());
        for (id, node) in nodes {
            let at = format!("{}: {id}", release.display());
            let published: BTreeMap<String, String> = node["keys"]
                .as_object()
                .expect("keys")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
                .collect();
            for key in published.keys() {
                assert!(
                    known.contains(&key.as_str()),
                    "{at}: key {key} unknown to this version"
                );
            }
            let get = |k: &str| published.get(k).map(String::as_str).unwrap_or_default();
            get(keys::QINDEX_SEQ)
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            get(keys::QUARANTINE_ENTRIES)
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            serde_json::from_str::<mxmesh_crdt::Counters>(get(keys::COUNTERS))
                .unwrap_or_else(|e| panic!("{at}: counters: {e}"));
            let version = node["version"].as_str().expect("version");
            let view = NodeView::of(&Member::new(id, version, published.clone()));
            assert_eq!(view.health, "ok", "{at}");
            assert_eq!(view.rules_digest.len(), 64, "{at}");
            assert!(
                !view.smtp_addr.is_empty() && !view.admin_addr.is_empty(),
                "{at}"
            );
            assert_eq!(view.member.version, version, "{at}");
        }
    }
}
