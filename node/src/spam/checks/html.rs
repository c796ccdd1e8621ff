//! What the HTML hides or pretends: invisible or tiny text, a link whose text shows one
//! domain while it goes to another, images with almost no text.

use super::Hits;
use crate::filter::{MessageFacts, UrlFact};
use crate::message::urls::{self, registrable_domain};
use crate::spam::symbols::*;

/// Characters of hidden (or tiny) text that are more than a stray space.
pub const HIDDEN_CHARS_MIN: u32 = 30;
/// HTML with images and less visible text than this is an image message.
pub const IMAGE_ONLY_TEXT_CHARS_MAX: u32 = 200;

/// Adds the HTML symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    let html = &facts.content.html;
    if html.hidden_chars >= HIDDEN_CHARS_MIN {
        hits.add(
            HTML_HIDDEN_TEXT,
            format!("{} characters", html.hidden_chars),
        );
    }
    if html.tiny_chars >= HIDDEN_CHARS_MIN {
        hits.add(HTML_TINY_TEXT, format!("{} characters", html.tiny_chars));
    }
    if html.images > 0 && html.text_chars < IMAGE_ONLY_TEXT_CHARS_MAX {
        let detail = format!("{} images, {} characters", html.images, html.text_chars);
        hits.add(HTML_IMAGE_ONLY, detail);
    }
    if let Some((shown, target)) = facts.content.urls.iter().find_map(mismatch) {
        hits.add(
            HTML_LINK_TEXT_MISMATCH,
            format!("shows {shown}, goes to {target}"),
        );
    }
}

/// `(shown domain, real domain)` when a link's text is a URL with a scheme
/// (`https://bank.example/…`) of another registrable domain than its href. Texts that are
/// bare domain names (`Dilbert.com`) are left alone: newsletters show them on links
/// through their click-tracking redirectors.
fn mismatch(url: &UrlFact) -> Option<(String, String)> {
    let text = url.link_text.as_deref()?.trim();
    let lower = text.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    let shown = urls::parse(text)?;
    let (shown, real) = (
        registrable_domain(&shown.host),
        registrable_domain(&url.host),
    );
    (shown != real).then(|| (shown.to_string(), real.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{facts_of, names};
    use super::*;

    fn html(body: &str) -> MessageFacts {
        facts_of(&format!(
            "MIME-Version: 1.0\nContent-Type: text/html\n\n{body}\n"
        ))
    }

    const TEXT: &str = "<p>This is an ordinary newsletter paragraph with enough words in it to \
        count as a real message, about the garden, the weather and the coming weekend plans \
        that we talked about on the phone yesterday evening after dinner.</p>";

    #[test]
    fn ordinary_html_is_clean() {
        let body = format!("{TEXT}<a href=\"https://www.example.com/a\">example.com/a</a>");
        assert!(names(check, &html(&body)).is_empty());
    }

    #[test]
    fn hidden_and_tiny_text() {
        let hidden = format!(
            "{TEXT}<div style=\"display:none\">{}</div>",
            "word ".repeat(10)
        );
        assert_eq!(names(check, &html(&hidden)), [HTML_HIDDEN_TEXT]);
        let tiny = format!(
            "{TEXT}<span style=\"font-size: 1px\">{}</span>",
            "word ".repeat(10)
        );
        assert_eq!(names(check, &html(&tiny)), [HTML_TINY_TEXT]);
    }

    #[test]
    fn link_text_showing_another_domain() {
        let body = format!("{TEXT}<a href=\"http://evil.test/x\">https://www.paypal.com/login</a>");
        assert_eq!(names(check, &html(&body)), [HTML_LINK_TEXT_MISMATCH]);
        let bare = format!("{TEXT}<a href=\"http://track.test/x\">Shop.example</a>");
        assert!(
            names(check, &html(&bare)).is_empty(),
            "a bare domain may be a redirect"
        );
        let words = format!("{TEXT}<a href=\"http://evil.test/x\">click here.</a>");
        assert!(names(check, &html(&words)).is_empty());
    }

    #[test]
    fn image_only() {
        let body = "<a href=\"http://shop.test\"><img src=\"cid:x\"></a><p>Buy</p>";
        assert_eq!(names(check, &html(body)), [HTML_IMAGE_ONLY]);
    }
}
