//! `fleetup plan`, `apply` and `history`: a plan's dry run, its execution, and the record
//! of past runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{fail, stderr_color};
use crate::cli::OutputFormat;
use crate::diagnostics::{Code, Problem, Severity, render_human};
use crate::exec::{self, Event, RunOptions};
use crate::plan::Plan;
use crate::preflight::{self, Preflight};
use crate::progress::{Progress, summary_table};
use crate::remote::{Hosts, SshSettings};
use crate::schedule::{self, Schedule, Target};
use crate::{journal, window};

/// Loads, validates and preflights a plan, printing its problems. `Err` is the exit code.
/// A plan ready to run: its preflight (remote stores read over `hosts`, whose
/// connections the run then reuses) and its schedule.
type Prepared = (Plan, Preflight, Schedule, Option<Arc<Hosts>>);

fn prepare(path: &Path, only: Option<&str>) -> Result<Prepared, u8> {
    let loaded = crate::plan::load(path);
    let mut problems = loaded.problems;
    let mut hosts = None;
    let pf = loaded.plan.as_ref().map(|plan| {
        if plan.nodes.iter().any(|n| n.ssh.is_some())
            && let Ok(h) = Hosts::new(SshSettings::of_plan(plan))
        {
            let h = Arc::new(h);
            let live = remote_states(plan, only, &h);
            hosts = Some(h);
            preflight::run_with(plan, &live)
        } else {
            preflight::run(plan)
        }
    });
    if let Some(pf) = &pf {
        problems.extend(pf.problems.iter().cloned());
    }
    problems.sort_by_key(|p| p.span.map_or(usize::MAX, |s| s.start));
    if !problems.is_empty() {
        eprint!(
            "{}",
            render_human(&problems, loaded.file.as_ref(), stderr_color())
        );
    }
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        // A pin that does not match is a refusal to start (5), anything else invalid input (1).
        return Err(if errors.iter().all(|p| p.code == Code::FromMismatch) {
            5
        } else {
            1
        });
    }
    let (Some(plan), Some(pf)) = (loaded.plan, pf) else {
        return Err(1);
    };
    let schedule = schedule::build(&plan, only).map_err(|p| {
        fail(p);
        2
    })?;
    Ok((plan, pf, schedule, hosts))
}

#[derive(Serialize)]
struct DryTarget {
    target: String,
    kind: &'static str,
    from: Option<String>,
    from_source: &'static str,
    to: String,
    package: Option<String>,
    rules: String,
    /// Per group service: marker, name, change and details (SPEC §3).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<String>,
}

fn dry_targets(plan: &Plan, pf: &Preflight, wave: &[Target]) -> Vec<DryTarget> {
    wave.iter()
        .map(|t| match *t {
            Target::Node(i) => {
                let (n, f) = (&plan.nodes[i], &pf.nodes[i]);
                let (from, from_source) = match (&f.running, &n.from) {
                    (Some(r), _) => (Some(r.version.to_string()), "live"),
                    (None, Some(p)) if !f.state_read => (Some(p.value.to_string()), "pinned"),
                    (None, _) if f.state_read => (None, "fresh"),
                    _ => (None, "unknown"),
                };
                let rules = match (&f.running, &f.package, &f.unreachable) {
                    (_, _, Some(why)) => format!("cannot be previewed: {why}"),
                    (Some(_), Some(_), _) => "passed".into(),
                    (None, Some(_), _) if f.state_read => "none apply (fresh store)".into(),
                    _ => "checked at apply (state not readable here)".into(),
                };
                DryTarget {
                    target: n.name.value.clone(),
                    kind: "node",
                    from,
                    from_source,
                    to: n.to.value.to_string(),
                    package: f.package.as_ref().map(|p| p.file.clone()),
                    rules,
                    services: Vec::new(),
                }
            }
            Target::Group(i) => {
                let g = &plan.groups[i];
                let grp = crate::group::Group::new(&g.root.value);
                let market = crate::group::Market::new(&g.market.value);
                let installed = grp.state().ok();
                let mut services = Vec::new();
                let mut verdicts = Vec::new();
                let mut from = Vec::new();
                for a in &g.apps {
                    let cur = installed
                        .as_ref()
                        .and_then(|s| s.app(&a.app.value))
                        .map(|x| x.version.clone());
                    from.push(format!(
                        "{} {}",
                        a.app.value,
                        cur.as_ref()
                            .map_or("(not installed)".into(), |v| v.to_string())
                    ));
                    if cur.as_ref() == Some(&a.to.value) {
                        verdicts.push(format!("{}: already at {}", a.app.value, a.to.value));
                        continue;
                    }
                    let picked: Option<Vec<String>> = a
                        .services
                        .as_ref()
                        .map(|v| v.iter().map(|s| s.value.clone()).collect());
                    match grp.preview(
                        &market,
                        &a.app.value,
                        &a.to.value,
                        picked.as_deref(),
                        plan.policy,
                    ) {
                        Ok((_, _, d, picked)) => {
                            verdicts.push(format!("{}: passed", a.app.value));
                            for sd in d {
                                let note = if matches!(
                                    sd.change,
                                    crate::group::Change::Upgrade | crate::group::Change::Add
                                ) && !picked.contains(&sd.service)
                                {
                                    " (not picked)"
                                } else {
                                    ""
                                };
                                services.push(format!(
                                    "{} {} {}{note}{}",
                                    sd.change.marker(),
                                    sd.service,
                                    sd.change.as_str(),
                                    if sd.details.is_empty() {
                                        String::new()
                                    } else {
                                        format!(": {}", sd.details.join("; "))
                                    }
                                ));
                            }
                        }
                        Err(p) => verdicts.push(format!(
                            "{}: cannot be previewed: {}",
                            a.app.value, p.message
                        )),
                    }
                }
                DryTarget {
                    target: g.name.value.clone(),
                    kind: "group",
                    from: Some(from.join(", ")),
                    from_source: "live",
                    to: g
                        .apps
                        .iter()
                        .map(|a| format!("{} {}", a.app.value, a.to.value))
                        .collect::<Vec<_>>()
                        .join(", "),
                    package: None,
                    rules: verdicts.join("; "),
                    services,
                }
            }
        })
        .collect()
}

