//! `/api/v1/quarantine…` over every node's quarantine: list/search and show read this
//! node's copy of the mesh-wide index; raw, release and delete are carried out by the node
//! that holds the message — here, or forwarded over the mesh. When the owner cannot be
//! reached, a release or delete is recorded as a request in the index and carried out by
//! the owner, once, when it returns (202, and the entry shows it as `pending`).

use std::collections::HashMap;
use std::str::FromStr;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mxmesh_crdt::qindex::{
    Cursor, EntryStatus, IndexEntry, IndexQuery, IntentAction, PendingAction, SEARCH_LIMIT_MAX,
    successor,
};
use serde_json::{Value, json};

use super::dto::{parse_since, rfc3339, symbol_weights};
use super::{Admin, Api, ApiError};
use crate::cluster::rpc::{self, RpcError, RpcRequest};
use crate::quarantine::{LIST_LIMIT_DEFAULT, QuarantineError};

/// Pages of quarantined entries one `status=lost` search reads at most before answering
/// (with `next` to go on from there).
const LOST_PAGES_MAX: usize = 50;

const QUERY_KEYS: [&str; 8] = [
    "sender", "rcpt", "subject", "node", "since", "limit", "cursor", "status",
];

/// One index entry as the API shows it; `score` is `null` and `symbols` empty for entries
/// quarantined before scores were recorded.
pub fn item(e: &IndexEntry) -> Value {
    let mut v = json!({
        "id": e.id,
        "node": e.node,
        "received_at": rfc3339(e.received_ms),
        "received_ms": e.received_ms,
        "sender": e.sender,
        "recipients": e.recipients,
        "subject": e.subject,
        "size": e.size,
        "reason": e.reason,
        "rule_id": e.rule_id,
        "score": e.score,
        "symbols": symbol_weights(&e.symbols.to_vec()),
        "status": status_str(e.status),
    });
    if !e.copies.is_empty() {
        v["copies"] = json!(e.copies);
    }
    if let Some(from) = &e.adopted_from {
        v["adopted_from"] = json!(from);
    }
    if e.has_decisions() {
        v["recipients_released"] = json!(e.recipients_released);
        v["recipients_deleted"] = json!(e.recipients_deleted);
    }
    if e.status == EntryStatus::Quarantined {
        v["recipients_held"] = json!(e.undecided());
    }
    if let Some(p) = &e.pending {
        v["pending"] = json!({
            "action": match p.action { IntentAction::Release => "release", IntentAction::Delete => "delete" },
            "requested_by": p.requested_by,
            "admin": p.admin,
            "requested_at": rfc3339(p.requested_ms),
            "request_id": p.request_id,
        });
        if let Some(rcpt) = p.recipient.and_then(|n| e.recipients.get(n as usize)) {
            v["pending"]["recipient"] = json!(rcpt);
        }
    }
    v
}

fn status_str(s: EntryStatus) -> &'static str {
    match s {
        EntryStatus::Quarantined => "quarantined",
        EntryStatus::Released => "released",
        EntryStatus::Deleted => "deleted",
        EntryStatus::Expired => "expired",
        EntryStatus::Moved => "moved",
    }
}

