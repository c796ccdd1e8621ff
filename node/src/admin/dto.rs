//! JSON shapes of the API and parsing of query parameters. The shapes are the API's own:
//! store encodings and the messages between nodes are mapped to them here.

use serde::Serialize;
use serde_json::Value;

use mxmesh_crdt::qindex::SymbolWeight;

use super::ApiError;
use crate::cluster::rpc::QueueView;
use crate::cluster::view::NodeView;
use crate::relay::queue::{Origin, QueueEntry, RcptState, Recipient};
use crate::trace::TraceEvent;

/// One member in `/api/v1/cluster`.
#[derive(Debug, Serialize)]
pub struct MemberDto {
    /// The node id.
    pub id: String,
    /// Whether the failure detector holds it live.
    pub live: bool,
    /// Its health: `ok`, `draining` or `store_error` (empty when it publishes none).
    pub health: String,
    /// The build version it publishes.
    pub version: String,
    /// The SMTP address it listens on.
    pub smtp_addr: String,
    /// The admin API address it listens on.
    pub admin_addr: String,
    /// Its mesh address (what peers dial).
    pub mesh_addr: String,
    /// Milliseconds since its heartbeat last moved, as seen by the answering node.
    pub last_seen_ms: u64,
    /// Digest of its rule book's heads (nodes that differ sync their rules).
    pub rules_digest: String,
    /// Live quarantine entries on that node.
    pub quarantine_entries: u64,
}

impl From<&NodeView> for MemberDto {
    fn from(n: &NodeView) -> MemberDto {
        MemberDto {
            id: n.member.id.clone(),
            live: n.member.live,
            health: n.health.clone(),
            version: n.member.version.clone(),
            smtp_addr: n.smtp_addr.clone(),
            admin_addr: n.admin_addr.clone(),
            mesh_addr: n.member.mesh_addr.clone(),
            last_seen_ms: n.member.last_seen_ms,
            rules_digest: n.rules_digest.clone(),
            quarantine_entries: n.quarantine_entries,
        }
    }
}

/// One event in `/api/v1/trace`.
#[derive(Debug, Serialize)]
pub struct TraceEventDto {
    /// When it happened, in milliseconds since the epoch.
    pub time_ms: u64,
    /// The id of the node where it happened.
    pub node: String,
    /// The message's id.
    pub message_id: String,
    /// What happened: `received`, `accepted`, `tagged`, `quarantined`, `relayed`, `bounced`, ….
    pub event: String,
    /// The envelope sender (`MAIL FROM`).
    pub sender: String,
    /// The recipients the event is about.
    pub recipients: Vec<String>,
    /// Free text: the reply, the rule or the reason (empty when there is nothing to add).
    pub detail: String,
    /// The spam score of a verdict event (accepted, tagged, quarantined, rejected,
    /// tempfailed); absent on the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The symbols of that score, heaviest first; absent when there is no score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<SymbolWeightDto>>,
}

impl From<TraceEvent> for TraceEventDto {
    fn from(e: TraceEvent) -> TraceEventDto {
        TraceEventDto {
            time_ms: e.time_ms,
            node: e.node,
            message_id: e.message_id,
            event: e.event,
            sender: e.sender,
            recipients: e.recipients,
            detail: e.detail,
            symbols: e.score.map(|_| symbol_weights(&e.symbols)),
            score: e.score,
        }
    }
}

/// One symbol of a recorded verdict (quarantine entries, trace events): `{"name","weight"}`.
#[derive(Debug, Serialize)]
pub struct SymbolWeightDto {
    /// The symbol's name.
    pub name: String,
    /// Its weight in the score.
    pub weight: f64,
}

/// The recorded symbols as the API shows them.
pub fn symbol_weights(symbols: &[SymbolWeight]) -> Vec<SymbolWeightDto> {
    let dto = |s: &SymbolWeight| SymbolWeightDto {
        name: s.name.clone(),
        weight: s.weight,
    };
    symbols.iter().map(dto).collect()
}

/// A node's queue in `/api/v1/queue`.
#[derive(Debug, Serialize)]
pub struct QueueDto {
    /// The node whose queue it is.
    pub node: String,
    /// Entries waiting in all.
    pub size: usize,
    /// The oldest of them (at most `QUEUE_LIST_MAX`).
    pub entries: Vec<QueueEntryDto>,
}

impl From<QueueView> for QueueDto {
    fn from(v: QueueView) -> QueueDto {
        QueueDto {
            node: v.node,
            size: v.size,
            entries: v.entries.into_iter().map(QueueEntryDto::from).collect(),
        }
    }
}

