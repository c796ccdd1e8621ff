//! Typed SMTP replies, and the one place where protocol errors become replies.
//!
//! A [`Reply`] is a code, an optional RFC 3463 enhanced status code and one or more text
//! lines. [`Reply::to_bytes`] renders the wire form (RFC 5321 §4.2), repeating the
//! enhanced code on every line (RFC 2034 §3) and scrubbing anything that could break the
//! framing: reply text can come from rule authors, so a stray CR or LF must never let it
//! forge a second reply.

use std::fmt;

use super::address::AddressError;

/// Longest reply line on the wire, code and CRLF included (RFC 5321 §4.5.3.1.5).
pub const REPLY_LINE_MAX_BYTES: usize = 512;

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code, e.g. 250.
    pub code: u16,
    /// Enhanced status code such as `"5.7.1"`; `None` for the greeting and EHLO/HELO.
    pub status: Option<&'static str>,
    /// Text lines; rendered as `code-text` for all but the last, `code text` for the last.
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply.
    pub fn new(code: u16, status: Option<&'static str>, text: impl Into<String>) -> Self {
        Self {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply, e.g. the EHLO capability list.
    pub fn multiline<I, S>(code: u16, status: Option<&'static str>, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            code,
            status,
            lines: lines.into_iter().map(Into::into).collect(),
        }
    }

    /// The wire form: `"250-2.0.0 a\r\n250 2.0.0 b\r\n"`.
    ///
    /// Control characters in the text become spaces and over-long lines are cut at a
    /// character boundary, so the output is always well-framed. A reply without lines
    /// renders as a single line holding only the codes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (index, text) in self.lines.iter().enumerate() {
            self.render_line(&mut out, text, index == last);
        }
        if self.lines.is_empty() {
            self.render_line(&mut out, "", true);
        }
        out
    }

    fn render_line(&self, out: &mut Vec<u8>, text: &str, last: bool) {
        let separator = if last { ' ' } else { '-' };
        let mut line = format!("{:03}{separator}", self.code);
        if let Some(status) = self.status {
            line.push_str(status);
            line.push(' ');
        }
        let budget = REPLY_LINE_MAX_BYTES.saturating_sub(line.len() + 2);
        line.push_str(&scrub(text, budget));
        let trimmed_len = line.trim_end().len();
        line.truncate(trimmed_len);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// 2xx or 3xx: the command was accepted (or the server waits for more).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not retry.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// `235 2.7.0`: AUTH succeeded (RFC 4954 §6).
    pub fn auth_ok() -> Self {
        Reply::new(235, Some("2.7.0"), "Authentication successful")
    }

    /// `535 5.7.8`: wrong user name or password (RFC 4954 §6).
    pub fn auth_failed() -> Self {
        Reply::new(535, Some("5.7.8"), "Authentication credentials invalid")
    }

    /// `454 4.7.0`: too many wrong passwords from this client for now.
    pub fn auth_rate_limited() -> Self {
        Reply::new(
            454,
            Some("4.7.0"),
            "Too many failed authentication attempts; try again later",
        )
    }

    /// `454 4.7.0`: the password could not be checked now.
    pub fn auth_unavailable() -> Self {
        Reply::new(454, Some("4.7.0"), "Temporary authentication failure")
    }

    /// `250 2.0.0 Ok: queued as ID` — the message is durable.
    pub fn ok_queued(id: impl fmt::Display) -> Self {
        Self::new(250, Some("2.0.0"), format!("Ok: queued as {id}"))
    }

    /// `451 4.3.0 Local storage error, try again later`.
    pub fn tempfail_store() -> Self {
        Self::new(451, Some("4.3.0"), "Local storage error, try again later")
    }

    /// `550 5.7.1 REASON` — a policy rejection.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Self::new(550, Some("5.7.1"), reason)
    }

    /// `451 4.7.1 REASON` — a policy deferral.
    pub fn tempfail(reason: impl Into<String>) -> Self {
        Self::new(451, Some("4.7.1"), reason)
    }

    /// `451 4.4.3` — a DNS lookup of the facts phase failed (`on_dns_failure = "tempfail"`).
    pub fn tempfail_dns() -> Self {
        Self::new(451, Some("4.4.3"), "DNS lookup failed, try again later")
    }

    /// `451 4.3.0` — the virus scanner did not answer (`on_clamd_failure = "tempfail"`).
    pub fn tempfail_scan() -> Self {
        Self::new(
            451,
            Some("4.3.0"),
            "Virus scan unavailable, try again later",
        )
    }

    /// `421 4.3.2 Service shutting down`.
    pub fn shutting_down() -> Self {
        Self::new(421, Some("4.3.2"), "Service shutting down")
    }

    /// `421 4.3.2` — an operator drained this node (until undrained, across restarts).
    pub fn drained() -> Self {
        Self::new(
            421,
            Some("4.3.2"),
            "Service not available: this node is drained, try another MX",
        )
    }

    /// `421 4.4.2 Error: timeout exceeded` — the client was idle or slow too long.
    pub fn timeout() -> Self {
        Self::new(421, Some("4.4.2"), "Error: timeout exceeded")
    }

    /// `421 4.7.0 Too many connections`.
    pub fn too_busy() -> Self {
        Self::new(421, Some("4.7.0"), "Too many connections, try again later")
    }

    /// `554 5.5.0 …` — the client spoke before the greeting (RFC 5321 §4.3.1).
    pub fn early_talker() -> Self {
        Self::new(
            554,
            Some("5.5.0"),
            "Protocol error: client spoke before greeting",
        )
    }
}

