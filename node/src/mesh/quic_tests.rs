//! QUIC-only checks beyond the shared contract: who the handshake refuses, garbage on the
//! port, and raw frames a different (newer, buggy or hostile) node could send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::QuicClientConfig;
use rand::Rng;

use super::test_harness::QuicHarness;
use crate::mesh::frame::{self, FRAME_BODY_BYTES_MAX, FRAME_VERSION, FrameHeader};
use crate::mesh::tls;
use crate::mesh::transport::{
    ErrorCode, Handler, MessageKind, Transport, TransportError, handler_fn,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Counts calls; answers RPC with the sender's id.
fn counting() -> (Arc<dyn Handler>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let handler = handler_fn(move |from, _kind, _body| {
        counter.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(Bytes::from(from.node_id)) })
    });
    (handler, calls)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A bare quinn client endpoint with the given client config.
fn raw_client(config: quinn::ClientConfig) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

/// One raw request on a new stream of `conn`: returns the decoded answer frame.
async fn raw_request(conn: &quinn::Connection, wire: &[u8]) -> anyhow::Result<frame::Frame> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(wire).await?;
    send.finish()?;
    let answer = recv
        .read_to_end(frame::FRAME_HEADER_BYTES + FRAME_BODY_BYTES_MAX)
        .await?;
    Ok(frame::decode_exact(&answer)?)
}

fn request_wire(version: u8, kind: MessageKind, body: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        version,
        flags: 0,
        kind,
        body_len: 0,
    };
    frame::encode(header, body).unwrap().to_vec()
}