/// One queued message in `/api/v1/queue`.
#[derive(Debug, Serialize)]
pub struct QueueEntryDto {
    /// The message id.
    pub id: String,
    /// The envelope sender (`MAIL FROM`; empty for a bounce).
    pub sender: String,
    /// The recipients and where each of them stands.
    pub recipients: Vec<RecipientDto>,
    /// The message's subject (empty when it has none).
    pub subject: String,
    /// The queued message's size in bytes.
    pub size: u64,
    /// When it was queued, in milliseconds since the epoch.
    pub created_ms: u64,
    /// Delivery attempts that ended with a recipient still pending.
    pub attempts: u32,
    /// When the next delivery attempt is due, in milliseconds since the epoch.
    pub next_attempt_ms: u64,
    /// The last temporary failure's reply (`null` when none).
    pub last_error: Option<String>,
    /// `inbound`, `release`, `bounce`, `digest` or `outbound`.
    pub origin: &'static str,
}

impl From<QueueEntry> for QueueEntryDto {
    fn from(e: QueueEntry) -> QueueEntryDto {
        QueueEntryDto {
            id: e.id,
            sender: e.sender,
            recipients: e.recipients.into_iter().map(RecipientDto::from).collect(),
            subject: e.subject,
            size: e.size,
            created_ms: e.created_ms,
            attempts: e.attempts,
            next_attempt_ms: e.next_attempt_ms,
            last_error: e.last_error,
            origin: match e.origin {
                Origin::Inbound => "inbound",
                Origin::Release => "release",
                Origin::Bounce => "bounce",
                Origin::Digest => "digest",
                Origin::Outbound => "outbound",
            },
        }
    }
}

/// One recipient of a queued message.
#[derive(Debug, Serialize)]
pub struct RecipientDto {
    /// The recipient's address.
    pub addr: String,
    /// `host:port` of the downstream server, or `mx:<domain>` for delivery by MX.
    pub relay_to: String,
    /// Where its delivery stands.
    pub state: RcptStateDto,
}

impl From<Recipient> for RecipientDto {
    fn from(r: Recipient) -> RecipientDto {
        RecipientDto {
            addr: r.addr,
            relay_to: r.relay_to,
            state: match r.state {
                RcptState::Pending => RcptStateDto::Pending,
                RcptState::Delivered => RcptStateDto::Delivered,
                RcptState::Failed(why) => RcptStateDto::Failed(why),
            },
        }
    }
}

/// Where one recipient's delivery stands: `{"state": …, "detail": …}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum RcptStateDto {
    /// Not delivered yet.
    Pending,
    /// Accepted by the downstream server.
    Delivered,
    /// Failed for good; `detail` says why.
    Failed(String),
}

/// RFC 3339 time for API output.
pub fn rfc3339(ms: u64) -> String {
    mail_parser::DateTime::from_timestamp((ms / 1000) as i64).to_rfc3339()
}

/// `since=` as milliseconds since the epoch or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    mail_parser::DateTime::parse_rfc3339(s)
        .filter(|d| d.is_valid())
        .map(|d| (d.to_timestamp().max(0) as u64) * 1000)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "since: {s:?} is neither milliseconds nor an RFC 3339 time"
            ))
        })
}

/// Parses a JSON request body, naming the problem.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object, got nothing",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body: invalid JSON: {e}")))
}

/// The settings key a validation message names first (`"time: … is not HH:MM"` → `time`,
/// `"weights.X: …"` → `weights.X`), if it starts with one.
pub fn settings_key(message: &str) -> Option<&str> {
    let (key, _) = message.split_once(':')?;
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    (!key.is_empty() && key.chars().all(ok)).then_some(key)
}

/// A settings document that does not validate: 400 `{"error","field"}`, `field` being the
/// key the message names (absent when it names none), so the console shows it there.
pub fn invalid_settings(message: String) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let body = match settings_key(&message) {
        Some(key) => serde_json::json!({ "error": message, "field": key }),
        None => serde_json::json!({ "error": message }),
    };
    (axum::http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_errors_name_their_key() {
        assert_eq!(settings_key("time: \"8\" is not HH:MM"), Some("time"));
        assert_eq!(
            settings_key("weights.DATE_IN_PAST: too big"),
            Some("weights.DATE_IN_PAST")
        );
        assert_eq!(settings_key("digest settings: invalid type"), None);
        assert_eq!(settings_key("no key here"), None);
        assert_eq!(settings_key(": empty"), None);
    }

    #[test]
    fn queue_and_trace_dtos_have_the_shape_of_the_records() {
        let recipient = |state| Recipient {
            addr: "u@example.com".into(),
            relay_to: "127.0.0.1:2525".into(),
            state,
        };
        for origin in [
            Origin::Inbound,
            Origin::Release,
            Origin::Bounce,
            Origin::Outbound,
            Origin::Digest,
        ] {
            let entry = QueueEntry {
                id: "01A".into(),
                sender: "s@example.org".into(),
                recipients: vec![
                    recipient(RcptState::Pending),
                    recipient(RcptState::Delivered),
                    recipient(RcptState::Failed("550 no".into())),
                ],
                subject: "hi".into(),
                size: 42,
                created_ms: 1,
                attempts: 2,
                next_attempt_ms: 3,
                last_error: Some("421 busy".into()),
                origin,
            };
            let view = QueueView {
                node: "mx1".into(),
                size: 1,
                entries: vec![entry],
            };
            assert_eq!(
                serde_json::to_value(QueueDto::from(view.clone())).unwrap(),
                serde_json::to_value(&view).unwrap()
            );
        }
        let event = TraceEvent {
            time_ms: 5,
            node: "mx1".into(),
            message_id: "01A".into(),
            event: "accepted".into(),
            sender: "s@example.org".into(),
            recipients: vec!["u@example.com".into()],
            detail: "rule r1: x".into(),
            score: None,
            symbols: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(TraceEventDto::from(event.clone())).unwrap(),
            serde_json::to_value(&event).unwrap()
        );
        let scored = TraceEvent {
            score: Some(12.5),
            symbols: vec![SymbolWeight {
                name: "URL_IP_ADDRESS".into(),
                weight: 2.0,
            }],
            ..event
        };
        assert_eq!(
            serde_json::to_value(TraceEventDto::from(scored.clone())).unwrap(),
            serde_json::to_value(&scored).unwrap()
        );
    }
}

