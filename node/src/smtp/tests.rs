//! Transcript tests for commands, replies and limits, plus the shared harness.

use std::sync::Arc;

use super::{Envelope, Event, Protocol, ProtocolConfig, Reply, SmtpLimits};

/// Marks an expected [`Event::Close`] in [`Output::expect_all`].
pub const CLOSE: &str = "<close>";
/// Marks an expected [`Event::StartTls`] in [`Output::expect_all`].
pub const STARTTLS: &str = "<starttls>";
/// Marks an expected [`Event::Message`] in [`Output::expect_all`].
pub const MESSAGE: &str = "<message>";

/// The config most tests use: two accepted domains, STARTTLS offered, default limits.
pub fn config() -> ProtocolConfig {
    ProtocolConfig {
        hostname: "mx.test".to_owned(),
        limits: SmtpLimits::default(),
        accepted_domains: vec!["ours.test".to_owned(), "example.com".to_owned()],
        accept_any_domain: false,
        starttls_available: true,
        check_recipients: false,
        submission: false,
    }
}

/// A protocol under test, driven like a client would.
pub struct Transcript {
    pub protocol: Protocol,
}

impl Transcript {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// A transcript with a modified config.
    pub fn with(change: impl FnOnce(&mut ProtocolConfig)) -> Self {
        let mut config = config();
        change(&mut config);
        Self {
            protocol: Protocol::new(Arc::new(config)),
        }
    }

    /// A transcript after a successful EHLO.
    pub fn ehlo() -> Self {
        let mut t = Self::new();
        t.send("EHLO client.test\r\n").expect("250-mx.test");
        t
    }

    /// A transcript inside a transaction with one accepted recipient.
    pub fn transaction() -> Self {
        let mut t = Self::ehlo();
        t.send("MAIL FROM:<sender@remote.test>\r\n")
            .expect("250 2.1.0");
        t.send("RCPT TO:<user@ours.test>\r\n").expect("250 2.1.5");
        t
    }

    pub fn send(&mut self, input: impl AsRef<[u8]>) -> Output {
        Output {
            events: self.protocol.feed(input.as_ref()),
        }
    }

    pub fn done(&mut self, reply: Reply) -> Output {
        Output {
            events: self.protocol.message_done(reply),
        }
    }
}

/// Events from one call, with assertions that read like a transcript.
#[derive(Debug)]
pub struct Output {
    pub events: Vec<Event>,
}

impl Output {
    /// Exactly one event: a reply whose wire text starts with `prefix`.
    #[track_caller]
    pub fn expect(self, prefix: &str) -> Self {
        self.expect_all(&[prefix])
    }

    /// Exactly these events: reply prefixes, or [`CLOSE`], [`STARTTLS`], [`MESSAGE`].
    #[track_caller]
    pub fn expect_all(self, expected: &[&str]) -> Self {
        let actual: Vec<String> = self.events.iter().map(describe).collect();
        let matches = actual.len() == expected.len()
            && actual.iter().zip(expected).all(|(a, e)| a.starts_with(e));
        assert!(matches, "expected {expected:?}, got {actual:?}");
        self
    }

    /// The one message among the events.
    #[track_caller]
    pub fn message(&self) -> Envelope {
        let messages: Vec<&Envelope> = self
            .events
            .iter()
            .filter_map(|event| match event {
                Event::Message(envelope) => Some(envelope),
                _ => None,
            })
            .collect();
        assert_eq!(messages.len(), 1, "events: {:?}", self.events);
        messages[0].clone()
    }
}

/// One event as text: a reply's wire form, or a marker.
pub fn describe(event: &Event) -> String {
    match event {
        Event::Reply(reply) => String::from_utf8_lossy(&reply.to_bytes()).into_owned(),
        Event::StartTls => STARTTLS.to_owned(),
        Event::Message(_) => MESSAGE.to_owned(),
        Event::CheckRcpt(check) => format!("<check {}>", check.rcpt),
        Event::Auth(credentials) => format!("<auth {}>", credentials.user),
        Event::Close => CLOSE.to_owned(),
    }
}

#[test]
fn greeting_names_the_host() {
    let t = Transcript::new();
    assert_eq!(
        t.protocol.greeting().to_bytes(),
        b"220 mx.test ESMTP mxmesh\r\n"
    );
}

