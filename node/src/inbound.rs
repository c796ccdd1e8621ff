//! One message through parse → facts → verdict → disposition → reply.
//!
//! The only promise that matters here: a `250` is returned only after the message is in
//! the store with a synced write (relay queue or quarantine). Any store error is a `451`.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use mxmesh_crdt::qindex::IndexEntry;
use mxmesh_crdt::rule::Action;

use crate::clock::Clock;
use crate::clock::rfc5322_date;
use crate::facts::{FactsError, Gathered, Gatherer};
use crate::filter::{Direction, ReverseName, Verdict};
use crate::message::auth_results;
use crate::message::{self, EnvelopeFacts};
use crate::quarantine::{self, Quarantine};
use crate::relay::Relay;
use crate::relay::body::{self as relay_body, Tag};
use crate::relay::queue::Origin;
use crate::rules::Rules;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Client, MessageSink};
use crate::smtp::state::Envelope;
use crate::spam::{self, Score};
use crate::stats::Stats;
use crate::stats::bump;
use crate::store::Batch;
use crate::store::Store;
use crate::trace::{self, TraceEvent};

/// The header that says what the filter decided (tag verdict).
pub const VERDICT_HEADER: &str = "X-Mxmesh-Verdict";

/// What the inbound stage works with.
pub struct Inbound {
    /// This node's id (in trace events and quarantine entries).
    pub node_id: String,
    /// This node's wall clock (message ids, `Received:` dates).
    pub clock: Clock,
    /// This node's name in `Received:` headers.
    pub hostname: String,
    /// The node's store: accepted messages, queue entries and trace events are committed here.
    pub store: Store,
    /// The node's mail counters, bumped per message and verdict.
    pub stats: Arc<Stats>,
    /// The rule book and spam settings the verdict is made with.
    pub rules: Arc<Rules>,
    /// The facts phase (DNS, DNSBL, SPF/DKIM/DMARC, clamd) before each verdict.
    pub facts: Arc<Gatherer>,
    /// The RCPT-time decisions (greylisting, recipient verification, rate limits).
    pub edge: Arc<crate::edge::Edge>,
    /// The relay queue accepted and tagged mail goes to.
    pub relay: Relay,
    /// The quarantine that quarantined mail goes to.
    pub quarantine: Quarantine,
    /// The learned Bayes corpus (its probability feeds the score).
    pub bayes: crate::cluster::bayes::Bayes,
    /// This node's DKIM keys, signing outbound mail before it is queued or quarantined.
    pub signer: Arc<crate::dkim::Signer>,
    /// Custody: with `sync_queue_copies` a relayed message's `250` waits for its shadow.
    pub custody: crate::cluster::custody::Custody,
}

/// Which way a message goes and who sent it, for the rule fields `direction` and
/// `auth_user`.
#[derive(Debug, Clone, Default)]
pub struct Way {
    /// Inbound or outbound.
    pub direction: Direction,
    /// The authenticated user (submission).
    pub auth_user: Option<String>,
}

impl Way {
    /// The way of a message received with `env`.
    pub fn of(env: &Envelope) -> Way {
        Way {
            direction: match env.outbound {
                true => Direction::Outbound,
                false => Direction::Inbound,
            },
            auth_user: env.auth_user.clone(),
        }
    }
}

/// What the filter decides for a message, without storing anything (`/api/v1/classify`
/// and the mail path share it).
pub struct Classified {
    /// The verdict: the first matching rule's, else the spam thresholds'.
    pub verdict: Verdict,
    /// The score and the symbols that fired.
    pub score: Score,
    /// The Bayes probability that it is spam, `None` while the corpus is not ready.
    pub bayes: Option<f64>,
    /// The message's Subject (for the quarantine index).
    pub subject: String,
    /// What the facts phase found beyond the facts (SPF/DKIM/DMARC).
    pub gathered: Gathered,
    /// The address of the first From header, if any (the DKIM signing domain's source).
    pub header_from: Option<String>,
    /// What reverse DNS said of the client (for the `Received:` header).
    pub reverse_name: ReverseName,
}

impl Inbound {
    /// Classifies `raw` as if it arrived with `envelope` at `now_ms`: facts (with their DNS
    /// checks), the Bayes probability, the score with the cluster's spam settings, the
    /// rules. Stores nothing.
    pub async fn classify(
        &self,
        raw: &[u8],
        envelope: &EnvelopeFacts<'_>,
        now_ms: u64,
    ) -> Result<Classified, FactsError> {
        self.classify_as(raw, envelope, Way::default(), now_ms)
            .await
    }

