//! Harness for multi-process tests: real `mxmesh` binaries, a Python aiosmtpd sink,
//! Python's smtplib and swaks as clients, reqwest for the admin API.
//!
//! The binaries come from the same target directory as the test executable; the README's
//! test command builds them first (`cargo build --workspace --all-targets`).
//!
//! One module per harness, everything re-exported at the crate root:
//!
//! - [`support`]: the admin token, binary and fixture paths, a refusing port, `wait_for`.
//! - [`sink`]: the aiosmtpd downstream sink.
//! - [`node`]: one `mxmesh node` process (ports from its ready file) and its admin API.
//! - [`smtp_client`]: smtplib sends and a test message.
//! - [`cluster`]: the cluster CA and a mesh of nodes.
//! - [`tls`]: self-signed certificates (openssl).
//! - [`bind`]: BIND 9 and `dig`.
//! - [`clamd`]: clamd with an EICAR database.
//! - [`faults`]: fault injection (network namespaces, tmpfs, raw SMTP, kill -9 checks).

pub mod bind;
pub mod clamd;
pub mod cluster;
pub mod faults;
pub mod node;
pub mod sink;
pub mod smtp_client;
pub mod support;
pub mod tls;

pub use bind::*;
pub use clamd::*;
pub use cluster::*;
pub use node::*;
pub use sink::*;
pub use smtp_client::*;
pub use support::*;
pub use tls::*;
