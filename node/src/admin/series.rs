//! `GET /api/v1/stats/series?metric=&since=&step=`: one counter's per-minute history for
//! every live node (this node's from its store, the others' over the mesh) and the total,
//! in the same buckets.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::dto::parse_since;
use super::{Api, ApiError};
use crate::cluster::rpc::{self, RpcRequest};
use crate::stats::series::SeriesQuery;

const QUERY_KEYS: [&str; 3] = ["metric", "since", "step"];

pub async fn series(
    State(api): State<Api>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let q = query(&api, &p)?;
    let mine = q
        .read(&api.store)
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut total = mine.clone();
    let mut nodes = serde_json::Map::new();
    nodes.insert(api.config.node.id.clone(), json!(mine));
    let mut unreachable = Vec::new();
    let others = super::ops::members(&api).await.into_iter().skip(1);
    for n in others.filter(|n| n.member.live) {
        let id = n.member.id;
        let req = RpcRequest::Series { series: q.args() };
        let answer = rpc::call(api.mesh.as_deref(), &id, &req).await;
        match answer.map(|b| serde_json::from_slice::<Vec<u64>>(&b)) {
            Ok(Ok(points)) if points.len() == total.len() => {
                for (t, p) in total.iter_mut().zip(&points) {
                    *t = t.saturating_add(*p);
                }
                nodes.insert(id, json!(points));
            }
            _ => unreachable.push(id),
        }
    }
    let times: Vec<u64> = (0..q.buckets()).map(|i| q.bucket_start_ms(i)).collect();
    Ok(Json(json!({
        "metric": q.metric.as_str(),
        "step": q.step_min * 60,
        "times": times,
        "nodes": nodes,
        "total": total,
        "unreachable": unreachable,
    })))
}

/// The query the parameters describe, or a 400 naming the bad one.
fn query(api: &Api, p: &HashMap<String, String>) -> Result<SeriesQuery, ApiError> {
    if let Some(k) = p.keys().find(|k| !QUERY_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?} (expected one of {})",
            QUERY_KEYS.join(", ")
        )));
    }
    let metric = p
        .get("metric")
        .ok_or_else(|| ApiError::bad_request("metric: required (e.g. metric=received)"))?;
    let since = p.get("since").map(|s| parse_since(s)).transpose()?;
    let step = p
        .get("step")
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("step: {s:?} is not a number of seconds"))
            })
        })
        .transpose()?;
    SeriesQuery::new(metric, since, step, api.config.clock.now_ms())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}
