//! A node as a target of a run: its release store (here or on its host, through the
//! store seam) locked, the target release installed and activated, checked healthy over
//! the plan's health check, and made permanent; undone by switching back.

use std::collections::BTreeMap;
use std::time::Duration;

use semver::Version;

use super::event::{Back, Step};
use super::preview::Preview;
use super::row::TargetStatus;
use super::target::{Change, ChangeError, Cx, Lifecycle, Standing, Target};
use crate::diagnostics::{Code, Problem};
use crate::health::Probe;
use crate::plan::{NodeTarget, Plan};
use crate::store::{Activation, Ctx};
pub mod fleet;
pub mod preflight;
pub mod seam;

use fleet::Fleet;
use seam::{Location, NodeStore};

pub struct NodeUnit<'p> {
    plan: &'p Plan,
    /// The node's index in the plan (and in the preflight's findings).
    index: usize,
    node: &'p NodeTarget,
    /// What was read of the fleet's nodes before its turn, if anything was.
    fleet: Option<&'p Fleet>,
}

impl<'p> NodeUnit<'p> {
    pub fn new(
        plan: &'p Plan,
        index: usize,
        node: &'p NodeTarget,
        fleet: Option<&'p Fleet>,
    ) -> Self {
        NodeUnit {
            plan,
            index,
            node,
            fleet,
        }
    }

    fn to_version(&self) -> &Version {
        &self.node.to.value
    }

