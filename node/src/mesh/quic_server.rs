//! The inbound side of [`super::quic::QuicTransport`]: accept connections (the handshake has
//! already refused anyone without a cluster certificate), then serve each stream with the
//! handler, within the stream and time bounds of `quic.rs`.

use std::sync::Arc;

use bytes::Bytes;
use quinn::{Connection, Endpoint, Incoming, RecvStream, SendStream, VarInt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::frame::{self, FrameHeader};
use super::quic::{
    CLOSE_BAD_PEER, HANDLER_TIMEOUT, HANDSHAKE_TIMEOUT, INBOUND_CONNECTIONS_MAX, STREAM_IO_TIMEOUT,
};
use super::quic_streams::{ReadFrameError, read_body, read_header, write_frame};
use super::tls;
use super::transport::{ErrorCode, Handler, MessageKind, Peer, RemoteError};

/// Stream stop code: this side will not read the rest of the stream.
const STOP_NOT_READING: u32 = 1;

/// What the accept loop needs (deliberately not the transport itself, so that dropping every
/// `QuicTransport` closes the endpoint).
pub(crate) struct ServerSide {
    /// The QUIC endpoint to accept connections on.
    pub endpoint: Endpoint,
    /// Answers each request or one-way message.
    pub handler: Arc<dyn Handler>,
    /// Permits for inbound streams served at once over all connections (`INBOUND_STREAMS_MAX`).
    pub inbound_streams: Arc<Semaphore>,
    /// Flips to true when the transport shuts down; the loop then stops.
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(server: ServerSide) {
    let connections = Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX));
    let server = Arc::new(server);
    while let Some(incoming) = server.endpoint.accept().await {
        if *server.shutdown.borrow() {
            incoming.refuse();
            continue;
        }
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(remote = %incoming.remote_address(), "mesh: too many connections");
            incoming.refuse();
            continue;
        };
        tokio::spawn(serve_connection(server.clone(), incoming, permit));
    }
}

async fn serve_connection(
    server: Arc<ServerSide>,
    incoming: Incoming,
    _permit: OwnedSemaphorePermit,
) {
    let remote = incoming.remote_address();
    let conn =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, async { incoming.accept()?.await }).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "mesh: inbound handshake refused");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote, "mesh: inbound handshake timed out");
                return;
            }
        };
    let node_id = match tls::peer_node_id(&conn) {
        Ok(id) => id,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "mesh: peer certificate names no node");
            conn.close(VarInt::from_u32(CLOSE_BAD_PEER), b"bad certificate");
            return;
        }
    };
    tracing::debug!(%remote, node = %node_id, "mesh: inbound connection");
    let peer = Peer {
        node_id,
        addr: remote,
    };
    serve_streams(&server, &conn, &peer).await;
}

/// Dispatches the connection's streams until it closes or the transport shuts down.
async fn serve_streams(server: &ServerSide, conn: &Connection, peer: &Peer) {
    let mut shutdown = server.shutdown.clone();
    loop {
        let stream = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            bi = conn.accept_bi() => bi.map(|(send, recv)| (Some(send), recv)),
            uni = conn.accept_uni() => uni.map(|recv| (None, recv)),
        };
        let Ok((send, recv)) = stream else {
            return; // connection closed
        };
        let permit = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            permit = server.inbound_streams.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else {
            return; // semaphore closed: shutting down
        };
        let (handler, peer) = (server.handler.clone(), peer.clone());
        tokio::spawn(async move {
            match send {
                Some(send) => serve_request(handler, peer, send, recv).await,
                None => serve_one_way(handler, peer, recv).await,
            }
            drop(permit);
        });
    }
}

