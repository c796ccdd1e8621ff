//! mxmesh-tools: the operator's tools that stand beside the `mxmesh` daemon.
//!
//! Two binaries, each a thin `main` over a module of this library so that the
//! logic can be tested without spawning processes:
//!
//! ```text
//! ctl/            mxctl, the admin CLI
//!   commands.rs   the command line (clap) and its mapping to admin API calls (pure)
//!   client.rs     ApiClient: blocking HTTP to one node's /api/v1, errors that name the URL
//!   output.rs     what a response becomes on stdout/stderr, and the exit status
//!   tables.rs     readable tables made from JSON answers: bayes, classify (pure)
//!   mailbox.rs    messages out of files: one message, mbox, maildir, stdin (bounded)
//!   learn.rs      runs of many calls: learn (progress, summary), forget
//! load/           mxload, the SMTP load generator / benchmark driver
//!   message.rs    test message generation and dot-stuffing (pure)
//!   reply.rs      SMTP reply parser with hard limits (sans-I/O)
//!   smtp.rs       the minimal SMTP client: one session over one TCP stream
//!   run.rs        the load run: config, S session tasks sharing M message tickets
//!   report.rs     tallies, nearest-rank percentiles, human and JSON summaries
//! ```
//!
//! Neither tool links the node: they speak only the public contract, the admin
//! HTTP API and SMTP, exactly as an operator's own scripts would.

pub mod ctl;
pub mod load;
