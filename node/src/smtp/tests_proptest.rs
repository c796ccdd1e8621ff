//! Property tests: arbitrary input never panics and never grows memory past the bounds.

use std::sync::Arc;

use proptest::prelude::*;

use super::tests::config;
use super::{Event, Protocol, Reply, SmtpLimits};

/// Fragments that steer random input into every phase.
const FRAGMENTS: &[&[u8]] = &[
    b"EHLO c.test\r\n",
    b"HELO c.test\r\n",
    b"MAIL FROM:<a@remote.test>\r\n",
    b"MAIL FROM:<a@remote.test> SIZE=10 SMTPUTF8\r\n",
    b"RCPT TO:<a@ours.test>\r\n",
    b"RCPT TO:<\"x y\"@ours.test>\r\n",
    b"DATA\r\n",
    b"RSET\r\n",
    b"STARTTLS\r\n",
    b"QUIT\r\n",
    b"\r\n.\r\n",
    b".\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\x00",
    b"\xc3\xa9",
    b"<>@:,\"[]",
];

fn limits() -> SmtpLimits {
    SmtpLimits {
        command_line_max_bytes: 64,
        text_line_max_bytes: 80,
        message_size_max_bytes: 512,
        recipients_max: 3,
        errors_max: 1000,
    }
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(FRAGMENTS).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Runs `pieces` through a protocol, answering messages and TLS, checking bounds.
fn drive(pieces: &[Vec<u8>], answer_messages: bool) -> Result<(), TestCaseError> {
    let mut config = config();
    config.limits = limits();
    let bound = config.limits.command_line_max_bytes + config.limits.pending_max_bytes() + 512;
    let mut protocol = Protocol::new(Arc::new(config));
    let mut awaiting = false;
    for piece in pieces {
        let events = protocol.feed(piece);
        prop_assert!(protocol.buffered_bytes() <= bound);
        for event in events {
            match event {
                Event::StartTls => protocol.tls_established(),
                Event::Message(envelope) => {
                    prop_assert!(envelope.body.len() <= 512);
                    prop_assert!(!envelope.rcpt_to.is_empty() && envelope.rcpt_to.len() <= 3);
                    awaiting = true;
                }
                Event::Reply(reply) => prop_assert!((200..600).contains(&reply.code)),
                Event::Close => prop_assert!(protocol.is_closed()),
            }
        }
        if awaiting && answer_messages {
            awaiting = false;
            let _ = protocol.message_done(Reply::ok_queued("X"));
            prop_assert!(protocol.buffered_bytes() <= bound);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut protocol = Protocol::new(Arc::new(config()));
        let _ = protocol.feed(&input);
        prop_assert!(protocol.buffered_bytes() <= 4096);
    }

    #[test]
    fn steered_input_stays_bounded(pieces in prop::collection::vec(piece(), 0..120)) {
        drive(&pieces, true)?;
    }

    #[test]
    fn unanswered_messages_stay_bounded(pieces in prop::collection::vec(piece(), 0..120)) {
        drive(&pieces, false)?;
    }
}