    /// Everything a run needs to fill the node's templates.
    fn vars(&self) -> BTreeMap<String, String> {
        let env = |k: &str| std::env::var(k).ok();
        let mut vars: BTreeMap<String, String> = self
            .node
            .vars
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.render(|_| None, env).ok()?)))
            .collect();
        vars.insert("name".into(), self.node.name.value.clone());
        vars.insert("host".into(), self.node.host.clone());
        vars
    }

    /// The store's context: the plan's product, rules and activate hook for this node.
    fn ctx<'s>(&self, cx: &Cx, say: &'s mut dyn FnMut(String)) -> Ctx<'s> {
        let plan = self.plan;
        let mut vars = self.vars();
        vars.remove("root");
        Ctx {
            say,
            product: Some(plan.product.clone()),
            runtime: plan.runtime.clone(),
            edition: plan.edition.as_ref().map(|e| e.value.clone()),
            repo: plan.repository.as_ref().map(|r| r.value.clone()),
            sha256: self.node.sha256.as_ref().map(|s| s.value.clone()),
            policy: plan.policy,
            runtime_rule: plan.runtime_compat,
            platform: self.node.platform.as_ref().map(|p| p.value.clone()),
            host_platform: None,
            activation: Activation {
                command: plan
                    .hooks
                    .command
                    .as_ref()
                    .map(|c| c.iter().map(|t| t.value.clone()).collect()),
                timeout: plan.hooks.timeout,
                vars,
            },
            lock_wait: cx.lock_wait,
            run: Some(cx.run_id.to_owned()),
            limits: Default::default(),
            env: Default::default(),
            trust: plan.trust.as_ref().map(|t| t.value.clone()),
            mirror: plan
                .mirror
                .as_ref()
                .filter(|_| !plan.via_controller && self.node.ssh.is_some())
                .and_then(|u| crate::mirror::shared(&u.value).ok()),
            index: plan
                .mirror
                .as_ref()
                .and_then(|u| crate::mirror::shared(&u.value).ok()),
        }
    }

    /// Where the node's store is. A remote node without connections is an error, never
    /// a local path.
    fn location<'n>(&'n self, cx: &'n Cx) -> Result<Location<'n>, Problem> {
        let ssh = match (cx.hosts, &self.node.ssh) {
            (Some(h), Some(a)) => Some((h, &a.value)),
            (None, Some(_)) => {
                return Err(Problem::new(
                    Code::Io,
                    format!(
                        "node `{}` is remote, but no SSH connection could be prepared",
                        self.node.name.value
                    ),
                ));
            }
            (_, None) => None,
        };
        Ok(Location {
            root: &self.node.root.value,
            ssh,
        })
    }

    fn open_store(&self, cx: &Cx, lock: bool) -> Result<NodeStore, Problem> {
        let mut say = |_: String| {};
        let ctx = self.ctx(cx, &mut say);
        NodeStore::open(&self.location(cx)?, &ctx, lock, false)
    }

    /// The node's placeholders for a step on `version` (coming from `previous`), with
    /// its root: a remote root is a path on its host, taken as written.
    fn vars_on(
        &self,
        store: &NodeStore,
        version: &Version,
        previous: Option<&Version>,
    ) -> (BTreeMap<String, String>, std::path::PathBuf) {
        let mut vars = self.vars();
        let root = &self.node.root.value;
        let root = if store.is_remote() {
            root.clone()
        } else {
            std::path::absolute(root).unwrap_or_else(|_| root.clone())
        };
        vars.insert("root".into(), root.display().to_string());
        vars.insert("version".into(), version.to_string());
        vars.insert(
            "previous".into(),
            previous.map(|p| p.to_string()).unwrap_or_default(),
        );
        (vars, root)
    }

    /// Runs the plan's lifecycle hook `which` where the node is: its host for a remote
    /// node (through its agent, like a health command), here for a local one. Filled
    /// with the node's placeholders; `version` is the release it goes to (or is on).
    fn lifecycle(
        &self,
        cx: &Cx,
        store: &mut NodeStore,
        which: Lifecycle,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<(), Problem> {
        let h = &self.plan.hooks;
        let Some(argv) = which.argv(h) else {
            return Ok(());
        };
        cx.step(self.name(), Step::Hook(which.as_str()));
        let (vars, root) = self.vars_on(store, version, previous);
        let fail = |m: String| which.failed(m);
        let argv = which.fill(argv, &vars)?;
        let limit = h.timeout;
        match store.check_on_node(&argv, limit, &[]) {
            Some(r) => r.map_err(|m| fail(m.why)),
            None => {
                let env = [
                    ("FLEETUP_NODE", self.node.name.value.clone()),
                    ("FLEETUP_HOOK", which.as_str().to_owned()),
                    ("FLEETUP_VERSION", version.to_string()),
                    ("FLEETUP_ROOT", root.display().to_string()),
                ];
                crate::hook::run(&argv, &env, limit).map_err(|e| fail(e.to_string()))
            }
        }
    }

    /// The plan's health check on `version` (after a rollback: with `rollback_timeout`).
    fn health(
        &self,
        cx: &Cx,
        store: &mut NodeStore,
        version: &Version,
        previous: Option<&Version>,
        rollback: bool,
    ) -> Result<(), String> {
        let Some(h) = &self.plan.health else {
            return Ok(());
        };
        let (vars, _) = self.vars_on(store, version, previous);
        let env = |k: &str| std::env::var(k).ok();
        let probe = h.probe(|t| {
            t.render(|k| vars.get(k).cloned(), env)
                .map_err(|m| format!("the health check `{t}` cannot be filled: {m:?}"))
        })?;
        // A command check runs where the node is; http and tcp checks run from here.
        let show = |t: &crate::template::Template| t.shown(|k| vars.get(k).cloned());
        // Each attempt's word, live on a terminal (secrets shown as written).
        let mut watch = |w: crate::health::Watch| {
            let detail = match w {
                crate::health::Watch::Failing { why, left } => crate::health::Watch::Failing {
                    why: &h.hide(&probe, why, show),
                    left,
                }
                .to_string(),
                w => w.to_string(),
            };
            (cx.emit)(super::event::Event::Probe {
                target: self.name().to_owned(),
                detail,
            });
        };
        probe
            .wait_watched(
                h.timing(rollback),
                |p, limit: Duration| match p {
                    Probe::Command { argv, give_up } => store
                        .check_on_node(argv, limit, give_up)
                        .unwrap_or_else(|| p.once(limit)),
                    _ => p.once(limit),
                },
                &mut watch,
            )
            .map(|_| ())
            // What is said of the check shows secrets as written, never their values.
            .map_err(|e| h.hide(&probe, &e, |t| t.shown(|k| vars.get(k).cloned())))
    }
}

