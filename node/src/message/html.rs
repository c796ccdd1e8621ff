//! A small, bounded HTML scanner for the spam checks: visible, hidden and tiny text,
//! images, and links with their texts. It is not a conforming HTML parser; it reads tags
//! and text the way mail clients show them closely enough to count, and never fails —
//! broken markup only makes the counts rougher. Every loop is bounded by the input size
//! (cut at [`HTML_SCAN_BYTES_MAX`]) and the element stack by [`HTML_DEPTH_MAX`].

use crate::filter::HtmlFacts;

/// Bytes of one HTML part scanned at most (the rest is not counted).
pub const HTML_SCAN_BYTES_MAX: usize = 512 * 1024;
/// Open elements tracked at most (deeper nesting is treated as flat).
pub const HTML_DEPTH_MAX: usize = 256;
/// Bytes of a link's text kept at most.
pub const LINK_TEXT_BYTES_MAX: usize = 256;
/// Bytes of visible text kept for comparing with the text/plain alternative.
pub const HTML_TEXT_KEPT_BYTES_MAX: usize = 64 * 1024;
/// Links kept per part at most.
pub const LINKS_MAX: usize = 256;
/// A font smaller than this (px or pt) makes its text "tiny".
const TINY_FONT_SIZE: f64 = 4.0;
/// A font of this many px or more makes its text "large" (pt are scaled by 4/3).
const LARGE_FONT_PX: f64 = 24.0;
/// `<font size>` (1–7, 3 the default) from which the text is "large" (5 is 24 px).
const LARGE_FONT_ELEMENT_SIZE: i32 = 5;

/// Elements that never have content, so are never pushed on the stack.
const VOID_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];
/// Elements whose content is not text to show.
const RAW_TEXT_ELEMENTS: &[&str] = &["script", "style", "title", "head"];

/// One link: where it points and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The `href` attribute, entity-decoded and trimmed.
    pub href: String,
    /// The visible text inside the link, white space runs collapsed to one space.
    pub text: String,
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Counts (added to those of earlier parts).
    pub stats: HtmlFacts,
    /// Links in document order.
    pub links: Vec<Link>,
    /// Visible text, words separated by spaces, bounded.
    pub text: String,
}

/// One open element.
struct Open {
    name: String,
    hidden: bool,
    tiny: bool,
    large: bool,
    /// Index in `Scan::links` when this is an `<a href>`.
    link: Option<usize>,
}

/// Scans one HTML part and adds what it found to `scan`.
pub fn scan(html: &str, scan: &mut Scan) {
    let mut html = html;
    if html.len() > HTML_SCAN_BYTES_MAX {
        let mut cut = HTML_SCAN_BYTES_MAX;
        while !html.is_char_boundary(cut) {
            cut -= 1;
        }
        html = &html[..cut];
        scan.stats.truncated = true;
    }
    scan.stats.parts += 1;
    let mut stack: Vec<Open> = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            text(rest, &stack, scan);
            break;
        };
        text(&rest[..lt], &stack, scan);
        rest = &rest[lt..];
        rest = markup(rest, &mut stack, scan);
    }
}

/// Handles the markup at the start of `rest` (which starts with `<`); returns what follows.
fn markup<'a>(rest: &'a str, stack: &mut Vec<Open>, scan: &mut Scan) -> &'a str {
    if let Some(comment) = rest.strip_prefix("<!--") {
        return comment.find("-->").map_or("", |end| &comment[end + 3..]);
    }
    let starts_tag = rest[1..]
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?');
    if !starts_tag {
        text("<", stack, scan);
        return &rest[1..];
    }
    let Some(gt) = rest.find('>') else {
        return "";
    };
    let tag = &rest[1..gt];
    let after = &rest[gt + 1..];
    if let Some(name) = tag.strip_prefix('/') {
        close(&tag_name(name), stack);
        return after;
    }
    if tag.starts_with('!') || tag.starts_with('?') {
        return after;
    }
    let name = tag_name(tag);
    if RAW_TEXT_ELEMENTS.contains(&name.as_str()) && !tag.ends_with('/') {
        if name == "head" {
            return after;
        }
        return skip_raw_text(after, &name);
    }
    open(&name, tag, stack, scan);
    after
}

/// The lowercase element name at the start of a tag's inside.
fn tag_name(tag: &str) -> String {
    tag.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Skips to the end of `</name>` (script, style, title bodies are not shown as text).
fn skip_raw_text<'a>(rest: &'a str, name: &str) -> &'a str {
    let closing = format!("</{name}");
    let lower = rest.to_ascii_lowercase();
    match lower.find(&closing) {
        Some(at) => rest[at..].find('>').map_or("", |gt| &rest[at + gt + 1..]),
        None => "",
    }
}