    /// Like [`Inbound::classify`], for a message going `way`.
    pub async fn classify_as(
        &self,
        raw: &[u8],
        envelope: &EnvelopeFacts<'_>,
        way: Way,
        now_ms: u64,
    ) -> Result<Classified, FactsError> {
        // One parse for the facts and the Bayes tokens.
        let parsed = message::parse(raw);
        let limits = self.facts.archive_limits();
        let mut facts = message::facts_parsed(raw, parsed.as_ref(), envelope, &limits);
        facts.direction = way.direction;
        facts.auth_user = way.auth_user;
        let rules = self.rules.current();
        let gathered = self
            .facts
            .gather(&mut facts, raw, &rules.dnsbl_zones())
            .await?;
        let bayes = self.bayes.verdict_parsed(raw, parsed.as_ref());
        facts.bayes = bayes.map(|v| v.probability);
        facts.bayes_unfamiliar = bayes.and_then(|v| v.unfamiliar);
        let decision = rules.decide(&facts, &self.rules.spam_settings(), now_ms);
        Ok(Classified {
            verdict: decision.verdict,
            score: decision.score,
            bayes: facts.bayes,
            header_from: facts.content.from.first().map(|m| m.address.clone()),
            subject: facts.subject,
            reverse_name: facts.reverse_name,
            gathered,
        })
    }
}

impl MessageSink for Inbound {
    fn deliver<'a>(
        &'a self,
        envelope: Envelope,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>> {
        Box::pin(handle(self, envelope, client))
    }

    fn check_rcpt<'a>(
        &'a self,
        check: crate::smtp::state::RcptCheck,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Option<Reply>> + Send + 'a>> {
        Box::pin(async move {
            if check.outbound {
                // Our own users' mail: no greylisting or recipient checks of theirs.
                return None;
            }
            self.edge.check_rcpt(&check, client.ip).await
        })
    }
}

/// Decides and stores one message; returns the reply for the end of DATA.
pub async fn handle(stage: &Inbound, env: Envelope, client: &Client) -> Reply {
    let id = stage.clock.ulid().to_string();
    let now = stage.clock.now_ms();
    bump(&stage.stats.received);
    let envelope = EnvelopeFacts {
        from: &env.mail_from,
        to: &env.rcpt_to,
        helo: &env.helo,
        client_ip: client.ip,
        reverse_name: None,
    };
    let classified = match stage
        .classify_as(&env.body, &envelope, Way::of(&env), now)
        .await
    {
        Ok(classified) => classified,
        Err(error) => return facts_failed(stage, &env, &id, &error, now).await,
    };
    let from = from_clause(&env.helo, &classified.reverse_name, client.ip);
    let mut received = received_header(stage, &env, &from, &id, now);
    if let Some(auth) = &classified.gathered.auth {
        received.push_str(&auth_results::header(stage.facts.hostname(), auth));
    }
    let tagged = classified.verdict.action == Action::Tag;
    received.push_str(&spam::header::render(&classified.score, tagged));
    let c = &classified;
    let result = match c.verdict.action {
        Action::Reject => Err(reject(stage, &env, &id, c, now).await),
        Action::Tempfail => Err(tempfail(stage, &env, &id, c, now).await),
        Action::Quarantine => quarantine(stage, &env, &id, c, received, now).await,
        Action::Accept | Action::Tag => relay(stage, &env, &id, c, received, now).await,
    };
    match result {
        Ok(()) => Reply::ok_queued(&id),
        Err(reply) => reply,
    }
}

/// The facts phase could not finish and its failure policy says tempfail: `451`.
async fn facts_failed(
    stage: &Inbound,
    env: &Envelope,
    id: &str,
    error: &FactsError,
    now: u64,
) -> Reply {
    bump(&stage.stats.tempfailed);
    let v = Verdict {
        reason: error.to_string(),
        ..Verdict::no_match()
    };
    note(stage, event_of(stage, env, id, "tempfailed", &v, now)).await;
    match error {
        FactsError::Dns(_) => Reply::tempfail_dns(),
        FactsError::Scan(_) => Reply::tempfail_scan(),
    }
}

async fn reject(stage: &Inbound, env: &Envelope, id: &str, c: &Classified, now: u64) -> Reply {
    bump(&stage.stats.rejected);
    note(stage, verdict_event(stage, env, id, "rejected", c, now)).await;
    Reply::rejected(reason_text(&c.verdict, "Message rejected by policy"))
}

async fn tempfail(stage: &Inbound, env: &Envelope, id: &str, c: &Classified, now: u64) -> Reply {
    bump(&stage.stats.tempfailed);
    note(stage, verdict_event(stage, env, id, "tempfailed", c, now)).await;
    Reply::tempfail(reason_text(&c.verdict, "Message deferred by policy"))
}

