//! The bodies of the fuzz targets, as plain functions of `&[u8]`.
//!
//! The libFuzzer binaries in `fuzz/fuzz_targets/` call these, and so does the workspace test
//! `node/tests/fuzz_corpus.rs` (which includes this file by path), so CI replays the committed
//! corpus and a bounded number of mutated inputs through exactly the code libFuzzer runs.
//! Every function panics (an assertion) when an invariant breaks; returning means "fine".

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use mxmesh_crdt::qindex::{EntryStatus, IndexDelta, IndexEntry, IndexQuery, QuarantineIndex};
use mxmesh_crdt::rule::Rule;
use mxmesh_crdt::rulebook::{Author, RuleBook, SyncSession};
use mxmesh_node::cluster::{index::decode_version_vector, rpc};
use mxmesh_node::filter::{MessageFacts, RuleSet};
use mxmesh_node::mesh::{MessageKind, frame, gossip};
use mxmesh_node::message::archive::ArchiveLimits;
use mxmesh_node::message::{
    self, ATTACHMENTS_MAX, BODY_TEXT_MAX_BYTES, EnvelopeFacts, HEADERS_MAX,
};
use mxmesh_node::smtp::data::{DataError, DataLimits, DataReceiver, Ingest};
use mxmesh_node::smtp::{Event, Protocol, ProtocolConfig, Reply, SmtpLimits};

/// A target body.
pub type Target = fn(&[u8]);

/// The targets by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("smtp_commands", smtp_commands),
    ("data_framer", data_framer),
    ("message_pipeline", message_pipeline),
    ("rule_json", rule_json),
    ("mesh_decoders", mesh_decoders),
];

/// Splits `data` into a control byte and the rest (0 when empty).
fn control(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (first, rest),
        None => (0, data),
    }
}

/// Cuts `input` into chunks whose sizes cycle through a pattern picked by `seed`, so the
/// same bytes arrive in different read sizes (1 byte, odd sizes, all at once).
fn chunks(input: &[u8], seed: u8) -> Vec<&[u8]> {
    const PATTERNS: [&[usize]; 8] = [
        &[usize::MAX],
        &[1],
        &[2, 3],
        &[7, 1, 13],
        &[64],
        &[5, 512],
        &[3, 4096],
        &[1, 1, 1, 100],
    ];
    let pattern = PATTERNS[usize::from(seed) % PATTERNS.len()];
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = pattern[i % pattern.len()].min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

/// A stored body is CRLF-only: no bare CR, no bare LF, and it ends with CRLF unless empty.
fn assert_crlf_only(body: &[u8]) {
    for (i, &byte) in body.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(body.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => assert!(i > 0 && body[i - 1] == b'\r', "bare LF at {i}"),
            _ => {}
        }
    }
    assert!(
        body.is_empty() || body.ends_with(b"\r\n"),
        "body without final CRLF"
    );
}

// ---------------------------------------------------------------------------------------
// smtp_commands

/// Small limits, so the fuzzer reaches every bound quickly; picked by the control byte.
fn smtp_config(control: u8) -> ProtocolConfig {
    let limits = SmtpLimits {
        command_line_max_bytes: [64, 512, 4096][usize::from(control & 3) % 3],
        text_line_max_bytes: [80, 1000][usize::from(control >> 2 & 1)],
        message_size_max_bytes: [300, 64 * 1024][usize::from(control >> 3 & 1)],
        recipients_max: [3, 100][usize::from(control >> 4 & 1)],
        errors_max: [3, 20][usize::from(control >> 5 & 1)],
    };
    ProtocolConfig {
        hostname: "mx.fuzz.test".into(),
        limits,
        accepted_domains: vec!["example.org".into(), "fuzz.test".into()],
        accept_any_domain: false,
        starttls_available: control & 0x40 != 0,
        // Recipient checks share the STARTTLS bit: both shapes of RCPT get fuzzed.
        check_recipients: control & 0x40 != 0,
        // The submission shape: AUTH after TLS, required before MAIL.
        submission: control & 0x80 != 0,
    }
}

