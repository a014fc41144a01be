//! fleetup: upgrade fleets of software installations from reviewed plan files.
//!
//! The flow: a plan file is read into a spanned tree and validated into a typed
//! [`plan::Plan`] (`plan`), then checked against the world it names (`preflight`:
//! repository, node stores, markets). Commands live in `commands`; only they print.

pub mod analysis;
pub mod cli;
mod commands;
pub mod diagnostics;
pub mod duration;
pub mod fsutil;
pub mod group;
pub mod health;
pub mod hook;
pub mod lock;
pub mod mirror;
pub mod names;
pub mod notify;
pub mod package;
pub mod plan;
pub mod progress;
pub mod remote;
pub mod run;
pub mod signature;
pub mod span;
pub mod store;
pub mod template;
pub mod window;

/// Runs one command line and returns how it ended (`Exit::code` is the process exit
/// code, SPEC §5.6). A command's failure is rendered here, once.
pub fn run(cli: cli::Cli) -> diagnostics::Exit {
    use cli::Command;
    progress::set_verbose(cli.verbose);
    let done = match cli.command {
        Command::Check {
            plans,
            format,
            offline,
        } => Ok(commands::check::run(&plans, format, offline)),
        Command::Plan {
            plan,
            only,
            format,
            explain,
        } => commands::run::plan(&plan, only.as_deref(), format, explain),
        Command::Apply {
            plan,
            only,
            yes,
            state,
            wait_for_lock,
            format,
        } => commands::run::apply(
            &plan,
            commands::run::ApplyOpts {
                only,
                yes,
                state,
                wait_for_lock,
                format,
            },
        ),
        Command::Resume {
            run,
            state,
            plan,
            wait_for_lock,
            current_window,
            format,
        } => commands::state_of(state, plan.as_deref()).and_then(|state| {
            commands::run::resume(
                run.as_deref(),
                commands::run::ResumeOpts {
                    state,
                    wait_for_lock,
                    current_window,
                    format,
                },
            )
        }),
        Command::Approve { run, state, plan } => commands::state_of(state, plan.as_deref())
            .and_then(|state| commands::run::approve(&run, state.as_deref())),
        Command::Abort {
            run,
            rollback,
            state,
            plan,
            yes,
            format,
        } => commands::state_of(state, plan.as_deref())
            .and_then(|state| commands::run::abort(&run, rollback, state.as_deref(), yes, format)),
        Command::Rollback {
            run,
            force,
            state,
            plan,
            yes,
            format,
        } => commands::state_of(state, plan.as_deref())
            .and_then(|state| commands::run::rollback(&run, &force, state.as_deref(), yes, format)),
        Command::History {
            run,
            state,
            plan,
            format,
        } => commands::state_of(state, plan.as_deref())
            .and_then(|state| commands::run::history(run.as_deref(), state.as_deref(), format)),
        Command::Status {
            plan,
            only,
            state,
            drift,
            format,
        } => commands::status::run(&plan, only.as_deref(), state.as_deref(), drift, format),
        Command::Schema { market, markdown } => commands::schema(market, markdown),
        Command::Bundle { plan, out } => commands::bundle::run(&plan, &out),
        Command::Init {
            file,
            force,
            example,
        } => commands::init(file.as_deref(), force, example == Some(cli::Example::Emqx)),
        Command::Node(cmd) => commands::node::run(cmd),
        Command::Group(cmd) => commands::group::run(cmd),
        Command::Completions { shell } => commands::completions(shell),
        Command::Man { dir } => commands::man_pages(&dir),
        Command::CommandsMd => {
            print!("{}", commands::commands_markdown());
            Ok(diagnostics::Exit::Ok)
        }
        Command::Agent { dir } => Ok(remote::agent::serve(&dir)),
        Command::SelfCheck { sha256 } => Ok(remote::agent::self_check(&sha256)),
    };
    done.unwrap_or_else(commands::render_failure)
}