/// The answer of `POST /api/v1/learn/{class}`.
#[derive(Debug, Serialize)]
pub struct LearnDto {
    /// The message's normalised digest (64 hex digits).
    pub digest: String,
    /// Whether a record was written (false: already learned as that class).
    pub learned: bool,
    /// Why nothing was learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The class it moved from, when it was learned as the other one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
}

/// One node's share in `GET /api/v1/bayes`.
#[derive(Debug, Serialize)]
pub struct BayesNodeDto {
    /// Messages it learned as spam that count.
    pub spam: u32,
    /// Messages it learned as ham that count.
    pub ham: u32,
    /// Its records held here (learns, also superseded ones, and forgets).
    pub records: usize,
}

/// `GET /api/v1/bayes`.
#[derive(Debug, Serialize)]
pub struct BayesDto {
    /// Messages learned as spam, mesh-wide as far as this node knows.
    pub spam_learned: u64,
    /// Messages learned as ham, mesh-wide as far as this node knows.
    pub ham_learned: u64,
    /// Distinct tokens with a count.
    pub tokens: usize,
    /// Whether the classifier votes (both classes at `min_learned`).
    pub ready: bool,
    /// Messages each class needs before the classifier votes.
    pub min_learned: u64,
    /// Each node that learned or forgot (holds a record), by node id.
    pub nodes: std::collections::BTreeMap<String, BayesNodeDto>,
}

impl From<crate::cluster::bayes::BayesStatus> for BayesDto {
    fn from(s: crate::cluster::bayes::BayesStatus) -> BayesDto {
        let node = |(id, c): (String, mxmesh_crdt::bayes::Contribution)| {
            let dto = BayesNodeDto {
                spam: c.winning.spam,
                ham: c.winning.ham,
                records: c.records,
            };
            (id, dto)
        };
        BayesDto {
            spam_learned: s.spam_learned,
            ham_learned: s.ham_learned,
            tokens: s.tokens,
            ready: s.ready,
            min_learned: s.min_learned,
            nodes: s.nodes.into_iter().map(node).collect(),
        }
    }
}

/// One symbol in `POST /api/v1/classify`.
#[derive(Debug, Serialize)]
pub struct SymbolDto {
    /// The symbol's name.
    pub name: String,
    /// Its weight in the score.
    pub weight: f64,
    /// What matched, in words.
    pub detail: String,
}

/// `POST /api/v1/classify`.
#[derive(Debug, Serialize)]
pub struct ClassifyDto {
    /// The spam score (sum of the symbols' weights).
    pub score: f64,
    /// What the filter would do: `accept`, `tag`, `quarantine`, `reject`, `tempfail`.
    pub verdict: String,
    /// The symbols that made the score.
    pub symbols: Vec<SymbolDto>,
    /// The Bayes probability, `null` while the corpus is not ready.
    pub bayes: Option<f64>,
    /// The rule that decided, if one matched.
    pub rule_id: Option<String>,
}

/// The answer of `POST /api/v1/classify` for what the filter decided.
pub fn classify_dto(c: crate::inbound::Classified) -> ClassifyDto {
    let symbol = |s: crate::spam::Symbol| SymbolDto {
        name: s.name.to_string(),
        weight: s.weight,
        detail: s.detail,
    };
    ClassifyDto {
        score: c.score.total,
        verdict: c.verdict.action.as_str().to_string(),
        symbols: c.score.symbols.into_iter().map(symbol).collect(),
        bayes: c.bayes,
        rule_id: c.verdict.rule_id,
    }
}
