//! The commands: each turns arguments into library calls and prints the result.
//! They are the only code that writes to stdout or stderr.

pub mod bundle;
pub mod check;
pub mod group;
pub mod node;
pub mod run;
pub mod status;

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::diagnostics::{Code, Exit, Failure, Problem, SourceFile, render_human};

/// Whether diagnostics on stderr may use colour.
pub(crate) fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `--wait-for-lock DURATION`: how long to wait for another fleetup's lock (none: refuse).
pub(crate) fn lock_wait(flag: Option<&str>) -> Result<std::time::Duration, Problem> {
    match flag {
        None => Ok(std::time::Duration::ZERO),
        Some(d) => crate::duration::parse_duration(d).ok_or_else(|| {
            let why = if crate::duration::too_long(d) {
                "is longer than fleetup ever waits (720h)"
            } else {
                "is not a duration"
            };
            Problem::new(Code::BadDuration, format!("--wait-for-lock `{d}` {why}"))
        }),
    }
}

/// Prints why a command stopped (the one place failures are rendered) and returns how
/// it ends.
pub(crate) fn render_failure(f: Failure) -> Exit {
    render_warnings(&f.problems, f.file.as_ref());
    f.exit
}

/// Prints diagnostics to stderr (nothing when there are none).
pub(crate) fn render_warnings(problems: &[Problem], file: Option<&SourceFile>) {
    if !problems.is_empty() {
        eprint!("{}", render_human(problems, file, stderr_color()));
    }
}

pub fn schema(market: bool, markdown: bool) -> Result<Exit, Failure> {
    if markdown {
        print!("{}", crate::plan::schema::markdown());
        return Ok(Exit::Ok);
    }
    let schema = if market {
        crate::plan::schema::market_schema()
    } else {
        crate::plan::schema::json_schema()
    };
    let s = serde_json::to_string_pretty(&schema)
        .map_err(|e| Problem::new(Code::Io, format!("cannot render the schema: {e}")))?;
    println!("{s}");
    Ok(Exit::Ok)
}

pub const INIT_YAML: &str = include_str!("../plan/init.yaml");
pub const INIT_TOML: &str = include_str!("../plan/init.toml");

/// The EMQX template made neutral, word for word: the same keys and comments, with a
/// product of no one's (`myapp`), no Erlang runtime and no "ce" edition. Derived from the
/// EMQX template so that the two can never show different keys.
fn neutral(emqx: &str) -> String {
    let mut text = emqx.to_owned();
    for (from, to) in [
        ("emqx-4.4.16-rollout", "myapp-2.4.11-rollout"),
        ("emqx_errors_total", "myapp_errors_total"),
        ("/usr/lib/emqx", "/opt/myapp"),
        ("/srv/emqx-", "/srv/app-"),
        ("emqx-*", "app-*"),
        ("emqx-1", "app-1"),
        ("emqx-2", "app-2"),
        ("\"emqx\"", "\"myapp\""),
        ("product: emqx ", "product: myapp"),
        ("4.4.16", "2.4.11"),
        ("4.4.15", "2.4.10"),
        ("18083", "8080"),
        ("ubuntu20.04-amd64", "debian12-amd64"),
        // The runtime and edition keys stay, commented, with words for any product.
        (
            "runtime: otp                   # runtime prefix in package names (default: otp)",
            "# runtime: py                  # prefix of the runtime part of package names, if they carry one (default: otp)",
        ),
        (
            "runtime = \"otp\"                 # runtime prefix in package names (default: otp)",
            "# runtime = \"py\"                # prefix of the runtime part of package names, if they carry one (default: otp)",
        ),
        (
            "# edition: ce                  # wanted edition (default: each node's own; ce when unknown)",
            "# edition: pro                 # wanted edition, for products whose package names carry one",
        ),
        (
            "# edition = \"ce\"                # wanted edition (default: each node's own; ce when unknown)",
            "# edition = \"pro\"               # wanted edition, for products whose package names carry one",
        ),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// The template `init` writes: neutral, or (`emqx`) EMQX's.
pub fn init_template(format: crate::plan::Format, emqx: bool) -> String {
    let text = match format {
        crate::plan::Format::Yaml => INIT_YAML,
        crate::plan::Format::Toml => INIT_TOML,
    };
    if emqx { text.to_owned() } else { neutral(text) }
}

pub fn init(file: Option<&Path>, force: bool, emqx: bool) -> Result<Exit, Failure> {
    let Some(path) = file else {
        print!("{}", init_template(crate::plan::Format::Yaml, emqx));
        return Ok(Exit::Ok);
    };
    let text = match crate::plan::Format::from_path(path) {
        Some(f) => init_template(f, emqx),
        None => {
            return Err(Problem::new(
                Code::PlanFormat,
                format!(
                    "{}: cannot tell which format to write from the name",
                    path.display()
                ),
            )
            .into());
        }
    };
    // Overwriting replaces the old plan atomically: never half an old, half a new plan.
    let written = if force {
        crate::fsutil::write_atomic(path, text.as_bytes())
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
    };
    match written {
        Ok(()) => {
            eprintln!(
                "Wrote a template plan to {}; `fleetup check {}` validates it.",
                path.display(),
                path.display()
            );
            Ok(Exit::Ok)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Problem::new(
            Code::Io,
            format!("{} already exists", path.display()),
        )
        .help("pass --force to overwrite it, or choose another file name")
        .into()),
        Err(e) => {
            Err(Problem::new(Code::Io, format!("cannot write {}: {e}", path.display())).into())
        }
    }
}

pub fn completions(shell: clap_complete::Shell) -> Result<Exit, Failure> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut cmd, "fleetup", &mut std::io::stdout());
    Ok(Exit::Ok)
}

