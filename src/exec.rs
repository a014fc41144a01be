//! Executing a schedule: waves one after another, targets of a wave in parallel on a
//! rayon pool sized to `max_parallel`, each node as one locked sequence
//! (unpack → install/activate → health → permanent), failures counted across the run
//! and handled as `on_failure` says.
//!
//! Workers only send [`Event`]s; what reaches the terminal or the journal is decided by
//! the consumers the caller passes in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semver::Version;
use serde::Serialize;

use crate::diagnostics::{Code, Problem};
use crate::group;
use crate::health::{Probe, Timing};
use crate::plan::{Amount, Check, GroupTarget, Health, NodeTarget, OnFailure, Plan};
use crate::remote::{Hosts, Location, NodeStore, SshSettings};
use crate::schedule::{Schedule, Target};
use crate::store::{self, Activation, Ctx};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Upgraded,
    Unchanged,
    RolledBack,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Upgraded => "upgraded",
            Outcome::Unchanged => "unchanged",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// What happened, as it happens.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Wave {
        index: usize,
        of: usize,
        targets: Vec<String>,
    },
    Step {
        target: String,
        step: String,
        detail: String,
    },
    Done {
        target: String,
        outcome: Outcome,
        from: Option<String>,
        to: String,
        detail: String,
        millis: u64,
        attention: bool,
    },
    Note {
        detail: String,
    },
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct TargetResult {
    pub target: String,
    pub from: Option<String>,
    pub to: String,
    pub outcome: Outcome,
    pub detail: String,
    pub millis: u64,
    /// The failure could not be undone: the target needs attention (exit 4).
    #[serde(default)]
    pub attention: bool,
}

pub struct RunOptions {
    pub run_id: String,
    pub lock_wait: Duration,
    /// What an interrupted attempt of this run left (`resume`).
    pub earlier: Earlier,
    /// Connections already made to the plan's hosts (by the preflight), reused by the run.
    pub hosts: Option<Arc<Hosts>>,
}

/// What an interrupted attempt of a run left behind; empty for a new run.
#[derive(Default)]
pub struct Earlier {
    /// Targets it finished: not run again.
    pub finished: BTreeMap<String, TargetResult>,
    /// Targets it began changing, with the release a node came from. One found already
    /// on its target was upgraded by this run (killed before it could say so), not
    /// unchanged.
    pub began: BTreeMap<String, Option<Version>>,
}

/// How a run ended.
pub struct RunEnd {
    pub results: Vec<TargetResult>,
    /// The maintenance window closed: targets not started wait for `resume`.
    pub paused: bool,
}

/// Everything a run needs to fill a node's templates.
fn node_vars(node: &NodeTarget) -> BTreeMap<String, String> {
    let env = |k: &str| std::env::var(k).ok();
    let mut vars: BTreeMap<String, String> = node
        .vars
        .iter()
        .filter_map(|(k, t)| Some((k.clone(), t.render(|_| None, env).ok()?)))
        .collect();
    vars.insert("name".into(), node.name.value.clone());
    vars.insert("host".into(), node.host.clone());
    vars
}

fn render_probe(h: &Health, vars: &BTreeMap<String, String>) -> Result<Probe, String> {
    let env = |k: &str| std::env::var(k).ok();
    let fill = |t: &crate::template::Template| {
        t.render(|k| vars.get(k).cloned(), env)
            .map_err(|m| format!("the health check `{t}` cannot be filled: {m:?}"))
    };
    Ok(match &h.check {
        Check::Http(t) => Probe::Http {
            url: fill(&t.value)?,
            expect: h.expect_status,
        },
        Check::Tcp(t) => Probe::Tcp {
            addr: fill(&t.value)?,
        },
        Check::Command(c) => Probe::Command {
            argv: c.iter().map(|t| fill(&t.value)).collect::<Result<_, _>>()?,
        },
    })
}