pub async fn list(
    State(api): State<Api>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let lost = params.get("status").is_some_and(|s| s == "lost");
    let q = parse_query(&params)?;
    if lost {
        return search_lost(&api, q).await;
    }
    let quarantine = api.quarantine.clone();
    let (items, next) = crate::rt::blocking(move || quarantine.index().search(&q))
        .await
        .map_err(ApiError::unavailable)?;
    let items: Vec<Value> = items.iter().map(|e| shown(&api, e)).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

/// `status=lost`: quarantined entries whose owner left the mesh with no copy holder left
/// to take them over. Reads pages of quarantined entries (at most [`LOST_PAGES_MAX`]) until
/// `limit` lost ones are found; `next` goes on after the last entry read.
async fn search_lost(api: &Api, mut q: IndexQuery) -> Result<Json<Value>, ApiError> {
    let limit = q.limit;
    let mut found = Vec::new();
    let mut next = None;
    for _ in 0..LOST_PAGES_MAX {
        let quarantine = api.quarantine.clone();
        let page = q.clone();
        let (items, after) = crate::rt::blocking(move || quarantine.index().search(&page))
            .await
            .map_err(ApiError::unavailable)?;
        let lost = items
            .iter()
            .map(|e| shown(api, e))
            .filter(|v| v["status"] == "lost");
        found.extend(lost);
        next = after;
        let Some(cursor) = next.as_deref().filter(|_| found.len() < limit) else {
            break;
        };
        q.cursor =
            Some(Cursor::from_str(cursor).map_err(|e| ApiError::unavailable(e.to_string()))?);
    }
    found.truncate(limit);
    Ok(Json(json!({ "items": found, "next": next })))
}

fn parse_query(p: &HashMap<String, String>) -> Result<IndexQuery, ApiError> {
    if let Some(k) = p.keys().find(|k| !QUERY_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?} (expected one of {})",
            QUERY_KEYS.join(", ")
        )));
    }
    let limit = match p.get("limit") {
        None => LIST_LIMIT_DEFAULT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=SEARCH_LIMIT_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit: {s:?} must be a number from 1 to {SEARCH_LIMIT_MAX}"
                )));
            }
        },
    };
    let cursor = p
        .get("cursor")
        .map(|c| Cursor::from_str(c).map_err(|e| ApiError::bad_request(format!("cursor: {e}"))))
        .transpose()?;
    let status = p
        .get("status")
        .map(|s| match s.as_str() {
            "quarantined" | "lost" => Ok(EntryStatus::Quarantined),
            "released" => Ok(EntryStatus::Released),
            "deleted" => Ok(EntryStatus::Deleted),
            "expired" => Ok(EntryStatus::Expired),
            other => Err(ApiError::bad_request(format!(
                "status: {other:?} (expected quarantined, released, deleted, expired or lost)"
            ))),
        })
        .transpose()?;
    Ok(IndexQuery {
        sender: p.get("sender").cloned(),
        rcpt: p.get("rcpt").cloned(),
        subject: p.get("subject").cloned(),
        node: p.get("node").cloned(),
        since_ms: p.get("since").map(|s| parse_since(s)).transpose()?,
        status,
        limit,
        cursor,
    })
}

fn find(api: &Api, id: &str) -> Result<IndexEntry, ApiError> {
    api.quarantine
        .index()
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no quarantined message with id {id}")))
}

pub async fn show(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(shown(&api, &find(&api, &id)?)))
}

/// An entry as listed, with its custody: a quarantined message whose owner left the mesh
/// shows `lost` when no copy holder survives to take it over, and names the successor
/// (`taken_over_by`) while that one has not adopted it yet.
fn shown(api: &Api, e: &IndexEntry) -> Value {
    let mut v = item(e);
    let book = api.custody.book();
    if e.status == EntryStatus::Quarantined && book.is_departed(&e.node) {
        match successor(e, |n| book.is_departed(n)) {
            Some(next) => v["taken_over_by"] = json!(next),
            None => v["status"] = json!("lost"),
        }
    }
    v
}

/// Refuses an action on a message whose owner left the mesh: lost when no copy survives,
/// else not yet taken over by its successor.
fn check_custody(api: &Api, e: &IndexEntry) -> Result<(), ApiError> {
    let book = api.custody.book();
    if !book.is_departed(&e.node) {
        return Ok(());
    }
    match successor(e, |n| book.is_departed(n)) {
        None => Err(ApiError(
            StatusCode::GONE,
            format!(
                "message {} is lost: its owner {} left the mesh and no node holds a copy",
                e.id, e.node
            ),
        )),
        Some(next) => Err(ApiError::unavailable(format!(
            "message {}: its owner {} left the mesh and node {next} is taking it over; retry in a moment",
            e.id, e.node
        ))),
    }
}

