//! One message → its distinct 64-bit tokens.
//!
//! Features, in the order they are taken (the first [`TOKENS_PER_MESSAGE_MAX`] distinct ones
//! are kept), each `prefix:text` hashed as [`token_hash`] says:
//!
//! | prefix | feature | why |
//! |---|---|---|
//! | `fd` | registrable domain of the From address | the sender's claimed identity; recurring correspondents and brands |
//! | `fn` | words of the From display name | spam display names ("Online Pharmacy") differ from people's names |
//! | `xm` | first three words of `X-Mailer` / `User-Agent` | the sending program, chosen by the sender, not by the path |
//! | `ct`, `cs`, `cte` | MIME types, charsets (also of encoded-word subjects), transfer encodings of text parts | how the sender built the message |
//! | `s` | subject words, and `s:!` | the line every reader sees first |
//! | `w`, `skip` | body words, over-long words | the content |
//! | `u` | registrable domains of URL hosts, `u:ip`, `u:userinfo`, `u:port` | where the message sends the reader |
//! | `h` | HTML structure (see [`html`](super::html)), `h:only` for HTML without a text part | how the content is dressed |
//! | `at` | attachment types and file name extensions | what rides along |
//!
//! Words: runs of letters, digits, `'`, `-` and `$` (Graham's choice: `$20` and `don't`
//! are words), lowercased, 3 bytes to 20 characters; longer runs give `skip:<first
//! char><length in tens>` (SpamBayes' device for encoded junk); pure numbers are dropped.
//! Han and Kana, written without spaces, give character pairs instead. Pairs of
//! consecutive words (bigrams) were measured and dropped: on the SpamAssassin corpus they
//! doubled the tokens per message and lowered recall at every false-positive rate.
//!
//! Not tokenized, on purpose: `Received` and every other trace header (they describe the
//! path, so they teach the classifier where a corpus was collected), IP addresses,
//! Message-ID hosts, To/Cc addresses (per-recipient, and munged in public corpora), and
//! list-manager headers (`List-*`, `Precedence`, `X-Beenthere`, …), which say which list
//! carried a message rather than what it is. The Date is not used either (its era and zone
//! say when and where a corpus was gathered).

use mail_parser::{Message, MimeHeaders, PartType};

use super::hash::{HashSink, Kind, SequenceSink, Sink, TextSink};
use super::html::html_to_text;
use super::url::{registrable_domain, text_urls};

pub use super::hash::{TOKENS_PER_MESSAGE_MAX, token_hash};

/// Bytes of the raw message parsed for tokens at most: the first MiB decides.
pub const MESSAGE_SCAN_MAX_BYTES: usize = 1024 * 1024;

/// Decoded text (all body parts together) tokenized at most.
pub const TEXT_SCAN_MAX_BYTES: usize = 256 * 1024;

/// MIME parts looked at at most.
const PARTS_MAX: usize = 64;

/// Shortest word kept, in bytes (three ASCII letters, or one non-ASCII letter).
const WORD_MIN_BYTES: usize = 3;

/// Longest word kept, in characters; longer runs give a `skip` feature.
const WORD_MAX_CHARS: usize = 20;

/// Words of the mail program's name taken.
const MAILER_WORDS_MAX: usize = 3;

/// The distinct tokens of `raw` (a whole RFC 5322 message), sorted ascending, at most
/// [`TOKENS_PER_MESSAGE_MAX`]. Never fails: what cannot be parsed gives no tokens.
pub fn tokenize(raw: &[u8]) -> Vec<u64> {
    let mut sink = HashSink::new();
    extract(raw, &mut sink);
    sink.into_sorted()
}

/// The same features as [`tokenize`], readable (`prefix:text`), in document order: for
/// explaining a classification and for tests.
pub fn features(raw: &[u8]) -> Vec<String> {
    let mut sink = TextSink::new();
    extract(raw, &mut sink);
    sink.into_features()
}

/// Every feature [`features`] reads, in document order and with repeats (at most
/// [`SEQUENCE_FEATURES_MAX`](super::hash::SEQUENCE_FEATURES_MAX)): for evaluation programs
/// that study word sequences. Its first [`TOKENS_PER_MESSAGE_MAX`] distinct entries are
/// [`features`].
pub fn feature_sequence(raw: &[u8]) -> Vec<String> {
    let mut sink = SequenceSink::new();
    extract(raw, &mut sink);
    sink.into_features()
}

/// The tokens of `raw` as [`tokenize`] gives them, from `parsed`, the result of
/// [`super::parse`] on the whole of `raw` (the mail path parses each message once for the
/// facts and the classifier). A message longer than [`MESSAGE_SCAN_MAX_BYTES`] is parsed
/// again, cut there, as [`tokenize`] does.
pub fn tokenize_parsed(raw: &[u8], parsed: Option<&Message<'_>>) -> Vec<u64> {
    if raw.len() > MESSAGE_SCAN_MAX_BYTES {
        return tokenize(raw);
    }
    let mut sink = HashSink::new();
    if let Some(msg) = parsed {
        extract_parsed(msg, &mut sink);
    }
    sink.into_sorted()
}