/// The request on a bidirectional stream, answered with exactly one response frame.
async fn serve_request(
    handler: Arc<dyn Handler>,
    peer: Peer,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let (kind, answer) = match read_request(&mut recv).await {
        Ok((header, body)) => {
            let answer = tokio::time::timeout(
                HANDLER_TIMEOUT,
                handler.handle(peer.clone(), header.kind, body),
            )
            .await
            .unwrap_or_else(|_| {
                Err(RemoteError::new(
                    ErrorCode::TIMEOUT,
                    format!("handler took longer than {HANDLER_TIMEOUT:?}"),
                ))
            });
            (header.kind, answer)
        }
        Err((kind, error)) => {
            let _ = recv.stop(VarInt::from_u32(STOP_NOT_READING));
            tracing::debug!(peer = %peer.node_id, %kind, %error, "mesh: refused request");
            (kind, Err(error))
        }
    };
    let (header, body) = match answer {
        Ok(body) => match FrameHeader::response(kind, false, body.len()) {
            Ok(header) => (header, body),
            Err(e) => error_frame(
                kind,
                RemoteError::new(ErrorCode::TOO_LARGE, format!("answer: {e}")),
            ),
        },
        Err(error) => error_frame(kind, error),
    };
    let delivered = tokio::time::timeout(STREAM_IO_TIMEOUT, async {
        write_frame(&mut send, header, body)
            .await
            .map_err(|e| e.to_string())?;
        // Until the peer acknowledges the answer, so that a graceful close does not cut it off.
        send.stopped().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    })
    .await;
    let error = match delivered {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => format!("not acknowledged within {STREAM_IO_TIMEOUT:?}"),
    };
    tracing::debug!(peer = %peer.node_id, %kind, %error, "mesh: answer not delivered");
}

/// A one-way message on a unidirectional stream; nothing is answered.
async fn serve_one_way(handler: Arc<dyn Handler>, peer: Peer, mut recv: RecvStream) {
    match read_request(&mut recv).await {
        Ok((header, body)) => {
            let handled = tokio::time::timeout(
                HANDLER_TIMEOUT,
                handler.handle(peer.clone(), header.kind, body),
            )
            .await;
            match handled {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::debug!(peer = %peer.node_id, kind = %header.kind, %error, "mesh: one-way message failed");
                }
                Err(_) => {
                    tracing::debug!(peer = %peer.node_id, kind = %header.kind, "mesh: one-way handler timed out")
                }
            }
        }
        Err((kind, error)) => {
            let _ = recv.stop(VarInt::from_u32(STOP_NOT_READING));
            tracing::debug!(peer = %peer.node_id, %kind, %error, "mesh: refused one-way message");
        }
    }
}

/// Reads one request frame, bounded in time and size. An unusable one yields the kind (as
/// far as known) and the error to answer; its body is not read.
async fn read_request(
    recv: &mut RecvStream,
) -> Result<(FrameHeader, Bytes), (MessageKind, RemoteError)> {
    let read = async {
        let header = read_header(recv)
            .await
            .map_err(|e| (MessageKind(0), read_error(e)))?;
        header.check_request().map_err(|e| (header.kind, e))?;
        let body = read_body(recv, header.body_len())
            .await
            .map_err(|e| (header.kind, read_error(e)))?;
        Ok((header, body))
    };
    tokio::time::timeout(STREAM_IO_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err((
                MessageKind(0),
                RemoteError::new(
                    ErrorCode::MALFORMED,
                    format!("request not read within {STREAM_IO_TIMEOUT:?}"),
                ),
            ))
        })
}

fn read_error(e: ReadFrameError) -> RemoteError {
    match e {
        ReadFrameError::Frame(e @ frame::FrameError::TooLarge { .. }) => {
            RemoteError::new(ErrorCode::TOO_LARGE, e.to_string())
        }
        other => RemoteError::new(ErrorCode::MALFORMED, other.to_string()),
    }
}

fn error_frame(kind: MessageKind, error: RemoteError) -> (FrameHeader, Bytes) {
    let body = frame::encode_error(&error);
    let header = FrameHeader {
        version: frame::FRAME_VERSION,
        flags: frame::FLAG_RESPONSE | frame::FLAG_ERROR,
        kind,
        body_len: 0, // set by write_frame
    };
    (header, body)
}
