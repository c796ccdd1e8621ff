//! The SMTP accept loop: a connection limit (semaphore), accept-error backoff, and a
//! shutdown that stops accepting and waits for every session to finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::reply::Reply;
use super::session::{self, SessionContext};

/// Longest pause after repeated accept errors (e.g. out of file descriptors).
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long shutdown waits for sessions before it gives up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts until `shutdown`, then waits (bounded) for open sessions.
pub async fn serve(listener: TcpListener, ctx: SessionContext, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (mut stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    session::run(stream, peer, ctx).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(async move {
                    let _ = stream.write_all(&Reply::too_busy().to_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        }
    }
    drop(listener);
    let all = max_connections as u32;
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown: sessions still open after the drain timeout");
    }
}
