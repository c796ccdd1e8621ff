//! `GET/PUT /api/v1/settings/greylist` and `/api/v1/settings/ratelimit`: cluster-wide
//! settings of the SMTP edge, kept in the rule book like the spam settings.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;

use super::{Api, ApiError};
use crate::edge::{GreylistSettings, RateSettings, Validate};

/// `GET /api/v1/settings/greylist`.
pub async fn greylist(State(api): State<Api>) -> Json<GreylistSettings> {
    Json(api.inbound.edge.greylist_settings())
}

/// `PUT /api/v1/settings/greylist`: replaces them, mesh-wide.
pub async fn put_greylist(
    State(api): State<Api>,
    axum::Extension(admin): axum::Extension<super::Admin>,
    body: Bytes,
) -> Result<Json<GreylistSettings>, ApiError> {
    put(&api, &admin.0, crate::edge::greylist::SETTING, &body).await
}

/// `GET /api/v1/settings/ratelimit`.
pub async fn ratelimit(State(api): State<Api>) -> Json<RateSettings> {
    Json(api.inbound.edge.rate_settings())
}

/// `PUT /api/v1/settings/ratelimit`: replaces them, mesh-wide.
pub async fn put_ratelimit(
    State(api): State<Api>,
    axum::Extension(admin): axum::Extension<super::Admin>,
    body: Bytes,
) -> Result<Json<RateSettings>, ApiError> {
    put(&api, &admin.0, crate::edge::ratelimit::SETTING, &body).await
}

/// Parses, validates and stores the setting `name`; answers with it as stored.
pub(super) async fn put<T>(
    api: &Api,
    admin: &str,
    name: &str,
    body: &[u8],
) -> Result<Json<T>, ApiError>
where
    T: serde::de::DeserializeOwned + serde::Serialize + Validate,
{
    let settings: T = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("{name} settings: {e}")))?;
    settings.check().map_err(ApiError::bad_request)?;
    let document = serde_json::to_string(&settings)
        .map_err(|e| ApiError::bad_request(format!("{name} settings: {e}")))?;
    let now = api.config.clock.now_ms();
    match api
        .rules
        .set_setting_document(name, &document, admin, now)
        .await
    {
        Ok(()) => Ok(Json(settings)),
        Err(crate::rules::RulesError::Store(e)) => Err(ApiError::unavailable(e)),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}
