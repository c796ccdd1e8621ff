//! Operations endpoints: health, metrics, cluster, stats, trace, queue, drain.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mxmesh_crdt::counters::{CounterKind, Counters};
use serde_json::{Value, json};

use super::dto::parse_since;
use super::metrics::{self, Metric, Samples};
use super::{Api, ApiError};
use crate::mesh::members::Member;
use crate::mesh::rpc::{self, RpcError, RpcRequest, TraceArgs};
use crate::trace::TraceEvent;

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
    let mut out = json!({ "self": api.shared.config.node.id, "members": members });
    if api.shared.config.dns.is_some() {
        out["dns"] = serde_json::to_value(api.shared.dns.get()).unwrap_or_default();
    }
    Json(out)
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
    let args = TraceArgs {
        sender: p.get("sender").cloned(),
        rcpt: p.get("rcpt").cloned(),
        since_ms: p.get("since").map(|s| parse_since(s)).transpose()?,
        message_id: p.get("id").cloned(),
    };
    let s = &api.shared;
    let mut events = rpc::local_trace(s, args.clone())
        .await
        .map_err(|e| ApiError::unavailable(e.message))?;
    let mut unreachable = Vec::new();
    for m in members(s).await.into_iter().skip(1).filter(|m| m.live) {
        match rpc::call(s, &m.id, &RpcRequest::trace(args.clone())).await {
            Ok(body) => {
                events.extend(serde_json::from_slice::<Vec<TraceEvent>>(&body).unwrap_or_default())
            }
            Err(_) => unreachable.push(m.id),
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
    Ok(Json(
        json!({ "events": events, "unreachable": unreachable }),
    ))
}

/// Forwards a call to node `node` and returns its JSON answer.
async fn forward(api: &Api, node: &str, req: RpcRequest) -> Result<Value, ApiError> {
    if !members(&api.shared).await.iter().any(|m| m.id == node) {
        return Err(ApiError::not_found(format!("unknown node {node}")));
    }
    match rpc::call(&api.shared, node, &req).await {
        Ok(body) => Ok(serde_json::from_slice(&body).unwrap_or(Value::Null)),
        Err(RpcError::Remote { status, message }) => Err(ApiError(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            message,
        )),
        Err(RpcError::Unreachable(why)) => Err(ApiError::unavailable(why)),
    }
}

/// The node a `?node=` names, when it is not this one.
fn other_node<'a>(api: &Api, p: &'a HashMap<String, String>) -> Option<&'a str> {
    p.get("node")
        .map(String::as_str)
        .filter(|n| *n != api.shared.config.node.id)
}

pub async fn queue(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if let Some(node) = other_node(&api, &p) {
        return forward(&api, node, RpcRequest::op("queue")).await.map(Json);
    }
    let view = rpc::local_queue(&api.shared)
        .await
        .map_err(|e| ApiError::unavailable(e.message))?;
    Ok(Json(serde_json::to_value(view).unwrap_or_default()))
}

pub async fn queue_flush(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let node = other_node(&api, &p).map(str::to_string);
    match node {
        Some(node) => {
            forward(&api, &node, RpcRequest::op("flush")).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "node": node, "flushed": true })),
            ))
        }
        None => {
            api.shared.relay.flush().map_err(ApiError::unavailable)?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "node": api.shared.config.node.id, "flushed": true })),
            ))
        }
    }
}

pub async fn drain(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&api, &id, true).await
}

pub async fn undrain(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&api, &id, false).await
}

async fn set_draining(api: &Api, id: &str, on: bool) -> Result<Json<Value>, ApiError> {
    if id != api.shared.config.node.id {
        let health = forward(
            api,
            id,
            RpcRequest::op(if on { "drain" } else { "undrain" }),
        )
        .await?;
        return Ok(Json(json!({ "node": id, "health": health })));
    }
    api.shared.draining.store(on, Ordering::SeqCst);
    Ok(Json(json!({ "node": id, "health": api.shared.health() })))
}

/// Prometheus text exposition format.
pub async fn metrics(State(api): State<Api>) -> Response {
    let s = &api.shared;
    let c = s.stats.snapshot();
    let flag = |on: bool| Samples::One(u64::from(on));
    let outcomes = CounterKind::ALL.map(|kind| (kind.as_str(), c.get(kind)));
    let mut table = vec![
        Metric::counter(
            "mxmesh_messages_total",
            "Messages by outcome on this node.",
            Samples::By("outcome", outcomes.to_vec()),
        ),
        Metric::gauge(
            "mxmesh_queue_entries",
            "Messages waiting for relay.",
            Samples::One(s.relay.scheduled() as u64),
        ),
        Metric::gauge(
            "mxmesh_rules",
            "Rules in the rule book.",
            Samples::One(s.rules.list().len() as u64),
        ),
        Metric::gauge(
            "mxmesh_draining",
            "1 while the node is draining.",
            flag(s.draining.load(Ordering::Relaxed)),
        ),
        Metric::gauge(
            "mxmesh_store_write_failing",
            "1 while store writes fail (mail gets 451).",
            flag(s.store.write_error().is_some()),
        ),
        Metric::gauge(
            "mxmesh_quarantine_index_entries",
            "Entries of every node in this node's copy of the quarantine index.",
            Samples::One(s.quarantine.index().total_entries() as u64),
        ),
    ];
    if s.config.dns.as_ref().is_some_and(|d| d.rfc2136.is_some()) {
        let d = s.dns.get();
        table.push(Metric::counter(
            "mxmesh_dns_updates_total",
            "RFC 2136 updates this node sent, by result.",
            Samples::By(
                "result",
                vec![
                    ("ok", d.rfc2136_updates_ok),
                    ("failed", d.rfc2136_updates_failed),
                ],
            ),
        ));
        table.push(Metric::gauge(
            "mxmesh_dns_update_failing",
            "1 while this node's last RFC 2136 update failed.",
            flag(d.rfc2136_last_error.is_some()),
        ));
    }
    if let Some(mesh) = s.mesh.get() {
        table.push(Metric::counter(
            "mxmesh_gossip_bytes_sent_total",
            "Gossip payload bytes sent (before QUIC framing).",
            Samples::One(mesh.gossip_bytes_sent()),
        ));
        let members = mesh.members().await;
        let live = members.iter().filter(|m| m.live).count();
        table.push(Metric::gauge(
            "mxmesh_members",
            "Members of the mesh by liveness.",
            Samples::By(
                "live",
                vec![
                    ("true", live as u64),
                    ("false", (members.len() - live) as u64),
                ],
            ),
        ));
    }
    let out = metrics::render(&s.config.node.id, &table);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
