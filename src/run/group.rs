//! An app group as a target of a run: each of its apps upgraded from the market as
//! `fleetup group upgrade` would (deploy hook and health check per service, a record per
//! upgrade), in plan order; undone by rolling back the group's last upgrade.

use semver::Version;

use super::event::{Back, Step};
use super::preview::Preview;
use super::row::{AppStatus, TargetStatus};
use super::target::{Change, ChangeError, Cx, Lifecycle, Standing, Target};
use crate::diagnostics::{Code, Problem};
use crate::group::{self, Group, Market};
use crate::plan::{AppTarget, GroupTarget, Plan};

pub struct GroupUnit<'p> {
    plan: &'p Plan,
    g: &'p GroupTarget,
}

impl<'p> GroupUnit<'p> {
    pub fn new(plan: &'p Plan, g: &'p GroupTarget) -> Self {
        GroupUnit { plan, g }
    }

    /// The group's own `vars`, filled.
    fn vars(&self) -> std::collections::BTreeMap<String, String> {
        let env = |k: &str| std::env::var(k).ok();
        self.g
            .vars
            .iter()
            .filter_map(|(k, t)| Some((k.clone(), t.render(|_| None, env).ok()?)))
            .collect()
    }

    fn ctx<'s>(&self, cx: &Cx, say: &'s mut dyn FnMut(String)) -> group::Ctx<'s> {
        let g = self.g;
        let vars = self.vars();
        group::Ctx {
            say,
            hooks: group::Hooks {
                deploy: g
                    .hooks
                    .command
                    .as_ref()
                    .map(|c| c.iter().map(|t| t.value.clone()).collect()),
                remove: g
                    .hooks
                    .remove
                    .as_ref()
                    .map(|c| c.iter().map(|t| t.value.clone()).collect()),
                timeout: g.hooks.timeout,
                health: g.health.clone(),
                vars,
                group: g.name.value.clone(),
                render: g.render,
                overrides: g.overrides.clone(),
                secrets: self.plan.secrets(),
            },
            lock_wait: cx.lock_wait,
            run: Some(cx.run_id.to_owned()),
        }
    }

    fn group(&self) -> Group {
        Group::new(&self.g.root.value)
    }

    /// Runs the group's lifecycle hook `which` here, if it has one, with the group's
    /// placeholders; what a failure says shows secrets as written, never their values.
    fn lifecycle(&self, cx: &Cx, which: Lifecycle) -> Result<(), Problem> {
        let Some(argv) = which.argv(&self.g.hooks) else {
            return Ok(());
        };
        cx.step(self.name(), Step::Hook(which.as_str()));
        let mut vars = self.vars();
        vars.insert("name".into(), self.g.name.value.clone());
        vars.insert("group".into(), self.g.name.value.clone());
        let root = self.g.root.value.display().to_string();
        vars.insert("root".into(), root.clone());
        let filled = which.fill(argv, &vars)?;
        let hook_env = [
            ("FLEETUP_GROUP", self.g.name.value.clone()),
            ("FLEETUP_HOOK", which.as_str().to_owned()),
            ("FLEETUP_ROOT", root),
        ];
        // A hook's output may echo what it was given: the plan's secrets are hidden.
        crate::hook::run(&filled, &hook_env, self.g.hooks.timeout)
            .map_err(|e| which.failed(self.plan.secrets().hide(&e.to_string())))
    }

    /// The services an app's entry picks (`None`: all of them).
    fn picked(a: &AppTarget) -> Option<Vec<String>> {
        a.services
            .as_ref()
            .map(|v| v.iter().map(|s| s.value.clone()).collect())
    }

    /// Whether the app is on the entry's target, every service it picks included (a
    /// partial upgrade is not: the same upgrade again completes it).
    fn reached(installed: &group::InstalledApp, a: &AppTarget) -> bool {
        let picked = Self::picked(a);
        installed.version == a.to.value
            && installed
                .running
                .iter()
                .all(|(s, v)| *v == a.to.value || picked.as_ref().is_some_and(|p| !p.contains(s)))
    }

    /// An app's installed version when it still needs its upgrade (an unfinished
    /// record counts as needing it); `None` when it is at its target.
    /// The plan's apps as group `grp` has them now (`mall 1.0.0`), those it has.
    fn apps_now(&self, grp: &Group) -> Option<String> {
        let st = grp.state().ok()?;
        let apps: Vec<String> = self
            .g
            .apps
            .iter()
            .filter_map(|a| {
                st.app(&a.app.value)
                    .map(|i| format!("{} {}", i.app, i.version))
            })
            .collect();
        (!apps.is_empty()).then(|| apps.join(", "))
    }

    fn pending(grp: &Group, a: &AppTarget) -> Option<Option<Version>> {
        let installed = grp.state().ok().and_then(|s| s.app(&a.app.value).cloned());
        let unfinished = grp
            .records()
            .last()
            .is_some_and(|r| r.status == group::Status::InProgress);
        let reached = installed.as_ref().is_some_and(|i| Self::reached(i, a));
        (!reached || unfinished).then(|| installed.map(|i| i.version))
    }
}

