//! `mxmesh-sim compat-fixtures --out DIR`: writes what this version puts on the mesh wire,
//! for the next version's "reads the previous version" test (`node/tests/wire_compat.rs`,
//! README "Versions side by side").
//!
//! Two real nodes run over the in-memory network with every mesh handler recording what it
//! serves (`wire.rs`), while the workload makes each kind of traffic happen: rule edits
//! (`RULES_SYNC`), quarantined mail (`INDEX_SYNC`), a Bayes learn (`BAYES_SYNC`), every
//! forwarded admin operation (`RPC`: raw, release, delete, trace, queue, flush, drain,
//! undrain) and gossip throughout (`GOSSIP`). Written, under DIR:
//!
//! - `frames/<kind>/<nn>-request.bin` and `<nn>-answer.bin`: whole frames (header and body)
//!   as this version writes them; an answer that is a refusal is an error frame. For `rpc`,
//!   `<op>-request.bin`/`<op>-answer.bin`, one per operation.
//! - `gossip-keys.json`: every application key each node publishes in gossip, with its
//!   value, and the node's build version.
//! - `rules-conversation/<nn>.bin` and `rules-conversation/rules.json`: the automerge sync
//!   messages one rule book sends to an empty one until they agree, and the rules the empty
//!   one then lists (the replay test checks that the current code ends with the same rules).
//! - `manifest.json`: the version, and the files of each kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mxmesh_crdt::rule::Rule;
use mxmesh_crdt::rulebook::{Author, RuleBook, SyncSession};
use mxmesh_node::mesh::frame::{self, FrameHeader};
use mxmesh_node::mesh::{MessageKind, RemoteError};
use serde_json::{Value, json};

use crate::wire::{Exchange, WireLog};
use crate::world::World;

/// Exchanges of one sync kind kept as fixtures at most.
const PER_KIND_MAX: usize = 4;
/// Polls of a condition the workload waits for (each [`POLL`] of virtual time).
const WAIT_POLLS_MAX: usize = 600;
/// Time between polls.
const POLL: Duration = Duration::from_millis(100);
/// Rounds of the rule-book conversation at most (it needs a handful).
const CONVERSATION_ROUNDS_MAX: usize = 64;