struct Run<'a> {
    plan: &'a Plan,
    opts: &'a RunOptions,
    emit: &'a (dyn Fn(Event) + Sync),
    failures: AtomicUsize,
    allowed: usize,
    stop: AtomicBool,
    /// Targets this run upgraded, in completion order, with the release they came from.
    upgraded: Mutex<Vec<(Target, Option<Version>)>>,
    /// The SSH connections of remote nodes, one per host, closed when the run ends.
    hosts: Option<Arc<Hosts>>,
}

/// Connections for the remote nodes among `targets`, if there are any.
fn hosts_for(
    plan: &Plan,
    mut targets: impl Iterator<Item = Target>,
) -> Result<Option<Arc<Hosts>>, Problem> {
    let remote = targets.any(|t| matches!(t, Target::Node(i) if plan.nodes[i].ssh.is_some()));
    if !remote {
        return Ok(None);
    }
    Hosts::new(SshSettings::of_plan(plan)).map(|h| Some(Arc::new(h)))
}

impl Run<'_> {
    fn step(&self, target: &str, step: &str, detail: impl Into<String>) {
        (self.emit)(Event::Step {
            target: target.into(),
            step: step.into(),
            detail: detail.into(),
        });
    }

    fn ctx<'s>(&self, node: &NodeTarget, say: &'s mut dyn FnMut(String)) -> Ctx<'s> {
        let plan = self.plan;
        let mut vars = node_vars(node);
        vars.remove("root");
        Ctx {
            say,
            product: Some(plan.product.clone()),
            runtime: plan.runtime.clone(),
            edition: plan.edition.as_ref().map(|e| e.value.clone()),
            repo: plan.repository.as_ref().map(|r| r.value.clone()),
            sha256: node.sha256.as_ref().map(|s| s.value.clone()),
            policy: plan.policy,
            activation: Activation {
                command: plan
                    .hooks
                    .command
                    .as_ref()
                    .map(|c| c.iter().map(|t| t.value.clone()).collect()),
                timeout: plan.hooks.timeout,
                vars,
            },
            lock_wait: self.opts.lock_wait,
            run: Some(self.opts.run_id.clone()),
            limits: Default::default(),
            env: Default::default(),
        }
    }

    /// Where the node's store is. A remote node without connections is an error, never
    /// a local path.
    fn location<'n>(&'n self, node: &'n NodeTarget) -> Result<Location<'n>, Problem> {
        let ssh = match (&self.hosts, &node.ssh) {
            (Some(h), Some(a)) => Some((h, &a.value)),
            (None, Some(_)) => {
                return Err(Problem::new(
                    Code::Io,
                    format!(
                        "node `{}` is remote, but no SSH connection could be prepared",
                        node.name.value
                    ),
                ));
            }
            (_, None) => None,
        };
        Ok(Location {
            root: &node.root.value,
            ssh,
        })
    }

    fn health(
        &self,
        node: &NodeTarget,
        store: &mut NodeStore,
        version: &Version,
        previous: Option<&Version>,
        rollback: bool,
    ) -> Result<(), String> {
        let Some(h) = &self.plan.health else {
            return Ok(());
        };
        let mut vars = node_vars(node);
        // A remote root is a path on its host, taken as written.
        let root = if store.is_remote() {
            node.root.value.clone()
        } else {
            std::path::absolute(&node.root.value).unwrap_or_else(|_| node.root.value.clone())
        };
        vars.insert("root".into(), root.display().to_string());
        vars.insert("version".into(), version.to_string());
        vars.insert(
            "previous".into(),
            previous.map(|p| p.to_string()).unwrap_or_default(),
        );
        let probe = render_probe(h, &vars)?;
        let timing = Timing {
            timeout: if rollback {
                h.rollback_timeout
            } else {
                h.timeout
            },
            interval: h.interval,
            healthy_for: h.healthy_for,
        };
        // A command check runs where the node is; http and tcp checks run from here.
        probe
            .wait_with(timing, |p, limit| match p {
                Probe::Command { argv } => store
                    .check_on_node(argv, limit)
                    .unwrap_or_else(|| p.once(limit)),
                _ => p.once(limit),
            })
            .map(|_| ())
    }

    fn node(&self, t: Target, node: &NodeTarget) -> TargetResult {
        let name = node.name.value.clone();
        let to = node.to.value.clone();
        let started = Instant::now();
        let done = |from: Option<&Version>, outcome: Outcome, detail: String, attention: bool| {
            TargetResult {
                target: name.clone(),
                from: from.map(|v| v.to_string()),
                to: to.to_string(),
                outcome,
                detail,
                millis: started.elapsed().as_millis() as u64,
                attention,
            }
        };
        if self.stop.load(Ordering::SeqCst) {
            return done(
                None,
                Outcome::Skipped,
                "not started: the run's failures exceeded max_failures".into(),
                false,
            );
        }
        let mut say = |l: String| self.step(&name, "store", l);
        let mut ctx = self.ctx(node, &mut say);
        let at = match &node.ssh {
            Some(a) => format!(
                "{}:{}",
                crate::remote::ssh::describe(&a.value),
                node.root.value.display()
            ),
            None => node.root.value.display().to_string(),
        };
        self.step(&name, "lock", at);
        let opened = self
            .location(node)
            .and_then(|at| NodeStore::open(&at, &ctx, true, false));
        let mut store = match opened {
            Ok(s) => s,
            Err(p) => return self.failed(done(None, Outcome::Failed, p.message, false)),
        };
        let st = match store.state() {
            Ok(st) => st,
            Err(p) => return self.failed(done(None, Outcome::Failed, p.message, false)),
        };
        let permanent = self.plan.rollout.permanent;
        // What the node runs for good, and what a rollback returns to.
        let from = st
            .as_ref()
            .and_then(|s| s.permanent())
            .map(|r| r.version.clone());
        let running = st
            .as_ref()
            .and_then(|s| s.running())
            .map(|r| r.version.clone());
        let reached = if permanent {
            from.as_ref() == Some(&to)
        } else {
            running.as_ref() == Some(&to)
        };
        if reached && let Some(came_from) = self.opts.earlier.began.get(&name) {
            // The earlier attempt got this far and was stopped before it could record it.
            self.record_upgraded(t, came_from.clone());
            return done(
                came_from.as_ref(),
                Outcome::Upgraded,
                format!("{to} was reached before the run was interrupted"),
                false,
            );
        }
        if reached {
            return done(
                from.as_ref(),
                Outcome::Unchanged,
                format!("already runs {to}"),
                false,
            );
        }
        if let Some(pin) = &node.from
            && from.as_ref() != Some(&pin.value)
        {
            let runs = from.as_ref().map_or("nothing".into(), |v| v.to_string());
            return self.failed(done(
                from.as_ref(),
                Outcome::Failed,
                format!("the plan pins from {} but the node runs {runs}", pin.value),
                false,
            ));
        }
        let from_text = from.as_ref().map_or("(fresh)".into(), |v| v.to_string());
        if running.as_ref() == Some(&to) {
            // A run killed after installing: the release is current, not yet permanent.
            self.step(
                &name,
                "install",
                format!("{to} is already current (an earlier run installed it)"),
            );
        } else {
            // `resume` reads this line back (journal::RunSummary::began): keep its form.
            self.step(&name, "install", format!("{from_text} → {to}"));
            if let Err(p) = store.upgrade(&to, false, &mut ctx) {
                // A failed activation was already switched back by the store.
                let attention = matches!(p.code, Code::RollbackFailed | Code::SshLost);
                let outcome = if p.code == Code::ActivationFailed {
                    Outcome::RolledBack
                } else {
                    Outcome::Failed
                };
                return self.failed(done(from.as_ref(), outcome, p.message, attention));
            }
        }
        self.step(&name, "health", "checking");
        if let Err(e) = self.health(node, &mut store, &to, from.as_ref(), false) {
            self.step(&name, "health", format!("failed: {e}"));
            if self.plan.rollout.on_failure == OnFailure::Stop {
                return self.failed(done(
                    from.as_ref(),
                    Outcome::Failed,
                    format!("unhealthy, left as it is (on_failure: stop): {e}"),
                    false,
                ));
            }
            self.step(
                &name,
                "rollback",
                format!(
                    "back to {}",
                    from.as_ref().map_or("nothing".into(), |v| v.to_string())
                ),
            );
            let back =
                store
                    .revert(&to, &mut ctx)
                    .map_err(|p| p.message)
                    .and_then(|_| match &from {
                        Some(prev) => self
                            .health(node, &mut store, prev, Some(&to), true)
                            .map_err(|h| format!("{prev} is not healthy again: {h}")),
                        None => Ok(()),
                    });
            return match back {
                Ok(()) => self.failed(done(
                    from.as_ref(),
                    Outcome::RolledBack,
                    format!("unhealthy: {e}"),
                    false,
                )),
                Err(r) => self.failed(done(
                    from.as_ref(),
                    Outcome::Failed,
                    format!("unhealthy: {e}; rollback failed: {r}"),
                    true,
                )),
            };
        }
        if permanent {
            self.step(&name, "permanent", to.to_string());
            if let Err(p) = store.upgrade(&to, true, &mut ctx) {
                return self.failed(done(from.as_ref(), Outcome::Failed, p.message, true));
            }
        }
        self.record_upgraded(t, from.clone());
        done(
            from.as_ref(),
            Outcome::Upgraded,
            format!(
                "healthy, {}",
                if permanent {
                    "permanent"
                } else {
                    "current (not permanent)"
                }
            ),
            false,
        )
    }

    /// Remembers that this run upgraded `t` (from `from`), for `rollback-all`.
    fn record_upgraded(&self, t: Target, from: Option<Version>) {
        if let Ok(mut u) = self.upgraded.lock() {
            u.push((t, from));
        }
    }

    fn failed(&self, r: TargetResult) -> TargetResult {
        let n = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if n > self.allowed {
            self.stop.store(true, Ordering::SeqCst);
        }
        r
    }

    fn target(&self, t: Target) -> TargetResult {
        if let Some(r) = self.opts.earlier.finished.get(t.name(self.plan)) {
            if r.outcome == Outcome::Upgraded && matches!(t, Target::Node(_)) {
                self.record_upgraded(t, r.from.as_deref().and_then(|v| Version::parse(v).ok()));
            }
            return r.clone();
        }
        let r = match t {
            Target::Node(i) => self.node(t, &self.plan.nodes[i]),
            Target::Group(i) => self.group(t, &self.plan.groups[i]),
        };
        self.done(&r);
        r
    }

    fn done(&self, r: &TargetResult) {
        (self.emit)(Event::Done {
            target: r.target.clone(),
            outcome: r.outcome,
            from: r.from.clone(),
            to: r.to.clone(),
            detail: r.detail.clone(),
            millis: r.millis,
            attention: r.attention,
        });
    }

    fn group_ctx<'s>(&self, g: &GroupTarget, say: &'s mut dyn FnMut(String)) -> group::Ctx<'s> {
        let env = |k: &str| std::env::var(k).ok();
        let vars = g
            .vars
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.render(|_| None, env).ok()?)))
            .collect();
        group::Ctx {
            say,
            hooks: group::Hooks {
                deploy: g
                    .hooks
                    .command
                    .as_ref()
                    .map(|c| c.iter().map(|t| t.value.clone()).collect()),
                timeout: g.hooks.timeout,
                health: g.health.clone(),
                vars,
                group: g.name.value.clone(),
            },
            lock_wait: self.opts.lock_wait,
            run: Some(self.opts.run_id.clone()),
        }
    }

    /// A group: each app upgraded as `fleetup group upgrade` would, in plan order.
    fn group(&self, t: Target, g: &GroupTarget) -> TargetResult {
        let name = g.name.value.clone();
        let started = Instant::now();
        let to = g
            .apps
            .iter()
            .map(|a| format!("{} {}", a.app.value, a.to.value))
            .collect::<Vec<_>>()
            .join(", ");
        let done = |outcome, detail: String, attention| TargetResult {
            target: name.clone(),
            from: None,
            to: to.clone(),
            outcome,
            detail,
            millis: started.elapsed().as_millis() as u64,
            attention,
        };
        if self.stop.load(Ordering::SeqCst) {
            return done(
                Outcome::Skipped,
                "not started: the run's failures exceeded max_failures".into(),
                false,
            );
        }
        let mut say = |l: String| self.step(&name, "group", l);
        let mut ctx = self.group_ctx(g, &mut say);
        let grp = group::Group::new(&g.root.value);
        let market = group::Market::new(&g.market.value);
        let mut changed = Vec::new();
        for a in &g.apps {
            let installed = grp
                .state()
                .ok()
                .and_then(|s| s.app(&a.app.value).map(|x| x.version.clone()));
            let unfinished = grp
                .records()
                .last()
                .is_some_and(|r| r.status == group::Status::InProgress);
            if installed.as_ref() == Some(&a.to.value) && !unfinished {
                continue;
            }
            let services: Option<Vec<String>> = a
                .services
                .as_ref()
                .map(|v| v.iter().map(|s| s.value.clone()).collect());
            self.step(
                &name,
                "upgrade",
                format!(
                    "{} {} → {}",
                    a.app.value,
                    installed.map_or("(not installed)".into(), |v| v.to_string()),
                    a.to.value
                ),
            );
            let rec = match grp.upgrade(
                &market,
                &a.app.value,
                &a.to.value,
                services.as_deref(),
                self.plan.policy,
                &mut ctx,
            ) {
                Ok(r) => r,
                Err(p) => return self.failed(done(Outcome::Failed, p.message, false)),
            };
            if rec.status != group::Status::Upgraded {
                let what = format!(
                    "{} {} → {}: {}",
                    rec.app,
                    rec.from,
                    rec.to,
                    rec.status.as_str()
                );
                if self.plan.rollout.on_failure == OnFailure::Stop {
                    return self.failed(done(
                        Outcome::Failed,
                        format!("{what}; left as it is (on_failure: stop)"),
                        false,
                    ));
                }
                return match grp.rollback(None, None, &mut ctx) {
                    Ok(rb) if rb.status == group::Status::RolledBack => self.failed(done(
                        Outcome::RolledBack,
                        format!("{what}; rolled back by record {}", rb.id),
                        false,
                    )),
                    Ok(rb) => self.failed(done(
                        Outcome::Failed,
                        format!("{what}; rollback {}: {}", rb.id, rb.status.as_str()),
                        true,
                    )),
                    // A failed upgrade that changed nothing has nothing to roll back.
                    Err(p)
                        if p.code == Code::GroupRollback
                            && rec.status == group::Status::UpgradeFailed =>
                    {
                        self.failed(done(
                            Outcome::RolledBack,
                            format!("{what}; nothing had changed"),
                            false,
                        ))
                    }
                    Err(p) => self.failed(done(
                        Outcome::Failed,
                        format!("{what}; rollback failed: {}", p.message),
                        true,
                    )),
                };
            }
            changed.push(format!(
                "{} {} → {} (record {})",
                rec.app, rec.from, rec.to, rec.id
            ));
        }
        if changed.is_empty() && self.opts.earlier.began.contains_key(&name) {
            // The earlier attempt upgraded it and was stopped before it could record it.
            self.record_upgraded(t, None);
            return done(
                Outcome::Upgraded,
                "reached before the run was interrupted".into(),
                false,
            );
        }
        if changed.is_empty() {
            return done(
                Outcome::Unchanged,
                "every app already at its target".into(),
                false,
            );
        }
        self.record_upgraded(t, None);
        done(Outcome::Upgraded, changed.join("; "), false)
    }

    /// Rolls back the group's last upgrade (`rollback-all`, `rollback RUN`).
    fn roll_back_group(&self, g: &GroupTarget) -> Result<(), String> {
        let name = g.name.value.clone();
        let mut say = |l: String| self.step(&name, "group", l);
        let mut ctx = self.group_ctx(g, &mut say);
        match group::Group::new(&g.root.value).rollback(None, None, &mut ctx) {
            Ok(r) if r.status == group::Status::RolledBack => Ok(()),
            Ok(r) => Err(format!("record {}: {}", r.id, r.status.as_str())),
            Err(p) => Err(p.message),
        }
    }

    /// Puts a node the run upgraded back on `from`, and checks it is healthy there.
    fn roll_back_node(&self, node: &NodeTarget, from: Option<&Version>) -> Result<(), String> {
        let name = node.name.value.clone();
        let mut say = |l: String| self.step(&name, "store", l);
        let mut ctx = self.ctx(node, &mut say);
        let mut store = NodeStore::open(
            &self.location(node).map_err(|p| p.message)?,
            &ctx,
            false,
            false,
        )
        .map_err(|p| p.message)?;
        match from {
            Some(prev) => store
                .roll_back_to(prev, &node.to.value, &mut ctx)
                .map_err(|p| p.message)
                .and_then(|_| self.health(node, &mut store, prev, Some(&node.to.value), true)),
            None => store
                .revert(&node.to.value, &mut ctx)
                .map_err(|p| p.message),
        }
    }

    /// `rollback-all`: every target this run upgraded goes back, newest first.
    fn roll_back_all(&self, results: &mut [TargetResult]) {
        let upgraded = self.upgraded.lock().map(|u| u.clone()).unwrap_or_default();
        for (t, from) in upgraded.into_iter().rev() {
            if let Target::Group(i) = t {
                let g = &self.plan.groups[i];
                let Some(r) = results.iter_mut().find(|r| r.target == g.name.value) else {
                    continue;
                };
                self.step(&g.name.value, "rollback", "rollback-all");
                match self.roll_back_group(g) {
                    Ok(()) => {
                        r.outcome = Outcome::RolledBack;
                        r.detail =
                            "rolled back with the rest of the run (on_failure: rollback-all)"
                                .into();
                    }
                    Err(e) => {
                        r.outcome = Outcome::Failed;
                        r.detail = format!("rollback-all failed: {e}");
                        r.attention = true;
                    }
                }
                self.done(r);
                continue;
            }
            let Target::Node(i) = t else { continue };
            let node = &self.plan.nodes[i];
            let Some(r) = results.iter_mut().find(|r| r.target == node.name.value) else {
                continue;
            };
            self.step(&node.name.value, "rollback", "rollback-all");
            match self.roll_back_node(node, from.as_ref()) {
                Ok(()) => {
                    r.outcome = Outcome::RolledBack;
                    r.detail =
                        "rolled back with the rest of the run (on_failure: rollback-all)".into();
                }
                Err(e) => {
                    r.outcome = Outcome::Failed;
                    r.detail = format!("rollback-all failed: {e}");
                    r.attention = true;
                }
            }
            self.done(r);
        }
    }
}

