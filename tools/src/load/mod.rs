//! `mxload`: SMTP load generator and benchmark driver.
//!
//! S concurrent sessions share M message tickets, so exactly M messages are
//! sent however fast each session goes. Each session is one tokio task that
//! owns one [`smtp::SmtpClient`] and keeps it across messages (unless told to
//! open a new one per message), and a [`report::Tally`] that is merged at the end.

pub mod message;
pub mod reply;
pub mod report;
pub mod run;
pub mod smtp;

pub use report::Report;
pub use run::{LoadConfig, RunError, SessionReuse, run};
