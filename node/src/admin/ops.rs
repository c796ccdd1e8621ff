//! Operations endpoints: health, metrics, cluster, stats, trace, queue, drain.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mxmesh_crdt::counters::{CounterKind, Counters};
use serde_json::{Value, json};

use super::dto::{MemberDto, QueueDto, TraceEventDto, parse_since};
use super::metrics::{self, Metric, Samples};
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
pub(super) async fn members(api: &Api) -> Vec<NodeView> {
    let mut nodes: Vec<NodeView> = match &api.mesh {
        Some(mesh) => {
            // Nodes that left for good (retired, forgotten) are never listed again.
            let book = api.custody.book();
            let me = &api.config.node.id;
            let members = mesh.members().await;
            let kept = members
                .iter()
                .filter(|m| m.id == *me || !book.is_departed(&m.id));
            kept.map(NodeView::of).collect()
        }
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
        let answer = rpc::call(api.mesh.as_deref(), &id, &RpcRequest::trace(args.clone())).await;
        merge_peer_trace(id, answer, &mut events, &mut unreachable);
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
    let events: Vec<TraceEventDto> = events.into_iter().map(TraceEventDto::from).collect();
    Ok(Json(
        json!({ "events": events, "unreachable": unreachable }),
    ))
}

/// Adds peer `id`'s trace answer to `events`. A peer that could not be asked, refused, or
/// answered with something that is not a list of events goes to `unreachable`: its events
/// are unknown, which an empty list would hide.
fn merge_peer_trace(
    id: String,
    answer: Result<Bytes, rpc::RpcError>,
    events: &mut Vec<TraceEvent>,
    unreachable: &mut Vec<String>,
) {
    let theirs = answer.map_err(|e| format!("{e:?}")).and_then(|body| {
        serde_json::from_slice::<Vec<TraceEvent>>(&body).map_err(|e| format!("answer: {e}"))
    });
    match theirs {
        Ok(theirs) => events.extend(theirs),
        Err(why) => {
            tracing::warn!(peer = %id, error = %why, "trace: peer listed as unreachable");
            unreachable.push(id);
        }
    }
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
    api.health
        .set_drained(on)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "node": id, "health": api.health.get() })))
}

/// The room each column family takes.
fn store_rows(store: &crate::store::Store) -> [Metric; 2] {
    let sizes = store.sizes();
    let by_cf = |bytes: fn(&crate::store::CfSize) -> u64| {
        Samples::By(
            "cf",
            sizes.iter().map(|s| (s.cf.name(), bytes(s))).collect(),
        )
    };
    [
        Metric::gauge(
            "mxmesh_store_sst_bytes",
            "Bytes of each column family's live SST files (on disk, compressed).",
            by_cf(|s| s.sst_bytes),
        ),
        Metric::gauge(
            "mxmesh_store_memtable_bytes",
            "Bytes of each column family's memtables (in the WAL, not yet in an SST file).",
            by_cf(|s| s.memtable_bytes),
        ),
    ]
}

/// The payload bytes of each replicated type's sync exchanges, both ways.
fn sync_rows(mesh: &crate::mesh::Mesh) -> [Metric; 2] {
    let traffic = mesh.sync_traffic();
    let by_sync = |bytes: fn(&crate::mesh::SyncTraffic) -> u64| {
        Samples::By("sync", traffic.iter().map(|t| (t.name, bytes(t))).collect())
    };
    [
        Metric::counter(
            "mxmesh_sync_bytes_sent_total",
            "Sync payload bytes this node sent per replicated type (requests as asker, answers as answerer; before QUIC framing).",
            by_sync(|t| t.bytes.sent),
        ),
        Metric::counter(
            "mxmesh_sync_bytes_received_total",
            "Sync payload bytes this node received per replicated type (answers as asker, requests as answerer; before QUIC framing).",
            by_sync(|t| t.bytes.received),
        ),
    ]
}

