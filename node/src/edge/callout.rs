//! `verify_recipients = "callout"`: asks the domain's `relay_to` server whether a
//! recipient exists with a null-sender probe (`MAIL FROM:<>`, `RCPT TO:<rcpt>`, `QUIT`; no
//! message is sent), and caches the answer mesh-wide.
//!
//! The cache is a replicated [`OwnedMap`] (each node writes the answers of its own probes;
//! see [`crate::cluster::owned`]): a node first looks at every node's answers for the
//! recipient and probes only when none is fresh, so one probe serves the whole mesh. An
//! "exists" answer lives `callout_positive_ttl_secs`, an "unknown" one
//! `callout_negative_ttl_secs`. The cache lives in memory only (a restarted node asks its
//! peers' answers again).

use std::time::Duration;

use mxmesh_crdt::owned::OwnedMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::clock::Clock;
use crate::cluster::owned::{SharedMap, read, write};

/// Cached answers a node keeps of its own probes (and of each other node) at most.
pub const CALLOUT_CACHE_MAX: usize = 200_000;
/// One whole probe at most (connect, greeting, EHLO, MAIL, RCPT).
pub const CALLOUT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest reply line read from the downstream.
pub const REPLY_LINE_BYTES_MAX: usize = 2048;
/// Lines of one (multi-line) reply read at most.
pub const REPLY_LINES_MAX: usize = 64;

/// One node's cached answer for a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Whether the downstream accepted the recipient.
    pub exists: bool,
    /// When it was asked (the newest answer of any node wins).
    pub asked_ms: u64,
}

/// What the downstream said of a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// 2xx to RCPT.
    Exists,
    /// 5xx to RCPT.
    Unknown,
    /// No answer: connection failure, timeout, a 4xx, or a refused greeting/MAIL.
    Unreachable(String),
}

/// The mesh-wide callout cache of this node.
#[derive(Clone)]
pub struct CalloutCache {
    node_id: String,
    map: SharedMap<Answer>,
    clock: Clock,
}

impl CalloutCache {
    /// An empty cache written as `node_id`.
    pub fn new(node_id: String, clock: Clock) -> CalloutCache {
        CalloutCache {
            node_id,
            map: std::sync::Arc::new(std::sync::RwLock::new(OwnedMap::new(CALLOUT_CACHE_MAX))),
            clock,
        }
    }

    /// The replicated map (for the mesh's sync).
    pub fn map(&self) -> SharedMap<Answer> {
        self.map.clone()
    }

    /// The newest fresh answer any node holds for `rcpt`.
    pub fn lookup(&self, rcpt: &str) -> Option<bool> {
        let key = cache_key(rcpt);
        let now = self.clock.now_ms();
        read(&self.map)
            .values(&key, now)
            .max_by_key(|(owner, item)| (item.value.asked_ms, *owner))
            .map(|(_, item)| item.value.exists)
    }

    /// Records this node's answer for `rcpt`, valid for `ttl`.
    pub fn record(&self, rcpt: &str, exists: bool, ttl: Duration) {
        let now = self.clock.now_ms();
        let expires = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let answer = Answer {
            exists,
            asked_ms: now,
        };
        let key = cache_key(rcpt);
        if let Err(e) = write(&self.map).put_own(&self.node_id, &key, answer, expires, now) {
            tracing::warn!(error = %e, "callout answer not cached");
        }
    }

    /// Drops expired answers.
    pub fn purge(&self) {
        write(&self.map).expire(self.clock.now_ms());
    }
}

/// The cache key of a recipient (hashed: no address is replicated).
pub fn cache_key(rcpt: &str) -> String {
    let digest = Sha256::digest(rcpt.to_ascii_lowercase().as_bytes());
    format!("c:{}", hex::encode(&digest[..16]))
}

