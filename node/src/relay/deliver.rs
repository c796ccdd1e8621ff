//! One delivery attempt to a downstream server, with mail-send's SMTP client.
//!
//! mail-send gives us the client primitives (greeting, EHLO, STARTTLS, pipelined command
//! groups); this module decides what to send, dot-stuffs the message itself, and maps
//! every reply to a per-recipient outcome. STARTTLS is used whenever offered; like
//! Postfix's `smtp_tls_security_level = may` the certificate is not verified (opportunistic
//! encryption to the organisation's own server). Bodies are stored with CRLF-only line
//! endings (the SMTP receiver normalises them), and [`data_payload`] stuffs a dot after every
//! CR or LF, so a smuggled end-of-data is impossible on the way out.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use mail_send::SmtpClient;
use smtp_proto::{
    EXT_8BIT_MIME, EXT_PIPELINING, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse, Response,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server accepted the message for this recipient.
    Delivered,
    /// 4xx or a connection problem: retry later.
    Temporary(String),
    /// 5xx: bounce.
    Permanent(String),
}

/// One attempt: `recipients` of one message to one server.
pub struct Attempt<'a> {
    /// The server, `host:port` (an IP, or a name the system resolves).
    pub relay_to: &'a str,
    /// The server's name for TLS (SNI) when `relay_to` is an address found by MX lookup.
    pub server_name: Option<&'a str>,
    /// Our EHLO name.
    pub helo: &'a str,
    /// The reverse-path, `""` for the null sender.
    pub sender: &'a str,
    /// The forward-paths.
    pub recipients: &'a [String],
    /// The message, CRLF line endings.
    pub body: &'a [u8],
    /// Bound on connecting and on each reply.
    pub timeout: Duration,
}

/// Delivers and returns one outcome per recipient (same order). Uses a cached connection
/// to the same server when one is idle, else a new one; the connection goes back to the
/// cache when the transaction ended cleanly. A cached connection gets no RSET first: every
/// transaction that returns it leaves the session with no transaction open, and one that
/// the server closed meanwhile fails at MAIL — before any message byte is sent — so the
/// attempt moves to a new connection (one round trip per relayed message saved).
pub async fn deliver(a: &Attempt<'_>, cache: &ConnectionCache) -> Vec<Outcome> {
    match deliver_to(a, cache).await {
        Ok(outcomes) => outcomes,
        Err(e) => vec![e; a.recipients.len()],
    }
}

/// Like [`deliver`], but a failure of the whole session (no connection, a refusing
/// greeting, a failed MAIL) is returned as one error, so delivery by MX can try the next
/// host.
pub async fn deliver_to(a: &Attempt<'_>, cache: &ConnectionCache) -> Result<Vec<Outcome>, Outcome> {
    match cache.take(a.relay_to) {
        Some(mut conn) => match conn.transaction(a).await {
            Ok(outcomes) => {
                cache.put(a.relay_to, conn);
                Ok(outcomes)
            }
            Err(_) => fresh(a, cache).await,
        },
        None => fresh(a, cache).await,
    }
}

async fn fresh(a: &Attempt<'_>, cache: &ConnectionCache) -> Result<Vec<Outcome>, Outcome> {
    let mut conn = match connect(a, true).await {
        // Opportunistic TLS: a server whose STARTTLS handshake fails gets the mail in
        // plain text on a new connection (Postfix's `may` level does the same).
        Err(Failure::Tls(why)) => {
            tracing::info!(server = a.relay_to, error = %why, "relay: STARTTLS failed; retrying without TLS");
            connect(a, false).await.map_err(Failure::into_outcome)?
        }
        other => other.map_err(Failure::into_outcome)?,
    };
    let outcomes = conn.transaction(a).await?;
    cache.put(a.relay_to, conn);
    Ok(outcomes)
}

/// Why a session could not be opened.
enum Failure {
    /// The STARTTLS handshake failed (the session is gone; a plain one may work).
    Tls(String),
    /// Anything else.
    Other(Outcome),
}