impl Target for NodeUnit<'_> {
    fn name(&self) -> &str {
        &self.node.name.value
    }

    fn to(&self) -> String {
        self.to_version().to_string()
    }

    fn preview(&self) -> Preview {
        let n = self.node;
        let unread = preflight::NodeFinding::default();
        let f = self
            .fleet
            .and_then(|f| f.finding(self.index))
            .unwrap_or(&unread);
        let (from, from_source) = match (&f.running, &n.from) {
            (Some(r), _) => (Some(r.version.to_string()), "live"),
            (None, Some(p)) if !f.state_read => (Some(p.value.to_string()), "pinned"),
            (None, _) if f.state_read => (None, "fresh"),
            _ => (None, "unknown"),
        };
        let (rules, open) = match (&f.running, &f.package, &f.unreachable) {
            (_, _, Some(why)) => (format!("cannot be previewed: {why}"), true),
            (Some(_), Some(_), _) => ("passed".into(), false),
            (None, Some(_), _) if f.state_read => ("none apply (fresh store)".into(), false),
            _ => ("checked at apply (state not readable here)".into(), true),
        };
        Preview {
            target: n.name.value.clone(),
            kind: "node",
            from,
            from_source,
            to: n.to.value.to_string(),
            package: f.package.as_ref().map(|p| p.file.clone()),
            rules,
            open,
            services: Vec::new(),
        }
    }

    fn status(&self) -> TargetStatus {
        row(self.plan, self.index, self.fleet)
    }

    fn settled(&self) -> bool {
        self.plan.rollout.permanent
            && self
                .fleet
                .and_then(|f| f.finding(self.index))
                .and_then(|f| f.running.as_ref())
                .is_some_and(|r| &r.version == self.to_version())
    }

    fn caught_mid_step_goes_back(&self) -> bool {
        true
    }

    fn over_ssh(&self) -> Option<&crate::plan::SshAddr> {
        self.node.ssh.as_ref().map(|a| &a.value)
    }

    fn analysis_vars(&self) -> Option<BTreeMap<String, String>> {
        let mut vars = self.vars();
        vars.insert("version".into(), self.node.to.value.to_string());
        vars.insert("root".into(), self.node.root.value.display().to_string());
        Some(vars)
    }

    fn lock_held(&self) -> Option<Problem> {
        // A remote store's lock is tested by its host's agent, when the stores are read
        // before the run (`fleet::read_remote`).
        if self.node.ssh.is_some() {
            return None;
        }
        let dir = self.node.root.value.join("releases");
        if !dir.is_dir() {
            return None;
        }
        crate::lock::held(
            &dir,
            &format!("the store of node `{}`", self.node.name.value),
        )
    }

    fn open<'s>(&'s self, cx: &'s Cx<'s>) -> Result<(Box<dyn Change + 's>, Standing), Problem> {
        let at = match &self.node.ssh {
            Some(a) => format!(
                "{}:{}",
                crate::remote::ssh::describe(&a.value),
                self.node.root.value.display()
            ),
            None => self.node.root.value.display().to_string(),
        };
        cx.step(self.name(), Step::Lock { at });
        let mut store = self.open_store(cx, true)?;
        let st = store.state()?;
        let to = self.to_version();
        // What the node runs for good, and what a rollback returns to.
        let from = st
            .as_ref()
            .and_then(|s| s.permanent())
            .map(|r| r.version.clone());
        let running = st
            .as_ref()
            .and_then(|s| s.running())
            .map(|r| r.version.clone());
        let reached = if self.plan.rollout.permanent {
            from.as_ref() == Some(to)
        } else {
            running.as_ref() == Some(to)
        };
        let standing = Standing {
            from: from.clone(),
            reached: reached.then(|| format!("already runs {to}")),
            shown_from: None,
        };
        let change = NodeChange {
            unit: self,
            cx,
            store,
            from,
            running,
            undone: false,
        };
        Ok((Box::new(change), standing))
    }

    fn back(&self, from: Option<&Version>) -> Back {
        Back::To(from.cloned())
    }

    fn moved_on(&self, cx: &Cx, left: &super::event::TargetResult) -> Option<String> {
        let state = self.open_store(cx, false).and_then(|mut s| s.state());
        let now = match state {
            Ok(st) => st.and_then(|s| s.running().map(|r| r.version.to_string())),
            Err(p) => return Some(format!("its store cannot be read: {}", p.message)),
        };
        match now {
            // Still where the run left it, or already back where it came from (going
            // back then changes nothing).
            Some(v) if v == left.to || left.from.as_deref() == Some(v.as_str()) => None,
            Some(v) => Some(format!(
                "runs {v} now, not {} where the run left it",
                left.to
            )),
            None => Some(format!("runs no release now, not {}", left.to)),
        }
    }

    fn roll_back(&self, cx: &Cx, from: Option<&Version>) -> Result<String, Problem> {
        let name = self.name();
        let mut say = |l: String| cx.step(name, Step::Store(l));
        let mut ctx = self.ctx(cx, &mut say);
        let mut store = self.open_store(cx, false)?;
        let to = self.to_version();
        match from {
            Some(prev) => {
                store.roll_back_to(prev, to, &mut ctx)?;
                self.health(cx, &mut store, prev, Some(to), true)
                    .map_err(|h| Problem::new(Code::RollbackFailed, h))?;
            }
            None => store.revert(to, &mut ctx)?,
        }
        drop(ctx);
        let on = from.unwrap_or(to);
        let mut hooks = Vec::new();
        for which in [Lifecycle::OnRollback, Lifecycle::After] {
            if let Err(p) = self.lifecycle(cx, &mut store, which, on, Some(to)) {
                hooks.push(p.message);
            }
        }
        if !hooks.is_empty() {
            return Err(Problem::new(
                Code::HookFailed,
                format!(
                    "back on {}, but {}",
                    from.map_or("no release".into(), Version::to_string),
                    hooks.join("; ")
                ),
            ));
        }
        Ok(format!(
            "back on {}",
            from.map_or("no release".into(), Version::to_string)
        ))
    }
}

