//! AUTH on the submission port, and relaying for trusted and authenticated clients.

use super::reply::Reply;
use super::tests::{CLOSE, MESSAGE, STARTTLS, Transcript};

/// base64 of `\0alice\0s3cret`.
const PLAIN_ALICE: &str = "AGFsaWNlAHMzY3JldA==";

/// A submission session after STARTTLS and a second EHLO.
fn submission_over_tls() -> Transcript {
    let mut t = Transcript::with(|c| c.submission = true);
    t.send("EHLO client.test\r\n").expect("250-mx.test");
    t.send("STARTTLS\r\n").expect_all(&["220 2.0.0", STARTTLS]);
    t.protocol.tls_established();
    let out = t.send("EHLO client.test\r\n");
    let text = super::tests::describe(&out.events[0]);
    assert!(text.contains("250 AUTH PLAIN LOGIN"), "{text}");
    t
}

#[test]
fn auth_is_neither_offered_nor_accepted_before_tls() {
    let mut t = Transcript::with(|c| c.submission = true);
    let out = t.send("EHLO client.test\r\n");
    let text = super::tests::describe(&out.events[0]);
    assert!(!text.contains("AUTH"), "{text}");
    t.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n"))
        .expect("538 5.7.11");
    t.send("MAIL FROM:<alice@ours.test>\r\n")
        .expect("530 5.7.0 Authentication required");
}

#[test]
fn port_25_does_not_implement_auth() {
    let mut t = Transcript::ehlo();
    t.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n"))
        .expect("502 5.5.1");
}

#[test]
fn plain_auth_then_mail_to_any_domain() {
    let mut t = submission_over_tls();
    t.send("MAIL FROM:<alice@ours.test>\r\n")
        .expect("530 5.7.0");
    t.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n"))
        .expect("<auth alice>");
    let ok = t.protocol.auth_checked(None);
    assert_eq!(ok.len(), 1);
    assert_eq!(
        super::tests::describe(&ok[0]),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(t.protocol.auth_user(), Some("alice"));
    t.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n"))
        .expect("503 5.5.1");
    t.send("MAIL FROM:<alice@ours.test>\r\n")
        .expect("250 2.1.0");
    t.send("RCPT TO:<friend@elsewhere.test>\r\n")
        .expect("250 2.1.5");
    t.send("DATA\r\n").expect("354");
    let out = t
        .send("Subject: x\r\n\r\nx\r\n.\r\n")
        .expect_all(&[MESSAGE]);
    let envelope = out.message();
    assert!(envelope.outbound);
    assert_eq!(envelope.auth_user.as_deref(), Some("alice"));
    assert!(envelope.tls);
}

#[test]
fn login_auth_goes_through_two_challenges() {
    let mut t = submission_over_tls();
    // "Username:" and "Password:", base64.
    t.send("AUTH LOGIN\r\n").expect("334 VXNlcm5hbWU6");
    t.send("Ym9i\r\n").expect("334 UGFzc3dvcmQ6");
    t.send("cHc=\r\n").expect("<auth bob>");
}

#[test]
fn a_refused_password_is_an_error_and_the_session_stays_unauthenticated() {
    let mut t = submission_over_tls();
    t.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n"))
        .expect("<auth alice>");
    let out = t.protocol.auth_checked(Some(Reply::auth_failed()));
    assert_eq!(
        super::tests::describe(&out[0]),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    assert_eq!(t.protocol.auth_user(), None);
    t.send("MAIL FROM:<alice@ours.test>\r\n")
        .expect("530 5.7.0");
    t.send("AUTH LOGIN\r\n").expect("334");
    t.send("*\r\n").expect("501 5.7.0");
    t.send("AUTH CRAM-MD5\r\n").expect("504 5.5.4");
    t.send("AUTH PLAIN !!!\r\n").expect("501 5.5.2");
}

#[test]
fn too_many_refused_passwords_close_the_session() {
    let mut t = Transcript::with(|c| {
        c.submission = true;
        c.limits.errors_max = 2;
    });
    t.protocol.tls_from_start();
    t.send("EHLO client.test\r\n").expect("250-mx.test");
    t.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n"))
        .expect("<auth alice>");
    let out = t.protocol.auth_checked(Some(Reply::auth_failed()));
    assert_eq!(out.len(), 1);
    t.send(format!("AUTH PLAIN {PLAIN_ALICE}\r\n"))
        .expect("<auth alice>");
    let out = t.protocol.auth_checked(Some(Reply::auth_failed()));
    let described: Vec<String> = out.iter().map(super::tests::describe).collect();
    assert_eq!(described.len(), 3, "{described:?}");
    assert!(described[1].starts_with("421 4.7.0"), "{described:?}");
    assert_eq!(described[2], CLOSE);
}

#[test]
fn untrusted_clients_cannot_relay_and_trusted_ones_can() {
    let mut t = Transcript::transaction();
    t.send("RCPT TO:<friend@elsewhere.test>\r\n")
        .expect("550 5.7.1 Relay access denied");
    let mut t = Transcript::new();
    t.protocol.trust_client();
    t.send("EHLO client.test\r\n").expect("250-mx.test");
    t.send("MAIL FROM:<app@ours.test>\r\n").expect("250 2.1.0");
    t.send("RCPT TO:<friend@elsewhere.test>\r\n")
        .expect("250 2.1.5");
    t.send("DATA\r\n").expect("354");
    let out = t.send("x\r\n.\r\n").expect_all(&[MESSAGE]);
    let envelope = out.message();
    assert!(envelope.outbound);
    assert_eq!(envelope.auth_user, None);
}
