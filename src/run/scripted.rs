//! A scripted target as a target of a run: software fleetup does not unpack itself (a
//! pip or apt package, a container image), read and changed by the plan's own commands.
//! Its `version` command says what runs; `upgrade` installs `{version}`; `rollback` (or
//! `upgrade` with the previous version) goes back. After a change the version is read
//! again, and the entry's health check, if any, must pass.

use std::collections::BTreeMap;
use std::sync::Arc;

use semver::Version;

use super::event::{Back, Step, TargetResult};
use super::preview::Preview;
use super::row::TargetStatus;
use super::target::{Change, ChangeError, Cx, Lifecycle, Standing, Target};
use crate::diagnostics::{Code, Problem};
use crate::plan::{At, Plan, ScriptedTarget};
use crate::remote::{Hosts, Lease};
use crate::template::Template;

/// Where a scripted target's commands run: here, or on its host over a channel of the
/// host's SSH session.
enum On {
    Here,
    There(Box<Lease>),
}

pub struct ScriptedUnit<'p> {
    plan: &'p Plan,
    t: &'p ScriptedTarget,
}

impl<'p> ScriptedUnit<'p> {
    pub fn new(plan: &'p Plan, t: &'p ScriptedTarget) -> Self {
        ScriptedUnit { plan, t }
    }