#[test]
fn ehlo_advertises_every_extension() {
    let mut t = Transcript::new();
    let out = t.send("EHLO client.test\r\n");
    assert_eq!(
        describe(&out.events[0]),
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 STARTTLS\r\n"
    );
}

#[test]
fn ehlo_omits_starttls_when_unavailable() {
    let mut t = Transcript::with(|c| c.starttls_available = false);
    let out = t.send("EHLO client.test\r\n");
    let text = describe(&out.events[0]);
    assert!(text.ends_with("250 SMTPUTF8\r\n"), "{text}");
    assert!(!text.contains("STARTTLS"));
}

#[test]
fn helo_is_plain() {
    let mut t = Transcript::new();
    let out = t.send("HELO client.test\r\n");
    assert_eq!(describe(&out.events[0]), "250 mx.test\r\n");
}

#[test]
fn ehlo_and_helo_need_an_argument() {
    let mut t = Transcript::new();
    t.send("EHLO\r\n").expect("501 5.5.4");
    t.send("HELO \r\n").expect("501 5.5.4");
}

#[test]
fn full_transaction_yields_an_envelope() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM:<sender@remote.test> SIZE=20 BODY=8BITMIME\r\n")
        .expect("250 2.1.0 Ok");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250 2.1.5 Ok");
    t.send("RCPT TO:<b@Example.COM>\r\n").expect("250 2.1.5 Ok");
    t.send("DATA\r\n")
        .expect("354 End data with <CR><LF>.<CR><LF>");
    assert!(t.protocol.in_data());
    let out = t
        .send("Subject: hi\r\n\r\nbody\r\n.\r\n")
        .expect_all(&[MESSAGE]);
    assert!(!t.protocol.in_data());
    let envelope = out.message();
    assert_eq!(
        envelope,
        Envelope {
            helo: "client.test".to_owned(),
            esmtp: true,
            mail_from: "sender@remote.test".to_owned(),
            rcpt_to: vec!["a@ours.test".to_owned(), "b@Example.COM".to_owned()],
            body: b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
            declared_size: Some(20),
            smtputf8: false,
            body_8bitmime: true,
            tls: false,
            outbound: false,
            auth_user: None,
        }
    );
    t.done(Reply::ok_queued("01ABC"))
        .expect("250 2.0.0 Ok: queued as 01ABC\r\n");
    t.send("MAIL FROM:<>\r\n").expect("250 2.1.0");
}

#[test]
fn verbs_are_case_insensitive() {
    let mut t = Transcript::new();
    t.send("ehlo client.test\r\n").expect("250-mx.test");
    t.send("mail from:<a@remote.test>\r\n").expect("250 2.1.0");
    t.send("rCpT tO:<a@ours.test>\r\n").expect("250 2.1.5");
    t.send("data\r\n").expect("354");
}

#[test]
fn commands_out_of_order_get_503() {
    let mut t = Transcript::new();
    t.send("MAIL FROM:<a@remote.test>\r\n")
        .expect("503 5.5.1 Send HELO/EHLO first");
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("RCPT TO:<a@ours.test>\r\n")
        .expect("503 5.5.1 Need MAIL command");
    t.send("DATA\r\n").expect("503 5.5.1 Need MAIL command");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250 2.1.0");
    t.send("MAIL FROM:<a@remote.test>\r\n")
        .expect("503 5.5.1 Nested MAIL command");
    t.send("DATA\r\n").expect("554 5.5.1 No valid recipients");
}

#[test]
fn data_after_only_refused_recipients_is_554() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<a@elsewhere.test>\r\n")
        .expect("550 5.7.1 Relay access denied");
    t.send("DATA\r\n").expect("554 5.5.1 No valid recipients");
}

#[test]
fn ehlo_resets_the_transaction() {
    let mut t = Transcript::transaction();
    t.send("EHLO again.test\r\n").expect("250-mx.test");
    t.send("DATA\r\n").expect("503 5.5.1");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250 2.1.0");
}

#[test]
fn rset_noop_vrfy_help() {
    let mut t = Transcript::transaction();
    t.send("NOOP\r\n").expect("250 2.0.0 Ok");
    t.send("NOOP anything\r\n").expect("250 2.0.0 Ok");
    t.send("RSET\r\n").expect("250 2.0.0 Ok");
    t.send("RCPT TO:<user@ours.test>\r\n").expect("503 5.5.1");
    t.send("VRFY postmaster\r\n").expect("252 2.5.2");
    t.send("VRFY\r\n").expect("501 5.5.4");
    t.send("HELP\r\n").expect("214 2.0.0");
    t.send("HELP MAIL\r\n").expect("214 2.0.0");
}

