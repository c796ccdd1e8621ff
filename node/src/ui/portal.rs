//! The recipient portal at `/q/{token}` (README, "Digests and the recipient portal"): no
//! admin token, on every node; the signed link token ([`crate::digest::token`]) is the
//! credential and names one recipient and one action.
//!
//! - `GET` only shows: the held message and a question, or (a "show all" link) every
//!   message held for that recipient. Mail scanners and link previewers follow links;
//!   opening one changes nothing.
//! - `POST` acts. The form carries a check value bound to the token with the cluster key
//!   (only a page this mesh served has it), and a `Sec-Fetch-Site: cross-site` request is
//!   refused, so a page elsewhere cannot make a browser act. There is no cookie to ride on.
//! - A release goes through the admin API's release path, whose owner node checks the
//!   entry's status under its lock: a second click finds it released ("already released").
//! - A tampered, expired or foreign token gets one plain error page; nothing changes.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mxmesh_crdt::lists::{ListEntry, ListKind};
use mxmesh_crdt::qindex::{EntryStatus, IndexEntry, IndexQuery, IntentAction};

use super::portal_page as html;
use crate::admin::{Admin, Api};
use crate::digest::token::{self, Action, Claim};

/// Messages the portal lists at most (newest first).
pub const PORTAL_ITEMS_MAX: usize = 200;
/// The portal's Content-Security-Policy: no script at all, styles and forms from here.
pub const PORTAL_CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";
/// Longest form body read, in bytes.
const FORM_BYTES_MAX: usize = 4096;
/// What every refused link shows.
const NOT_USABLE: &str =
    "This link is not valid or has expired. Nothing was changed. Use a link from a newer digest.";

/// The portal's routes (state: the admin API's).
pub fn router() -> Router<Api> {
    Router::new().route("/q/{token}", get(show).post(act))
}

/// `GET /q/{token}`: shows; changes nothing.
async fn show(State(api): State<Api>, Path(token): Path<String>) -> Response {
    let Some((claim, check)) = verify(&api, &token) else {
        return refused();
    };
    match &claim.entry {
        None => {
            let (entries, more) = held_for(&api, &claim.recipient).await;
            respond(
                StatusCode::OK,
                html::portal(&claim.recipient, &entries, &check, more),
            )
        }
        Some(id) => match entry_of(&api, &claim.recipient, id) {
            None => gone(),
            Some(e) if no_longer_held(&e, &claim.recipient) => respond(
                StatusCode::OK,
                html::outcome("Held message", &already(&e, &claim.recipient), false, None),
            ),
            Some(e) => respond(StatusCode::OK, html::confirm(claim.action, &e, &check)),
        },
    }
}

/// `POST /q/{token}`: acts, once.
async fn act(
    State(api): State<Api>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if cross_site(&headers) {
        return respond(
            StatusCode::FORBIDDEN,
            html::error("Forms from other sites are refused."),
        );
    }
    let Some((claim, check)) = verify(&api, &token) else {
        return refused();
    };
    let fields = form_fields(&body);
    if fields.get("check") != Some(&check) {
        return respond(
            StatusCode::FORBIDDEN,
            html::error("This form is out of date. Open the link from your digest again."),
        );
    }
    let (action, id) = match (&claim.entry, claim.action) {
        (Some(id), action) => (action, id.clone()),
        (None, _) => match (
            fields.get("do").and_then(|d| Action::parse(d)),
            fields.get("id"),
        ) {
            (Some(action), Some(id)) if action != Action::Show => (action, id.clone()),
            _ => {
                return respond(
                    StatusCode::BAD_REQUEST,
                    html::error("Choose a message and an action."),
                );
            }
        },
    };
    let Some(entry) = entry_of(&api, &claim.recipient, &id) else {
        return gone();
    };
    let back = claim.entry.is_none().then(|| format!("/q/{token}"));
    let (status, page) = carry_out(&api, &claim, action, &entry, back.as_deref()).await;
    respond(status, page)
}

