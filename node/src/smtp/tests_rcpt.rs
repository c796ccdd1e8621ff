//! Recipient checks at RCPT ([`ProtocolConfig::check_recipients`]).

use super::reply::Reply;
use super::state::{Event, ProtocolConfig};
use super::tests::{MESSAGE, Transcript};

fn checking() -> Transcript {
    let mut t = Transcript::with(|c: &mut ProtocolConfig| c.check_recipients = true);
    t.send("EHLO client.test\r\n").expect("250-mx.test");
    t.send("MAIL FROM:<s@remote.test>\r\n").expect("250 2.1.0");
    t
}

#[test]
fn a_recipient_waits_for_its_verdict() {
    let mut t = checking();
    let out = t
        .send("RCPT TO:<a@ours.test>\r\n")
        .expect("<check a@ours.test>");
    let Event::CheckRcpt(check) = &out.events[0] else {
        unreachable!()
    };
    assert_eq!(check.mail_from, "s@remote.test");
    assert_eq!(check.helo, "client.test");
    assert_eq!(check.accepted, 0);
    let events = t.protocol.rcpt_checked(None);
    assert!(matches!(&events[..], [Event::Reply(r)] if r.code == 250));
}

#[test]
fn a_refused_recipient_is_not_added() {
    let mut t = checking();
    t.send("RCPT TO:<a@ours.test>\r\n").expect("<check");
    let refusal = Reply::new(451, Some("4.7.1"), "Greylisted");
    let events = t.protocol.rcpt_checked(Some(refusal));
    assert!(matches!(&events[..], [Event::Reply(r)] if r.code == 451));
    t.send("DATA\r\n").expect("554 5.5.1");
}

#[test]
fn pipelined_commands_wait_behind_the_check() {
    let mut t = checking();
    let out = t.send("RCPT TO:<a@ours.test>\r\nRCPT TO:<b@ours.test>\r\nDATA\r\n");
    out.expect("<check a@ours.test>");
    let events = t.protocol.rcpt_checked(None);
    assert_eq!(events.len(), 2, "{events:?}");
    let Event::CheckRcpt(second) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(second.rcpt, "b@ours.test");
    assert_eq!(second.accepted, 1);
    let events = t
        .protocol
        .rcpt_checked(Some(Reply::new(550, Some("5.1.1"), "Unknown")));
    let codes: Vec<u16> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(r) => Some(r.code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, [550, 354]);
    let out = t.send("hi\r\n.\r\n").expect_all(&[MESSAGE]);
    assert_eq!(out.message().rcpt_to, ["a@ours.test"]);
}

#[test]
fn relay_denied_comes_before_any_check() {
    let mut t = checking();
    t.send("RCPT TO:<a@elsewhere.test>\r\n").expect("550 5.7.1");
}
