//! HTML → the text a reader sees, plus a few structural features.
//!
//! A single forward scan, no DOM: tags are dropped (block tags become a space, inline
//! ones like `<b>` or `<font>` do not, so `V<b>ia</b>gra` reads `Viagra`), comments are
//! dropped without a space (the classic `V<!-- x -->iagra` trick, which also gives
//! `h:comment-split`), `<script>`/`<style>` contents are skipped, and character references
//! (`&amp;`, `&#118;`, `&#x76;`) are decoded. URLs in `href`, `src` and `action` give
//! [`url`](super::url) features. Structural features (`h:` prefix) name what a reader does
//! not see but a sender chose: images, forms, tables, fonts, scripts, frames, hidden text
//! (`display:none`, `visibility:hidden`, zero font size), words spelled with numeric
//! character references, and comments splitting a word.

use super::hash::{Kind, Sink};
use super::url::url_features;

/// Bytes of one tag scanned at most; a longer "tag" ends there.
const TAG_MAX_BYTES: usize = 4096;

/// Bytes of a character reference at most (`&#x10FFFF;`, `&thetasym;`).
const ENTITY_MAX_BYTES: usize = 10;

/// Tags whose presence is a feature.
const STRUCTURAL_TAGS: &[&str] = &[
    "img", "form", "input", "table", "font", "script", "iframe", "frame", "object", "embed", "map",
    "area", "base", "meta", "marquee", "blink", "center", "style",
];

/// Tags that do not separate words.
const INLINE_TAGS: &[&str] = &[
    "a", "abbr", "b", "big", "em", "font", "i", "s", "small", "span", "strike", "strong", "sub",
    "sup", "tt", "u",
];

/// Named references decoded (the common ones; others stay literal text).
const NAMED_ENTITIES: &[(&str, char)] = &[
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("copy", '©'),
    ("reg", '®'),
    ("trade", '™'),
    ("euro", '€'),
    ("pound", '£'),
    ("yen", '¥'),
    ("cent", '¢'),
    ("middot", '·'),
    ("bull", '•'),
    ("hellip", '…'),
    ("mdash", '—'),
    ("ndash", '–'),
    ("laquo", '«'),
    ("raquo", '»'),
    ("eacute", 'é'),
    ("egrave", 'è'),
    ("agrave", 'à'),
    ("aacute", 'á'),
    ("ccedil", 'ç'),
    ("uuml", 'ü'),
    ("ouml", 'ö'),
    ("auml", 'ä'),
    ("szlig", 'ß'),
];

/// The visible text of `html`; structural and URL features go to `sink`.
pub(crate) fn html_to_text(html: &str, sink: &mut impl Sink) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let bytes = html.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        match bytes[pos] {
            b'<' => pos = markup(html, pos, &mut out, sink),
            b'&' => pos = entity(html, pos, &mut out, sink),
            _ => {
                let end = bytes[pos..]
                    .iter()
                    .position(|&b| b == b'<' || b == b'&')
                    .map_or(bytes.len(), |n| pos + n);
                out.push_str(&html[pos..end]);
                pos = end;
            }
        }
    }
    out
}

