use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = fleetup::cli::Cli::parse();
    if !matches!(cli.command, fleetup::cli::Command::Agent { .. }) {
        // `fleetup history | head` ends quietly, as Unix tools do, instead of panicking
        // on a closed stdout. The remote agent keeps ignoring SIGPIPE: when its
        // controller is gone it must finish the store step it is in before it exits.
        // SAFETY: called before any thread starts; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    ExitCode::from(fleetup::run(cli).code())
}
