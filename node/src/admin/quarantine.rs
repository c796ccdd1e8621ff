//! `/api/v1/quarantine…`: list/search, show, raw, release, delete.

use std::collections::HashMap;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::dto::{parse_since, quarantine_item};
use super::{Admin, Api, ApiError};
use crate::quarantine::{self, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, QuarantineError};

const QUERY_KEYS: [&str; 7] = [
    "sender", "rcpt", "subject", "node", "since", "limit", "cursor",
];

pub async fn list(
    State(api): State<Api>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let q = parse_query(&params)?;
    let quarantine = api.shared.quarantine.clone();
    let (items, next) = tokio::task::spawn_blocking(move || quarantine.list(&q))
        .await
        .map_err(ApiError::unavailable)?
        .map_err(ApiError::unavailable)?;
    let items: Vec<Value> = items.iter().map(quarantine_item).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

fn parse_query(p: &HashMap<String, String>) -> Result<quarantine::Query, ApiError> {
    if let Some(k) = p.keys().find(|k| !QUERY_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?} (expected one of {})",
            QUERY_KEYS.join(", ")
        )));
    }
    let limit = match p.get("limit") {
        None => LIST_LIMIT_DEFAULT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=LIST_LIMIT_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit: {s:?} must be a number from 1 to {LIST_LIMIT_MAX}"
                )));
            }
        },
    };
    Ok(quarantine::Query {
        sender: p.get("sender").cloned(),
        rcpt: p.get("rcpt").cloned(),
        subject: p.get("subject").cloned(),
        node: p.get("node").cloned(),
        since_ms: p.get("since").map(|s| parse_since(s)).transpose()?,
        limit,
        cursor: p.get("cursor").cloned(),
    })
}

pub async fn show(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    match api
        .shared
        .quarantine
        .get(&id)
        .map_err(ApiError::unavailable)?
    {
        Some(e) => Ok(Json(quarantine_item(&e))),
        None => Err(ApiError::not_found(format!(
            "no quarantined message with id {id}"
        ))),
    }
}

pub async fn raw(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let bytes = api.shared.quarantine.raw(&id).map_err(q_error)?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response())
}

pub async fn release(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // Run to completion even if the client goes away: commit and schedule belong together.
    let shared = api.shared.clone();
    let e = tokio::spawn(async move {
        shared
            .quarantine
            .release(&id, &shared.relay, &admin.0)
            .await
    })
    .await
    .map_err(ApiError::unavailable)?
    .map_err(q_error)?;
    Ok((StatusCode::ACCEPTED, Json(quarantine_item(&e))))
}

pub async fn delete(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let shared = api.shared.clone();
    let e = tokio::spawn(async move { shared.quarantine.delete(&id, &admin.0).await })
        .await
        .map_err(ApiError::unavailable)?
        .map_err(q_error)?;
    Ok(Json(quarantine_item(&e)))
}

fn q_error(e: QuarantineError) -> ApiError {
    match e {
        QuarantineError::NotFound(_) => ApiError::not_found(e.to_string()),
        QuarantineError::Gone { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
        QuarantineError::Store(s) => ApiError::unavailable(s),
    }
}