/// The claim of a valid token and the form check value of its page; `None` (logged) for a
/// tampered, expired or foreign one.
fn verify(api: &Api, token: &str) -> Option<(Claim, String)> {
    let settings = api.digest.settings();
    let ring = crate::digest::keys::ring(api.digest.rules());
    let now = api.config.clock.now_ms();
    let claim = token::verify(&ring, token, now, settings.link_lifetime_ms())
        .map_err(|e| tracing::info!(error = %e, "digest link refused"))
        .ok()?;
    let key = ring.current()?;
    Some((claim, token::form_check(key, token)))
}

/// The one error page of every refused link.
fn refused() -> Response {
    respond(StatusCode::FORBIDDEN, html::error(NOT_USABLE))
}

/// Does `action` on `entry` for the link's recipient; the page to answer with.
async fn carry_out(
    api: &Api,
    claim: &Claim,
    action: Action,
    entry: &IndexEntry,
    back: Option<&str>,
) -> (StatusCode, String) {
    if no_longer_held(entry, &claim.recipient) {
        return (
            StatusCode::CONFLICT,
            html::outcome(
                "Held message",
                &already(entry, &claim.recipient),
                false,
                back,
            ),
        );
    }
    let who = Admin(format!("digest link ({})", claim.recipient));
    let intent = match action {
        Action::Delete => IntentAction::Delete,
        _ => IntentAction::Release,
    };
    // For the link's recipient only: the other recipients' copies stay held.
    let rcpt = Some(claim.recipient.clone());
    let done =
        crate::admin::quarantine::act(api.clone(), who.clone(), entry.id.clone(), intent, rcpt)
            .await;
    if let Err(e) = done {
        let text = match e.0 {
            StatusCode::CONFLICT => conflict_text(api, &claim.recipient, &entry.id, &e.1),
            StatusCode::NOT_IMPLEMENTED => format!(
                "Not yet: the mail server that holds this message must be upgraded first. {}.",
                e.1
            ),
            _ => format!("That did not work: {}. Try again later.", e.1),
        };
        return (e.0, html::outcome("Held message", &text, false, back));
    }
    let mut text = match action {
        Action::Delete => "Deleted.".to_string(),
        _ => "Released: the message is on its way to your mailbox.".to_string(),
    };
    if action == Action::Allow {
        text.push(' ');
        text.push_str(&allow_sender(api, &who, &claim.recipient, &entry.sender).await);
    }
    (StatusCode::OK, html::outcome("Done", &text, true, back))
}

/// Adds "always allow `sender` for `recipient`" unless the lists have it; what to say.
async fn allow_sender(api: &Api, who: &Admin, recipient: &str, sender: &str) -> String {
    if sender.is_empty() {
        return "Its sender is empty (a bounce), so it cannot be allowed.".into();
    }
    let sender = sender.to_ascii_lowercase();
    let exists = api
        .rules
        .list_entries()
        .iter()
        .any(|e| e.kind == ListKind::Allow && e.sender == sender && e.scope == recipient);
    if exists {
        return format!("Mail from {sender} is already always allowed.");
    }
    let entry = ListEntry {
        id: String::new(),
        kind: ListKind::Allow,
        sender: sender.clone(),
        scope: recipient.to_string(),
    };
    match api
        .rules
        .add_list_entry(entry, &who.0, api.config.clock.now_ms())
        .await
    {
        Ok(_) => format!("Mail from {sender} will always be accepted for you."),
        Err(e) => {
            tracing::warn!(error = %e, %sender, recipient, "allow entry from a digest link not added");
            format!("Mail from {sender} could not be allowed ({e}).")
        }
    }
}

