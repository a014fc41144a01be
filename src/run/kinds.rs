//! Every kind of target a run knows, in one list: the one place a new kind is added.
//! Here too is what each kind reads of the world before its turn ([`World`]): the
//! run loop, the dry run, `check` and `status` hold a `World` and never look inside.

use std::sync::Arc;

use super::group::{self, GroupUnit};
use super::node::NodeUnit;
use super::node::fleet::{self, Fleet};
use super::scripted::ScriptedUnit;
use super::target::Target;
use crate::diagnostics::{Exit, Failure, Problem};
use crate::plan::{Plan, Section};
use crate::remote::{Hosts, SshSettings};

/// Every target of the plan, numbered as [`Plan::entry`] numbers them, knowing nothing
/// read of the world.
pub fn of_plan(plan: &Plan) -> Vec<Box<dyn Target + '_>> {
    make(plan, None)
}

/// Every target of the plan, as [`of_plan`], each with what `world` read of it.
pub fn seen<'a>(plan: &'a Plan, world: &'a World) -> Vec<Box<dyn Target + 'a>> {
    make(plan, Some(world))
}

fn make<'a>(plan: &'a Plan, world: Option<&'a World>) -> Vec<Box<dyn Target + 'a>> {
    plan.entries()
        .map(|e| match e.section {
            Section::Node(i, n) => {
                Box::new(NodeUnit::new(plan, i, n, world.map(|w| &w.nodes))) as Box<dyn Target>
            }
            Section::Group(_, g) => Box::new(GroupUnit::new(plan, g)),
            Section::Scripted(_, t) => Box::new(ScriptedUnit::new(plan, t)),
        })
        .collect()
}

/// How much of the world to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// `check`: perhaps far from the fleet (a CI runner); no host is asked.
    Check,
    /// `status`: the remote stores and who holds them.
    Status,
    /// `plan` and `apply`: connections to the plan's hosts; with `now`, the remote
    /// stores read first (with `locks`, who holds them too); every check run where the
    /// run happens.
    Prepare { now: bool, locks: bool },
}

/// What was read of the fleet before a run, a dry run, `check` or `status`, kind by
/// kind: the kinds that read the world before their turn keep their findings here.
#[derive(Default)]
pub struct World {
    nodes: Fleet,
    groups: Vec<Problem>,
    hosts: Option<Arc<Hosts>>,
}

impl World {
    /// Reads what `targets` (target numbers) need, as `how` says, changing nothing.
    pub fn read(plan: &Plan, targets: &[usize], how: Reading) -> World {
        let mut w = World::default();
        match how {
            Reading::Check => {
                w.nodes = Fleet::default().check(plan, false);
                w.groups = group::preflight(plan);
            }
            Reading::Status => {
                let hosts = connect(plan, targets);
                w.nodes = Fleet::read(plan, hosts.as_ref(), targets, true);
            }
            Reading::Prepare { now, locks } => {
                w.hosts = connect(plan, &(0..plan.target_count()).collect::<Vec<_>>());
                let read = match now {
                    true => Fleet::read(plan, w.hosts.as_ref(), targets, locks),
                    false => Fleet::default(),
                };
                w.nodes = read.check(plan, true);
                w.groups = group::preflight(plan);
            }
        }
        w
    }

    /// What a `resume` needs before it goes on with `pending`: the packages of the plan's
    /// mirror they need downloaded again if the cache lost them, connections for those
    /// reached over SSH, and (in [`World::held`]) who holds their remote stores now.
    pub fn for_resume(plan: &Plan, pending: &[usize]) -> Result<World, Failure> {
        let mut w = World::default();
        if plan.mirror.is_some() {
            let checked = Fleet::default().check(plan, true);
            let Some(m) = &checked.preflight.mirror else {
                return Err(Failure {
                    problems: checked.preflight.problems,
                    file: None,
                    exit: Exit::Invalid,
                });
            };
            fleet::fetch(plan, m, &checked.preflight, pending.iter().copied())?;
        }
        w.hosts = hosts_for(plan, pending.iter().copied())?;
        w.nodes = Fleet::read(plan, w.hosts.as_ref(), pending, true);
        Ok(w)
    }

    /// Every problem found, in the order of the plan file.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out: Vec<Problem> = self.nodes.preflight.problems.clone();
        out.extend(self.groups.iter().cloned());
        out.sort_by_key(|p| p.span.map_or(usize::MAX, |s| s.start));
        out
    }

    /// The refusals to start for targets another fleetup holds, as read.
    pub fn held(&self) -> Vec<Problem> {
        self.nodes.held.iter().map(|h| h.problem.clone()).collect()
    }

    /// The connections to the plan's hosts made to read them, for the run to reuse.
    pub fn hosts(&self) -> Option<Arc<Hosts>> {
        self.hosts.clone()
    }

    /// How many targets' live state could be read.
    pub fn states_read(&self) -> usize {
        self.nodes.preflight.states_read()
    }

    /// Downloads what `targets` need from the plan's mirror, once each, before any of
    /// them changes (nothing without a mirror).
    pub fn fetch(&self, plan: &Plan, targets: &[usize]) -> Result<(), Problem> {
        match &self.nodes.preflight.mirror {
            Some(m) => fleet::fetch(plan, m, &self.nodes.preflight, targets.iter().copied()),
            None => Ok(()),
        }
    }

    /// The plan's mirror, when its repository is one.
    pub fn mirror(&self) -> Option<&Arc<crate::mirror::Mirror>> {
        self.nodes.preflight.mirror.as_ref()
    }

    /// What the node kind read of the plan's nodes (for a library caller that wants each
    /// node's finding).
    pub fn nodes(&self) -> &Fleet {
        &self.nodes
    }

    /// The package files the plan's targets need (what `bundle` copies).
    pub fn packages_needed(&self, plan: &Plan) -> Vec<String> {
        self.nodes.packages_needed(plan)
    }
}

/// The preflight of one wave (`rollout.preflight: wave`), with the connections it works
/// on: each of its targets that must not start, and why.
pub fn wave_refusals(
    plan: &Plan,
    hosts: &Arc<Hosts>,
    wave: &[usize],
) -> Vec<super::target::Refusal> {
    fleet::wave_preflight(plan, hosts, wave)
}

/// Connections for the targets among `targets` reached over SSH, if there are any.
pub fn hosts_for(
    plan: &Plan,
    mut targets: impl Iterator<Item = usize>,
) -> Result<Option<Arc<Hosts>>, Problem> {
    let kinds = of_plan(plan);
    if !targets.any(|t| kinds[t].over_ssh().is_some()) {
        return Ok(None);
    }
    Hosts::new(SshSettings::of_plan(plan)).map(|h| Some(Arc::new(h)))
}

/// As [`hosts_for`], none when the plan's SSH settings cannot make them: the run says
/// why when it needs them.
fn connect(plan: &Plan, targets: &[usize]) -> Option<Arc<Hosts>> {
    hosts_for(plan, targets.iter().copied()).ok().flatten()
}
