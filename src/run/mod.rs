//! The run use case: a plan prepared (loaded, checked against the world, scheduled),
//! applied wave by wave, resumed after a kill or a closed window, and rolled back.
//!
//! [`Runner`] never prints: it takes an event sink and returns a [`Report`] (or a
//! [`Failure`] to render). Commands only parse arguments, call it and render.
//!
//! - `prepare.rs`: plan → preflight (remote stores read in parallel) → schedule → preview
//! - `target.rs`: the seam every target kind implements (`node/`, `group.rs`,
//!   `scripted.rs`), listed in `kinds.rs`
//! - `exec.rs`: the wave loop, failure budget, rollback-all and rollback RUN
//! - `event.rs`: typed events, steps, outcomes and run statuses
//! - `journal.rs`: the record of every run, read back by `resume`, `rollback`, `history`

pub mod event;
pub mod exec;
mod group;
pub mod journal;
pub mod kinds;
pub mod node;
pub mod prepare;
pub mod preview;
pub mod row;
mod scripted;
pub mod status;
pub mod stop;
pub mod target;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diagnostics::{Code, Exit, Failure, Problem};
use crate::plan::Plan;
pub use event::{
    Back, Begin, Event, GateState, Outcome, Pause, PlannedWave, RunStatus, Step, TargetResult,
    Verdict,
};
pub use journal::RunSummary;
pub use prepare::{Prepared, prepare};
pub use preview::Preview;

/// How a run command ended.
pub enum Ended {
    /// The run went through its targets (or the part it could): its report.
    Ran(Report),
    /// The operator declined at the prompt: nothing was changed.
    Declined,
    /// Nothing to do, and why.
    Nothing(String),
}

/// The outcome of a run, `resume` or `rollback RUN`.
#[derive(Debug)]
pub struct Report {
    pub run: String,
    pub plan: String,
    pub status: RunStatus,
    pub results: Vec<TargetResult>,
    /// Why a paused run waits (its window, a gate, an inconclusive analysis).
    pub paused: Option<Pause>,
}

impl Report {
    pub fn exit(&self) -> Exit {
        self.status.exit()
    }
}

/// How a run starts: what the operator confirms before anything changes.
pub type Confirm<'a> = &'a dyn Fn(&Prepared) -> Result<bool, Problem>;

/// Where runs are kept and how long to wait for another fleetup's lock.
pub struct Runner {
    /// `--state`: the state directory (else the plan's `state`, then the environment).
    pub state: Option<PathBuf>,
    pub lock_wait: Duration,
}

/// Refuses to start outside the plan's window (exit 5), naming the next opening; for a
/// run being resumed (`resuming`: its id), also how to go on under another window or end it.
fn window_open(plan: &Plan, resuming: Option<&str>) -> Result<(), Problem> {
    use crate::window;
    let Some(w) = &plan.window else { return Ok(()) };
    let now = jiff::Timestamp::now();
    if window::is_open(w, now) {
        return Ok(());
    }
    let next = window::next_opening(w, now).map_or("never (no day is listed)".to_owned(), |z| {
        z.strftime("%a %Y-%m-%d %H:%M:%S %Z").to_string()
    });
    Err(Problem::new(
        Code::WindowClosed,
        format!(
            "outside the maintenance window {}; it next opens {next}",
            window::describe(w)
        ),
    )
    .help(match resuming {
        None => "run it then (a systemd timer or cron entry can), or change the plan's `window`".to_owned(),
        Some(run) => format!(
            "resume it then; or, after changing the plan file's `window`, `fleetup resume {run} --current-window` goes on under it; `fleetup abort {run}` ends the run"
        ),
    }))
}

/// A store another fleetup holds refuses the run (exit 5), unless asked to wait: local
/// stores tested here, remote ones as their agents found them (`remote`).
fn locks_free(
    plan: &Plan,
    lock_wait: Duration,
    ids: impl Iterator<Item = usize>,
    remote: Vec<Problem>,
) -> Result<(), Failure> {
    let mut held = exec::locks_held(plan, ids);
    held.extend(remote);
    if held.is_empty() || !lock_wait.is_zero() {
        return Ok(());
    }
    Err(Failure {
        problems: held,
        file: None,
        exit: Exit::Refused,
    })
}

