//! The `nftban` binary: parse arguments, dispatch, map errors to exit codes.
//! All logic lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = nftban::cli::Cli::parse();
    match nftban::commands::dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(err) if nftban::commands::broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nftban: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
