//! `fleetup status PLAN`: what runs where, now. One row per target of the plan: a node's
//! current and permanent release, a group's apps with the version of each service, who
//! holds its lock, whether it is caught mid-change, and the last run that touched it with
//! its outcome. Reads stores (remote ones through their hosts' agents, as `plan` does)
//! and the journals; changes nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::journal::{self, RunSummary};
use super::kinds::{Reading, World};
pub use super::row::{AppStatus, LastRun, TargetStatus};
use crate::diagnostics::{Exit, Failure};
use crate::plan::schedule;

/// The whole fleet of a plan.
#[derive(Debug, Serialize)]
pub struct FleetStatus {
    pub plan: String,
    pub state: PathBuf,
    pub targets: Vec<TargetStatus>,
    /// Runs of this plan not yet ended (paused, stopped, interrupted, or running now),
    /// in words: each is a change the fleet has not finished.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs_left: Vec<String>,
}

impl FleetStatus {
    /// Whether the fleet is what the plan says: every target on the plan's version (as
    /// permanent), nothing mid-change, no run of the plan left to finish.
    pub fn drifted(&self) -> bool {
        !self.runs_left.is_empty() || self.targets.iter().any(|t| !t.drift.is_empty())
    }
}

/// A target's outcome in a run that began changing it and ended (aborted) before it
/// said how that change ended.
pub const UNFINISHED: &str = "unfinished";

/// The last run in `runs` (oldest first) that touched `name`.
fn last_run(runs: &[RunSummary], name: &str) -> Option<LastRun> {
    runs.iter().rev().find_map(|r| {
        let outcome = match r.targets.iter().find(|t| t.target == name) {
            Some(t) if t.outcome != super::Outcome::Skipped => t.outcome.as_str().to_owned(),
            // Begun and never finished: `resume` finishes it while the run can be taken
            // up; once the run was aborted, only `rollback RUN` (or a new run) can.
            None if r.began.contains_key(name) && r.resumable() => "interrupted".to_owned(),
            None if r.began.contains_key(name) => UNFINISHED.to_owned(),
            _ => return None,
        };
        Some(LastRun {
            run: r.run.clone(),
            outcome,
            status: r.status.to_string(),
        })
    })
}

/// Reads every target of the plan at `path` (`only` selects, as for `apply`); `state`
/// overrides where journals are read.
pub fn fleet_status(
    path: &Path,
    only: Option<&str>,
    state: Option<&Path>,
) -> Result<FleetStatus, Failure> {
    let loaded = crate::plan::load(path);
    let (Some(plan), false) = (loaded.plan.as_ref(), loaded.has_errors()) else {
        return Err(Failure {
            problems: loaded.problems,
            file: loaded.file,
            exit: Exit::Invalid,
        });
    };
    let sched = schedule::build(plan, only)?;
    let state = journal::state_dir(state, plan.state.as_deref())?;
    let runs = journal::runs(&state);
    let ids: Vec<usize> = sched.targets().collect();
    // The fleet read at once, before any row: remote stores and who holds them.
    let world = World::read(plan, &ids, Reading::Status);
    let kinds = super::kinds::seen(plan, &world);
    let targets = ids
        .iter()
        .map(|t| {
            let target = &kinds[*t];
            let name = target.name().to_owned();
            let mut s = target.status();
            s.wanted = target.to();
            s.last_run = last_run(&runs, &name);
            if s.last_run
                .as_ref()
                .is_some_and(|l| l.outcome == "interrupted" || l.outcome == UNFINISHED)
            {
                s.mid_change = true;
            }
            if s.mid_change {
                s.drift.push("caught mid-change".into());
            }
            s
        })
        .collect();
    let runs_left = runs
        .iter()
        .filter(|r| r.plan_name == plan.name && r.resumable())
        .map(|r| {
            format!(
                "run {} is {}: `fleetup resume {}` finishes it",
                r.run, r.status, r.run
            )
        })
        .collect();
    Ok(FleetStatus {
        plan: plan.name.clone(),
        state,
        targets,
        runs_left,
    })
}