impl Failure {
    fn into_outcome(self) -> Outcome {
        match self {
            Failure::Tls(why) => Outcome::Temporary(why),
            Failure::Other(o) => o,
        }
    }
}

impl From<Outcome> for Failure {
    fn from(o: Outcome) -> Failure {
        Failure::Other(o)
    }
}

/// A live session with a downstream server, after EHLO (and STARTTLS when offered).
pub enum Conn {
    /// Without TLS, and the server's EHLO reply.
    Plain(SmtpClient<TcpStream>, EhloResponse<String>),
    /// After STARTTLS, and the server's second EHLO reply.
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>, EhloResponse<String>),
}

impl Conn {
    async fn transaction(&mut self, a: &Attempt<'_>) -> Result<Vec<Outcome>, Outcome> {
        match self {
            Conn::Plain(c, ehlo) => transaction(c, ehlo, a).await,
            Conn::Tls(c, ehlo) => transaction(c.as_mut(), ehlo, a).await,
        }
    }
}

/// Idle connections kept per downstream server.
pub const IDLE_CONNECTIONS_PER_SERVER_MAX: usize = 16;
/// How long an idle connection is kept.
pub const CONNECTION_IDLE_MAX: Duration = Duration::from_secs(2);
/// Distinct downstream servers with idle connections at once.
pub const CACHED_SERVERS_MAX: usize = 256;

/// Idle downstream connections for reuse, like Postfix's `smtp_connection_cache`.
#[derive(Default)]
pub struct ConnectionCache {
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<(Conn, Instant)>>>,
}

impl ConnectionCache {
    /// The most recently used idle connection to `relay_to` younger than
    /// [`CONNECTION_IDLE_MAX`], if any (older ones are dropped).
    fn take(&self, relay_to: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(relay_to)?;
        list.retain(|(_, since)| since.elapsed() < CONNECTION_IDLE_MAX);
        list.pop().map(|(conn, _)| conn)
    }

    fn put(&self, relay_to: &str, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !idle.contains_key(relay_to) && idle.len() >= CACHED_SERVERS_MAX {
            idle.retain(|_, list| {
                list.iter()
                    .any(|(_, since)| since.elapsed() < CONNECTION_IDLE_MAX)
            });
            if idle.len() >= CACHED_SERVERS_MAX {
                return;
            }
        }
        let list = idle.entry(relay_to.to_string()).or_default();
        if list.len() < IDLE_CONNECTIONS_PER_SERVER_MAX {
            list.push((conn, Instant::now()));
        }
    }
}

/// Opens a session: greeting, EHLO, STARTTLS when offered and `tls` (and EHLO again).
async fn connect(a: &Attempt<'_>, tls: bool) -> Result<Conn, Failure> {
    let (host, port) = split_host_port(a.relay_to)?;
    let addr = resolve(host, port).await?;
    let mut client = SmtpClient::connect(addr, a.timeout)
        .await
        .map_err(|e| classify(a.relay_to, e))?;
    // The body's last segment and "." CRLF would otherwise wait for the server's delayed
    // ACK (Nagle): about 40 ms per relayed message on loopback.
    let _ = client.stream.set_nodelay(true);
    let greeting = tokio::time::timeout(a.timeout, client.read())
        .await
        .map_err(|_| Outcome::Temporary(format!("{}: no greeting", a.relay_to)))?
        .map_err(|e| classify(a.relay_to, e))?;
    if greeting.code / 100 != 2 {
        return Err(outcome_of(&greeting).into());
    }
    let ehlo = client
        .ehlo(a.helo)
        .await
        .map_err(|e| classify(a.relay_to, e))?;
    if tls && ehlo.has_capability(EXT_START_TLS) {
        let connector =
            tls_connector().map_err(|e| Outcome::Temporary(format!("TLS setup: {e}")))?;
        let mut tls = client
            .start_tls(connector, a.server_name.unwrap_or(host))
            .await
            .map_err(|e| match e {
                mail_send::Error::UnexpectedReply(r) => Failure::Other(outcome_of(&r)),
                other => Failure::Tls(format!("{}: STARTTLS: {other}", a.relay_to)),
            })?;
        let ehlo = tls
            .ehlo(a.helo)
            .await
            .map_err(|e| classify(a.relay_to, e))?;
        Ok(Conn::Tls(Box::new(tls), ehlo))
    } else {
        Ok(Conn::Plain(client, ehlo))
    }
}

