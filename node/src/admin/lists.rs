//! `/api/v1/lists…`: the cluster-wide allow/deny list entries (kept in the rule book).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mxmesh_crdt::lists::{ListEntry, ListError};
use mxmesh_crdt::rulebook::RuleBookError;
use serde_json::{Value, json};

use super::dto::parse_body;
use super::{Admin, Api, ApiError};
use crate::rules::RulesError;

/// `GET /api/v1/lists`: `{"entries": [...]}` sorted by id.
pub async fn list(State(api): State<Api>) -> Json<Value> {
    let entries: Vec<Value> = api
        .rules
        .list_entries()
        .iter()
        .map(ListEntry::to_json)
        .collect();
    Json(json!({ "entries": entries }))
}

/// `POST /api/v1/lists`: adds an entry; 201 with the entry as stored.
pub async fn create(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    body: Bytes,
) -> Result<Response, Response> {
    let value = parse_body(&body).map_err(IntoResponse::into_response)?;
    let entry = ListEntry::from_json(&value).map_err(invalid)?;
    let stored = tokio::spawn(async move {
        api.rules
            .add_list_entry(entry, &admin.0, api.config.clock.now_ms())
            .await
    })
    .await
    .map_err(|e| ApiError::unavailable(e).into_response())?
    .map_err(lists_error)?;
    Ok((StatusCode::CREATED, Json(stored.to_json())).into_response())
}

/// `DELETE /api/v1/lists/{id}`.
pub async fn delete(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Response> {
    let entry_id = id.clone();
    tokio::spawn(async move {
        api.rules
            .delete_list_entry(&entry_id, &admin.0, api.config.clock.now_ms())
            .await
    })
    .await
    .map_err(|e| ApiError::unavailable(e).into_response())?
    .map_err(lists_error)?;
    Ok(Json(json!({ "deleted": id })))
}

/// 400 `{"error", "field"}`, `field` naming the bad part.
fn invalid(e: ListError) -> Response {
    let body = json!({ "error": e.to_string(), "field": e.field });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn lists_error(e: RulesError) -> Response {
    match e {
        RulesError::Book(RuleBookError::InvalidListEntry(e)) => invalid(e),
        RulesError::Book(RuleBookError::NotFound(key)) => {
            ApiError::not_found(format!("no list entry {key}")).into_response()
        }
        RulesError::Book(RuleBookError::AlreadyExists(key)) => ApiError(
            StatusCode::CONFLICT,
            format!("list entry {key} already exists"),
        )
        .into_response(),
        RulesError::Book(RuleBookError::TooManyListEntries { max }) => ApiError(
            StatusCode::CONFLICT,
            format!("the lists already hold the most entries allowed ({max})"),
        )
        .into_response(),
        RulesError::Book(other) => ApiError::bad_request(other.to_string()).into_response(),
        RulesError::Settings(e) => ApiError::bad_request(e.to_string()).into_response(),
        RulesError::Custody(e) => ApiError::bad_request(e).into_response(),
        RulesError::Store(s) => ApiError::unavailable(s).into_response(),
    }
}
