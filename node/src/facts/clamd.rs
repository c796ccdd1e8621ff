//! A clamd client for one command: `zINSTREAM` over TCP (clamd(8) "INSTREAM"). The data goes
//! in length-prefixed chunks ending with a zero length; the reply is one NUL-terminated
//! line: `stream: OK`, `stream: <signature> FOUND` or `<message> ERROR`.
//!
//! The whole raw message is scanned: clamd decodes MIME parts and looks inside archives
//! itself.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes per INSTREAM chunk.
pub const CLAMD_CHUNK_BYTES: usize = 64 * 1024;
/// Reply bytes read at most (a signature name is short).
pub const CLAMD_REPLY_MAX_BYTES: u64 = 4096;

/// Why a scan gave no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    /// Connecting, writing or reading failed.
    #[error("clamd {addr}: {message}")]
    Io { addr: String, message: String },
    /// No answer within the timeout.
    #[error("clamd {addr}: no answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u128 },
    /// An answer that is neither `OK` nor `… FOUND` (e.g. an error or size limit).
    #[error("clamd {addr}: {reply}")]
    Refused { addr: String, reply: String },
}

/// Scans `data`; `Ok(Some(signature))` when clamd found something.
pub async fn scan(addr: &str, data: &[u8], timeout: Duration) -> Result<Option<String>, ScanError> {
    match tokio::time::timeout(timeout, exchange(addr, data)).await {
        Ok(Ok(reply)) => parse_reply(&reply).map_err(|reply| ScanError::Refused {
            addr: addr.to_string(),
            reply,
        }),
        Ok(Err(e)) => Err(ScanError::Io {
            addr: addr.to_string(),
            message: e.to_string(),
        }),
        Err(_) => Err(ScanError::Timeout {
            addr: addr.to_string(),
            timeout_ms: timeout.as_millis(),
        }),
    }
}

async fn exchange(addr: &str, data: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"zINSTREAM\0").await?;
    for chunk in data.chunks(CLAMD_CHUNK_BYTES) {
        let len = u32::try_from(chunk.len()).expect("chunk fits u32");
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(chunk).await?;
    }
    stream.write_all(&0u32.to_be_bytes()).await?;
    stream.flush().await?;
    let mut reply = Vec::new();
    stream
        .take(CLAMD_REPLY_MAX_BYTES)
        .read_to_end(&mut reply)
        .await?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// `stream: OK` → None, `stream: NAME FOUND` → Some(NAME), anything else is an error.
pub fn parse_reply(reply: &str) -> Result<Option<String>, String> {
    let line = reply.trim_end_matches(['\0', '\n', '\r']).trim();
    let verdict = line.strip_prefix("stream:").map(str::trim);
    match verdict {
        Some("OK") => Ok(None),
        Some(v) if v.ends_with(" FOUND") => {
            let name = v.trim_end_matches(" FOUND").trim();
            Ok(Some(name.to_string()))
        }
        _ => Err(if line.is_empty() {
            "empty reply".to_string()
        } else {
            line.to_string()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply("stream: OK\0"), Ok(None));
        assert_eq!(
            parse_reply("stream: Eicar-Signature FOUND\0"),
            Ok(Some("Eicar-Signature".into()))
        );
        assert_eq!(
            parse_reply("INSTREAM size limit exceeded. ERROR\0"),
            Err("INSTREAM size limit exceeded. ERROR".into())
        );
        assert_eq!(parse_reply(""), Err("empty reply".into()));
    }

    #[tokio::test]
    async fn an_unreachable_clamd_is_an_error_not_a_hang() {
        // Bound but never listening: refused, and no other process can take the port.
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        let err = scan(&addr, b"x", Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(err, ScanError::Io { .. }), "{err}");
    }
}
