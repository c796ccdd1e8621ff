//! Test harnesses for the transport contract (`contract_tests.rs`): how to make a node and
//! how to break and restore the way to it, for each transport.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::ca;
use crate::mesh::memory::MemoryNetwork;
use crate::mesh::quic::{QuicError, QuicTransport};
use crate::mesh::tls::Identity;
use crate::mesh::transport::{Handler, Transport};

const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) type Node = Arc<dyn Transport>;

/// Makes nodes, and breaks and restores the way to one of them.
pub(super) trait Harness {
    async fn node(&mut self, id: &str, handler: Arc<dyn Handler>) -> Node;
    /// After this, `client` cannot reach `server`.
    async fn outage(&mut self, client: &Node, server: Node) -> Outage;
    /// Undoes [`Harness::outage`]; returns the (possibly restarted) server.
    async fn recover(&mut self, outage: Outage) -> Node;
    /// An address where nothing answers.
    fn unused_addr(&mut self) -> SocketAddr;
}

pub(super) struct Outage {
    client: SocketAddr,
    pub(super) server: SocketAddr,
    id: String,
    /// The server itself, when the outage did not stop it.
    kept: Option<Node>,
}

/// Nodes on 127.0.0.1 with certificates issued by `ca::init`/`ca::issue` in a tempdir.
pub(super) struct QuicHarness {
    dir: tempfile::TempDir,
    /// Each node's handler, to restart it with the same one.
    handlers: HashMap<String, Arc<dyn Handler>>,
    tasks: Vec<(SocketAddr, JoinHandle<()>)>,
}

impl QuicHarness {
    pub(super) fn new() -> QuicHarness {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        ca::init(dir.path()).unwrap();
        QuicHarness {
            dir,
            handlers: HashMap::new(),
            tasks: Vec::new(),
        }
    }

    /// The identity of node `id`, issuing its certificate on first use.
    pub(super) fn identity(&self, id: &str) -> Identity {
        let path = |name: String| self.dir.path().join(name);
        if !path(format!("{id}.pem")).exists() {
            ca::issue(self.dir.path(), id, self.dir.path()).unwrap();
        }
        let (ca, cert, key) = (
            path("ca.pem".into()),
            path(format!("{id}.pem")),
            path(format!("{id}.key")),
        );
        Identity::load_for(id, &ca, &cert, &key).unwrap()
    }

    pub(super) fn bind(
        &mut self,
        addr: SocketAddr,
        id: &str,
        handler: Arc<dyn Handler>,
    ) -> Result<QuicTransport, QuicError> {
        let (transport, task) = QuicTransport::bind(addr, &self.identity(id), handler.clone())?;
        self.handlers.insert(id.to_owned(), handler);
        self.tasks.push((transport.local_addr(), task));
        Ok(transport)
    }
}

impl Harness for QuicHarness {
    async fn node(&mut self, id: &str, handler: Arc<dyn Handler>) -> Node {
        Arc::new(
            self.bind("127.0.0.1:0".parse().unwrap(), id, handler)
                .unwrap(),
        )
    }

    /// Stops the server (close, drop, wait for its accept loop).
    async fn outage(&mut self, client: &Node, server: Node) -> Outage {
        let addr = server.local_addr();
        let id = server.local_node_id().to_owned();
        server.close().await;
        drop(server);
        for (_, task) in self.tasks.iter_mut().filter(|(a, _)| *a == addr) {
            tokio::time::timeout(TIMEOUT, task).await.unwrap().unwrap();
        }
        Outage {
            client: client.local_addr(),
            server: addr,
            id,
            kept: None,
        }
    }

    /// Restarts the server on the same address with the same identity and handler.
    async fn recover(&mut self, outage: Outage) -> Node {
        let handler = self.handlers[&outage.id].clone();
        // The old socket closes once quinn's endpoint driver notices; retry briefly.
        for _ in 0..100 {
            match self.bind(outage.server, &outage.id, handler.clone()) {
                Ok(transport) => return Arc::new(transport),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        panic!("could not rebind {}", outage.server);
    }

    fn unused_addr(&mut self) -> SocketAddr {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    }
}

/// Nodes at 127.0.0.N:7946 on one [`MemoryNetwork`].
#[derive(Default)]
pub(super) struct MemoryHarness {
    net: MemoryNetwork,
    nodes: u8,
}

impl Harness for MemoryHarness {
    async fn node(&mut self, id: &str, handler: Arc<dyn Handler>) -> Node {
        self.nodes += 1;
        let addr = SocketAddr::from(([127, 0, 0, self.nodes], 7946));
        Arc::new(self.net.endpoint(addr, id, handler))
    }

    /// Cuts the link; the server keeps running.
    async fn outage(&mut self, client: &Node, server: Node) -> Outage {
        self.net.cut(client.local_addr(), server.local_addr());
        Outage {
            client: client.local_addr(),
            server: server.local_addr(),
            id: server.local_node_id().to_owned(),
            kept: Some(server),
        }
    }

    async fn recover(&mut self, outage: Outage) -> Node {
        self.net.heal(outage.client, outage.server);
        outage.kept.expect("memory outages keep the server")
    }

    fn unused_addr(&mut self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 254], 7946))
    }
}