#[test]
fn commands_without_parameters_refuse_them() {
    let mut t = Transcript::transaction();
    for command in ["DATA x", "RSET x", "QUIT now", "STARTTLS x"] {
        t.send(format!("{command}\r\n"))
            .expect("501 5.5.4 Syntax error, no parameters allowed");
    }
}

#[test]
fn unimplemented_and_unknown_commands() {
    let mut t = Transcript::ehlo();
    for command in [
        "EXPN staff",
        "AUTH PLAIN AGFiAGM=",
        "BDAT 10 LAST",
        "ETRN ours.test",
    ] {
        t.send(format!("{command}\r\n"))
            .expect("502 5.5.1 Command not implemented");
    }
    t.send("FROB\r\n").expect("500 5.5.1 Command unrecognized");
    t.send("MAILFROM:<a@b.test>\r\n").expect("500 5.5.1");
    t.send("\r\n").expect("500 5.5.2 Syntax error");
}

#[test]
fn quit_closes() {
    let mut t = Transcript::ehlo();
    t.send("QUIT\r\n").expect_all(&["221 2.0.0", CLOSE]);
    assert!(t.protocol.is_closed());
    assert!(!t.protocol.wants_input());
    t.send("NOOP\r\n").expect_all(&[]);
}

#[test]
fn mail_size_parameter() {
    let mut t = Transcript::with(|c| c.limits.message_size_max_bytes = 1000);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("MAIL FROM:<a@remote.test> SIZE=1001\r\n")
        .expect("552 5.3.4 Message size exceeds fixed maximum message size");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("503 5.5.1");
    t.send("MAIL FROM:<a@remote.test> SIZE=99999999999999999999999999\r\n")
        .expect("552 5.3.4");
    t.send("MAIL FROM:<a@remote.test> SIZE=ten\r\n")
        .expect("501 5.5.4");
    t.send("MAIL FROM:<a@remote.test> SIZE=\r\n")
        .expect("501 5.5.4");
    t.send("MAIL FROM:<a@remote.test> SIZE=1000\r\n")
        .expect("250 2.1.0");
}

#[test]
fn mail_body_and_smtputf8_parameters() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM:<a@remote.test> BODY=BINARYMIME\r\n")
        .expect("555 5.5.4");
    t.send("MAIL FROM:<a@remote.test> BODY=9BIT\r\n")
        .expect("501 5.5.4");
    t.send("MAIL FROM:<a@remote.test> SMTPUTF8=yes\r\n")
        .expect("501 5.5.4");
    t.send("MAIL FROM:<a@remote.test> SIZE=1 SIZE=2\r\n")
        .expect("501 5.5.4");
    t.send("MAIL FROM:<a@remote.test> RET=HDRS\r\n")
        .expect("555 5.5.4 Unsupported parameter");
    t.send("MAIL FROM:<a@remote.test> body=7bit smtputf8\r\n")
        .expect("250 2.1.0");
    t.send("RCPT TO:<a@ours.test> NOTIFY=NEVER\r\n")
        .expect("555 5.5.4");
}

#[test]
fn parameters_need_ehlo() {
    let mut t = Transcript::new();
    t.send("HELO client.test\r\n").expect("250 mx.test");
    t.send("MAIL FROM:<a@remote.test> SIZE=10\r\n")
        .expect("555 5.5.4 Parameters require EHLO");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250 2.1.0");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250 2.1.5");
    t.send("DATA\r\n").expect("354");
    let out = t.send("hi\r\n.\r\n").expect_all(&[MESSAGE]);
    assert!(!out.message().esmtp);
    assert_eq!(out.message().helo, "client.test");
}

#[test]
fn relay_denied_and_accepted_domains() {
    let mut t = Transcript::transaction();
    t.send("RCPT TO:<user@elsewhere.test>\r\n")
        .expect("550 5.7.1 Relay access denied");
    t.send("RCPT TO:<user@sub.ours.test>\r\n")
        .expect("550 5.7.1");
    t.send("RCPT TO:<user@OURS.Test>\r\n").expect("250 2.1.5");
    t.send("RCPT TO:<user@ours.test.>\r\n").expect("250 2.1.5");
    t.send("DATA\r\n").expect("354");
    let out = t.send(".\r\n");
    assert_eq!(
        out.message().rcpt_to,
        ["user@ours.test", "user@OURS.Test", "user@ours.test"]
    );
}

