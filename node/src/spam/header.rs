//! The headers relayed mail carries about its score: `X-Spam-Score`, `X-Spam-Symbols`
//! (every symbol with its weight, one header folded at [`LINE_LEN_MAX`]) and
//! `X-Spam-Flag: YES` when tagged. Headers of these names that came with the message are
//! removed first, so downstream sees only ours.

use std::borrow::Cow;

use super::Score;
use crate::message::auth_results::strip_fields;

/// The score header.
pub const SCORE_HEADER: &str = "X-Spam-Score";
/// The symbols header.
pub const SYMBOLS_HEADER: &str = "X-Spam-Symbols";
/// The flag header of tagged mail.
pub const FLAG_HEADER: &str = "X-Spam-Flag";
/// Folding width of `X-Spam-Symbols` (RFC 5322 §2.1.1 recommends 78).
pub const LINE_LEN_MAX: usize = 78;

/// The `X-Spam-*` header lines (CRLF-terminated) for `score`; `tagged` adds the flag.
/// Symbols are listed by weight, highest first, then by name.
pub fn render(score: &Score, tagged: bool) -> String {
    let mut out = String::new();
    if tagged {
        out.push_str(&format!("{FLAG_HEADER}: YES\r\n"));
    }
    out.push_str(&format!("{SCORE_HEADER}: {:.2}\r\n", score.total));
    let items: Vec<String> = score
        .by_weight()
        .iter()
        .map(|s| format!("{}({:.2})", s.name, s.weight))
        .collect();
    out.push_str(&fold(SYMBOLS_HEADER, &items));
    out
}

/// `NAME: a, b, c` folded before an item that would pass [`LINE_LEN_MAX`].
fn fold(name: &str, items: &[String]) -> String {
    let mut out = format!("{name}:");
    let mut line_len = out.len();
    for (index, item) in items.iter().enumerate() {
        let piece = if index + 1 < items.len() {
            format!("{item},")
        } else {
            item.clone()
        };
        if line_len + 1 + piece.len() > LINE_LEN_MAX && index > 0 {
            out.push_str("\r\n\t");
            line_len = 1;
        } else {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(&piece);
        line_len += piece.len();
    }
    out.push_str("\r\n");
    out
}

/// `raw` without `X-Spam-Score`, `X-Spam-Symbols` and `X-Spam-Flag` header fields.
pub fn strip_incoming(raw: &[u8]) -> Cow<'_, [u8]> {
    strip_fields(raw, |field| {
        let name = field.split(|&c| c == b':').next().unwrap_or_default();
        [SCORE_HEADER, SYMBOLS_HEADER, FLAG_HEADER]
            .iter()
            .any(|ours| name.trim_ascii().eq_ignore_ascii_case(ours.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::Symbol;
    use super::*;

    #[test]
    fn headers_list_every_symbol_folded() {
        let names = [
            "MISSING_MESSAGE_ID",
            "DATE_IN_PAST",
            "HTML_LINK_TEXT_MISMATCH",
            "URL_IP_ADDRESS",
            "SUBJECT_ALL_CAPS",
            "SPF_PASS",
        ];
        let weights = [1.0, 1.0, 2.5, 1.5, 1.5, -0.2];
        let score = Score {
            total: 7.3,
            symbols: names
                .iter()
                .zip(weights)
                .map(|(name, weight)| Symbol {
                    name,
                    weight,
                    detail: String::new(),
                })
                .collect(),
        };
        let text = render(&score, true);
        assert!(text.starts_with("X-Spam-Flag: YES\r\nX-Spam-Score: 7.30\r\nX-Spam-Symbols: HTML_LINK_TEXT_MISMATCH(2.50), SUBJECT_ALL_CAPS(1.50),"), "{text}");
        for line in text.split("\r\n") {
            assert!(line.len() <= LINE_LEN_MAX, "{line:?}");
        }
        let unfolded = text.replace("\r\n\t", " ");
        let symbols_line = unfolded
            .lines()
            .find(|l| l.starts_with("X-Spam-Symbols"))
            .unwrap();
        for name in names {
            assert!(symbols_line.contains(name), "{name}");
        }
        assert!(symbols_line.ends_with("SPF_PASS(-0.20)"));
        assert!(!render(&Score::default(), false).contains("Flag"));
        assert_eq!(
            render(&Score::default(), false),
            "X-Spam-Score: 0.00\r\nX-Spam-Symbols:\r\n"
        );
    }

    #[test]
    fn incoming_spam_headers_are_removed() {
        let raw = b"X-Spam-Flag: NO\r\nSubject: hi\r\nx-spam-score: -50\r\nX-Spam-Symbols: A,\r\n\tB\r\n\r\nX-Spam-Flag: body\r\n";
        assert_eq!(
            strip_incoming(raw).as_ref(),
            b"Subject: hi\r\n\r\nX-Spam-Flag: body\r\n"
        );
    }
}
