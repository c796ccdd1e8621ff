//! The checks: one function per family, each reading [`MessageFacts`] and adding the
//! symbols that fire to [`Hits`]. Checks never know weights (the table and the settings
//! apply them) and never read the clock (`now_ms` is the message's time of arrival).

mod attachments;
mod auth;
mod body;
mod bulk;
mod client;
mod headers;
mod html;
mod lists;
mod mime;
mod ratware;
mod received;
mod reputation;
mod urls;

use crate::filter::MessageFacts;

pub use received::arrival_estimate_ms;

/// Bytes of one symbol's detail kept at most.
pub const DETAIL_BYTES_MAX: usize = 160;

/// What the checks see besides the facts.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// When the message arrived (ms since the Unix epoch): the reference for dates.
    pub now_ms: u64,
}

/// The symbols that fired, each once, with what made it fire.
#[derive(Debug, Default)]
pub struct Hits {
    found: Vec<(&'static str, String)>,
}

impl Hits {
    /// Records `name` with `detail` (cut to [`DETAIL_BYTES_MAX`]); a symbol already
    /// recorded keeps its first detail.
    pub fn add(&mut self, name: &'static str, detail: impl Into<String>) {
        if self.has(name) {
            return;
        }
        let mut detail: String = detail.into();
        if detail.len() > DETAIL_BYTES_MAX {
            let mut cut = DETAIL_BYTES_MAX;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        self.found.push((name, detail));
    }

    /// Whether `name` fired.
    pub fn has(&self, name: &str) -> bool {
        self.found.iter().any(|(n, _)| *n == name)
    }

    /// The symbols in the order they fired.
    pub fn into_vec(self) -> Vec<(&'static str, String)> {
        self.found
    }
}

/// Runs every family over `facts`.
pub fn run(facts: &MessageFacts, ctx: Context, hits: &mut Hits) {
    auth::check(facts, hits);
    reputation::check(facts, hits);
    headers::check(facts, ctx, hits);
    received::check(facts, hits);
    client::check(facts, hits);
    mime::check(facts, hits);
    html::check(facts, hits);
    urls::check(facts, hits);
    body::check(facts, hits);
    bulk::check(facts, hits);
    ratware::check(facts, hits);
    attachments::check(facts, hits);
    lists::check(facts, hits);
}

/// The values of header `name` (case-insensitive), in message order.
fn header_values<'a>(facts: &'a MessageFacts, name: &str) -> impl Iterator<Item = &'a str> {
    facts
        .headers
        .iter()
        .filter(move |(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Test helpers shared by the families' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::message::archive::ArchiveLimits;
    use crate::message::{self, EnvelopeFacts};

    /// 2024-01-10 12:00:00 UTC.
    pub const NOW_MS: u64 = 1_704_888_000_000;

    /// Facts of `raw` as the message parser makes them (`\n` becomes `\r\n`).
    pub fn facts_of(raw: &str) -> MessageFacts {
        let raw = raw.replace("\r\n", "\n").replace('\n', "\r\n");
        let env = EnvelopeFacts {
            from: "a@sender.test",
            to: &[],
            helo: "client.test",
            client_ip: "192.0.2.1".parse().expect("address"),
            reverse_name: None,
        };
        message::facts(raw.as_bytes(), &env, &ArchiveLimits::default())
    }

    /// The names `check` adds for `facts`.
    pub fn names(
        check: impl Fn(&MessageFacts, &mut Hits),
        facts: &MessageFacts,
    ) -> Vec<&'static str> {
        let mut hits = Hits::default();
        check(facts, &mut hits);
        hits.into_vec().into_iter().map(|(n, _)| n).collect()
    }

    /// A well-formed message with `extra` headers before the body `body`.
    pub fn clean_with(extra: &str, body: &str) -> String {
        format!(
            "Received: from mx.sender.test (mx.sender.test [192.0.2.1])\n\tby mx.example.com; Wed, 10 Jan 2024 11:59:00 +0000\n\
             Message-ID: <1234@sender.test>\nDate: Wed, 10 Jan 2024 11:58:00 +0000\n\
             From: Alice <alice@sender.test>\nTo: bob@example.com\nSubject: Lunch on Friday\n{extra}\n{body}"
        )
    }
}