/// The whole SMTP state machine over arbitrary client bytes, in varying read sizes:
/// STARTTLS is completed, every message gets a 250 (or a 550 when bit 7 is set). Checks
/// that memory stays within the limits, that every message is valid (recipients accepted
/// and bounded, CRLF-only body within the size limit) and that a closed session stays closed.
pub fn smtp_commands(data: &[u8]) {
    let (ctl, rest) = control(data);
    let (split, input) = control(rest);
    let config = Arc::new(smtp_config(ctl));
    let limits = config.limits.clone();
    let memory_bound = limits.command_line_max_bytes
        + limits.pending_max_bytes()
        + usize::try_from(limits.message_size_max_bytes).unwrap_or(usize::MAX);
    let mut protocol = Protocol::new(config.clone());
    let _ = protocol.greeting();
    let mut queue: Vec<Event> = Vec::new();
    let mut closed = false;
    for chunk in chunks(input, split) {
        if closed {
            assert!(protocol.feed(chunk).is_empty(), "events after close");
            continue;
        }
        queue.extend(protocol.feed(chunk));
        while !queue.is_empty() {
            let events = std::mem::take(&mut queue);
            for event in events {
                match event {
                    Event::Reply(reply) => {
                        let _ = reply.to_string();
                    }
                    Event::StartTls => protocol.tls_established(),
                    Event::Message(envelope) => {
                        assert!(!envelope.rcpt_to.is_empty(), "message without recipients");
                        assert!(envelope.rcpt_to.len() <= limits.recipients_max);
                        for rcpt in &envelope.rcpt_to {
                            let domain = rcpt.rsplit('@').next().unwrap_or_default();
                            let domain = domain.to_ascii_lowercase();
                            assert!(
                                envelope.outbound || config.accepted_domains.contains(&domain),
                                "recipient {rcpt:?} outside the accepted domains"
                            );
                        }
                        assert!(envelope.body.len() as u64 <= limits.message_size_max_bytes);
                        assert_crlf_only(&envelope.body);
                        assert!(!envelope.body.contains(&0), "a message with a NUL byte");
                        let reply = if ctl & 0x80 != 0 {
                            Reply::new(550, Some("5.7.1"), "Rejected")
                        } else {
                            Reply::new(250, Some("2.0.0"), "Ok")
                        };
                        queue.extend(protocol.message_done(reply));
                    }
                    Event::CheckRcpt(check) => {
                        assert!(config.check_recipients, "a check while checks are off");
                        // Refuse every other recipient (by length) to fuzz both answers.
                        let refusal = (check.rcpt.len() % 2 == 1)
                            .then(|| Reply::new(550, Some("5.1.1"), "Unknown"));
                        queue.extend(protocol.rcpt_checked(refusal));
                    }
                    Event::Auth(credentials) => {
                        assert!(config.submission, "AUTH outside the submission port");
                        // One user name passes, so authenticated sessions get fuzzed too.
                        let refusal = (credentials.user != "fuzz").then(Reply::auth_failed);
                        queue.extend(protocol.auth_checked(refusal));
                    }
                    Event::Close => {
                        assert!(protocol.is_closed(), "Close event on an open session");
                        closed = true;
                    }
                }
            }
        }
        assert!(
            protocol.buffered_bytes() <= memory_bound,
            "{} bytes buffered, bound {memory_bound}",
            protocol.buffered_bytes()
        );
        assert_eq!(closed, protocol.is_closed(), "closed without a Close event");
    }
}

// ---------------------------------------------------------------------------------------
// data_framer

/// Result of framing one input: bytes consumed (if the terminator was seen) and the body.
type Framed = (Option<usize>, Result<Vec<u8>, DataError>);

fn frame_data(input: &[u8], limits: DataLimits, split: u8) -> Framed {
    let mut receiver = DataReceiver::new(limits);
    let mut offset = 0;
    for chunk in chunks(input, split) {
        match receiver.ingest(chunk) {
            Ingest::NeedMore => offset += chunk.len(),
            Ingest::Done { consumed } => {
                assert!(consumed <= chunk.len() && consumed > 0);
                return (Some(offset + consumed), receiver.finish());
            }
        }
        assert!(receiver.buffered_bytes() <= limits.body_max_bytes);
    }
    (None, receiver.finish())
}

/// Dot-stuffs a CRLF-only body and appends the terminator: what a relay would send.
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The DATA receiver: the same bytes in different read sizes give the same result; only
/// `<CRLF>.<CRLF>` (or `.<CRLF>` at the start) ends the data; the body is CRLF-only and
/// within the limit; and a body dot-stuffed again reads back unchanged.
pub fn data_framer(data: &[u8]) {
    let (ctl, rest) = control(data);
    let (split, input) = control(rest);
    let limits = DataLimits {
        body_max_bytes: [64, 1000, 1 << 20][usize::from(ctl & 3) % 3],
        line_max_bytes: [16, 1000, usize::MAX][usize::from(ctl >> 2 & 3) % 3],
    };
    let whole = frame_data(input, limits, 0);
    let split_result = frame_data(input, limits, split);
    assert_eq!(whole, split_result, "result depends on read sizes");
    let (consumed, body) = whole;
    if let Some(consumed) = consumed {
        let data = &input[..consumed];
        assert!(
            data == b".\r\n" || data.ends_with(b"\r\n.\r\n"),
            "data ended without <CRLF>.<CRLF>"
        );
    }
    if let (Some(_), Ok(body)) = (consumed, body) {
        assert!(body.len() <= limits.body_max_bytes);
        assert_crlf_only(&body);
        let again = stuff(&body);
        let wide = DataLimits {
            body_max_bytes: usize::MAX,
            line_max_bytes: usize::MAX,
        };
        let (end, round_trip) = frame_data(&again, wide, split);
        assert_eq!(
            end,
            Some(again.len()),
            "re-stuffed body ended early or never"
        );
        assert_eq!(
            round_trip,
            Ok(body),
            "re-stuffed body reads back differently"
        );
    }
}

