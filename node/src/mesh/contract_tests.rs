//! The transport contract, written once and run against every [`Transport`]: QUIC over
//! 127.0.0.1 with real certificates from `ca.rs`, and the in-memory twin. A [`Harness`] makes
//! nodes and breaks/restores the way between them (QUIC: stop and restart the endpoint;
//! memory: cut and heal the link). QUIC-only checks (handshake refusals, garbage datagrams,
//! raw frames) are in `quic_tests.rs`; the harnesses in `test_harness.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::test_harness::{Harness, Node};
use crate::mesh::frame::FRAME_BODY_BYTES_MAX;
use crate::mesh::transport::{
    ErrorCode, Handler, MessageKind, RemoteError, TransportError, handler_fn,
};

const TIMEOUT: Duration = Duration::from_secs(5);
/// Error code the probe's RULES_SYNC handler answers with.
const PROBE_ERROR: ErrorCode = ErrorCode(1234);

/// What a probe handler saw: calls, and every message in order.
struct Probe {
    calls: Arc<AtomicUsize>,
    seen: mpsc::UnboundedReceiver<(String, MessageKind, Bytes)>,
}

/// RPC: answers `<sender id>:<body length>`; GOSSIP: answers nothing; RULES_SYNC: fails with
/// [`PROBE_ERROR`]; INDEX_SYNC: answers one byte too many.
fn probe() -> (Arc<dyn Handler>, Probe) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, seen) = mpsc::unbounded_channel();
    let counter = calls.clone();
    let handler = handler_fn(move |from, kind, body| {
        counter.fetch_add(1, Ordering::SeqCst);
        let answer = format!("{}:{}", from.node_id, body.len());
        let _ = tx.send((from.node_id, kind, body));
        Box::pin(async move {
            match kind {
                MessageKind::RULES_SYNC => Err(RemoteError::new(PROBE_ERROR, "nope")),
                MessageKind::INDEX_SYNC => Ok(Bytes::from(vec![0u8; FRAME_BODY_BYTES_MAX + 1])),
                MessageKind::GOSSIP => Ok(Bytes::new()),
                _ => Ok(Bytes::from(answer)),
            }
        })
    });
    (handler, Probe { calls, seen })
}

pub(super) fn quiet() -> Arc<dyn Handler> {
    probe().0
}

async fn rpc(
    from: &Node,
    to: &Node,
    body: &'static [u8],
) -> Result<(String, Bytes), TransportError> {
    from.request(
        to.local_addr(),
        MessageKind::RPC,
        Bytes::from_static(body),
        TIMEOUT,
    )
    .await
    .map(|(peer, body)| (peer.node_id, body))
}

// ---------------------------------------------------------------- the contract

async fn request_round_trip_names_the_authenticated_peer(mut h: impl Harness) {
    let (handler, mut probe) = probe();
    let a = h.node("mx-a", handler).await;
    let b = h.node("mx-b", quiet()).await;
    let (peer, body) = b
        .request(
            a.local_addr(),
            MessageKind::RPC,
            Bytes::from_static(b"hello"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(peer.node_id, "mx-a");
    assert_eq!(peer.addr, a.local_addr());
    assert_eq!(body, Bytes::from_static(b"mx-b:5"));
    let (from, kind, body) = probe.seen.recv().await.unwrap();
    assert_eq!(
        (from.as_str(), kind, &body[..]),
        ("mx-b", MessageKind::RPC, &b"hello"[..])
    );
    assert_eq!(a.local_node_id(), "mx-a");
}

async fn the_sender_is_who_it_is_not_who_it_claims(mut h: impl Harness) {
    let a = h.node("mx-a", quiet()).await;
    let b = h.node("mx-b", quiet()).await;
    let (_, body) = rpc(&b, &a, b"{\"node_id\":\"mx-a\",\"from\":\"mx-c\"}")
        .await
        .unwrap();
    assert!(body.starts_with(b"mx-b:"), "{body:?}");
}

async fn one_way_send_is_delivered(mut h: impl Harness) {
    let (handler, mut probe) = probe();
    let a = h.node("mx-a", handler).await;
    let b = h.node("mx-b", quiet()).await;
    b.send(
        a.local_addr(),
        MessageKind::GOSSIP,
        Bytes::from_static(b"ping"),
    )
    .await
    .unwrap();
    let seen = tokio::time::timeout(TIMEOUT, probe.seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seen,
        (
            "mx-b".to_owned(),
            MessageKind::GOSSIP,
            Bytes::from_static(b"ping")
        )
    );
}

async fn bodies_up_to_the_limit_pass_and_larger_ones_are_refused(mut h: impl Harness) {
    let (handler, probe) = probe();
    let a = h.node("mx-a", handler).await;
    let b = h.node("mx-b", quiet()).await;
    let max = Bytes::from(vec![7u8; FRAME_BODY_BYTES_MAX]);
    let (_, body) = b
        .request(
            a.local_addr(),
            MessageKind::RPC,
            max,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(body, Bytes::from(format!("mx-b:{FRAME_BODY_BYTES_MAX}")));

    let over = Bytes::from(vec![7u8; FRAME_BODY_BYTES_MAX + 1]);
    let err = b
        .request(a.local_addr(), MessageKind::RPC, over.clone(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { .. }), "{err}");
    let err = b
        .send(a.local_addr(), MessageKind::GOSSIP, over)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { .. }), "{err}");
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        1,
        "oversized messages never reach the handler"
    );

    // An answer over the limit comes back as an error, not as a truncated body.
    let err = b
        .request(
            a.local_addr(),
            MessageKind::INDEX_SYNC,
            Bytes::new(),
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Remote { error, .. } if error.code == ErrorCode::TOO_LARGE),
        "{err}"
    );
}