/// Entry `id` if it was sent to `recipient`.
fn entry_of(api: &Api, recipient: &str, id: &str) -> Option<IndexEntry> {
    let e = api.quarantine.index().get(id)?;
    e.recipients
        .iter()
        .any(|r| r.eq_ignore_ascii_case(recipient))
        .then_some(e)
}

/// The newest held messages of `recipient` (at most [`PORTAL_ITEMS_MAX`]) and whether
/// there are more.
async fn held_for(api: &Api, recipient: &str) -> (Vec<IndexEntry>, bool) {
    let quarantine = api.quarantine.clone();
    let rcpt = recipient.to_string();
    let found = crate::rt::blocking(move || {
        let q = IndexQuery {
            rcpt: Some(rcpt.clone()),
            status: Some(EntryStatus::Quarantined),
            limit: PORTAL_ITEMS_MAX + 1,
            ..IndexQuery::default()
        };
        let (items, _) = quarantine.index().search(&q);
        let mut exact: Vec<IndexEntry> = items.into_iter().filter(|e| e.held_for(&rcpt)).collect();
        let more = exact.len() > PORTAL_ITEMS_MAX;
        exact.truncate(PORTAL_ITEMS_MAX);
        (exact, more)
    })
    .await;
    found.unwrap_or_default()
}

/// Released, deleted, expired or moved (for `rcpt`: the message may stay held for its
/// other recipients), or a release/delete of it for `rcpt` (or for everyone) is waiting
/// for its node.
fn no_longer_held(e: &IndexEntry, rcpt: &str) -> bool {
    let waiting = e.pending.as_ref().is_some_and(|p| match p.recipient {
        None => true,
        Some(n) => e
            .recipients
            .get(n as usize)
            .is_some_and(|r| r.eq_ignore_ascii_case(rcpt)),
    });
    !e.held_for(rcpt) || waiting
}

/// What to say when the message's node refused with 409 (`owner_says`): this node's copy
/// of the index may not show the outcome yet.
fn conflict_text(api: &Api, recipient: &str, id: &str, owner_says: &str) -> String {
    if let Some(now) = entry_of(api, recipient, id)
        && !now.held_for(recipient)
    {
        return already(&now, recipient);
    }
    let said = owner_says.to_ascii_lowercase();
    let status = [
        EntryStatus::Released,
        EntryStatus::Deleted,
        EntryStatus::Expired,
    ]
    .into_iter()
    .find(|s| said.contains(&format!("already {}", s.as_str())));
    match status {
        Some(status) => status_text(status).to_string(),
        None if said.contains("pending") => status_text(EntryStatus::Moved).to_string(),
        None => owner_says.to_string(),
    }
}

/// What became of `e` for `rcpt`.
fn already(e: &IndexEntry, rcpt: &str) -> String {
    match e.decision_for(rcpt) {
        Some(how) => status_text(how).into(),
        None => status_text(EntryStatus::Moved).into(),
    }
}

/// The sentence for a message no longer held (`Moved`: a request for it is under way).
fn status_text(status: EntryStatus) -> &'static str {
    match status {
        EntryStatus::Released => "This message was already released.",
        EntryStatus::Deleted => "This message was already deleted.",
        EntryStatus::Expired => "This message is no longer held (it expired).",
        EntryStatus::Quarantined | EntryStatus::Moved => {
            "This message was already released or deleted; it is being carried out."
        }
    }
}

fn gone() -> Response {
    respond(
        StatusCode::NOT_FOUND,
        html::error("That message is not held for you."),
    )
}

/// Whether the browser says the request came from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

/// The fields of an `application/x-www-form-urlencoded` body (empty when unreadable).
fn form_fields(body: &[u8]) -> HashMap<String, String> {
    if body.len() > FORM_BYTES_MAX {
        return HashMap::new();
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

/// An HTML answer with the portal's security headers.
fn respond(status: StatusCode, page: String) -> Response {
    let mut r = (status, page).into_response();
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(h, header::CONTENT_SECURITY_POLICY, PORTAL_CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    r
}