/// Asks `server` (`host:port`) whether `rcpt` exists, introducing this node as `hostname`.
pub async fn probe(server: &str, hostname: &str, rcpt: &str) -> Probe {
    match tokio::time::timeout(CALLOUT_TIMEOUT, converse(server, hostname, rcpt)).await {
        Ok(Ok(probe)) => probe,
        Ok(Err(e)) => Probe::Unreachable(format!("{server}: {e}")),
        Err(_) => Probe::Unreachable(format!("{server}: no answer within {CALLOUT_TIMEOUT:?}")),
    }
}

async fn converse(server: &str, hostname: &str, rcpt: &str) -> std::io::Result<Probe> {
    let stream = TcpStream::connect(server).await?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let step = |what: &str, code: u16| Probe::Unreachable(format!("{what} answered {code}"));
    let greeting = reply_code(&mut rd).await?;
    if greeting != 220 {
        return Ok(step("greeting", greeting));
    }
    for (what, command) in [
        ("EHLO", format!("EHLO {hostname}\r\n")),
        ("MAIL FROM:<>", "MAIL FROM:<>\r\n".to_string()),
    ] {
        wr.write_all(command.as_bytes()).await?;
        let code = reply_code(&mut rd).await?;
        if code / 100 != 2 {
            return Ok(step(what, code));
        }
    }
    wr.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
        .await?;
    let code = reply_code(&mut rd).await?;
    let _ = wr.write_all(b"QUIT\r\n").await;
    Ok(match code / 100 {
        2 => Probe::Exists,
        5 => Probe::Unknown,
        _ => step("RCPT", code),
    })
}

/// Reads one reply (all its lines) and returns its code.
async fn reply_code<R: tokio::io::AsyncBufRead + Unpin>(rd: &mut R) -> std::io::Result<u16> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    for _ in 0..REPLY_LINES_MAX {
        let mut line = Vec::new();
        let n = (&mut *rd)
            .take(REPLY_LINE_BYTES_MAX as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Err(bad("connection closed".into()));
        }
        let code = line
            .get(..3)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                bad(format!(
                    "not an SMTP reply: {:?}",
                    String::from_utf8_lossy(&line)
                ))
            })?;
        if line.get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
    Err(bad(format!("reply longer than {REPLY_LINES_MAX} lines")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A downstream that knows only `known@example.com`.
    async fn downstream() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    s.write_all(b"220-down.test\r\n220 ready\r\n")
                        .await
                        .unwrap();
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]).to_string();
                        let reply: &[u8] = if text.starts_with("RCPT") {
                            if text.contains("known@example.com") {
                                b"250 2.1.5 ok\r\n"
                            } else {
                                b"550 5.1.1 unknown\r\n"
                            }
                        } else if text.starts_with("QUIT") {
                            return;
                        } else {
                            b"250-down.test\r\n250 ok\r\n"
                        };
                        s.write_all(reply).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn probes_tell_known_from_unknown_and_unreachable() {
        let addr = downstream().await;
        assert_eq!(
            probe(&addr, "mx.test", "known@example.com").await,
            Probe::Exists
        );
        assert_eq!(
            probe(&addr, "mx.test", "nobody@example.com").await,
            Probe::Unknown
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert!(matches!(
            probe(&dead, "mx.test", "x@example.com").await,
            Probe::Unreachable(_)
        ));
    }

    #[test]
    fn the_newest_answer_of_any_node_wins() {
        let clock = Clock::system();
        let one = CalloutCache::new("n1".into(), clock.clone());
        let two = CalloutCache::new("n2".into(), clock.with_own_skew(1000));
        assert_eq!(one.lookup("a@example.com"), None);
        one.record("a@example.com", false, Duration::from_secs(60));
        two.record("A@example.com", true, Duration::from_secs(60));
        let now = clock.now_ms();
        write(&one.map).merge(&read(&two.map), now).unwrap();
        assert_eq!(one.lookup("a@example.com"), Some(true));
        clock.set_skew(60_500);
        assert_eq!(
            one.lookup("a@example.com"),
            Some(true),
            "n2's answer lives longer"
        );
        clock.set_skew(62_000);
        assert_eq!(one.lookup("a@example.com"), None, "expired");
    }
}