/// A message's tokens as [`tokenize_parsed`] gives them, and apart (sorted, a subset of
/// them) those that are plain words of the body or subject: letters only, 3 characters or
/// more. [`super::classify::verdict`] measures how many of these the learned ham never had.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Every distinct token, sorted ascending (what [`tokenize`] returns).
    pub all: Vec<u64>,
    /// The plain-word tokens among `all`, sorted ascending.
    pub words: Vec<u64>,
}

/// [`tokenize_parsed`], with the plain words apart ([`Tokens`]).
pub fn tokenize_with_words(raw: &[u8], parsed: Option<&Message<'_>>) -> Tokens {
    let mut sink = HashSink::new();
    if raw.len() > MESSAGE_SCAN_MAX_BYTES {
        extract(raw, &mut sink);
    } else if let Some(msg) = parsed {
        extract_parsed(msg, &mut sink);
    }
    let (all, words) = sink.into_sorted_with_words();
    Tokens { all, words }
}

fn extract(raw: &[u8], sink: &mut impl Sink) {
    let raw = &raw[..raw.len().min(MESSAGE_SCAN_MAX_BYTES)];
    let Some(msg) = super::parser().parse(raw) else {
        return;
    };
    extract_parsed(&msg, sink);
}

fn extract_parsed(msg: &Message<'_>, sink: &mut impl Sink) {
    header_features(msg, sink);
    subject_features(msg, sink);
    body_features(msg, sink);
    attachment_features(msg, sink);
}

fn header_features(msg: &Message<'_>, sink: &mut impl Sink) {
    if let Some(from) = msg.from().and_then(|a| a.first()) {
        if let Some(name) = from.name.as_deref() {
            words(name, Kind::FromName, sink);
        }
        let domain = from.address.as_deref().and_then(|a| a.rsplit_once('@'));
        if let Some(domain) = domain.and_then(|(_, d)| registrable_domain(d)) {
            sink.push(Kind::FromDomain, &domain);
        }
    }
    let mailer = msg
        .header_raw("X-Mailer")
        .or_else(|| msg.header_raw("User-Agent"));
    if let Some(mailer) = mailer {
        mailer_words(mailer, sink);
    }
    for part in msg.parts.iter().take(PARTS_MAX) {
        if let Some(ct) = part.content_type() {
            let subtype = ct.subtype().unwrap_or_default();
            sink.push(
                Kind::ContentType,
                &format!("{}/{}", ct.ctype(), subtype).to_lowercase(),
            );
            if let Some(charset) = ct.attribute("charset") {
                sink.push(Kind::Charset, &charset.trim().to_lowercase());
            }
        }
        if matches!(part.body, PartType::Text(_) | PartType::Html(_))
            && let Some(cte) = part.content_transfer_encoding()
        {
            sink.push(Kind::Encoding, &cte.trim().to_lowercase());
        }
    }
}

fn mailer_words(mailer: &str, sink: &mut impl Sink) {
    let names = mailer
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.len() >= WORD_MIN_BYTES)
        .take(MAILER_WORDS_MAX);
    for name in names {
        sink.push(Kind::Mailer, &name.to_lowercase());
    }
}

fn subject_features(msg: &Message<'_>, sink: &mut impl Sink) {
    if let Some(raw) = msg.header_raw("Subject") {
        encoded_word_charsets(raw, sink);
    }
    if let Some(subject) = msg.subject() {
        if subject.contains('!') {
            sink.push(Kind::Subject, "!");
        }
        words(subject, Kind::Subject, sink);
    }
}

/// The charsets of RFC 2047 encoded words (`=?gb2312?B?…?=`) in a raw header value.
fn encoded_word_charsets(raw: &str, sink: &mut impl Sink) {
    for piece in raw.split("=?").skip(1).take(PARTS_MAX) {
        if let Some((charset, _)) = piece.split_once('?') {
            let charset = charset.split('*').next().unwrap_or_default();
            if !charset.is_empty() {
                sink.push(Kind::Charset, &charset.to_lowercase());
            }
        }
    }
}