/// The man pages of every visible command, generated from the command line's own
/// definitions (so they never drift from `--help`), written into `dir`.
pub fn man_pages(dir: &std::path::Path) -> Result<Exit, Failure> {
    use clap::CommandFactory;
    fn write(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> Result<(), Problem> {
        let page = cmd.clone().name(name.to_owned());
        let mut text = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut text)
            .map_err(|e| Problem::new(Code::Io, format!("cannot render {name}.1: {e}")))?;
        let path = dir.join(format!("{name}.1"));
        crate::fsutil::write_atomic(&path, &text)
            .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", path.display())))?;
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            write(sub, &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", dir.display())))?;
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    write(&cmd, "fleetup", dir)?;
    Ok(Exit::Ok)
}

/// Every visible command's `--help`, as docs/reference/commands.md shows it (generated
/// from the command line's own definitions, like the man pages; a test holds the
/// committed page to it).
pub fn commands_markdown() -> String {
    use clap::CommandFactory;
    fn walk(cmd: &mut clap::Command, name: &str, out: &mut String) {
        // A fixed width: the page is the same whatever terminal generates it.
        let help = cmd.clone().term_width(100).render_long_help().to_string();
        out.push_str(&format!(
            "\n## `{name}`\n\n```text\n{}\n```\n",
            help.trim_end()
        ));
        let subs: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| s.get_name().to_owned())
            .collect();
        for s in subs {
            if let Some(sub) = cmd.find_subcommand_mut(&s) {
                walk(sub, &format!("{name} {s}"), out);
            }
        }
    }
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let mut out = String::from(
        "# Commands\n\nEvery command's `--help`, generated from the command line's own definitions\n\
         (`fleetup __commands-md > docs/reference/commands.md`; the man pages, `man\n\
         fleetup-apply`, come from the same definitions). The [guide](../guide/commands.md)\n\
         says what each command is for.\n",
    );
    walk(&mut cmd, "fleetup", &mut out);
    out
}

/// The state directory a command reads: `--state`, else the `state` key of `--plan`
/// (resolved against the plan's directory), else the default (`None`).
pub fn state_of(
    state: Option<std::path::PathBuf>,
    plan: Option<&std::path::Path>,
) -> Result<Option<std::path::PathBuf>, Failure> {
    let Some(path) = plan else { return Ok(state) };
    let loaded = crate::plan::load(path);
    match (&loaded.plan, loaded.has_errors()) {
        (Some(p), false) => Ok(p.state.clone().or(state)),
        _ => Err(Failure {
            problems: loaded.problems,
            file: loaded.file,
            exit: Exit::Invalid,
        }),
    }
}
