//! One message through parse → facts → verdict → disposition → reply.
//!
//! The only promise that matters here: a `250` is returned only after the message is in
//! the store with a synced write (relay queue or quarantine). Any store error is a `451`.

use std::net::IpAddr;

use mxmesh_crdt::rule::Action;

use crate::clock::rfc5322_date;
use crate::facts::{FactsError, auth_results};
use crate::filter::Verdict;
use crate::message::{self, EnvelopeFacts};
use crate::node::Shared;
use crate::quarantine::{self, Quarantine};
use crate::relay::Relay;
use crate::relay::queue::Origin;
use crate::smtp::reply::Reply;
use crate::smtp::state::Envelope;
use crate::spam::{self, SpamSettings};
use crate::stats::bump;
use crate::store::Batch;
use crate::trace::{self, TraceEvent};

/// The header that says what the filter decided (tag verdict).
pub const VERDICT_HEADER: &str = "X-Mxmesh-Verdict";

/// What the session knows about its client.
pub struct Client {
    pub ip: IpAddr,
}

/// Decides and stores one message; returns the reply for the end of DATA.
pub async fn handle(shared: &Shared, env: Envelope, client: &Client) -> Reply {
    let id = shared.config.clock.ulid().to_string();
    let now = shared.config.clock.now_ms();
    bump(&shared.stats.received);
    let envelope = EnvelopeFacts {
        from: &env.mail_from,
        to: &env.rcpt_to,
        helo: &env.helo,
        client_ip: client.ip,
    };
    let mut facts = message::facts(&env.body, &envelope, &shared.facts.archive_limits());
    let rules = shared.rules.current();
    let gathered = match shared
        .facts
        .gather(&mut facts, &env.body, &rules.dnsbl_zones())
        .await
    {
        Ok(gathered) => gathered,
        Err(error) => return facts_failed(shared, &env, &id, &error, now).await,
    };
    // The defaults until the mesh replicates the cluster's spam settings.
    let decision = rules.decide(&facts, &SpamSettings::default(), now);
    let verdict = decision.verdict;
    let mut received = received_header(shared, &env, client, &id, now);
    if let Some(auth) = &gathered.auth {
        received.push_str(&auth_results::header(shared.facts.hostname(), auth));
    }
    let tagged = verdict.action == Action::Tag;
    received.push_str(&spam::header::render(&decision.score, tagged));
    let subject = facts.subject.clone();
    let result = match verdict.action {
        Action::Reject => Err(reject(shared, &env, &id, &verdict, now).await),
        Action::Tempfail => Err(tempfail(shared, &env, &id, &verdict, now).await),
        Action::Quarantine => {
            quarantine(shared, &env, &id, &verdict, &subject, received, now).await
        }
        Action::Accept | Action::Tag => {
            relay(shared, &env, &id, &verdict, &subject, received, now).await
        }
    };
    match result {
        Ok(()) => Reply::ok_queued(&id),
        Err(reply) => reply,
    }
}

/// The facts phase could not finish and its failure policy says tempfail: `451`.
async fn facts_failed(
    shared: &Shared,
    env: &Envelope,
    id: &str,
    error: &FactsError,
    now: u64,
) -> Reply {
    bump(&shared.stats.tempfailed);
    let v = Verdict {
        reason: error.to_string(),
        ..Verdict::no_match()
    };
    note(shared, env, id, "tempfailed", &v, now).await;
    match error {
        FactsError::Dns(_) => Reply::tempfail_dns(),
        FactsError::Scan(_) => Reply::tempfail_scan(),
    }
}

async fn reject(shared: &Shared, env: &Envelope, id: &str, v: &Verdict, now: u64) -> Reply {
    bump(&shared.stats.rejected);
    note(shared, env, id, "rejected", v, now).await;
    Reply::rejected(reason_text(v, "Message rejected by policy"))
}

async fn tempfail(shared: &Shared, env: &Envelope, id: &str, v: &Verdict, now: u64) -> Reply {
    bump(&shared.stats.tempfailed);
    note(shared, env, id, "tempfailed", v, now).await;
    Reply::tempfail(reason_text(v, "Message deferred by policy"))
}

/// Trace for mail that was not stored (best effort: the reply does not depend on it).
async fn note(shared: &Shared, env: &Envelope, id: &str, event: &str, v: &Verdict, now: u64) {
    let e = event_of(shared, env, id, event, v, now);
    if let Err(err) = trace::emit(&shared.store, &[e]).await {
        tracing::warn!(error = %err, "trace event not written");
    }
}

async fn quarantine(
    shared: &Shared,
    env: &Envelope,
    id: &str,
    v: &Verdict,
    subject: &str,
    received: String,
    now: u64,
) -> Result<(), Reply> {
    let entry = quarantine::Entry {
        id: id.to_string(),
        node: shared.config.node.id.clone(),
        received_ms: now,
        sender: env.mail_from.clone(),
        recipients: env.rcpt_to.clone(),
        subject: subject.to_string(),
        size: env.body.len() as u64,
        reason: v.reason.clone(),
        rule_id: v.rule_id.clone(),
        status: quarantine::Status::Quarantined,
        status_ms: now,
        prepend: received,
    };
    let mut batch = Batch::new();
    Quarantine::stage(&mut batch, &entry, &env.body);
    trace::record(
        &mut batch,
        &event_of(shared, env, id, "quarantined", v, now),
    );
    commit(shared, batch).await?;
    shared.quarantine.added(&entry);
    bump(&shared.stats.quarantined);
    Ok(())
}