// ---------------------------------------------------------------------------------------
// message_pipeline

/// A fixed rule set touching every kind of field and op.
pub fn pipeline_rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let rules = serde_json::json!([
            { "id": "r1", "name": "pharma", "priority": 10, "action": "quarantine",
              "when": { "all": [
                { "field": "subject", "op": "contains", "value": "viagra" },
                { "not": { "field": "from", "op": "equals", "value": "boss@example.org" } }
              ] } },
            { "id": "r2", "name": "exe", "priority": 20, "action": "reject",
              "when": { "any": [
                { "field": "attachment.ext", "op": "in", "value": ["exe", "js", "scr"] },
                { "field": "attachment.type", "op": "regex", "value": "^application/x-(ms)?dos" }
              ] } },
            { "id": "r3", "name": "header", "priority": 30, "action": "tag",
              "subject_prefix": "[SPAM]",
              "when": { "field": "header:X-Spam-Flag", "op": "equals", "value": "YES" } },
            { "id": "r4", "name": "net", "priority": 40, "action": "tempfail",
              "when": { "all": [
                { "field": "client_ip", "op": "in_cidr", "value": "192.0.2.0/24" },
                { "field": "size", "op": "gt", "value": 100 }
              ] } },
            { "id": "r5", "name": "body", "priority": 50, "action": "quarantine",
              "when": { "field": "body", "op": "regex", "value": "(?i)wire\\s+transfer" } },
            { "id": "r6", "name": "helo", "priority": 60, "action": "accept",
              "when": { "field": "helo", "op": "exists" } }
        ]);
        let rules: Vec<Rule> = rules
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| Rule::from_json(rule).expect("pipeline rule"))
            .collect();
        let set = RuleSet::compile(&rules);
        assert!(set.skipped().is_empty() && set.len() == 6);
        set
    })
}

/// The message of mail-parser 0.11.9's `debug_assert!` that malformed nested MIME trips and
/// its release build recovers from (found by this target; see RELIABILITY.md). The workspace
/// turns mail-parser's debug assertions off; libFuzzer builds cannot (cargo-fuzz puts
/// `-Cdebug-assertions` in RUSTFLAGS for every crate), so this one assertion is tolerated.
const MAIL_PARSER_KNOWN_ASSERT: &str = "Invalid part ID, could not find multipart.";

fn is_known_mail_parser_assert(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    text == Some(MAIL_PARSER_KNOWN_ASSERT)
}

/// Runs `f`; the known mail-parser assertion gives `None` (quietly: the panic hook in front
/// of libFuzzer's, which aborts, lets exactly that one through). Any other panic goes on.
fn tolerating_known_mail_parser_assert<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = info
                .location()
                .is_some_and(|l| l.file().contains("mail-parser"));
            if !(in_mail_parser && is_known_mail_parser_assert(info.payload())) {
                previous(info);
            }
        }));
    });
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) if is_known_mail_parser_assert(payload.as_ref()) => None,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Raw message → facts (bounded) → verdict against [`pipeline_rules`], deterministic.
pub fn message_pipeline(data: &[u8]) {
    let to = vec!["user@example.org".to_string()];
    let env = EnvelopeFacts {
        from: "sender@example.net",
        to: &to,
        helo: "client.example.net",
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        reverse_name: None,
    };
    let Some(facts) = tolerating_known_mail_parser_assert(|| {
        message::facts(data, &env, &ArchiveLimits::default())
    }) else {
        return;
    };
    assert!(facts.headers.len() <= HEADERS_MAX);
    assert!(facts.body_text.len() <= BODY_TEXT_MAX_BYTES);
    assert!(facts.attachments.len() <= ATTACHMENTS_MAX);
    assert_eq!(facts.size, data.len() as u64);
    let rules = pipeline_rules();
    let verdict = rules.evaluate(&facts);
    assert_eq!(verdict, rules.evaluate(&facts), "verdict not deterministic");
    let _ = tolerating_known_mail_parser_assert(|| message::subject(data));
}