/// The preflight of each wave, when the plan reads remote stores wave by wave.
#[allow(clippy::type_complexity)]
fn wave_check(
    plan: &Plan,
    hosts: Option<std::sync::Arc<crate::remote::Hosts>>,
) -> Option<Box<dyn Fn(&[usize]) -> Vec<target::Refusal> + Sync + '_>> {
    let hosts = hosts?;
    if plan.rollout.preflight != crate::plan::PreflightScope::Wave {
        return None;
    }
    Some(Box::new(move |w: &[usize]| {
        kinds::wave_refusals(plan, &hosts, w)
    }))
}

/// The schedule as the journal keeps it: names, domains, reasons, budgets.
pub fn planned(plan: &Plan, s: &crate::plan::schedule::Schedule) -> Vec<PlannedWave> {
    let budgets = s.budgets(plan);
    s.waves
        .iter()
        .enumerate()
        .map(|(i, w)| PlannedWave {
            targets: w.iter().map(|t| plan.target_name(*t).to_owned()).collect(),
            domain: s.domain.get(i).cloned().flatten(),
            why: s.why.get(i).cloned().unwrap_or_default(),
            budget: budgets.get(i).copied().unwrap_or(0),
        })
        .collect()
}

/// The schedule a journal recorded, for the plan the run applies; `None` if it names a
/// target the plan lacks.
fn recorded(plan: &Plan, waves: &[PlannedWave]) -> Option<crate::plan::schedule::Schedule> {
    let all = crate::plan::schedule::select(plan, None).ok()?;
    let mut s = crate::plan::schedule::Schedule::default();
    for w in waves {
        let ids = w
            .targets
            .iter()
            .map(|n| all.iter().find(|t| plan.target_name(**t) == n).copied())
            .collect::<Option<Vec<_>>>()?;
        s.waves.push(ids);
        s.why.push(w.why.clone());
        s.domain.push(w.domain.clone());
    }
    Some(s)
}

/// The window the plan file a run was started from has now (`resume --current-window`).
fn current_window_of(r: &RunSummary) -> Result<Option<crate::plan::Window>, Failure> {
    let loaded = crate::plan::load(&prepare::plan_file_now(r)?);
    match loaded.plan {
        Some(p)
            if loaded
                .problems
                .iter()
                .all(|p| p.severity != crate::diagnostics::Severity::Error) =>
        {
            Ok(p.window)
        }
        _ => Err(Failure {
            problems: loaded.problems,
            file: loaded.file,
            exit: Exit::Invalid,
        }),
    }
}

/// The name of the user this process runs as (from the password database).
fn login_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; the name is copied
    // out before any other call could overwrite it.
    unsafe {
        let uid = libc::getuid();
        let pw = libc::getpwuid(uid);
        if pw.is_null() || (*pw).pw_name.is_null() {
            return format!("uid{uid}");
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// Who approves, as the journal records it: user@host.
fn approver() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(login_name);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

/// Asked before `rollback RUN` touches anything: the run and the targets that would go
/// back, newest first; `false` declines.
pub type ConfirmRollback<'a> = &'a dyn Fn(&str, &[TargetResult]) -> Result<bool, Problem>;

/// Every event to the journal first, then to the caller; a wave's end to the webhooks.
/// No event carries a secret value: the plan's `${VAR}`s are hidden in their words.
fn tee<'a>(
    journal: &'a journal::Journal,
    emit: &'a (dyn Fn(Event) + Sync),
    notifier: &'a crate::notify::Notifier<'a>,
    secrets: crate::template::Secrets,
) -> impl Fn(Event) + Sync + 'a {
    move |e: Event| {
        let e = e.hidden(&secrets);
        let told = match &e {
            Event::WaveDone {
                index,
                of,
                upgraded,
                failed,
            } => notifier.send(
                crate::plan::NotifyOn::WaveDone,
                &format!("wave {index}/{of} done: {upgraded} upgraded, {failed} failed"),
                serde_json::json!({"wave": index, "of": of, "upgraded": upgraded, "failed": failed}),
            ),
            _ => Vec::new(),
        };
        journal.event(&e);
        emit(e);
        for why in told {
            let n = Event::Note { detail: why };
            journal.event(&n);
            emit(n);
        }
    }
}

