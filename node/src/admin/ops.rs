//! Operations endpoints: health, metrics, cluster, stats, trace, queue, drain.

use std::collections::HashMap;
use std::fmt::Write;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mxmesh_crdt::counters::{CounterKind, Counters};
use serde_json::{Value, json};

use super::dto::{MemberDto, QueueDto, TraceEventDto, parse_since};
use super::{Api, ApiError};
use crate::cluster::rpc::{self, QueueView, RpcError, RpcRequest, TraceArgs};
use crate::cluster::view::NodeView;
use crate::mesh::members::Member;
use crate::trace::TraceEvent;

pub async fn healthz(State(api): State<Api>) -> Response {
    let health = api.health.get();
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
async fn members(api: &Api) -> Vec<NodeView> {
    let mut nodes: Vec<NodeView> = match &api.mesh {
        Some(mesh) => mesh.members().await.iter().map(NodeView::of).collect(),
        None => {
            let me = Member::new(
                &api.config.node.id,
                env!("CARGO_PKG_VERSION"),
                Default::default(),
            );
            let mut view = NodeView::of(&me);
            view.smtp_addr = api.smtp_addr.to_string();
            view.admin_addr = api.admin_addr.to_string();
            vec![view]
        }
    };
    // This node's own numbers are read live rather than as last published.
    if let Some(me) = nodes.first_mut() {
        me.counters = api.stats.snapshot();
        me.health = api.health.get().to_string();
        me.rules_digest = api.rules.digest();
        me.quarantine_entries = api.quarantine.live_entries() as u64;
    }
    nodes
}

pub async fn cluster(State(api): State<Api>) -> Json<Value> {
    let members: Vec<MemberDto> = members(&api).await.iter().map(MemberDto::from).collect();
    let mut out = json!({ "self": api.config.node.id, "members": members });
    if api.config.dns.is_some() {
        out["dns"] = serde_json::to_value(api.dns.get()).unwrap_or_default();
    }
    Json(out)
}

pub async fn stats(State(api): State<Api>) -> Json<Value> {
    let mut nodes = serde_json::Map::new();
    let mut total = Counters::default();
    for n in members(&api).await {
        total.add(&n.counters);
        nodes.insert(
            n.member.id,
            serde_json::to_value(n.counters).unwrap_or_default(),
        );
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
    let mut events = rpc::local_trace(&api.store, args.clone())
        .await
        .map_err(|e| ApiError::unavailable(e.message))?;
    let mut unreachable = Vec::new();
    for n in members(&api)
        .await
        .into_iter()
        .skip(1)
        .filter(|n| n.member.live)
    {
        let id = n.member.id;
        match rpc::call(api.mesh.as_deref(), &id, &RpcRequest::trace(args.clone())).await {
            Ok(body) => {
                events.extend(serde_json::from_slice::<Vec<TraceEvent>>(&body).unwrap_or_default())
            }
            Err(_) => unreachable.push(id),
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
    let events: Vec<TraceEventDto> = events.into_iter().map(TraceEventDto::from).collect();
    Ok(Json(
        json!({ "events": events, "unreachable": unreachable }),
    ))
}

/// Forwards a call to node `node` and returns its answer.
async fn forward(api: &Api, node: &str, req: RpcRequest) -> Result<Bytes, ApiError> {
    if !members(api).await.iter().any(|n| n.member.id == node) {
        return Err(ApiError::not_found(format!("unknown node {node}")));
    }
    match rpc::call(api.mesh.as_deref(), node, &req).await {
        Ok(body) => Ok(body),
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
        .filter(|n| *n != api.config.node.id)
}

pub async fn queue(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let view = match other_node(&api, &p) {
        Some(node) => {
            let body = forward(&api, node, RpcRequest::Queue).await?;
            match serde_json::from_slice::<QueueView>(&body) {
                Ok(view) => view,
                // The owner answered something else: shown as it came, as before.
                Err(_) => return Ok(Json(serde_json::from_slice(&body).unwrap_or(Value::Null))),
            }
        }
        None => rpc::local_queue(&api.config.node.id, &api.relay)
            .await
            .map_err(|e| ApiError::unavailable(e.message))?,
    };
    Ok(Json(
        serde_json::to_value(QueueDto::from(view)).unwrap_or_default(),
    ))
}

pub async fn queue_flush(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let node = other_node(&api, &p).map(str::to_string);
    match node {
        Some(node) => {
            forward(&api, &node, RpcRequest::Flush).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "node": node, "flushed": true })),
            ))
        }
        None => {
            api.relay.flush().map_err(ApiError::unavailable)?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "node": api.config.node.id, "flushed": true })),
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
    if id != api.config.node.id {
        let req = if on {
            RpcRequest::Drain
        } else {
            RpcRequest::Undrain
        };
        let body = forward(api, id, req).await?;
        let health: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        return Ok(Json(json!({ "node": id, "health": health })));
    }
    api.health.set_draining(on);
    Ok(Json(json!({ "node": id, "health": api.health.get() })))
}

/// Prometheus text exposition format.
pub async fn metrics(State(api): State<Api>) -> Response {
    let s = &api;
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
        u8::from(s.health.is_draining())
    );
    let _ = writeln!(
        out,
        "# HELP mxmesh_store_write_failing 1 while store writes fail (mail gets 451).\n# TYPE mxmesh_store_write_failing gauge\nmxmesh_store_write_failing{{node=\"{node}\"}} {}",
        u8::from(s.store.write_error().is_some())
    );
    let _ = writeln!(
        out,
        "# HELP mxmesh_quarantine_index_entries Entries of every node in this node's copy of the quarantine index.\n# TYPE mxmesh_quarantine_index_entries gauge"
    );
    let _ = writeln!(
        out,
        "mxmesh_quarantine_index_entries{{node=\"{node}\"}} {}",
        s.quarantine.index().total_entries()
    );
    if s.config.dns.as_ref().is_some_and(|d| d.rfc2136.is_some()) {
        let d = s.dns.get();
        let _ = writeln!(
            out,
            "# HELP mxmesh_dns_updates_total RFC 2136 updates this node sent, by result.\n# TYPE mxmesh_dns_updates_total counter"
        );
        let _ = writeln!(
            out,
            "mxmesh_dns_updates_total{{node=\"{node}\",result=\"ok\"}} {}\nmxmesh_dns_updates_total{{node=\"{node}\",result=\"failed\"}} {}",
            d.rfc2136_updates_ok, d.rfc2136_updates_failed
        );
        let _ = writeln!(
            out,
            "# HELP mxmesh_dns_update_failing 1 while this node's last RFC 2136 update failed.\n# TYPE mxmesh_dns_update_failing gauge\nmxmesh_dns_update_failing{{node=\"{node}\"}} {}",
            u8::from(d.rfc2136_last_error.is_some())
        );
    }
    if let Some(mesh) = &s.mesh {
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