/// Handles the markup at `pos` (a `<`); returns the position after it.
fn markup(html: &str, pos: usize, out: &mut String, sink: &mut impl Sink) -> usize {
    let rest = &html[pos..];
    if let Some(comment) = rest.strip_prefix("<!--") {
        let end = comment.find("-->").map_or(html.len(), |n| pos + 4 + n + 3);
        let before = out.chars().next_back().is_some_and(char::is_alphanumeric);
        let after = html[end..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric);
        if before && after {
            sink.push(Kind::Html, "comment-split");
        }
        return end;
    }
    let bytes = rest.as_bytes();
    let closing = bytes.get(1) == Some(&b'/');
    let name_start = if closing { 2 } else { 1 };
    let name_len = bytes[name_start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let declaration = matches!(bytes.get(1), Some(b'!' | b'?'));
    if name_len == 0 && !declaration {
        out.push('<');
        return pos + 1;
    }
    let name = rest[name_start..name_start + name_len].to_ascii_lowercase();
    let (attrs_end, tag_end) = tag_end(rest, name_start + name_len);
    if declaration || closing {
        space_unless_inline(&name, out);
        return pos + tag_end;
    }
    attributes(&rest[name_start + name_len..attrs_end], sink);
    if STRUCTURAL_TAGS.contains(&name.as_str()) {
        sink.push(Kind::Html, &name);
    }
    space_unless_inline(&name, out);
    let after = pos + tag_end;
    if name == "script" || name == "style" {
        return skip_raw_text(html, after, &name);
    }
    after
}

fn space_unless_inline(name: &str, out: &mut String) {
    if !INLINE_TAGS.contains(&name) && !out.ends_with(' ') {
        out.push(' ');
    }
}

/// From `from` (just after the tag name) to the closing `>` outside quotes, bounded by
/// [`TAG_MAX_BYTES`]: (end of the attributes, position after the tag).
fn tag_end(s: &str, from: usize) -> (usize, usize) {
    let bytes = s.as_bytes();
    let mut limit = bytes.len().min(from + TAG_MAX_BYTES);
    while !s.is_char_boundary(limit) {
        limit -= 1;
    }
    let mut quote = None;
    let mut i = from;
    while i < limit {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return (i, i + 1),
            None => {}
        }
        i += 1;
    }
    (limit, limit)
}

/// After `<script>` or `<style>`: skips to after the matching end tag.
fn skip_raw_text(html: &str, from: usize, name: &str) -> usize {
    let end_tag = format!("</{name}");
    let bytes = html.as_bytes();
    let found = bytes[from..]
        .windows(end_tag.len())
        .position(|w| w.eq_ignore_ascii_case(end_tag.as_bytes()));
    match found {
        Some(n) => {
            let start = from + n;
            tag_end(html, start + end_tag.len()).1
        }
        None => html.len(),
    }
}

/// Looks at the attributes of one tag: URLs and hidden-text styles.
fn attributes(attrs: &str, sink: &mut impl Sink) {
    for (name, value) in (AttrIter { rest: attrs }) {
        if name.eq_ignore_ascii_case("href")
            || name.eq_ignore_ascii_case("src")
            || name.eq_ignore_ascii_case("action")
        {
            url_features(value, sink);
        } else if name.eq_ignore_ascii_case("style") && hides_text(value) {
            sink.push(Kind::Html, "hidden");
        }
    }
}

fn hides_text(style: &str) -> bool {
    let compact: String = style
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    compact.contains("display:none")
        || compact.contains("visibility:hidden")
        || compact
            .split(';')
            .filter_map(|decl| decl.strip_prefix("font-size:"))
            .any(tiny_font_size)
}

/// `0`, `0px`, `1px`, `0.5pt`…: sizes no reader can read.
fn tiny_font_size(size: &str) -> bool {
    let number_len = size
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(size.len());
    let Ok(number) = size[..number_len].parse::<f64>() else {
        return false;
    };
    number == 0.0 || (number < 2.0 && matches!(&size[number_len..], "px" | "pt"))
}

/// `name=value` pairs of a tag (values unquoted; attributes without value skipped).
struct AttrIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = self
                .rest
                .trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if s.is_empty() {
                return None;
            }
            let name_len = s
                .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
                .unwrap_or(s.len());
            let name = &s[..name_len];
            let after = s[name_len..].trim_start();
            let Some(value_part) = after.strip_prefix('=') else {
                // A name without value (`<input checked>`): name_len > 0, so progress.
                self.rest = after;
                continue;
            };
            let value_part = value_part.trim_start();
            let (value, rest) = match value_part.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &value_part[1..];
                    let end = body.find(q).unwrap_or(body.len());
                    (&body[..end], &body[(end + 1).min(body.len())..])
                }
                _ => {
                    let end = value_part
                        .find(char::is_whitespace)
                        .unwrap_or(value_part.len());
                    (&value_part[..end], &value_part[end..])
                }
            };
            self.rest = rest;
            return Some((name, value));
        }
    }
}

