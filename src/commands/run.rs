//! `fleetup plan`, `apply`, `resume`, `rollback` and `history`: arguments in, the run
//! library (`crate::run`) called, its events and report rendered as bars, lines or JSON.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::render_warnings;
use crate::cli::{OutputFormat, PlanFormat, RunFormat};
use crate::diagnostics::{Code, Exit, Failure, Problem};
use crate::progress::{Progress, summary_table};
use crate::run::{Begin, Ended, Event, Prepared, Report, Runner};
use crate::window;

type Done = Result<Exit, Failure>;

pub fn plan(path: &Path, only: Option<&str>, format: PlanFormat, explain: bool) -> Done {
    let p = crate::run::prepare(path, only, false)?;
    render_warnings(&p.warnings, p.file.as_ref());
    let waves = p.preview();
    let plan = &p.plan;
    if format == PlanFormat::Markdown {
        print!("{}", markdown(&p, &waves));
        return Ok(Exit::Ok);
    }
    if format == PlanFormat::Json {
        #[derive(Serialize)]
        struct Doc<'a> {
            plan: &'a str,
            file: String,
            max_parallel: usize,
            waves: &'a [Vec<crate::run::Preview>],
            /// Each wave's reason, domain and failure budget.
            schedule: Vec<crate::run::PlannedWave>,
        }
        let doc = Doc {
            plan: &plan.name,
            file: path.display().to_string(),
            max_parallel: plan.rollout.max_parallel,
            waves: &waves,
            schedule: crate::run::planned(plan, &p.schedule),
        };
        let s = serde_json::to_string_pretty(&doc)
            .map_err(|e| Problem::new(Code::Io, format!("cannot render JSON: {e}")))?;
        println!("{s}");
        return Ok(Exit::Ok);
    }
    println!(
        "Plan {} ({}): {} in {}, at most {} at once; nothing is changed by this command.",
        plan.name,
        path.display(),
        plural(p.schedule.len(), "target"),
        plural(waves.len(), "wave"),
        plan.rollout.max_parallel
    );
    if let Some(w) = &plan.window {
        println!(
            "Window: {} ({})",
            window::describe(w),
            window::standing(w, jiff::Timestamp::now())
        );
    }
    let planned = crate::run::planned(plan, &p.schedule);
    for (i, wave) in waves.iter().enumerate() {
        let budget = planned.get(i).map_or(0, |w| w.budget);
        let scope = match plan.rollout.budget_scope {
            crate::plan::BudgetScope::Run => "in the run",
            crate::plan::BudgetScope::Wave => "in this wave",
            crate::plan::BudgetScope::Domain => "in its domain",
        };
        println!(
            "Wave {}/{} (tolerates {} {scope}):",
            i + 1,
            waves.len(),
            plural(budget, "failure")
        );
        if explain && let Some(w) = planned.get(i) {
            let why = if w.why.is_empty() {
                "the plan's wave sizes"
            } else {
                &w.why
            };
            println!("  why: {why}");
        }
        for t in wave {
            let from = match (&t.from, t.from_source) {
                (Some(v), "live") => v.clone(),
                (Some(v), src) => format!("{v} ({src})"),
                (None, "fresh") => "(fresh install)".to_owned(),
                (None, src) => format!("({src})"),
            };
            if t.from.as_deref() == Some(t.to.as_str()) && t.from_source == "live" {
                // As the confirmation and the run's outcome say it.
                println!("  {:<20} at {} already: unchanged", t.target, t.to);
            } else {
                println!("  {:<20} {from} → {}", t.target, t.to);
            }
            if let Some(p) = &t.package {
                println!("  {:<20} package {p}", "");
            }
            println!("  {:<20} rules: {}", "", t.rules);
            for line in &t.services {
                println!("  {:<20}   {line}", "");
            }
        }
        if i + 1 < waves.len() {
            for a in &plan.analysis {
                println!("  then: analysis `{}` ({})", a.name, a.query.value);
            }
            for g in plan
                .rollout
                .gates
                .iter()
                .filter(|g| g.after_wave.value == i + 1)
            {
                match g.kind {
                    crate::plan::GateKind::Manual => {
                        println!("  then: gate: the run pauses until `fleetup approve RUN`")
                    }
                    crate::plan::GateKind::Wait(d) => {
                        println!("  then: gate: wait {}s", d.as_secs())
                    }
                }
            }
        } else {
            for a in &plan.analysis {
                println!("  then: analysis `{}` ({})", a.name, a.query.value);
            }
        }
    }
    if explain && let Some(d) = &plan.rollout.domains {
        println!(
            "Domains by `{}`: one at a time, at most {} of a domain changing at once.",
            d.by.value,
            match d.max_unavailable {
                crate::plan::Amount::Count(c) => c.to_string(),
                crate::plan::Amount::Percent(p) => format!("{p}%"),
            }
        );
    }
    Ok(Exit::Ok)
}

