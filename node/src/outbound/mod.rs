//! The outbound role's building blocks: who may relay to outside domains.
//!
//! [`trusted`] is the `[relay] trusted_networks` CIDR check (relay on port 25 without AUTH);
//! [`users`] is the `[submission] users_file` of argon2 password hashes; [`auth_limit`]
//! bounds wrong-password attempts per client address; [`submission`] is the
//! `[submission]` listener's sink that puts them together, [`listen`] its sockets.

pub mod auth_limit;
pub mod listen;
pub mod submission;
pub mod trusted;
pub mod users;

pub use auth_limit::AuthFailures;
pub use submission::Submission;
pub use trusted::TrustedNetworks;
pub use users::{Users, UsersError};