fn open(name: &str, tag: &str, stack: &mut Vec<Open>, scan: &mut Scan) {
    let attrs = attributes(tag);
    let attr = |key: &str| {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match name {
        "img" => scan.stats.images += 1,
        "form" => scan.stats.forms += 1,
        "html" => scan.stats.roots += 1,
        _ => {}
    }
    if VOID_ELEMENTS.contains(&name) || tag.ends_with('/') {
        return;
    }
    let style = attr("style").unwrap_or_default();
    let parent = stack.last();
    let hidden = parent.is_some_and(|p| p.hidden) || attr("hidden").is_some() || hides(style);
    let tiny = parent.is_some_and(|p| p.tiny)
        || is_tiny(style)
        || (name == "font" && attr("size").is_some_and(|s| s.trim() == "0"));
    let large = !tiny
        && (parent.is_some_and(|p| p.large)
            || is_large(style)
            || (name == "font" && attr("size").is_some_and(large_font_element)));
    let link = match (name, attr("href")) {
        ("a", Some(href)) if scan.links.len() < LINKS_MAX => {
            scan.links.push(Link {
                href: decode_entities(href).trim().to_string(),
                text: String::new(),
            });
            Some(scan.links.len() - 1)
        }
        _ => parent.and_then(|p| p.link),
    };
    if stack.len() < HTML_DEPTH_MAX {
        stack.push(Open {
            name: name.to_string(),
            hidden,
            tiny,
            large,
            link,
        });
    }
}

/// Closes the innermost open `name` and everything opened inside it; a stray close tag
/// (nothing of that name open) is ignored.
fn close(name: &str, stack: &mut Vec<Open>) {
    if let Some(at) = stack.iter().rposition(|open| open.name == name) {
        stack.truncate(at);
    }
}

/// Counts and keeps the text between two tags.
fn text(raw: &str, stack: &[Open], scan: &mut Scan) {
    if raw.trim().is_empty() {
        return;
    }
    let decoded = decode_entities(raw);
    let chars = decoded.chars().filter(|c| !c.is_whitespace()).count() as u32;
    let top = stack.last();
    let stats = &mut scan.stats;
    if top.is_some_and(|t| t.hidden) {
        stats.hidden_chars = stats.hidden_chars.saturating_add(chars);
        return;
    }
    stats.text_chars = stats.text_chars.saturating_add(chars);
    if top.is_some_and(|t| t.tiny) {
        stats.tiny_chars = stats.tiny_chars.saturating_add(chars);
    }
    if top.is_some_and(|t| t.large) {
        stats.large_chars = stats.large_chars.saturating_add(chars);
    }
    if let Some(link) = top.and_then(|t| t.link) {
        append_collapsed(&mut scan.links[link].text, &decoded);
    }
    for word in decoded.split_whitespace() {
        if scan.text.len() + word.len() + 1 > HTML_TEXT_KEPT_BYTES_MAX {
            break;
        }
        scan.text.push_str(word);
        scan.text.push(' ');
    }
}

/// Appends `text` to a link's text with white space runs collapsed to one space (tags
/// inside a link, as in `https://<b>bank</b>.example`, add nothing), bounded.
fn append_collapsed(link_text: &mut String, text: &str) {
    let mut space = link_text.is_empty() || link_text.ends_with(' ');
    for c in text.chars() {
        if link_text.len() + c.len_utf8() > LINK_TEXT_BYTES_MAX {
            return;
        }
        if !c.is_whitespace() {
            link_text.push(c);
            space = false;
        } else if !space {
            link_text.push(' ');
            space = true;
        }
    }
}

/// `(name, value)` pairs of a tag's attributes; names lowercase, values unquoted.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let name_end = tag
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(tag.len());
    let mut rest = &tag[name_end..];
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return out;
        }
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let key = rest[..key_end].to_ascii_lowercase();
        rest = rest[key_end..].trim_start();
        let Some(after_eq) = rest.strip_prefix('=') else {
            out.push((key, String::new()));
            if key_end == 0 {
                // Not an attribute character at all: skip it.
                rest = rest.get(1..).unwrap_or("");
            }
            continue;
        };
        let after_eq = after_eq.trim_start();
        let (value, next) = match after_eq.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &after_eq[1..];
                match inner.find(q) {
                    Some(end) => (&inner[..end], &inner[end + 1..]),
                    None => (inner, ""),
                }
            }
            _ => {
                let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
                (&after_eq[..end], &after_eq[end..])
            }
        };
        out.push((key, value.to_string()));
        rest = next;
    }
}

/// The declarations of a `style` attribute, lowercase, white space removed.
fn declarations(style: &str) -> impl Iterator<Item = (String, String)> + '_ {
    style.split(';').filter_map(|declaration| {
        let (key, value) = declaration.split_once(':')?;
        let squeeze = |s: &str| {
            s.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase()
        };
        Some((squeeze(key), squeeze(value)))
    })
}

/// Whether a style hides its element.
fn hides(style: &str) -> bool {
    declarations(style).any(|(key, value)| {
        let value = value.trim_end_matches("!important");
        matches!(
            (key.as_str(), value),
            ("display", "none") | ("visibility", "hidden") | ("opacity", "0" | "0.0")
        )
    })
}

/// Whether a style sets a font size below [`TINY_FONT_SIZE`] px or pt.
fn is_tiny(style: &str) -> bool {
    font_size(style).is_some_and(|(n, _)| n < TINY_FONT_SIZE)
}

