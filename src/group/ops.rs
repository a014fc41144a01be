//! What a group does: install an app, preview and run an upgrade (backup, record,
//! deploy per service), and roll back the last upgrade.

use super::*;

/// A deploy or remove hook's word `t`, its placeholders filled from `vars` and its
/// `${VAR}`s from the environment.
fn fill_hook(t: &Template, vars: &BTreeMap<String, String>) -> Result<String, String> {
    t.render(|k| vars.get(k).cloned(), |e| std::env::var(e).ok())
        .map_err(|m| format!("`{t}` cannot be filled: {m:?}"))
}

impl Group {
    /// Writes a service's spec, runs the deploy hook and the health check; what failed,
    /// in words with no secret value in them (the hook's output included), for records
    /// and outputs alike.
    fn deploy(
        &self,
        app: &str,
        service: &str,
        spec: &ServiceSpec,
        v: &Version,
        prev: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), String> {
        self.deploy_unhidden(app, service, spec, v, prev, ctx)
            .map_err(|e| ctx.hooks.secrets.hide(&e))
    }

    /// What fills a deploy or remove hook's placeholders for `service`, whose spec is at
    /// `path`.
    fn hook_vars(
        &self,
        app: &str,
        service: &str,
        path: &Path,
        v: &Version,
        prev: &Version,
        hooks: &Hooks,
    ) -> BTreeMap<String, String> {
        let abs = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_owned())
                .display()
                .to_string()
        };
        let mut vars = hooks.vars.clone();
        for (k, val) in [
            ("name", hooks.group.clone()),
            ("group", hooks.group.clone()),
            ("root", abs(&self.root)),
            ("app", app.to_owned()),
            ("service", service.to_owned()),
            ("spec", abs(path)),
            ("version", v.to_string()),
            ("previous", prev.to_string()),
        ] {
            vars.insert(k.into(), val);
        }
        vars
    }

    /// Undeploys `service` (added by the upgrade to `v`, failed) through the remove
    /// hook, given the spec that was deployed; then its spec is removed. Without the
    /// hook, nothing can undeploy it: its spec is kept. The record's words either way.
    fn remove_added(
        &self,
        app: &str,
        service: &str,
        v: &Version,
        failure: &str,
        ctx: &mut Ctx,
    ) -> String {
        let path = self.spec_path(service);
        let Some(cmd) = ctx.hooks.remove.clone() else {
            (ctx.say)(format!(
                "! {service}: kept (added by this upgrade; no remove hook)"
            ));
            return format!(
                "{failure}; added by this upgrade and kept: no remove hook undeploys it, so it may still run"
            );
        };
        let vars = self.hook_vars(app, service, &path, v, v, &ctx.hooks);
        let fill = |t: &Template| fill_hook(t, &vars);
        let ran = cmd
            .iter()
            .map(fill)
            .collect::<Result<Vec<_>, _>>()
            .and_then(|argv| {
                crate::hook::run(&argv, &[], ctx.hooks.timeout).map_err(|e| e.to_string())
            })
            .map_err(|e| ctx.hooks.secrets.hide(&e));
        match ran {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                (ctx.say)(format!("- {service}: removed through the remove hook"));
                format!("{failure}; removed through the remove hook")
            }
            Err(e) => {
                (ctx.say)(format!("! {service}: the remove hook failed: {e}"));
                format!("{failure}; the remove hook failed too ({e}): its spec is kept")
            }
        }
    }

    fn deploy_unhidden(
        &self,
        app: &str,
        service: &str,
        spec: &ServiceSpec,
        v: &Version,
        prev: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), String> {
        let path = self
            .write_spec(service, spec, &ctx.hooks)
            .map_err(|p| p.message)?;
        let vars = self.hook_vars(app, service, &path, v, prev, &ctx.hooks);
        let fill = |t: &Template| fill_hook(t, &vars);
        let show = |t: &Template| t.shown(|k| vars.get(k).cloned());
        if let Some(cmd) = &ctx.hooks.deploy {
            let argv = cmd.iter().map(fill).collect::<Result<Vec<_>, _>>()?;
            let shown: Vec<String> = cmd.iter().map(show).collect();
            crate::hook::run(&argv, &[], ctx.hooks.timeout)
                .map_err(|e| format!("deploy hook `{}` failed: {e}", shown.join(" ")))?;
        }
        if let Some(h) = &ctx.hooks.health {
            let probe = h.probe(fill)?;
            probe
                .wait(h.timing(false))
                .map_err(|e| format!("health: {}", h.hide(&probe, &e, show)))?;
        }
        Ok(())
    }

    /// `fleetup group install`: the first install of an app into the group.
    pub fn install(
        &self,
        market: &Market,
        app: &str,
        v: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), Problem> {
        check_app_name(app)?;
        std::fs::create_dir_all(&self.root).map_err(|e| io(&self.root, e))?;
        let _lock = self.lock(ctx)?;
        let mut st = self.state()?;
        if let Some(a) = st.app(app) {
            return Err(Problem::new(
                Code::GroupState,
                format!("{app} {} is already installed in this group", a.version),
            )
            .help(format!(
                "upgrade it with `fleetup group upgrade {app} --to VSN`"
            )));
        }
        let t = market.template(app, v)?;
        for s in t.services.keys() {
            if let Some(other) = st.apps.iter().find(|a| a.services.contains_key(s)) {
                return Err(Problem::new(
                    Code::GroupState,
                    format!(
                        "service `{s}` already belongs to app {} in this group",
                        other.app
                    ),
                ));
            }
        }
        let mut deployed: Vec<&str> = Vec::new();
        for (name, spec) in &t.services {
            (ctx.say)(format!("+ {name}: deploying {}", spec.image));
            if let Err(e) = self.deploy(app, name, spec, v, v, ctx) {
                // A failed install records nothing, so the specs it wrote go too: the
                // group's files keep saying what group.toml says.
                for s in deployed.iter().copied().chain([name.as_str()]) {
                    let _ = std::fs::remove_file(self.spec_path(s));
                }
                let p = Problem::new(
                    Code::GroupDeploy,
                    format!("installing {app} {v}: service `{name}`: {e}"),
                );
                return Err(if deployed.is_empty() {
                    p.help("nothing was installed; fix the cause and install again")
                } else {
                    p.help(format!(
                        "nothing was recorded and the specs written were removed, but {} already went through the deploy hook: undo that by hand if it left them running, then install again",
                        deployed.join(", ")
                    ))
                });
            }
            deployed.push(name);
        }
        st.format = 1;
        st.apps.push(InstalledApp {
            app: app.into(),
            version: v.clone(),
            services: t.services.clone(),
            running: BTreeMap::new(),
            digest: Some(t.digest.clone()),
        });
        self.save_state(&st)?;
        (ctx.say)(format!(
            "Installed {app} {v} ({} services)",
            t.services.len()
        ));
        Ok(())
    }

    /// Works out an upgrade without changing anything: the diff and the services picked.
    pub fn preview(
        &self,
        market: &Market,
        app: &str,
        to: &Version,
        services: Option<&[String]>,
        policy: VersionPolicy,
        overrides: &BTreeMap<String, crate::plan::ServiceOverride>,
    ) -> Result<(InstalledApp, AppTemplate, Vec<ServiceDiff>, Vec<String>), Problem> {
        check_app_name(app)?;
        let st = self.state()?;
        let installed = st.app(app).cloned().ok_or_else(|| {
            Problem::new(
                Code::GroupState,
                format!("app `{app}` is not installed in this group"),
            )
            .help("install it first with `fleetup group install`")
        })?;
        // The same version again completes a partial upgrade: the services it left behind
        // (failed, or not picked) are what is left to do.
        let completing = &installed.version == to;
        if !completing
            && let Some(v) = package::check_versions(&installed.version, to, policy)
                .into_iter()
                .next()
        {
            return Err(Problem::new(v.code, format!("{app}: {}", v.message)));
        }
        let t = market.template(app, to)?;
        let d = diff(&installed.services, &t, overrides);
        if completing
            && !d
                .iter()
                .any(|s| matches!(s.change, Change::Upgrade | Change::Add))
        {
            return Err(Problem::new(
                Code::GroupState,
                format!("{app} is already at {to}"),
            ));
        }
        let candidates: Vec<&ServiceDiff> = d
            .iter()
            .filter(|s| matches!(s.change, Change::Upgrade | Change::Add))
            .collect();
        let picked: Vec<String> = match services {
            None => candidates.iter().map(|s| s.service.clone()).collect(),
            Some(list) => {
                for s in list {
                    match d.iter().find(|x| &x.service == s) {
                        None => {
                            return Err(Problem::new(
                                Code::GroupState,
                                format!("{app} {to} has no service `{s}`"),
                            ));
                        }
                        Some(x) if !matches!(x.change, Change::Upgrade | Change::Add) => {
                            return Err(Problem::new(
                                Code::GroupState,
                                format!(
                                    "service `{s}` has nothing to upgrade ({})",
                                    x.change.as_str()
                                ),
                            ));
                        }
                        _ => {}
                    }
                }
                list.to_vec()
            }
        };
        if picked.is_empty() {
            return Err(Problem::new(
                Code::GroupState,
                format!(
                    "{app} {} → {to} changes no service: nothing to upgrade",
                    installed.version
                ),
            ));
        }
        Ok((installed, t, d, picked))
    }

    fn backup(&self, id: &str) -> Result<(), Problem> {
        let dir = self.root.join("backups").join(id);
        let tmp = self.root.join("backups").join(format!(".{id}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("services")).map_err(|e| io(&tmp, e))?;
        let gt = self.root.join("group.toml");
        if gt.exists() {
            std::fs::copy(&gt, tmp.join("group.toml")).map_err(|e| io(&gt, e))?;
        }
        for e in std::fs::read_dir(self.root.join("services"))
            .into_iter()
            .flatten()
            .flatten()
        {
            std::fs::copy(e.path(), tmp.join("services").join(e.file_name()))
                .map_err(|err| io(&e.path(), err))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
        crate::fsutil::sync_dir(&self.root.join("backups")).map_err(|e| io(&dir, e))
    }

    /// `fleetup group upgrade`: backs the group up, deploys each picked service, records it.
    /// An unfinished upgrade of the same app to the same version (a killed run) is
    /// finished instead: its pending services are deployed and its record completed.
    pub fn upgrade(
        &self,
        market: &Market,
        app: &str,
        to: &Version,
        services: Option<&[String]>,
        policy: VersionPolicy,
        ctx: &mut Ctx,
    ) -> Result<Record, Problem> {
        let _lock = self.lock(ctx)?;
        let (mut rec, installed, t) = match self.records().pop() {
            // A run's upgrade needs that run's deploy hook and health check: by hand (no
            // run) it is finished by `fleetup resume`, never without them.
            Some(last)
                if last.status == Status::InProgress && last.run.is_some() && ctx.run.is_none() =>
            {
                let run = last.run.clone().unwrap_or_default();
                return Err(Problem::new(
                    Code::GroupState,
                    format!(
                        "record {} ({} of {} to {}) was started by run {run} and is unfinished",
                        last.id, last.kind, last.app, last.to
                    ),
                )
                .help(format!(
                    "finish it with `fleetup resume {run}`, which deploys with the plan's hooks and checks"
                )));
            }
            Some(last)
                if last.status == Status::InProgress
                    && last.kind == RecordKind::Upgrade
                    && last.app == app
                    && &last.to == to =>
            {
                (ctx.say)(format!(
                    "Finishing the interrupted upgrade {} of {app} to {to}",
                    last.id
                ));
                let before = self.backup_state(&last.id)?;
                let installed = before.app(app).cloned().ok_or_else(|| {
                    Problem::new(
                        Code::GroupState,
                        format!("the backup of {} does not hold {app}", last.id),
                    )
                })?;
                let t = market.template(app, to)?;
                (last, installed, t)
            }
            Some(last) if last.status == Status::InProgress => {
                return Err(Problem::new(
                    Code::GroupState,
                    format!("record {} ({} of {} to {}) is unfinished", last.id, last.kind, last.app, last.to),
                )
                .help("finish it by running the same upgrade again, or roll it back with `fleetup group rollback`"));
            }
            _ => {
                let (installed, t, d, picked) =
                    self.preview(market, app, to, services, policy, &ctx.hooks.overrides)?;
                // Completing a partial upgrade starts from where the services it deploys are.
                let from = if &installed.version == to {
                    picked
                        .iter()
                        .map(|s| installed.version_of(s))
                        .min()
                        .unwrap_or(&installed.version)
                        .clone()
                } else {
                    installed.version.clone()
                };
                let id = self.next_id()?;
                self.backup(&id)?;
                (ctx.say)(format!("Backed up the group as backups/{id}"));
                let rec = Record {
                    id,
                    kind: RecordKind::Upgrade,
                    app: app.into(),
                    from,
                    to: to.clone(),
                    status: Status::InProgress,
                    services: d
                        .iter()
                        .map(|s| ServiceOutcome {
                            service: s.service.clone(),
                            change: s.change,
                            details: s.details.clone(),
                            result: match s.change {
                                Change::Kept => ServiceResult::Kept,
                                Change::Unchanged => ServiceResult::Unchanged,
                                _ if picked.contains(&s.service) => ServiceResult::Pending,
                                _ => ServiceResult::NotPicked,
                            },
                        })
                        .collect(),
                    started: now(),
                    finished: None,
                    undoes: None,
                    undone_by: None,
                    run: ctx.run.clone(),
                    republished: &installed.version == to
                        && installed.digest.as_ref().is_some_and(|d| *d != t.digest),
                };
                self.save_record(&rec)?;
                (rec, installed, t)
            }
        };
        let pending: Vec<(String, Change)> = rec
            .services
            .iter()
            .filter(|s| s.result == ServiceResult::Pending)
            .map(|s| (s.service.clone(), s.change))
            .collect();
        for (name, change) in pending {
            let Some(spec) = t.services.get(&name) else {
                continue;
            };
            (ctx.say)(format!(
                "{} {name}: deploying {}",
                change.marker(),
                spec.image
            ));
            let was = installed.version_of(&name).clone();
            let result = self.deploy(app, &name, spec, to, &was, ctx);
            let outcome = match result {
                Ok(()) => {
                    (ctx.say)(format!("{} {name}: upgraded", change.marker()));
                    ServiceResult::Done
                }
                Err(e) => {
                    (ctx.say)(format!("{} {name}: failed: {e}", change.marker()));
                    ServiceResult::Failed(self.restore(app, &name, &installed, to, &e, ctx))
                }
            };
            if let Some(s) = rec.services.iter_mut().find(|s| s.service == name) {
                s.result = outcome;
            }
            self.save_record(&rec)?;
        }
        // group.toml follows the record: every service it marks done has the new spec and
        // runs the new version; the others keep theirs.
        let mut st = self.state()?;
        let done: Vec<&ServiceOutcome> = rec
            .services
            .iter()
            .filter(|s| s.result == ServiceResult::Done)
            .collect();
        let failed = rec.services.iter().filter(|s| s.result.is_failed()).count();
        if let Some(a) = st.app_mut(app) {
            let mut each = a.versions();
            for s in &done {
                if let Some(spec) = t.services.get(&s.service) {
                    a.services.insert(s.service.clone(), spec.clone());
                    each.insert(s.service.clone(), to.clone());
                }
            }
            // A service whose spec the new version leaves as it is is on it too.
            if !done.is_empty() {
                for s in rec
                    .services
                    .iter()
                    .filter(|s| s.result == ServiceResult::Unchanged)
                {
                    each.insert(s.service.clone(), to.clone());
                }
            }
            let version = if done.is_empty() {
                a.version.clone()
            } else {
                a.digest = Some(t.digest.clone());
                to.clone()
            };
            a.set_versions(version, each);
        }
        self.save_state(&st)?;
        rec.status = match (done.len(), failed) {
            (_, 0) => Status::Upgraded,
            (0, _) => Status::UpgradeFailed,
            _ => Status::PartialUpgraded,
        };
        rec.finished = Some(now());
        self.save_record(&rec)?;
        (ctx.say)(format!(
            "Record {}: {app} {} → {to}: {}",
            rec.id,
            rec.from,
            rec.status.as_str()
        ));
        Ok(rec)
    }

    /// After a failed deploy of `name`: its previous spec written back and deployed again
    /// (the deploy hook and health check run, so the failed version does not stay up);
    /// the record's words for it. A service the upgrade added has nothing to go back to:
    /// it is removed through the remove hook, or kept and said to be.
    fn restore(
        &self,
        app: &str,
        name: &str,
        installed: &InstalledApp,
        to: &Version,
        failure: &str,
        ctx: &mut Ctx,
    ) -> String {
        let Some(prev) = installed.services.get(name) else {
            return self.remove_added(app, name, to, failure, ctx);
        };
        let was = installed.version_of(name).clone();
        (ctx.say)(format!("↺ {name}: restoring {}", prev.image));
        match self.deploy(app, name, prev, &was, to, ctx) {
            Ok(()) => {
                (ctx.say)(format!("↺ {name}: {was} deployed again"));
                format!("{failure}; {was} deployed again")
            }
            Err(e) => {
                (ctx.say)(format!("↺ {name}: deploying {was} again failed: {e}"));
                format!("{failure}; deploying {was} again failed too: {e}")
            }
        }
    }

    /// The group as it was before upgrade `id`, from its backup.
    fn backup_state(&self, id: &str) -> Result<GroupState, Problem> {
        std::fs::read_to_string(self.root.join("backups").join(id).join("group.toml"))
            .ok()
            .and_then(|t| toml::from_str(&t).ok())
            .ok_or_else(|| {
                Problem::new(
                    Code::GroupRollback,
                    format!("the backup of upgrade {id} is missing or damaged"),
                )
            })
    }

    /// Every upgrade fleet run `run` made in this group that has something left to roll
    /// back, rolled back whole, newest first: the rollback records (none when nothing is
    /// left). A plan that upgrades several apps of a group is undone app by app.
    pub fn rollback_run(&self, run: &str, ctx: &mut Ctx) -> Result<Vec<Record>, Problem> {
        let records = self.records();
        let ids: Vec<String> = records
            .iter()
            .rev()
            .filter(|r| r.kind == RecordKind::Upgrade && r.run.as_deref() == Some(run))
            .filter(|r| !left_to_roll_back(&records, r).is_empty())
            .map(|r| r.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            out.push(self.rollback(Some(&id), None, ctx)?);
        }
        Ok(out)
    }

    /// `fleetup group rollback`: undoes the last upgrade, for all or the chosen services.
    /// Services that upgrade added are never removed: they are reported as kept.
    pub fn rollback(
        &self,
        record: Option<&str>,
        services: Option<&[String]>,
        ctx: &mut Ctx,
    ) -> Result<Record, Problem> {
        let _lock = self.lock(ctx)?;
        let records = self.records();
        let upgrades: Vec<&Record> = records
            .iter()
            .filter(|r| r.kind == RecordKind::Upgrade)
            .collect();
        // Only the last upgrade of an app can be rolled back (apps of one group are
        // upgraded, and rolled back, each on its own).
        let newest_of = |app: &str| upgrades.iter().rev().find(|r| r.app == app).copied();
        let last = match record {
            Some(id) => {
                let Some(r) = upgrades.iter().find(|r| r.id == id) else {
                    return Err(Problem::new(
                        Code::GroupRollback,
                        format!("this group has no upgrade record `{id}`"),
                    )
                    .help("`fleetup group records` lists them"));
                };
                match newest_of(&r.app) {
                    Some(n) if n.id != r.id => {
                        return Err(Problem::new(
                            Code::GroupRollback,
                            format!(
                                "only the last upgrade can be rolled back: that is record {} ({} {} → {}), not {id}",
                                n.id, n.app, n.from, n.to
                            ),
                        ));
                    }
                    _ => (*r).clone(),
                }
            }
            // The newest last upgrade of an app that has something left to roll back,
            // else the newest (which then says it was rolled back already).
            None => {
                let lasts: Vec<&Record> = upgrades
                    .iter()
                    .rev()
                    .filter(|r| newest_of(&r.app).is_some_and(|n| n.id == r.id))
                    .copied()
                    .collect();
                let open = lasts
                    .iter()
                    .find(|r| r.undone_by.is_none() || !left_to_roll_back(&records, r).is_empty());
                match open.or(lasts.first()) {
                    Some(r) => (*r).clone(),
                    None => {
                        return Err(Problem::new(
                            Code::GroupRollback,
                            "this group has no upgrade to roll back",
                        ));
                    }
                }
            }
        };
        // An unfinished upgrade is finished first (or fails): rolling it back halfway
        // would leave the group saying one thing and its services another.
        if last.status == Status::InProgress {
            let how = match &last.run {
                Some(run) => format!("`fleetup resume {run}` finishes it with the plan's hooks"),
                None => format!(
                    "run the same upgrade again (`fleetup group upgrade {} --to {}`) to finish it",
                    last.app, last.to
                ),
            };
            return Err(Problem::new(
                Code::GroupRollback,
                format!(
                    "upgrade {} of {} to {} is unfinished and cannot be rolled back",
                    last.id, last.app, last.to
                ),
            )
            .help(format!("{how}; then roll it back")));
        }
        let before = self.backup_state(&last.id)?;
        let prev_app = before.app(&last.app).cloned();
        // What the upgrade changed: upgraded services go back (those an earlier, partial
        // rollback of it left); added ones are kept.
        let left = left_to_roll_back(&records, &last);
        if let Some(by) = &last.undone_by
            && left.is_empty()
        {
            return Err(Problem::new(
                Code::GroupRollback,
                format!("upgrade {} was already rolled back by record {by}", last.id),
            ));
        }
        let added: Vec<&ServiceOutcome> = last
            .services
            .iter()
            .filter(|s| {
                s.change == Change::Add
                    && s.result != ServiceResult::NotPicked
                    && s.result != ServiceResult::Pending
            })
            .collect();
        let chosen: Vec<String> = match services {
            None => left.iter().map(|s| s.service.clone()).collect(),
            Some(list) => {
                for s in list {
                    if !last.services.iter().any(|x| &x.service == s) {
                        return Err(Problem::new(
                            Code::GroupRollback,
                            format!("upgrade {} did not touch service `{s}`", last.id),
                        ));
                    }
                }
                list.iter()
                    .filter(|s| left.iter().any(|u| &u.service == *s))
                    .cloned()
                    .collect()
            }
        };
        if chosen.is_empty() {
            return Err(Problem::new(
                Code::GroupRollback,
                format!(
                    "nothing to roll back: upgrade {} changed none of the chosen services, or they are back already (added services are never removed)",
                    last.id
                ),
            ));
        }
        let id = self.next_id()?;
        let mut rec = Record {
            id: id.clone(),
            kind: RecordKind::Rollback,
            app: last.app.clone(),
            from: last.to.clone(),
            to: last.from.clone(),
            status: Status::InProgress,
            services: Vec::new(),
            started: now(),
            finished: None,
            undoes: Some(last.id.clone()),
            undone_by: None,
            run: ctx.run.clone(),
            republished: false,
        };
        self.save_record(&rec)?;
        let mut st = self.state()?;
        let (mut ok, mut failed) = (0, 0);
        for name in &chosen {
            let Some(spec) = prev_app
                .as_ref()
                .and_then(|a| a.services.get(name))
                .cloned()
            else {
                continue;
            };
            let was = prev_app
                .as_ref()
                .map_or(&last.from, |a| a.version_of(name))
                .clone();
            (ctx.say)(format!("↺ {name}: restoring {}", spec.image));
            let result = self.deploy(&last.app, name, &spec, &was, &last.to, ctx);
            let outcome = match result {
                Ok(()) => {
                    ok += 1;
                    if let Some(a) = st.app_mut(&last.app) {
                        a.services.insert(name.clone(), spec.clone());
                        let mut each = a.versions();
                        each.insert(name.clone(), was.clone());
                        let v = a.version.clone();
                        a.set_versions(v, each);
                    }
                    ServiceResult::Done
                }
                Err(e) => {
                    failed += 1;
                    ServiceResult::Failed(e.to_string())
                }
            };
            (ctx.say)(format!("↺ {name}: {outcome}"));
            rec.services.push(ServiceOutcome {
                service: name.clone(),
                change: Change::Upgrade,
                details: vec![format!("{was} deployed again")],
                result: outcome,
            });
            self.save_record(&rec)?;
        }
        for a in &added {
            (ctx.say)(format!(
                "+ {}: kept (added by the upgrade; a rollback never removes a service)",
                a.service
            ));
            rec.services.push(ServiceOutcome {
                service: a.service.clone(),
                change: Change::Kept,
                details: vec!["added by the upgrade".into()],
                result: ServiceResult::Kept,
            });
        }
        let all_back = failed == 0 && chosen.len() == left.len();
        // Every service back where it was: the app is on the version it was on, and the
        // services the upgrade added (kept) run what they were deployed with.
        if all_back && let (Some(a), Some(prev)) = (st.app_mut(&last.app), prev_app.as_ref()) {
            let mut each = a.versions();
            for (s, v) in prev.versions() {
                each.insert(s, v);
            }
            a.set_versions(prev.version.clone(), each);
        }
        self.save_state(&st)?;
        rec.status = match (ok, failed) {
            (_, 0) if all_back => Status::RolledBack,
            (_, 0) => Status::PartialRollback,
            (0, _) => Status::RollbackFailed,
            _ => Status::PartialRollback,
        };
        rec.finished = Some(now());
        self.save_record(&rec)?;
        let mut undone = last.clone();
        undone.undone_by = Some(id.clone());
        self.save_record(&undone)?;
        (ctx.say)(format!(
            "Record {id}: rollback of {}: {}",
            last.id,
            rec.status.as_str()
        ));
        Ok(rec)
    }
}

/// The services upgrade `up` changed that no rollback of it has put back yet.
fn left_to_roll_back<'r>(records: &[Record], up: &'r Record) -> Vec<&'r ServiceOutcome> {
    let restored: Vec<&str> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Rollback && r.undoes.as_deref() == Some(&up.id))
        .flat_map(|r| r.services.iter())
        .filter(|s| s.result == ServiceResult::Done && s.change == Change::Upgrade)
        .map(|s| s.service.as_str())
        .collect();
    up.services
        .iter()
        .filter(|s| s.result == ServiceResult::Done && s.change == Change::Upgrade)
        .filter(|s| !restored.contains(&s.service.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::hooks::{Ctx, Hooks};

    fn with_ctx<T>(run: Option<&str>, f: impl FnOnce(&mut Ctx) -> T) -> T {
        with_hooks(run, Hooks::default(), f)
    }

    fn with_hooks<T>(run: Option<&str>, hooks: Hooks, f: impl FnOnce(&mut Ctx) -> T) -> T {
        let mut say = |_: String| {};
        let mut ctx = Ctx {
            say: &mut say,
            hooks,
            // Other tests of this process spawn hooks: a child forked in the instant
            // before its exec shares (and so briefly holds) a lock just let go.
            lock_wait: std::time::Duration::from_secs(5),
            run: run.map(str::to_owned),
        };
        f(&mut ctx)
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// The services of a record: (service, result) as records write them.
    fn results(r: &Record) -> Vec<(String, String)> {
        r.services
            .iter()
            .map(|s| (s.service.clone(), String::from(s.result.clone())))
            .collect()
    }

    /// mall 1.0.0 installed and upgraded to 1.1.0 (web and api upgraded, worker added).
    fn upgraded_mall(dir: &Path) -> (Group, Market) {
        let g = Group::new(&dir.join("shop"));
        let market = Market::new(Path::new("tests/fixtures/market"));
        with_ctx(None, |c| g.install(&market, "mall", &v("1.0.0"), c)).unwrap();
        with_ctx(None, |c| {
            g.upgrade(&market, "mall", &v("1.1.0"), None, VersionPolicy::Minor, c)
        })
        .unwrap();
        (g, market)
    }

    #[test]
    fn a_rollback_puts_upgraded_services_back_keeps_added_ones_and_counts_failures() {
        let d = tempfile::tempdir().unwrap();
        let (g, _) = upgraded_mall(d.path());
        // A service the upgrade did not touch cannot be chosen.
        let e = with_ctx(None, |c| g.rollback(None, Some(&["nope".to_owned()]), c)).unwrap_err();
        assert!(
            e.message.contains("did not touch service `nope`"),
            "{}",
            e.message
        );
        // Every deploy fails: nothing is back, the added service is kept all the same.
        let failing = Hooks {
            deploy: Some(vec![crate::template::Template::parse("false").unwrap()]),
            timeout: std::time::Duration::from_secs(10),
            ..Hooks::default()
        };
        let rec = with_hooks(None, failing, |c| g.rollback(None, None, c)).unwrap();
        assert_eq!(rec.status, Status::RollbackFailed);
        let kinds: Vec<String> = results(&rec)
            .into_iter()
            .map(|(s, r)| format!("{s} {}", r.split(':').next().unwrap()))
            .collect();
        assert_eq!(kinds, ["api failed", "web failed", "worker kept"]);
        assert_eq!(g.state().unwrap().app("mall").unwrap().version, v("1.1.0"));
        // One deploy fails, the other works: partly rolled back.
        let api_fails = Hooks {
            deploy: Some(vec![
                crate::template::Template::parse("test").unwrap(),
                crate::template::Template::parse("{service}").unwrap(),
                crate::template::Template::parse("!=").unwrap(),
                crate::template::Template::parse("api").unwrap(),
            ]),
            timeout: std::time::Duration::from_secs(10),
            ..Hooks::default()
        };
        let d2 = tempfile::tempdir().unwrap();
        let (g2, _) = upgraded_mall(d2.path());
        let rec = with_hooks(None, api_fails, |c| g2.rollback(None, None, c)).unwrap();
        assert_eq!(rec.status, Status::PartialRollback);
        // web alone: a partial rollback; then the rest.
        let rec = with_ctx(None, |c| g.rollback(None, Some(&["web".to_owned()]), c)).unwrap();
        assert_eq!(rec.status, Status::PartialRollback);
        assert_eq!(
            results(&rec),
            [
                ("web".to_owned(), "done".to_owned()),
                ("worker".to_owned(), "kept".to_owned())
            ]
        );
        let rec = with_ctx(None, |c| g.rollback(None, None, c)).unwrap();
        assert_eq!(rec.status, Status::RolledBack);
        assert_eq!(
            results(&rec),
            [
                ("api".to_owned(), "done".to_owned()),
                ("worker".to_owned(), "kept".to_owned())
            ]
        );
        assert_eq!(g.state().unwrap().app("mall").unwrap().version, v("1.0.0"));
    }

    #[test]
    fn a_rollback_without_a_record_continues_the_newest_upgrade_left_half_undone() {
        let d = tempfile::tempdir().unwrap();
        // A market with a second app, blog, of two services.
        let m = d.path().join("market");
        std::fs::create_dir_all(m.join("mall")).unwrap();
        for f in ["1.0.0.yaml", "1.1.0.yaml"] {
            std::fs::copy(
                Path::new("tests/fixtures/market/mall").join(f),
                m.join("mall").join(f),
            )
            .unwrap();
        }
        std::fs::create_dir_all(m.join("blog")).unwrap();
        for ver in ["1.0.0", "1.0.1"] {
            std::fs::write(
                m.join("blog").join(format!("{ver}.yaml")),
                format!("app: blog\nversion: {ver}\nservices:\n  front:\n    image: blog/front:{ver}\n  db:\n    image: blog/db:{ver}\n"),
            )
            .unwrap();
        }
        let market = Market::new(&m);
        let g = Group::new(&d.path().join("shop"));
        with_ctx(None, |c| g.install(&market, "mall", &v("1.0.0"), c)).unwrap();
        with_ctx(None, |c| g.install(&market, "blog", &v("1.0.0"), c)).unwrap();
        with_ctx(None, |c| {
            g.upgrade(&market, "mall", &v("1.1.0"), None, VersionPolicy::Minor, c)
        })
        .unwrap();
        with_ctx(None, |c| {
            g.upgrade(&market, "blog", &v("1.0.1"), None, VersionPolicy::Patch, c)
        })
        .unwrap();
        // blog, the newest, partly; then, unasked, the rest of blog before mall.
        let rec = with_ctx(None, |c| g.rollback(None, Some(&["front".to_owned()]), c)).unwrap();
        assert_eq!(
            (rec.app.as_str(), rec.status),
            ("blog", Status::PartialRollback)
        );
        let rec = with_ctx(None, |c| g.rollback(None, None, c)).unwrap();
        assert_eq!((rec.app.as_str(), rec.status), ("blog", Status::RolledBack));
        let rec = with_ctx(None, |c| g.rollback(None, None, c)).unwrap();
        assert_eq!(rec.app, "mall");
    }

    #[test]
    fn the_rollback_of_a_run_takes_back_only_that_runs_upgrades() {
        let d = tempfile::tempdir().unwrap();
        let g = Group::new(&d.path().join("shop"));
        let market = Market::new(std::path::Path::new("tests/fixtures/market"));
        let v = |s: &str| Version::parse(s).unwrap();
        with_ctx(None, |c| g.install(&market, "mall", &v("1.0.0"), c)).unwrap();
        // Upgraded by hand, not by run A: A has nothing here to take back.
        with_ctx(None, |c| {
            g.upgrade(&market, "mall", &v("1.1.0"), None, VersionPolicy::Minor, c)
        })
        .unwrap();
        let undone = with_ctx(None, |c| g.rollback_run("run-a", c)).unwrap();
        assert!(undone.is_empty(), "{undone:?}");
        let running = |g: &Group| g.state().unwrap().app("mall").unwrap().version.clone();
        assert_eq!(running(&g), v("1.1.0"));
        // Taken back by hand, then upgraded by run A: A's rollback takes back A's.
        with_ctx(None, |c| g.rollback(None, None, c)).unwrap();
        assert_eq!(running(&g), v("1.0.0"));
        with_ctx(Some("run-a"), |c| {
            g.upgrade(&market, "mall", &v("1.1.0"), None, VersionPolicy::Minor, c)
        })
        .unwrap();
        let undone = with_ctx(None, |c| g.rollback_run("run-a", c)).unwrap();
        assert_eq!(undone.len(), 1);
        assert_eq!(running(&g), v("1.0.0"));
        // Once taken back, nothing is left for a second rollback of the run.
        let undone = with_ctx(None, |c| g.rollback_run("run-a", c)).unwrap();
        assert!(undone.is_empty(), "{undone:?}");
    }
}
