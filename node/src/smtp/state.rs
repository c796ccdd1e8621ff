//! The sans-I/O SMTP server: bytes in, [`Event`]s out.
//!
//! [`Protocol`] never touches a socket or a clock. The session feeds it whatever it read
//! and writes out the replies it returns, in order. Three events hand control back to the
//! session: [`Event::StartTls`] (upgrade the socket, then call
//! [`Protocol::tls_established`]), [`Event::Message`] (decide, store, then call
//! [`Protocol::message_done`]) and [`Event::Close`].
//!
//! Memory is bounded whatever the client sends: a partial command line by
//! `command_line_max_bytes`, a body by `message_size_max_bytes`, and input that arrives
//! while a message waits for its verdict by [`SmtpLimits::pending_max_bytes`].

use std::sync::Arc;

use super::address::{Path, parse_path};
use super::auth::{self, Credentials};
use super::command::{BodyType, Command, LineEvent, LineReader, MailParams, parse_command};
use super::data::{DataError, DataLimits, DataReceiver, Ingest};
use super::reply::{AddressRole, ProtocolError, Reply};

#[path = "state_auth.rs"]
mod state_auth;

/// How many command lines' worth of input may wait while a message awaits its verdict.
pub const PENDING_COMMAND_LINES_MAX: usize = 128;

/// Protocol limits; every buffer and counter the state machine keeps is bounded by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLimits {
    /// Longest command line, CRLF included. RFC 5321 says 512, but ESMTP parameters
    /// extend it (RFC 5321 §4.5.3.1.4), so we allow more.
    pub command_line_max_bytes: usize,
    /// Longest line of message text, CRLF included (RFC 5321 §4.5.3.1.6).
    pub text_line_max_bytes: usize,
    /// Largest message body; advertised as `SIZE`.
    pub message_size_max_bytes: u64,
    /// Most recipients in one transaction.
    pub recipients_max: usize,
    /// Error replies in one session before `421` and close.
    pub errors_max: usize,
}

impl Default for SmtpLimits {
    fn default() -> Self {
        Self {
            command_line_max_bytes: 4096,
            text_line_max_bytes: 1000,
            message_size_max_bytes: 25 * 1024 * 1024,
            recipients_max: 1000,
            errors_max: 20,
        }
    }
}

impl SmtpLimits {
    /// Input kept while a message awaits [`Protocol::message_done`].
    pub fn pending_max_bytes(&self) -> usize {
        self.command_line_max_bytes
            .saturating_mul(PENDING_COMMAND_LINES_MAX)
    }

    fn data_limits(&self) -> DataLimits {
        DataLimits {
            body_max_bytes: usize::try_from(self.message_size_max_bytes).unwrap_or(usize::MAX),
            line_max_bytes: self.text_line_max_bytes,
        }
    }
}

/// Everything the protocol needs to know about this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolConfig {
    /// Our name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Protocol limits.
    pub limits: SmtpLimits,
    /// Domains we accept mail for: lowercase, no trailing dot. Others get relay denied.
    pub accepted_domains: Vec<String>,
    /// Accept recipients in any domain, ignoring `accepted_domains`. Only for the demo
    /// sink that stands in for a downstream server; an MX with this set is an open relay.
    pub accept_any_domain: bool,
    /// Whether STARTTLS is offered (a certificate is configured).
    pub starttls_available: bool,
    /// Whether each recipient that passes the syntax and domain checks is handed to the
    /// session for the sink's verdict ([`Event::CheckRcpt`]): greylisting, recipient
    /// verification, rate limits.
    pub check_recipients: bool,
    /// The submission port: AUTH is offered once the connection is TLS and required
    /// before MAIL; an authenticated client may send to any domain.
    pub submission: bool,
}

/// A recipient to decide on before it is accepted ([`Event::CheckRcpt`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptCheck {
    /// The HELO/EHLO argument.
    pub helo: String,
    /// The reverse-path; `""` for the null sender.
    pub mail_from: String,
    /// The recipient, as it would be accepted.
    pub rcpt: String,
    /// Recipients already accepted in this transaction.
    pub accepted: usize,
    /// The client may relay (a trusted network or an authenticated user): outbound mail.
    pub outbound: bool,
}

