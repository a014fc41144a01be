//! `fleetup status PLAN`: what runs where, now. One row per target of the plan: a node's
//! current and permanent release, a group's apps with the version of each service, who
//! holds its lock, whether it is caught mid-change, and the last run that touched it with
//! its outcome. Reads stores (remote ones through their hosts' agents, as `plan` does)
//! and the journals; changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::journal::{self, RunSummary};
use crate::diagnostics::{Exit, Failure};
use crate::plan::Plan;
use crate::schedule;

/// One target as it stands.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub kind: &'static str,
    /// A node's current release (what a restart leaves aside), a scripted target's
    /// running version; none for a group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// A node's permanent release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permanent: Option<String>,
    /// A group's apps: `mall 1.0.2`, with the services on another version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppStatus>,
    /// Who holds its lock now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<String>,
    /// Caught in the middle of a change (a killed install, an unfinished group upgrade).
    pub mid_change: bool,
    /// The last run that touched it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Why its state could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AppStatus {
    pub app: String,
    pub version: String,
    /// Services on another version than the app's, with theirs.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub running: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub run: String,
    /// The target's outcome in it (`upgraded`, `rolled-back`, …), or `interrupted` when
    /// the run began changing it and never said how that ended.
    pub outcome: String,
    /// How the run itself ended.
    pub status: String,
}

/// The whole fleet of a plan.
#[derive(Debug, Serialize)]
pub struct FleetStatus {
    pub plan: String,
    pub state: PathBuf,
    pub targets: Vec<TargetStatus>,
}

impl TargetStatus {
    /// A node whose current release is not its permanent one.
    pub fn current_not_permanent(&self) -> bool {
        self.current.is_some() && self.current != self.permanent
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
    let live = Live {
        remote: read_remote(plan, &ids),
    };
    let kinds = super::kinds::of_plan(plan);
    let targets = ids
        .iter()
        .map(|t| {
            let target = &kinds[*t];
            let name = target.name().to_owned();
            let mut s = target.status(&live);
            s.last_run = last_run(&runs, &name);
            if s.last_run
                .as_ref()
                .is_some_and(|l| l.outcome == "interrupted" || l.outcome == UNFINISHED)
            {
                s.mid_change = true;
            }
            s
        })
        .collect();
    Ok(FleetStatus {
        plan: plan.name.clone(),
        state,
        targets,
    })
}

/// What `status` read of the whole fleet at once, before any target's row: the remote
/// nodes' stores and lock holders, read by their hosts' agents as `plan` reads them.
pub struct Live {
    remote: Remote,
}

type Remote = (
    Vec<crate::preflight::RemoteState>,
    Vec<super::prepare::Held>,
);

fn read_remote(plan: &Plan, ids: &[usize]) -> Remote {
    let nodes = super::prepare::remote_nodes(plan, ids);
    if nodes.is_empty() {
        return (Vec::new(), Vec::new());
    }
    match crate::remote::Hosts::new(super::prepare::ssh_settings(plan)) {
        Ok(h) => super::prepare::read_remote(plan, &Arc::new(h), &nodes, true),
        Err(_) => (Vec::new(), Vec::new()),
    }
}

/// The row of node `i` (of the plan's nodes).
pub fn node(plan: &Plan, i: usize, live: &Live) -> TargetStatus {
    let remote = &live.remote;
    let n = &plan.nodes[i];
    let mut s = TargetStatus {
        target: n.name.value.clone(),
        kind: "node",
        current: None,
        permanent: None,
        apps: Vec::new(),
        locked_by: None,
        mid_change: false,
        last_run: None,
        unreadable: None,
    };
    let read = if n.ssh.is_some() {
        match remote.0.get(i).and_then(|r| r.as_ref()) {
            Some(Ok(st)) => Ok(st.clone()),
            Some(Err(p)) => Err(p.message.clone()),
            None => Err("not read".to_owned()),
        }
    } else {
        crate::store::read_state(&n.root.value)
    };
    match read {
        Ok(Some(st)) => {
            s.current = st.running().map(|r| r.version.to_string());
            s.permanent = st.permanent().map(|r| r.version.to_string());
            s.mid_change = st.pending.is_some();
        }
        Ok(None) => {}
        Err(e) => s.unreadable = Some(e),
    }
    s.locked_by = if n.ssh.is_some() {
        remote
            .1
            .iter()
            .find(|h| h.node == i)
            .map(|h| h.holder.clone())
    } else {
        crate::store::lock::holder_of(&n.root.value.join("releases"))
    };
    s
}

/// The row of group `g`.
pub fn group(g: &crate::plan::GroupTarget) -> TargetStatus {
    let grp = crate::group::Group::new(&g.root.value);
    let mut s = TargetStatus {
        target: g.name.value.clone(),
        kind: "group",
        current: None,
        permanent: None,
        apps: Vec::new(),
        locked_by: crate::store::lock::holder_of(&g.root.value),
        mid_change: grp
            .records()
            .last()
            .is_some_and(|r| r.status == crate::group::Status::InProgress),
        last_run: None,
        unreadable: None,
    };
    match grp.state() {
        Ok(st) => {
            s.apps = st
                .apps
                .iter()
                .map(|a| AppStatus {
                    app: a.app.clone(),
                    version: a.version.to_string(),
                    running: a
                        .running
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                })
                .collect();
        }
        Err(p) => s.unreadable = Some(p.message),
    }
    s
}