/// Polls `check` on virtual time until it holds, at most [`WAIT_POLLS_MAX`] times; else an
/// error naming what never happened.
macro_rules! wait_until {
    ($what:expr, $check:expr) => {{
        let mut held = false;
        for _ in 0..WAIT_POLLS_MAX {
            if $check.await {
                held = true;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if !held {
            bail!("waited in vain for {}", $what);
        }
    }};
}

/// The command line of `compat-fixtures`.
#[derive(clap::Args)]
pub struct CompatArgs {
    /// Directory to write the fixtures to (created; files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs the workload on a fresh paused-clock runtime and writes the fixtures.
pub fn run(args: CompatArgs) -> anyhow::Result<()> {
    let out = args.out;
    std::thread::Builder::new()
        .name("compat-fixtures".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()?;
            rt.block_on(generate(&out))
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("the fixture thread panicked"))?
}

async fn generate(out: &Path) -> anyhow::Result<()> {
    let log = Arc::new(WireLog::default());
    let mut world = World::create(2, Default::default()).await?;
    world.record_wire(log.clone());
    world.start_node(0).await?;
    world.start_node(1).await?;
    let published = workload(&world).await?;
    world.shutdown().await;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut manifest = BTreeMap::new();
    manifest.insert("frames".to_string(), write_frames(out, &log.exchanges())?);
    write_json(&out.join("gossip-keys.json"), &published)?;
    manifest.insert(
        "rules-conversation".to_string(),
        write_conversation(&out.join("rules-conversation"))?,
    );
    let manifest = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "frame_version": frame::FRAME_VERSION,
        "files": manifest,
    });
    write_json(&out.join("manifest.json"), &manifest)?;
    println!("compat fixtures written to {}", out.display());
    Ok(())
}

/// Makes every kind of mesh traffic happen; returns what each node publishes in gossip.
async fn workload(world: &World) -> anyhow::Result<Value> {
    wait_until!("both nodes live on both", both_live(world));
    rule_edits(world).await?;
    for token in ["compat-1", "compat-2", "compat-3"] {
        let code = world.send_mail(0, token, true).await;
        if code != 250 {
            bail!("mail {token}: {code}");
        }
    }
    world.send_mail(0, "compat-relayed", false).await;
    let learn = "From: a@remote.test\r\nSubject: cheap pills\r\nMessage-ID: <learn-1@compat>\r\n\r\nbuy cheap pills now\r\n";
    let (status, body) = world
        .api_raw(0, "POST", "/api/v1/learn/spam", learn.as_bytes().to_vec())
        .await;
    if status >= 300 {
        bail!("learn: {status} {body}");
    }
    wait_until!("the quarantine index on mx2", indexed_on_mx2(world));
    forwarded_operations(world).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(published_keys(world).await)
}

/// Creates, updates and deletes rules on mx1 and waits until mx2 lists the same.
async fn rule_edits(world: &World) -> anyhow::Result<()> {
    let rules = [
        json!({"name": "compat quarantine", "priority": 1, "action": "quarantine",
            "when": {"field": "subject", "op": "contains", "value": "quarantine-me"}}),
        json!({"name": "compat tag", "priority": 5, "action": "tag", "subject_prefix": "[old]",
            "when": {"all": [{"field": "header:X-Compat", "op": "exists"},
                             {"not": {"field": "from", "op": "contains", "value": "@example.com"}}]}}),
        json!({"name": "compat doomed", "action": "reject", "reason": "compat",
            "when": {"field": "size", "op": "gt", "value": 1000000}}),
    ];
    let mut ids = Vec::new();
    for rule in rules {
        let (status, body) = world.api(0, "POST", "/api/v1/rules", Some(rule)).await;
        let id = body["id"].as_str().map(str::to_string);
        match (status, id) {
            (201, Some(id)) => ids.push(id),
            _ => bail!("creating a rule: {status} {body}"),
        }
    }
    let update = json!({"name": "compat tag", "priority": 6, "action": "tag", "subject_prefix": "[new]",
        "when": {"field": "header:X-Compat", "op": "exists"}});
    let (status, body) = world
        .api(0, "PUT", &format!("/api/v1/rules/{}", ids[1]), Some(update))
        .await;
    if status != 200 {
        bail!("updating a rule: {status} {body}");
    }
    let (status, _) = world
        .api(1, "DELETE", &format!("/api/v1/rules/{}", ids[2]), None)
        .await;
    // mx2 may not have the rule yet (404); then it is deleted on mx1.
    if status != 200 && status != 204 {
        world
            .api(0, "DELETE", &format!("/api/v1/rules/{}", ids[2]), None)
            .await;
    }
    wait_until!("the rule books to agree", rules_agree(world));
    Ok(())
}

/// Every forwarded operation, asked on mx2 of mx1.
async fn forwarded_operations(world: &World) -> anyhow::Result<()> {
    let (_, q) = world.api(1, "GET", "/api/v1/quarantine", None).await;
    let ids: Vec<String> = q["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let [first, second, ..] = ids.as_slice() else {
        bail!("mx2 lists {} quarantined messages, expected 3", ids.len());
    };
    let calls = [
        ("GET", format!("/api/v1/quarantine/{first}/raw")),
        ("POST", format!("/api/v1/quarantine/{first}/release")),
        ("DELETE", format!("/api/v1/quarantine/{second}")),
        ("GET", "/api/v1/quarantine/q-unknown/raw".to_string()),
        ("GET", "/api/v1/trace".to_string()),
        ("GET", "/api/v1/queue?node=mx1".to_string()),
        ("POST", "/api/v1/queue/flush?node=mx1".to_string()),
        ("POST", "/api/v1/nodes/mx1/drain".to_string()),
        ("POST", "/api/v1/nodes/mx1/undrain".to_string()),
    ];
    for (method, path) in calls {
        let (status, body) = world.api(1, method, &path, None).await;
        if status == 0 || status >= 500 {
            bail!("{method} {path} on mx2: {status} {body}");
        }
    }
    Ok(())
}

/// Every key each node publishes, as mx2 sees them: `{node: {"version": build version,
/// "keys": {key: value}}}` (the mesh's own `identity` and `protocol` travel in the gossip
/// frames).
async fn published_keys(world: &World) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(mesh) = world.handle(1).and_then(|h| h.mesh.clone()) {
        for member in mesh.members().await {
            let keys: serde_json::Map<String, Value> = member
                .published()
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            let node = json!({"version": member.version, "keys": keys});
            out.insert(member.id.clone(), node);
        }
    }
    Value::Object(out)
}

