//! Operations endpoints: health, metrics, cluster, stats, trace, queue, drain.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mxmesh_crdt::counters::{CounterKind, Counters};
use serde_json::{Value, json};

use super::dto::parse_since;
use super::{Api, ApiError};
use crate::mesh::members::Member;
use crate::trace::{self, TraceQuery};

/// Queue entries `/api/v1/queue` lists at most (oldest first); `size` gives the total.
pub const QUEUE_LIST_MAX: usize = 1000;
pub async fn healthz(State(api): State<Api>) -> Response {
    let health = api.shared.health();
    if health == "ok" {
        (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": health })),
        )
            .into_response()
    }
}

/// Every member of the mesh (just this node without `[mesh]`), this node first.
async fn members(s: &crate::node::Shared) -> Vec<Member> {
    match s.mesh.get() {
        Some(mesh) => {
            let mut m = mesh.members().await;
            // This node's own numbers are read live rather than as last published.
            if let Some(me) = m.first_mut() {
                me.counters = s.stats.snapshot();
                me.health = s.health().to_string();
                me.rules_digest = s.rules.digest();
                me.quarantine_entries = s.quarantine.live_entries() as u64;
            }
            m
        }
        None => vec![Member {
            id: s.config.node.id.clone(),
            live: true,
            health: s.health().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            smtp_addr: s.smtp_addr.to_string(),
            admin_addr: s.admin_addr.to_string(),
            mesh_addr: String::new(),
            last_seen_ms: 0,
            rules_digest: s.rules.digest(),
            quarantine_entries: s.quarantine.live_entries() as u64,
            qindex_seq: 0,
            counters: s.stats.snapshot(),
            dns_addr: None,
        }],
    }
}

pub async fn cluster(State(api): State<Api>) -> Json<Value> {
    let members = members(&api.shared).await;
    Json(json!({ "self": api.shared.config.node.id, "members": members }))
}

pub async fn stats(State(api): State<Api>) -> Json<Value> {
    let mut nodes = serde_json::Map::new();
    let mut total = Counters::default();
    for m in members(&api.shared).await {
        total.add(&m.counters);
        nodes.insert(m.id, serde_json::to_value(m.counters).unwrap_or_default());
    }
    Json(json!({ "nodes": nodes, "total": total }))
}

pub async fn trace(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    const KEYS: [&str; 4] = ["sender", "rcpt", "since", "id"];
    if let Some(k) = p.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?} (expected one of {})",
            KEYS.join(", ")
        )));
    }
    let q = TraceQuery {
        sender: p.get("sender").cloned(),
        rcpt: p.get("rcpt").cloned(),
        since_ms: p.get("since").map(|s| parse_since(s)).transpose()?,
        message_id: p.get("id").cloned(),
    };
    let store = api.shared.store.clone();
    let events = tokio::task::spawn_blocking(move || trace::query(&store, &q))
        .await
        .map_err(ApiError::unavailable)?
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "events": events })))
}

/// `?node=` must name this node until the mesh can forward the request.
fn this_node(api: &Api, p: &HashMap<String, String>) -> Result<(), ApiError> {
    match p.get("node") {
        Some(n) if *n != api.shared.config.node.id => {
            Err(ApiError::not_found(format!("unknown node {n}")))
        }
        _ => Ok(()),
    }
}

pub async fn queue(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    this_node(&api, &p)?;
    let relay = api.shared.relay.clone();
    let entries = tokio::task::spawn_blocking(move || relay.list(QUEUE_LIST_MAX))
        .await
        .map_err(ApiError::unavailable)?
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({
        "node": api.shared.config.node.id,
        "size": api.shared.relay.scheduled(),
        "entries": entries,
    })))
}

pub async fn queue_flush(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    this_node(&api, &p)?;
    api.shared.relay.flush().map_err(ApiError::unavailable)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "node": api.shared.config.node.id, "flushed": true })),
    ))
}

pub async fn drain(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&api, &id, true)
}

pub async fn undrain(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&api, &id, false)
}

fn set_draining(api: &Api, id: &str, on: bool) -> Result<Json<Value>, ApiError> {
    if id != api.shared.config.node.id {
        return Err(ApiError::not_found(format!("unknown node {id}")));
    }
    api.shared.draining.store(on, Ordering::SeqCst);
    Ok(Json(json!({ "node": id, "health": api.shared.health() })))
}

/// Prometheus text exposition format.
pub async fn metrics(State(api): State<Api>) -> Response {
    let s = &api.shared;
    let c = s.stats.snapshot();
    let node = &s.config.node.id;
    let mut out = String::new();
    out.push_str("# HELP mxmesh_messages_total Messages by outcome on this node.\n# TYPE mxmesh_messages_total counter\n");
    for kind in CounterKind::ALL {
        let (name, v) = (kind.as_str(), c.get(kind));
        let _ = writeln!(
            out,
            "mxmesh_messages_total{{node=\"{node}\",outcome=\"{name}\"}} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP mxmesh_queue_entries Messages waiting for relay.\n# TYPE mxmesh_queue_entries gauge"
    );
    let _ = writeln!(
        out,
        "mxmesh_queue_entries{{node=\"{node}\"}} {}",
        s.relay.scheduled()
    );
    let _ = writeln!(
        out,
        "# HELP mxmesh_rules Rules in the rule book.\n# TYPE mxmesh_rules gauge"
    );
    let _ = writeln!(
        out,
        "mxmesh_rules{{node=\"{node}\"}} {}",
        s.rules.list().len()
    );
    let _ = writeln!(
        out,
        "# HELP mxmesh_draining 1 while the node is draining.\n# TYPE mxmesh_draining gauge"
    );
    let _ = writeln!(
        out,
        "mxmesh_draining{{node=\"{node}\"}} {}",
        u8::from(s.draining.load(Ordering::Relaxed))
    );
    if let Some(mesh) = s.mesh.get() {
        let _ = writeln!(
            out,
            "# HELP mxmesh_gossip_bytes_sent_total Gossip payload bytes sent (before QUIC framing).\n# TYPE mxmesh_gossip_bytes_sent_total counter"
        );
        let _ = writeln!(
            out,
            "mxmesh_gossip_bytes_sent_total{{node=\"{node}\"}} {}",
            mesh.gossip_bytes_sent()
        );
        let members = mesh.members().await;
        let _ = writeln!(
            out,
            "# HELP mxmesh_members Members of the mesh by liveness.\n# TYPE mxmesh_members gauge"
        );
        let live = members.iter().filter(|m| m.live).count();
        let _ = writeln!(
            out,
            "mxmesh_members{{node=\"{node}\",live=\"true\"}} {live}"
        );
        let _ = writeln!(
            out,
            "mxmesh_members{{node=\"{node}\",live=\"false\"}} {}",
            members.len() - live
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