/// Prometheus text exposition format.
pub async fn metrics(State(api): State<Api>) -> Response {
    let s = &api;
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
            flag(s.health.is_draining()),
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
        Metric::gauge(
            "mxmesh_quarantine_under_copied",
            "Own quarantined messages held by fewer nodes than the copies setting asks (inside their single-copy window, or no peer to copy to).",
            Samples::One(s.custody.under_copied() as u64),
        ),
        Metric::counter(
            "mxmesh_quarantine_copy_bytes_sent_total",
            "Payload bytes of quarantine copies this node sent and a holder took (message as base64 plus its entry, JSON; before QUIC framing).",
            Samples::One(s.custody.copy_bytes_sent()),
        ),
        Metric::gauge(
            "mxmesh_quarantine_copies_setting",
            "The cluster's quarantine copies setting.",
            Samples::One(u64::from(s.custody.book().quarantine.copies)),
        ),
    ];
    table.extend(shadow_rows(s));
    table.extend(store_rows(&s.store));
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
    if let Some(mesh) = &s.mesh {
        table.push(Metric::counter(
            "mxmesh_gossip_bytes_sent_total",
            "Gossip payload bytes sent (before QUIC framing).",
            Samples::One(mesh.gossip_bytes_sent()),
        ));
        table.extend(sync_rows(mesh));
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

/// The queue-copy rows: the single-copy window of queued messages and what shadows cost.
fn shadow_rows(s: &Api) -> Vec<Metric> {
    let sh = s.custody.shadows();
    let quantiles = vec![
        ("0.5", sh.windows.quantile(0.5)),
        ("0.99", sh.windows.quantile(0.99)),
        ("1", sh.windows.quantile(1.0)),
    ];
    vec![
        Metric::gauge(
            "mxmesh_queue_under_copied",
            "Own relay queue entries held by fewer nodes than the copies setting asks (inside their single-copy window, or no peer to hold a shadow).",
            Samples::One(s.custody.queue_under_copied() as u64),
        ),
        Metric::gauge(
            "mxmesh_queue_shadows_held",
            "Shadows of other nodes' relay queue entries held here (counted up to 100000).",
            Samples::One(s.custody.shadows_held() as u64),
        ),
        Metric::gauge(
            "mxmesh_queue_shadow_window_ms",
            "Single-copy window of the last 4096 shadowed queue entries, ms: from the commit before 250 to the holder's answer (quantiles).",
            Samples::By("quantile", quantiles),
        ),
        Metric::counter(
            "mxmesh_queue_shadow_bytes_sent_total",
            "Payload bytes of queue shadows holders took (message as base64 plus its entry, JSON; before QUIC framing).",
            Samples::One(sh.bytes_sent()),
        ),
        Metric::counter(
            "mxmesh_queue_shadow_sync_missed_total",
            "250s answered with sync_queue_copies before a peer held the shadow (no peer, or the wait ran out).",
            Samples::One(sh.sync_missed()),
        ),
        Metric::counter(
            "mxmesh_queue_feed_dropped_total",
            "Relay queue changes the shadow worker missed (buffer full); its rescan catches up.",
            Samples::One(s.relay.feed().dropped()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_answering_garbage_to_trace_is_listed_unreachable() {
        let (mut events, mut unreachable) = (Vec::new(), Vec::new());
        merge_peer_trace(
            "mx2".into(),
            Ok(Bytes::from_static(b"\x00\xffnot json")),
            &mut events,
            &mut unreachable,
        );
        merge_peer_trace(
            "mx3".into(),
            Ok(Bytes::from_static(br#"{"events":"not a list"}"#)),
            &mut events,
            &mut unreachable,
        );
        merge_peer_trace(
            "mx4".into(),
            Err(rpc::RpcError::Unreachable("down".into())),
            &mut events,
            &mut unreachable,
        );
        merge_peer_trace(
            "mx5".into(),
            Ok(Bytes::from_static(b"[]")),
            &mut events,
            &mut unreachable,
        );
        assert_eq!(unreachable, ["mx2", "mx3", "mx4"]);
        assert!(events.is_empty());
    }
}
