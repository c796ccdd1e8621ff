//! DNS helper (PRODUCT.md §8): publish the healthy nodes as the A/AAAA set of `[dns] name`.
//!
//! - [`set`]: which addresses to publish — pure, with the safety rules (never empty,
//!   minority never withdraws, damped).
//!
//! The embedded authoritative server (hickory) and the RFC 2136 publisher come with issue 4.

pub mod set;