#[test]
fn accept_any_domain_is_for_the_sink() {
    let mut t = Transcript::with(|c| c.accept_any_domain = true);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<user@elsewhere.test>\r\n")
        .expect("250 2.1.5");
    t.send("RCPT TO:<user@[192.0.2.1]>\r\n").expect("250 2.1.5");
}

#[test]
fn recipient_limit_is_452() {
    let mut t = Transcript::with(|c| c.limits.recipients_max = 2);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250 2.1.5");
    t.send("RCPT TO:<b@ours.test>\r\n").expect("250 2.1.5");
    t.send("RCPT TO:<c@ours.test>\r\n")
        .expect("452 4.5.3 Too many recipients");
}

#[test]
fn null_sender_and_null_recipient() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM:<>\r\n").expect("250 2.1.0");
    t.send("RCPT TO:<>\r\n")
        .expect("501 5.1.3 Bad recipient address syntax");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250");
    t.send("DATA\r\n").expect("354");
    assert_eq!(t.send(".\r\n").message().mail_from, "");
}

#[test]
fn path_variants() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM: <@relay.test,@other.test:bounce@remote.test>\r\n")
        .expect("250 2.1.0");
    let accepted = [
        ("<\"john doe\"@ours.test>", "\"john doe\"@ours.test"),
        ("<user%victim.test@ours.test>", "user%victim.test@ours.test"),
        ("<victim.test!user@ours.test>", "victim.test!user@ours.test"),
        ("<@hop.test:routed@ours.test>", "routed@ours.test"),
        (
            "<\"user@victim.test\"@ours.test>",
            "\"user@victim.test\"@ours.test",
        ),
    ];
    for (path, _) in accepted {
        t.send(format!("RCPT TO:{path}\r\n")).expect("250 2.1.5");
    }
    t.send("DATA\r\n").expect("354");
    let envelope = t.send(".\r\n").message();
    assert_eq!(envelope.mail_from, "bounce@remote.test");
    let stored: Vec<&str> = accepted.iter().map(|(_, stored)| *stored).collect();
    assert_eq!(envelope.rcpt_to, stored);
}

#[test]
fn double_at_is_not_a_mailbox_at_ours() {
    let mut t = Transcript::transaction();
    t.send("RCPT TO:<user@victim.test@ours.test>\r\n")
        .expect("501 5.1.3 Bad recipient address syntax");
    t.send("RCPT TO:<\"user\"@victim.test@ours.test>\r\n")
        .expect("501 5.1.3");
}

#[test]
fn ip_literals_parse_but_are_never_ours() {
    let mut t = Transcript::transaction();
    t.send("RCPT TO:<user@[192.0.2.1]>\r\n")
        .expect("550 5.7.1 Relay access denied");
    t.send("RCPT TO:<user@[IPv6:2001:db8::1]>\r\n")
        .expect("550 5.7.1");
    t.send("RCPT TO:<user@[192.0.2.300]>\r\n")
        .expect("501 5.1.3");
    t.send("MAIL FROM:<x@[192.0.2.1]>\r\n")
        .expect("503 5.5.1 Nested");
}

#[test]
fn path_syntax_errors() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM:a@remote.test\r\n").expect("501 5.5.4");
    t.send("MAIL FROM:<a@remote.test\r\n").expect("501 5.5.4");
    t.send("MAIL TO:<a@remote.test>\r\n").expect("501 5.5.4");
    t.send("MAIL FROM:<a@remote.test>SIZE=1\r\n")
        .expect("501 5.5.4");
    t.send("MAIL FROM:<a..b@remote.test>\r\n")
        .expect("501 5.1.7 Bad sender address syntax");
    t.send("MAIL FROM:<a@-remote.test>\r\n").expect("501 5.1.7");
    t.send("MAIL FROM:<a@remote..test>\r\n").expect("501 5.1.7");
    t.send("MAIL FROM:<a b@remote.test>\r\n")
        .expect("501 5.1.7");
    t.send("MAIL FROM:<remote.test>\r\n").expect("501 5.1.7");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250 2.1.0");
    t.send("RCPT TO:user@ours.test\r\n").expect("501 5.5.4");
    // Only the bare postmaster may omit the domain (RFC 5321 §4.5.1).
    t.send("RCPT TO:<abuse>\r\n").expect("501 5.1.3");
}