/// A node opened for its upgrade: the store's lock is held until this is dropped.
struct NodeChange<'s> {
    unit: &'s NodeUnit<'s>,
    cx: &'s Cx<'s>,
    store: NodeStore,
    /// The permanent release before the change.
    from: Option<Version>,
    /// The current release before the change.
    running: Option<Version>,
    /// The change was undone: the node is back on `from`.
    undone: bool,
}

impl NodeChange<'_> {
    /// Runs one store operation with its lines reported as the node's steps.
    fn with_ctx<T>(&mut self, f: impl FnOnce(&mut NodeStore, &mut Ctx) -> T) -> T {
        let (cx, unit) = (self.cx, self.unit);
        let mut say = |l: String| cx.step(unit.name(), Step::Store(l));
        let mut ctx = unit.ctx(cx, &mut say);
        f(&mut self.store, &mut ctx)
    }
}

impl Change for NodeChange<'_> {
    fn hook(&mut self, which: Lifecycle) -> Result<(), Problem> {
        let to = self.unit.to_version().clone();
        // Before and after a change the node goes to `to`; after a rollback it is on
        // where it came from.
        let (on, previous) = match which {
            Lifecycle::OnRollback => (self.from.clone().unwrap_or(to.clone()), Some(to)),
            Lifecycle::After if self.undone => (self.from.clone().unwrap_or(to.clone()), Some(to)),
            _ => (to, self.from.clone()),
        };
        self.unit
            .lifecycle(self.cx, &mut self.store, which, &on, previous.as_ref())
    }

    fn change(&mut self) -> Result<(), ChangeError> {
        let (name, to) = (self.unit.name(), self.unit.to_version().clone());
        if let Some(pin) = &self.unit.node.from
            && self.from.as_ref() != Some(&pin.value)
        {
            let runs = self
                .from
                .as_ref()
                .map_or("nothing".into(), |v| v.to_string());
            return Err(ChangeError::Failed {
                problem: Problem::new(
                    Code::FromMismatch,
                    format!("the plan pins from {} but the node runs {runs}", pin.value),
                ),
                attention: false,
            });
        }
        if self.running.as_ref() == Some(&to) {
            // A run killed after installing: the release is current, not yet permanent.
            self.cx.step(name, Step::AlreadyCurrent { to });
            return Ok(());
        }
        self.cx.step(
            name,
            Step::Install {
                from: self.from.clone(),
                to: to.clone(),
            },
        );
        self.with_ctx(|store, ctx| store.upgrade(&to, false, ctx))
            .map(|_| ())
            .map_err(|p| match p.code {
                // A failed activation was already switched back by the store.
                Code::ActivationFailed => ChangeError::Undone(p),
                Code::RollbackFailed | Code::SshLost | Code::StateUnrecorded => {
                    ChangeError::Failed {
                        problem: p,
                        attention: true,
                    }
                }
                _ => ChangeError::Failed {
                    problem: p,
                    attention: false,
                },
            })
    }

    fn check(&mut self) -> Result<(), Problem> {
        let (unit, name) = (self.unit, self.unit.name());
        // No check configured: nothing is checked, and nothing says it was.
        if unit.plan.health.is_none() {
            return Ok(());
        }
        self.cx.step(name, Step::HealthChecking);
        let from = self.from.clone();
        unit.health(
            self.cx,
            &mut self.store,
            unit.to_version(),
            from.as_ref(),
            false,
        )
        .map_err(|why| {
            self.cx.step(name, Step::HealthFailed { why: why.clone() });
            Problem::new(Code::Unhealthy, format!("unhealthy: {why}"))
        })
    }

    fn undo(&mut self) -> Result<String, Problem> {
        let unit = self.unit;
        let to = unit.to_version().clone();
        self.with_ctx(|store, ctx| store.revert(&to, ctx))?;
        self.undone = true;
        if let Some(prev) = self.from.clone() {
            unit.health(self.cx, &mut self.store, &prev, Some(&to), true)
                .map_err(|h| {
                    Problem::new(
                        Code::RollbackFailed,
                        format!("{prev} is not healthy again: {h}"),
                    )
                })?;
        }
        Ok(String::new())
    }

    fn commit(&mut self) -> Result<String, Problem> {
        let checked = if self.unit.plan.health.is_some() {
            "healthy"
        } else {
            "no health check configured"
        };
        if !self.unit.plan.rollout.permanent {
            return Ok(format!("{checked}, current (not permanent)"));
        }
        let to = self.unit.to_version().clone();
        self.cx.step(
            self.unit.name(),
            Step::Permanent {
                version: to.clone(),
            },
        );
        self.with_ctx(|store, ctx| store.upgrade(&to, true, ctx))?;
        Ok(format!("{checked}, permanent"))
    }
}

/// The row of node `i` (of the plan's nodes).
fn row(plan: &Plan, i: usize, fleet: Option<&Fleet>) -> TargetStatus {
    let n = &plan.nodes[i];
    let mut s = TargetStatus {
        target: n.name.value.clone(),
        kind: "node",
        wanted: String::new(),
        current: None,
        permanent: None,
        apps: Vec::new(),
        locked_by: None,
        mid_change: false,
        last_run: None,
        unreadable: None,
        drift: Vec::new(),
    };
    let read = if n.ssh.is_some() {
        match fleet.and_then(|f| f.remote.get(i)).and_then(|r| r.as_ref()) {
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
    if let Some(e) = &s.unreadable {
        s.drift.push(format!("not readable: {e}"));
    } else if let Some(d) = super::row::version_drift(
        s.current.as_deref(),
        s.permanent.as_deref(),
        &n.to.value.to_string(),
        plan.rollout.permanent,
    ) {
        s.drift.push(d);
    }
    s.locked_by = if n.ssh.is_some() {
        fleet
            .and_then(|f| f.held.iter().find(|h| h.node == i))
            .map(|h| h.holder.clone())
    } else {
        crate::lock::holder_of(&n.root.value.join("releases"))
    };
    s
}
