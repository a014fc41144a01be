use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = fleetup::cli::Cli::parse();
    ExitCode::from(fleetup::run(cli))
}
