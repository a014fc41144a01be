//! A plan made ready to run, with nothing changed: loaded and validated, checked against
//! the world it names (remote stores read over SSH, in parallel, one session per host),
//! scheduled into waves once, and previewed for the dry run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::journal::RunSummary;
use super::preview::Preview;
use crate::diagnostics::{Code, Exit, Failure, Problem, Severity, SourceFile};
use crate::plan::Plan;
use crate::preflight::{self, Preflight};
use crate::remote::{Hosts, SshSettings};
use crate::schedule::{self, Schedule, TargetId};

/// A plan ready to run.
pub struct Prepared {
    pub plan: Plan,
    pub preflight: Preflight,
    pub schedule: Schedule,
    /// The `--only` selection.
    pub only: Option<String>,
    /// Connections made to read remote stores, reused by the run.
    pub hosts: Option<Arc<Hosts>>,
    /// Warnings found on the way (errors make a [`Failure`] instead).
    pub warnings: Vec<Problem>,
    pub file: Option<SourceFile>,
}

impl Prepared {
    /// The dry run: each wave's targets as they stand.
    pub fn preview(&self) -> Vec<Vec<Preview>> {
        let targets = super::kinds::of_plan(&self.plan);
        self.schedule
            .waves
            .iter()
            .map(|w| {
                w.iter()
                    .map(|t| targets[t.index(&self.plan)].preview(&self.preflight))
                    .collect()
            })
            .collect()
    }
}

/// How a plan's SSH connections are made.
pub fn ssh_settings(plan: &Plan) -> SshSettings {
    SshSettings {
        config: plan.ssh_config.clone(),
        host_keys: plan.ssh_host_keys,
        connect_timeout: Duration::from_secs(10),
    }
}

/// Connections for the remote nodes among `targets`, if there are any.
pub fn hosts_for(
    plan: &Plan,
    mut targets: impl Iterator<Item = TargetId>,
) -> Result<Option<Arc<Hosts>>, Problem> {
    let remote = targets.any(|t| matches!(t, TargetId::Node(i) if plan.nodes[i].ssh.is_some()));
    if !remote {
        return Ok(None);
    }
    Hosts::new(ssh_settings(plan)).map(|h| Some(Arc::new(h)))
}

/// Loads, validates, preflights and schedules a plan. The schedule is built once, here.
pub fn prepare(path: &Path, only: Option<&str>) -> Result<Prepared, Failure> {
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
    let schedule = schedule::build(&plan, only);
    let mut hosts = None;
    let pf = match &schedule {
        Ok(s) if plan.nodes.iter().any(|n| n.ssh.is_some()) => {
            match Hosts::new(ssh_settings(&plan)) {
                Ok(h) => {
                    let h = Arc::new(h);
                    let live = remote_states(&plan, s, &h);
                    hosts = Some(h);
                    preflight::run_with(&plan, &live)
                }
                Err(_) => preflight::run_with(&plan, &[]),
            }
        }
        _ => preflight::run_with(&plan, &[]),
    };
    problems.extend(pf.problems.iter().cloned());
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
    let schedule = schedule.map_err(|p| Failure {
        problems: problems.iter().cloned().chain([p]).collect(),
        file: file.clone(),
        exit: Exit::Usage,
    })?;
    Ok(Prepared {
        plan,
        preflight: pf,
        schedule,
        only: only.map(str::to_owned),
        hosts,
        warnings: problems,
        file,
    })
}

/// The stores of the remote nodes the schedule holds, read over SSH in parallel with
/// `cat` (nothing is copied to or changed on a host).
fn remote_states(plan: &Plan, schedule: &Schedule, hosts: &Hosts) -> Vec<preflight::RemoteState> {
    use rayon::prelude::*;
    let mut picked = vec![false; plan.nodes.len()];
    for t in schedule.targets() {
        if let TargetId::Node(i) = t {
            picked[i] = true;
        }
    }
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

/// The plan a run applied, from the copy in its journal, with paths resolved against
/// where the original plan was.
pub fn run_plan(run: &RunSummary) -> Result<Plan, Failure> {
    let Some(copy) = run.plan_copy() else {
        return Err(
            Problem::new(Code::Io, format!("run {} has no copy of its plan", run.run)).into(),
        );
    };
    let text = std::fs::read_to_string(&copy)
        .map_err(|e| Problem::new(Code::Io, format!("cannot read {}: {e}", copy.display())))?;
    let original = Path::new(&run.plan);
    let dir = original
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
