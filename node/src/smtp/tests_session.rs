//! Session tests: pipelining, STARTTLS injection, the error limit and the reply wire format.

use super::tests::*;
use super::*;

#[test]
fn pipelining_after_ehlo() {
    let mut t = Transcript::ehlo();
    let out = t.send(
        "MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nRCPT TO:<x@elsewhere.test>\r\n\
         RCPT TO:<b@ours.test>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n",
    );
    let out = out.expect_all(&[
        "250 2.1.0",
        "250 2.1.5",
        "550 5.7.1",
        "250 2.1.5",
        "354",
        MESSAGE,
    ]);
    assert_eq!(out.message().rcpt_to, ["a@ours.test", "b@ours.test"]);
    t.done(Reply::ok_queued("X"))
        .expect_all(&["250 2.0.0 Ok: queued as X", "221", CLOSE]);
}

#[test]
fn replies_wait_for_message_done() {
    let mut t = Transcript::transaction();
    t.send("DATA\r\n").expect("354");
    t.send("one\r\n.\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<b@ours.test>\r\nDATA\r\ntwo\r\n.\r\nNOOP\r\n")
        .expect_all(&[MESSAGE]);
    t.send("RSET\r\n").expect_all(&[]);
    let out = t.done(Reply::rejected("No thanks"));
    let out = out.expect_all(&[
        "550 5.7.1 No thanks",
        "250 2.1.0",
        "250 2.1.5",
        "354",
        MESSAGE,
    ]);
    assert_eq!(out.message().body, b"two\r\n");
    t.done(Reply::tempfail("Later"))
        .expect_all(&["451 4.7.1 Later", "250 2.0.0", "250 2.0.0"]);
}

#[test]
fn message_done_without_message_does_nothing() {
    let mut t = Transcript::ehlo();
    t.done(Reply::ok_queued("X")).expect_all(&[]);
    t.send("NOOP\r\n").expect("250");
}

#[test]
fn pipelining_refused_before_ehlo_and_after_helo() {
    let mut t = Transcript::new();
    t.send("EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n")
        .expect_all(&["554 5.5.0 Improper command pipelining", CLOSE]);
    assert!(t.protocol.is_closed());

    let mut t = Transcript::new();
    t.send("HELO client.test\r\n").expect("250 mx.test");
    t.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\n")
        .expect_all(&["554 5.5.0", CLOSE]);

    let mut t = Transcript::new();
    t.send("HELO client.test\r\n").expect("250");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250");
    t.send("DATA\r\nbody\r\n.\r\n")
        .expect_all(&["554 5.5.0", CLOSE]);
}

#[test]
fn helo_client_must_wait_for_the_message_reply() {
    let mut t = Transcript::new();
    t.send("HELO client.test\r\n").expect("250");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250");
    t.send("DATA\r\n").expect("354");
    t.send("body\r\n.\r\nQUIT\r\n").expect_all(&[MESSAGE]);
    t.done(Reply::ok_queued("X"))
        .expect_all(&["250 2.0.0", "554 5.5.0", CLOSE]);
}

#[test]
fn helo_client_in_lockstep_is_fine() {
    let mut t = Transcript::new();
    t.send("HELO client.test\r\n").expect("250");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250");
    t.send("DATA\r\n").expect("354");
    t.send("body\r\n.\r\n").expect_all(&[MESSAGE]);
    t.done(Reply::ok_queued("X")).expect("250 2.0.0");
    t.send("QUIT\r\n").expect_all(&["221", CLOSE]);
}

#[test]
fn pending_input_is_bounded() {
    let mut t = Transcript::with(|c| c.limits.command_line_max_bytes = 64);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nDATA\r\n")
        .expect_all(&["250", "250", "354"]);
    t.send("x\r\n.\r\n").expect_all(&[MESSAGE]);
    let bound = SmtpLimits {
        command_line_max_bytes: 64,
        ..SmtpLimits::default()
    }
    .pending_max_bytes();
    let noops = "NOOP\r\n".repeat(bound / 6);
    t.send(&noops).expect_all(&[]);
    assert!(t.protocol.wants_input());
    t.send("NOOP\r\n".repeat(10)).expect_all(&[]);
    assert!(!t.protocol.wants_input());
    assert_eq!(t.protocol.buffered_bytes(), bound);
    t.done(Reply::ok_queued("X"))
        .expect_all(&["250 2.0.0", "554 5.5.0", CLOSE]);
}

#[test]
fn starttls_discards_injected_commands() {
    let mut t = Transcript::ehlo();
    t.send("STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<a@ours.test>\r\n")
        .expect_all(&["220 2.0.0 Ready to start TLS", STARTTLS]);
    assert!(!t.protocol.wants_input());
    t.send("DATA\r\n").expect_all(&[]);
    t.protocol.tls_established();
    assert_eq!(t.protocol.buffered_bytes(), 0);
    t.send("MAIL FROM:<a@remote.test>\r\n")
        .expect("503 5.5.1 Send HELO/EHLO first");
    let out = t.send("EHLO client.test\r\n");
    assert!(!describe(&out.events[0]).contains("STARTTLS"));
    t.send("STARTTLS\r\n")
        .expect("503 5.5.1 TLS already active");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250 2.1.0");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250");
    t.send("DATA\r\n").expect("354");
    assert!(t.send(".\r\n").message().tls);
}