fn allowed_failures(a: Amount, total: usize) -> usize {
    match a {
        Amount::Count(c) => c as usize,
        Amount::Percent(p) => (p * total as f64 / 100.0).floor() as usize,
    }
}

/// Runs every wave of `schedule` and returns each target's result, in schedule order.
pub fn execute(
    plan: &Plan,
    schedule: &Schedule,
    opts: &RunOptions,
    emit: &(dyn Fn(Event) + Sync),
) -> Result<RunEnd, Problem> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(plan.rollout.max_parallel.min(schedule.len().max(1)))
        .build()
        .map_err(|e| Problem::new(Code::Io, format!("cannot start the worker pool: {e}")))?;
    // On resume, what already failed counts against max_failures as before.
    let failed_before = opts
        .earlier
        .finished
        .values()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::RolledBack))
        .count();
    let run = Run {
        plan,
        opts,
        emit,
        failures: AtomicUsize::new(failed_before),
        allowed: allowed_failures(plan.rollout.max_failures, schedule.len()),
        stop: AtomicBool::new(false),
        upgraded: Mutex::new(Vec::new()),
        hosts: match &opts.hosts {
            Some(h) => Some(h.clone()),
            None => hosts_for(plan, schedule.targets())?,
        },
    };
    let mut results = Vec::with_capacity(schedule.len());
    let of = schedule.waves.len();
    let mut paused = false;
    for (index, wave) in schedule.waves.iter().enumerate() {
        let all_finished = wave
            .iter()
            .all(|t| opts.earlier.finished.contains_key(t.name(plan)));
        // The pause comes before the window check: a window may close during it.
        if index > 0
            && !all_finished
            && !paused
            && !run.stop.load(Ordering::SeqCst)
            && !plan.rollout.pause.is_zero()
        {
            (emit)(Event::Note {
                detail: format!(
                    "pausing {}s before the next wave",
                    plan.rollout.pause.as_secs_f64()
                ),
            });
            std::thread::sleep(plan.rollout.pause);
        }
        if !paused
            && !all_finished
            && index > 0
            && let Some(w) = &plan.window
            && !crate::window::is_open(w, jiff::Timestamp::now())
        {
            paused = true;
            (emit)(Event::Note {
                detail: format!(
                    "the maintenance window {} closed: no new wave starts; `fleetup resume` continues",
                    crate::window::describe(w)
                ),
            });
        }
        if paused {
            for t in wave {
                results.push(
                    opts.earlier
                        .finished
                        .get(t.name(plan))
                        .cloned()
                        .unwrap_or_else(|| TargetResult {
                            target: t.name(plan).to_owned(),
                            from: None,
                            to: match *t {
                                Target::Node(i) => plan.nodes[i].to.value.to_string(),
                                Target::Group(_) => String::new(),
                            },
                            outcome: Outcome::Skipped,
                            detail: "paused: the maintenance window closed".into(),
                            millis: 0,
                            attention: false,
                        }),
                );
            }
            continue;
        }
        if run.stop.load(Ordering::SeqCst) {
            results.extend(wave.iter().map(|t| run.target(*t)));
            continue;
        }

        (emit)(Event::Wave {
            index: index + 1,
            of,
            targets: wave.iter().map(|t| t.name(plan).to_owned()).collect(),
        });
        // Exactly max_parallel workers, each taking the next target in file order: targets
        // start in the order of the plan, and none waits batched behind a slow one.
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<TargetResult>>> =
            wave.iter().map(|_| Mutex::new(None)).collect();
        pool.scope(|scope| {
            for _ in 0..pool.current_num_threads().min(wave.len()) {
                scope.spawn(|_| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(t) = wave.get(i) else { break };
                        let r = run.target(*t);
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(r);
                        }
                    }
                });
            }
        });
        let wave_results: Vec<TargetResult> = slots
            .into_iter()
            .filter_map(|m| m.into_inner().ok().flatten())
            .collect();
        let wave_failed = wave_results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed | Outcome::RolledBack));
        results.extend(wave_results);
        // A wave starts only when the previous one is all healthy, within max_failures.
        if wave_failed && run.failures.load(Ordering::SeqCst) > run.allowed {
            run.stop.store(true, Ordering::SeqCst);
        }
    }
    if run.stop.load(Ordering::SeqCst) && plan.rollout.on_failure == OnFailure::RollbackAll {
        run.roll_back_all(&mut results);
    }
    Ok(RunEnd { results, paused })
}