#[test]
fn address_length_limits() {
    let mut t = Transcript::transaction();
    let local = "a".repeat(64);
    t.send(format!("RCPT TO:<{local}@ours.test>\r\n"))
        .expect("250 2.1.5");
    t.send(format!("RCPT TO:<{local}b@ours.test>\r\n"))
        .expect("553 5.1.3 The recipient address is too long");
    let label = "d".repeat(63);
    let domain = [label.as_str(); 4].join(".");
    t.send(format!("RCPT TO:<a@{domain}>\r\n"))
        .expect("553 5.1.3");
    t.send(format!("RCPT TO:<a@{}.test>\r\n", "d".repeat(64)))
        .expect("501 5.1.3");
    let route = format!("@{},", "r".repeat(60)).repeat(4);
    t.send(format!("RCPT TO:<{route}@r.test:a@ours.test>\r\n"))
        .expect("553 5.1.3");
}

#[test]
fn non_ascii_needs_smtputf8() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM:<jörg@remote.test>\r\n")
        .expect("553 5.6.7 Non-ASCII sender address requires SMTPUTF8");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<jörg@ours.test>\r\n").expect("553 5.6.7");
    t.send("RSET\r\n").expect("250");
    t.send("MAIL FROM:<jörg@bücher.test> SMTPUTF8\r\n")
        .expect("250 2.1.0");
    t.send("RCPT TO:<jörg@ours.test>\r\n").expect("250 2.1.5");
    t.send("RCPT TO:<a@ours.test> NOTIFY=ü\r\n")
        .expect("500 5.5.2");
    t.send("NOOP ü\r\n").expect("500 5.5.2 Syntax error");
    t.send("EHLO hö.test\r\n").expect("500 5.5.2");
    t.send(b"NOOP \xff\xfe\r\n").expect("500 5.5.2");
    t.send("DATA\r\n").expect("354");
    let envelope = t.send("Grüße\r\n.\r\n").message();
    assert!(envelope.smtputf8);
    assert_eq!(envelope.mail_from, "jörg@bücher.test");
    assert_eq!(envelope.body, "Grüße\r\n".as_bytes());
}

#[test]
fn nul_and_bare_cr_in_commands_are_syntax_errors() {
    let mut t = Transcript::ehlo();
    t.send(b"NOOP\x00\r\n").expect("500 5.5.2 Syntax error");
    t.send("NO\rOP\r\n").expect("500 5.5.2 Syntax error");
    t.send("NOOP\r\r\n").expect("500 5.5.2 Syntax error");
    t.send("NOOP\n").expect("250 2.0.0");
}

#[test]
fn command_line_limit_is_exact() {
    let mut t = Transcript::with(|c| c.limits.command_line_max_bytes = 64);
    t.send("EHLO client.test\r\n").expect("250-");
    let fits = format!("NOOP {}\r\n", "x".repeat(64 - 7));
    assert_eq!(fits.len(), 64);
    t.send(&fits).expect("250 2.0.0");
    let over = format!("NOOP {}\r\n", "x".repeat(64 - 6));
    t.send(&over).expect("500 5.5.2 Line too long");
    t.send("NOOP\r\n").expect("250 2.0.0");
}

#[test]
fn ten_megabyte_line_stays_bounded() {
    let mut t = Transcript::ehlo();
    let bound = t.protocol.buffered_bytes() + SmtpLimits::default().command_line_max_bytes;
    let chunk = vec![b'A'; 64 * 1024];
    for _ in 0..160 {
        t.send(&chunk).expect_all(&[]);
        assert!(t.protocol.buffered_bytes() <= bound);
    }
    t.send("\r\n").expect("500 5.5.2 Line too long");
    assert_eq!(t.protocol.buffered_bytes(), 0);
    t.send("NOOP\r\n").expect("250 2.0.0");
    let mut t = Transcript::ehlo();
    t.send(vec![b'B'; 10 * 1024 * 1024]).expect_all(&[]);
    assert!(t.protocol.buffered_bytes() <= bound);
}