/// The dry run as Markdown for a pull-request comment: one table row per target, the
/// group services' changes, and what could not be previewed, said plainly.
fn markdown(p: &Prepared, waves: &[Vec<crate::run::Preview>]) -> String {
    // A cell holds no `|` and no line break.
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let plan = &p.plan;
    let mut out = format!(
        "### Dry run of `{}`\n\n{} in {}, at most {} at once. Nothing was changed.\n",
        cell(&plan.name),
        plural(p.schedule.len(), "target"),
        plural(waves.len(), "wave"),
        plan.rollout.max_parallel
    );
    if let Some(w) = &plan.window {
        out.push_str(&format!("\nMaintenance window: {}.\n", window::describe(w)));
    }
    out.push_str("\n| wave | target | from | to | package | rules |\n|---|---|---|---|---|---|\n");
    let mut open = Vec::new();
    for (i, wave) in waves.iter().enumerate() {
        for t in wave {
            let from = match (&t.from, t.from_source) {
                (Some(v), "live") => v.clone(),
                (Some(v), src) => format!("{v} ({src})"),
                (None, "fresh") => "fresh install".to_owned(),
                (None, src) => format!("({src})"),
            };
            let package = t
                .package
                .as_ref()
                .map_or("-".to_owned(), |p| format!("`{p}`"));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                i + 1,
                cell(&t.target),
                cell(&from),
                cell(&t.to),
                cell(&package),
                cell(&t.rules)
            ));
            if t.open {
                open.push(format!("- `{}`: {}", t.target, t.rules));
            }
        }
    }
    for wave in waves {
        for t in wave.iter().filter(|t| !t.services.is_empty()) {
            out.push_str(&format!("\n**{}**, per service:\n\n", cell(&t.target)));
            for s in &t.services {
                out.push_str(&format!("- {s}\n"));
            }
        }
    }
    if !open.is_empty() {
        out.push_str(
            "\n**Not previewed here** (checked again right before each target is touched):\n\n",
        );
        out.push_str(&open.join("\n"));
        out.push('\n');
    }
    out
}

pub struct ApplyOpts {
    pub only: Option<String>,
    pub yes: bool,
    pub state: Option<PathBuf>,
    pub wait_for_lock: Option<String>,
    pub format: RunFormat,
}

pub(super) fn terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// What a prompt shows of a list of targets: every one up to 8, then how many more.
fn some(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(8).map(String::as_str).collect();
    match items.len() {
        n if n > 8 => format!("{}, and {} more", shown.join(", "), n - 8),
        _ => shown.join(", "),
    }
}

/// Asks `question` on the terminal: yes only for `y` or `yes`.
pub(super) fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Asks before `apply` changes anything, saying what it will do: each wave with its
/// targets and their versions, and the window; `--yes` answers for cron and CI.
fn confirm(yes: bool) -> impl Fn(&Prepared) -> Result<bool, Problem> {
    move |p: &Prepared| {
        if yes {
            return Ok(true);
        }
        if !terminal() {
            return Err(Problem::new(
                Code::Usage,
                "apply changes the fleet: without a terminal to confirm on, pass --yes",
            ));
        }
        let waves = p.preview();
        eprintln!(
            "Apply {}: {} in {}, at most {} at once.",
            p.plan.name,
            plural(p.schedule.len(), "target"),
            plural(waves.len(), "wave"),
            p.plan.rollout.max_parallel
        );
        for (i, w) in waves.iter().enumerate() {
            let items: Vec<String> = w
                .iter()
                .map(|t| match (&t.from, t.from_source) {
                    (Some(f), _) if *f != t.to => format!("{} ({f} → {})", t.target, t.to),
                    (Some(_), _) => format!("{} (at {} already)", t.target, t.to),
                    (None, "fresh") => format!("{} (fresh install → {})", t.target, t.to),
                    (None, _) => format!("{} (? → {})", t.target, t.to),
                })
                .collect();
            eprintln!("  wave {}/{}: {}", i + 1, waves.len(), some(&items));
        }
        if let Some(w) = &p.plan.window {
            eprintln!(
                "  window: {} ({})",
                window::describe(w),
                window::standing(w, jiff::Timestamp::now())
            );
        }
        Ok(ask("Apply?"))
    }
}

