//! mxctl: the mxmesh admin CLI. See `mxmesh_tools::ctl`.

use std::process::ExitCode;

use clap::Parser as _;
use mxmesh_tools::ctl;

fn main() -> ExitCode {
    ctl::run(ctl::Cli::parse())
}
