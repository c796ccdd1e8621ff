//! [`MemoryTransport`]: the in-memory twin of the QUIC transport, for tests and the partition
//! simulator. A [`MemoryNetwork`] hub knows every endpoint; links can be cut (both ways or
//! one way), nodes isolated, everything healed.
//!
//! Deterministic by construction: nothing is spawned and no timer runs on its own. A message
//! is delivered by awaiting the receiver's handler inside the sender's future, so the order
//! of events is the order in which the caller polls. The only clock use is the request
//! timeout (`tokio::time`, so a paused runtime clock drives it).
//!
//! Same observable contract as QUIC (see `contract_tests.rs`): the sender's identity is the
//! node id it registered with; bodies over `FRAME_BODY_BYTES_MAX` are refused; unknown kinds
//! are answered with an UNKNOWN_KIND error; a cut link or a missing endpoint is
//! [`TransportError::Unreachable`]; a link cut while the handler runs loses the answer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use super::frame::FRAME_BODY_BYTES_MAX;
use super::transport::{
    BoxFuture, ErrorCode, Handler, MessageKind, Peer, RemoteError, Transport, TransportError,
};

/// The hub. Cheap to clone; clones share the same network.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetState>>,
}

/// Message-level faults on every link: each message may be lost, delivered twice, or
/// delayed (which reorders concurrent messages). Drawn from a seeded generator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFaults {
    /// Probability that a message is lost (a request then fails as timed out).
    pub loss: f64,
    /// Probability that a message is handled twice.
    pub duplicate: f64,
    /// Each message waits a uniform 0..=`delay_max_ms` before delivery.
    pub delay_max_ms: u64,
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, Default)]
struct Fate {
    lost: bool,
    twice: bool,
    delay: Duration,
}

/// A lost request fails after this long (or its own timeout, if shorter).
const LOST_REQUEST_WAIT: Duration = Duration::from_millis(500);

#[derive(Default)]
struct NetState {
    faults: LinkFaults,
    rng: Option<rand::rngs::StdRng>,
    endpoints: HashMap<SocketAddr, Registration>,
    /// Directed links that drop everything: (from, to).
    cut: HashSet<(SocketAddr, SocketAddr)>,
    isolated: HashSet<SocketAddr>,
    /// Bumped on every registration, so that a restarted endpoint's old handle is dead.
    generation: u64,
}

#[derive(Clone)]
struct Registration {
    node_id: String,
    handler: Arc<dyn Handler>,
    generation: u64,
}

impl NetState {
    fn link_up(&self, from: SocketAddr, to: SocketAddr) -> bool {
        !self.cut.contains(&(from, to))
            && !self.isolated.contains(&from)
            && !self.isolated.contains(&to)
    }
}

impl MemoryNetwork {
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// Registers a node at `addr`. Registering an address again replaces the old endpoint
    /// (a restart): the old handle behaves as closed.
    pub fn endpoint(
        &self,
        addr: SocketAddr,
        node_id: impl Into<String>,
        handler: Arc<dyn Handler>,
    ) -> MemoryTransport {
        let node_id = node_id.into();
        let mut state = self.lock();
        state.generation += 1;
        let generation = state.generation;
        state.endpoints.insert(
            addr,
            Registration {
                node_id: node_id.clone(),
                handler,
                generation,
            },
        );
        MemoryTransport {
            net: self.clone(),
            addr,
            node_id,
            generation,
        }
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&self, a: SocketAddr, b: SocketAddr) {
        let mut state = self.lock();
        state.cut.insert((a, b));
        state.cut.insert((b, a));
    }

    /// Cuts only the direction `from` → `to` (requests then fail both ways, since answers
    /// cannot come back; one-way messages from `to` still arrive).
    pub fn cut_one_way(&self, from: SocketAddr, to: SocketAddr) {
        self.lock().cut.insert((from, to));
    }

    /// Restores the link between `a` and `b` in both directions.
    pub fn heal(&self, a: SocketAddr, b: SocketAddr) {
        let mut state = self.lock();
        state.cut.remove(&(a, b));
        state.cut.remove(&(b, a));
    }

    /// Cuts `a` off from everyone (until [`MemoryNetwork::rejoin`] or `heal_all`).
    pub fn isolate(&self, a: SocketAddr) {
        self.lock().isolated.insert(a);
    }

    pub fn rejoin(&self, a: SocketAddr) {
        self.lock().isolated.remove(&a);
    }

    /// Restores every link and isolated node, and clears [`LinkFaults`].
    pub fn heal_all(&self) {
        let mut state = self.lock();
        state.cut.clear();
        state.isolated.clear();
        state.faults = LinkFaults::default();
    }

    /// Makes every link flaky until `heal_all`; `seed` makes the draws repeatable.
    pub fn set_faults(&self, faults: LinkFaults, seed: u64) {
        use rand::SeedableRng;
        let mut state = self.lock();
        state.faults = faults;
        state.rng = Some(rand::rngs::StdRng::seed_from_u64(seed));
    }

