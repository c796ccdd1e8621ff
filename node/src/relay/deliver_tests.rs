//! Connection reuse: what a cached downstream session is sent, and what happens when it is
//! gone. A scripted SMTP server on 127.0.0.1:0 records every command per connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// Commands (first word, upper case) each accepted connection received, in order.
type Log = Arc<Mutex<Vec<Vec<String>>>>;

/// How the scripted server treats transactions.
#[derive(Clone, Copy)]
struct Script {
    /// Answer the first DATA with 554 (later ones with 354).
    refuse_first_data: bool,
    /// Close the connection after the reply to the end of data.
    close_after_message: bool,
}

async fn server(script: Script) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        let mut refused = false;
        while let Ok((stream, _)) = listener.accept().await {
            let conn = {
                let mut l = seen.lock().unwrap();
                l.push(Vec::new());
                l.len() - 1
            };
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 fake ready\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let verb = line
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                seen.lock().unwrap()[conn].push(verb.clone());
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" => b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                    "DATA" if script.refuse_first_data && !refused => {
                        refused = true;
                        b"554 5.7.1 no data today\r\n"
                    }
                    "DATA" => {
                        write.write_all(b"354 go on\r\n").await.unwrap();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                        }
                        write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        if script.close_after_message {
                            break;
                        }
                        continue;
                    }
                    "QUIT" => b"221 bye\r\n",
                    _ => b"250 ok\r\n",
                };
                if write.write_all(reply).await.is_err() {
                    break;
                }
            }
        }
    });
    (addr, log)
}

async fn send(relay_to: &str, cache: &ConnectionCache) -> Vec<Outcome> {
    let recipients = vec!["user@example.com".to_string()];
    let attempt = Attempt {
        relay_to,
        server_name: None,
        helo: "mx.test",
        sender: "a@example.org",
        recipients: &recipients,
        body: b"Subject: hi\r\n\r\nhello\r\n",
        timeout: Duration::from_secs(10),
    };
    deliver(&attempt, cache).await
}

fn log_of(log: &Log) -> Vec<Vec<String>> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn a_cached_connection_carries_the_next_message_without_rset() {
    let (addr, log) = server(Script {
        refuse_first_data: false,
        close_after_message: false,
    })
    .await;
    let cache = ConnectionCache::default();
    assert_eq!(send(&addr, &cache).await, vec![Outcome::Delivered]);
    assert_eq!(send(&addr, &cache).await, vec![Outcome::Delivered]);
    let txn = ["MAIL", "RCPT", "DATA"];
    let want: Vec<String> = std::iter::once("EHLO")
        .chain(txn)
        .chain(txn)
        .map(String::from)
        .collect();
    assert_eq!(
        log_of(&log),
        vec![want],
        "one connection, no RSET between messages"
    );
}

#[tokio::test]
async fn a_refused_data_is_reset_before_the_connection_is_used_again() {
    let (addr, log) = server(Script {
        refuse_first_data: true,
        close_after_message: false,
    })
    .await;
    let cache = ConnectionCache::default();
    let first = send(&addr, &cache).await;
    assert!(
        matches!(&first[..], [Outcome::Permanent(why)] if why.contains("no data today")),
        "{first:?}"
    );
    assert_eq!(send(&addr, &cache).await, vec![Outcome::Delivered]);
    let want: Vec<String> = [
        "EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        log_of(&log),
        vec![want],
        "the open transaction is cleared, on the same connection"
    );
}

#[tokio::test]
async fn a_cached_connection_the_server_closed_gives_way_to_a_new_one() {
    let (addr, log) = server(Script {
        refuse_first_data: false,
        close_after_message: true,
    })
    .await;
    let cache = ConnectionCache::default();
    assert_eq!(send(&addr, &cache).await, vec![Outcome::Delivered]);
    // The server has closed the cached connection; the next message still goes through.
    assert_eq!(send(&addr, &cache).await, vec![Outcome::Delivered]);
    let log = log_of(&log);
    assert_eq!(log.len(), 2, "a second connection: {log:?}");
    for conn in &log {
        assert_eq!(
            conn,
            &["EHLO", "MAIL", "RCPT", "DATA"].map(String::from).to_vec()
        );
    }
}

