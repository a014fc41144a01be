//! App groups built from market apps (SPEC §3, after Rainbond's app market): the market
//! catalog, a group's installed apps, the per-service diff of an upgrade, upgrades with a
//! backup and a record, and the rollback of the last upgrade.
//!
//! A group is a directory: `group.toml` (installed apps and each service's spec),
//! `services/<svc>.yaml` (the rendered spec a deploy hook applies), `records/<id>.json`
//! and `backups/<id>/`. Every file is replaced atomically and the group is locked while it
//! changes. Messages go to the caller's `say`; nothing here prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::diagnostics::{Code, Problem};

use crate::package::{self, VersionPolicy};
use crate::template::Template;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_protocol() -> String {
    "tcp".into()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// One version of an app in the market.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTemplate {
    pub app: String,
    pub version: Version,
    pub services: BTreeMap<String, ServiceSpec>,
}

pub struct Market {
    pub dir: PathBuf,
}

impl Market {
    pub fn new(dir: &Path) -> Market {
        Market {
            dir: dir.to_owned(),
        }
    }

    /// Versions of `app` the market has, oldest first.
    pub fn versions(&self, app: &str) -> Vec<Version> {
        let mut v: Vec<Version> = std::fs::read_dir(self.dir.join(app))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name
                    .strip_suffix(".yaml")
                    .or(name.strip_suffix(".yml"))
                    .or(name.strip_suffix(".toml"))?;
                Version::parse(stem).ok()
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn template(&self, app: &str, v: &Version) -> Result<AppTemplate, Problem> {
        let base = self.dir.join(app);
        let Some(path) = ["yaml", "yml", "toml"]
            .iter()
            .map(|e| base.join(format!("{v}.{e}")))
            .find(|p| p.is_file())
        else {
            let have = self
                .versions(app)
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>();
            let help = if have.is_empty() {
                format!("the market has no app `{app}`")
            } else {
                format!("the market has {app} {}", have.join(", "))
            };
            return Err(Problem::new(
                Code::MarketMissing,
                format!("the market has no version {v} of app `{app}`"),
            )
            .help(help));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Problem::new(Code::Io, format!("cannot read {}: {e}", path.display())))?;
        let bad =
            |m: String| Problem::new(Code::MarketTemplate, format!("{}: {m}", path.display()));
        let t: AppTemplate = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| {
                bad(e
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .to_owned())
            })?
        };
        if t.app != app || &t.version != v {
            return Err(bad(format!(
                "it says {} {}, but its place in the market says {app} {v}",
                t.app, t.version
            )));
        }
        for name in t.services.keys() {
            if !crate::plan::validate::is_safe_name(name) {
                return Err(bad(format!(
                    "service name `{name}` is not safe as a file name"
                )));
            }
        }
        Ok(t)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledApp {
    pub app: String,
    pub version: Version,
    pub services: BTreeMap<String, ServiceSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupState {
    pub format: u32,
    #[serde(default, rename = "app")]
    pub apps: Vec<InstalledApp>,
}

impl GroupState {
    pub fn app(&self, name: &str) -> Option<&InstalledApp> {
        self.apps.iter().find(|a| a.app == name)
    }
    fn app_mut(&mut self, name: &str) -> Option<&mut InstalledApp> {
        self.apps.iter_mut().find(|a| a.app == name)
    }
}

/// What an upgrade does to one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Upgrade,
    Add,
    Unchanged,
    Kept,
}

impl Change {
    pub fn marker(self) -> &'static str {
        match self {
            Change::Upgrade => "▲",
            Change::Add => "+",
            Change::Unchanged | Change::Kept => " ",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Upgrade => "upgrade",
            Change::Add => "add",
            Change::Unchanged => "unchanged",
            Change::Kept => "kept",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDiff {
    pub service: String,
    pub change: Change,
    /// Each changed field, in words: `image a → b`, `env API_URL added`, …
    pub details: Vec<String>,
}

/// The per-service diff of SPEC §3 between what is installed and a target template.
pub fn diff(installed: &BTreeMap<String, ServiceSpec>, target: &AppTemplate) -> Vec<ServiceDiff> {
    let mut out = Vec::new();
    for (name, new) in &target.services {
        let Some(old) = installed.get(name) else {
            let mut details = vec![format!("image {}", new.image)];
            details.extend(
                new.ports
                    .iter()
                    .map(|p| format!("port {}/{}", p.port, p.protocol)),
            );
            out.push(ServiceDiff {
                service: name.clone(),
                change: Change::Add,
                details,
            });
            continue;
        };
        let mut d = Vec::new();
        if old.image != new.image {
            d.push(format!("image {} → {}", old.image, new.image));
        }
        for p in &new.ports {
            match old.ports.iter().find(|o| o.port == p.port) {
                None => d.push(format!("port {}/{} added", p.port, p.protocol)),
                Some(o) if o.protocol != p.protocol => d.push(format!(
                    "port {} changed: {} → {}",
                    p.port, o.protocol, p.protocol
                )),
                _ => {}
            }
        }
        for (k, v) in &new.env {
            match old.env.get(k) {
                None => d.push(format!("env {k} added")),
                Some(o) if o != v => d.push(format!("env {k} changed")),
                _ => {}
            }
        }
        for k in old.env.keys().filter(|k| !new.env.contains_key(*k)) {
            d.push(format!("env {k} removed"));
        }
        for v in new.volumes.iter().filter(|v| !old.volumes.contains(v)) {
            d.push(format!("volume {} added", v.path));
        }
        let change = if d.is_empty() {
            Change::Unchanged
        } else {
            Change::Upgrade
        };
        out.push(ServiceDiff {
            service: name.clone(),
            change,
            details: d,
        });
    }
    for name in installed
        .keys()
        .filter(|n| !target.services.contains_key(*n))
    {
        out.push(ServiceDiff {
            service: name.clone(),
            change: Change::Kept,
            details: vec![format!(
                "not in {} {}; kept as it is",
                target.app, target.version
            )],
        });
    }
    out
}

/// The status of an upgrade or rollback record (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    InProgress,
    Upgraded,
    PartialUpgraded,
    UpgradeFailed,
    RolledBack,
    PartialRollback,
    RollbackFailed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in-progress",
            Status::Upgraded => "upgraded",
            Status::PartialUpgraded => "partial-upgraded",
            Status::UpgradeFailed => "upgrade-failed",
            Status::RolledBack => "rolled-back",
            Status::PartialRollback => "partial-rollback",
            Status::RollbackFailed => "rollback-failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOutcome {
    pub service: String,
    pub change: Change,
    pub details: Vec<String>,
    /// `done`, `failed: …`, `kept`, `pending`, or `not picked`.
    pub result: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// `upgrade` or `rollback`.
    pub kind: String,
    pub app: String,
    pub from: Version,
    pub to: Version,
    pub status: Status,
    pub services: Vec<ServiceOutcome>,
    pub started: String,
    pub finished: Option<String>,
    /// The upgrade this rollback undid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// The rollback that undid this upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_by: Option<String>,
}

/// The deploy hook and health check of a group, with what fills their placeholders.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub deploy: Option<Vec<Template>>,
    pub timeout: Duration,
    pub health: Option<crate::health::Health>,
    pub vars: BTreeMap<String, String>,
    pub group: String,
}

pub struct Ctx<'a> {
    pub say: &'a mut dyn FnMut(String),
    pub hooks: Hooks,
    pub lock_wait: Duration,
    pub run: Option<String>,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub struct Group {
    pub root: PathBuf,
}

fn io(p: &Path, e: std::io::Error) -> Problem {
    Problem::new(Code::Io, format!("{}: {e}", p.display()))
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, Problem> {
    serde_json::to_vec_pretty(v).map_err(|e| Problem::new(Code::Io, format!("cannot encode: {e}")))
}

impl Group {
    pub fn new(root: &Path) -> Group {
        Group {
            root: root.to_owned(),
        }
    }

    pub fn state(&self) -> Result<GroupState, Problem> {
        let path = self.root.join("group.toml");
        match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| {
                Problem::new(
                    Code::GroupUnreadable,
                    format!("{} is damaged: {}", path.display(), e.message()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(GroupState {
                format: 1,
                apps: Vec::new(),
            }),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn save_state(&self, st: &GroupState) -> Result<(), Problem> {
        let body = toml::to_string(st)
            .map_err(|e| Problem::new(Code::Io, format!("cannot encode the group: {e}")))?;
        let text =
            format!("# Installed apps of this group, written by fleetup. Do not edit.\n{body}");
        crate::fsutil::write_atomic(&self.root.join("group.toml"), text.as_bytes())
            .map_err(|e| io(&self.root, e))
    }

    pub fn records(&self) -> Vec<Record> {
        let mut v: Vec<Record> = std::fs::read_dir(self.root.join("records"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    fn save_record(&self, r: &Record) -> Result<(), Problem> {
        let dir = self.root.join("records");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        crate::fsutil::write_atomic(&dir.join(format!("{}.json", r.id)), &to_json(r)?)
            .map_err(|e| io(&dir, e))
    }

    fn next_id(&self) -> String {
        format!("{:04}", self.records().len() + 1)
    }

    fn lock(&self, ctx: &Ctx) -> Result<crate::store::lock::Lock, Problem> {
        crate::store::lock::acquire(
            &self.root,
            &format!("the group {}", self.root.display()),
            ctx.run.as_deref(),
            ctx.lock_wait,
        )
    }

    fn write_spec(&self, service: &str, spec: &ServiceSpec) -> Result<PathBuf, Problem> {
        let dir = self.root.join("services");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let path = dir.join(format!("{service}.yaml"));
        let text = serde_saphyr::to_string(spec)
            .map_err(|e| Problem::new(Code::Io, format!("cannot render {service}: {e}")))?;
        crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
        Ok(path)
    }

    /// Writes a service's spec, runs the deploy hook and the health check.
    fn deploy(
        &self,
        app: &str,
        service: &str,
        spec: &ServiceSpec,
        v: &Version,
        prev: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), String> {
        let path = self.write_spec(service, spec).map_err(|p| p.message)?;
        let abs = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_owned())
                .display()
                .to_string()
        };
        let mut vars = ctx.hooks.vars.clone();
        for (k, val) in [
            ("name", ctx.hooks.group.clone()),
            ("group", ctx.hooks.group.clone()),
            ("root", abs(&self.root)),
            ("app", app.to_owned()),
            ("service", service.to_owned()),
            ("spec", abs(&path)),
            ("version", v.to_string()),
            ("previous", prev.to_string()),
        ] {
            vars.insert(k.into(), val);
        }
        let fill = |t: &Template| {
            t.render(|k| vars.get(k).cloned(), |e| std::env::var(e).ok())
                .map_err(|m| format!("`{t}` cannot be filled: {m:?}"))
        };
        if let Some(cmd) = &ctx.hooks.deploy {
            let argv = cmd.iter().map(fill).collect::<Result<Vec<_>, _>>()?;
            crate::hook::run(&argv, &[], ctx.hooks.timeout)
                .map_err(|e| format!("deploy hook `{}` failed: {e}", argv.join(" ")))?;
        }
        if let Some(h) = &ctx.hooks.health {
            let probe = h.probe(fill)?;
            probe
                .wait(h.timing(false))
                .map_err(|e| format!("health: {e}"))?;
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
                    let _ =
                        std::fs::remove_file(self.root.join("services").join(format!("{s}.yaml")));
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
    ) -> Result<(InstalledApp, AppTemplate, Vec<ServiceDiff>, Vec<String>), Problem> {
        let st = self.state()?;
        let installed = st.app(app).cloned().ok_or_else(|| {
            Problem::new(
                Code::GroupState,
                format!("app `{app}` is not installed in this group"),
            )
            .help("install it first with `fleetup group install`")
        })?;
        if let Some(v) = package::check_versions(&installed.version, to, policy)
            .into_iter()
            .next()
        {
            return Err(Problem::new(v.code, format!("{app}: {}", v.message)));
        }
        if &installed.version == to {
            return Err(Problem::new(
                Code::GroupState,
                format!("{app} is already at {to}"),
            ));
        }
        let t = market.template(app, to)?;
        let d = diff(&installed.services, &t);
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
            Some(last)
                if last.status == Status::InProgress
                    && last.kind == "upgrade"
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
                let (installed, t, d, picked) = self.preview(market, app, to, services, policy)?;
                let id = self.next_id();
                self.backup(&id)?;
                (ctx.say)(format!("Backed up the group as backups/{id}"));
                let rec = Record {
                    id,
                    kind: "upgrade".into(),
                    app: app.into(),
                    from: installed.version.clone(),
                    to: to.clone(),
                    status: Status::InProgress,
                    services: d
                        .iter()
                        .map(|s| ServiceOutcome {
                            service: s.service.clone(),
                            change: s.change,
                            details: s.details.clone(),
                            result: match s.change {
                                Change::Kept => "kept".into(),
                                Change::Unchanged => "unchanged".into(),
                                _ if picked.contains(&s.service) => "pending".into(),
                                _ => "not picked".into(),
                            },
                        })
                        .collect(),
                    started: now(),
                    finished: None,
                    undoes: None,
                    undone_by: None,
                };
                self.save_record(&rec)?;
                (rec, installed, t)
            }
        };
        let pending: Vec<(String, Change)> = rec
            .services
            .iter()
            .filter(|s| s.result == "pending")
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
            let result = self.deploy(app, &name, spec, to, &installed.version, ctx);
            let outcome = match result {
                Ok(()) => {
                    (ctx.say)(format!("{} {name}: upgraded", change.marker()));
                    "done".to_owned()
                }
                Err(e) => {
                    (ctx.say)(format!("{} {name}: failed: {e}", change.marker()));
                    // The service keeps its previous spec on disk: what runs is unchanged.
                    if let Some(prev) = installed.services.get(&name) {
                        let _ = self.write_spec(&name, prev);
                    }
                    format!("failed: {e}")
                }
            };
            if let Some(s) = rec.services.iter_mut().find(|s| s.service == name) {
                s.result = outcome;
            }
            self.save_record(&rec)?;
        }
        // group.toml follows the record: every service it marks done has the new spec.
        let mut st = self.state()?;
        let done: Vec<&ServiceOutcome> =
            rec.services.iter().filter(|s| s.result == "done").collect();
        let failed = rec
            .services
            .iter()
            .filter(|s| s.result.starts_with("failed"))
            .count();
        if let Some(a) = st.app_mut(app) {
            for s in &done {
                if let Some(spec) = t.services.get(&s.service) {
                    a.services.insert(s.service.clone(), spec.clone());
                }
            }
            if !done.is_empty() {
                a.version = to.clone();
            }
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
            installed.version,
            rec.status.as_str()
        ));
        Ok(rec)
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
        let Some(last) = records.iter().rev().find(|r| r.kind == "upgrade").cloned() else {
            return Err(Problem::new(
                Code::GroupRollback,
                "this group has no upgrade to roll back",
            ));
        };
        if let Some(id) = record
            && id != last.id
        {
            return Err(Problem::new(
                Code::GroupRollback,
                format!(
                    "only the last upgrade can be rolled back: that is record {} ({} {} → {}), not {id}",
                    last.id, last.app, last.from, last.to
                ),
            ));
        }
        if let Some(by) = &last.undone_by {
            return Err(Problem::new(
                Code::GroupRollback,
                format!("upgrade {} was already rolled back by record {by}", last.id),
            ));
        }
        let before = self.backup_state(&last.id)?;
        let prev_app = before.app(&last.app).cloned();
        // What the upgrade changed: upgraded services go back; added ones are kept.
        let upgraded: Vec<&ServiceOutcome> = last
            .services
            .iter()
            .filter(|s| s.result == "done" && s.change == Change::Upgrade)
            .collect();
        let added: Vec<&ServiceOutcome> = last
            .services
            .iter()
            .filter(|s| {
                s.change == Change::Add && s.result != "not picked" && s.result != "pending"
            })
            .collect();
        let chosen: Vec<String> = match services {
            None => upgraded.iter().map(|s| s.service.clone()).collect(),
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
                    .filter(|s| upgraded.iter().any(|u| &u.service == *s))
                    .cloned()
                    .collect()
            }
        };
        if chosen.is_empty() {
            return Err(Problem::new(
                Code::GroupRollback,
                format!(
                    "nothing to roll back: upgrade {} changed none of the chosen services (added services are never removed)",
                    last.id
                ),
            ));
        }
        let id = self.next_id();
        let mut rec = Record {
            id: id.clone(),
            kind: "rollback".into(),
            app: last.app.clone(),
            from: last.to.clone(),
            to: last.from.clone(),
            status: Status::InProgress,
            services: Vec::new(),
            started: now(),
            finished: None,
            undoes: Some(last.id.clone()),
            undone_by: None,
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
            (ctx.say)(format!("↺ {name}: restoring {}", spec.image));
            let result = self.deploy(&last.app, name, &spec, &last.from, &last.to, ctx);
            let outcome = match result {
                Ok(()) => {
                    ok += 1;
                    if let Some(a) = st.app_mut(&last.app) {
                        a.services.insert(name.clone(), spec.clone());
                    }
                    "done".to_owned()
                }
                Err(e) => {
                    failed += 1;
                    format!("failed: {e}")
                }
            };
            (ctx.say)(format!("↺ {name}: {outcome}"));
            rec.services.push(ServiceOutcome {
                service: name.clone(),
                change: Change::Upgrade,
                details: vec![],
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
                result: "kept".into(),
            });
        }
        let all_back = failed == 0 && chosen.len() == upgraded.len();
        if all_back && let Some(a) = st.app_mut(&last.app) {
            a.version = last.from.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> ServiceSpec {
        ServiceSpec {
            image: image.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_diff_lists_every_changed_field() {
        let mut old = BTreeMap::new();
        let mut web = spec("mall/web:1.0.0");
        web.ports.push(Port {
            port: 80,
            protocol: "http".into(),
        });
        web.env.insert("A".into(), "1".into());
        web.env.insert("GONE".into(), "x".into());
        old.insert("web".into(), web);
        old.insert("db".into(), spec("pg:14"));
        old.insert("same".into(), spec("same:1"));
        let mut new = BTreeMap::new();
        let mut web2 = spec("mall/web:1.1.0");
        web2.ports.push(Port {
            port: 80,
            protocol: "tcp".into(),
        });
        web2.ports.push(Port {
            port: 443,
            protocol: "https".into(),
        });
        web2.env.insert("A".into(), "2".into());
        web2.env.insert("B".into(), "3".into());
        web2.volumes.push(Volume {
            path: "/data".into(),
        });
        new.insert("web".into(), web2);
        new.insert("worker".into(), spec("mall/worker:1.1.0"));
        new.insert("same".into(), spec("same:1"));
        let t = AppTemplate {
            app: "mall".into(),
            version: Version::new(1, 1, 0),
            services: new,
        };
        let d = diff(&old, &t);
        let by = |n: &str| d.iter().find(|x| x.service == n).unwrap();
        assert_eq!(by("web").change, Change::Upgrade);
        assert_eq!(
            by("web").details,
            vec![
                "image mall/web:1.0.0 → mall/web:1.1.0",
                "port 80 changed: http → tcp",
                "port 443/https added",
                "env A changed",
                "env B added",
                "env GONE removed",
                "volume /data added"
            ]
        );
        assert_eq!(by("worker").change, Change::Add);
        assert_eq!(by("same").change, Change::Unchanged);
        assert_eq!(by("db").change, Change::Kept);
    }
}

/// `<root>/group-hooks.toml`: how a manual `fleetup group` command deploys a service and
/// checks its health (a plan's `groups[].hooks` and `health` do the same in runs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    pub name: Option<String>,
    pub deploy: Option<DeployConfig>,
    pub health: Option<HealthConfig>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    pub command: Vec<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub command: Option<Vec<String>>,
    pub http: Option<String>,
    pub tcp: Option<String>,
    pub expect_status: Option<u16>,
    pub timeout: Option<String>,
    pub interval: Option<String>,
}

impl HookConfig {
    pub fn read(root: &Path) -> Result<Hooks, Problem> {
        let path = root.join("group-hooks.toml");
        let bad = |m: String| Problem::new(Code::NodeConfig, format!("{}: {m}", path.display()));
        let cfg: HookConfig = match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| bad(e.message().to_owned()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HookConfig::default(),
            Err(e) => return Err(io(&path, e)),
        };
        let dur = |d: &Option<String>, default: u64| match d {
            Some(s) => crate::duration::parse_duration(s)
                .ok_or_else(|| bad(format!("`{s}` is not a duration"))),
            None => Ok(Duration::from_secs(default)),
        };
        let tpl = |s: &str| Template::parse(s).map_err(|e| bad(format!("`{s}`: {e}")));
        let at = |t| crate::plan::At {
            value: t,
            span: Default::default(),
        };
        let deploy = match &cfg.deploy {
            Some(d) if d.command.is_empty() => return Err(bad("`deploy.command` is empty".into())),
            Some(d) => Some(
                d.command
                    .iter()
                    .map(|c| tpl(c))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let health = match &cfg.health {
            None => None,
            Some(h) => {
                let check = match (&h.command, &h.http, &h.tcp) {
                    (Some(c), None, None) if !c.is_empty() => crate::plan::Check::Command(
                        c.iter().map(|x| tpl(x).map(at)).collect::<Result<_, _>>()?,
                    ),
                    (None, Some(u), None) => crate::plan::Check::Http(at(tpl(u)?)),
                    (None, None, Some(a)) => crate::plan::Check::Tcp(at(tpl(a)?)),
                    _ => {
                        return Err(bad(
                            "`health` needs exactly one of command, http, tcp".into()
                        ));
                    }
                };
                let timeout = dur(&h.timeout, 60)?;
                Some(crate::health::Health {
                    check,
                    expect_status: h.expect_status.unwrap_or(200),
                    timeout,
                    interval: dur(&h.interval, 1)?,
                    healthy_for: Duration::ZERO,
                    rollback_timeout: timeout,
                })
            }
        };
        let name = cfg.name.unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(Hooks {
            deploy,
            timeout: dur(&cfg.deploy.as_ref().and_then(|d| d.timeout.clone()), 300)?,
            health,
            vars: cfg.vars,
            group: name,
        })
    }
}