    /// Draws the fate of one message.
    fn fate(&self) -> Fate {
        use rand::Rng;
        let mut state = self.lock();
        let f = state.faults;
        if f == LinkFaults::default() {
            return Fate::default();
        }
        let rng = state
            .rng
            .get_or_insert_with(|| rand::SeedableRng::seed_from_u64(0));
        Fate {
            lost: rng.random_bool(f.loss.clamp(0.0, 1.0)),
            twice: rng.random_bool(f.duplicate.clamp(0.0, 1.0)),
            delay: Duration::from_millis(rng.random_range(0..=f.delay_max_ms)),
        }
    }

    /// Whether a message from `from` would reach a live endpoint at `to`.
    pub fn reachable(&self, from: SocketAddr, to: SocketAddr) -> bool {
        let state = self.lock();
        state.endpoints.contains_key(&to) && state.link_up(from, to)
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One node's endpoint on a [`MemoryNetwork`].
#[derive(Clone)]
pub struct MemoryTransport {
    net: MemoryNetwork,
    addr: SocketAddr,
    node_id: String,
    generation: u64,
}

/// Which way a message must get through.
#[derive(Clone, Copy)]
enum Needs {
    /// A request: there and back.
    BothWays,
    OneWay,
}

impl MemoryTransport {
    /// The receiving endpoint, if this one is open and the link(s) are up.
    fn route(&self, to: SocketAddr, needs: Needs) -> Result<Registration, TransportError> {
        let state = self.net.lock();
        let mine = state.endpoints.get(&self.addr);
        if mine.is_none_or(|r| r.generation != self.generation) {
            return Err(TransportError::Closed);
        }
        let unreachable = |reason: &str| TransportError::Unreachable {
            addr: to,
            reason: reason.to_owned(),
        };
        let Some(target) = state.endpoints.get(&to) else {
            return Err(unreachable("no endpoint at this address"));
        };
        let up = match needs {
            Needs::BothWays => state.link_up(self.addr, to) && state.link_up(to, self.addr),
            Needs::OneWay => state.link_up(self.addr, to),
        };
        if !up {
            return Err(unreachable("link cut"));
        }
        Ok(target.clone())
    }

    fn me(&self) -> Peer {
        Peer {
            node_id: self.node_id.clone(),
            addr: self.addr,
        }
    }
}

fn check_size(body: &Bytes) -> Result<(), TransportError> {
    match body.len() > FRAME_BODY_BYTES_MAX {
        true => Err(TransportError::TooLarge {
            len: body.len(),
            max: FRAME_BODY_BYTES_MAX,
        }),
        false => Ok(()),
    }
}

fn unknown_kind(kind: MessageKind) -> RemoteError {
    RemoteError::new(
        ErrorCode::UNKNOWN_KIND,
        format!("unknown message kind {}", kind.0),
    )
}

impl Transport for MemoryTransport {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn local_node_id(&self) -> &str {
        &self.node_id
    }

    fn request(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(Peer, Bytes), TransportError>> {
        Box::pin(async move {
            check_size(&body)?;
            let target = self.route(to, Needs::BothWays)?;
            let remote = |error| TransportError::Remote { addr: to, error };
            if !kind.is_known() {
                return Err(remote(unknown_kind(kind)));
            }
            let fate = self.net.fate();
            if fate.lost {
                tokio::time::sleep(LOST_REQUEST_WAIT.min(timeout)).await;
                return Err(TransportError::Timeout { addr: to, timeout });
            }
            tokio::time::sleep(fate.delay).await;
            if fate.twice {
                let _ = target.handler.handle(self.me(), kind, body.clone()).await;
            }
            let answer =
                tokio::time::timeout(timeout, target.handler.handle(self.me(), kind, body))
                    .await
                    .map_err(|_| TransportError::Timeout { addr: to, timeout })?;
            // The answer travels back only if the link and the responder survived.
            match self.route(to, Needs::BothWays) {
                Ok(now) if now.generation == target.generation => {}
                Ok(_) => {
                    return Err(TransportError::ConnectionLost {
                        addr: to,
                        reason: "peer restarted".into(),
                    });
                }
                Err(e) => return Err(e),
            }
            let answer = answer.map_err(remote)?;
            if answer.len() > FRAME_BODY_BYTES_MAX {
                return Err(remote(RemoteError::new(
                    ErrorCode::TOO_LARGE,
                    format!("answer of {} bytes exceeds the limit", answer.len()),
                )));
            }
            let peer = Peer {
                node_id: target.node_id,
                addr: to,
            };
            Ok((peer, answer))
        })
    }

    fn send(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        body: Bytes,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            check_size(&body)?;
            let target = self.route(to, Needs::OneWay)?;
            let fate = self.net.fate();
            if kind.is_known() && !fate.lost {
                // Delivered in the caller's future; the outcome is the receiver's business.
                tokio::time::sleep(fate.delay).await;
                if fate.twice {
                    let _ = target.handler.handle(self.me(), kind, body.clone()).await;
                }
                let _ = target.handler.handle(self.me(), kind, body).await;
            }
            Ok(())
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut state = self.net.lock();
            if state
                .endpoints
                .get(&self.addr)
                .is_some_and(|r| r.generation == self.generation)
            {
                state.endpoints.remove(&self.addr);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::transport::handler_fn;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 7946))
    }

    fn echo() -> Arc<dyn Handler> {
        handler_fn(|from, _kind, body| {
            Box::pin(async move { Ok(Bytes::from(format!("{}:{}", from.node_id, body.len()))) })
        })
    }

    const T: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn one_way_cut_blocks_requests_both_ways_but_not_sends_back() {
        let net = MemoryNetwork::new();
        let a = net.endpoint(addr(1), "a", echo());
        let b = net.endpoint(addr(2), "b", echo());
        net.cut_one_way(addr(1), addr(2));
        assert!(!net.reachable(addr(1), addr(2)));
        assert!(net.reachable(addr(2), addr(1)));
        assert!(
            a.request(addr(2), MessageKind::RPC, Bytes::new(), T)
                .await
                .is_err()
        );
        assert!(
            b.request(addr(1), MessageKind::RPC, Bytes::new(), T)
                .await
                .is_err()
        );
        assert!(
            b.send(addr(1), MessageKind::GOSSIP, Bytes::new())
                .await
                .is_ok()
        );
        assert!(
            a.send(addr(2), MessageKind::GOSSIP, Bytes::new())
                .await
                .is_err()
        );
        net.heal_all();
        assert!(
            a.request(addr(2), MessageKind::RPC, Bytes::new(), T)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn isolation_and_rejoin() {
        let net = MemoryNetwork::new();
        let a = net.endpoint(addr(1), "a", echo());
        let _b = net.endpoint(addr(2), "b", echo());
        net.isolate(addr(2));
        let err = a
            .request(addr(2), MessageKind::RPC, Bytes::new(), T)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
        net.rejoin(addr(2));
        let (peer, body) = a
            .request(addr(2), MessageKind::RPC, Bytes::new(), T)
            .await
            .unwrap();
        assert_eq!((peer.node_id.as_str(), &body[..]), ("b", &b"a:0"[..]));
    }

    #[tokio::test]
    async fn a_link_cut_while_handling_loses_the_answer() {
        let net = MemoryNetwork::new();
        let hub = net.clone();
        let cutter = handler_fn(move |from, _kind, _body| {
            hub.cut(from.addr, addr(2));
            Box::pin(async { Ok(Bytes::from_static(b"lost")) })
        });
        let a = net.endpoint(addr(1), "a", echo());
        let _b = net.endpoint(addr(2), "b", cutter);
        let err = a
            .request(addr(2), MessageKind::RPC, Bytes::new(), T)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn re_registering_an_address_is_a_restart() {
        let net = MemoryNetwork::new();
        let a = net.endpoint(addr(1), "a", echo());
        let old_b = net.endpoint(addr(2), "b", echo());
        let _new_b = net.endpoint(addr(2), "b", echo());
        let err = old_b
            .request(addr(1), MessageKind::RPC, Bytes::new(), T)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Closed), "{err}");
        old_b.close().await; // must not unregister the new endpoint
        assert!(
            a.request(addr(2), MessageKind::RPC, Bytes::new(), T)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn flaky_links_lose_duplicate_and_heal() {
        let net = MemoryNetwork::new();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        let counting: Arc<dyn Handler> = handler_fn(move |_, _, _| {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(Bytes::new()) })
        });
        let a = net.endpoint(addr(1), "a", echo());
        let _b = net.endpoint(addr(2), "b", counting);
        net.set_faults(
            LinkFaults {
                loss: 0.3,
                duplicate: 0.3,
                delay_max_ms: 2,
            },
            42,
        );
        let mut lost = 0;
        for _ in 0..200 {
            if a.request(
                addr(2),
                MessageKind::RPC,
                Bytes::new(),
                Duration::from_millis(50),
            )
            .await
            .is_err()
            {
                lost += 1;
            }
        }
        let handled = count.load(std::sync::atomic::Ordering::SeqCst);
        assert!((30..=90).contains(&lost), "lost {lost} of 200");
        assert!(handled > 200 - lost, "some were handled twice: {handled}");
        net.heal_all();
        for _ in 0..20 {
            a.request(
                addr(2),
                MessageKind::RPC,
                Bytes::new(),
                Duration::from_millis(50),
            )
            .await
            .unwrap();
        }
    }
}