/// The opportunistic-TLS connector, built once: building it loads the system's root
/// certificates, which costs far more than a delivery.
fn tls_connector() -> Result<&'static TlsConnector, String> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| mail_send::smtp::tls::build_tls_connector(true))
        .as_ref()
        .map_err(Clone::clone)
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, Outcome> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Outcome::Temporary(format!("{host}: cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| Outcome::Temporary(format!("{host}: no address")))
}

/// MAIL, RCPT…, DATA (pipelined when offered), then the body.
async fn transaction<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    ehlo: &EhloResponse<String>,
    a: &Attempt<'_>,
) -> Result<Vec<Outcome>, Outcome> {
    let mut cmds = Vec::with_capacity(a.recipients.len() + 2);
    cmds.push(format!(
        "MAIL FROM:<{}>{}\r\n",
        a.sender,
        mail_params(ehlo, a)
    ));
    for r in a.recipients {
        cmds.push(format!("RCPT TO:<{r}>\r\n"));
    }
    cmds.push("DATA\r\n".to_string());
    let replies = if ehlo.has_capability(EXT_PIPELINING) {
        pipeline(client, &cmds)
            .await
            .map_err(|e| classify(a.relay_to, e))?
    } else {
        sequential(client, &cmds).await?
    };
    let mail = replies
        .first()
        .ok_or_else(|| Outcome::Temporary("no reply to MAIL".into()))?;
    if mail.code / 100 != 2 {
        let _ = client.rset().await;
        return Err(outcome_of(mail));
    }
    let mut outcomes: Vec<Outcome> = a
        .recipients
        .iter()
        .enumerate()
        .map(|(i, _)| match replies.get(i + 1) {
            Some(r) if r.code / 100 == 2 => Outcome::Delivered,
            Some(r) => outcome_of(r),
            None => Outcome::Temporary("no reply to RCPT".into()),
        })
        .collect();
    let data = replies.get(a.recipients.len() + 1);
    let accepted_any = outcomes.contains(&Outcome::Delivered);
    match data {
        Some(r) if r.code == 354 && accepted_any => {}
        Some(r) if r.code == 354 => {
            // Every RCPT failed but the server still wants data: end it empty-handed.
            let _ = write_data(client, b"").await;
            let _ = client.read().await;
            return Ok(outcomes);
        }
        Some(r) => {
            // DATA refused: the server still holds MAIL and RCPT; clear them, so the
            // connection goes back to the cache with no transaction open.
            let o = outcome_of(r);
            let _ = client.rset().await; // a connection that fails it fails at the next MAIL
            for x in outcomes.iter_mut().filter(|x| **x == Outcome::Delivered) {
                *x = o.clone();
            }
            return Ok(outcomes);
        }
        None => return Err(Outcome::Temporary("no reply to DATA".into())),
    }
    write_data(client, a.body)
        .await
        .map_err(|e| Outcome::Temporary(format!("{}: writing message: {e}", a.relay_to)))?;
    let end = client.read().await.map_err(|e| classify(a.relay_to, e))?;
    if end.code / 100 != 2 {
        let o = outcome_of(&end);
        for x in outcomes.iter_mut().filter(|x| **x == Outcome::Delivered) {
            *x = o.clone();
        }
    }
    Ok(outcomes)
}

/// Sends a pipelined command group in one write and reads one reply per command, within
/// the client's timeout. (mail-send's `cmds` writes each command apart: with TCP_NODELAY a
/// TCP segment each.)
async fn pipeline<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    cmds: &[String],
) -> Result<Vec<Response<String>>, mail_send::Error> {
    let group = cmds.concat();
    tokio::time::timeout(client.timeout, async {
        client.stream.write_all(group.as_bytes()).await?;
        client.stream.flush().await?;
        client.read_many(cmds.len()).await
    })
    .await
    .map_err(|_| mail_send::Error::Timeout)?
}