/// Whether both nodes list both as members.
async fn both_live(world: &World) -> bool {
    let mut all = true;
    for i in 0..2 {
        let (_, c) = world.api(i, "GET", "/api/v1/cluster", None).await;
        all &= c["members"].as_array().is_some_and(|m| m.len() == 2);
    }
    all
}

/// Whether mx2 indexes the three quarantined messages.
async fn indexed_on_mx2(world: &World) -> bool {
    let (_, q) = world.api(1, "GET", "/api/v1/quarantine", None).await;
    q["items"].as_array().is_some_and(|i| i.len() >= 3)
}

/// Whether both nodes list the same two rules.
async fn rules_agree(world: &World) -> bool {
    let (_, a) = world.api(0, "GET", "/api/v1/rules", None).await;
    let (_, b) = world.api(1, "GET", "/api/v1/rules", None).await;
    a == b
        && a.as_array()
            .or(a["rules"].as_array())
            .is_some_and(|r| r.len() == 2)
}

/// Writes the chosen exchanges as frames; returns the files written by kind.
fn write_frames(out: &Path, exchanges: &[Exchange]) -> anyhow::Result<Value> {
    let mut files = serde_json::Map::new();
    for kind in [
        MessageKind::GOSSIP,
        MessageKind::RULES_SYNC,
        MessageKind::INDEX_SYNC,
        MessageKind::BAYES_SYNC,
        MessageKind::RPC,
    ] {
        let dir = out.join("frames").join(kind.to_string());
        std::fs::create_dir_all(&dir)?;
        let of_kind: Vec<&Exchange> = exchanges.iter().filter(|e| e.kind == kind).collect();
        let chosen = if kind == MessageKind::RPC {
            one_per_op(&of_kind)?
        } else {
            representative(&of_kind)
        };
        if chosen.is_empty() {
            bail!("no {kind} exchange was recorded");
        }
        let mut names = Vec::new();
        for (name, e) in chosen {
            write_frame(&dir, &name, e)?;
            names.push(json!({"name": name, "from": e.from, "to": e.to}));
        }
        files.insert(kind.to_string(), Value::Array(names));
    }
    Ok(Value::Object(files))
}

/// The first exchange with a body both ways, and those with the largest request and answer.
fn representative<'a>(of_kind: &[&'a Exchange]) -> Vec<(String, &'a Exchange)> {
    let answer_len = |e: &Exchange| e.answer.as_ref().map_or(0, |a| a.len());
    let mut picks: Vec<&Exchange> = Vec::new();
    if let Some(e) = of_kind
        .iter()
        .find(|e| !e.request.is_empty() && answer_len(e) > 0)
    {
        picks.push(e);
    }
    if let Some(e) = of_kind.iter().max_by_key(|e| answer_len(e)) {
        picks.push(e);
    }
    if let Some(e) = of_kind.iter().max_by_key(|e| e.request.len()) {
        picks.push(e);
    }
    if let Some(e) = of_kind.first() {
        picks.push(e);
    }
    let mut seen = Vec::new();
    picks.retain(|e| {
        let fresh = !seen.contains(&std::ptr::from_ref(*e));
        seen.push(std::ptr::from_ref(*e));
        fresh
    });
    picks.truncate(PER_KIND_MAX);
    picks
        .into_iter()
        .enumerate()
        .map(|(n, e)| (format!("{n:02}"), e))
        .collect()
}