    /// The placeholders of its commands: `{name}`, `{version}` (what it goes to),
    /// `{previous}` (what it came from) and its vars.
    fn vars(
        &self,
        version: Option<&Version>,
        previous: Option<&Version>,
    ) -> BTreeMap<String, String> {
        let env = |k: &str| std::env::var(k).ok();
        let mut vars: BTreeMap<String, String> = self
            .t
            .vars
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.render(|_| None, env).ok()?)))
            .collect();
        vars.insert("name".into(), self.t.name.value.clone());
        vars.insert(
            "host".into(),
            self.t
                .ssh
                .as_ref()
                .map_or("127.0.0.1".to_owned(), |a| a.value.host.clone()),
        );
        if let Some(v) = version {
            vars.insert("version".into(), v.to_string());
        }
        if let Some(p) = previous {
            vars.insert("previous".into(), p.to_string());
        }
        vars
    }

    /// Where its commands run: over a channel of `hosts` (connections the run holds;
    /// without, new ones) for a target with `ssh`; `turn`: its turn in a run.
    fn on(&self, hosts: Option<&Arc<Hosts>>, turn: bool) -> Result<On, Problem> {
        let Some(addr) = &self.t.ssh else {
            return Ok(On::Here);
        };
        let hosts = match hosts {
            Some(h) => h.clone(),
            None => Arc::new(Hosts::new(crate::remote::SshSettings::of_plan(self.plan))?),
        };
        Ok(On::There(Box::new(hosts.channel(&addr.value, turn)?)))
    }

    /// Runs command `argv` (`what` names it in errors) with `vars`, where `on` says:
    /// what it printed.
    fn run(
        &self,
        on: &mut On,
        what: &str,
        argv: &[At<Template>],
        vars: &BTreeMap<String, String>,
    ) -> Result<String, Problem> {
        let env = |k: &str| std::env::var(k).ok();
        let fail = |m: String| {
            Problem::new(
                Code::HookFailed,
                format!(
                    "the `{what}` command of `{}` failed: {m}",
                    self.t.name.value
                ),
            )
        };
        let filled: Vec<String> = argv
            .iter()
            .map(|t| t.value.render(|k| vars.get(k).cloned(), env))
            .collect::<Result<_, _>>()
            .map_err(|m| fail(format!("it cannot be filled: {m:?}")))?;
        let hook_env = [
            ("FLEETUP_TARGET", self.t.name.value.clone()),
            ("FLEETUP_COMMAND", what.to_owned()),
        ];
        // What a command prints may echo what it was given: the plan's secrets are hidden.
        let hide = |m: &str| self.plan.secrets().hide(m);
        match on {
            On::Here => crate::hook::output(&filled, &hook_env, self.t.timeout)
                .map_err(|e| fail(hide(&e.to_string()))),
            On::There(lease) => {
                crate::remote::run_there(lease, &filled, self.t.timeout).map_err(|p| match p.code {
                    Code::HookFailed => fail(hide(&p.message)),
                    _ => Problem {
                        message: hide(&p.message),
                        ..p
                    },
                })
            }
        }
    }

    /// Runs its lifecycle hook `which`, if it has one, where its commands run, with its
    /// placeholders (`{version}`: where it is or goes, `{previous}`: the other one).
    fn lifecycle(
        &self,
        cx: &Cx,
        at: &mut On,
        which: Lifecycle,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<(), Problem> {
        let Some(argv) = which.argv(&self.t.hooks) else {
            return Ok(());
        };
        cx.step(self.name(), Step::Hook(which.as_str()));
        let filled = which.fill(argv, &self.vars(Some(version), previous))?;
        let hide = |m: &str| self.plan.secrets().hide(m);
        let limit = self.t.hooks.timeout;
        match at {
            On::Here => {
                let env = [
                    ("FLEETUP_TARGET", self.t.name.value.clone()),
                    ("FLEETUP_HOOK", which.as_str().to_owned()),
                    ("FLEETUP_VERSION", version.to_string()),
                ];
                crate::hook::run(&filled, &env, limit)
                    .map_err(|e| which.failed(hide(&e.to_string())))
            }
            On::There(lease) => crate::remote::run_there(lease, &filled, limit)
                .map(|_| ())
                .map_err(|p| which.failed(hide(&p.message))),
        }
    }

    /// The version that runs now, as the `version` command prints it (its last line that
    /// is a version; a leading `v` is allowed).
    fn running(&self, on: &mut On) -> Result<Version, Problem> {
        let said = self.run(on, "version", &self.t.version, &self.vars(None, None))?;
        said.lines()
            .rev()
            .map(str::trim)
            .find_map(|l| Version::parse(l.strip_prefix('v').unwrap_or(l)).ok())
            .ok_or_else(|| {
                let last = said.lines().map(str::trim).rfind(|l| !l.is_empty());
                Problem::new(
                    Code::BadVersion,
                    format!(
                        "the `version` command of `{}` printed no version ({})",
                        self.t.name.value,
                        last.map_or("nothing".into(), |l| format!(
                            "its last line: {}",
                            crate::names::printable_text(l)
                        ))
                    ),
                )
                .help("make it print the version alone, e.g. 1.4.2, on its last line")
            })
    }

    /// The compatibility rules from `from` to the entry's `to`, as words (none: allowed).
    fn rules(&self, from: &Version) -> Vec<Problem> {
        crate::package::check_versions(from, &self.t.to.value, self.plan.policy)
            .into_iter()
            .map(|v| Problem::new(v.code, format!("`{}`: {}", self.t.name.value, v.message)))
            .collect()
    }

    /// Puts the target on `on`, coming from `off`: `rollback` (or `upgrade`) and the
    /// version read again.
    fn go_back(&self, at: &mut On, on: &Version, off: &Version) -> Result<(), Problem> {
        let vars = self.vars(Some(on), Some(off));
        // `{previous}` is the version it goes back to, `{version}` the same (an
        // `upgrade` command used to go back takes `{version}`).
        let mut vars = vars;
        vars.insert("previous".into(), on.to_string());
        match &self.t.rollback {
            Some(argv) => self.run(at, "rollback", argv, &vars)?,
            None => self.run(at, "upgrade", &self.t.upgrade, &vars)?,
        };
        let now = self.running(at)?;
        if now != *on {
            return Err(Problem::new(
                Code::RollbackFailed,
                format!("it runs {now} after going back, not {on}"),
            ));
        }
        Ok(())
    }

    /// The entry's health check on `version`, if it has one.
    /// A `command` check runs where its commands do; an HTTP or TCP one from here.
    fn health(
        &self,
        at: &mut On,
        version: &Version,
        previous: Option<&Version>,
    ) -> Result<(), String> {
        let Some(h) = &self.t.health else {
            return Ok(());
        };
        let vars = self.vars(Some(version), previous);
        let env = |k: &str| std::env::var(k).ok();
        let probe = h.probe(|t| {
            t.render(|k| vars.get(k).cloned(), env)
                .map_err(|m| format!("the health check `{t}` cannot be filled: {m:?}"))
        })?;
        probe
            .wait_with(h.timing(false), |p, limit| match (p, &mut *at) {
                (crate::health::Probe::Command { argv, give_up }, On::There(lease)) => {
                    crate::remote::check_there(lease, argv, limit, give_up)
                }
                _ => p.once(limit),
            })
            .map(|_| ())
            .map_err(|e| h.hide(&probe, &e, |t| t.shown(|k| vars.get(k).cloned())))
    }
}

