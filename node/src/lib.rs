//! mxmesh node: one mail-filtering MX of a masterless mesh.
//!
//! The layout follows the mail: bytes in → [`smtp`] (session owns the socket, state is a
//! sans-I/O machine) → [`inbound`] (one message: [`message`] parse → [`filter`] verdict →
//! disposition) → [`relay`] queue or [`quarantine`] → reply. Beside that path stand the
//! [`store`] (the only RocksDB user), the [`rules`] book, the [`admin`] API and its web console, [`ui`], and the
//! [`mesh`] (a library) with this node's application on it, [`cluster`]. [`node`] wires
//! them; `main.rs` is the command line. [`bayes`] is the pure statistical classifier
//! (tokens, learned-message digest, probability).

pub mod admin;
pub mod backup;
pub mod bayes;
pub mod ca;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod digest;
pub mod dkim;
pub mod dns;
pub mod edge;
pub mod facts;
pub mod filter;
pub mod health;
pub mod inbound;
pub mod mesh;
pub mod message;
pub mod node;
pub mod outbound;
pub mod quarantine;
pub mod ready;
pub mod relay;
pub mod rt;
pub mod rules;
pub mod sink;
pub mod smtp;
pub mod spam;
pub mod stats;
pub mod store;
pub mod trace;
pub mod ui;

/// Installs ring as rustls' process-wide crypto provider (once; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
