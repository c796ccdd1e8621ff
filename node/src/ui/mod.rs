//! The web console at `/ui/` (README, "Console"): static files built into the binary
//! ([`assets`]), sign-in with an admin token that starts a cookie session ([`session`]),
//! sign-out. The pages call the `/api/v1` routes with that cookie and a CSRF header; the
//! admin API's auth accepts either that or a bearer token.
//!
//! Every `/ui/` answer carries a strict Content-Security-Policy ([`CSP`]): scripts, styles
//! and fetches from this origin only, no inline script, no frames, no remote images — the
//! console shows quarantined mail as text and must never load what a message links to.

pub mod assets;
pub mod portal;
pub mod portal_page;
pub mod session;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;

use crate::admin::{Api, ApiError};
use session::{CSRF_HEADER, SESSION_COOKIE, SessionRefusal, cookie, set_cookie};

/// The Content-Security-Policy of every `/ui/` response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The console's routes (state: the admin API's).
pub fn router() -> Router<Api> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/session", get(whoami).post(sign_in).delete(sign_out))
        .route("/ui/{*file}", get(asset))
}

async fn index() -> Response {
    asset_response("index.html")
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    asset_response(&file)
}

fn asset_response(name: &str) -> Response {
    match assets::find(name) {
        Some(a) => with_security_headers(
            ([(header::CONTENT_TYPE, a.content_type)], a.bytes).into_response(),
        ),
        None => with_security_headers(
            ApiError::not_found(format!("no console file {name:?}")).into_response(),
        ),
    }
}

/// Adds the CSP and its companions to a console response.
fn with_security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-cache");
    r
}

/// `POST /ui/session` with `{"token": …}`: signs in; the session id comes back only as an
/// HttpOnly cookie, the CSRF token in the body.
async fn sign_in(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        // A cross-site form cannot send JSON without a preflight: refusing other types
        // keeps sign-in out of reach of forged forms.
        return ApiError::bad_request("sign-in: expected Content-Type: application/json")
            .into_response();
    }
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_string));
    let Some(token) = token else {
        return ApiError::bad_request("sign-in: expected {\"token\": \"…\"}").into_response();
    };
    let Some(admin) = api.tokens.identify(token.trim()).map(str::to_string) else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "that admin token is not valid".into(),
        )
        .into_response();
    };
    let new = api.sessions.create(&admin, api.config.clock.now_ms());
    tracing::info!(admin = %admin, "console sign-in");
    let mut r = axum::Json(json!({ "admin": admin, "csrf": new.csrf })).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(Some(&new.id))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    with_security_headers(r)
}

/// `GET /ui/session`: who is signed in, and the CSRF token (`{"admin": null}` when nobody:
/// not an error, so a fresh page load logs none).
async fn whoami(State(api): State<Api>, headers: HeaderMap) -> Response {
    match check(&api, &Method::GET, &headers) {
        Ok(info) => with_security_headers(
            axum::Json(json!({ "admin": info.admin, "csrf": info.csrf })).into_response(),
        ),
        Err(_) => with_security_headers(axum::Json(json!({ "admin": null })).into_response()),
    }
}

/// `DELETE /ui/session` (with the CSRF header): signs out.
async fn sign_out(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(e) = check(&api, &Method::DELETE, &headers) {
        return ApiError(StatusCode::FORBIDDEN, e.to_string()).into_response();
    }
    if let Some(id) = session_id(&headers) {
        api.sessions.end(id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(None)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    with_security_headers(r)
}

/// The session a request carries, checked for `method` (state changes need the CSRF
/// header). Used by the admin API's auth as the alternative to a bearer token.
pub fn check(
    api: &Api,
    method: &Method,
    headers: &HeaderMap,
) -> Result<session::SessionInfo, SessionRefusal> {
    let id = session_id(headers).ok_or(SessionRefusal::Unknown)?;
    let state_change = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    api.sessions
        .check(id, state_change, csrf, api.config.clock.now_ms())
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie(v, SESSION_COOKIE))
        .filter(|id| !id.is_empty())
}
