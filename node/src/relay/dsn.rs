//! Delivery status notifications (RFC 3464): a pure function from a failed delivery to the
//! bounce message.

/// Bytes of the original message returned in the bounce (its headers, at most this much).
pub const DSN_ORIGINAL_HEADERS_MAX_BYTES: usize = 64 * 1024;

/// One recipient that failed for good.
pub struct Failure<'a> {
    /// The recipient's address.
    pub rcpt: &'a str,
    /// Why it failed: the downstream reply (starting with its SMTP code) or the reason given up.
    pub reason: &'a str,
}

/// What a bounce needs to know.
pub struct BounceInput<'a> {
    /// This node's hostname (`[smtp] hostname`): the `MAILER-DAEMON@` domain and `Reporting-MTA`.
    pub reporting_host: &'a str,
    /// The queue id of the failed message.
    pub original_id: &'a str,
    /// The failed message's envelope sender, whom the bounce goes to.
    pub original_sender: &'a str,
    /// The recipients that failed, each with its reason.
    pub failures: &'a [Failure<'a>],
    /// The original message; its headers are returned, bounded.
    pub original: &'a [u8],
    /// The `Date:` header's value (RFC 5322).
    pub date: &'a str,
    /// The MIME boundary between the parts.
    pub boundary: &'a str,
}

/// Builds the multipart/report DSN, CRLF line endings throughout.
pub fn build(b: &BounceInput<'_>) -> Vec<u8> {
    let mut m = String::new();
    let push = |m: &mut String, line: &str| {
        m.push_str(line);
        m.push_str("\r\n");
    };
    push(
        &mut m,
        &format!(
            "From: Mail Delivery System <MAILER-DAEMON@{}>",
            b.reporting_host
        ),
    );
    push(&mut m, &format!("To: <{}>", b.original_sender));
    push(&mut m, "Subject: Undelivered Mail Returned to Sender");
    push(&mut m, &format!("Date: {}", b.date));
    push(
        &mut m,
        &format!("Message-ID: <{}.dsn@{}>", b.original_id, b.reporting_host),
    );
    push(&mut m, "Auto-Submitted: auto-replied");
    push(&mut m, "MIME-Version: 1.0");
    push(
        &mut m,
        &format!(
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"{}\"",
            b.boundary
        ),
    );
    push(&mut m, "");
    push(&mut m, &format!("--{}", b.boundary));
    push(&mut m, "Content-Type: text/plain; charset=utf-8");
    push(&mut m, "");
    push(
        &mut m,
        &format!("This is the mail system at host {}.", b.reporting_host),
    );
    push(&mut m, "");
    push(
        &mut m,
        "Your message could not be delivered to one or more recipients:",
    );
    push(&mut m, "");
    for f in b.failures {
        push(&mut m, &format!("<{}>: {}", f.rcpt, one_line(f.reason)));
    }
    push(&mut m, "");
    push(&mut m, &format!("--{}", b.boundary));
    push(&mut m, "Content-Type: message/delivery-status");
    push(&mut m, "");
    push(&mut m, &format!("Reporting-MTA: dns; {}", b.reporting_host));
    push(&mut m, &format!("X-Mxmesh-Queue-ID: {}", b.original_id));
    for f in b.failures {
        push(&mut m, "");
        push(&mut m, &format!("Final-Recipient: rfc822; {}", f.rcpt));
        push(&mut m, "Action: failed");
        push(&mut m, &format!("Status: {}", status_of(f.reason)));
        push(
            &mut m,
            &format!("Diagnostic-Code: smtp; {}", one_line(f.reason)),
        );
    }
    push(&mut m, "");
    push(&mut m, &format!("--{}", b.boundary));
    push(&mut m, "Content-Type: text/rfc822-headers");
    push(&mut m, "");
    let mut out = m.into_bytes();
    out.extend_from_slice(headers_of(b.original));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{}--\r\n", b.boundary).as_bytes());
    out
}

/// The header block of a CRLF message, bounded.
fn headers_of(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(raw.len());
    let end = end.min(DSN_ORIGINAL_HEADERS_MAX_BYTES);
    // Cut at a line end so the part stays well-formed.
    let slice = &raw[..end];
    match slice.iter().rposition(|&c| c == b'\n') {
        Some(p) => &slice[..=p],
        None => b"",
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The RFC 3463 status for a reason that starts with an SMTP code.
fn status_of(reason: &str) -> &'static str {
    if reason.starts_with('4') {
        "4.4.7"
    } else {
        "5.0.0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_names_every_failure_and_returns_headers() {
        let original = b"From: a@b\r\nSubject: hi\r\n\r\nsecret body\r\n";
        let failures = [Failure {
            rcpt: "x@example.com",
            reason: "550 5.1.1 no such user",
        }];
        let dsn = build(&BounceInput {
            reporting_host: "mx1.example.com",
            original_id: "01ABC",
            original_sender: "a@b",
            failures: &failures,
            original,
            date: "Thu, 1 Jan 2026 00:00:00 +0000",
            boundary: "BOUNDARY",
        });
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; x@example.com"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
        assert!(text.contains("Subject: hi\r\n"));
        assert!(!text.contains("secret body"), "only headers are returned");
        assert!(text.ends_with("--BOUNDARY--\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "CRLF only");
        let parsed = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
    }
}