/// The exit code of a finished run (SPEC §5.6).
pub fn exit_code(end: &RunEnd) -> u8 {
    let results = &end.results;
    if results.iter().any(|r| r.attention) {
        4
    } else if results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Failed | Outcome::RolledBack))
    {
        3
    } else if end.paused {
        6
    } else {
        0
    }
}

/// Nodes whose store is held by someone else right now: a run refuses to start (exit 5).
pub fn locks_held(plan: &Plan, targets: impl Iterator<Item = Target>) -> Vec<Problem> {
    targets
        .filter_map(|t| match t {
            // A remote store's lock is taken on its host when the node's turn comes.
            Target::Node(i) if plan.nodes[i].ssh.is_some() => None,
            Target::Node(i) => {
                let root = &plan.nodes[i].root.value;
                let dir = root.join("releases");
                if !dir.is_dir() {
                    return None;
                }
                store::lock::acquire(
                    &dir,
                    &format!("the store of node `{}`", plan.nodes[i].name.value),
                    None,
                    Duration::ZERO,
                )
                .err()
            }
            Target::Group(i) => {
                let root = &plan.groups[i].root.value;
                if !root.is_dir() {
                    return None;
                }
                store::lock::acquire(
                    root,
                    &format!("the group `{}`", plan.groups[i].name.value),
                    None,
                    Duration::ZERO,
                )
                .err()
            }
        })
        .collect()
}

