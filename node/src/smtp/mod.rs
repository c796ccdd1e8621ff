//! SMTP server protocol, sans I/O.
//!
//! Bytes from the client go into [`Protocol::feed`]; replies and decisions come out as
//! [`Event`]s. The socket owner writes the replies, upgrades to TLS, runs the verdict and
//! closes when told; nothing but the socket side does I/O or reads a clock.
//!
//! - `command`: command lines (bounded) and their parsing.
//! - `address`: reverse- and forward-paths; `postmaster`: the bare `<Postmaster>`.
//! - `data`: the DATA receiver (terminator, dot-unstuffing, line-ending normalisation).
//! - `state`: [`Protocol`], the state machine, with its config and events.
//! - `reply`: typed replies, and the one mapping from protocol errors to replies.
//! - `auth`: the AUTH mechanisms PLAIN and LOGIN (RFC 4954), offered on the submission
//!   port after TLS; `state_auth.rs` is the state machine's part of it.
//! - `session`, `listener`, `tls`: the socket side (accept loop, one task per client,
//!   TLS acceptor); the only code here that does I/O.

pub mod address;
pub mod auth;
mod command;
pub mod data;
pub mod listener;
pub mod postmaster;
pub mod reply;
pub mod session;
pub mod state;
pub mod tls;

pub use reply::Reply;
pub use session::{Client, MessageSink};
pub use state::{Envelope, Event, Protocol, ProtocolConfig, SmtpLimits};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_address;
#[cfg(test)]
mod tests_auth;
#[cfg(test)]
mod tests_data;
#[cfg(test)]
mod tests_proptest;
#[cfg(test)]
mod tests_rcpt;
#[cfg(test)]
mod tests_session;