/// Decodes the character reference at `pos` (a `&`); returns the position after it.
fn entity(html: &str, pos: usize, out: &mut String, sink: &mut impl Sink) -> usize {
    let window = &html.as_bytes()[pos + 1..html.len().min(pos + 1 + ENTITY_MAX_BYTES)];
    let Some(semi) = window.iter().position(|&b| b == b';') else {
        out.push('&');
        return pos + 1;
    };
    let name = &html[pos + 1..pos + 1 + semi];
    let decoded = if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        let c = code.and_then(char::from_u32);
        if c.is_some_and(|c| c.is_ascii_alphanumeric()) {
            sink.push(Kind::Html, "encoded-letters");
        }
        c
    } else {
        NAMED_ENTITIES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, c)| c)
    };
    match decoded {
        Some(c) => {
            out.push(c);
            pos + 1 + semi + 1
        }
        None => {
            out.push('&');
            pos + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::TextSink;
    use super::*;

    fn run(html: &str) -> (String, Vec<String>) {
        let mut sink = TextSink::new();
        let text = html_to_text(html, &mut sink);
        (text, sink.into_features())
    }

    #[test]
    fn tags_dropped_inline_ones_join_words() {
        let (text, _) = run("<p>Buy</p><div>V<b>ia</b>gra<br>now</div>");
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>(),
            ["Buy", "Viagra", "now"]
        );
    }

    #[test]
    fn entities_decoded() {
        let (text, features) =
            run("Fish &amp; chips &lt;3 caf&eacute; &#86;&#x69;agra &bogus; & x");
        assert_eq!(text, "Fish & chips <3 café Viagra &bogus; & x");
        assert!(features.contains(&"h:encoded-letters".to_string()));
    }

    #[test]
    fn comments_scripts_styles_skipped() {
        let (text, features) =
            run("V<!-- noise -->iagra <script>var x = '</b>';</script> <STYLE>p{}</style >ok");
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>(),
            ["Viagra", "ok"]
        );
        assert!(features.contains(&"h:comment-split".to_string()));
        assert!(features.contains(&"h:script".to_string()));
        assert!(features.contains(&"h:style".to_string()));
    }

    #[test]
    fn structure_urls_and_hidden_text() {
        let (_, features) = run(
            "<a href=\"http://www.shop.example.com/x\">click</a> <img src='http://10.0.0.1/a.gif'> \
             <div style=\"DISPLAY: none\">hash buster</div><form action=https://f.example.net/p>",
        );
        for f in [
            "u:example.com",
            "h:img",
            "u:ip",
            "h:hidden",
            "h:form",
            "u:example.net",
        ] {
            assert!(
                features.contains(&f.to_string()),
                "{f} missing in {features:?}"
            );
        }
    }

    #[test]
    fn quoted_gt_inside_attribute_does_not_end_the_tag() {
        let (text, _) = run("<a title=\"a > b\" href=x>link</a>");
        assert_eq!(text.trim(), "link");
    }

    #[test]
    fn malformed_html_never_panics() {
        for html in [
            "<",
            "<a",
            "<a href=\"",
            "&",
            "&#",
            "&#x;",
            "&#99999999999;",
            "<!--",
            "<script>",
            "<<<>>>",
            "<a =x>",
            "<é>",
            "&é;",
            "<a href='é",
            "<style",
            "</",
            "<!",
            "<?xml",
        ] {
            run(html);
        }
        run(&"<b>".repeat(100_000));
        run(&format!("<a {}>", "x=y ".repeat(50_000)));
    }
}