#[tokio::test]
async fn a_node_of_another_cluster_is_refused_both_ways() {
    let mut ours = QuicHarness::new();
    let mut theirs = QuicHarness::new(); // a different CA
    let (handler, calls) = counting();
    let a = ours.bind(loopback(), "mx-a", handler).unwrap();
    let (evil_handler, evil_calls) = counting();
    let evil = theirs.bind(loopback(), "mx-a", evil_handler).unwrap();

    let err = evil
        .request(a.local_addr(), MessageKind::RPC, Bytes::new(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(!matches!(err, TransportError::Remote { .. }), "{err}");
    evil.send(a.local_addr(), MessageKind::GOSSIP, Bytes::new())
        .await
        .ok();
    let err = a
        .request(evil.local_addr(), MessageKind::RPC, Bytes::new(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no handler runs for a foreign node"
    );
    assert_eq!(evil_calls.load(Ordering::SeqCst), 0);

    // Our own nodes are unaffected.
    let b = ours.bind(loopback(), "mx-b", counting().0).unwrap();
    let (peer, _) = b
        .request(a.local_addr(), MessageKind::RPC, Bytes::new(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(peer.node_id, "mx-a");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let mut h = QuicHarness::new();
    let (handler, calls) = counting();
    let a = h.bind(loopback(), "mx-a", handler).unwrap();
    // Trusts our CA, presents nothing.
    let verifier = tls::server_verifier(&h.identity("mx-b")).unwrap();
    let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
    crypto.alpn_protocols = vec![tls::ALPN.to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(crypto).unwrap()));
    let client = raw_client(config);

    let attempt = async {
        let conn = client
            .connect(a.local_addr(), tls::DIAL_SERVER_NAME)?
            .await?;
        raw_request(&conn, &request_wire(FRAME_VERSION, MessageKind::RPC, b"hi")).await
    };
    let result = tokio::time::timeout(TIMEOUT, attempt)
        .await
        .expect("refused promptly");
    assert!(result.is_err(), "{result:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn garbage_datagrams_neither_crash_nor_block_the_endpoint() {
    let mut h = QuicHarness::new();
    let (handler, calls) = counting();
    let a = h.bind(loopback(), "mx-a", handler).unwrap();
    let b = h.bind(loopback(), "mx-b", counting().0).unwrap();
    // A live connection from before the garbage must survive it.
    b.request(a.local_addr(), MessageKind::RPC, Bytes::new(), TIMEOUT)
        .await
        .unwrap();

    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let mut rng = rand::rng();
    for i in 0..2000 {
        let len = rng.random_range(1..1500);
        let mut datagram: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i % 2 == 0 && len >= 1200 {
            // Looks like a QUIC v1 Initial packet.
            datagram[0] = 0xc0 | (datagram[0] & 0x0f);
            datagram[1..5].copy_from_slice(&1u32.to_be_bytes());
        }
        socket.send_to(&datagram, a.local_addr()).await.unwrap();
    }
    let (peer, body) = b
        .request(a.local_addr(), MessageKind::RPC, Bytes::new(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!((peer.node_id.as_str(), &body[..]), ("mx-a", &b"mx-b"[..]));
    let c = h.bind(loopback(), "mx-c", counting().0).unwrap();
    c.request(a.local_addr(), MessageKind::RPC, Bytes::new(), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn unknown_versions_and_oversized_headers_get_error_frames_on_a_usable_connection() {
    let mut h = QuicHarness::new();
    let (handler, calls) = counting();
    let a = h.bind(loopback(), "mx-a", handler).unwrap();
    let client = raw_client(tls::client_config(&h.identity("mx-raw")).unwrap());
    let conn = client
        .connect(a.local_addr(), tls::DIAL_SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    assert_eq!(tls::peer_node_id(&conn).unwrap(), "mx-a");

    let future = request_wire(FRAME_VERSION + 1, MessageKind::RPC, b"from the future");
    let answer = raw_request(&conn, &future).await.unwrap();
    assert!(answer.header.is_response() && answer.header.is_error());
    assert_eq!(
        frame::decode_error(&answer.body).code,
        ErrorCode::UNSUPPORTED_VERSION
    );

    let mut huge = request_wire(FRAME_VERSION, MessageKind::RPC, b"");
    huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let answer = raw_request(&conn, &huge).await.unwrap();
    assert_eq!(frame::decode_error(&answer.body).code, ErrorCode::TOO_LARGE);

    let truncated = &request_wire(FRAME_VERSION, MessageKind::RPC, b"0123456789")[..12];
    let answer = raw_request(&conn, truncated).await.unwrap();
    assert_eq!(frame::decode_error(&answer.body).code, ErrorCode::MALFORMED);

    let response_as_request = frame::encode(
        FrameHeader::response(MessageKind::RPC, false, 0).unwrap(),
        b"",
    )
    .unwrap();
    let answer = raw_request(&conn, &response_as_request).await.unwrap();
    assert_eq!(frame::decode_error(&answer.body).code, ErrorCode::MALFORMED);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let answer = raw_request(&conn, &request_wire(FRAME_VERSION, MessageKind::RPC, b"ok"))
        .await
        .unwrap();
    assert!(!answer.header.is_error());
    assert_eq!(
        answer.body,
        Bytes::from_static(b"mx-raw"),
        "sender id from the certificate"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dialling_a_known_node_name_checks_the_id() {
    let mut h = QuicHarness::new();
    let a = h.bind(loopback(), "mx-a", counting().0).unwrap();
    let client = raw_client(tls::client_config(&h.identity("mx-b")).unwrap());
    let right = client
        .connect(a.local_addr(), "mx-a.node.mxmesh")
        .unwrap()
        .await;
    assert!(right.is_ok());
    let wrong = client
        .connect(a.local_addr(), "mx-z.node.mxmesh")
        .unwrap()
        .await;
    assert!(wrong.is_err());
}

#[tokio::test]
async fn close_lets_in_flight_requests_finish() {
    let mut h = QuicHarness::new();
    let slow = handler_fn(|_from, _kind, _body| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Bytes::from_static(b"done"))
        })
    });
    let a = h.bind(loopback(), "mx-a", slow).unwrap();
    let b = h.bind(loopback(), "mx-b", counting().0).unwrap();
    let to = a.local_addr();
    let pending =
        tokio::spawn(async move { b.request(to, MessageKind::RPC, Bytes::new(), TIMEOUT).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.close().await;
    let (_, body) = pending.await.unwrap().unwrap();
    assert_eq!(body, Bytes::from_static(b"done"));
}
