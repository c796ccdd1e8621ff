//! Wire framing of mesh messages: pure encode/decode, no I/O.
//!
//! A frame is an 8-byte header followed by the body:
//!
//! ```text
//! offset 0  version   u8      FRAME_VERSION of the writer
//!        1  flags     u8      FLAG_RESPONSE, FLAG_ERROR
//!        2  kind      u16 BE  MessageKind (a response echoes the request's kind)
//!        4  body_len  u32 BE  at most FRAME_BODY_BYTES_MAX
//! ```
//!
//! The header layout and the error frame body are frozen across versions: a node can always
//! read a newer peer's header (and its length) and answer "unsupported version" instead of
//! misreading the body, and any node can read any node's error. An error frame's body is a
//! `u16` BE [`ErrorCode`] followed by a UTF-8 message. Version policy: a request is answered
//! in the version it was sent in; a node that does not speak it answers with an
//! UNSUPPORTED_VERSION error frame in its own version, and a sender can fall back.
//!
//! Each message travels on its own QUIC stream: a request is one frame on a bidirectional
//! stream answered by one frame; a one-way message is one frame on a unidirectional stream.

use bytes::{BufMut, Bytes, BytesMut};

use super::transport::{ErrorCode, MessageKind, RemoteError};

/// The wire version this build writes and accepts.
pub const FRAME_VERSION: u8 = 1;
/// Size of the fixed frame header.
pub const FRAME_HEADER_BYTES: usize = 8;
/// Largest body accepted or sent; checked from the header before any body is buffered.
pub const FRAME_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest message kept in an error frame (longer ones are cut at a character boundary).
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1024;
/// Largest error frame body read: the code and a message of at most the size above.
pub const ERROR_BODY_BYTES_MAX: usize = 2 + ERROR_MESSAGE_BYTES_MAX;

/// The frame answers a request.
pub const FLAG_RESPONSE: u8 = 0b01;
/// The body is an error (code + message) instead of a handler's answer.
pub const FLAG_ERROR: u8 = 0b10;

/// The fixed 8-byte frame header, decoded (layout in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The writer's `FRAME_VERSION`.
    pub version: u8,
    /// `FLAG_RESPONSE` and `FLAG_ERROR` bits.
    pub flags: u8,
    /// The message kind (a response echoes the request's kind).
    pub kind: MessageKind,
    /// The body's length in bytes (at most `FRAME_BODY_BYTES_MAX`).
    pub body_len: u32,
}

/// One whole frame: its header and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The 8-byte header.
    pub header: FrameHeader,
    /// The body: the message, or for an error frame a `u16` BE code and a UTF-8 message.
    pub body: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A body longer than `FRAME_BODY_BYTES_MAX` (announced in a header, or to be sent).
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The buffer ends before the frame does.
    #[error("frame truncated: {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
}

/// Result of [`decode`] on a buffer that may hold a partial frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// At least this many bytes are needed in total before a frame can be decoded.
    Incomplete { need: usize },
    /// One frame and the number of bytes it took.
    Frame { frame: Frame, used: usize },
}

impl FrameHeader {
    /// A request (or one-way message) header of this build's version.
    pub fn request(kind: MessageKind, body_len: usize) -> Result<FrameHeader, FrameError> {
        Self::with_flags(kind, 0, body_len)
    }

    /// A response header of this build's version.
    pub fn response(
        kind: MessageKind,
        error: bool,
        body_len: usize,
    ) -> Result<FrameHeader, FrameError> {
        let flags = FLAG_RESPONSE | if error { FLAG_ERROR } else { 0 };
        Self::with_flags(kind, flags, body_len)
    }

    fn with_flags(
        kind: MessageKind,
        flags: u8,
        body_len: usize,
    ) -> Result<FrameHeader, FrameError> {
        Ok(FrameHeader {
            version: FRAME_VERSION,
            flags,
            kind,
            body_len: check_body_len(body_len)?,
        })
    }

    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }

    pub fn body_len(&self) -> usize {
        self.body_len as usize
    }

    /// Whether this node may hand a request with this header to its handler: the version and
    /// kind must be known and it must not be a response. The error is what to answer.
    pub fn check_request(&self) -> Result<(), RemoteError> {
        if self.version != FRAME_VERSION {
            return Err(RemoteError::new(
                ErrorCode::UNSUPPORTED_VERSION,
                format!(
                    "frame version {} (this node speaks {FRAME_VERSION})",
                    self.version
                ),
            ));
        }
        if self.is_response() || self.is_error() {
            return Err(RemoteError::new(
                ErrorCode::MALFORMED,
                format!("unexpected flags {:#04x} on a request", self.flags),
            ));
        }
        if !self.kind.is_known() {
            return Err(RemoteError::new(
                ErrorCode::UNKNOWN_KIND,
                format!("unknown message kind {}", self.kind.0),
            ));
        }
        Ok(())
    }
}

