//! The recipient portal's pages, rendered on the server as plain HTML — no script, and
//! every piece of text from held mail escaped ([`escape`]). Pure: data in, HTML out.

use mxmesh_crdt::qindex::IndexEntry;

use crate::digest::token::Action;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{t}</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\
         <body><main><h1>{t}</h1>\n{body}\n</main></body></html>\n",
        t = escape(title)
    )
}

/// The plain error page: says nothing about why beyond `text`.
pub fn error(text: &str) -> String {
    page(
        "Link not usable",
        &format!("<p class=\"error\">{}</p>", escape(text)),
    )
}

/// A page that tells what happened (`ok`: success styling).
pub fn outcome(title: &str, text: &str, ok: bool, back: Option<&str>) -> String {
    let class = if ok { "ok" } else { "error" };
    let mut body = format!("<p class=\"{class}\">{}</p>", escape(text));
    if let Some(back) = back {
        body.push_str(&format!(
            "<p><a href=\"{}\">Back to your quarantined mail</a></p>",
            escape(back)
        ));
    }
    page(title, &body)
}

/// The question an item link asks before it acts.
pub fn confirm(action: Action, entry: &IndexEntry, check: &str) -> String {
    let (question, button) = match action {
        Action::Release => ("Release this message to your mailbox?", "Release"),
        Action::Allow => (
            "Release this message and always accept mail from its sender?",
            "Release and always allow",
        ),
        Action::Delete => ("Delete this message for good?", "Delete"),
        Action::Show => ("", ""),
    };
    let body = format!(
        "{}<p>{question}</p>\
         <form method=\"post\" class=\"inline\">\
         <input type=\"hidden\" name=\"check\" value=\"{}\">\
         <button type=\"submit\" class=\"primary\">{button}</button></form>",
        summary(entry),
        escape(check)
    );
    page("Held message", &body)
}

/// The recipient's quarantined mail, each with its three actions.
pub fn portal(recipient: &str, entries: &[IndexEntry], check: &str, more: bool) -> String {
    let mut body = format!(
        "<p>Mail for <strong>{}</strong> held in quarantine ({} message{}).</p>",
        escape(recipient),
        entries.len(),
        if entries.len() == 1 { "" } else { "s" }
    );
    if entries.is_empty() {
        body.push_str("<p class=\"muted\">Nothing is held for you.</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>Received</th><th>From</th><th>Subject</th>\
             <th>Reason</th><th></th></tr></thead><tbody>",
        );
        for e in entries {
            body.push_str(&row(e, check));
        }
        body.push_str("</tbody></table>");
    }
    if more {
        body.push_str("<p class=\"muted\">Only the newest messages are shown.</p>");
    }
    page("Your quarantined mail", &body)
}

fn row(e: &IndexEntry, check: &str) -> String {
    let form = |action: Action, label: &str| {
        format!(
            "<form method=\"post\" class=\"inline\">\
             <input type=\"hidden\" name=\"check\" value=\"{}\">\
             <input type=\"hidden\" name=\"id\" value=\"{}\">\
             <input type=\"hidden\" name=\"do\" value=\"{}\">\
             <button type=\"submit\">{label}</button></form>",
            escape(check),
            escape(&e.id),
            action.as_str()
        )
    };
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}{}</td></tr>",
        escape(&crate::clock::rfc5322_date(e.received_ms)),
        escape(&e.sender),
        escape(&e.subject),
        escape(&e.reason),
        form(Action::Release, "Release"),
        form(Action::Allow, "Release and always allow"),
        form(Action::Delete, "Delete"),
    )
}

fn summary(e: &IndexEntry) -> String {
    format!(
        "<table><tbody><tr><th>From</th><td>{}</td></tr><tr><th>Subject</th><td>{}</td></tr>\
         <tr><th>Received</th><td>{}</td></tr><tr><th>Reason</th><td>{}</td></tr></tbody></table>",
        escape(&e.sender),
        escape(&e.subject),
        escape(&crate::clock::rfc5322_date(e.received_ms)),
        escape(&e.reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_held_mail_is_escaped() {
        let entry: IndexEntry = serde_json::from_value(serde_json::json!({
            "id": "01J0ABC", "node": "mx1", "received_ms": 1, "size": 1,
            "sender": "\"><script>alert(1)</script>@x", "recipients": ["a@example.com"],
            "subject": "<img src=http://evil/>", "reason": "r", "rule_id": null,
            "status": "quarantined", "status_ms": 1,
        }))
        .unwrap();
        for html in [
            confirm(Action::Release, &entry, "c"),
            portal("a@example.com", std::slice::from_ref(&entry), "c", false),
        ] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(html.contains("&lt;script&gt;"), "{html}");
        }
        assert_eq!(escape("a&b\"'"), "a&amp;b&quot;&#39;");
    }
}