/// One received message and its envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO argument.
    pub helo: String,
    /// Whether the client said EHLO.
    pub esmtp: bool,
    /// The reverse-path without brackets; `""` for the null sender `<>`.
    pub mail_from: String,
    /// Accepted recipients without brackets or source routes, in order.
    pub rcpt_to: Vec<String>,
    /// The body with CRLF line endings only, dot-unstuffed, last CRLF kept.
    pub body: Vec<u8>,
    /// `SIZE=` from MAIL, if given.
    pub declared_size: Option<u64>,
    /// Whether MAIL carried `SMTPUTF8`.
    pub smtputf8: bool,
    /// Whether MAIL carried `BODY=8BITMIME`.
    pub body_8bitmime: bool,
    /// Whether the message came over TLS.
    pub tls: bool,
    /// The client may relay to any domain (a `trusted_networks` client or an
    /// authenticated user): the mail is outbound.
    pub outbound: bool,
    /// The user the client authenticated as (submission), if any.
    pub auth_user: Option<String>,
}

/// What the session must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write this reply.
    Reply(Reply),
    /// The 220 for STARTTLS came just before: write it, upgrade the socket, then call
    /// [`Protocol::tls_established`]. Buffered plaintext has been discarded.
    StartTls,
    /// A complete, valid message: decide, then call [`Protocol::message_done`].
    Message(Envelope),
    /// A recipient to decide on: ask the sink, then call [`Protocol::rcpt_checked`].
    CheckRcpt(RcptCheck),
    /// Credentials to check: ask the sink, then call [`Protocol::auth_checked`].
    Auth(Credentials),
    /// Write the pending replies, then close the connection.
    Close,
}

/// Where the protocol is.
#[derive(Debug)]
enum Phase {
    /// Reading command lines.
    Command,
    /// Receiving message text.
    Data(DataReceiver),
    /// A message was handed out; input is held until `message_done`.
    AwaitingMessage,
    /// A recipient was handed out; input is held until `rcpt_checked`.
    AwaitingRcpt(String),
    /// An AUTH exchange waits for the client's answer to a `334` challenge.
    Auth(auth::Pending),
    /// Credentials were handed out; input is held until `auth_checked`.
    AwaitingAuth(state_auth::AuthWait),
    /// STARTTLS accepted; input is discarded until `tls_established`.
    AwaitingTls,
    /// The session is over.
    Closed,
}

/// The client's HELO/EHLO.
#[derive(Debug, Clone)]
struct Helo {
    name: String,
    esmtp: bool,
}

/// The transaction started by MAIL.
#[derive(Debug, Clone)]
struct Transaction {
    mail_from: String,
    params: MailParams,
    rcpt_to: Vec<String>,
}

/// The SMTP server state machine for one connection.
#[derive(Debug)]
pub struct Protocol {
    config: Arc<ProtocolConfig>,
    phase: Phase,
    helo: Option<Helo>,
    tls: bool,
    transaction: Option<Transaction>,
    line: LineReader,
    pending: Vec<u8>,
    pending_overflow: bool,
    errors: usize,
    /// The client may relay without AUTH (`trusted_networks`).
    trusted: bool,
    /// The user authenticated in this session.
    auth_user: Option<String>,
}

impl Protocol {
    /// A fresh connection; send [`Protocol::greeting`] first.
    pub fn new(config: Arc<ProtocolConfig>) -> Self {
        let line = LineReader::new(config.limits.command_line_max_bytes);
        Self {
            config,
            phase: Phase::Command,
            helo: None,
            tls: false,
            transaction: None,
            line,
            pending: Vec::new(),
            pending_overflow: false,
            errors: 0,
            trusted: false,
            auth_user: None,
        }
    }

    /// Lets this client relay to any domain without AUTH (a `trusted_networks` address).
    pub fn trust_client(&mut self) {
        self.trusted = true;
    }

