//! `POST /api/v1/nodes/{id}/retire`, `POST /api/v1/nodes/{id}/forget` and
//! `GET/PUT /api/v1/settings/quarantine` (README, "Quarantine copies, retire and forget").

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mxmesh_crdt::qindex::successor;
use serde_json::{Value, json};

use super::{Admin, Api, ApiError};
use crate::cluster::custody::retire::{Progress, RetireState};
use crate::cluster::custody::settings::{Departure, DepartureKind, QuarantineSettings};
use crate::cluster::rpc::{self, RpcError, RpcRequest};
use crate::rules::RulesError;

/// `POST /api/v1/nodes/{id}/retire`: starts retiring node `id` (any node may be asked; it
/// forwards) or reports how far it got. Answers the progress; `state` is `done` once every
/// message moved and the node is recorded as departed.
pub async fn retire(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Progress>, ApiError> {
    if let Some(d) = api.custody.book().departed.get(&id) {
        if d.kind == DepartureKind::Forgotten {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!("node {id} was forgotten; it cannot retire"),
            ));
        }
        return Ok(Json(Progress {
            node: id,
            state: RetireState::Done,
            ..Progress::default()
        }));
    }
    if id == api.config.node.id {
        return Ok(Json(api.custody.retire(&admin.0)));
    }
    let req = RpcRequest::Retire { admin: admin.0 };
    match rpc::call(api.mesh.as_deref(), &id, &req).await {
        Ok(body) => serde_json::from_slice(&body)
            .map(Json)
            .map_err(|e| ApiError::unavailable(format!("node {id} answered retire with {e}"))),
        Err(RpcError::Remote { status, message }) => Err(ApiError(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            message,
        )),
        Err(RpcError::Unreachable(why)) => Err(ApiError::unavailable(format!(
            "cannot retire node {id}: {why} (a node gone for good is forgotten instead)"
        ))),
    }
}

/// `POST /api/v1/nodes/{id}/forget`: records node `id` as gone for good. Refused for this
/// node and for a live member. Its messages with a surviving copy are taken over by their
/// successors; the others show `lost`. Answers how many of each this node's index shows.
pub async fn forget(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id == api.config.node.id {
        return Err(ApiError::bad_request(format!(
            "node {id} is this node: ask another node to forget it"
        )));
    }
    let id_ok = !id.is_empty()
        && id.len() <= mxmesh_crdt::qindex::ID_BYTES_MAX
        && !id.chars().any(char::is_control);
    if !id_ok {
        return Err(ApiError::bad_request(format!("{id:?} is not a node id")));
    }
    if let Some(mesh) = &api.mesh
        && mesh.members().await.iter().any(|m| m.id == id && m.live)
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("node {id} is live: retire it instead (forget is for a node gone for good)"),
        ));
    }
    let now = api.config.clock.now_ms();
    let departure = Departure {
        kind: DepartureKind::Forgotten,
        at_ms: now,
        by: api.config.node.id.clone(),
    };
    if !api.custody.book().is_departed(&id) {
        api.rules
            .record_departure(&id, &departure, &admin.0, now)
            .await
            .map_err(|e| match e {
                RulesError::Store(s) => ApiError::unavailable(s),
                other => ApiError::bad_request(other.to_string()),
            })?;
    }
    let book = api.custody.book();
    let entries = api.quarantine.index().live_unadopted_of(&id);
    let lost = entries
        .iter()
        .filter(|e| successor(e, |n| book.is_departed(n)).is_none())
        .count();
    Ok(Json(json!({
        "node": id,
        "forgotten": true,
        "quarantined": entries.len(),
        "taken_over": entries.len() - lost,
        "lost": lost,
    })))
}

/// `GET /api/v1/settings/quarantine`.
pub async fn settings(State(api): State<Api>) -> Json<QuarantineSettings> {
    Json(api.custody.book().quarantine)
}

/// `PUT /api/v1/settings/quarantine`: replaces them, mesh-wide (they live in the rule book).
/// A bad value gets 400 `{"error","field"}` naming the key.
pub async fn put_settings(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    body: Bytes,
) -> Result<Json<QuarantineSettings>, axum::response::Response> {
    use axum::response::IntoResponse as _;
    let settings: QuarantineSettings = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("quarantine settings: {e}")).into_response())?;
    let now = api.config.clock.now_ms();
    match api
        .rules
        .set_quarantine_settings(settings, &admin.0, now)
        .await
    {
        Ok(stored) => Ok(Json(stored)),
        Err(RulesError::Store(e)) => Err(ApiError::unavailable(e).into_response()),
        Err(RulesError::Custody(e)) => Err(super::dto::invalid_settings(e)),
        Err(e) => Err(ApiError::bad_request(e.to_string()).into_response()),
    }
}