impl Target for ScriptedUnit<'_> {
    fn name(&self) -> &str {
        &self.t.name.value
    }

    fn to(&self) -> String {
        self.t.to.value.to_string()
    }

    fn preview(&self) -> Preview {
        // The `version` command only reads: the dry run asks it.
        let read = self
            .on(None, false)
            .and_then(|mut on| self.running(&mut on));
        let (from, from_source, rules, open) = match read {
            Ok(v) => {
                let broken = self.rules(&v);
                let rules = if broken.is_empty() {
                    "passed".to_owned()
                } else {
                    broken
                        .iter()
                        .map(|p| p.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                (Some(v.to_string()), "live", rules, false)
            }
            Err(p) => (
                self.t.from.as_ref().map(|f| f.value.to_string()),
                if self.t.from.is_some() {
                    "pinned"
                } else {
                    "unknown"
                },
                format!("cannot be previewed: {}", p.message),
                true,
            ),
        };
        Preview {
            target: self.t.name.value.clone(),
            kind: "scripted",
            from,
            from_source,
            to: self.to(),
            package: None,
            rules,
            open,
            services: Vec::new(),
        }
    }

    fn status(&self) -> TargetStatus {
        let read = self
            .on(None, false)
            .and_then(|mut on| self.running(&mut on));
        let (current, unreadable) = match read {
            Ok(v) => (Some(v.to_string()), None),
            Err(p) => (None, Some(p.message)),
        };
        let drift = match (&unreadable, &current) {
            (Some(e), _) => vec![format!("not readable: {e}")],
            (None, c) => super::row::version_drift(
                c.as_deref(),
                c.as_deref(),
                &self.t.to.value.to_string(),
                false,
            )
            .into_iter()
            .collect(),
        };
        TargetStatus {
            target: self.t.name.value.clone(),
            kind: "scripted",
            wanted: String::new(),
            permanent: current.clone(),
            current,
            apps: Vec::new(),
            locked_by: None,
            mid_change: false,
            last_run: None,
            unreadable,
            drift,
        }
    }

    fn lock_held(&self) -> Option<Problem> {
        // Nothing of fleetup's own is there to lock: the plan's commands do the change.
        None
    }

    fn over_ssh(&self) -> Option<&crate::plan::SshAddr> {
        self.t.ssh.as_ref().map(|a| &a.value)
    }

    fn open<'s>(&'s self, cx: &'s Cx<'s>) -> Result<(Box<dyn Change + 's>, Standing), Problem> {
        let mut on = self.on(cx.hosts, true)?;
        let from = self.running(&mut on)?;
        if let Some(pin) = &self.t.from
            && pin.value != from
            && from != self.t.to.value
        {
            return Err(Problem::new(
                Code::FromMismatch,
                format!(
                    "the plan pins from {} but `{}` runs {from}",
                    pin.value,
                    self.name()
                ),
            ));
        }
        let reached = (from == self.t.to.value).then(|| format!("already runs {from}"));
        if reached.is_none()
            && let Some(p) = self.rules(&from).into_iter().next()
        {
            return Err(p);
        }
        Ok((
            Box::new(ScriptedChange {
                unit: self,
                cx,
                on,
                from: from.clone(),
                undone: false,
            }),
            Standing {
                from: Some(from),
                reached,
                shown_from: None,
            },
        ))
    }

    fn back(&self, from: Option<&Version>) -> Back {
        Back::To(from.cloned())
    }

    fn moved_on(&self, cx: &Cx, left: &TargetResult) -> Option<String> {
        match self
            .on(cx.hosts, false)
            .and_then(|mut on| self.running(&mut on))
        {
            Ok(v) if v.to_string() == left.to || left.from.as_deref() == Some(&v.to_string()) => {
                None
            }
            Ok(v) => Some(format!(
                "runs {v} now, not {} where the run left it",
                left.to
            )),
            Err(p) => Some(format!("its version cannot be read: {}", p.message)),
        }
    }

    fn roll_back(&self, cx: &Cx, from: Option<&Version>) -> Result<String, Problem> {
        let Some(prev) = from else {
            return Err(Problem::new(
                Code::RollbackFailed,
                "the run did not record what it came from",
            ));
        };
        let mut on = self.on(cx.hosts, false)?;
        let now = self.running(&mut on)?;
        if now == *prev {
            return Ok(format!("already back on {prev}"));
        }
        cx.step(self.name(), Step::RollBack(Back::To(Some(prev.clone()))));
        self.go_back(&mut on, prev, &now)?;
        self.health(&mut on, prev, Some(&now))
            .map_err(|h| Problem::new(Code::RollbackFailed, h))?;
        let hooks: Vec<String> = [Lifecycle::OnRollback, Lifecycle::After]
            .into_iter()
            .filter_map(|w| {
                self.lifecycle(cx, &mut on, w, prev, Some(&now))
                    .err()
                    .map(|p| p.message)
            })
            .collect();
        if !hooks.is_empty() {
            return Err(Problem::new(
                Code::HookFailed,
                format!("back on {prev}, but {}", hooks.join("; ")),
            ));
        }
        Ok(format!("back on {prev}"))
    }
}

