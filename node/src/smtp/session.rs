//! The only code that touches a client socket: reads bytes into the sans-I/O
//! [`Protocol`], writes its replies, upgrades to TLS, hands complete messages to the
//! [`MessageSink`] (the node's inbound stage), and enforces the per-command and
//! per-session timeouts.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::auth::Credentials;
use super::reply::Reply;
use super::state::{Envelope, Event, Protocol, ProtocolConfig, RcptCheck};
use crate::health::Health;
use crate::outbound::TrustedNetworks;

/// Bytes read from the socket at once.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Time allowed for a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the session knows about its client.
pub struct Client {
    /// The client's address.
    pub ip: IpAddr,
}

/// Where a session hands each complete message; the reply goes back to the client.
pub trait MessageSink: Send + Sync + 'static {
    /// Decides and stores one message; the reply for the end of DATA.
    fn deliver<'a>(
        &'a self,
        envelope: Envelope,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

    /// Decides on one recipient before it is accepted (greylisting, recipient
    /// verification, rate limits): `None` accepts it, a reply refuses it. Asked only when
    /// [`ProtocolConfig::check_recipients`] is set; the default accepts everyone.
    fn check_rcpt<'a>(
        &'a self,
        check: RcptCheck,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Option<Reply>> + Send + 'a>> {
        let _ = (check, client);
        Box::pin(async { None })
    }

    /// Checks AUTH credentials (submission): `None` accepts them, a reply refuses them.
    /// The default refuses everyone.
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Option<Reply>> + Send + 'a>> {
        let _ = (credentials, client);
        Box::pin(async { Some(Reply::auth_failed()) })
    }
}

/// The session timeouts, in the units of `[smtp]`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A whole session at most.
    pub session_secs: u64,
    /// Silence before the greeting; a client that talks first is refused (0: off).
    pub greet_pause_ms: u64,
    /// One command (or one read of DATA) at most.
    pub command_secs: u64,
}