/// Removes the dots `data_payload` stuffed and its end of data: the body again.
fn unstuff(payload: &[u8]) -> Vec<u8> {
    let inner = payload
        .strip_suffix(b"\r\n.\r\n")
        .expect("ends with the end of data");
    let mut out = Vec::with_capacity(inner.len());
    for (i, &b) in inner.iter().enumerate() {
        let line_start = i == 0 || matches!(inner[i - 1], b'\r' | b'\n');
        let stuffed = b == b'.' && line_start && inner.get(i + 1) == Some(&b'.');
        if !stuffed {
            out.push(b);
        }
    }
    out
}

#[test]
fn the_payload_stuffs_every_dot_at_a_line_start_and_ends_the_data() {
    assert_eq!(data_payload(b""), b"\r\n.\r\n");
    assert_eq!(data_payload(b"a\r\n"), b"a\r\n.\r\n");
    assert_eq!(data_payload(b"a"), b"a\r\n.\r\n");
    assert_eq!(
        data_payload(b".x\r\n.\r\n..y\r\nz.\r\n"),
        b"..x\r\n..\r\n...y\r\nz.\r\n.\r\n"
    );
    // After a bare CR or LF too (none in a stored body; a smuggled end stays impossible).
    assert_eq!(
        data_payload(b"a\n.\r\nb\r.\r\n"),
        b"a\n..\r\nb\r..\r\n.\r\n"
    );
}

proptest::proptest! {
    #[test]
    fn the_payload_has_one_end_of_data_and_gives_back_the_body(
        lines in proptest::collection::vec("[.a\r\n]{0,6}", 0..12)
    ) {
        let body = lines.join("\r\n").into_bytes();
        let payload = data_payload(&body);
        let end = payload.windows(5).position(|w| w == b"\r\n.\r\n");
        proptest::prop_assert_eq!(end, Some(payload.len() - 5), "{:?}", String::from_utf8_lossy(&payload));
        let expected = body.strip_suffix(b"\r\n").unwrap_or(&body);
        proptest::prop_assert_eq!(unstuff(&payload), expected);
    }
}

/// A stream that records every write and serves scripted replies (one chunk per read),
/// for counting writes.
struct Recorder {
    writes: Vec<Vec<u8>>,
    replies: std::collections::VecDeque<&'static [u8]>,
}

impl tokio::io::AsyncRead for Recorder {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(chunk) = self.replies.pop_front() {
            buf.put_slice(chunk);
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Recorder {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes.push(buf.to_vec());
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn the_command_group_and_the_message_each_go_out_in_one_write() {
    let replies: [&'static [u8]; 2] = [
        b"250 ok\r\n250 ok\r\n250 ok\r\n354 go on\r\n",
        b"250 queued\r\n",
    ];
    let mut client = SmtpClient {
        stream: Recorder {
            writes: Vec::new(),
            replies: replies.into(),
        },
        timeout: Duration::from_secs(10),
    };
    let ehlo = smtp_proto::EhloResponse {
        hostname: "fake".to_string(),
        capabilities: EXT_PIPELINING,
        ..Default::default()
    };
    let recipients = vec!["a@example.com".to_string(), "b@example.com".to_string()];
    let attempt = Attempt {
        relay_to: "192.0.2.1:25",
        server_name: None,
        helo: "mx.test",
        sender: "s@example.org",
        recipients: &recipients,
        body: b"Subject: hi\r\n\r\n.hello\r\n",
        timeout: Duration::from_secs(10),
    };
    let outcomes = transaction(&mut client, &ehlo, &attempt).await.unwrap();
    assert_eq!(outcomes, vec![Outcome::Delivered, Outcome::Delivered]);
    let writes: Vec<String> = client
        .stream
        .writes
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    assert_eq!(
        writes,
        [
            "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
            "Subject: hi\r\n\r\n..hello\r\n.\r\n",
        ]
    );
}