/// Sends the message and the end of data in one write ([`data_payload`]).
async fn write_data<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    body: &[u8],
) -> std::io::Result<()> {
    client.stream.write_all(&data_payload(body)).await?;
    client.stream.flush().await
}

/// What follows a `354`: `body` dot-stuffed, then CRLF "." CRLF (RFC 5321 §4.5.2). A "."
/// at the start of the body or after any CR or LF gets another "." in front — after a
/// bare CR or LF too, as mail-send does (bodies are stored with CRLF line endings, so there
/// are none; a smuggled end of data stays impossible either way). The body's own final
/// CRLF is the terminator's first. One buffer, found with memchr: mail-send's
/// `write_message` looked at every byte in turn and wrote the end of data in a second
/// write (a second TCP segment per message).
pub fn data_payload(body: &[u8]) -> Vec<u8> {
    let body = body.strip_suffix(b"\r\n").unwrap_or(body);
    let mut out = Vec::with_capacity(body.len() + DATA_STUFFING_SLACK_BYTES);
    let mut copied = 0;
    for dot in memchr::memchr_iter(b'.', body) {
        if dot == 0 || matches!(body[dot - 1], b'\r' | b'\n') {
            out.extend_from_slice(&body[copied..dot]);
            out.push(b'.');
            copied = dot;
        }
    }
    out.extend_from_slice(&body[copied..]);
    out.extend_from_slice(b"\r\n.\r\n");
    out
}

/// Room reserved beyond the body in [`data_payload`]: the end of data and a few stuffed
/// dots (more only grow the buffer).
const DATA_STUFFING_SLACK_BYTES: usize = 64;

/// ESMTP parameters the message needs and the server offers: SMTPUTF8 for non-ASCII
/// addresses, BODY=8BITMIME for 8-bit content (RFC 6531, RFC 6152).
fn mail_params(ehlo: &EhloResponse<String>, a: &Attempt<'_>) -> String {
    let mut p = String::new();
    if !a.body.is_ascii() && ehlo.has_capability(EXT_8BIT_MIME) {
        p.push_str(" BODY=8BITMIME");
    }
    let utf8 = !a.sender.is_ascii() || a.recipients.iter().any(|r| !r.is_ascii());
    if utf8 && ehlo.has_capability(EXT_SMTP_UTF8) {
        p.push_str(" SMTPUTF8");
    }
    p
}

/// Without PIPELINING: one command, one reply;stop after a failed MAIL or at DATA.
async fn sequential<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    cmds: &[String],
) -> Result<Vec<Response<String>>, Outcome> {
    let mut replies = Vec::with_capacity(cmds.len());
    for (i, cmd) in cmds.iter().enumerate() {
        let r = client
            .cmd(cmd.as_bytes())
            .await
            .map_err(|e| Outcome::Temporary(e.to_string()))?;
        let stop = i == 0 && r.code / 100 != 2;
        replies.push(r);
        if stop {
            break;
        }
    }
    Ok(replies)
}

fn outcome_of(r: &Response<String>) -> Outcome {
    let message = r.message.replace(['\r', '\n'], " ");
    let text = match r.esc {
        [0, 0, 0] => format!("{} {message}", r.code),
        [a, b, c] => format!("{} {a}.{b}.{c} {message}", r.code),
    };
    if r.code / 100 == 5 {
        Outcome::Permanent(text)
    } else {
        Outcome::Temporary(text)
    }
}

fn classify(relay_to: &str, e: mail_send::Error) -> Outcome {
    match e {
        mail_send::Error::UnexpectedReply(r) => outcome_of(&r),
        other => Outcome::Temporary(format!("{relay_to}: {other}")),
    }
}

fn split_host_port(s: &str) -> Result<(&str, u16), Outcome> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| Outcome::Temporary(format!("{s}: not host:port")))?;
    let port = port
        .parse()
        .map_err(|_| Outcome::Temporary(format!("{s}: bad port")))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