// ---------------------------------------------------------------------------------------
// rule_json

/// Rule JSON → validated rule; a valid rule round-trips through its canonical JSON and
/// through a rule book unchanged, and compiles (validation and compilation agree).
pub fn rule_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(rule) = Rule::from_json(&value) else {
        return;
    };
    let canonical = rule.to_json();
    let again = Rule::from_json(&canonical).expect("canonical JSON of a valid rule refused");
    assert_eq!(again, rule, "canonical JSON does not round-trip");
    assert!(rule.validate().is_ok());
    let set = RuleSet::compile(std::slice::from_ref(&rule));
    assert!(
        set.skipped().is_empty(),
        "a validated rule does not compile: {:?}",
        set.skipped()
    );
    let _ = set.evaluate(&MessageFacts::default());
    let mut book = RuleBook::new();
    let author = Author {
        node: "fuzz".into(),
        admin: "fuzz".into(),
    };
    let stored = book
        .create(rule.clone(), &author, 1)
        .expect("rule book refused a valid rule");
    assert_eq!(
        book.get(&stored.id),
        Some(stored.clone()),
        "rule book changed the rule"
    );
    let mut expected = rule;
    expected.id = stored.id.clone();
    assert_eq!(stored, expected);
}

// ---------------------------------------------------------------------------------------
// mesh_decoders

/// Author of the scratch rule book's changes.
fn author() -> Author {
    Author {
        node: "mx-local".into(),
        admin: "fuzz".into(),
    }
}

/// A rule book with two rules, as a node's would be.
pub fn scratch_rule_book() -> RuleBook {
    let mut book = RuleBook::new().with_actor(b"mx-local");
    for (id, subject) in [("local-1", "offer"), ("local-2", "invoice")] {
        let rule = Rule::from_json(&serde_json::json!({
            "id": id, "name": id, "action": "quarantine",
            "when": { "field": "subject", "op": "contains", "value": subject }
        }))
        .expect("scratch rule");
        book.create(rule, &author(), 1_000)
            .expect("scratch rule stored");
    }
    book
}

/// An index holding entries of this node and of a peer, as a node's would be.
pub fn scratch_index() -> QuarantineIndex {
    let entry = |node: &str, id: &str| IndexEntry {
        id: id.into(),
        node: node.into(),
        received_ms: 1_000,
        sender: "s@example.net".into(),
        recipients: vec!["r@example.org".into()],
        subject: "subject".into(),
        size: 100,
        reason: "spam".into(),
        rule_id: Some("r1".into()),
        score: None,
        symbols: Default::default(),
        status: EntryStatus::Quarantined,
        status_ms: 1_000,
        pending: None,
        seq: 0,
        copies: Vec::new(),
        adopted_from: None,
        recipients_released: Vec::new(),
        recipients_deleted: Vec::new(),
    };
    let mut index = QuarantineIndex::new();
    index
        .upsert_own("mx-local", entry("mx-local", "01LOCAL0000000000000000001"))
        .expect("own");
    let mut peer = QuarantineIndex::new();
    peer.upsert_own("mx-peer", entry("mx-peer", "01PEER00000000000000000001"))
        .expect("peer");
    index.merge(&peer).expect("merge");
    index
}

/// Every decoder a mesh peer's bytes reach, picked by the control byte: the frame codec,
/// the gossip frame, an RPC request, an index sync version vector, an index delta applied to
/// a scratch index, an automerge sync message applied to a scratch rule book.
pub fn mesh_decoders(data: &[u8]) {
    let (ctl, body) = control(data);
    match ctl % 6 {
        0 => mesh_frame(body),
        1 => mesh_gossip(body),
        2 => {
            let _ = rpc::decode_request(body);
        }
        3 => mesh_version_vector(body),
        4 => mesh_index_delta(body),
        _ => mesh_rules_sync(body),
    }
}

fn mesh_frame(buf: &[u8]) {
    if let Ok(frame::Decoded::Frame { frame, used }) = frame::decode(buf) {
        assert!(used <= buf.len() && frame.body.len() <= frame::FRAME_BODY_BYTES_MAX);
        let wire = frame::encode(frame.header, &frame.body).expect("re-encode");
        assert_eq!(
            &wire[..],
            &buf[..used],
            "frame does not re-encode to its bytes"
        );
        let _ = frame.header.check_request();
        if frame.header.is_error() {
            let error = frame::decode_error(&frame.body);
            assert!(error.message.len() <= 3 * frame::ERROR_MESSAGE_BYTES_MAX);
        }
    }
    let _ = frame::decode_exact(buf);
    let _ = MessageKind(u16::from_be_bytes([buf.first().copied().unwrap_or(0), 0])).is_known();
}