/// `fleetup rollback RUN`: every node the run upgraded goes back to the release it came
/// from, newest first, each checked healthy there.
pub fn roll_back_run(
    plan: &Plan,
    upgraded: &[TargetResult],
    opts: &RunOptions,
    emit: &(dyn Fn(Event) + Sync),
) -> Vec<TargetResult> {
    let run = Run {
        plan,
        opts,
        emit,
        failures: AtomicUsize::new(0),
        allowed: 0,
        stop: AtomicBool::new(false),
        upgraded: Mutex::new(Vec::new()),
        hosts: hosts_for(
            plan,
            upgraded.iter().filter_map(|r| {
                plan.nodes
                    .iter()
                    .position(|n| n.name.value == r.target)
                    .map(Target::Node)
            }),
        )
        .ok()
        .flatten(),
    };
    let mut out = Vec::new();
    for r in upgraded.iter().rev() {
        if let Some(g) = plan.groups.iter().find(|g| g.name.value == r.target) {
            let started = Instant::now();
            run.step(&r.target, "rollback", "the group's last upgrade");
            let (outcome, detail, attention) = match run.roll_back_group(g) {
                Ok(()) => (
                    Outcome::RolledBack,
                    "last upgrade rolled back".to_owned(),
                    false,
                ),
                Err(e) => (Outcome::Failed, format!("rollback failed: {e}"), true),
            };
            let res = TargetResult {
                target: r.target.clone(),
                from: Some(r.to.clone()),
                to: String::new(),
                outcome,
                detail,
                millis: started.elapsed().as_millis() as u64,
                attention,
            };
            run.done(&res);
            out.push(res);
            continue;
        }
        let Some(node) = plan.nodes.iter().find(|n| n.name.value == r.target) else {
            continue;
        };
        let from = r.from.as_deref().and_then(|v| Version::parse(v).ok());
        let started = Instant::now();
        run.step(
            &r.target,
            "rollback",
            format!("back to {}", r.from.as_deref().unwrap_or("nothing")),
        );
        let (outcome, detail, attention) = match run.roll_back_node(node, from.as_ref()) {
            Ok(()) => (
                Outcome::RolledBack,
                format!("back on {}", r.from.as_deref().unwrap_or("no release")),
                false,
            ),
            Err(e) => (Outcome::Failed, format!("rollback failed: {e}"), true),
        };
        let res = TargetResult {
            target: r.target.clone(),
            from: Some(r.to.clone()),
            to: r.from.clone().unwrap_or_default(),
            outcome,
            detail,
            millis: started.elapsed().as_millis() as u64,
            attention,
        };
        run.done(&res);
        out.push(res);
    }
    out
}