impl fmt::Display for Reply {
    /// The wire form without the final CRLF, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        f.write_str(text.trim_end())
    }
}

/// Replaces control characters with spaces and cuts to `budget_bytes` on a char boundary.
fn scrub(text: &str, budget_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(budget_bytes));
    for ch in text.chars() {
        let ch = if ch.is_control() { ' ' } else { ch };
        if out.len() + ch.len_utf8() > budget_bytes {
            break;
        }
        out.push(ch);
    }
    out
}

/// Whose address a [`ProtocolError::Address`] is about; picks the enhanced code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRole {
    /// MAIL FROM (RFC 3463 X.1.7).
    Sender,
    /// RCPT TO (RFC 3463 X.1.3).
    Recipient,
}

/// Every way the protocol refuses input. [`ProtocolError::reply`] is the only place that
/// turns one into wire text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A command line exceeded `command_line_max_bytes`.
    CommandLineTooLong,
    /// NUL, a bare CR, invalid UTF-8, non-ASCII outside an address, or an empty line.
    Syntax,
    /// A verb we do not know.
    UnknownCommand,
    /// A verb we know but do not offer (BDAT, ETRN, EXPN, TURN).
    NotImplemented,
    /// Arguments to a command that takes none (DATA, RSET, QUIT, STARTTLS).
    ParametersNotAllowed,
    /// A command that needs an argument got none (EHLO, HELO, VRFY).
    ArgumentRequired,
    /// MAIL without `FROM:`, RCPT without `TO:`, or junk after the path.
    PathSyntax,
    /// The address itself is unacceptable.
    Address(AddressRole, AddressError),
    /// MAIL before HELO/EHLO.
    NeedHelo,
    /// MAIL inside a transaction.
    NestedMail,
    /// RCPT or DATA before MAIL.
    NeedMail,
    /// DATA with no accepted recipient.
    NoValidRecipients,
    /// An ESMTP parameter we do not offer.
    UnknownParameter,
    /// An ESMTP parameter after HELO (only EHLO enables them).
    ParametersNeedEhlo,
    /// A known parameter with an invalid or repeated value.
    BadParameter,
    /// `BODY=BINARYMIME`, which needs CHUNKING; we do not offer it.
    BinaryMime,
    /// `SIZE=` above `message_size_max_bytes`.
    DeclaredSizeTooBig,
    /// More than `recipients_max` recipients.
    TooManyRecipients,
    /// A recipient outside the accepted domains.
    RelayDenied,
    /// STARTTLS while not offered.
    TlsNotAvailable,
    /// STARTTLS inside TLS.
    TlsActive,
    /// The body exceeded `message_size_max_bytes`.
    MessageTooBig,
    /// A body line exceeded `text_line_max_bytes` (the value is the limit).
    MessageLineTooLong(usize),
    /// The body holds a NUL byte, which RFC 5321/5322 text never does; a lenient server
    /// downstream might drop it and see an end of data we did not (SMTP smuggling).
    NulInMessage,
    /// A command sent before the previous reply without PIPELINING (RFC 2920). Closes.
    ImproperPipelining,
    /// `errors_max` error replies in one session. Closes.
    TooManyErrors,
    /// AUTH before STARTTLS on the submission port (RFC 4954 §6).
    AuthNeedsTls,
    /// AUTH after a successful AUTH, or inside a transaction.
    AuthBadSequence,
    /// An AUTH mechanism we do not offer.
    AuthMechanism,
    /// The client answered a challenge with `*`.
    AuthCancelled,
    /// An AUTH response that is not base64 or not of the mechanism's form.
    AuthSyntax,
    /// Credentials that cannot be right (another authorization identity, a password over
    /// the bound); the same reply as a wrong password.
    AuthInvalid,
    /// MAIL on the submission port before AUTH.
    AuthRequired,
}