/// Everything a session needs besides its socket.
#[derive(Clone)]
pub struct SessionContext {
    /// Where each complete message goes (decided and stored there).
    pub sink: Arc<dyn MessageSink>,
    /// What the protocol needs to know about this server.
    pub protocol: Arc<ProtocolConfig>,
    /// The greet pause and the per-command timeout.
    pub timeouts: Timeouts,
    /// Read at connect: a draining node refuses new sessions.
    pub health: Health,
    /// The TLS acceptor (for STARTTLS or implicit TLS); `None`: no TLS.
    pub tls: Option<TlsAcceptor>,
    /// Flips to true on shutdown: the session says 421 and ends (not in the middle of DATA).
    pub shutdown: watch::Receiver<bool>,
    /// TLS from the first byte (implicit TLS, RFC 8314), not after STARTTLS.
    pub implicit_tls: bool,
    /// Clients that may relay to any domain without AUTH (`[relay] trusted_networks`).
    pub trusted: Arc<TrustedNetworks>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How one phase of a session ended.
enum End {
    Closed,
    StartTls,
}

/// Runs one SMTP session to its end.
pub async fn run(mut stream: TcpStream, peer: SocketAddr, ctx: SessionContext) {
    let deadline = Instant::now() + Duration::from_secs(ctx.timeouts.session_secs);
    if early_talker(&stream, Duration::from_millis(ctx.timeouts.greet_pause_ms)).await {
        let _ = stream.write_all(&Reply::early_talker().to_bytes()).await;
        tracing::info!(%peer, "client talked before the greeting; refused");
        return;
    }
    if ctx.health.is_draining() {
        let refusal = if ctx.health.is_drained() {
            Reply::drained()
        } else {
            Reply::shutting_down()
        };
        let _ = stream.write_all(&refusal.to_bytes()).await;
        return;
    }
    let mut proto = Protocol::new(ctx.protocol.clone());
    if ctx.trusted.contains(peer.ip()) {
        proto.trust_client();
    }
    let client = Client { ip: peer.ip() };
    if ctx.implicit_tls {
        let Some(mut tls) = handshake(stream, &ctx, peer).await else {
            return;
        };
        proto.tls_from_start();
        if tls.write_all(&proto.greeting().to_bytes()).await.is_ok() {
            let _ = drive(&mut tls, &mut proto, &ctx, &client, deadline).await;
        }
        let _ = tls.shutdown().await;
        return;
    }
    if stream
        .write_all(&proto.greeting().to_bytes())
        .await
        .is_err()
    {
        return;
    }
    let end = drive(&mut stream, &mut proto, &ctx, &client, deadline).await;
    if !matches!(end, End::StartTls) {
        let _ = stream.shutdown().await;
        return;
    }
    let Some(mut tls) = handshake(stream, &ctx, peer).await else {
        return;
    };
    proto.tls_established();
    let _ = drive(&mut tls, &mut proto, &ctx, &client, deadline).await;
    let _ = tls.shutdown().await;
}

/// The server side of a TLS handshake, bounded by [`TLS_HANDSHAKE_TIMEOUT`].
async fn handshake(
    stream: TcpStream,
    ctx: &SessionContext,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor = ctx.tls.clone()?;
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// True when the client sent something before the greeting pause ended.
async fn early_talker(stream: &TcpStream, pause: Duration) -> bool {
    if pause.is_zero() {
        return false;
    }
    let mut probe = [0u8; 1];
    matches!(
        tokio::time::timeout(pause, stream.peek(&mut probe)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// Reads, feeds, and acts on events until the session closes or asks for TLS.
async fn drive<S: Io>(
    stream: &mut S,
    proto: &mut Protocol,
    ctx: &SessionContext,
    client: &Client,
    deadline: Instant,
) -> End {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut shutdown = ctx.shutdown.clone();
    let command_timeout = Duration::from_secs(ctx.timeouts.command_secs);
    loop {
        let limit = (Instant::now() + command_timeout).min(deadline);
        let read = tokio::select! {
            r = tokio::time::timeout_at(limit, stream.read(&mut buf)) => r,
            _ = shutdown.changed(), if !proto.in_data() => {
                let _ = stream.write_all(&Reply::shutting_down().to_bytes()).await;
                return End::Closed;
            }
        };
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) => return End::Closed,
            Ok(Ok(n)) => n,
            Err(_) => {
                let _ = stream.write_all(&Reply::timeout().to_bytes()).await;
                return End::Closed;
            }
        };
        let events = proto.feed(&buf[..n]);
        match act(stream, proto, ctx, client, events).await {
            Some(end) => return end,
            None => continue,
        }
    }
}

/// Carries out events in order; a message's reply may produce more events.
async fn act<S: Io>(
    stream: &mut S,
    proto: &mut Protocol,
    ctx: &SessionContext,
    client: &Client,
    mut events: Vec<Event>,
) -> Option<End> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < events.len() {
        match std::mem::replace(&mut events[i], Event::Close) {
            Event::Reply(r) => out.extend_from_slice(&r.to_bytes()),
            Event::Message(envelope) => {
                // Replies before the message go out first: the client may be waiting.
                if write(stream, &mut out).await.is_err() {
                    return Some(End::Closed);
                }
                let reply = ctx.sink.deliver(envelope, client).await;
                let more = proto.message_done(reply);
                events.truncate(i + 1);
                events.extend(more);
            }
            Event::CheckRcpt(check) => {
                // Pipelined replies stay in order: they go out with the verdict's.
                let refusal = ctx.sink.check_rcpt(check, client).await;
                let more = proto.rcpt_checked(refusal);
                events.truncate(i + 1);
                events.extend(more);
            }
            Event::Auth(credentials) => {
                let refusal = ctx.sink.authenticate(credentials, client).await;
                let more = proto.auth_checked(refusal);
                events.truncate(i + 1);
                events.extend(more);
            }
            Event::StartTls => {
                let _ = write(stream, &mut out).await;
                return Some(End::StartTls);
            }
            Event::Close => {
                let _ = write(stream, &mut out).await;
                return Some(End::Closed);
            }
        }
        i += 1;
    }
    if write(stream, &mut out).await.is_err() {
        return Some(End::Closed);
    }
    None
}

async fn write<S: Io>(stream: &mut S, out: &mut Vec<u8>) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    stream.write_all(out).await?;
    stream.flush().await?;
    out.clear();
    Ok(())
}
