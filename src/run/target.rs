//! The target seam: what a run does to one target, whatever its kind. A node's release
//! store, an app group and a scripted target each implement [`Target`] once (`node/`,
//! `group.rs`, `scripted.rs` beside this file); the wave loop, the failure budget, `rollback-all` and `rollback RUN`
//! (`exec.rs`) drive them through it and never ask which kind they have.
//!
//! A new kind of target is one new file (or folder) here implementing [`Target`] and
//! [`Change`], and one line in `kinds.rs`.

use std::sync::Arc;
use std::time::Duration;

use semver::Version;

use super::event::{Back, Event, Step};
use super::preview::Preview;
use crate::diagnostics::Problem;
use crate::plan::Plan;
use crate::remote::Hosts;

/// What a target needs from the run it is part of.
pub struct Cx<'a> {
    pub plan: &'a Plan,
    pub run_id: &'a str,
    /// How long to wait for another fleetup's lock.
    pub lock_wait: Duration,
    /// Connections to the plan's hosts (for remote nodes), one per host.
    pub hosts: Option<&'a Arc<Hosts>>,
    pub emit: &'a (dyn Fn(Event) + Sync),
}

impl Cx<'_> {
    pub fn step(&self, target: &str, step: Step) {
        (self.emit)(Event::Step {
            target: target.to_owned(),
            step,
        });
    }
}

/// Where a target stands when its turn comes.
pub struct Standing {
    /// What a rollback returns to: a node's permanent release (`None` for a fresh node
    /// and for a group, whose rollback undoes its last upgrade record).
    pub from: Option<Version>,
    /// Already where the plan wants it, with the words that say so.
    pub reached: Option<String>,
    /// Where it stands, as the run's summary says it when `from` has no version of its
    /// own to say (a group's apps: `mall 1.0.0`).
    pub shown_from: Option<String>,
}

/// How a change failed, with the problem that says why.
pub enum ChangeError {
    /// The target put itself back (a node whose activation failed was switched back).
    Undone(Problem),
    /// The change failed; `attention` when what it left cannot be trusted.
    Failed { problem: Problem, attention: bool },
    /// The change left the target unhealthy: `on_failure` decides whether to undo it.
    Unhealthy(Problem),
}

/// Why a target may not start, as the preflight of its wave found it.
pub struct Refusal {
    /// The target, by its number ([`crate::plan::Plan::entry`]).
    pub target: usize,
    pub problem: Problem,
}

/// One target of a plan.
pub trait Target: Sync {
    /// The name that keys the journal, `--only` and the report.
    fn name(&self) -> &str;
    /// What the plan wants the target to reach, as the report shows it.
    fn to(&self) -> String;
    /// The dry run's view of the target, from what was read of it before its turn.
    fn preview(&self) -> Preview;
    /// Its row in `fleetup status`, from what was read of the fleet and of it.
    fn status(&self) -> super::row::TargetStatus;
    /// Already where the plan wants it, as read before the run: it goes in no wave.
    fn settled(&self) -> bool {
        false
    }
    /// Whether `rollback RUN` takes the target back to where it was before its turn when
    /// the run began it and never recorded how it ended (killed mid-step): safe only
    /// for a kind whose rollback to that point changes nothing if it never changed.
    fn caught_mid_step_goes_back(&self) -> bool {
        false
    }
    /// Another fleetup holds the target right now: a run refuses to start (exit 5).
    /// `None` also where the lock can only be taken when the target's turn comes.
    fn lock_held(&self) -> Option<Problem>;
    /// Takes the target's lock (held until the [`Change`] is dropped) and reads where
    /// it stands.
    fn open<'s>(&'s self, cx: &'s Cx<'s>) -> Result<(Box<dyn Change + 's>, Standing), Problem>;
    /// How a rollback of this target from `from` is announced.
    fn back(&self, from: Option<&Version>) -> Back;
    /// Why the target no longer stands where a run left it (`left`, its result in that
    /// run): a later run or a hand change moved it on, so `rollback RUN` must not undo
    /// that. `None` when it is still there.
    fn moved_on(&self, cx: &Cx, left: &super::event::TargetResult) -> Option<String>;
    /// Puts back what a finished run changed (`rollback-all`, `rollback RUN`): a node
    /// onto `from`, checked healthy there; a group's last upgrade undone. `Ok` says where
    /// the target is now.
    fn roll_back(&self, cx: &Cx, from: Option<&Version>) -> Result<String, Problem>;
    /// The host the target is reached on over SSH (its connection is kept open until
    /// its turn has ended), or `None` for a target worked on here.
    fn over_ssh(&self) -> Option<&crate::plan::SshAddr> {
        None
    }
    /// The placeholders a per-target metric query fills for this target (`{name}` and
    /// the kind's own), or `None` for a kind no per-target query asks about.
    fn analysis_vars(&self) -> Option<std::collections::BTreeMap<String, String>> {
        None
    }
}

/// A lifecycle hook of the plan (`hooks.before`, `after`, `on_rollback`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Before,
    After,
    OnRollback,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Before => "before",
            Lifecycle::After => "after",
            Lifecycle::OnRollback => "on_rollback",
        }
    }

    /// The hook `hooks` gives for this moment, if any.
    pub fn argv(
        self,
        hooks: &crate::plan::Hooks,
    ) -> Option<&[crate::span::At<crate::template::Template>]> {
        match self {
            Lifecycle::Before => hooks.before.as_deref(),
            Lifecycle::After => hooks.after.as_deref(),
            Lifecycle::OnRollback => hooks.on_rollback.as_deref(),
        }
    }

    /// Why the hook failed, as every kind says it.
    pub fn failed(self, why: impl std::fmt::Display) -> Problem {
        Problem::new(
            crate::diagnostics::Code::HookFailed,
            format!("the `{}` hook failed: {why}", self.as_str()),
        )
    }

    /// The hook's argv filled with `vars` (and `${ENV}` from the environment).
    pub fn fill(
        self,
        argv: &[crate::span::At<crate::template::Template>],
        vars: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<String>, Problem> {
        let env = |k: &str| std::env::var(k).ok();
        argv.iter()
            .map(|t| t.value.render(|k| vars.get(k).cloned(), env))
            .collect::<Result<_, _>>()
            .map_err(|m| self.failed(format!("it cannot be filled: {m:?}")))
    }
}

/// A target opened for a change, its lock held.
pub trait Change {
    /// Runs a lifecycle hook where the target is (a node's host), if the plan has it.
    fn hook(&mut self, _which: Lifecycle) -> Result<(), Problem> {
        Ok(())
    }
    /// Makes the change (a node's release installed and activated, a group's apps upgraded).
    fn change(&mut self) -> Result<(), ChangeError>;
    /// Checks the changed target is healthy.
    fn check(&mut self) -> Result<(), Problem>;
    /// Undoes the change after a failed check; `Ok` carries words to add to the report.
    fn undo(&mut self) -> Result<String, Problem>;
    /// Makes the change stick (a node's release made permanent); the report's words.
    fn commit(&mut self) -> Result<String, Problem>;
}