impl ProtocolError {
    /// The reply the client sees for this error.
    pub fn reply(&self) -> Reply {
        match *self {
            Self::CommandLineTooLong => Reply::new(500, Some("5.5.2"), "Line too long"),
            Self::Syntax => Reply::new(500, Some("5.5.2"), "Syntax error"),
            Self::UnknownCommand => Reply::new(500, Some("5.5.1"), "Command unrecognized"),
            Self::NotImplemented => Reply::new(502, Some("5.5.1"), "Command not implemented"),
            Self::ParametersNotAllowed => {
                Reply::new(501, Some("5.5.4"), "Syntax error, no parameters allowed")
            }
            Self::ArgumentRequired => Reply::new(501, Some("5.5.4"), "Argument required"),
            Self::PathSyntax => Reply::new(
                501,
                Some("5.5.4"),
                "Syntax: MAIL FROM:<address> or RCPT TO:<address>",
            ),
            Self::Address(role, error) => address_reply(role, error),
            Self::NeedHelo => Reply::new(503, Some("5.5.1"), "Send HELO/EHLO first"),
            Self::NestedMail => Reply::new(503, Some("5.5.1"), "Nested MAIL command"),
            Self::NeedMail => Reply::new(503, Some("5.5.1"), "Need MAIL command"),
            Self::NoValidRecipients => Reply::new(554, Some("5.5.1"), "No valid recipients"),
            Self::UnknownParameter => Reply::new(555, Some("5.5.4"), "Unsupported parameter"),
            Self::ParametersNeedEhlo => Reply::new(555, Some("5.5.4"), "Parameters require EHLO"),
            Self::BadParameter => Reply::new(501, Some("5.5.4"), "Invalid parameter value"),
            Self::BinaryMime => Reply::new(
                555,
                Some("5.5.4"),
                "BODY=BINARYMIME requires CHUNKING, which is not offered",
            ),
            Self::DeclaredSizeTooBig | Self::MessageTooBig => Reply::new(
                552,
                Some("5.3.4"),
                "Message size exceeds fixed maximum message size",
            ),
            Self::TooManyRecipients => Reply::new(452, Some("4.5.3"), "Too many recipients"),
            Self::RelayDenied => Reply::new(550, Some("5.7.1"), "Relay access denied"),
            Self::TlsNotAvailable => Reply::new(502, Some("5.5.1"), "STARTTLS not available"),
            Self::TlsActive => Reply::new(503, Some("5.5.1"), "TLS already active"),
            Self::MessageLineTooLong(limit) => Reply::new(
                552,
                Some("5.3.4"),
                format!("Message line longer than {limit} bytes"),
            ),
            Self::NulInMessage => Reply::new(
                554,
                Some("5.6.0"),
                "Message contains NUL bytes, which mail may not carry",
            ),
            Self::ImproperPipelining => {
                Reply::new(554, Some("5.5.0"), "Improper command pipelining")
            }
            Self::TooManyErrors => Reply::new(421, Some("4.7.0"), "Too many errors, closing"),
            Self::AuthNeedsTls => Reply::new(
                538,
                Some("5.7.11"),
                "Encryption required for requested authentication mechanism",
            ),
            Self::AuthBadSequence => Reply::new(503, Some("5.5.1"), "AUTH not allowed now"),
            Self::AuthMechanism => {
                Reply::new(504, Some("5.5.4"), "Unrecognized authentication type")
            }
            Self::AuthCancelled => Reply::new(501, Some("5.7.0"), "Authentication cancelled"),
            Self::AuthSyntax => Reply::new(501, Some("5.5.2"), "Cannot decode AUTH response"),
            Self::AuthInvalid => Reply::auth_failed(),
            Self::AuthRequired => Reply::new(530, Some("5.7.0"), "Authentication required"),
        }
    }

    /// Whether the session ends right after this reply.
    pub fn closes_session(&self) -> bool {
        matches!(self, Self::ImproperPipelining | Self::TooManyErrors)
    }
}

fn address_reply(role: AddressRole, error: AddressError) -> Reply {
    let (status, who) = match role {
        AddressRole::Sender => ("5.1.7", "sender"),
        AddressRole::Recipient => ("5.1.3", "recipient"),
    };
    match error {
        AddressError::Syntax => Reply::new(501, Some(status), format!("Bad {who} address syntax")),
        AddressError::TooLong => {
            Reply::new(553, Some(status), format!("The {who} address is too long"))
        }
        AddressError::NonAscii => Reply::new(
            553,
            Some("5.6.7"),
            format!("Non-ASCII {who} address requires SMTPUTF8"),
        ),
    }
}