pub async fn raw(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let bytes = fetch_raw(&api, &id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response())
}

/// `GET /api/v1/quarantine/{id}/view`: the entry, its headers, its text and its
/// attachment list — what the console shows. The HTML of a message is never sent as HTML.
pub async fn view(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let e = find(&api, &id)?;
    let raw = fetch_raw(&api, &id).await?;
    let v = crate::message::view::view(&raw);
    let headers: Vec<Value> = v
        .headers
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let attachments: Vec<Value> = v
        .attachments
        .iter()
        .map(|a| json!({ "name": a.name, "content_type": a.content_type, "size": a.size }))
        .collect();
    Ok(Json(json!({
        "entry": item(&e),
        "parsed": v.parsed,
        "headers": headers,
        "text": v.text,
        "text_truncated": v.text_truncated,
        "attachments": attachments,
    })))
}

/// The raw message `id`: from this node's store, or from its owner over the mesh; when
/// the owner cannot answer (down, or left the mesh), from a node holding a copy.
async fn fetch_raw(api: &Api, id: &str) -> Result<Vec<u8>, ApiError> {
    let e = find(api, id)?;
    if e.node == api.config.node.id {
        return api.quarantine.raw(id).map_err(q_error);
    }
    let from_owner = match api.custody.book().is_departed(&e.node) {
        true => Err(RpcError::Unreachable(format!(
            "node {} left the mesh",
            e.node
        ))),
        false => rpc::call(api.mesh.as_deref(), &e.node, &RpcRequest::raw(id)).await,
    };
    match from_owner {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(RpcError::Unreachable(why)) if e.status == EntryStatus::Quarantined => {
            raw_from_copy(api, &e).await.ok_or_else(|| {
                ApiError::unavailable(format!("{why}, and no node holding a copy answered"))
            })
        }
        Err(other) => Err(rpc_error(other)),
    }
}

/// The bytes of `e` from a copy: this node's, else the first holder that answers.
async fn raw_from_copy(api: &Api, e: &IndexEntry) -> Option<Vec<u8>> {
    if let Ok(Some(raw)) = api.quarantine.copy_raw(&e.id) {
        return Some(raw);
    }
    let req = RpcRequest::CopyRaw { id: e.id.clone() };
    for holder in e.copies.iter().filter(|h| **h != api.config.node.id) {
        if let Ok(bytes) = rpc::call(api.mesh.as_deref(), holder, &req).await {
            return Some(bytes.to_vec());
        }
    }
    None
}

/// `POST /api/v1/quarantine/{id}/learn?class=spam|ham`: learns the quarantined message
/// (fetched from its owner) on this node; the corpus carries it mesh-wide.
pub async fn learn(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<super::dto::LearnDto>, ApiError> {
    if let Some(k) = params.keys().find(|k| k.as_str() != "class") {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?} (expected class)"
        )));
    }
    let Some(class) = params.get("class") else {
        return Err(ApiError::bad_request("class=spam or class=ham is required"));
    };
    let class = super::bayes::parse_class(class)?;
    let raw = fetch_raw(&api, &id).await?;
    let learned = api
        .bayes
        .learn(&raw, class)
        .await
        .map_err(super::bayes::op_error)?;
    Ok(Json(super::bayes::learn_dto(learned, class)))
}

/// `POST /api/v1/quarantine/{id}/release[?learn=ham][&rcpt=ADDR]`: releases the message
/// to every recipient still undecided, or with `rcpt` to that recipient only; with
/// `learn=ham` it is also learned as ham (fetched before the release, learned once the
/// release succeeded).
pub async fn release(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(k) = params
        .keys()
        .find(|k| !["learn", "rcpt"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?} (expected learn or rcpt)"
        )));
    }
    let rcpt = rcpt_param(&params)?;
    let raw = match params.get("learn").map(String::as_str) {
        None => None,
        Some("ham") => Some(fetch_raw(&api, &id).await?),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "learn={other:?}: a released message can only be learned as ham"
            )));
        }
    };
    let bayes = api.bayes.clone();
    let response = act(api, admin, id, IntentAction::Release, rcpt).await?;
    if let (Some(raw), true) = (raw, response.status().is_success()) {
        bayes
            .learn(&raw, mxmesh_crdt::bayes::Class::Ham)
            .await
            .map_err(super::bayes::op_error)?;
    }
    Ok(response)
}

