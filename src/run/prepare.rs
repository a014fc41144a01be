//! A plan made ready to run, with nothing changed: loaded and validated, checked against
//! the world it names (remote stores read over SSH, in parallel, one session per host),
//! scheduled into waves once, and previewed for the dry run.

use std::path::{Path, PathBuf};

use super::journal::RunSummary;
use super::kinds::{Reading, World};
use super::preview::Preview;
use crate::diagnostics::{Code, Exit, Failure, Problem, Severity, SourceFile};
use crate::plan::schedule::{self, Schedule};
use crate::plan::{Plan, PreflightScope};
use crate::remote::SshSettings;

/// A plan ready to run.
pub struct Prepared {
    pub plan: Plan,
    /// What was read of the fleet before anything changes.
    pub world: World,
    pub schedule: Schedule,
    /// The `--only` selection.
    pub only: Option<String>,
    /// Warnings found on the way (errors make a [`Failure`] instead).
    pub warnings: Vec<Problem>,
    pub file: Option<SourceFile>,
}

impl Prepared {
    /// The dry run: each wave's targets as they stand.
    pub fn preview(&self) -> Vec<Vec<Preview>> {
        let targets = super::kinds::seen(&self.plan, &self.world);
        self.schedule
            .waves
            .iter()
            .map(|w| w.iter().map(|&t| targets[t].preview()).collect())
            .collect()
    }
}

/// How a plan's SSH connections are made.
pub fn ssh_settings(plan: &Plan) -> SshSettings {
    SshSettings::of_plan(plan)
}

/// Loads, validates, preflights and schedules a plan. The schedule is built once, here.
/// For a dry run (`run` false) every remote store is read; for a run, every one with
/// `rollout.preflight: all` (and which of them another fleetup holds), none with `wave`:
/// each wave's are read right before it.
pub fn prepare(path: &Path, only: Option<&str>, run: bool) -> Result<Prepared, Failure> {
    let loaded = crate::plan::load(path);
    let mut problems = loaded.problems;
    let file = loaded.file;
    let Some(plan) = loaded.plan else {
        return Err(Failure {
            problems,
            file,
            exit: Exit::Invalid,
        });
    };
    crate::hook::run_in(&plan.dir);
    // Selected first; cut into waves once the world is read, from the targets that
    // will change.
    let schedule = schedule::select(&plan, only);
    let selected: &[usize] = schedule.as_deref().unwrap_or(&[]);
    let now = !run || plan.rollout.preflight == PreflightScope::All;
    let world = World::read(&plan, selected, Reading::Prepare { now, locks: run });
    problems.extend(world.problems());
    problems.sort_by_key(|p| p.span.map_or(usize::MAX, |s| s.start));
    if problems.iter().any(|p| p.severity == Severity::Error) {
        // A pin that does not match is a refusal to start (5), anything else invalid input.
        let refused = problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .all(|p| p.code == Code::FromMismatch);
        return Err(Failure {
            problems,
            file,
            exit: if refused {
                Exit::Refused
            } else {
                Exit::Invalid
            },
        });
    }
    if run && let Ok(targets) = &schedule {
        world.fetch(&plan, targets).map_err(|p| Failure {
            // A stopped download is a stop (exit 6); anything else, invalid input.
            exit: if p.code == Code::RunStopped {
                p.code.exit()
            } else {
                Exit::Invalid
            },
            problems: vec![p],
            file: file.clone(),
        })?;
    }
    let kinds = super::kinds::seen(&plan, &world);
    let settled = |t: usize| kinds[t].settled();
    let schedule = schedule
        .and_then(|_| schedule::build_with(&plan, only, &settled))
        .map_err(|p| Failure {
            problems: problems.iter().cloned().chain([p]).collect(),
            file: file.clone(),
            exit: Exit::Usage,
        })?;
    drop(kinds);
    Ok(Prepared {
        plan,
        world,
        schedule,
        only: only.map(str::to_owned),
        warnings: problems,
        file,
    })
}

