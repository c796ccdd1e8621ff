//! The admin API (README, "Admin API"): JSON over HTTP, bearer tokens on everything under
//! `/api/`. This module is the only place that knows JSON shapes of the API (`dto`,
//! `quarantine::item`); what other nodes answer over the mesh is mapped to them here.

pub mod auth;
mod backup;
mod bayes;
mod custody;
mod digest;
mod dto;
mod edge;
pub mod limit;
mod lists;
mod metrics;
mod ops;
pub(crate) mod quarantine;
mod rules;
mod series;
mod spam;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::dns::DnsState;
use crate::health::Health;
use crate::mesh::Mesh;
use crate::quarantine::Quarantine;
use crate::relay::Relay;
use crate::rules::Rules;
use crate::stats::Stats;
use crate::store::Store;

/// Request bodies larger than this get 413.
pub const API_BODY_MAX_BYTES: usize = 1024 * 1024;

/// What the handlers work with (cheap to clone: handles and `Arc`s).
#[derive(Clone)]
pub struct Api {
    /// The node's configuration (its id, clock, `[admin]` and `[dns]` sections).
    pub config: Arc<Config>,
    /// The addresses actually bound (the config may say port 0).
    pub smtp_addr: SocketAddr,
    /// The admin API address actually bound.
    pub admin_addr: SocketAddr,
    /// The node's health (`/healthz`, drain and undrain).
    pub health: Health,
    /// The node's mail counters (`/api/v1/stats`, `/metrics`).
    pub stats: Arc<Stats>,
    /// The node's store (backups, the trace log, counter history, store metrics).
    pub store: Store,
    /// The rule book (`/api/v1/rules`).
    pub rules: Arc<Rules>,
    /// The relay queue (`/api/v1/queue`).
    pub relay: Relay,
    /// The quarantine (`/api/v1/quarantine`).
    pub quarantine: Quarantine,
    /// The learned Bayes corpus.
    pub bayes: crate::cluster::bayes::Bayes,
    /// Copies, retire and forget.
    pub custody: crate::cluster::custody::Custody,
    /// Quarantine digests: settings, runs, the link keys.
    pub digest: crate::digest::Digest,
    /// The inbound stage (for `/api/v1/classify`, which runs its filter on a message).
    pub inbound: Arc<crate::inbound::Inbound>,
    /// The mesh, when `[mesh]` is configured.
    pub mesh: Option<Arc<Mesh>>,
    /// What the DNS helper publishes, and how the external server took it.
    pub dns: Arc<DnsState>,
    /// The admin tokens from `[admin] tokens_file` (bearer authentication).
    pub tokens: Arc<auth::Tokens>,
    /// Console sessions (cookie + CSRF token), the alternative to a bearer token.
    pub sessions: Arc<crate::ui::session::Sessions>,
    /// The per-client-address rate limit (`[admin] rate_per_sec`, `rate_burst`).
    pub limiter: Arc<limit::RateLimiter>,
}

/// Who made a request (the token's name); recorded in the rule audit trail.
#[derive(Clone)]
pub struct Admin(pub String);