async fn relay(
    shared: &Shared,
    env: &Envelope,
    id: &str,
    v: &Verdict,
    subject: &str,
    received: String,
    now: u64,
) -> Result<(), Reply> {
    let tagged = v.action == Action::Tag;
    // Downstream trusts our Authentication-Results: none may come from outside.
    let message = auth_results::strip_forged(&env.body, shared.facts.hostname());
    let message = spam::header::strip_incoming(&message);
    let mut body = received.into_bytes();
    if tagged {
        body.extend_from_slice(verdict_header(v).as_bytes());
        body.extend_from_slice(&with_subject_prefix(&message, v.subject_prefix.as_deref()));
    } else {
        body.extend_from_slice(&message);
    }
    let entry = shared.relay.entry(
        id,
        &env.mail_from,
        &env.rcpt_to,
        subject,
        body.len() as u64,
        Origin::Inbound,
    );
    let mut batch = Batch::new();
    Relay::stage(&mut batch, &entry, Some(&body));
    let event = if tagged { "tagged" } else { "accepted" };
    trace::record(&mut batch, &event_of(shared, env, id, event, v, now));
    commit(shared, batch).await?;
    bump(if tagged {
        &shared.stats.tagged
    } else {
        &shared.stats.accepted
    });
    shared.relay.schedule(&entry);
    Ok(())
}

async fn commit(shared: &Shared, batch: Batch) -> Result<(), Reply> {
    shared.store.commit(batch).await.map_err(|e| {
        tracing::error!(error = %e, "message not stored; answering 451");
        Reply::tempfail_store()
    })
}

fn event_of(
    shared: &Shared,
    env: &Envelope,
    id: &str,
    event: &str,
    v: &Verdict,
    now: u64,
) -> TraceEvent {
    TraceEvent {
        time_ms: now,
        node: shared.config.node.id.clone(),
        message_id: id.to_string(),
        event: event.to_string(),
        sender: env.mail_from.clone(),
        recipients: env.rcpt_to.clone(),
        detail: match &v.rule_id {
            Some(r) => format!("rule {r}: {}", v.reason),
            None => v.reason.clone(),
        },
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

/// `Received:` trace header (RFC 5321 §4.4).
fn received_header(shared: &Shared, env: &Envelope, client: &Client, id: &str, now: u64) -> String {
    let with = match (env.esmtp, env.tls) {
        (true, true) => "ESMTPS",
        (true, false) => "ESMTP",
        (false, true) => "SMTPS",
        (false, false) => "SMTP",
    };
    let helo: String = env
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let for_clause = match env.rcpt_to.as_slice() {
        [one] => format!("\r\n\tfor <{one}>"),
        _ => String::new(),
    };
    format!(
        "Received: from {helo} ([{}])\r\n\tby {} (mxmesh) with {with} id {id}{for_clause};\r\n\t{}\r\n",
        client.ip,
        shared.config.smtp.hostname,
        rfc5322_date(now)
    )
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

/// Puts `prefix` in front of the first Subject header's value (adds one when absent).
fn with_subject_prefix(raw: &[u8], prefix: Option<&str>) -> Vec<u8> {
    let Some(prefix) = prefix.filter(|p| !p.is_empty()) else {
        return raw.to_vec();
    };
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(raw.len());
    let mut line_start = 0;
    while line_start < header_end {
        let line_end = raw[line_start..header_end]
            .iter()
            .position(|&c| c == b'\n')
            .map(|p| line_start + p + 1)
            .unwrap_or(header_end);
        let line = &raw[line_start..line_end];
        if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            let mut out = raw[..line_start + 8].to_vec();
            out.push(b' ');
            out.extend_from_slice(prefix.as_bytes());
            let rest = &raw[line_start + 8..];
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            if !rest.starts_with(b"\r\n") {
                out.push(b' ');
            }
            out.extend_from_slice(rest);
            return out;
        }
        line_start = line_end;
    }
    let mut out = format!("Subject: {prefix}\r\n").into_bytes();
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_prefix_goes_in_front() {
        let raw = b"From: a\r\nSubject: hello\r\n\r\nSubject: body\r\n";
        let out = with_subject_prefix(raw, Some("[SPAM]"));
        assert_eq!(
            out,
            b"From: a\r\nSubject: [SPAM] hello\r\n\r\nSubject: body\r\n".to_vec()
        );
        let out = with_subject_prefix(b"From: a\r\n\r\nx\r\n", Some("[SPAM]"));
        assert_eq!(out, b"Subject: [SPAM]\r\nFrom: a\r\n\r\nx\r\n".to_vec());
        assert_eq!(with_subject_prefix(raw, None), raw.to_vec());
    }
}