pub fn plan(path: &Path, only: Option<&str>, format: OutputFormat) -> u8 {
    let (plan, pf, schedule, _hosts) = match prepare(path, only) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let waves: Vec<Vec<DryTarget>> = schedule
        .waves
        .iter()
        .map(|w| dry_targets(&plan, &pf, w))
        .collect();
    if format == OutputFormat::Json {
        #[derive(Serialize)]
        struct Doc<'a> {
            plan: &'a str,
            file: String,
            max_parallel: usize,
            waves: &'a [Vec<DryTarget>],
        }
        let doc = Doc {
            plan: &plan.name,
            file: path.display().to_string(),
            max_parallel: plan.rollout.max_parallel,
            waves: &waves,
        };
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(Problem::new(Code::Io, format!("cannot render JSON: {e}"))),
        }
        return 0;
    }
    println!(
        "Plan {} ({}): {} targets in {} waves, at most {} at once; nothing is changed by this command.",
        plan.name,
        path.display(),
        schedule.len(),
        waves.len(),
        plan.rollout.max_parallel
    );
    if let Some(w) = &plan.window {
        let state = if window::is_open(w, jiff::Timestamp::now()) {
            "open now"
        } else {
            "closed now"
        };
        println!("Window: {} ({state})", window::describe(w));
    }
    for (i, wave) in waves.iter().enumerate() {
        println!("Wave {}/{}:", i + 1, waves.len());
        for t in wave {
            let from = match (&t.from, t.from_source) {
                (Some(v), "live") => v.clone(),
                (Some(v), src) => format!("{v} ({src})"),
                (None, src) => format!("({src})"),
            };
            println!("  {:<20} {from} → {}", t.target, t.to);
            if let Some(p) = &t.package {
                println!("  {:<20} package {p}", "");
            }
            println!("  {:<20} rules: {}", "", t.rules);
            for line in &t.services {
                println!("  {:<20}   {line}", "");
            }
        }
    }
    0
}

pub struct ApplyOpts {
    pub only: Option<String>,
    pub yes: bool,
    pub state: Option<PathBuf>,
    pub wait_for_lock: Option<String>,
    pub format: OutputFormat,
}

