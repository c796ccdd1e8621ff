//! Frames over quinn streams: the only code that reads or writes stream bytes. Sizes are
//! bounded here (from the header, before buffering); time is bounded by the callers.

use bytes::{Bytes, BytesMut};
use quinn::{RecvStream, SendStream};

use super::frame::{self, FRAME_HEADER_BYTES, FrameError, FrameHeader};

/// Largest buffer reserved up front for a body; beyond this it grows as bytes arrive, so a
/// header that announces a large body costs nothing until the body is really sent.
const BODY_PREALLOC_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadFrameError {
    /// The frame header announces a body over the limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended after {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
    /// Reading the stream failed.
    #[error("{0}")]
    Read(String),
}

/// Reads and decodes one frame header (refusing oversized bodies).
pub(crate) async fn read_header(recv: &mut RecvStream) -> Result<FrameHeader, ReadFrameError> {
    let mut bytes = [0u8; FRAME_HEADER_BYTES];
    recv.read_exact(&mut bytes).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(have) => ReadFrameError::Truncated {
            have,
            need: FRAME_HEADER_BYTES,
        },
        quinn::ReadExactError::ReadError(e) => ReadFrameError::Read(e.to_string()),
    })?;
    Ok(frame::decode_header(&bytes)?)
}

/// Reads exactly `len` body bytes (`len` already checked against the limit).
pub(crate) async fn read_body(recv: &mut RecvStream, len: usize) -> Result<Bytes, ReadFrameError> {
    let mut body = BytesMut::with_capacity(len.min(BODY_PREALLOC_BYTES_MAX));
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
            Ok(None) => {
                return Err(ReadFrameError::Truncated {
                    have: body.len(),
                    need: len,
                });
            }
            Err(e) => return Err(ReadFrameError::Read(e.to_string())),
        }
    }
    Ok(body.freeze())
}

/// Writes one frame (`header.body_len` is set from `body`) and finishes the stream.
pub(crate) async fn write_frame(
    send: &mut SendStream,
    header: FrameHeader,
    body: Bytes,
) -> Result<(), quinn::WriteError> {
    let header = FrameHeader {
        body_len: u32::try_from(body.len()).unwrap_or(u32::MAX),
        ..header
    };
    let mut chunks = [Bytes::copy_from_slice(&frame::encode_header(&header)), body];
    send.write_all_chunks(&mut chunks).await?;
    // Only fails if the stream was already finished or reset; then the write above failed.
    let _ = send.finish();
    Ok(())
}
