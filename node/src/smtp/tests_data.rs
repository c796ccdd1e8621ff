//! DATA receiver tests: terminator, smuggling, normalisation, limits, chunking.

use std::sync::Arc;

use super::tests::{MESSAGE, Transcript, config, describe};
use super::{Event, Protocol, ProtocolConfig, Reply};

/// The body stored for `text` sent after a 354.
fn body_of(text: &[u8]) -> Vec<u8> {
    let mut t = Transcript::transaction();
    t.send("DATA\r\n").expect("354");
    t.send(text).expect_all(&[MESSAGE]).message().body
}

#[test]
fn body_keeps_its_last_line_ending() {
    assert_eq!(body_of(b"a\r\nb\r\n.\r\n"), b"a\r\nb\r\n");
}

#[test]
fn first_line_dot_is_an_empty_message() {
    assert_eq!(body_of(b".\r\n"), b"");
}

#[test]
fn dot_unstuffing() {
    assert_eq!(body_of(b"..\r\n.\r\n"), b".\r\n");
    assert_eq!(
        body_of(b"..leading\r\n...two\r\na.b\r\n.\r\n"),
        b".leading\r\n..two\r\na.b\r\n"
    );
    assert_eq!(body_of(b".unstuffed\r\n.\r\n"), b"unstuffed\r\n");
}

#[test]
fn bare_line_endings_become_crlf() {
    assert_eq!(body_of(b"a\nb\rc\r\n.\r\n"), b"a\r\nb\r\nc\r\n");
    assert_eq!(body_of(b"\n\r\r\n.\r\n"), b"\r\n\r\n\r\n");
    assert_eq!(body_of(b"a\r\r\nb\r\n.\r\n"), b"a\r\n\r\nb\r\n");
}

#[test]
fn eight_bit_is_content() {
    assert_eq!(body_of(b"\xff\xfe\x80\r\n.\r\n"), b"\xff\xfe\x80\r\n");
}

#[test]
fn nul_bytes_refuse_the_message_and_keep_the_session() {
    let mut t = Transcript::transaction();
    t.send("DATA\r\n").expect("354");
    t.send(b"a\x00b\r\n.\r\n")
        .expect("554 5.6.0 Message contains NUL bytes");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
}

/// Near misses of CRLF "." CRLF that must be content (SMTP smuggling).
const SMUGGLING_VARIANTS: [&[u8]; 9] = [
    b"\n.\n",
    b"\n.\r",
    b"\r.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
];

const SMUGGLED: &[u8] =
    b"MAIL FROM:<smuggled@remote.test>\r\nRCPT TO:<victim@ours.test>\r\nDATA\r\nforged\r\n";

#[test]
fn smuggling_variants_are_content() {
    for variant in SMUGGLING_VARIANTS {
        let mut input = b"Subject: x\r\n\r\nreal".to_vec();
        input.extend_from_slice(variant);
        input.extend_from_slice(SMUGGLED);
        input.extend_from_slice(b".\r\n");
        let mut t = Transcript::transaction();
        t.send("DATA\r\n").expect("354");
        if variant.contains(&0) {
            // Refused whole: a lenient server could drop the NUL and see an end of data.
            t.send(&input).expect("554 5.6.0");
            continue;
        }
        let out = t.send(&input).expect_all(&[MESSAGE]);
        let body = out.message().body;
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("MAIL FROM:<smuggled@remote.test>\r\nRCPT TO:<victim@ours.test>\r\nDATA\r\nforged\r\n"),
            "variant {variant:?}: {text:?}"
        );
        assert!(
            body.windows(2).all(|w| (w[0] == b'\r') == (w[1] == b'\n')) && body.ends_with(b"\r\n"),
            "only CRLF line endings for {variant:?}: {text:?}"
        );
        t.done(Reply::ok_queued("X")).expect("250 2.0.0");
    }
}

#[test]
fn smuggling_variants_at_message_start_are_content() {
    for variant in SMUGGLING_VARIANTS.iter().filter(|v| !v.contains(&0)) {
        let mut input = variant.to_vec();
        input.extend_from_slice(SMUGGLED);
        input.extend_from_slice(b".\r\n");
        let body = body_of(&input);
        assert!(
            body.windows(SMUGGLED.len()).any(|w| w == SMUGGLED),
            "{variant:?}"
        );
    }
}

#[test]
fn oversize_message_is_552_and_resets() {
    let mut t = Transcript::with(|c| c.limits.message_size_max_bytes = 100);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250");
    t.send("DATA\r\n").expect("354");
    for _ in 0..100 {
        t.send("0123456789012345678901234567890123456789\r\n")
            .expect_all(&[]);
        assert!(t.protocol.buffered_bytes() <= 100);
    }
    t.send(".\r\n")
        .expect("552 5.3.4 Message size exceeds fixed maximum message size\r\n");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("503 5.5.1");
    t.send("NOOP\r\n").expect("250");
}