/// Trace for mail that was not stored (best effort: the reply does not depend on it).
async fn note(stage: &Inbound, e: TraceEvent) {
    if let Err(err) = trace::emit(&stage.store, &[e]).await {
        tracing::warn!(error = %err, "trace event not written");
    }
}

async fn quarantine(
    stage: &Inbound,
    env: &Envelope,
    id: &str,
    c: &Classified,
    received: String,
    now: u64,
) -> Result<(), Reply> {
    let received = match env.outbound {
        true => {
            let hostname = stage.facts.hostname();
            let body = relay_body::prepare(&received, &env.body, Some(hostname), None);
            let signature = signature(stage, c, env, &body).unwrap_or_default();
            signature + &received
        }
        false => received,
    };
    let entry = quarantine::Entry {
        meta: IndexEntry {
            id: id.to_string(),
            node: stage.node_id.clone(),
            received_ms: now,
            sender: env.mail_from.clone(),
            recipients: env.rcpt_to.clone(),
            subject: c.subject.clone(),
            size: env.body.len() as u64,
            reason: c.verdict.reason.clone(),
            rule_id: c.verdict.rule_id.clone(),
            score: Some(c.score.total),
            symbols: c.score.recorded_symbols().into(),
            status: quarantine::Status::Quarantined,
            status_ms: now,
            pending: None,
            seq: 0,
            copies: Vec::new(),
            adopted_from: None,
            recipients_released: Vec::new(),
            recipients_deleted: Vec::new(),
        },
        prepend: received,
    };
    let mut batch = Batch::new();
    Quarantine::stage(&mut batch, &entry, &env.body);
    trace::record(
        &mut batch,
        &verdict_event(stage, env, id, "quarantined", c, now),
    );
    commit(stage, batch).await?;
    stage.quarantine.added(&entry);
    bump(&stage.stats.quarantined);
    Ok(())
}

async fn relay(
    stage: &Inbound,
    env: &Envelope,
    id: &str,
    c: &Classified,
    received: String,
    now: u64,
) -> Result<(), Reply> {
    let v = &c.verdict;
    let tagged = v.action == Action::Tag;
    let verdict = tagged.then(|| verdict_header(v));
    let tag = verdict.as_deref().map(|header| Tag {
        header,
        subject_prefix: v.subject_prefix.as_deref(),
    });
    let hostname = stage.facts.hostname();
    let mut body = relay_body::prepare(&received, &env.body, Some(hostname), tag);
    let origin = match env.outbound {
        true => {
            if let Some(signature) = signature(stage, c, env, &body) {
                body.splice(0..0, signature.into_bytes());
            }
            Origin::Outbound
        }
        false => Origin::Inbound,
    };
    let entry = stage.relay.entry(
        id,
        &env.mail_from,
        &env.rcpt_to,
        &c.subject,
        body.len() as u64,
        origin,
    );
    let mut batch = Batch::new();
    Relay::stage(&mut batch, &entry, Some(&body));
    let event = if tagged { "tagged" } else { "accepted" };
    trace::record(&mut batch, &verdict_event(stage, env, id, event, c, now));
    commit(stage, batch).await?;
    bump(if tagged {
        &stage.stats.tagged
    } else {
        &stage.stats.accepted
    });
    let waiter = stage.custody.shadow_waiter(&entry.id);
    stage.relay.queued(&entry);
    if let Some(waiter) = waiter {
        stage.custody.wait_shadow(&entry.id, waiter).await;
    }
    Ok(())
}

/// The DKIM signature of an outbound message's relayed bytes `body`, with this node's key
/// for the sender's domain (none when it has no key for it).
fn signature(stage: &Inbound, c: &Classified, env: &Envelope, body: &[u8]) -> Option<String> {
    stage
        .signer
        .sign(c.header_from.as_deref(), &env.mail_from, body)
}

async fn commit(stage: &Inbound, batch: Batch) -> Result<(), Reply> {
    stage.store.commit(batch).await.map_err(|e| {
        tracing::error!(error = %e, "message not stored; answering 451");
        Reply::tempfail_store()
    })
}

fn event_of(
    stage: &Inbound,
    env: &Envelope,
    id: &str,
    event: &str,
    v: &Verdict,
    now: u64,
) -> TraceEvent {
    TraceEvent {
        time_ms: now,
        node: stage.node_id.clone(),
        message_id: id.to_string(),
        event: event.to_string(),
        sender: env.mail_from.clone(),
        recipients: env.rcpt_to.clone(),
        detail: match &v.rule_id {
            Some(r) => format!("rule {r}: {}", v.reason),
            None => v.reason.clone(),
        },
        score: None,
        symbols: Vec::new(),
    }
}