/// `DELETE /api/v1/quarantine/{id}[?rcpt=ADDR]`: deletes the message for every recipient
/// still undecided, or with `rcpt` for that recipient only.
pub async fn delete(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if let Some(k) = params.keys().find(|k| k.as_str() != "rcpt") {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?} (expected rcpt)"
        )));
    }
    let rcpt = rcpt_param(&params)?;
    act(api, admin, id, IntentAction::Delete, rcpt).await
}

fn rcpt_param(params: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    match params.get("rcpt").map(|r| r.trim()) {
        None => Ok(None),
        Some("") => Err(ApiError::bad_request("rcpt= needs an address")),
        Some(r) => Ok(Some(r.to_string())),
    }
}

/// What the API answers when the owner of a message runs a release that cannot act for
/// one recipient (501): nothing was changed.
pub const NEEDS_UPGRADE: &str = "runs an older release that can only release or delete a message for all its recipients; releasing or deleting it for one recipient will be possible after that node is upgraded. Nothing was changed";

/// Release or delete, for recipient `rcpt` only or for every recipient still undecided:
/// here when this node owns the message, else forwarded to the owner, else recorded for
/// the owner to carry out when it returns. A per-recipient action for an owner that
/// cannot carry one out (an older release) is refused with 501 and changes nothing.
pub(crate) async fn act(
    api: Api,
    admin: Admin,
    id: String,
    action: IntentAction,
    rcpt: Option<String>,
) -> Result<Response, ApiError> {
    let e = find(&api, &id)?;
    if e.status != EntryStatus::Quarantined {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("message {id} was already {}", status_str(e.status)),
        ));
    }
    let rcpt = match rcpt {
        Some(r) => Some(recipient_of(&e, &r)?),
        None => None,
    };
    check_custody(&api, &e)?;
    // Run to completion even if the client goes away: commit and follow-up belong together.
    let task = tokio::spawn(async move {
        let rcpt = rcpt.as_deref();
        if e.node == api.config.node.id {
            let q = &api.quarantine;
            let done = match action {
                IntentAction::Release => q.release_for(&id, rcpt, &api.relay, &admin.0, None).await,
                IntentAction::Delete => q.delete_for(&id, rcpt, &admin.0, None).await,
            };
            let e = done.map_err(q_error)?;
            let e = api
                .quarantine
                .index()
                .get(&e.meta.id)
                .unwrap_or_else(|| crate::quarantine::index::index_entry(&e));
            return Ok(accepted(action, item(&e)));
        }
        if rcpt.is_some() && !reads_recipient_requests(&api, &e.node).await {
            return Err(needs_upgrade(&e.node));
        }
        let req = RpcRequest::act(action, &id, &admin.0, rcpt);
        match rpc::call(api.mesh.as_deref(), &e.node, &req).await {
            Ok(body) => {
                let v = match serde_json::from_slice::<IndexEntry>(&body) {
                    Ok(entry) => item(&entry),
                    Err(_) => serde_json::from_slice(&body).unwrap_or(Value::Null),
                };
                Ok(accepted(action, v))
            }
            // An older owner that does not know the operation refuses it as malformed.
            Err(RpcError::Remote { status: 400, .. }) if rcpt.is_some() => {
                Err(needs_upgrade(&e.node))
            }
            Err(RpcError::Remote { status, message }) => {
                Err(ApiError(http_status(status), message))
            }
            Err(RpcError::Unreachable(why)) => defer(&api, &e, action, &admin.0, &why, rcpt),
        }
    });
    task.await.map_err(ApiError::unavailable)?
}

