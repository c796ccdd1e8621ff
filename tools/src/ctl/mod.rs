//! `mxctl`: the admin CLI. Parse the command line ([`commands`]), turn it into one
//! admin API call, send it ([`client`]) and render the answer ([`output`]).

pub mod client;
pub mod commands;
pub mod output;

use std::process::ExitCode;

pub use commands::Cli;

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
    let call = cli.into_call()?;
    let response = call.send(&client)?;
    let shown = output::render(&call, &client.url(&call.endpoint), response);
    output::emit(shown)
}