/// Tells the webhooks how the run ended (failed, paused, finished); what failed is said.
fn notify_end(
    notifier: &crate::notify::Notifier,
    status: RunStatus,
    results: &[TargetResult],
    say: &dyn Fn(Event),
) {
    use crate::plan::NotifyOn;
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let fields = serde_json::json!({
        "status": status.as_str(),
        "upgraded": count(Outcome::Upgraded),
        "failed": results.iter().filter(|r| r.outcome.is_failure()).count(),
    });
    let text = format!(
        "run ended {}: {} upgraded, {} failed",
        status,
        count(Outcome::Upgraded),
        results.iter().filter(|r| r.outcome.is_failure()).count()
    );
    let mut moments = Vec::new();
    match status {
        RunStatus::Failed | RunStatus::NeedsAttention => moments.push(NotifyOn::Failed),
        RunStatus::Paused | RunStatus::Stopped => moments.push(NotifyOn::Paused),
        _ => {}
    }
    moments.push(NotifyOn::Finished);
    for m in moments {
        for why in notifier.send(m, &text, fields.clone()) {
            say(Event::Note { detail: why });
        }
    }
}

/// The run's end written to its journal, as a report.
fn finish(
    journal: &journal::Journal,
    plan: &Plan,
    status: RunStatus,
    results: Vec<TargetResult>,
) -> Report {
    journal.finish(status, status.exit().code());
    let secrets = plan.secrets();
    Report {
        run: journal.id(),
        plan: plan.name.clone(),
        status,
        results: results.into_iter().map(|r| r.hidden(&secrets)).collect(),
        paused: None,
    }
}

impl Runner {
    fn state_dir(&self, plan: Option<&Path>) -> Result<PathBuf, Problem> {
        journal::state_dir(self.state.as_deref(), plan)
    }

    /// Every run in the state directory, oldest first, and that directory.
    pub fn runs(&self) -> Result<(PathBuf, Vec<RunSummary>), Problem> {
        let state = self.state_dir(None)?;
        let runs = journal::runs(&state);
        Ok((state, runs))
    }

