//! Every flag and argument of every command says what it is for in `--help`.

use clap::CommandFactory;

fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if a.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        if a.get_help().is_none() && a.get_long_help().is_none() {
            missing.push(format!("{path} {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        walk(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[test]
fn every_flag_and_argument_has_help() {
    let mut missing = Vec::new();
    walk(&fleetup::cli::Cli::command(), "fleetup", &mut missing);
    assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
}
