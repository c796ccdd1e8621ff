//! DKIM for outbound mail: this node's own key per sender domain.
//!
//! [`keygen`] writes a key and the DNS TXT record that publishes it (`mxmesh dkim keygen`);
//! [`key`] loads a key file (Ed25519 PKCS#8, or RSA in PKCS#8 or PKCS#1 PEM) and signs a
//! message with it, prepending the `DKIM-Signature:` header; [`signer`] holds this node's
//! key per domain and picks the one for an outbound message.

pub mod key;
pub mod keygen;
pub mod signer;

pub use key::{DkimError, DkimKey};
pub use keygen::{KeygenOutput, keygen};
pub use signer::Signer;
