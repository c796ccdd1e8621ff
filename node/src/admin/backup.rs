//! `POST /api/v1/backup`: a consistent checkpoint of this node's store, written by the
//! running node into a directory on its own file system (`mxmesh backup` asks for it when
//! the node holds the store's lock).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{Api, ApiError};
use crate::store::backup::{BackupError, BackupManifest};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The target directory: an absolute path on the node's host that does not exist or is
    /// empty.
    pub dir: std::path::PathBuf,
}

/// Writes the checkpoint and answers its manifest (node, time, files, bytes, took_ms).
pub async fn create(
    State(api): State<Api>,
    Json(req): Json<BackupRequest>,
) -> Result<Json<BackupManifest>, ApiError> {
    if !req.dir.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "dir: {} is not an absolute path",
            req.dir.display()
        )));
    }
    let store = api.store.clone();
    let node = api.config.node.id.clone();
    let now = api.config.clock.now_ms();
    let written = tokio::task::spawn_blocking(move || store.checkpoint(&node, &req.dir, now)).await;
    match written {
        Ok(Ok(manifest)) => {
            tracing::info!(dir = ?manifest, "backup written");
            Ok(Json(manifest))
        }
        Ok(Err(e @ BackupError::NotEmpty(_))) => Err(ApiError(StatusCode::CONFLICT, e.to_string())),
        Ok(Err(e)) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup task: {e}"),
        )),
    }
}