/// The body length as a header field, if it is within [`FRAME_BODY_BYTES_MAX`].
pub fn check_body_len(len: usize) -> Result<u32, FrameError> {
    let too_large = FrameError::TooLarge {
        len,
        max: FRAME_BODY_BYTES_MAX,
    };
    if len > FRAME_BODY_BYTES_MAX {
        return Err(too_large);
    }
    u32::try_from(len).map_err(|_| too_large)
}

pub fn encode_header(header: &FrameHeader) -> [u8; FRAME_HEADER_BYTES] {
    let mut out = [0u8; FRAME_HEADER_BYTES];
    out[0] = header.version;
    out[1] = header.flags;
    out[2..4].copy_from_slice(&header.kind.0.to_be_bytes());
    out[4..8].copy_from_slice(&header.body_len.to_be_bytes());
    out
}

/// Reads a header; refuses a body length over the limit (before anything is allocated).
/// Unknown versions and kinds decode fine: see [`FrameHeader::check_request`].
pub fn decode_header(bytes: &[u8; FRAME_HEADER_BYTES]) -> Result<FrameHeader, FrameError> {
    let body_len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    check_body_len(body_len as usize)?;
    Ok(FrameHeader {
        version: bytes[0],
        flags: bytes[1],
        kind: MessageKind(u16::from_be_bytes([bytes[2], bytes[3]])),
        body_len,
    })
}

/// Header and body in one buffer. The header's `body_len` is taken from `body`.
pub fn encode(header: FrameHeader, body: &[u8]) -> Result<Bytes, FrameError> {
    let header = FrameHeader {
        body_len: check_body_len(body.len())?,
        ..header
    };
    let mut out = BytesMut::with_capacity(FRAME_HEADER_BYTES + body.len());
    out.put_slice(&encode_header(&header));
    out.put_slice(body);
    Ok(out.freeze())
}

/// Decodes the first frame in `buf`, which may be partial.
pub fn decode(buf: &[u8]) -> Result<Decoded, FrameError> {
    let Some(header_bytes) = buf.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Ok(Decoded::Incomplete {
            need: FRAME_HEADER_BYTES,
        });
    };
    let header = decode_header(header_bytes)?;
    let used = FRAME_HEADER_BYTES + header.body_len();
    match buf.get(FRAME_HEADER_BYTES..used) {
        Some(body) => Ok(Decoded::Frame {
            frame: Frame {
                header,
                body: Bytes::copy_from_slice(body),
            },
            used,
        }),
        None => Ok(Decoded::Incomplete { need: used }),
    }
}

/// Decodes a buffer that must hold exactly one frame.
pub fn decode_exact(buf: &[u8]) -> Result<Frame, FrameError> {
    match decode(buf)? {
        Decoded::Frame { frame, used } if used == buf.len() => Ok(frame),
        Decoded::Frame { used, .. } => Err(FrameError::Truncated {
            have: buf.len(),
            need: used,
        }),
        Decoded::Incomplete { need } => Err(FrameError::Truncated {
            have: buf.len(),
            need,
        }),
    }
}

/// The body of an error frame.
pub fn encode_error(error: &RemoteError) -> Bytes {
    let message = truncate_at_char(&error.message, ERROR_MESSAGE_BYTES_MAX);
    let mut out = BytesMut::with_capacity(2 + message.len());
    out.put_u16(error.code.0);
    out.put_slice(message.as_bytes());
    out.freeze()
}