#[test]
fn starttls_discards_a_partial_line() {
    let mut t = Transcript::ehlo();
    t.send("STARTTLS\r\nNO").expect_all(&["220", STARTTLS]);
    t.protocol.tls_established();
    t.send("OP\r\n").expect("500 5.5.1");
}

#[test]
fn starttls_unavailable_or_with_argument() {
    let mut t = Transcript::with(|c| c.starttls_available = false);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("STARTTLS\r\n")
        .expect("502 5.5.1 STARTTLS not available");
    t.send("STARTTLS now\r\n").expect("501 5.5.4");
}

#[test]
fn tls_established_outside_starttls_is_ignored() {
    let mut t = Transcript::transaction();
    t.protocol.tls_established();
    t.send("DATA\r\n").expect("354");
    assert!(!t.send(".\r\n").message().tls);
}

#[test]
fn too_many_errors_close_the_session() {
    let mut t = Transcript::with(|c| c.limits.errors_max = 3);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("FROB\r\n").expect("500");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("503");
    t.send("NOOP\r\n").expect("250");
    t.send("EXPN x\r\n")
        .expect_all(&["502 5.5.1", "421 4.7.0 Too many errors", CLOSE]);
    assert!(t.protocol.is_closed());
}

#[test]
fn default_errors_max_is_twenty() {
    let mut t = Transcript::ehlo();
    for _ in 0..19 {
        t.send("FROB\r\n").expect("500");
    }
    t.send("FROB\r\n").expect_all(&["500", "421 4.7.0", CLOSE]);
}

#[test]
fn reply_wire_format() {
    let reply = Reply::multiline(250, Some("2.0.0"), ["first", "second"]);
    assert_eq!(reply.to_bytes(), b"250-2.0.0 first\r\n250 2.0.0 second\r\n");
    assert_eq!(
        Reply::multiline(250, None, Vec::<String>::new()).to_bytes(),
        b"250\r\n"
    );
    let forged = Reply::rejected("bad\r\n250 2.0.0 Ok");
    assert_eq!(forged.to_bytes(), b"550 5.7.1 bad  250 2.0.0 Ok\r\n");
    let long = Reply::rejected("é".repeat(400));
    let bytes = long.to_bytes();
    assert!(bytes.len() <= super::reply::REPLY_LINE_MAX_BYTES);
    assert!(String::from_utf8(bytes).is_ok());
    assert_eq!(forged.to_string(), "550 5.7.1 bad  250 2.0.0 Ok");
}

#[test]
fn reply_classes_and_constructors() {
    let cases = [
        (Reply::ok_queued("ID1"), "250 2.0.0 Ok: queued as ID1\r\n"),
        (
            Reply::tempfail_store(),
            "451 4.3.0 Local storage error, try again later\r\n",
        ),
        (Reply::rejected("Spam"), "550 5.7.1 Spam\r\n"),
        (Reply::tempfail("Greylisted"), "451 4.7.1 Greylisted\r\n"),
        (
            Reply::shutting_down(),
            "421 4.3.2 Service shutting down\r\n",
        ),
        (
            Reply::drained(),
            "421 4.3.2 Service not available: this node is drained, try another MX\r\n",
        ),
        (Reply::timeout(), "421 4.4.2 Error: timeout exceeded\r\n"),
        (
            Reply::too_busy(),
            "421 4.7.0 Too many connections, try again later\r\n",
        ),
        (
            Reply::early_talker(),
            "554 5.5.0 Protocol error: client spoke before greeting\r\n",
        ),
    ];
    for (reply, wire) in cases {
        assert_eq!(String::from_utf8(reply.to_bytes()).unwrap(), wire);
    }
    assert!(Reply::ok_queued("x").is_positive());
    assert!(Reply::new(354, None, "go").is_positive());
    assert!(Reply::tempfail_store().is_transient());
    assert!(Reply::rejected("x").is_permanent());
    assert!(!Reply::rejected("x").is_positive());
}

#[test]
fn bare_postmaster_is_accepted_and_goes_to_the_first_domain() {
    let mut t = Transcript::ehlo();
    t.send("MAIL FROM:<sender@remote.test>\r\n")
        .expect("250 2.1.0");
    t.send("RCPT TO:<Postmaster>\r\n").expect("250 2.1.5");
    t.send("RCPT TO:<postmaster@remote.test>\r\n")
        .expect("550 5.7.1");
    t.send("DATA\r\n").expect("354");
    let out = t.send("Subject: x\r\n\r\nx\r\n.\r\n");
    let envelope = out.message();
    assert_eq!(envelope.rcpt_to, ["postmaster@ours.test"]);
}
