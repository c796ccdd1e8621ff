//! `mxctl`: the admin CLI. Parse the command line ([`args`]) and map it ([`commands`]) to a plan:
//! usually one admin API call, sent by [`client`] and rendered by [`output`]
//! (with [`tables`], [`quarantine_view`], [`lists`] and [`series`] for the readable views); `learn` and `forget` are runs of many
//! calls ([`learn`]) over the messages [`mailbox`] reads from files; `rules export|import`
//! ([`rules_io`]) read and write the rule book as a JSON file.

pub mod args;
pub mod bulk;
pub mod client;
pub mod commands;
pub mod custody;
pub mod learn;
pub mod lists;
pub mod mailbox;
pub mod ops_views;
pub mod output;
pub mod progress;
pub mod quarantine_view;
pub mod rules_io;
pub mod series;
pub mod tables;

use std::process::ExitCode;

pub use commands::Cli;
use commands::Plan;

/// Runs one parsed `mxctl` invocation and returns the process exit status.
/// Errors are printed to stderr here: this is the binary's edge.
pub fn run(cli: Cli) -> ExitCode {
    match try_run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mxctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = client::ApiClient::new(&cli.url, cli.token.clone())?;
    match cli.into_plan()? {
        Plan::Call(call) => {
            let response = call.send(&client)?;
            let shown = output::render(&call, &client.url(&call.endpoint), response);
            output::emit(shown)
        }
        Plan::Learn(plan) => learn::learn(&client, &plan),
        Plan::Forget(plan) => learn::forget(&client, &plan),
        Plan::Retire(plan) => custody::retire(&client, &plan),
        Plan::Bulk(plan) => bulk::run(&client, &plan),
        Plan::RulesExport(plan) => rules_io::export(&client, &plan),
        Plan::RulesImport(plan) => rules_io::import(&client, &plan),
    }
}