#[test]
fn message_size_limit_is_exact() {
    let mut t = Transcript::with(|c| c.limits.message_size_max_bytes = 10);
    t.send("EHLO c.test\r\n").expect("250-");
    t.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nDATA\r\n")
        .expect_all(&["250", "250", "354"]);
    assert_eq!(t.send("12345678\r\n.\r\n").message().body.len(), 10);
    t.done(Reply::ok_queued("X")).expect("250");
    t.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nDATA\r\n")
        .expect_all(&["250", "250", "354"]);
    t.send("123456789\r\n.\r\n").expect("552 5.3.4");
}

#[test]
fn text_line_limit_is_exact() {
    let mut t = Transcript::transaction();
    t.send("DATA\r\n").expect("354");
    let fits = format!("{}\r\n", "x".repeat(998));
    t.send(format!("{fits}.\r\n")).expect_all(&[MESSAGE]);
    t.done(Reply::ok_queued("X")).expect("250");
    t.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nDATA\r\n")
        .expect_all(&["250", "250", "354"]);
    let stuffed = format!(".{}\r\n", "x".repeat(998));
    t.send(format!("{stuffed}.\r\n"))
        .expect("552 5.3.4 Message line longer than 1000 bytes");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("503");
}

#[test]
fn very_long_body_line_stays_bounded() {
    let mut t = Transcript::with(|c| c.limits.message_size_max_bytes = 1 << 20);
    t.send("EHLO client.test\r\n").expect("250-");
    t.send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nDATA\r\n")
        .expect_all(&["250", "250", "354"]);
    let chunk = vec![b'y'; 1 << 20];
    for _ in 0..10 {
        t.send(&chunk).expect_all(&[]);
        assert!(t.protocol.buffered_bytes() <= 1 << 20);
    }
    t.send("\r\n.\r\n").expect("552 5.3.4 Message size");
}

#[test]
fn pipelined_commands_after_the_terminator() {
    let mut t = Transcript::transaction();
    let out = t
        .send("DATA\r\nbody\r\n.\r\nRSET\r\n")
        .expect_all(&["354", MESSAGE]);
    assert_eq!(out.message().body, b"body\r\n");
    t.done(Reply::ok_queued("X"))
        .expect_all(&["250 2.0.0 Ok: queued", "250 2.0.0 Ok"]);
}

/// A pipelining session exercising every DATA path; fed after EHLO in various splits.
fn corpus() -> Vec<u8> {
    let mut input = Vec::new();
    for variant in SMUGGLING_VARIANTS {
        input.extend_from_slice(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nDATA\r\n");
        input.extend_from_slice(b"..stuffed\r\nbare\nlf\rcr");
        input.extend_from_slice(variant);
        input.extend_from_slice(SMUGGLED);
        input.extend_from_slice(b".\r\n");
    }
    input.extend_from_slice(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<a@ours.test>\r\nDATA\r\n");
    input.extend_from_slice(&[b'z'; 1200]);
    input.extend_from_slice(b"\r\n.\r\nNOOP\r\nFROB\r\nQUIT\r\n");
    input
}

/// Feeds `chunks` after EHLO, answering every message, and describes all events.
fn run(chunks: &[&[u8]]) -> Vec<String> {
    let config: ProtocolConfig = config();
    let mut protocol = Protocol::new(Arc::new(config));
    protocol.feed(b"EHLO client.test\r\n");
    let mut events = Vec::new();
    for chunk in chunks {
        let mut batch = protocol.feed(chunk);
        while let Some(event) = batch.first().cloned() {
            batch.remove(0);
            if let Event::Message(envelope) = &event {
                events.push(format!("{:?}", envelope.body));
                batch.extend(protocol.message_done(Reply::ok_queued("X")));
            }
            events.push(describe(&event));
        }
    }
    events
}

#[test]
fn every_split_point_gives_the_same_events() {
    let input = corpus();
    let whole = run(&[&input]);
    assert!(whole.len() > 40, "{whole:?}");
    for split in 0..=input.len() {
        let (head, tail) = input.split_at(split);
        assert_eq!(run(&[head, tail]), whole, "split at {split}");
    }
}

#[test]
fn byte_by_byte_gives_the_same_events() {
    let input = corpus();
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes), run(&[&input]));
    let triples: Vec<&[u8]> = input.chunks(3).collect();
    assert_eq!(run(&triples), run(&[&input]));
}

#[test]
fn helo_client_refused_message_then_pipelined_command_closes() {
    let mut t = Transcript::with(|c| c.limits.message_size_max_bytes = 4);
    t.send("HELO client.test\r\n").expect("250");
    t.send("MAIL FROM:<a@remote.test>\r\n").expect("250");
    t.send("RCPT TO:<a@ours.test>\r\n").expect("250");
    t.send("DATA\r\n").expect("354");
    t.send("too big\r\n.\r\nNOOP\r\n")
        .expect_all(&["552 5.3.4", "554 5.5.0", super::tests::CLOSE]);
}