impl Target for GroupUnit<'_> {
    fn name(&self) -> &str {
        &self.g.name.value
    }

    fn to(&self) -> String {
        self.g
            .apps
            .iter()
            .map(|a| format!("{} {}", a.app.value, a.to.value))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn preview(&self) -> Preview {
        let g = self.g;
        let grp = self.group();
        let market = Market::new(&g.market.value);
        let installed = grp.state().ok();
        let mut services = Vec::new();
        let mut verdicts = Vec::new();
        let mut open = false;
        let mut from = Vec::new();
        for a in &g.apps {
            let app = installed.as_ref().and_then(|s| s.app(&a.app.value));
            let cur = app.map(|x| x.version.clone());
            from.push(format!(
                "{} {}",
                a.app.value,
                cur.as_ref()
                    .map_or("(not installed)".into(), |v| v.to_string())
            ));
            if app.is_some_and(|x| Self::reached(x, a)) {
                verdicts.push(format!("{}: already at {}", a.app.value, a.to.value));
                continue;
            }
            let picked = Self::picked(a);
            match grp.preview(
                &market,
                &a.app.value,
                &a.to.value,
                picked.as_deref(),
                self.plan.policy,
                &self.g.overrides,
            ) {
                Ok((_, _, d, picked)) => {
                    verdicts.push(format!("{}: passed", a.app.value));
                    for sd in d {
                        services.push(format!(
                            "{} {} {}{}{}",
                            sd.change.marker(),
                            sd.service,
                            sd.change.as_str(),
                            sd.not_picked(&picked),
                            sd.details_after(": ")
                        ));
                    }
                }
                Err(p) => {
                    open = true;
                    verdicts.push(format!(
                        "{}: cannot be previewed: {}",
                        a.app.value, p.message
                    ))
                }
            }
        }
        Preview {
            target: g.name.value.clone(),
            kind: "group",
            from: Some(from.join(", ")),
            from_source: "live",
            to: self.to(),
            package: None,
            rules: verdicts.join("; "),
            open,
            services,
        }
    }

    fn status(&self) -> TargetStatus {
        row(self.g)
    }

    fn analysis_vars(&self) -> Option<std::collections::BTreeMap<String, String>> {
        let mut vars = self.vars();
        vars.insert("name".into(), self.g.name.value.clone());
        vars.insert("group".into(), self.g.name.value.clone());
        vars.insert("root".into(), self.g.root.value.display().to_string());
        Some(vars)
    }

    fn lock_held(&self) -> Option<Problem> {
        let root = &self.g.root.value;
        if !root.is_dir() {
            return None;
        }
        crate::lock::held(root, &format!("the group `{}`", self.g.name.value))
    }

    fn open<'s>(&'s self, cx: &'s Cx<'s>) -> Result<(Box<dyn Change + 's>, Standing), Problem> {
        // Each app's upgrade takes the group's lock itself, as `fleetup group upgrade` does.
        let grp = self.group();
        let reached = (!self.g.apps.iter().any(|a| Self::pending(&grp, a).is_some()))
            .then(|| "every app already at its target".to_owned());
        let shown_from = self.apps_now(&grp);
        let change = GroupChange {
            unit: self,
            cx,
            grp,
            changed: Vec::new(),
            failed: None,
        };
        Ok((
            Box::new(change),
            Standing {
                from: None,
                reached,
                shown_from,
            },
        ))
    }

    fn back(&self, _: Option<&Version>) -> Back {
        Back::LastUpgrade
    }

    fn moved_on(&self, cx: &Cx, _: &super::event::TargetResult) -> Option<String> {
        let records = self.group().records();
        let last = records
            .iter()
            .rev()
            .find(|r| r.kind == group::RecordKind::Upgrade)?;
        if let Some(by) = &last.undone_by {
            return Some(format!(
                "its last upgrade, record {}, was already rolled back by record {by}",
                last.id
            ));
        }
        let ours = |r: &group::Record| r.run.as_deref() == Some(cx.run_id);
        match &last.run {
            _ if ours(last) => None,
            Some(run) => Some(format!(
                "its last upgrade, record {}, was made by run {run}, not this one",
                last.id
            )),
            // By hand, after this run's own upgrade.
            None if records.iter().any(ours) => Some(format!(
                "its last upgrade, record {}, was made by hand after this run",
                last.id
            )),
            // Records of fleetup 0.1 do not say which run made them: taken as this one's.
            None => None,
        }
    }

    fn roll_back(&self, cx: &Cx, _: Option<&Version>) -> Result<String, Problem> {
        let name = self.name();
        let mut say = |l: String| cx.step(name, Step::Group(l));
        let mut ctx = self.ctx(cx, &mut say);
        let grp = self.group();
        // Every app this run upgraded, newest first; records of fleetup 0.1 name no run:
        // the group's last upgrade is taken as this run's.
        let done = if grp
            .records()
            .iter()
            .any(|r| r.run.as_deref() == Some(cx.run_id))
        {
            grp.rollback_run(cx.run_id, &mut ctx)?
        } else {
            vec![grp.rollback(None, None, &mut ctx)?]
        };
        if let Some(r) = done.iter().find(|r| r.status != group::Status::RolledBack) {
            return Err(incomplete(r));
        }
        if done.is_empty() {
            return Err(Problem::new(
                Code::GroupRollback,
                "nothing this run upgraded is left to roll back",
            ));
        }
        drop(ctx);
        let hooks: Vec<String> = [Lifecycle::OnRollback, Lifecycle::After]
            .into_iter()
            .filter_map(|w| self.lifecycle(cx, w).err().map(|p| p.message))
            .collect();
        if !hooks.is_empty() {
            return Err(Problem::new(
                Code::HookFailed,
                format!("rolled back, but {}", hooks.join("; ")),
            ));
        }
        Ok(format!(
            "rolled back by record{} {}",
            if done.len() == 1 { "" } else { "s" },
            done.iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// A rollback record that did not put everything back.
fn incomplete(r: &group::Record) -> Problem {
    Problem::new(
        Code::RollbackFailed,
        format!("record {}: {}", r.id, r.status.as_str()),
    )
}

struct GroupChange<'s> {
    unit: &'s GroupUnit<'s>,
    cx: &'s Cx<'s>,
    grp: Group,
    /// One line per app upgraded, for the report.
    changed: Vec<String>,
    /// The status of the app upgrade that failed.
    failed: Option<group::Status>,
}

impl Change for GroupChange<'_> {
    fn hook(&mut self, which: Lifecycle) -> Result<(), Problem> {
        self.unit.lifecycle(self.cx, which)
    }

    fn change(&mut self) -> Result<(), ChangeError> {
        let (unit, cx) = (self.unit, self.cx);
        let name = unit.name();
        let market = Market::new(&unit.g.market.value);
        let mut say = |l: String| cx.step(name, Step::Group(l));
        let mut ctx = unit.ctx(cx, &mut say);
        for a in &unit.g.apps {
            let Some(installed) = GroupUnit::pending(&self.grp, a) else {
                continue;
            };
            cx.step(
                name,
                Step::Upgrade {
                    app: a.app.value.clone(),
                    from: installed,
                    to: a.to.value.clone(),
                },
            );
            let picked = GroupUnit::picked(a);
            let rec = self
                .grp
                .upgrade(
                    &market,
                    &a.app.value,
                    &a.to.value,
                    picked.as_deref(),
                    unit.plan.policy,
                    &mut ctx,
                )
                .map_err(|p| ChangeError::Failed {
                    problem: p,
                    attention: false,
                })?;
            if rec.status != group::Status::Upgraded {
                self.failed = Some(rec.status);
                return Err(ChangeError::Unhealthy(Problem::new(
                    Code::GroupDeploy,
                    format!(
                        "{} {} → {}: {}",
                        rec.app,
                        rec.from,
                        rec.to,
                        rec.status.as_str()
                    ),
                )));
            }
            self.changed.push(format!(
                "{} {} → {} (record {})",
                rec.app, rec.from, rec.to, rec.id
            ));
        }
        Ok(())
    }

    /// Each service was checked as it was deployed (`group upgrade` does it).
    fn check(&mut self) -> Result<(), Problem> {
        Ok(())
    }

    fn undo(&mut self) -> Result<String, Problem> {
        let (unit, cx) = (self.unit, self.cx);
        let name = unit.name();
        let mut say = |l: String| cx.step(name, Step::Group(l));
        let mut ctx = unit.ctx(cx, &mut say);
        // Every app of the group this run upgraded, the failed one first.
        let done = self.grp.rollback_run(cx.run_id, &mut ctx)?;
        if let Some(rb) = done.iter().find(|r| r.status != group::Status::RolledBack) {
            return Err(incomplete(rb));
        }
        if done.is_empty() {
            // A failed upgrade that changed nothing has nothing to roll back.
            return Ok("; nothing had changed".into());
        }
        Ok(format!(
            "; rolled back by record{} {}",
            if done.len() == 1 { "" } else { "s" },
            done.iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    fn commit(&mut self) -> Result<String, Problem> {
        Ok(self.changed.join("; "))
    }
}

/// The row of group `g`.
fn row(g: &GroupTarget) -> TargetStatus {
    let grp = crate::group::Group::new(&g.root.value);
    let mut s = TargetStatus {
        target: g.name.value.clone(),
        kind: "group",
        wanted: String::new(),
        current: None,
        permanent: None,
        apps: Vec::new(),
        locked_by: crate::lock::holder_of(&g.root.value),
        mid_change: grp
            .records()
            .last()
            .is_some_and(|r| r.status == crate::group::Status::InProgress),
        last_run: None,
        unreadable: None,
        drift: Vec::new(),
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
    let unowned = grp.unowned_services();
    if !unowned.is_empty() {
        s.drift.push(format!(
            "deployed, but no installed app has them: {} (added by a failed upgrade; they may still run)",
            unowned.join(", ")
        ));
    }
    if let Some(e) = &s.unreadable {
        s.drift.push(format!("not readable: {e}"));
    } else {
        for a in &g.apps {
            let to = a.to.value.to_string();
            match s.apps.iter().find(|x| x.app == a.app.value) {
                None => s.drift.push(format!(
                    "{} is not installed; the plan says {to}",
                    a.app.value
                )),
                Some(x) if x.version != to => s
                    .drift
                    .push(format!("{} {}; the plan says {to}", a.app.value, x.version)),
                Some(x) if !x.running.is_empty() => s.drift.push(format!(
                    "{} {to}, but {} on another version",
                    a.app.value,
                    x.running
                        .iter()
                        .map(|(svc, v)| format!("{svc} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some(_) => {}
            }
        }
    }
    s
}
/// The groups' preflight, changing nothing: each group's market is there, and holds
/// every app's target version with a template that parses.
pub fn preflight(plan: &Plan) -> Vec<Problem> {
    let mut out = Vec::new();
    for g in &plan.groups {
        if !g.market.value.is_dir() {
            out.push(
                Problem::new(
                    Code::Path,
                    format!(
                        "group `{}`: its market directory `{}` is missing or not a directory",
                        g.name.value,
                        g.market.value.display()
                    ),
                )
                .at(g.market.span)
                .label("no such directory"),
            );
            continue;
        }
        let market = crate::group::Market::new(&g.market.value);
        for a in &g.apps {
            // The template must exist and parse: the same reading `apply` does.
            if let Err(p) = market.template(&a.app.value, &a.to.value) {
                let label = if p.code == Code::MarketMissing {
                    "not in the market"
                } else {
                    "template does not parse"
                };
                out.push(p.at(a.to.span).label(label));
            }
        }
    }
    out
}