/// The first exchange of every RPC operation (`op` of the request), and one refusal.
fn one_per_op<'a>(of_kind: &[&'a Exchange]) -> anyhow::Result<Vec<(String, &'a Exchange)>> {
    let mut by_op: BTreeMap<String, &Exchange> = BTreeMap::new();
    for e in of_kind {
        let request: Value = serde_json::from_slice(&e.request).context("an RPC request")?;
        let op = request["op"].as_str().unwrap_or("unknown").to_string();
        let name = if e.answer.is_err() {
            format!("{op}-refused")
        } else {
            op
        };
        by_op.entry(name).or_insert(e);
    }
    Ok(by_op.into_iter().collect())
}

fn write_frame(dir: &Path, name: &str, e: &Exchange) -> anyhow::Result<()> {
    let request = frame::encode(FrameHeader::request(e.kind, e.request.len())?, &e.request)?;
    std::fs::write(dir.join(format!("{name}-request.bin")), request)?;
    let answer = match &e.answer {
        Ok(body) => frame::encode(FrameHeader::response(e.kind, false, body.len())?, body)?,
        Err(error) => error_frame(e.kind, error)?,
    };
    std::fs::write(dir.join(format!("{name}-answer.bin")), answer)?;
    Ok(())
}

fn error_frame(kind: MessageKind, error: &RemoteError) -> anyhow::Result<bytes::Bytes> {
    let body = frame::encode_error(error);
    Ok(frame::encode(
        FrameHeader::response(kind, true, body.len())?,
        &body,
    )?)
}

/// A rule book with rules made, changed and deleted, synced into an empty one; writes the
/// messages the first sent and the rules the second ends with.
fn write_conversation(dir: &Path) -> anyhow::Result<Value> {
    std::fs::create_dir_all(dir)?;
    let author = Author {
        node: "mx1".into(),
        admin: "compat".into(),
    };
    let mut a = RuleBook::new();
    let rule = |text: Value| Rule::from_json(&text).map_err(|e| anyhow::anyhow!("{e}"));
    let kept = a.create(
        rule(
            json!({"id": "r-compat-kept", "name": "kept", "action": "quarantine",
            "when": {"field": "subject", "op": "contains", "value": "quarantine-me"}}),
        )?,
        &author,
        1_000,
    )?;
    a.create(
        rule(
            json!({"id": "r-compat-gone", "name": "gone", "action": "reject",
            "when": {"field": "size", "op": "gt", "value": 5}}),
        )?,
        &author,
        2_000,
    )?;
    a.update(
        &kept.id,
        rule(json!({"id": "r-compat-kept", "name": "kept", "action": "tag",
            "subject_prefix": "[x]", "when": {"field": "subject", "op": "contains", "value": "quarantine-me"}}))?,
        &author,
        3_000,
    )?;
    a.delete("r-compat-gone", &author, 4_000)?;
    let mut b = RuleBook::new();
    let (mut sa, mut sb) = (SyncSession::new(), SyncSession::new());
    let mut names = Vec::new();
    for n in 0..CONVERSATION_ROUNDS_MAX {
        let Some(message) = sa.generate(&a) else {
            break;
        };
        let name = format!("{n:02}.bin");
        std::fs::write(dir.join(&name), &message)?;
        names.push(Value::from(name));
        sb.receive(&mut b, &message)?;
        if let Some(answer) = sb.generate(&b) {
            sa.receive(&mut a, &answer)?;
        }
    }
    let rules: Vec<Value> = b.list().iter().map(Rule::to_json).collect();
    if rules.len() != 1 {
        bail!(
            "the rule conversation left {} rules, expected 1",
            rules.len()
        );
    }
    write_json(&dir.join("rules.json"), &Value::Array(rules))?;
    Ok(Value::Array(names))
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