fn confirm(plan: &Plan, schedule: &Schedule) -> bool {
    eprint!(
        "Apply {} to {} targets in {} waves? [y/N] ",
        plan.name,
        schedule.len(),
        schedule.waves.len()
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

fn lock_wait(flag: Option<&str>) -> Result<Duration, u8> {
    super::lock_wait(flag).map_err(fail)
}

/// Refuses to start outside the plan's window (exit 5), naming the next opening.
fn window_open(plan: &Plan) -> Result<(), u8> {
    let Some(w) = &plan.window else { return Ok(()) };
    let now = jiff::Timestamp::now();
    if window::is_open(w, now) {
        return Ok(());
    }
    let next = window::next_opening(w, now).map_or("never (no day is listed)".to_owned(), |z| {
        z.strftime("%a %Y-%m-%d %H:%M:%S %Z").to_string()
    });
    Err(fail(
        Problem::new(
            Code::WindowClosed,
            format!(
                "outside the maintenance window {}; it next opens {next}",
                window::describe(w)
            ),
        )
        .help("run it then (a systemd timer or cron entry can), or change the plan's `window`"),
    ))
}

/// The stores of the remote nodes `only` selects, read over SSH in parallel with `cat`
/// (nothing is copied to or changed on a host).
fn remote_states(plan: &Plan, only: Option<&str>, hosts: &Hosts) -> Vec<preflight::RemoteState> {
    use rayon::prelude::*;
    let picked: Vec<bool> = match schedule::build(plan, only) {
        Ok(s) => {
            let mut p = vec![false; plan.nodes.len()];
            for t in s.targets() {
                if let Target::Node(i) = t {
                    p[i] = true;
                }
            }
            p
        }
        Err(_) => return Vec::new(),
    };
    // One session per host (per few hundred nodes) reads all of its nodes' stores.
    let mut by_host: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, n) in plan.nodes.iter().enumerate() {
        if let (Some(a), true) = (&n.ssh, picked[i]) {
            by_host
                .entry(crate::remote::ssh::describe(&a.value))
                .or_default()
                .push(i);
        }
    }
    // Hosts are read in parallel (connecting is waiting, not work), max_parallel at once.
    let Ok(pool) = rayon::ThreadPoolBuilder::new()
        .num_threads(plan.rollout.max_parallel.clamp(1, 64))
        .build()
    else {
        return Vec::new();
    };
    let read: Vec<(usize, preflight::RemoteState)> = pool.install(|| {
        by_host
            .into_par_iter()
            .flat_map_iter(|(_, idx)| {
                let addr = plan.nodes[idx[0]].ssh.as_ref().map(|a| &a.value);
                let states = match addr.map(|a| hosts.get(a)) {
                    Some(Ok(h)) => {
                        let roots: Vec<String> = idx
                            .iter()
                            .map(|&i| plan.nodes[i].root.value.display().to_string())
                            .collect();
                        h.read_states(&roots)
                    }
                    Some(Err(p)) => idx.iter().map(|_| Err(p.clone())).collect(),
                    None => Vec::new(),
                };
                idx.into_iter().zip(states.into_iter().map(Some))
            })
            .collect()
    });
    let mut out: Vec<preflight::RemoteState> = plan.nodes.iter().map(|_| None).collect();
    for (i, s) in read {
        out[i] = s;
    }
    out
}

fn terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Runs the schedule with the journal and progress as consumers, prints the report, and
/// returns the exit code. Shared by `apply` and `resume`.
fn execute_and_report(
    plan: &Plan,
    schedule: &Schedule,
    journal: &journal::Journal,
    earlier: exec::Earlier,
    lock_wait: Duration,
    format: OutputFormat,
    hosts: Option<Arc<Hosts>>,
) -> u8 {
    let json = format == OutputFormat::Json;
    let progress = Progress::new(terminal() && !json, json, schedule.len());
    let emit = |e: Event| {
        journal.event(&e);
        progress.event(&e);
    };
    let opts = RunOptions {
        run_id: journal.id(),
        lock_wait,
        earlier,
        hosts,
    };
    let end = match exec::execute(plan, schedule, &opts, &emit) {
        Ok(r) => r,
        Err(p) => {
            progress.finish();
            journal.finish("failed", p.code.exit_code());
            return fail(p);
        }
    };
    progress.finish();
    let code = exec::exit_code(&end);
    let status = match code {
        0 => "succeeded",
        3 => "failed",
        6 => "paused",
        _ => "needs-attention",
    };
    journal.finish(status, code);
    report(&journal.id(), &plan.name, status, code, &end.results, json);
    code
}

fn report(
    run: &str,
    plan: &str,
    status: &str,
    code: u8,
    results: &[exec::TargetResult],
    json: bool,
) {
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            run: &'a str,
            plan: &'a str,
            status: &'a str,
            exit: u8,
            targets: &'a [exec::TargetResult],
        }
        let doc = Doc {
            run,
            plan,
            status,
            exit: code,
            targets: results,
        };
        if let Ok(s) = serde_json::to_string_pretty(&doc) {
            println!("{s}");
        }
    } else {
        print!("\n{}", summary_table(results));
        println!("Run {run}: {status} (exit {code})");
        if code == 6 {
            println!("Continue it in the next window with `fleetup resume {run}`.");
        }
    }
}

