//! Property tests: arbitrary input never panics and never grows memory past the bounds,
//! and the DATA receiver agrees with a simple model on any bytes and any chunking.

use std::sync::Arc;

use proptest::prelude::*;

use super::data::{DataLimits, DataReceiver, Ingest};
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

fn small_limits() -> SmtpLimits {
    SmtpLimits {
        command_line_max_bytes: 64,
        text_line_max_bytes: 80,
        message_size_max_bytes: 512,
        recipients_max: 3,
        errors_max: 1000,
    }
}

/// The most a protocol with `limits` may hold at once.
fn memory_bound(limits: &SmtpLimits) -> usize {
    let body = usize::try_from(limits.message_size_max_bytes).unwrap_or(usize::MAX);
    limits.command_line_max_bytes + limits.pending_max_bytes() + body
}

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(FRAGMENTS).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Runs `pieces` through a protocol, answering TLS (and messages if asked), checking bounds.
fn drive(pieces: &[Vec<u8>], answer_messages: bool) -> Result<(), TestCaseError> {
    let mut config = config();
    config.limits = small_limits();
    let bound = memory_bound(&config.limits);
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
                Event::CheckRcpt(_) => prop_assert!(false, "recipient checks are off"),
                Event::Auth(_) => prop_assert!(false, "AUTH is not offered on port 25"),
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

/// What the DATA receiver should make of `input`: the body and the bytes consumed, or
/// `None` without a terminator. Written independently of the state machine: find the
/// first CRLF "." CRLF (the start counts as after a CRLF), split the data at CRLF,
/// un-stuff one leading dot per line, turn bare CR and LF into CRLF.
fn model(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut framed = b"\r\n".to_vec();
    framed.extend_from_slice(input);
    let end = framed.windows(5).position(|w| w == b"\r\n.\r\n")?;
    let data = framed.get(2..end + 2)?;
    let mut body = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let line_len = rest.windows(2).position(|w| w == b"\r\n")?;
        let (line, tail) = rest.split_at(line_len);
        let line = line.strip_prefix(b".").unwrap_or(line);
        for &byte in line {
            match byte {
                b'\r' | b'\n' => body.extend_from_slice(b"\r\n"),
                _ => body.push(byte),
            }
        }
        body.extend_from_slice(b"\r\n");
        rest = tail.get(2..)?;
    }
    Some((body, end + 3))
}

/// Feeds `input` to a fresh receiver in chunks cut at `cuts`.
fn receive(input: &[u8], cuts: &[usize]) -> Option<(Vec<u8>, usize)> {
    let mut receiver = DataReceiver::new(DataLimits {
        body_max_bytes: 1 << 20,
        line_max_bytes: 1 << 20,
    });
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(input.len());
    let mut start = 0;
    for cut in cuts {
        let chunk = input.get(start..cut.max(start))?;
        if let Ingest::Done { consumed } = receiver.ingest(chunk) {
            let body = receiver.finish().ok()?;
            return Some((body, start + consumed));
        }
        start = cut.max(start);
    }
    None
}

/// Message text made of line-ending and dot fragments, so terminators and near misses
/// are common.
fn data_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragments: Vec<&'static [u8]> = vec![
        b"\r",
        b"\n",
        b"\r\n",
        b".",
        b"x",
        b"\x00",
        b"\xff",
        b"\r\n.\r\n",
        b"\r\n.",
    ];
    prop::collection::vec(prop::sample::select(fragments), 0..80).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut protocol = Protocol::new(Arc::new(config()));
        let _ = protocol.feed(&input);
        prop_assert!(protocol.buffered_bytes() <= memory_bound(&SmtpLimits::default()));
    }

    #[test]
    fn steered_input_stays_bounded(pieces in prop::collection::vec(piece(), 0..120)) {
        drive(&pieces, true)?;
    }

    #[test]
    fn unanswered_messages_stay_bounded(pieces in prop::collection::vec(piece(), 0..120)) {
        drive(&pieces, false)?;
    }

    #[test]
    fn data_receiver_matches_the_model(
        input in data_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let expected = model(&input);
        prop_assert_eq!(receive(&input, &[]), expected.clone());
        prop_assert_eq!(receive(&input, &cuts), expected.clone());
        if let Some((body, _)) = expected {
            let only_crlf = body.windows(2).all(|w| (w[0] == b'\r') == (w[1] == b'\n'));
            prop_assert!(only_crlf && body.first() != Some(&b'\n'));
        }
    }
}

#[test]
fn model_sanity() {
    assert_eq!(model(b".\r\n"), Some((Vec::new(), 3)));
    assert_eq!(
        model(b"..a\nb\r\n.\r\nX"),
        Some((b".a\r\nb\r\n".to_vec(), 10))
    );
    assert_eq!(model(b"a\n.\n"), None);
}