/// `n thing` or `n things`.
fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Runs `f` with the run's events going to progress bars or plain lines, then prints
/// its report (a table, or one JSON document).
fn with_progress(
    format: RunFormat,
    f: impl FnOnce(&(dyn Fn(Event) + Sync)) -> Result<Ended, Failure>,
) -> Done {
    if format == RunFormat::Jsonl {
        return with_event_stream(f);
    }
    let json = format == RunFormat::Json;
    // From here on SIGINT/SIGTERM stop the run between steps (a second one at once),
    // and so does an output whose reader went away.
    crate::run::stop::install();
    let guard = crate::run::stop::guard_output();
    let progress = Progress::new(terminal() && !json, json);
    let sink = |e: Event| {
        if let Event::Warnings { problems, file } = &e {
            render_warnings(problems, file.as_ref());
        }
        if let Event::Began {
            run,
            plan,
            targets,
            waves,
            journal,
            how,
        } = &e
            && !json
        {
            let said = match how {
                Begin::New => format!(
                    "Run {run} of {plan}: {} in {} (journal: {})",
                    plural(*targets, "target"),
                    plural(*waves, "wave"),
                    journal.display()
                ),
                Begin::Resumed { finished } => format!(
                    "Resuming run {run} of {plan}: {finished} of {targets} targets already finished"
                ),
                Begin::RollBack => String::new(),
            };
            if !said.is_empty() {
                crate::run::stop::say_line(&said, false);
            }
        }
        progress.event(&e);
    };
    let ended = f(&sink);
    progress.finish();
    drop(guard);
    match ended? {
        Ended::Ran(report) => {
            render_report(&report, json);
            Ok(report.exit())
        }
        Ended::Declined => {
            eprintln!("Nothing was changed.");
            Ok(Exit::Ok)
        }
        Ended::Nothing(why) => {
            println!("{why}");
            Ok(Exit::Ok)
        }
    }
}

/// `--format jsonl`: every event as one JSON line on stdout, flushed as it happens, and
/// the run's end as the last line (docs/reference/events.md).
fn with_event_stream(f: impl FnOnce(&(dyn Fn(Event) + Sync)) -> Result<Ended, Failure>) -> Done {
    crate::run::stop::install();
    let guard = crate::run::stop::guard_output();
    let line = |v: serde_json::Value| crate::run::stop::say_line(&v.to_string(), false);
    let sink = |e: Event| {
        if let Some(v) = crate::run::journal::event_line(&e) {
            line(v);
        }
    };
    let ended = f(&sink);
    let end = match &ended {
        Ok(Ended::Ran(r)) => serde_json::json!({
            "v": crate::run::journal::EVENTS_VERSION,
            "event": "end",
            "run": r.run,
            "status": r.status,
            "exit": r.exit().code(),
            "targets": r.results,
        }),
        Ok(Ended::Declined) => serde_json::json!({
            "v": crate::run::journal::EVENTS_VERSION, "event": "end", "status": "declined", "exit": 0
        }),
        Ok(Ended::Nothing(why)) => serde_json::json!({
            "v": crate::run::journal::EVENTS_VERSION, "event": "end", "status": "nothing", "exit": 0, "detail": why
        }),
        Err(f) => serde_json::json!({
            "v": crate::run::journal::EVENTS_VERSION,
            "event": "end",
            "status": "refused",
            "exit": f.exit.code(),
            "problems": f.problems.iter().map(|p| serde_json::json!({
                "code": p.code.as_str(), "message": p.message
            })).collect::<Vec<_>>(),
        }),
    };
    line(end);
    drop(guard);
    match ended? {
        Ended::Ran(r) => Ok(r.exit()),
        Ended::Declined | Ended::Nothing(_) => Ok(Exit::Ok),
    }
}

