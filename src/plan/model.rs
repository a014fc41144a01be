//! The validated plan: typed values only, each that a later check may point at kept
//! with its span in the plan file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use semver::Version;

pub use crate::health::{Check, Health};
use crate::package::VersionPolicy;
pub use crate::span::At;
use crate::span::SourceFile;
use crate::template::Template;

#[derive(Debug)]
pub struct Plan {
    pub file: SourceFile,
    /// Directory relative paths in the plan are resolved against.
    pub dir: PathBuf,
    pub name: String,
    pub product: String,
    pub runtime: String,
    pub repository: Option<At<PathBuf>>,
    pub edition: Option<At<String>>,
    pub state: Option<PathBuf>,
    pub ssh_config: Option<PathBuf>,
    pub ssh_host_keys: HostKeys,
    /// Agent binaries for hosts of other platforms (`fleetup-<os>-<arch>`).
    pub agents: Option<PathBuf>,
    pub policy: VersionPolicy,
    pub rollout: Rollout,
    pub health: Option<Health>,
    pub hooks: Hooks,
    pub window: Option<Window>,
    pub nodes: Vec<NodeTarget>,
    pub groups: Vec<GroupTarget>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeys {
    Strict,
    AcceptNew,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    Rollback,
    RollbackAll,
    Stop,
}

/// A size given as a count of targets or as a share of all of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    Count(u64),
    Percent(f64),
}

/// How a group's service specs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Render {
    /// fleetup's own format: image, ports, env, volumes.
    #[default]
    Spec,
    Kubernetes,
    Compose,
}

/// SSH connections open at once when the plan does not say (`rollout.max_connections`).
pub const MAX_CONNECTIONS: usize = 64;

#[derive(Clone, Debug)]
pub struct Rollout {
    pub max_parallel: usize,
    pub waves: Vec<Amount>,
    pub max_failures: Amount,
    pub on_failure: OnFailure,
    pub permanent: bool,
    pub pause: Duration,
    /// SSH connections (one `ssh` process each) open at once.
    pub max_connections: usize,
    pub preflight: PreflightScope,
}

/// When remote stores are read before they change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreflightScope {
    /// Every store before any host changes.
    All,
    /// Each wave's stores right before that wave.
    Wave,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            max_parallel: 10,
            waves: vec![Amount::Percent(100.0)],
            max_failures: Amount::Count(0),
            on_failure: OnFailure::Rollback,
            permanent: true,
            pause: Duration::ZERO,
            max_connections: MAX_CONNECTIONS,
            preflight: PreflightScope::All,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Hooks {
    pub command: Option<Vec<At<Template>>>,
    pub timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            command: None,
            timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Window {
    pub days: Vec<jiff::civil::Weekday>,
    pub from: jiff::civil::Time,
    pub to: jiff::civil::Time,
    pub tz: jiff::tz::TimeZone,
    pub tz_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshAddr {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Clone, Debug)]
pub struct NodeTarget {
    pub name: At<String>,
    pub host: String,
    pub ssh: Option<At<SshAddr>>,
    pub root: At<PathBuf>,
    pub vars: BTreeMap<String, Template>,
    pub from: Option<At<Version>>,
    pub to: At<Version>,
    pub sha256: Option<At<String>>,
    pub tags: Vec<String>,
    /// What the node's release is built for, when it runs none yet (`platform:`).
    pub platform: Option<At<crate::package::Platform>>,
}

#[derive(Clone, Debug)]
pub struct AppTarget {
    pub app: At<String>,
    pub to: At<Version>,
    pub services: Option<Vec<At<String>>>,
}

#[derive(Clone, Debug)]
pub struct GroupTarget {
    pub name: At<String>,
    pub root: At<PathBuf>,
    pub market: At<PathBuf>,
    pub apps: Vec<AppTarget>,
    pub hooks: Hooks,
    pub health: Option<Health>,
    pub vars: BTreeMap<String, Template>,
    pub tags: Vec<String>,
    /// The format of the specs its deploy hook is given.
    pub render: Render,
    /// Local settings per service, merged into every rendered spec.
    pub overrides: BTreeMap<String, ServiceOverride>,
}

/// What an operator set locally for one service of a group: kept across upgrades, merged
/// into the spec each version renders (env wins over the template's; ports and volumes
/// are added to the template's).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOverride {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<OverridePort>,
    #[serde(default)]
    pub volumes: Vec<OverrideVolume>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverridePort {
    pub port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideVolume {
    pub path: String,
}

impl Plan {
    pub fn target_count(&self) -> usize {
        self.nodes.len() + self.groups.len()
    }
}