async fn unknown_kinds_are_answered_with_an_error_and_the_link_stays_usable(mut h: impl Harness) {
    let (handler, probe) = probe();
    let a = h.node("mx-a", handler).await;
    let b = h.node("mx-b", quiet()).await;
    let err = b
        .request(
            a.local_addr(),
            MessageKind(999),
            Bytes::from_static(b"?"),
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Remote { error, .. } if error.code == ErrorCode::UNKNOWN_KIND),
        "{err}"
    );
    b.send(a.local_addr(), MessageKind(999), Bytes::new())
        .await
        .unwrap();
    assert_eq!(probe.calls.load(Ordering::SeqCst), 0);
    assert_eq!(
        rpc(&b, &a, b"ok").await.unwrap().1,
        Bytes::from_static(b"mx-b:2")
    );
}

async fn handler_errors_reach_the_caller(mut h: impl Harness) {
    let a = h.node("mx-a", quiet()).await;
    let b = h.node("mx-b", quiet()).await;
    let err = b
        .request(
            a.local_addr(),
            MessageKind::RULES_SYNC,
            Bytes::new(),
            TIMEOUT,
        )
        .await
        .unwrap_err();
    let TransportError::Remote { addr, error } = err else {
        panic!("expected a remote error, got {err}");
    };
    assert_eq!(addr, a.local_addr());
    assert_eq!(error, RemoteError::new(PROBE_ERROR, "nope"));
    assert!(rpc(&b, &a, b"").await.is_ok());
}

async fn an_unreachable_peer_fails_within_the_timeout(mut h: impl Harness) {
    let b = h.node("mx-b", quiet()).await;
    let nowhere = h.unused_addr();
    let timeout = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let err = b
        .request(nowhere, MessageKind::RPC, Bytes::new(), timeout)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            TransportError::Timeout { .. } | TransportError::Unreachable { .. }
        ),
        "{err}"
    );
    // A dead peer does not hold up a live one.
    let a = h.node("mx-a", quiet()).await;
    assert!(rpc(&b, &a, b"").await.is_ok());
}

async fn an_outage_fails_then_heals(mut h: impl Harness) {
    let a = h.node("mx-a", quiet()).await;
    let b = h.node("mx-b", quiet()).await;
    assert!(rpc(&b, &a, b"before").await.is_ok());
    let outage = h.outage(&b, a).await;
    let addr = outage.server;
    let err = b
        .request(
            addr,
            MessageKind::RPC,
            Bytes::new(),
            Duration::from_millis(500),
        )
        .await
        .unwrap_err();
    assert!(!matches!(err, TransportError::Remote { .. }), "{err}");
    let a = h.recover(outage).await;
    assert_eq!(a.local_addr(), addr);
    // Reconnects (after at most one backoff period).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match rpc(&b, &a, b"after").await {
            Ok((peer, _)) => break assert_eq!(peer, "mx-a"),
            Err(e) if tokio::time::Instant::now() > deadline => panic!("never recovered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn concurrent_requests_from_several_peers(mut h: impl Harness) {
    const CLIENTS: usize = 4;
    const REQUESTS_EACH: usize = 16;
    let (handler, probe) = probe();
    let server = h.node("mx-srv", handler).await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(h.node(&format!("mx-c{i}"), quiet()).await);
    }
    let to = server.local_addr();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        for j in 0..REQUESTS_EACH {
            let client = client.clone();
            tasks.spawn(async move {
                let body = Bytes::from(vec![0u8; j]);
                let (peer, answer) = client.request(to, MessageKind::RPC, body, TIMEOUT).await?;
                assert_eq!(peer.node_id, "mx-srv");
                assert_eq!(answer, Bytes::from(format!("mx-c{i}:{j}")));
                Ok::<_, TransportError>(())
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(probe.calls.load(Ordering::SeqCst), CLIENTS * REQUESTS_EACH);
}

async fn a_closed_transport_refuses_to_send(mut h: impl Harness) {
    let a = h.node("mx-a", quiet()).await;
    let b = h.node("mx-b", quiet()).await;
    b.close().await;
    b.close().await; // idempotent
    assert!(matches!(
        rpc(&b, &a, b"").await,
        Err(TransportError::Closed)
    ));
    assert!(
        rpc(&a, &b, b"").await.is_err(),
        "nobody answers for a closed node"
    );
}

/// Runs each contract test against both transports.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod quic_contract {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::mesh::test_harness::QuicHarness::new()).await
            })*
        }
        mod memory_contract {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::mesh::test_harness::MemoryHarness::default()).await
            })*
        }
    };
}

contract!(
    request_round_trip_names_the_authenticated_peer,
    the_sender_is_who_it_is_not_who_it_claims,
    one_way_send_is_delivered,
    bodies_up_to_the_limit_pass_and_larger_ones_are_refused,
    unknown_kinds_are_answered_with_an_error_and_the_link_stays_usable,
    handler_errors_reach_the_caller,
    an_unreachable_peer_fails_within_the_timeout,
    an_outage_fails_then_heals,
    concurrent_requests_from_several_peers,
    a_closed_transport_refuses_to_send,
);