fn render_report(r: &Report, json: bool) {
    let exit = r.exit().code();
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            run: &'a str,
            plan: &'a str,
            status: crate::run::RunStatus,
            exit: u8,
            /// Why a paused run waits.
            #[serde(skip_serializing_if = "Option::is_none")]
            paused: Option<String>,
            targets: &'a [crate::run::TargetResult],
        }
        let doc = Doc {
            run: &r.run,
            plan: &r.plan,
            status: r.status,
            exit,
            paused: r.paused.as_ref().map(|p| p.why(&r.run)),
            targets: &r.results,
        };
        if let Ok(s) = serde_json::to_string_pretty(&doc) {
            println!("{s}");
        }
    } else {
        print!("\n{}", summary_table(&r.results));
        println!("Run {}: {} (exit {exit})", r.run, r.status);
        match r.status {
            crate::run::RunStatus::Stopped => {
                println!("Continue it with `fleetup resume {}`.", r.run)
            }
            crate::run::RunStatus::Paused => match &r.paused {
                Some(p) if *p != crate::run::Pause::Window => {
                    println!("It waits: {}.", p.why(&r.run))
                }
                _ => println!(
                    "Continue it in the next window with `fleetup resume {}`.",
                    r.run
                ),
            },
            _ => {}
        }
    }
}

/// A runner for the commands that take up runs already there (`rollback`, `history`,
/// `approve`, `abort`): never waiting for another fleetup's lock.
fn taking_up(state: Option<&Path>) -> Runner {
    Runner {
        state: state.map(Path::to_owned),
        lock_wait: std::time::Duration::ZERO,
    }
}

pub fn apply(path: &Path, o: ApplyOpts) -> Done {
    let runner = Runner {
        state: o.state,
        lock_wait: super::lock_wait(o.wait_for_lock.as_deref())?,
    };
    let confirm = confirm(o.yes);
    with_progress(o.format, |sink| {
        runner.apply(path, o.only.as_deref(), &confirm, sink)
    })
}

pub struct ResumeOpts {
    pub state: Option<PathBuf>,
    pub wait_for_lock: Option<String>,
    pub current_window: bool,
    pub format: RunFormat,
}

pub fn resume(run: Option<&str>, o: ResumeOpts) -> Done {
    let runner = Runner {
        state: o.state,
        lock_wait: super::lock_wait(o.wait_for_lock.as_deref())?,
    };
    with_progress(o.format, |sink| runner.resume(run, o.current_window, sink))
}

/// `fleetup approve RUN`: records the approval of the gate the run waits at.
pub fn approve(run: &str, state: Option<&Path>) -> Done {
    let runner = taking_up(state);
    let said = runner.approve(run)?;
    println!("{said}");
    Ok(Exit::Ok)
}

/// `fleetup abort RUN [--rollback]`: ends a run that waits for `resume`.
pub fn abort(
    run: &str,
    rollback: bool,
    state: Option<&Path>,
    yes: bool,
    format: RunFormat,
) -> Done {
    let runner = taking_up(state);
    if rollback {
        runner.abortable(run)?;
        let declined = std::cell::Cell::new(false);
        let done = rollback_asking(run, &[], state, yes, format, &declined)?;
        // Declined: nothing happens, the run still waits as it did.
        if declined.get() {
            eprintln!(
                "The run was not aborted: it still waits for `fleetup resume {run}` or `fleetup abort {run}`."
            );
            return Ok(Exit::Ok);
        }
        // Rolled back, or nothing was upgraded: the run ends here.
        if runner.abortable(run).is_ok() && done == Exit::Ok {
            println!("{}", runner.abort(run)?);
        }
        return Ok(done);
    }
    let said = runner.abort(run)?;
    println!("{said}");
    Ok(Exit::Ok)
}