/// Whether a style sets a font size of [`LARGE_FONT_PX`] or more (pt scaled to px).
fn is_large(style: &str) -> bool {
    font_size(style).is_some_and(|(n, unit)| match unit {
        "pt" => n * 4.0 / 3.0 >= LARGE_FONT_PX,
        "px" => n >= LARGE_FONT_PX,
        _ => false,
    })
}

/// The number and unit (`px`, `pt`, `""` for a bare number or another unit) of the
/// first `font-size` declaration of a style.
fn font_size(style: &str) -> Option<(f64, &'static str)> {
    declarations(style).find_map(|(key, value)| {
        if key != "font-size" {
            return None;
        }
        let number = value.trim_end_matches("!important");
        let (number, unit) = ["px", "pt"]
            .iter()
            .find_map(|unit| number.strip_suffix(unit).map(|n| (n, *unit)))
            .unwrap_or((number, ""));
        number.parse::<f64>().ok().map(|n| (n, unit))
    })
}

/// Whether a `<font size>` value is [`LARGE_FONT_ELEMENT_SIZE`] or more (absolute) or
/// raises the default size 3 to it (`+2` and up).
fn large_font_element(size: &str) -> bool {
    let size = size.trim();
    match size.strip_prefix('+') {
        Some(step) => step
            .parse::<i32>()
            .is_ok_and(|s| 3 + s >= LARGE_FONT_ELEMENT_SIZE),
        None => size
            .parse::<i32>()
            .is_ok_and(|s| s >= LARGE_FONT_ELEMENT_SIZE),
    }
}

/// Decodes the common named entities and numeric references; others stay as written.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| entity(&rest[1..e]));
        match (end, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    let numeric = |digits: &str, radix| u32::from_str_radix(digits, radix).ok();
    let code = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        "nbsp" => return Some(' '),
        _ => match name.strip_prefix('#') {
            Some(hex) if hex.starts_with(['x', 'X']) => numeric(&hex[1..], 16),
            Some(dec) => numeric(dec, 10),
            None => None,
        },
    };
    code.and_then(char::from_u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(html: &str) -> Scan {
        let mut s = Scan::default();
        scan(html, &mut s);
        s
    }

    #[test]
    fn visible_hidden_and_tiny_text_are_counted_apart() {
        let s = run(concat!(
            "<html><head><title>Title text</title><style>p{color:red}</style></head><body>",
            "<p>Hello world</p>",
            "<div style=\"display: none\">hidden words <b>here</b></div>",
            "<span style='font-size:1px'>tiny</span>",
            "<!-- a comment with <b>tags</b> -->",
            "<img src=x.png><br/>",
            "<p>after</p></body></html>"
        ));
        assert_eq!(s.stats.text_chars, "Helloworld".len() as u32 + 4 + 5);
        assert_eq!(s.stats.hidden_chars, "hiddenwordshere".len() as u32);
        assert_eq!(s.stats.tiny_chars, 4);
        assert_eq!(s.stats.images, 1);
        assert_eq!(s.text, "Hello world tiny after ");
    }

    #[test]
    fn forms_and_large_text_are_counted() {
        let s = run(concat!(
            "<form action=\"http://x.test/\"><input name=card></form>",
            "<font size=\"+2\">Big</font><font size=\"7\">Huge <b>bold</b></font>",
            "<font size=\"4\">normal</font><font size=\"+1\">normal</font>",
            "<p style=\"font-size: 18pt\">points</p><p style=\"font-size:23px\">small</p>",
            "<span style=\"font-size:30px\">pixels</span>"
        ));
        assert_eq!(s.stats.forms, 1);
        assert_eq!(s.stats.roots, 0);
        assert_eq!(
            run("<!DOCTYPE html><HTML lang=en><body>x</body></HTML>")
                .stats
                .roots,
            1
        );
        let large = "Big".len() + "Hugebold".len() + "points".len() + "pixels".len();
        assert_eq!(s.stats.large_chars, large as u32);
        assert!(!large_font_element("junk") && !large_font_element("-2"));
    }

    #[test]
    fn links_keep_their_text() {
        let s = run(concat!(
            "<a href=\"https://evil.test/x?a=1&amp;b=2\">https://<b>bank.example</b>/login</a> ",
            "<A HREF=http://ok.test>plain</A><a name=x>no href</a>"
        ));
        assert_eq!(
            s.links,
            [
                Link {
                    href: "https://evil.test/x?a=1&b=2".into(),
                    text: "https://bank.example/login".into()
                },
                Link {
                    href: "http://ok.test".into(),
                    text: "plain".into()
                },
            ]
        );
    }

    #[test]
    fn broken_markup_does_not_fail() {
        for html in [
            "<",
            "<a href=",
            "<<<>>>",
            "</p></p>",
            "<p style=",
            "&#xFFFFFFFF;",
            "<scr",
        ] {
            run(html);
        }
        let deep = "<div>".repeat(HTML_DEPTH_MAX * 2) + "x";
        assert_eq!(run(&deep).stats.text_chars, 1);
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            decode_entities("a&amp;b&#65;&#x42;&nbsp;&bogus;"),
            "a&bAB &bogus;"
        );
    }
}
