//! A downstream SMTP sink for the demo and for operators trying mxmesh out: it accepts
//! every message for any domain and stores it as `DIR/<id>.eml` (the bytes as received)
//! beside `DIR/<id>.json` (the envelope). It shares the server's protocol state machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::smtp::reply::Reply;
use crate::smtp::state::{Envelope, Event, Protocol, ProtocolConfig, SmtpLimits};

/// Sessions the sink serves at once.
const SINK_CONNECTIONS_MAX: usize = 256;

/// A running sink.
pub struct Sink {
    /// The address it listens on, as bound.
    pub addr: SocketAddr,
    /// Where each message is stored: `<id>.eml` (as received) and `<id>.json` (envelope).
    pub dir: PathBuf,
    /// While set, every message is answered `451` and not stored (a downstream that is
    /// down, for the simulator's queued mail).
    held: Arc<AtomicBool>,
}

impl Sink {
    /// Refuses (`451`) every message while `on`, as a downstream that is down.
    pub fn hold(&self, on: bool) {
        self.held.store(on, Ordering::SeqCst);
    }
}

/// Binds and serves in the background.
pub async fn start(listen: SocketAddr, dir: PathBuf) -> anyhow::Result<Sink> {
    std::fs::create_dir_all(&dir).with_context(|| format!("sink directory {}", dir.display()))?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("sink listen {listen}"))?;
    let addr = listener.local_addr()?;
    let config = Arc::new(ProtocolConfig {
        hostname: "sink.mxmesh.invalid".into(),
        limits: SmtpLimits::default(),
        accepted_domains: Vec::new(),
        accept_any_domain: true,
        starttls_available: false,
        check_recipients: false,
        submission: false,
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(SINK_CONNECTIONS_MAX));
    let out = dir.clone();
    let held = Arc::new(AtomicBool::new(false));
    let holding = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (config, dir, held) = (config.clone(), out.clone(), holding.clone());
            tokio::spawn(async move {
                let _ = session(stream, config, dir, held).await;
                drop(permit);
            });
        }
    });
    Ok(Sink { addr, dir, held })
}

async fn session(
    mut stream: TcpStream,
    config: Arc<ProtocolConfig>,
    dir: PathBuf,
    held: Arc<AtomicBool>,
) -> std::io::Result<()> {
    // Replies to pipelined commands go out as separate writes: without NODELAY, Nagle
    // holds each second one until the client's delayed ACK (40 ms on loopback).
    stream.set_nodelay(true)?;
    let mut proto = Protocol::new(config);
    stream.write_all(&proto.greeting().to_bytes()).await?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let mut events = proto.feed(&buf[..n]);
        while !events.is_empty() {
            let mut next = Vec::new();
            for e in events {
                match e {
                    Event::Reply(r) => stream.write_all(&r.to_bytes()).await?,
                    Event::Message(env) => {
                        let reply = match held.load(Ordering::SeqCst) {
                            true => Err(()),
                            false => store(&dir, &env).map_err(|_| ()),
                        };
                        let reply =
                            reply.map_or_else(|()| Reply::tempfail_store(), Reply::ok_queued);
                        next.extend(proto.message_done(reply));
                    }
                    Event::CheckRcpt(_) => next.extend(proto.rcpt_checked(None)),
                    Event::Auth(_) => next.extend(proto.auth_checked(Some(Reply::auth_failed()))),
                    Event::StartTls | Event::Close => return Ok(()),
                }
            }
            events = next;
        }
    }
}

fn store(dir: &std::path::Path, env: &Envelope) -> std::io::Result<String> {
    let id = ulid::Ulid::generate().to_string();
    let meta =
        serde_json::json!({ "from": env.mail_from, "to": env.rcpt_to, "size": env.body.len() });
    std::fs::write(dir.join(format!("{id}.json")), meta.to_string())?;
    std::fs::write(dir.join(format!("{id}.eml")), &env.body)?;
    Ok(id)
}
