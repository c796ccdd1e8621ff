//! `GET/PUT /api/v1/settings/digest`, `GET /api/v1/digest` (this node's digest status),
//! `POST /api/v1/digest/run` (send now, mesh-wide) and `POST /api/v1/digest/rotate` (a new
//! link key; links already sent keep working until they expire).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::dto::{invalid_settings, rfc3339};
use super::{Admin, Api, ApiError};
use crate::digest::keys;
use crate::digest::settings::{DigestSettings, SETTING};

/// `GET /api/v1/settings/digest`.
pub async fn settings(State(api): State<Api>) -> Json<DigestSettings> {
    Json(api.digest.settings())
}

/// `PUT /api/v1/settings/digest`: replaces them, mesh-wide; makes the first link key when
/// the mesh has none. A bad value gets 400 `{"error","field"}` naming the key.
pub async fn put_settings(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    body: Bytes,
) -> Result<Json<DigestSettings>, Response> {
    if let Ok(parsed) = serde_json::from_slice::<DigestSettings>(&body)
        && let Err(e) = parsed.validate()
    {
        return Err(invalid_settings(e));
    }
    let stored = super::edge::put::<DigestSettings>(&api, &admin.0, SETTING, &body)
        .await
        .map_err(IntoResponse::into_response)?;
    ensure_key(&api, &admin)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(stored)
}

/// `GET /api/v1/digest`: the settings, the key generation and what this node last did.
pub async fn status(State(api): State<Api>) -> Json<Value> {
    let s = api.digest.status();
    let generation = keys::ring(api.digest.rules())
        .current()
        .map(|k| k.generation);
    Json(json!({
        "node": api.config.node.id,
        "settings": api.digest.settings(),
        "key_generation": generation,
        "period_ms": s.period_ms,
        "period": s.period_ms.map(rfc3339),
        "complete": s.complete,
        "waiting": s.waiting,
        "recipients": s.recipients,
        "sent_total": s.sent_total,
        "ledger_entries": api.digest.ledger().own_entries(),
    }))
}

/// `POST /api/v1/digest/run`: a period boundary now, which every node picks up; each
/// recipient with new held mail gets one digest from the node the choice names. 202.
pub async fn run(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
) -> Result<Response, ApiError> {
    let settings = api.digest.settings();
    if !settings.ready() {
        return Err(ApiError::bad_request(
            "digest settings need public_url and sender first (PUT /api/v1/settings/digest)",
        ));
    }
    ensure_key(&api, &admin).await?;
    // Above every earlier run, even one requested by a node whose clock is ahead: a new
    // run is always the due one.
    let now = api.config.clock.now_ms();
    let period = now.max(api.digest.ledger().run_requested(now).saturating_add(1));
    api.digest
        .ledger()
        .request_run(period)
        .await
        .map_err(ApiError::unavailable)?;
    tracing::info!(admin = %admin.0, period, "digest run requested");
    let body = json!({ "period_ms": period, "period": rfc3339(period) });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /api/v1/digest/rotate`: `{"key_generation": N}`.
pub async fn rotate(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<Value>, ApiError> {
    let now = api.config.clock.now_ms();
    let generation = keys::rotate(api.digest.rules(), &admin.0, now)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "key_generation": generation })))
}

async fn ensure_key(api: &Api, admin: &Admin) -> Result<u64, ApiError> {
    keys::ensure(api.digest.rules(), &admin.0, api.config.clock.now_ms())
        .await
        .map_err(ApiError::unavailable)
}
