//! `/api/v1/rules…`: list, create, read, update, delete, history.
//!
//! Changes run in their own task so a client that hangs up cannot cancel one halfway.

use std::collections::HashMap;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mxmesh_crdt::rule::{Rule, RuleError, rule_id_at};
use mxmesh_crdt::rulebook::RuleBookError;
use serde_json::{Value, json};

use super::dto::parse_body;
use super::{Admin, Api, ApiError};
use crate::rules::RulesError;

pub async fn list(State(api): State<Api>) -> Json<Value> {
    let rules: Vec<Value> = api.rules.list().iter().map(Rule::to_json).collect();
    Json(json!({ "rules": rules }))
}

pub async fn get(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    api.rules
        .get(&id)
        .map(|r| Json(r.to_json()))
        .ok_or_else(|| ApiError::not_found(format!("no rule with id {id}")))
}

pub async fn create(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    body: Bytes,
) -> Result<impl IntoResponse, ChangeError> {
    let mut value = parse_body(&body)?;
    if let Some(obj) = value.as_object_mut()
        && !obj.contains_key("id")
    {
        let now = api.config.clock.now_ms();
        let id = rule_id_at(now, &rand::random::<[u8; 16]>());
        obj.insert("id".into(), Value::String(id));
    }
    let rule = Rule::from_json(&value).map_err(invalid)?;
    let stored = tokio::spawn(async move {
        api.rules
            .create(rule, &admin.0, api.config.clock.now_ms())
            .await
    })
    .await
    .map_err(ApiError::unavailable)?
    .map_err(rules_error)?;
    Ok((StatusCode::CREATED, Json(stored.to_json())))
}

pub async fn update(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ChangeError> {
    let mut value = parse_body(&body)?;
    match value.as_object_mut() {
        Some(obj) => match obj.get("id") {
            None => {
                obj.insert("id".into(), Value::String(id.clone()));
            }
            Some(Value::String(s)) if *s == id => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "id: {other} does not match the rule in the path ({id})"
                ))
                .into());
            }
        },
        None => {
            return Err(ApiError::bad_request("request body: expected a JSON object").into());
        }
    }
    let rule = Rule::from_json(&value).map_err(invalid)?;
    let stored = tokio::spawn(async move {
        api.rules
            .update(&id, rule, &admin.0, api.config.clock.now_ms())
            .await
    })
    .await
    .map_err(ApiError::unavailable)?
    .map_err(rules_error)?;
    Ok(Json(stored.to_json()))
}

pub async fn delete(
    State(api): State<Api>,
    Extension(admin): Extension<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rule_id = id.clone();
    tokio::spawn(async move {
        api.rules
            .delete(&rule_id, &admin.0, api.config.clock.now_ms())
            .await
    })
    .await
    .map_err(ApiError::unavailable)?
    .map_err(rules_error)?;
    Ok(Json(json!({ "deleted": id })))
}

/// The most history entries one answer carries (the newest), and the default `limit`.
pub const HISTORY_ANSWER_MAX: usize = 10_000;

/// `GET /api/v1/rules/history[?limit=N]`: the newest `limit` changes (at most
/// [`HISTORY_ANSWER_MAX`]), oldest first, with `total` and, when older ones were left out,
/// `"truncated": true`.
pub async fn history(
    State(api): State<Api>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = history_limit(&params)?;
    let all = api.rules.history();
    let total = all.len();
    let entries: Vec<Value> = all
        .into_iter()
        .skip(total.saturating_sub(limit))
        .map(|h| {
            json!({
                "time": super::dto::rfc3339(h.time_ms),
                "time_ms": h.time_ms,
                "node": h.node,
                "admin": h.admin,
                "op": h.op,
                "rule_id": h.rule_id,
                "fields": h.fields,
                "change": h.change_hash,
            })
        })
        .collect();
    let truncated = entries.len() < total;
    Ok(Json(
        json!({ "history": entries, "total": total, "truncated": truncated }),
    ))
}

/// The `limit` of a history request: 1 ..= [`HISTORY_ANSWER_MAX`], default the maximum.
fn history_limit(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    if let Some(k) = params.keys().find(|k| k.as_str() != "limit") {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?} (expected \"limit\")"
        )));
    }
    match params.get("limit") {
        None => Ok(HISTORY_ANSWER_MAX),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=HISTORY_ANSWER_MAX).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "limit {text:?} is not a whole number from 1 to {HISTORY_ANSWER_MAX}"
            ))),
        },
    }
}

/// A rule that does not validate: 400 `{"error", "field"}`, where `field` is the JSON path
/// of the bad part (the console shows the message at that field).
#[derive(Debug)]
pub struct Invalid(RuleError);

impl IntoResponse for Invalid {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.0.to_string(), "field": self.0.path });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// What a rule change can fail with.
pub enum ChangeError {
    /// The rule does not validate.
    Invalid(Invalid),
    /// Anything else.
    Api(ApiError),
}

impl From<ApiError> for ChangeError {
    fn from(e: ApiError) -> Self {
        ChangeError::Api(e)
    }
}

impl IntoResponse for ChangeError {
    fn into_response(self) -> Response {
        match self {
            ChangeError::Invalid(i) => i.into_response(),
            ChangeError::Api(e) => e.into_response(),
        }
    }
}

fn invalid(e: RuleError) -> ChangeError {
    ChangeError::Invalid(Invalid(e))
}

fn rules_error(e: RulesError) -> ApiError {
    match e {
        RulesError::Book(RuleBookError::NotFound(id)) => {
            ApiError::not_found(format!("no rule with id {id}"))
        }
        RulesError::Book(RuleBookError::AlreadyExists(id)) => ApiError(
            StatusCode::CONFLICT,
            format!("a rule with id {id} already exists"),
        ),
        RulesError::Book(other) => ApiError::bad_request(other.to_string()),
        RulesError::Settings(e) => ApiError::bad_request(e.to_string()),
        RulesError::Custody(e) => ApiError::bad_request(e),
        RulesError::Store(s) => ApiError::unavailable(s),
    }
}