    /// The connection is TLS from its first byte (implicit TLS, RFC 8314); call before
    /// feeding anything.
    pub fn tls_from_start(&mut self) {
        self.tls = true;
    }

    /// Whether this client may send to domains other than ours.
    fn relay_allowed(&self) -> bool {
        self.trusted || self.auth_user.is_some()
    }

    /// `220 {hostname} ESMTP mxmesh`.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, None, format!("{} ESMTP mxmesh", self.config.hostname))
    }

    /// Consumes client bytes and returns what to do, in order.
    ///
    /// After [`Event::Message`] further input is held (up to
    /// [`SmtpLimits::pending_max_bytes`]) until [`Protocol::message_done`].
    pub fn feed(&mut self, input: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        self.process(input, &mut out);
        out
    }

    /// Finishes the message handed out by [`Event::Message`] with `reply`, resets the
    /// transaction (HELO stays) and continues with held input. Does nothing unless a
    /// message is awaiting its reply.
    pub fn message_done(&mut self, reply: Reply) -> Vec<Event> {
        if !matches!(self.phase, Phase::AwaitingMessage) {
            return Vec::new();
        }
        self.phase = Phase::Command;
        self.transaction = None;
        let mut out = vec![Event::Reply(reply)];
        self.resume_held(&mut out);
        out
    }

    /// Finishes the recipient handed out by [`Event::CheckRcpt`]: `None` accepts it (250),
    /// a reply refuses it. Continues with held input. Does nothing unless a recipient is
    /// awaiting its verdict.
    pub fn rcpt_checked(&mut self, refusal: Option<Reply>) -> Vec<Event> {
        let Phase::AwaitingRcpt(rcpt) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Vec::new();
        };
        let reply = match (refusal, self.transaction.as_mut()) {
            (None, Some(transaction)) => {
                transaction.rcpt_to.push(rcpt);
                Reply::new(250, Some("2.1.5"), "Ok")
            }
            (Some(refusal), _) => refusal,
            (None, None) => ProtocolError::NeedMail.reply(),
        };
        let mut out = vec![Event::Reply(reply)];
        self.resume_held(&mut out);
        out
    }

    /// Processes input held while awaiting a verdict.
    fn resume_held(&mut self, out: &mut Vec<Event>) {
        let pending = std::mem::take(&mut self.pending);
        let overflow = std::mem::take(&mut self.pending_overflow);
        if overflow || (!pending.is_empty() && !self.pipelining()) {
            self.refuse(ProtocolError::ImproperPipelining, out);
            return;
        }
        self.process(&pending, out);
    }

    /// The socket is now TLS: everything starts afresh and the client must EHLO again
    /// (RFC 3207 §4.2). Does nothing unless STARTTLS was just accepted.
    pub fn tls_established(&mut self) {
        if !matches!(self.phase, Phase::AwaitingTls) {
            return;
        }
        self.phase = Phase::Command;
        self.tls = true;
        self.helo = None;
        self.transaction = None;
        self.discard_buffered_input();
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether message text is being received (for the per-phase timeout).
    pub fn in_data(&self) -> bool {
        matches!(self.phase, Phase::Data(_))
    }

    /// Whether the session should read more from the socket now.
    pub fn wants_input(&self) -> bool {
        match self.phase {
            Phase::Command | Phase::Data(_) | Phase::Auth(_) => true,
            Phase::AwaitingMessage | Phase::AwaitingRcpt(_) | Phase::AwaitingAuth(_) => {
                self.pending.len() < self.config.limits.pending_max_bytes()
            }
            Phase::AwaitingTls | Phase::Closed => false,
        }
    }

    /// Bytes of client input and body held right now (for tests and metrics).
    pub fn buffered_bytes(&self) -> usize {
        let body = match &self.phase {
            Phase::Data(receiver) => receiver.buffered_bytes(),
            _ => 0,
        };
        self.line.buffered_bytes() + self.pending.len() + body
    }

    fn process(&mut self, mut input: &[u8], out: &mut Vec<Event>) {
        while !input.is_empty() {
            let consumed = match self.phase {
                Phase::Command | Phase::Auth(_) => self.step_command(input, out),
                Phase::Data(_) => self.step_data(input, out),
                Phase::AwaitingMessage | Phase::AwaitingRcpt(_) | Phase::AwaitingAuth(_) => {
                    self.hold(input)
                }
                Phase::AwaitingTls | Phase::Closed => input.len(),
            };
            input = input.get(consumed..).unwrap_or_default();
        }
    }

    fn step_command(&mut self, input: &[u8], out: &mut Vec<Event>) -> usize {
        let (consumed, line) = self.line.read(input);
        if let Some(line) = line {
            let more_buffered = consumed < input.len();
            self.on_line(line, more_buffered, out);
        }
        consumed
    }

    fn step_data(&mut self, input: &[u8], out: &mut Vec<Event>) -> usize {
        let Phase::Data(receiver) = &mut self.phase else {
            return input.len();
        };
        match receiver.ingest(input) {
            Ingest::NeedMore => input.len(),
            Ingest::Done { consumed } => {
                let more_buffered = consumed < input.len();
                self.on_data_end(more_buffered, out);
                consumed
            }
        }
    }

    /// Keeps input for after `message_done`, up to the bound; the excess is an error.
    fn hold(&mut self, input: &[u8]) -> usize {
        let room = self
            .config
            .limits
            .pending_max_bytes()
            .saturating_sub(self.pending.len());
        let kept = input.get(..room).unwrap_or(input);
        self.pending.extend_from_slice(kept);
        self.pending_overflow |= kept.len() < input.len();
        input.len()
    }

    fn on_line(&mut self, line: LineEvent, more_buffered: bool, out: &mut Vec<Event>) {
        if more_buffered && !self.pipelining() {
            self.refuse(ProtocolError::ImproperPipelining, out);
            return;
        }
        if let Phase::Auth(pending) = &self.phase {
            let pending = pending.clone();
            self.phase = Phase::Command;
            self.on_auth_line(pending, line, out);
            return;
        }
        let result = match line {
            LineEvent::TooLong => Err(ProtocolError::CommandLineTooLong),
            LineEvent::Line(bytes) => parse_command(&bytes).and_then(|cmd| self.execute(cmd)),
        };
        match result {
            Ok(_) if matches!(self.phase, Phase::AwaitingRcpt(_)) => {
                out.push(Event::CheckRcpt(self.rcpt_check()));
            }
            Ok(_) if matches!(self.phase, Phase::AwaitingAuth(_)) => {
                if let Some(credentials) = self.take_credentials() {
                    out.push(Event::Auth(credentials));
                }
            }
            Ok(reply) => {
                out.push(Event::Reply(reply));
                match self.phase {
                    Phase::AwaitingTls => out.push(Event::StartTls),
                    Phase::Closed => out.push(Event::Close),
                    _ => {}
                }
            }
            Err(error) => self.refuse(error, out),
        }
    }

    fn on_data_end(&mut self, more_buffered: bool, out: &mut Vec<Event>) {
        let Phase::Data(receiver) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        let transaction = self.transaction.take();
        let error = match (receiver.finish(), transaction) {
            (Ok(body), Some(transaction)) if !body.contains(&0) => {
                self.phase = Phase::AwaitingMessage;
                out.push(Event::Message(self.envelope(transaction, body)));
                return;
            }
            (Ok(_), None) => {
                self.refuse(ProtocolError::NeedMail, out);
                return;
            }
            (Ok(_), Some(_)) => ProtocolError::NulInMessage,
            (Err(DataError::TooBig), _) => ProtocolError::MessageTooBig,
            (Err(DataError::LineTooLong), _) => {
                ProtocolError::MessageLineTooLong(self.config.limits.text_line_max_bytes)
            }
        };
        self.refuse(error, out);
        if more_buffered && !self.pipelining() && !self.is_closed() {
            self.refuse(ProtocolError::ImproperPipelining, out);
        }
    }

    fn envelope(&self, transaction: Transaction, body: Vec<u8>) -> Envelope {
        let (helo, esmtp) = self.helo.as_ref().map_or((String::new(), false), |helo| {
            (helo.name.clone(), helo.esmtp)
        });
        Envelope {
            helo,
            esmtp,
            mail_from: transaction.mail_from,
            rcpt_to: transaction.rcpt_to,
            body,
            declared_size: transaction.params.size,
            smtputf8: transaction.params.smtputf8,
            body_8bitmime: transaction.params.body == Some(BodyType::EightBitMime),
            tls: self.tls,
            outbound: self.relay_allowed(),
            auth_user: self.auth_user.clone(),
        }
    }

    /// Emits the error's reply, then closes if it closes or if it was one error too many.
    fn refuse(&mut self, error: ProtocolError, out: &mut Vec<Event>) {
        out.push(Event::Reply(error.reply()));
        if error.closes_session() {
            self.close(out);
        } else {
            self.count_error(out);
        }
    }

    /// Counts an error reply already emitted; one too many closes (returns true).
    fn count_error(&mut self, out: &mut Vec<Event>) -> bool {
        self.errors = self.errors.saturating_add(1);
        if self.errors < self.config.limits.errors_max {
            return false;
        }
        out.push(Event::Reply(ProtocolError::TooManyErrors.reply()));
        self.close(out);
        true
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        self.phase = Phase::Closed;
        self.discard_buffered_input();
        out.push(Event::Close);
    }

    /// Whether the client may send commands without waiting for replies (RFC 2920).
    fn pipelining(&self) -> bool {
        self.helo.as_ref().is_some_and(|helo| helo.esmtp)
    }

    fn discard_buffered_input(&mut self) {
        self.line.clear();
        self.pending = Vec::new();
        self.pending_overflow = false;
    }

    fn execute(&mut self, command: Command<'_>) -> Result<Reply, ProtocolError> {
        match command {
            Command::Ehlo(name) => Ok(self.ehlo(name)),
            Command::Helo(name) => Ok(self.helo(name)),
            Command::Mail { path, params } => self.mail(path, params),
            Command::Rcpt { path } => self.rcpt(path),
            Command::Data => self.data(),
            Command::Rset => {
                self.transaction = None;
                Ok(Reply::new(250, Some("2.0.0"), "Ok"))
            }
            Command::Noop => Ok(Reply::new(250, Some("2.0.0"), "Ok")),
            Command::Quit => {
                self.phase = Phase::Closed;
                Ok(Reply::new(221, Some("2.0.0"), "Bye"))
            }
            Command::Vrfy => Ok(Reply::new(
                252,
                Some("2.5.2"),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Help => Ok(Reply::new(
                214,
                Some("2.0.0"),
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS",
            )),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial),
        }
    }

    fn ehlo(&mut self, name: &str) -> Reply {
        self.start_session(name, true);
        let limits = &self.config.limits;
        let mut lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".to_owned(),
            format!("SIZE {}", limits.message_size_max_bytes),
            "8BITMIME".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "SMTPUTF8".to_owned(),
        ];
        if self.config.starttls_available && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        if self.auth_offered() {
            lines.push(format!("AUTH {}", auth::AUTH_MECHANISMS));
        }
        Reply::multiline(250, None, lines)
    }

    fn helo(&mut self, name: &str) -> Reply {
        self.start_session(name, false);
        Reply::new(250, None, self.config.hostname.clone())
    }

    /// EHLO and HELO reset any transaction (RFC 5321 §4.1.4).
    fn start_session(&mut self, name: &str, esmtp: bool) {
        self.transaction = None;
        self.helo = Some(Helo {
            name: name.to_owned(),
            esmtp,
        });
    }

    fn mail(&mut self, path: &str, params: MailParams) -> Result<Reply, ProtocolError> {
        let helo = self.helo.as_ref().ok_or(ProtocolError::NeedHelo)?;
        if self.config.submission && self.auth_user.is_none() {
            return Err(ProtocolError::AuthRequired);
        }
        if self.transaction.is_some() {
            return Err(ProtocolError::NestedMail);
        }
        if params.any && !helo.esmtp {
            return Err(ProtocolError::ParametersNeedEhlo);
        }
        if params
            .size
            .is_some_and(|size| size > self.config.limits.message_size_max_bytes)
        {
            return Err(ProtocolError::DeclaredSizeTooBig);
        }
        let mail_from = match parse_path(path, params.smtputf8) {
            Ok(Path::Null) => String::new(),
            Ok(Path::Mailbox(mailbox)) => mailbox.to_string(),
            Err(error) => return Err(ProtocolError::Address(AddressRole::Sender, error)),
        };
        self.transaction = Some(Transaction {
            mail_from,
            params,
            rcpt_to: Vec::new(),
        });
        Ok(Reply::new(250, Some("2.1.0"), "Ok"))
    }

    fn rcpt(&mut self, path: &str) -> Result<Reply, ProtocolError> {
        let anywhere = self.config.accept_any_domain || self.relay_allowed();
        let transaction = self.transaction.as_mut().ok_or(ProtocolError::NeedMail)?;
        let invalid = |error| ProtocolError::Address(AddressRole::Recipient, error);
        let mailbox = match super::postmaster::mailbox(path, &self.config.accepted_domains) {
            Some(postmaster) => postmaster,
            None => match parse_path(path, transaction.params.smtputf8).map_err(invalid)? {
                Path::Mailbox(mailbox) => mailbox,
                Path::Null => return Err(invalid(super::address::AddressError::Syntax)),
            },
        };
        if transaction.rcpt_to.len() >= self.config.limits.recipients_max {
            return Err(ProtocolError::TooManyRecipients);
        }
        if !anywhere && !mailbox.is_in(&self.config.accepted_domains) {
            return Err(ProtocolError::RelayDenied);
        }
        if self.config.check_recipients {
            // The reply comes from `rcpt_checked`; `on_line` hands the recipient out.
            self.phase = Phase::AwaitingRcpt(mailbox.to_string());
            return Ok(Reply::new(250, Some("2.1.5"), "Ok"));
        }
        transaction.rcpt_to.push(mailbox.to_string());
        Ok(Reply::new(250, Some("2.1.5"), "Ok"))
    }

    /// The recipient awaiting its verdict, with its transaction.
    fn rcpt_check(&self) -> RcptCheck {
        let rcpt = match &self.phase {
            Phase::AwaitingRcpt(rcpt) => rcpt.clone(),
            _ => String::new(),
        };
        let transaction = self.transaction.as_ref();
        RcptCheck {
            helo: self
                .helo
                .as_ref()
                .map_or_else(String::new, |h| h.name.clone()),
            mail_from: transaction.map_or_else(String::new, |t| t.mail_from.clone()),
            rcpt,
            accepted: transaction.map_or(0, |t| t.rcpt_to.len()),
            outbound: self.relay_allowed(),
        }
    }

    fn data(&mut self) -> Result<Reply, ProtocolError> {
        let transaction = self.transaction.as_ref().ok_or(ProtocolError::NeedMail)?;
        if transaction.rcpt_to.is_empty() {
            return Err(ProtocolError::NoValidRecipients);
        }
        self.phase = Phase::Data(DataReceiver::new(self.config.limits.data_limits()));
        Ok(Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"))
    }

    /// Accepts STARTTLS; the caller discards whatever else is buffered (RFC 3207 §5,
    /// CVE-2011-0411): `process` drops input while awaiting TLS.
    fn starttls(&mut self) -> Result<Reply, ProtocolError> {
        if self.tls {
            return Err(ProtocolError::TlsActive);
        }
        if !self.config.starttls_available {
            return Err(ProtocolError::TlsNotAvailable);
        }
        self.phase = Phase::AwaitingTls;
        self.discard_buffered_input();
        Ok(Reply::new(220, Some("2.0.0"), "Ready to start TLS"))
    }
}