pub fn apply(path: &Path, o: ApplyOpts) -> u8 {
    let lock_wait = match lock_wait(o.wait_for_lock.as_deref()) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (plan, _pf, schedule, hosts) = match prepare(path, o.only.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Err(code) = window_open(&plan) {
        return code;
    }
    let held = exec::locks_held(&plan, schedule.targets());
    if !held.is_empty() && lock_wait.is_zero() {
        eprint!("{}", render_human(&held, None, stderr_color()));
        return 5;
    }
    if !o.yes {
        if !terminal() {
            return fail(Problem::new(
                Code::Usage,
                "apply changes the fleet: without a terminal to confirm on, pass --yes",
            ));
        }
        if !confirm(&plan, &schedule) {
            eprintln!("Nothing was changed.");
            return 0;
        }
    }
    let state = match journal::state_dir(o.state.as_deref(), plan.state.as_deref()) {
        Ok(s) => s,
        Err(p) => return fail(p),
    };
    let journal = match journal::Journal::create(
        &state,
        path,
        &plan.name,
        &plan.file.text,
        o.only.as_deref(),
    ) {
        Ok(j) => j,
        Err(p) => return fail(p),
    };
    if o.format != OutputFormat::Json {
        println!(
            "Run {} of {}: {} targets in {} waves (journal: {})",
            journal.id(),
            plan.name,
            schedule.len(),
            schedule.waves.len(),
            journal.dir.display()
        );
    }
    execute_and_report(
        &plan,
        &schedule,
        &journal,
        Default::default(),
        lock_wait,
        o.format,
        hosts,
    )
}

/// Finds a run by id (or prefix), or the latest one that `pick` accepts.
fn find_run(
    state: &Path,
    id: Option<&str>,
    pick: impl Fn(&journal::RunSummary) -> bool,
    what: &str,
) -> Result<journal::RunSummary, u8> {
    let mut runs = journal::runs(state);
    let found = match id {
        Some(id) => runs
            .into_iter()
            .rev()
            .find(|r| r.run == id || r.run.starts_with(id)),
        None => {
            runs.retain(&pick);
            runs.pop()
        }
    };
    found.ok_or_else(|| {
        let msg = match id {
            Some(id) => format!("no run `{id}` in {}", state.display()),
            None => format!("no run to {what} in {}", state.display()),
        };
        fail(Problem::new(Code::Usage, msg).help("`fleetup history --state DIR` lists the runs"))
    })
}

/// The plan a run applied, from the copy in its journal, with paths resolved against
/// where the original plan was.
fn run_plan(run: &journal::RunSummary) -> Result<Plan, u8> {
    let Some(copy) = run.plan_copy() else {
        return Err(fail(Problem::new(
            Code::Io,
            format!("run {} has no copy of its plan", run.run),
        )));
    };
    let text = match std::fs::read_to_string(&copy) {
        Ok(t) => t,
        Err(e) => {
            return Err(fail(Problem::new(
                Code::Io,
                format!("cannot read {}: {e}", copy.display()),
            )));
        }
    };
    let original = Path::new(&run.plan);
    let dir = original
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let format = crate::plan::Format::from_path(&copy).unwrap_or(crate::plan::Format::Yaml);
    let loaded = crate::plan::load_text(
        crate::diagnostics::SourceFile::new(run.plan.clone(), text),
        format,
        dir,
    );
    if loaded.has_errors() {
        eprint!(
            "{}",
            render_human(&loaded.problems, loaded.file.as_ref(), stderr_color())
        );
        return Err(1);
    }
    loaded.plan.ok_or(1)
}

pub struct ResumeOpts {
    pub state: Option<PathBuf>,
    pub wait_for_lock: Option<String>,
    pub format: OutputFormat,
}

/// `fleetup resume [RUN]`: finishes an interrupted or paused run. Targets the journal
/// records as finished stay as they are; every other target is reconciled with its real
/// state (a node killed mid-install is repaired by its store, one left current is checked
/// and made permanent) and the run goes on as `on_failure` says.
pub fn resume(run: Option<&str>, o: ResumeOpts) -> u8 {
    let lock_wait = match lock_wait(o.wait_for_lock.as_deref()) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let state = match journal::state_dir(o.state.as_deref(), None) {
        Ok(s) => s,
        Err(p) => return fail(p),
    };
    if run.is_none()
        && !journal::runs(&state)
            .iter()
            .any(journal::RunSummary::resumable)
    {
        // Idempotent for schedulers: nothing left to finish is not an error.
        println!(
            "No interrupted or paused run in {}; nothing to resume.",
            state.display()
        );
        return 0;
    }
    let r = match find_run(&state, run, journal::RunSummary::resumable, "resume") {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !r.resumable() {
        println!(
            "Run {} ended as {}; there is nothing to resume.",
            r.run, r.status
        );
        return 0;
    }
    let plan = match run_plan(&r) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let schedule = match schedule::build(&plan, r.only.as_deref()) {
        Ok(s) => s,
        Err(p) => return fail(p),
    };
    if let Err(code) = window_open(&plan) {
        return code;
    }
    let began = r
        .began
        .iter()
        .map(|(t, from)| {
            let v = from.as_deref().and_then(|v| semver::Version::parse(v).ok());
            (t.clone(), v)
        })
        .collect();
    let finished: std::collections::BTreeMap<String, exec::TargetResult> = r
        .targets
        .iter()
        .filter(|t| t.outcome != exec::Outcome::Skipped)
        .map(|t| (t.target.clone(), t.clone()))
        .collect();
    // As `apply` does: a store another fleetup holds refuses the resume (exit 5), unless
    // asked to wait. Targets the run finished are not touched again, so not checked.
    let pending = schedule
        .targets()
        .filter(|t| !finished.contains_key(t.name(&plan)));
    let held = exec::locks_held(&plan, pending);
    if !held.is_empty() && lock_wait.is_zero() {
        eprint!("{}", render_human(&held, None, stderr_color()));
        return 5;
    }
    let journal = match journal::Journal::reopen(&r.dir) {
        Ok(j) => j,
        Err(p) => return fail(p),
    };
    journal.event(&Event::Note {
        detail: format!("resumed by pid {}", std::process::id()),
    });
    if o.format != OutputFormat::Json {
        println!(
            "Resuming run {} of {}: {} of {} targets already finished",
            r.run,
            plan.name,
            finished.len(),
            schedule.len()
        );
    }
    execute_and_report(
        &plan,
        &schedule,
        &journal,
        exec::Earlier { finished, began },
        lock_wait,
        o.format,
        None,
    )
}

/// `fleetup rollback RUN`: every node the run upgraded goes back to where it came from.
pub fn rollback(run: &str, state: Option<&Path>, format: OutputFormat) -> u8 {
    let state = match journal::state_dir(state, None) {
        Ok(s) => s,
        Err(p) => return fail(p),
    };
    let r = match find_run(&state, Some(run), |_| true, "roll back") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let plan = match run_plan(&r) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let upgraded: Vec<exec::TargetResult> = r
        .targets
        .iter()
        .filter(|t| t.outcome == exec::Outcome::Upgraded)
        .cloned()
        .collect();
    if upgraded.is_empty() {
        println!(
            "Run {} upgraded nothing that is still upgraded; nothing to roll back.",
            r.run
        );
        return 0;
    }
    let journal = match journal::Journal::reopen(&r.dir) {
        Ok(j) => j,
        Err(p) => return fail(p),
    };
    let json = format == OutputFormat::Json;
    let progress = Progress::new(terminal() && !json, json, upgraded.len());
    let emit = |e: Event| {
        journal.event(&e);
        progress.event(&e);
    };
    let opts = RunOptions {
        run_id: r.run.clone(),
        lock_wait: Duration::ZERO,
        earlier: Default::default(),
        hosts: None,
    };
    let results = exec::roll_back_run(&plan, &upgraded, &opts, &emit);
    progress.finish();
    let code = if results.iter().any(|x| x.attention) {
        4
    } else {
        0
    };
    let status = if code == 0 {
        "rolled-back"
    } else {
        "needs-attention"
    };
    journal.finish(status, code);
    report(&r.run, &plan.name, status, code, &results, json);
    code
}

pub fn history(run: Option<&str>, state: Option<&Path>, format: OutputFormat) -> u8 {
    let state = match journal::state_dir(state, None) {
        Ok(s) => s,
        Err(p) => return fail(p),
    };
    let runs = journal::runs(&state);
    let json = format == OutputFormat::Json;
    match run {
        None => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs).unwrap_or_default()
                );
            } else if runs.is_empty() {
                println!("No runs in {}.", state.display());
            } else {
                for r in &runs {
                    println!("{}  {}  {}  {}", r.run, r.started, r.status, r.plan);
                }
            }
            0
        }
        Some(id) => {
            let Some(r) = runs.iter().find(|r| r.run == id || r.run.starts_with(id)) else {
                return fail(
                    Problem::new(Code::Usage, format!("no run `{id}` in {}", state.display()))
                        .help("`fleetup history` lists the runs"),
                );
            };
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
                for t in &r.targets {
                    println!("  {:<20} {:<12} {}", t.target, t.outcome.as_str(), t.detail);
                }
            }
            0
        }
    }
}