/// The plan a run applied, from the copy in its journal, with paths resolved against
/// where the original plan was (never against the current directory).
pub fn run_plan(run: &RunSummary) -> Result<Plan, Failure> {
    let (copy, text) = plan_copy_text(run)?;
    let original = plan_location(run, &copy, &text)?;
    let dir = original.parent().unwrap_or(Path::new("/"));
    crate::hook::run_in(dir);
    let format = crate::plan::Format::from_path(&copy).unwrap_or(crate::plan::Format::Yaml);
    let loaded = crate::plan::load_text(SourceFile::new(run.plan.clone(), text), format, dir);
    if loaded.has_errors() {
        return Err(Failure {
            problems: loaded.problems,
            file: loaded.file,
            exit: Exit::Invalid,
        });
    }
    loaded.plan.ok_or(Failure {
        problems: Vec::new(),
        file: None,
        exit: Exit::Invalid,
    })
}

/// The copy of the plan a run keeps in its directory, and its text.
fn plan_copy_text(run: &RunSummary) -> Result<(PathBuf, String), Problem> {
    let Some(copy) = run.plan_copy() else {
        return Err(Problem::new(
            Code::Io,
            format!("run {} has no copy of its plan", run.run),
        ));
    };
    let text = std::fs::read_to_string(&copy)
        .map_err(|e| Problem::new(Code::Io, format!("cannot read {}: {e}", copy.display())))?;
    Ok((copy, text))
}

/// The absolute path of the plan file run `run` was started from. Recorded by the run
/// itself; for a journal that recorded the path only as typed (relative), worked out
/// from the state directory the run lives in and the plan's own relative `state:`
/// (`state: ./state` and a run in /srv/fleet/state/runs/ID: the plan was in
/// /srv/fleet). Anything else is refused: the current directory is never a guess.
pub fn plan_location(run: &RunSummary, copy: &Path, text: &str) -> Result<PathBuf, Problem> {
    if let Some(p) = &run.plan_file {
        return Ok(p.clone());
    }
    let typed = Path::new(&run.plan);
    if typed.is_absolute() {
        return Ok(typed.to_owned());
    }
    let refuse = |why: &str| {
        Problem::new(
            Code::Usage,
            format!(
                "run {} recorded its plan only as `{}`, relative to a directory it did not record, and {why}",
                run.run, run.plan
            ),
        )
        .help(
            "journals of fleetup 0.2 and earlier record no plan location; so that no relative `root`, `repository` or `state` is resolved against the wrong directory, this run cannot be taken up: `fleetup abort RUN` ends it, and a new `fleetup apply` of the plan starts from the stores' real state",
        )
    };
    // The plan's `state` as written: loaded against an empty directory, relative stays relative.
    let format = crate::plan::Format::from_path(copy).unwrap_or(crate::plan::Format::Yaml);
    let loaded = crate::plan::load_text(
        SourceFile::new(run.plan.clone(), text.to_owned()),
        format,
        Path::new(""),
    );
    let written = loaded.plan.and_then(|p| p.state);
    let Some(written) = written.filter(|s| s.is_relative()) else {
        return Err(refuse(
            "its plan names no relative `state:` to tell that directory from",
        ));
    };
    // runs/ID under the state directory, as the run found it.
    let state = run
        .dir
        .parent()
        .and_then(Path::parent)
        .and_then(|s| std::fs::canonicalize(s).ok())
        .ok_or_else(|| refuse("its state directory cannot be read"))?;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in written.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::Normal(n) => parts.push(n),
            _ => return Err(refuse("its plan's `state:` climbs out of its directory")),
        }
    }
    let mut origin = state.as_path();
    for n in parts.iter().rev() {
        if origin.file_name() != Some(n) {
            return Err(refuse(&format!(
                "its state directory {} does not end in the plan's `state: {}`",
                state.display(),
                written.display()
            )));
        }
        origin = origin.parent().unwrap_or(Path::new("/"));
    }
    Ok(origin.join(typed))
}

/// The plan file run `run` was started from, as it is now (`resume --current-window`).
pub fn plan_file_now(run: &RunSummary) -> Result<PathBuf, Problem> {
    let (copy, text) = plan_copy_text(run)?;
    plan_location(run, &copy, &text)
}
