//! App groups built from market apps (SPEC §3, after Rainbond's app market): the market
//! catalog, a group's installed apps, the per-service diff of an upgrade, upgrades with a
//! backup and a record, and the rollback of the last upgrade.
//!
//! A group is a directory: `group.toml` (installed apps and each service's spec),
//! `services/<svc>.yaml` (the rendered spec a deploy hook applies), `records/<id>.json`
//! and `backups/<id>/`. Every file is replaced atomically and the group is locked while it
//! changes. Messages go to the caller's `say`; nothing here prints.
//!
//! - `market.rs`: the market catalog and its app templates
//! - `diff.rs`: what an upgrade does to each service
//! - `record.rs`: upgrade and rollback records, typed
//! - `hooks.rs`: the deploy hook and health check, and `group-hooks.toml`
//! - `ops.rs`: install, preview, upgrade and rollback
//! - this file: the group directory, its state, its records and its lock

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::diagnostics::{Code, Problem};

use crate::package::{self, VersionPolicy};
use crate::template::Template;

mod diff;
mod hooks;
mod market;
mod ops;
mod record;
mod render;

pub use diff::{Change, ServiceDiff, diff};
pub use hooks::{Ctx, DeployConfig, HealthConfig, HookConfig, Hooks};
pub use market::{AppTemplate, Market, Port, ServiceSpec, Volume, check_app_name, market_version};
pub use record::{Record, RecordKind, ServiceOutcome, ServiceResult, Status, record_id};
pub use render::is_quantity;
pub use render::{CLAIM_SIZE, Render};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledApp {
    pub app: String,
    pub version: Version,
    pub services: BTreeMap<String, ServiceSpec>,
    /// Services that run another version than `version` (a partial upgrade, or a partial
    /// rollback), with the version each runs. Every other service runs `version`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub running: BTreeMap<String, Version>,
    /// The SHA-256 of the market template `version` was installed from: the market
    /// republishing that version with another template is an upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl InstalledApp {
    /// The version service `s` runs.
    pub fn version_of(&self, s: &str) -> &Version {
        self.running.get(s).unwrap_or(&self.version)
    }

    /// The version of every service.
    pub fn versions(&self) -> BTreeMap<String, Version> {
        self.services
            .keys()
            .map(|s| (s.clone(), self.version_of(s).clone()))
            .collect()
    }

    /// Sets the app's version and each service's, keeping only the services that
    /// differ from the app's in `running`.
    pub fn set_versions(&mut self, version: Version, each: BTreeMap<String, Version>) {
        self.running = each
            .into_iter()
            .filter(|(s, v)| *v != version && self.services.contains_key(s))
            .collect();
        self.version = version;
    }

    /// Services not on the app's version, as `api 1.0.0, web 1.0.1`.
    pub fn behind(&self) -> Option<String> {
        (!self.running.is_empty()).then(|| {
            self.running
                .iter()
                .map(|(s, v)| format!("{s} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
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

    /// A new record id, taken for good: one above every id a record or backup has used
    /// (read or not), its file created exclusively, so no record is ever replaced.
    fn next_id(&self) -> Result<String, Problem> {
        let dir = self.root.join("records");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let used = |d: &Path| -> u32 {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".json").unwrap_or(&n).parse::<u32>().ok()
                })
                .max()
                .unwrap_or(0)
        };
        let mut next = used(&dir).max(used(&self.root.join("backups"))) + 1;
        loop {
            let id = format!("{next:04}");
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(format!("{id}.json")))
            {
                Ok(_) => return Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(io(&dir, e)),
            }
        }
    }

    fn lock(&self, ctx: &Ctx) -> Result<crate::lock::Lock, Problem> {
        crate::lock::acquire(
            &self.root,
            &format!("the group {}", self.root.display()),
            ctx.run.as_deref(),
            ctx.lock_wait,
        )
    }

    /// Writes `services/<service>.yaml` in the group's `render` format.
    /// Services with a spec in `services/` that no installed app has: added by an
    /// upgrade whose deploy of them failed, kept because no `remove` hook could undeploy
    /// them (they may still run).
    pub fn unowned_services(&self) -> Vec<String> {
        let owned: std::collections::BTreeSet<String> = self
            .state()
            .map(|st| {
                st.apps
                    .iter()
                    .flat_map(|a| a.services.keys().cloned())
                    .collect()
            })
            .unwrap_or_default();
        let mut out: Vec<String> = std::fs::read_dir(self.root.join("services"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".yaml")?.to_owned();
                (!owned.contains(&name)).then_some(name)
            })
            .collect();
        out.sort();
        out
    }

    /// Where service `service`'s rendered spec is: `services/<service>.yaml`.
    fn spec_path(&self, service: &str) -> PathBuf {
        self.root.join("services").join(format!("{service}.yaml"))
    }

    fn write_spec(
        &self,
        service: &str,
        spec: &ServiceSpec,
        hooks: &Hooks,
    ) -> Result<PathBuf, Problem> {
        let path = self.spec_path(service);
        let dir = self.root.join("services");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let spec = diff::with_overrides(spec, hooks.overrides.get(service));
        let text = render::render(hooks.render, &hooks.group, service, &spec)?;
        crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| io(&path, e))?;
        Ok(path)
    }
}