    /// `fleetup apply`: prepares the plan (`only` selects targets), checks that the run
    /// may start, asks `confirm`, journals the run and executes it.
    pub fn apply(
        &self,
        path: &Path,
        only: Option<&str>,
        confirm: Confirm,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Ended, Failure> {
        let p = prepare(path, only, true)?;
        if !p.warnings.is_empty() {
            emit(Event::Warnings {
                problems: p.warnings.clone(),
                file: p.file.clone(),
            });
        }
        window_open(&p.plan, None)?;
        locks_free(
            &p.plan,
            self.lock_wait,
            p.schedule.targets(),
            p.world.held(),
        )?;
        if !confirm(&p)? {
            return Ok(Ended::Declined);
        }
        let state = self.state_dir(p.plan.state.as_deref())?;
        let (journal, _owner) = journal::Journal::create(
            &state,
            path,
            &p.plan.name,
            &p.plan.file.text,
            p.only.as_deref(),
        )?;
        emit(Event::Began {
            run: journal.id(),
            plan: p.plan.name.clone(),
            targets: p.schedule.len(),
            waves: p.schedule.waves.len(),
            journal: journal.dir.clone(),
            how: Begin::New,
        });
        let notifier = crate::notify::Notifier::new(&p.plan, &journal.id());
        let tee = tee(&journal, emit, &notifier, p.plan.secrets());
        tee(Event::Schedule {
            waves: planned(&p.plan, &p.schedule),
        });
        for why in notifier.send(
            crate::plan::NotifyOn::RunStart,
            &format!(
                "run {} of plan {} started: {} target(s) in {} wave(s)",
                journal.id(),
                p.plan.name,
                p.schedule.len(),
                p.schedule.waves.len()
            ),
            serde_json::json!({"targets": p.schedule.len(), "waves": p.schedule.waves.len()}),
        ) {
            tee(Event::Note { detail: why });
        }
        let hosts = match p.world.hosts() {
            Some(h) => Some(h),
            None => kinds::hosts_for(&p.plan, p.schedule.targets())
                .inspect_err(|e| journal.finish(RunStatus::Failed, e.code.exit().code()))?,
        };
        let id = journal.id();
        let check = wave_check(&p.plan, hosts.clone());
        let exec = exec::Exec::new(&p.plan, &id, self.lock_wait, hosts, &tee);
        let exec = match &check {
            Some(c) => exec.check_waves(c),
            None => exec,
        };
        self.execute(
            exec,
            &journal,
            &p.plan,
            &p.schedule,
            Default::default(),
            &notifier,
            &tee,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        exec: exec::Exec,
        journal: &journal::Journal,
        plan: &Plan,
        schedule: &crate::plan::schedule::Schedule,
        earlier: exec::Earlier,
        notifier: &crate::notify::Notifier,
        say: &dyn Fn(Event),
    ) -> Result<Ended, Failure> {
        match exec.execute(schedule, earlier) {
            Ok(end) => {
                let status = RunStatus::of(&end.results, end.paused.is_some(), end.stopped);
                notify_end(notifier, status, &end.results, say);
                let mut report = finish(journal, plan, status, end.results);
                report.paused = end.paused;
                Ok(Ended::Ran(report))
            }
            Err(mut p) => {
                journal.finish(RunStatus::Failed, p.code.exit().code());
                p.message = plan.secrets().hide(&p.message);
                Err(p.into())
            }
        }
    }

    /// Finds a run by id (or prefix), or the latest one that `pick` accepts.
    fn find_run(
        &self,
        id: Option<&str>,
        pick: impl Fn(&RunSummary) -> bool,
        what: &str,
    ) -> Result<RunSummary, Problem> {
        let state = self.state_dir(None)?;
        let mut runs = journal::runs(&state);
        if let Some(id) = id {
            let i = journal::lookup(&runs, id, &state)?;
            return Ok(runs.swap_remove(i));
        }
        runs.retain(&pick);
        runs.pop().ok_or_else(|| {
            Problem::new(
                Code::Usage,
                format!("no run to {what} in {}", state.display()),
            )
            .help("`fleetup history --state DIR` lists the runs")
        })
    }

    /// `fleetup resume [RUN]`: finishes an interrupted or paused run. Targets the
    /// journal records as finished stay as they are; every other target is reconciled
    /// with its real state (a node killed mid-install is repaired by its store, one left
    /// current is checked and made permanent) and the run goes on as `on_failure` says.
    pub fn resume(
        &self,
        run: Option<&str>,
        current_window: bool,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Ended, Failure> {
        let (state, runs) = self.runs()?;
        if run.is_none() && !runs.iter().any(RunSummary::resumable) {
            // Idempotent for schedulers: nothing left to finish is not an error.
            return Ok(Ended::Nothing(format!(
                "No interrupted or paused run in {}; nothing to resume.",
                state.display()
            )));
        }
        let r = self.find_run(run, RunSummary::resumable, "resume")?;
        // The run is ours from here on; read again what its last owner left.
        let _owner = journal::lock_run(&r.dir, &r.run)?;
        let r = journal::read_run(&r.dir).unwrap_or(r);
        if !r.resumable() {
            return Ok(Ended::Nothing(format!(
                "Run {} ended as {}; there is nothing to resume.",
                r.run, r.status
            )));
        }
        let mut plan = prepare::run_plan(&r)?;
        if current_window {
            plan.window = current_window_of(&r)?;
        }
        // The waves the run started with; a journal without them, cut again from the plan.
        let schedule = match r.schedule.as_deref().and_then(|w| recorded(&plan, w)) {
            Some(s) => s,
            None => crate::plan::schedule::build(&plan, r.only.as_deref())?,
        };
        window_open(&plan, Some(&r.run))?;
        let finished: BTreeMap<String, TargetResult> = r
            .targets
            .iter()
            .filter(|t| t.outcome != Outcome::Skipped)
            .map(|t| (t.target.clone(), t.clone()))
            .collect();
        // As `apply` does; targets the run finished are not touched again, so not checked.
        let pending: Vec<_> = schedule
            .targets()
            .filter(|t| !finished.contains_key(plan.target_name(*t)))
            .collect();
        // What the rest of the run needs read and fetched again (a mirror's packages, if
        // the cache lost them), before anything changes.
        let world = kinds::World::for_resume(&plan, &pending)?;
        let hosts = world.hosts();
        locks_free(&plan, self.lock_wait, pending.iter().copied(), world.held())?;
        let journal = journal::Journal::reopen(&r.dir)?;
        journal.event(&Event::Note {
            detail: format!("resumed by pid {}", std::process::id()),
        });
        emit(Event::Began {
            run: r.run.clone(),
            plan: plan.name.clone(),
            targets: schedule.len(),
            waves: schedule.waves.len(),
            journal: r.dir.clone(),
            how: Begin::Resumed {
                finished: finished.len(),
            },
        });
        let notifier = crate::notify::Notifier::new(&plan, &r.run);
        let tee = tee(&journal, emit, &notifier, plan.secrets());
        let hosts = match hosts {
            Some(h) => Some(h),
            None => kinds::hosts_for(&plan, schedule.targets())
                .inspect_err(|e| journal.finish(RunStatus::Failed, e.code.exit().code()))?,
        };
        let check = wave_check(&plan, hosts.clone());
        let exec = exec::Exec::new(&plan, &r.run, self.lock_wait, hosts, &tee);
        let exec = match &check {
            Some(c) => exec.check_waves(c),
            None => exec,
        };
        let analysed = (1..=schedule.waves.len())
            .filter(|w| {
                !plan.analysis.is_empty()
                    && plan
                        .analysis
                        .iter()
                        .all(|a| r.analyses.get(&(*w, a.name.clone())) == Some(&Verdict::Passed))
            })
            .collect();
        let earlier = exec::Earlier {
            finished,
            began: r.began.clone(),
            gates: r.gates.clone(),
            waited: r.waited.clone(),
            analysed,
        };
        self.execute(exec, &journal, &plan, &schedule, earlier, &notifier, &tee)
    }

    /// Refuses (exit 2) unless run `id` waits for `resume`: paused, stopped or interrupted.
    pub fn abortable(&self, id: &str) -> Result<RunSummary, Failure> {
        let r = self.find_run(Some(id), |_| true, "abort")?;
        if !r.resumable() {
            return Err(Problem::new(
                Code::Usage,
                format!(
                    "run {} ended as {}; there is nothing to abort",
                    r.run, r.status
                ),
            )
            .help("`fleetup rollback RUN` undoes a finished run")
            .into());
        }
        Ok(r)
    }

    /// `fleetup approve RUN`: records who approved the manual gate the run waits at, and
    /// when; `resume` then goes through it.
    pub fn approve(&self, id: &str) -> Result<String, Failure> {
        let r = self.abortable(id)?;
        let _owner = journal::lock_run(&r.dir, &r.run)?;
        let r = journal::read_run(&r.dir).unwrap_or(r);
        let waiting = r
            .gates
            .iter()
            .rev()
            .find(|(_, g)| **g == GateState::Waiting)
            .map(|(w, _)| *w);
        let Some(after) = waiting else {
            return Err(Problem::new(
                Code::Usage,
                format!("run {} waits at no gate (it is {})", r.run, r.status),
            )
            .help("`fleetup resume RUN` continues a run that was stopped or paused by its window")
            .into());
        };
        let by = approver();
        let journal = journal::Journal::reopen(&r.dir)?;
        journal.event(&Event::Gate {
            after_wave: after,
            state: GateState::Approved { by: by.clone() },
        });
        Ok(format!(
            "Approved the gate after wave {after} of run {} as {by}; `fleetup resume {}` goes on.",
            r.run, r.run
        ))
    }

    /// `fleetup abort RUN`: ends a run that waits for `resume`, changing no target.
    pub fn abort(&self, id: &str) -> Result<String, Failure> {
        let r = self.abortable(id)?;
        let _owner = journal::lock_run(&r.dir, &r.run)?;
        let journal = journal::Journal::reopen(&r.dir)?;
        journal.event(&Event::Note {
            detail: format!("aborted by {}", approver()),
        });
        journal.finish(RunStatus::Aborted, 0);
        Ok(format!(
            "Run {} is aborted: targets it did not reach stay as they are; `fleetup rollback {}` undoes what it upgraded.",
            r.run, r.run
        ))
    }

    /// `fleetup rollback RUN`: every target the run upgraded goes back to where it came
    /// from, newest first.
    /// A target a later run or a hand change moved on refuses the whole command (exit 5)
    /// unless `force` names it.
    /// `confirm` is asked (with the targets that would go back, newest first) once
    /// everything is known and before anything is touched.
    pub fn roll_back(
        &self,
        run: &str,
        force: &[String],
        confirm: ConfirmRollback,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Ended, Failure> {
        let r = self.find_run(Some(run), |_| true, "roll back")?;
        let _owner = journal::lock_run(&r.dir, &r.run)?;
        let r = journal::read_run(&r.dir).unwrap_or(r);
        let plan = prepare::run_plan(&r)?;
        let mut upgraded: Vec<TargetResult> = r
            .targets
            .iter()
            .filter(|t| t.outcome == Outcome::Upgraded)
            .cloned()
            .collect();
        // A run killed, or killed and then aborted, may have nodes caught mid-step: begun,
        // never recorded. They go back too, however the run ended (the store repairs a
        // half-done step first); one that never changed is already where it came from,
        // and going back to it changes nothing.
        {
            let kinds = kinds::of_plan(&plan);
            for (target, from) in &r.began {
                let recorded = r.targets.iter().any(|t| &t.target == target);
                let caught = kinds.iter().find(|t| t.name() == target);
                if let (false, Some(t)) = (recorded, caught)
                    && t.caught_mid_step_goes_back()
                {
                    upgraded.push(TargetResult {
                        target: target.clone(),
                        from: from.as_ref().map(|v| v.to_string()),
                        to: t.to(),
                        outcome: Outcome::Upgraded,
                        detail: "caught mid-step when the run was interrupted".into(),
                        millis: 0,
                        attention: false,
                        code: None,
                        with_rest: false,
                    });
                }
            }
        }
        if upgraded.is_empty() {
            return Ok(Ended::Nothing(format!(
                "Run {} upgraded nothing that is still upgraded; nothing to roll back.",
                r.run
            )));
        }
        let ids = upgraded.iter().filter_map(|u| {
            crate::plan::schedule::select(&plan, None)
                .ok()?
                .into_iter()
                .find(|t| plan.target_name(*t) == u.target)
        });
        // A host that cannot be reached fails its nodes' rollbacks, not the command.
        let hosts = kinds::hosts_for(&plan, ids).ok().flatten();
        // Nothing is touched, nor journalled, until every target is known to stand where
        // this run left it (or is named by --force).
        let quiet = |_: Event| {};
        let moved: Vec<Problem> =
            exec::Exec::new(&plan, &r.run, Duration::ZERO, hosts.clone(), &quiet)
                .moved_on(&upgraded)
                .into_iter()
                .filter(|(t, _)| !force.contains(t))
                .map(|(t, why)| {
                    Problem::new(
                        Code::RunMovedOn,
                        format!("`{t}` {why}: rolling back run {} would undo that", r.run),
                    )
                })
                .collect();
        if !moved.is_empty() {
            return Err(Failure {
                problems: moved,
                file: None,
                exit: Exit::Refused,
            });
        }
        let newest_first: Vec<TargetResult> = upgraded.iter().rev().cloned().collect();
        if !confirm(&r.run, &newest_first)? {
            return Ok(Ended::Declined);
        }
        let journal = journal::Journal::reopen(&r.dir)?;
        emit(Event::Began {
            run: r.run.clone(),
            plan: plan.name.clone(),
            targets: upgraded.len(),
            waves: 1,
            journal: r.dir.clone(),
            how: Begin::RollBack,
        });
        let notifier = crate::notify::Notifier::new(&plan, &r.run);
        let tee = tee(&journal, emit, &notifier, plan.secrets());
        let exec = exec::Exec::new(&plan, &r.run, Duration::ZERO, hosts, &tee);
        let results = exec.roll_back_run(&upgraded);
        let status = if results.iter().any(|x| x.attention) {
            RunStatus::NeedsAttention
        } else {
            RunStatus::RolledBack
        };
        Ok(Ended::Ran(finish(&journal, &plan, status, results)))
    }
}