/// `fleetup rollback RUN`: on a terminal, asks first (naming what goes back) unless `yes`.
pub fn rollback(
    run: &str,
    force: &[String],
    state: Option<&Path>,
    yes: bool,
    format: RunFormat,
) -> Done {
    rollback_asking(run, force, state, yes, format, &std::cell::Cell::new(false))
}

/// [`rollback`], with `declined` set when the question was answered no.
fn rollback_asking(
    run: &str,
    force: &[String],
    state: Option<&Path>,
    yes: bool,
    format: RunFormat,
    declined: &std::cell::Cell<bool>,
) -> Done {
    let runner = taking_up(state);
    let confirm = |id: &str, back: &[crate::run::TargetResult]| -> Result<bool, Problem> {
        if yes || !terminal() {
            return Ok(true);
        }
        let items: Vec<String> = back
            .iter()
            .map(|t| {
                format!(
                    "{} ({} → {})",
                    t.target,
                    t.to,
                    t.from.as_deref().unwrap_or("its last upgrade undone")
                )
            })
            .collect();
        eprintln!(
            "Roll back run {id}: {}, newest first: {}",
            plural(back.len(), "target"),
            some(&items)
        );
        let yes = ask("Roll back?");
        declined.set(!yes);
        Ok(yes)
    };
    with_progress(format, |sink| runner.roll_back(run, force, &confirm, sink))
}

pub fn history(run: Option<&str>, state: Option<&Path>, format: OutputFormat) -> Done {
    let runner = taking_up(state);
    let (state, runs) = runner.runs()?;
    let json = format == OutputFormat::Json;
    let Some(id) = run else {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&runs).unwrap_or_default()
            );
        } else if runs.is_empty() {
            println!("No runs in {}.", state.display());
        } else {
            println!("Runs in {}:", state.display());
            for r in &runs {
                println!("{}  {}  {}  {}", r.run, r.started, r.status, r.plan);
            }
        }
        return Ok(Exit::Ok);
    };
    let r = &runs[crate::run::journal::lookup(&runs, id, &state)?];
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
    } else {
        println!(
            "Run {} of {} ({}), started {}: {}",
            r.run,
            r.plan,
            r.exit.map_or("-".into(), |e| format!("exit {e}")),
            r.started,
            r.status
        );
        print!("{}", run_table(r));
    }
    Ok(Exit::Ok)
}

/// One run's targets in plan order (from the copy of the plan it applied; completion
/// order when that copy cannot be read), each with FROM → TO, and the target whose
/// failure made `rollback-all` take the others back.
fn run_table(r: &crate::run::RunSummary) -> String {
    let order: Vec<String> = crate::run::prepare::run_plan(r)
        .map(|p| p.entries().map(|e| e.name.value.clone()).collect())
        .unwrap_or_default();
    let mut targets: Vec<&crate::run::TargetResult> = r.targets.iter().collect();
    targets.sort_by_key(|t| {
        order
            .iter()
            .position(|n| *n == t.target)
            .unwrap_or(usize::MAX)
    });
    let width = targets
        .iter()
        .map(|t| t.target.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let moves: Vec<String> = targets
        .iter()
        .map(|t| format!("{} → {}", t.from.as_deref().unwrap_or("-"), t.to))
        .collect();
    let mw = moves
        .iter()
        .map(|m| m.chars().count())
        .max()
        .unwrap_or(4)
        .max(9);
    let mut out = format!(
        "  {:<width$}  {:<12}  {:<mw$}  DETAIL\n",
        "TARGET", "OUTCOME", "FROM → TO"
    );
    for (t, m) in targets.iter().zip(&moves) {
        let line = format!(
            "  {:<width$}  {:<12}  {:<mw$}  {}",
            t.target,
            t.outcome.as_str(),
            m,
            t.detail
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    // rollback-all: the others went back because of the first target that failed.
    if r.targets.iter().any(|t| t.with_rest)
        && let Some(cause) = r
            .targets
            .iter()
            .find(|t| t.outcome.is_failure() && !t.with_rest)
    {
        out.push_str(&format!(
            "rollback-all was set off by {} ({}: {})\n",
            cause.target,
            cause.outcome.as_str(),
            cause.detail
        ));
    }
    out
}