struct ScriptedChange<'s> {
    unit: &'s ScriptedUnit<'s>,
    cx: &'s Cx<'s>,
    /// Where its commands run, for the whole change (its turn on its host).
    on: On,
    from: Version,
    /// It was put back on `from` (after a failed check).
    undone: bool,
}

impl Change for ScriptedChange<'_> {
    fn hook(&mut self, which: Lifecycle) -> Result<(), Problem> {
        let (u, to) = (self.unit, &self.unit.t.to.value);
        // Before and after a change it goes to `to`; after a rollback it is on `from`.
        let (on, previous) = match which {
            Lifecycle::OnRollback => (&self.from, Some(to)),
            Lifecycle::After if self.undone => (&self.from, Some(to)),
            _ => (to, Some(&self.from)),
        };
        u.lifecycle(self.cx, &mut self.on, which, on, previous)
    }

    fn change(&mut self) -> Result<(), ChangeError> {
        let (u, to) = (self.unit, &self.unit.t.to.value);
        self.cx.step(
            u.name(),
            Step::Install {
                from: Some(self.from.clone()),
                to: to.clone(),
            },
        );
        let vars = u.vars(Some(to), Some(&self.from));
        let said = match u.run(&mut self.on, "upgrade", &u.t.upgrade, &vars) {
            Ok(said) => said,
            // What a failed upgrade command left is not known: read it again.
            Err(problem) => {
                return Err(match u.running(&mut self.on) {
                    Ok(v) if v == self.from => {
                        // Still where it was: `after` runs on `from`.
                        self.undone = true;
                        ChangeError::Failed {
                            problem,
                            attention: false,
                        }
                    }
                    _ => ChangeError::Unhealthy(problem),
                });
            }
        };
        for line in said.lines().filter(|l| !l.trim().is_empty()) {
            self.cx.step(u.name(), Step::Store(line.to_owned()));
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), Problem> {
        let (u, to) = (self.unit, &self.unit.t.to.value);
        let now = u.running(&mut self.on)?;
        if now != *to {
            return Err(Problem::new(
                Code::Unhealthy,
                format!("it runs {now} after its upgrade, not {to}"),
            ));
        }
        if u.t.health.is_none() {
            return Ok(());
        }
        self.cx.step(u.name(), Step::HealthChecking);
        u.health(&mut self.on, to, Some(&self.from)).map_err(|why| {
            self.cx
                .step(u.name(), Step::HealthFailed { why: why.clone() });
            Problem::new(Code::Unhealthy, why)
        })
    }

    fn undo(&mut self) -> Result<String, Problem> {
        let u = self.unit;
        u.go_back(&mut self.on, &self.from, &u.t.to.value)?;
        self.undone = true;
        Ok(format!("; back on {}", self.from))
    }

    fn commit(&mut self) -> Result<String, Problem> {
        let u = self.unit;
        Ok(match &u.t.health {
            Some(_) => format!("runs {} (healthy)", u.t.to.value),
            None => format!("runs {} (no health check configured)", u.t.to.value),
        })
    }
}
