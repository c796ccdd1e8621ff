//! mxload: SMTP load generator and benchmark driver. See `mxmesh_tools::load`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mxmesh_tools::load::{self, LoadConfig, SessionReuse};

/// Sends M messages of SIZE bytes over S concurrent SMTP sessions and prints
/// throughput and latency percentiles. Exits 1 when no message was accepted.
#[derive(Debug, Parser)]
#[command(name = "mxload", version)]
struct Args {
    /// SMTP server to load, e.g. 127.0.0.1:2525
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// Concurrent SMTP sessions
    #[arg(long, value_name = "S", default_value_t = 20)]
    sessions: usize,
    /// Messages to send in total, over all sessions
    #[arg(long, value_name = "M", default_value_t = 1000)]
    messages: usize,
    /// Size of each message in bytes, headers included
    #[arg(long, value_name = "BYTES", default_value_t = 10_240)]
    size: usize,
    /// Envelope sender and From header
    #[arg(long, value_name = "ADDR", default_value = "load@mxload.test")]
    from: String,
    /// Envelope recipient and To header
    #[arg(long, value_name = "ADDR", default_value = "user@example.com")]
    rcpt: String,
    /// Name to give in EHLO
    #[arg(long, value_name = "NAME", default_value = "mxload.test")]
    ehlo: String,
    /// Open a new session for every message instead of reusing sessions
    #[arg(long)]
    new_session_per_message: bool,
    /// Print the summary as one JSON object
    #[arg(long)]
    json: bool,
    /// Bound on connect and on every single read or write, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout_secs: u64,
}

impl Args {
    fn into_config(self) -> LoadConfig {
        LoadConfig {
            target: self.to,
            sessions: self.sessions,
            messages: self.messages,
            size_bytes: self.size,
            from: self.from,
            rcpt: self.rcpt,
            ehlo_name: self.ehlo,
            session_reuse: if self.new_session_per_message {
                SessionReuse::NewPerMessage
            } else {
                SessionReuse::Reuse
            },
            timeout: Duration::from_secs(self.timeout_secs),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let report = match load::run(&args.into_config()).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("mxload: {error}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_human());
    }
    if report.all_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
