//! Fuzz target bodies for mxmesh; see `targets.rs` and RELIABILITY.md.

mod targets;

pub use targets::*;