/// Reads an error frame's body; never fails (a malformed one becomes a MALFORMED error).
pub fn decode_error(body: &[u8]) -> RemoteError {
    match body.split_first_chunk::<2>() {
        Some((code, message)) => RemoteError::new(
            ErrorCode(u16::from_be_bytes(*code)),
            String::from_utf8_lossy(&message[..message.len().min(ERROR_MESSAGE_BYTES_MAX)]),
        ),
        None => RemoteError::new(ErrorCode::MALFORMED, "empty error frame"),
    }
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(kind: MessageKind, body: &[u8]) -> Bytes {
        encode(FrameHeader::request(kind, body.len()).unwrap(), body).unwrap()
    }

    #[test]
    fn round_trip() {
        let wire = request(MessageKind::GOSSIP, b"hello");
        assert_eq!(wire.len(), FRAME_HEADER_BYTES + 5);
        assert_eq!(&wire[..4], &[FRAME_VERSION, 0, 0, 1]);
        let frame = decode_exact(&wire).unwrap();
        assert_eq!(frame.header.kind, MessageKind::GOSSIP);
        assert_eq!(frame.body, Bytes::from_static(b"hello"));
        assert!(frame.header.check_request().is_ok());
        assert!(!frame.header.is_response());
    }

    #[test]
    fn partial_input_asks_for_more() {
        let wire = request(MessageKind::RPC, b"0123456789");
        assert_eq!(decode(&wire[..3]), Ok(Decoded::Incomplete { need: 8 }));
        assert_eq!(decode(&wire[..12]), Ok(Decoded::Incomplete { need: 18 }));
        let mut two = wire.to_vec();
        two.extend_from_slice(&wire);
        let Ok(Decoded::Frame { used, .. }) = decode(&two) else {
            panic!("expected a frame");
        };
        assert_eq!(used, wire.len());
        assert!(decode_exact(&two).is_err(), "trailing bytes");
    }

    #[test]
    fn body_limit_is_checked_from_the_header() {
        assert!(FrameHeader::request(MessageKind::RPC, FRAME_BODY_BYTES_MAX).is_ok());
        assert_eq!(
            FrameHeader::request(MessageKind::RPC, FRAME_BODY_BYTES_MAX + 1),
            Err(FrameError::TooLarge {
                len: FRAME_BODY_BYTES_MAX + 1,
                max: FRAME_BODY_BYTES_MAX
            })
        );
        // A header claiming 4 GiB is refused with only 8 bytes read.
        let header = [FRAME_VERSION, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode_header(&header),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(decode(&header), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn unknown_version_kind_and_flags_are_answerable() {
        let mut wire = request(MessageKind::GOSSIP, b"x").to_vec();
        wire[0] = 9;
        let frame = decode_exact(&wire).unwrap();
        let err = frame.header.check_request().unwrap_err();
        assert_eq!(err.code, ErrorCode::UNSUPPORTED_VERSION);

        let frame = decode_exact(&request(MessageKind(4242), b"")).unwrap();
        let err = frame.header.check_request().unwrap_err();
        assert_eq!(err.code, ErrorCode::UNKNOWN_KIND);
        assert!(err.message.contains("4242"));

        let header = FrameHeader::response(MessageKind::RPC, false, 0).unwrap();
        assert_eq!(
            header.check_request().unwrap_err().code,
            ErrorCode::MALFORMED
        );
    }

    #[test]
    fn error_bodies_round_trip_and_are_bounded() {
        let err = RemoteError::new(ErrorCode::UNKNOWN_KIND, "no such kind");
        assert_eq!(decode_error(&encode_error(&err)), err);
        let long = RemoteError::handler("é".repeat(ERROR_MESSAGE_BYTES_MAX));
        let body = encode_error(&long);
        assert!(body.len() <= 2 + ERROR_MESSAGE_BYTES_MAX);
        assert!(decode_error(&body).message.chars().all(|c| c == 'é'));
        assert_eq!(decode_error(&[]).code, ErrorCode::MALFORMED);
        assert_eq!(decode_error(&[0]).code, ErrorCode::MALFORMED);
        assert_eq!(decode_error(&[0, 7, 0xff]).code, ErrorCode(7));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let _ = decode_exact(&bytes);
            let _ = decode_error(&bytes);
            if let Some(header) = bytes.first_chunk::<FRAME_HEADER_BYTES>()
                && let Ok(header) = decode_header(header)
            {
                let _ = header.check_request();
                prop_assert!(header.body_len() <= FRAME_BODY_BYTES_MAX);
            }
        }

        #[test]
        fn any_frame_round_trips(
            version: u8, flags: u8, kind: u16,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let header = FrameHeader { version, flags, kind: MessageKind(kind), body_len: 0 };
            let wire = encode(header, &body).unwrap();
            let frame = decode_exact(&wire).unwrap();
            prop_assert_eq!(frame.header.version, version);
            prop_assert_eq!(frame.header.flags, flags);
            prop_assert_eq!(frame.header.kind, MessageKind(kind));
            prop_assert_eq!(&frame.body[..], &body[..]);
        }
    }
}