fn body_features(msg: &Message<'_>, sink: &mut impl Sink) {
    let mut ids: Vec<u32> = msg
        .text_body
        .iter()
        .chain(&msg.html_body)
        .copied()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let has_plain = msg.text_body.iter().any(|&id| {
        matches!(
            msg.parts.get(id as usize).map(|p| &p.body),
            Some(PartType::Text(_))
        )
    });
    if !msg.html_body.is_empty() && !has_plain {
        sink.push(Kind::Html, "only");
    }
    let mut budget = TEXT_SCAN_MAX_BYTES;
    for id in ids.into_iter().take(PARTS_MAX) {
        if budget == 0 || sink.full() {
            return;
        }
        match msg.parts.get(id as usize).map(|p| &p.body) {
            Some(PartType::Text(text)) if !looks_like_html(text) => {
                let text = super::hash::truncate(text, budget);
                budget -= text.len();
                text_urls(text, sink);
                words(text, Kind::Word, sink);
            }
            Some(PartType::Text(html) | PartType::Html(html)) => {
                let html = super::hash::truncate(html, budget);
                budget -= html.len();
                let text = html_to_text(html, sink);
                text_urls(&text, sink);
                words(&text, Kind::Word, sink);
            }
            _ => {}
        }
    }
}

/// Tags that make a "plain text" part HTML in disguise (a missing or wrong Content-Type,
/// common in bulk mail): its markup must not be read as words.
const HTML_TELLTALES: &[&[u8]] = &[
    b"<html", b"<body", b"<br", b"<p>", b"<font", b"<a href", b"<table", b"<div", b"<img",
];

/// Bytes of a text part searched for [`HTML_TELLTALES`].
const HTML_SNIFF_MAX_BYTES: usize = 64 * 1024;

fn looks_like_html(text: &str) -> bool {
    let bytes = &text.as_bytes()[..text.len().min(HTML_SNIFF_MAX_BYTES)];
    // Only a '<' can start a telltale: memchr skips the rest.
    memchr::memchr_iter(b'<', bytes).any(|i| {
        HTML_TELLTALES.iter().any(|t| {
            bytes
                .get(i..i + t.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(t))
        })
    })
}

fn attachment_features(msg: &Message<'_>, sink: &mut impl Sink) {
    for part in msg.attachments().take(PARTS_MAX) {
        if let Some(ct) = part.content_type() {
            let subtype = ct.subtype().unwrap_or_default();
            sink.push(
                Kind::Attachment,
                &format!("{}/{}", ct.ctype(), subtype).to_lowercase(),
            );
        }
        let ext = part
            .attachment_name()
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, ext)| ext.trim().to_lowercase());
        if let Some(ext) = ext.filter(|e| !e.is_empty() && e.len() <= 10) {
            sink.push(Kind::Attachment, &format!(".{ext}"));
        }
    }
}

/// Characters that belong to a word.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '\'' | '-' | '$')
}

/// Han ideographs and Kana: scripts written without spaces between words.
fn is_unspaced_script(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// Splits `text` into words and gives them to `sink` as `kind`.
fn words(text: &str, kind: Kind, sink: &mut impl Sink) {
    let mut w = WordState::default();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '\'' | '-' | '$') {
            w.prev_unspaced = None;
            w.add(c);
            continue;
        }
        if is_unspaced_script(c) {
            w.flush(kind, sink);
            if let Some(prev) = w.prev_unspaced {
                let pair: String = [prev, c].into_iter().collect();
                sink.push(kind, &pair);
            }
            w.prev_unspaced = Some(c);
        } else if is_word_char(c) {
            w.prev_unspaced = None;
            w.add(c);
        } else {
            w.prev_unspaced = None;
            w.flush(kind, sink);
        }
        if sink.full() {
            return;
        }
    }
    w.flush(kind, sink);
}

#[derive(Default)]
struct WordState {
    /// The word being read, lowercased, at most `WORD_MAX_CHARS + 1` characters.
    word: String,
    /// Its length in characters (also past what `word` holds).
    chars: usize,
    /// The first character of the word.
    first: Option<char>,
    /// The previous Han/Kana character, for character pairs.
    prev_unspaced: Option<char>,
}

impl WordState {
    fn add(&mut self, c: char) {
        if self.chars == 0 {
            self.first = Some(c);
        }
        self.chars += 1;
        if self.chars <= WORD_MAX_CHARS + 1 {
            if c.is_ascii() {
                self.word.push(c.to_ascii_lowercase());
            } else {
                self.word.extend(c.to_lowercase());
            }
        }
    }

    fn flush(&mut self, kind: Kind, sink: &mut impl Sink) {
        if self.chars == 0 {
            return;
        }
        let chars = self.chars;
        self.chars = 0;
        if chars > WORD_MAX_CHARS {
            let first = self.first.map(|c| c.to_lowercase().to_string());
            let skip = format!("{}{}", first.unwrap_or_default(), chars / 10 * 10);
            sink.push(Kind::Skip, &skip);
            self.word.clear();
            return;
        }
        let buf = std::mem::take(&mut self.word);
        let word = buf.trim_matches(|c| c == '-' || c == '\'');
        let numeric = word
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'\'');
        if word.len() >= WORD_MIN_BYTES && !numeric {
            sink.push(kind, word);
        }
        self.word = buf;
        self.word.clear();
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