/// The trace event of a verdict, with the score and symbols it was made with.
fn verdict_event(
    stage: &Inbound,
    env: &Envelope,
    id: &str,
    event: &str,
    c: &Classified,
    now: u64,
) -> TraceEvent {
    TraceEvent {
        score: Some(c.score.total),
        symbols: c.score.recorded_symbols(),
        ..event_of(stage, env, id, event, &c.verdict, now)
    }
}

fn reason_text(v: &Verdict, default: &str) -> String {
    let r = v.reason.replace(['\r', '\n'], " ");
    if r.trim().is_empty() {
        default.to_string()
    } else {
        r
    }
}

/// The `with` clause of `Received:`: the protocol types of RFC 3848 and, for a
/// transaction with `SMTPUTF8`, of RFC 6531 §3.7.3.
pub(crate) fn with_protocol(env: &Envelope) -> &'static str {
    match (env.smtputf8, env.esmtp, env.tls) {
        (true, _, true) => "UTF8SMTPS",
        (true, _, false) => "UTF8SMTP",
        (false, true, true) => "ESMTPS",
        (false, true, false) => "ESMTP",
        (false, false, true) => "SMTPS",
        (false, false, false) => "SMTP",
    }
}

/// `Received:` trace header (RFC 5321 §4.4); `from` is [`from_clause`]'s.
fn received_header(stage: &Inbound, env: &Envelope, from: &str, id: &str, now: u64) -> String {
    let with = with_protocol(env);
    let for_clause = match env.rcpt_to.as_slice() {
        [one] => format!("\r\n\tfor <{one}>"),
        _ => String::new(),
    };
    format!(
        "Received: {from}\r\n\tby {} (mxmesh) with {with} id {id}{for_clause};\r\n\t{}\r\n",
        stage.hostname,
        rfc5322_date(now)
    )
}

/// Longest HELO or reverse name written into `Received:` (a DNS name's limit).
const RECEIVED_NAME_MAX: usize = 255;

/// `from HELO (REVERSE [IP])` as MTAs write it: the forward-confirmed reverse name,
/// `unknown` when there is none, nothing when it was not looked up. Names are cut to
/// visible ASCII so that a hostile HELO cannot break the header.
fn from_clause(helo: &str, reverse: &ReverseName, ip: IpAddr) -> String {
    let clean = |name: &str| -> String {
        name.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(RECEIVED_NAME_MAX)
            .collect()
    };
    let helo = clean(helo);
    match reverse {
        ReverseName::NotChecked => format!("from {helo} ([{ip}])"),
        ReverseName::Missing => format!("from {helo} (unknown [{ip}])"),
        ReverseName::Name(name) => format!("from {helo} ({} [{ip}])", clean(name)),
    }
}

fn verdict_header(v: &Verdict) -> String {
    let reason = reason_text(v, "tagged");
    match &v.rule_id {
        Some(r) => format!(
            "{VERDICT_HEADER}: tag; rule={r}; reason=\"{}\"\r\n",
            reason.replace('"', "'")
        ),
        None => format!("{VERDICT_HEADER}: tag\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_names_the_protocol_smtputf8_included() {
        let env = |esmtp, tls, smtputf8| Envelope {
            esmtp,
            tls,
            smtputf8,
            ..Envelope::default()
        };
        assert_eq!(with_protocol(&env(true, false, true)), "UTF8SMTP");
        assert_eq!(with_protocol(&env(true, true, true)), "UTF8SMTPS");
        assert_eq!(with_protocol(&env(true, true, false)), "ESMTPS");
        assert_eq!(with_protocol(&env(true, false, false)), "ESMTP");
        assert_eq!(with_protocol(&env(false, false, false)), "SMTP");
        assert_eq!(with_protocol(&env(false, true, false)), "SMTPS");
    }

    #[test]
    fn received_names_the_reverse_name_it_found() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let named = ReverseName::Name("mx.example.com".into());
        assert_eq!(
            from_clause("mx.example.com", &named, ip),
            "from mx.example.com (mx.example.com [192.0.2.7])"
        );
        assert_eq!(
            from_clause("box", &ReverseName::Missing, ip),
            "from box (unknown [192.0.2.7])"
        );
        assert_eq!(
            from_clause("a b\r\nX-Evil: 1", &ReverseName::NotChecked, ip),
            "from abX-Evil:1 ([192.0.2.7])"
        );
    }
}
