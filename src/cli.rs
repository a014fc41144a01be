//! The command line: every command and flag, with its help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Upgrade fleets of software installations from reviewed plan files.
#[derive(Debug, Parser)]
#[command(
    name = "fleetup",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate plans and check them against the repository and readable node stores;
    /// changes nothing.
    Check {
        /// Plan files (.yaml, .yml or .toml).
        #[arg(required = true, value_name = "PLAN")]
        plans: Vec<PathBuf>,
        /// Output format: human (diagnostics), json, or github (workflow annotations).
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
    },
    /// Print the plan's JSON Schema, for editors and CI.
    Schema,
    /// Write a commented template plan showing every key and its default.
    Init {
        /// Where to write it (.yaml, .yml or .toml); standard output when absent.
        file: Option<PathBuf>,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    Github,
}