/// The recipient `rcpt` of `e` as the entry spells it, if the message is still held for
/// it: 404 when it is not a recipient, 409 when it was already released or deleted for it.
fn recipient_of(e: &IndexEntry, rcpt: &str) -> Result<String, ApiError> {
    let Some(spelled) = e.recipients.iter().find(|r| r.eq_ignore_ascii_case(rcpt)) else {
        return Err(ApiError::not_found(format!(
            "message {} was not sent to {rcpt}",
            e.id
        )));
    };
    match e.decision_for(spelled) {
        None => Ok(spelled.clone()),
        Some(how) => Err(ApiError(
            StatusCode::CONFLICT,
            format!("message {} was already {how} for {spelled}", e.id),
        )),
    }
}

/// Whether node `owner` carries out per-recipient releases and deletes: it says so in
/// gossip ([`keys::FEATURES`](crate::cluster::keys::FEATURES)). This node always does.
async fn reads_recipient_requests(api: &Api, owner: &str) -> bool {
    if owner == api.config.node.id {
        return true;
    }
    let Some(mesh) = &api.mesh else {
        return false;
    };
    let members = mesh.members().await;
    members
        .iter()
        .filter(|m| m.id == owner)
        .any(|m| crate::cluster::view::has_feature(m, crate::cluster::keys::RCPT_DECISIONS))
}

fn needs_upgrade(owner: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_IMPLEMENTED,
        format!("node {owner}, which holds the message, {NEEDS_UPGRADE}"),
    )
}

fn accepted(action: IntentAction, v: Value) -> Response {
    let code = match action {
        IntentAction::Release => StatusCode::ACCEPTED,
        IntentAction::Delete => StatusCode::OK,
    };
    (code, Json(v)).into_response()
}

/// The owner is down: record the request in the index; it is carried out on its return.
/// A per-recipient request names the recipient by position (the owner was checked to
/// read such requests).
fn defer(
    api: &Api,
    e: &IndexEntry,
    action: IntentAction,
    admin: &str,
    why: &str,
    rcpt: Option<&str>,
) -> Result<Response, ApiError> {
    let recipient = rcpt.and_then(|r| e.recipients.iter().position(|x| x == r));
    let pending = PendingAction {
        action,
        requested_by: api.config.node.id.clone(),
        admin: admin.to_string(),
        requested_ms: api.config.clock.now_ms(),
        request_id: api.config.clock.ulid().to_string(),
        recipient: recipient.map(|n| n as u32),
    };
    api.quarantine
        .index()
        .request(&e.id, pending)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    tracing::info!(id = %e.id, owner = %e.node, reason = why, "owner unreachable: request recorded");
    let e = api
        .quarantine
        .index()
        .get(&e.id)
        .unwrap_or_else(|| e.clone());
    let mut v = item(&e);
    v["deferred"] = json!(format!(
        "node {} is not reachable ({why}); it will carry this out when it returns",
        e.node
    ));
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

fn q_error(e: QuarantineError) -> ApiError {
    match e {
        QuarantineError::NotFound(_) | QuarantineError::NotRecipient { .. } => {
            ApiError::not_found(e.to_string())
        }
        QuarantineError::Gone { .. }
        | QuarantineError::RecipientGone { .. }
        | QuarantineError::Pending { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
        QuarantineError::Store(s) => ApiError::unavailable(s),
        QuarantineError::Index(s) => ApiError::unavailable(s),
        QuarantineError::Retiring { .. } | QuarantineError::HandOver { .. } => {
            ApiError::unavailable(e)
        }
    }
}

fn rpc_error(e: RpcError) -> ApiError {
    match e {
        RpcError::Remote { status, message } => ApiError(http_status(status), message),
        RpcError::Unreachable(why) => ApiError(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

fn http_status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
}