/// An API error: status plus a message naming what is wrong.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(m: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, m.into())
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, m.into())
    }
    pub fn unavailable(m: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, m.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Builds the router.
pub fn router(api: Api) -> Router {
    let protected = Router::new()
        .route("/api/v1/cluster", get(ops::cluster))
        .route("/api/v1/stats", get(ops::stats))
        .route("/api/v1/stats/series", get(series::series))
        .route("/api/v1/trace", get(ops::trace))
        .route("/api/v1/queue", get(ops::queue))
        .route("/api/v1/queue/flush", post(ops::queue_flush))
        .route("/api/v1/backup", post(backup::create))
        .route("/api/v1/nodes/{id}/drain", post(ops::drain))
        .route("/api/v1/nodes/{id}/undrain", post(ops::undrain))
        .route("/api/v1/nodes/{id}/retire", post(custody::retire))
        .route("/api/v1/nodes/{id}/forget", post(custody::forget))
        .route(
            "/api/v1/settings/quarantine",
            get(custody::settings).put(custody::put_settings),
        )
        .route("/api/v1/lists", get(lists::list).post(lists::create))
        .route("/api/v1/lists/{id}", delete(lists::delete))
        .route("/api/v1/rules", get(rules::list).post(rules::create))
        .route("/api/v1/rules/history", get(rules::history))
        .route(
            "/api/v1/rules/{id}",
            get(rules::get).put(rules::update).delete(rules::delete),
        )
        .route("/api/v1/quarantine", get(quarantine::list))
        .route(
            "/api/v1/quarantine/{id}",
            get(quarantine::show).delete(quarantine::delete),
        )
        .route("/api/v1/quarantine/{id}/raw", get(quarantine::raw))
        .route("/api/v1/quarantine/{id}/view", get(quarantine::view))
        .route("/api/v1/quarantine/{id}/release", post(quarantine::release))
        .route("/api/v1/quarantine/{id}/learn", post(quarantine::learn))
        .route(
            "/api/v1/learn/{key}",
            post(bayes::learn).delete(bayes::forget),
        )
        .route("/api/v1/bayes", get(bayes::status))
        .route("/api/v1/classify", post(bayes::classify))
        .route(
            "/api/v1/settings/spam",
            get(bayes::settings).put(bayes::put_settings),
        )
        .route("/api/v1/spam/symbols", get(spam::symbols))
        .route(
            "/api/v1/settings/greylist",
            get(edge::greylist).put(edge::put_greylist),
        )
        .route(
            "/api/v1/settings/ratelimit",
            get(edge::ratelimit).put(edge::put_ratelimit),
        )
        .route(
            "/api/v1/settings/digest",
            get(digest::settings).put(digest::put_settings),
        )
        .route("/api/v1/digest", get(digest::status))
        .route("/api/v1/digest/run", post(digest::run))
        .route("/api/v1/digest/rotate", post(digest::rotate))
        .layer(middleware::from_fn_with_state(api.clone(), require_token));
    let metrics = if api.config.admin.metrics_auth {
        Router::new()
            .route("/metrics", get(ops::metrics))
            .layer(middleware::from_fn_with_state(api.clone(), require_token))
    } else {
        Router::new().route("/metrics", get(ops::metrics))
    };
    Router::new()
        .route("/healthz", get(ops::healthz))
        .merge(metrics)
        .merge(protected)
        .merge(crate::ui::router())
        .merge(crate::ui::portal::router())
        .fallback(|| async { ApiError::not_found("no such path") })
        .layer(DefaultBodyLimit::max(API_BODY_MAX_BYTES))
        .layer(middleware::from_fn_with_state(api.clone(), limit::throttle))
        .with_state(api)
}

/// 401 unless the request carries a valid bearer token or console session (403 when the
/// session's state change lacks its CSRF header).
async fn require_token(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let by_token = bearer(req.headers()).and_then(|t| api.tokens.identify(t));
    let name = match by_token {
        Some(name) => Some(name.to_string()),
        None if bearer(req.headers()).is_some() => None,
        None => match crate::ui::check(&api, req.method(), req.headers()) {
            Ok(info) => Some(info.admin),
            Err(e @ crate::ui::session::SessionRefusal::Csrf) => {
                return ApiError(StatusCode::FORBIDDEN, e.to_string()).into_response();
            }
            Err(crate::ui::session::SessionRefusal::Unknown) => None,
        },
    };
    match name {
        Some(name) => {
            req.extensions_mut().insert(Admin(name));
            next.run(req).await
        }
        None => {
            let mut r = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or invalid bearer token (or console session)".into(),
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"mxmesh\"".parse().expect("static header"),
            );
            r
        }
    }
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Serves the API (`app`, from [`router`]) until `shutdown` turns true.
pub async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin API server failed");
    }
}