fn mesh_gossip(body: &[u8]) {
    if let Some((id, rest)) = gossip::unframe(body) {
        assert_eq!(
            &gossip::frame(id, rest)[..],
            body,
            "gossip frame does not round-trip"
        );
    }
}

fn mesh_version_vector(body: &[u8]) {
    if let Ok(theirs) = decode_version_vector(body) {
        let index = scratch_index();
        let delta = index.delta_since(&theirs, 10);
        // What we answer is well-formed: we accept it ourselves, and it changes nothing.
        let mut copy = index.clone();
        let report = copy
            .apply(delta)
            .expect("our own delta refused by ourselves");
        assert!(
            !report.changed() && copy == index,
            "our own delta changed our index"
        );
    }
}

fn mesh_index_delta(body: &[u8]) {
    let Ok(delta) = serde_json::from_slice::<IndexDelta>(body) else {
        return;
    };
    let mut index = scratch_index();
    let before = index.clone();
    match index.apply(delta.clone()) {
        Err(_) => assert_eq!(index, before, "a refused delta changed the index"),
        Ok(_) => {
            // Idempotent: the same delta again changes nothing.
            let again = index
                .apply(delta)
                .expect("a delta accepted once is refused twice");
            assert!(
                !again.changed(),
                "applying a delta twice changed the index twice"
            );
            let _ = index.search(&IndexQuery::default());
            let _ = index.delta_since(&BTreeMap::new(), 100);
        }
    }
}

fn mesh_rules_sync(body: &[u8]) {
    let mut book = scratch_rule_book();
    let mut session = SyncSession::new();
    // A node generates first, as the client side does.
    let _ = session.generate(&book);
    if session.receive(&mut book, body).is_err() {
        session.reset();
    }
    let rules = book.list();
    for rule in &rules {
        assert!(rule.validate().is_ok(), "rule book lists an invalid rule");
    }
    let set = RuleSet::compile(&rules);
    assert!(
        set.skipped().is_empty(),
        "synced rule does not compile: {:?}",
        set.skipped()
    );
    let _ = book.digest();
    let _ = book.history();
    let _ = session.generate(&book);
}

/// Sync messages a peer would send to [`scratch_rule_book`]'s node after its first
/// message: edits of a fork (update, create, delete) and a book with its own history.
/// Each starts with the `mesh_decoders` control byte for the rules sync decoder.
pub fn rules_sync_seeds() -> Vec<Vec<u8>> {
    let peer_author = Author {
        node: "mx-peer".into(),
        admin: "fuzz".into(),
    };
    let rule = |id: &str, field: &str, value: &str, action: &str| {
        Rule::from_json(&serde_json::json!({
            "id": id, "name": format!("peer {id}"), "action": action, "priority": 7,
            "reason": "from the peer",
            "when": { "any": [
                { "field": field, "op": "contains", "value": value },
                { "field": "client_ip", "op": "in_cidr", "value": "198.51.100.0/24" }
            ] }
        }))
        .expect("seed rule")
    };
    let mut fork = scratch_rule_book().fork().with_actor(b"mx-peer");
    fork.update(
        "local-1",
        rule("local-1", "subject", "changed", "reject"),
        &peer_author,
        2_000,
    )
    .expect("update");
    fork.create(
        rule("peer-1", "body", "lottery", "tag"),
        &peer_author,
        2_001,
    )
    .expect("create");
    fork.delete("local-2", &peer_author, 2_002).expect("delete");
    let mut own = RuleBook::new().with_actor(b"mx-other");
    own.create(
        rule("other-1", "header:X-Foo", "bar", "quarantine"),
        &peer_author,
        3_000,
    )
    .expect("create");
    let mut seeds = Vec::new();
    for mut peer in [fork, own] {
        let mut local = scratch_rule_book();
        let mut local_session = SyncSession::new();
        let mut peer_session = SyncSession::new();
        let first = local_session.generate(&local).expect("first message");
        peer_session
            .receive(&mut peer, &first)
            .expect("peer receives");
        if let Some(answer) = peer_session.generate(&peer) {
            let mut seed = vec![5u8];
            seed.extend_from_slice(&answer);
            seeds.push(seed);
            local_session
                .receive(&mut local, &answer)
                .expect("local receives");
        }
    }
    seeds
}
