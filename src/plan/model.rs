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
    /// How alike the runtimes of two releases must be (`runtime_compat`).
    pub runtime_compat: crate::package::RuntimeRule,
    /// The directory packages are taken from: the plan's, or a mirror's cache.
    pub repository: Option<At<PathBuf>>,
    /// `repository: http://…/`: the mirror whose SHA256SUMS lists the packages.
    pub mirror: Option<At<String>>,
    /// Whether remote hosts fetch a mirror's packages themselves (`repository_via: host`,
    /// the default) or the controller relays them (`controller`).
    pub via_controller: bool,
    pub edition: Option<At<String>>,
    pub state: Option<PathBuf>,
    pub ssh_config: Option<PathBuf>,
    pub ssh_host_keys: HostKeys,
    /// Agent binaries for hosts of other platforms (`fleetup-<os>-<arch>`).
    pub agents: Option<PathBuf>,
    /// Keys every package must be signed by (`trust.minisign`).
    pub trust: Option<At<crate::signature::Trust>>,
    pub policy: VersionPolicy,
    pub rollout: Rollout,
    pub health: Option<Health>,
    pub hooks: Hooks,
    pub window: Option<Window>,
    /// Metric checks after each wave (`analysis:`).
    pub analysis: Vec<Analysis>,
    /// Webhooks told how the run goes (`notify:`).
    pub notify: Vec<Notify>,
    pub nodes: Vec<NodeTarget>,
    pub groups: Vec<GroupTarget>,
    pub scripted: Vec<ScriptedTarget>,
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

/// One entry of `rollout.waves`: a size, or the targets a selector picks (`"@canary"`).
#[derive(Clone, Debug, PartialEq)]
pub enum WaveSize {
    Size(Amount),
    Select(At<String>),
}

/// How domains follow one another (`rollout.domains.order`).
#[derive(Clone, Debug, PartialEq)]
pub enum DomainOrder {
    /// As their first target appears in the plan.
    Plan,
    SmallestFirst,
    /// These first, in this order; any other after them, in plan order.
    Listed(Vec<At<String>>),
}

/// `rollout.domains`: waves one failure domain at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct Domains {
    /// The label whose value names a target's domain (`zone`).
    pub by: At<String>,
    pub order: DomainOrder,
    /// Targets of one domain out at once (a count, or a share of the domain rounded
    /// down, at least 1).
    pub max_unavailable: Amount,
}

/// `rollout.min_available`: targets a selector picks that must stay up during any wave.
#[derive(Clone, Debug, PartialEq)]
pub struct MinAvailable {
    pub select: At<String>,
    pub count: Amount,
}

/// What `max_failures` counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BudgetScope {
    #[default]
    Run,
    Wave,
    Domain,
}

/// A pause after a wave: an operator's approval, or a wait.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// 1-based.
    pub after_wave: At<usize>,
    pub kind: GateKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateKind {
    Manual,
    Wait(Duration),
}

#[derive(Clone, Debug)]
pub struct Rollout {
    pub max_parallel: usize,
    pub waves: Vec<WaveSize>,
    pub max_failures: Amount,
    pub budget_scope: BudgetScope,
    pub domains: Option<Domains>,
    pub min_available: Vec<MinAvailable>,
    pub gates: Vec<Gate>,
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
            waves: vec![WaveSize::Size(Amount::Percent(100.0))],
            max_failures: Amount::Count(0),
            budget_scope: BudgetScope::Run,
            domains: None,
            min_available: Vec::new(),
            gates: Vec::new(),
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
    /// Lifecycle: before a target changes (drain), after it is healthy or back
    /// (undrain), after a rollback.
    pub before: Option<Vec<At<Template>>>,
    pub after: Option<Vec<At<Template>>>,
    pub on_rollback: Option<Vec<At<Template>>>,
    /// A group's undeploy of a service an upgrade added and whose deploy failed.
    pub remove: Option<Vec<At<Template>>>,
    pub timeout: Duration,
}

/// A metric check against Prometheus (`analysis:`).
#[derive(Clone, Debug)]
pub struct Analysis {
    pub name: String,
    /// The Prometheus server (`http://host:9090`).
    pub url: At<Template>,
    /// PromQL; with a node's placeholders it is asked once per node of the wave.
    pub query: At<Template>,
    pub max: Option<f64>,
    pub min: Option<f64>,
    /// How long the check watches.
    pub watch_for: Duration,
    pub interval: Duration,
    /// Measurements out of bounds tolerated before the analysis fails.
    pub failure_limit: u32,
    /// Measurements in a row without an answer or data (per query) that make the
    /// analysis inconclusive at once. Such a measurement is never a pass.
    pub consecutive_errors: u32,
}

/// When a webhook is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotifyOn {
    RunStart,
    WaveDone,
    Failed,
    Paused,
    Finished,
}

impl NotifyOn {
    pub const ALL: [NotifyOn; 5] = [
        NotifyOn::RunStart,
        NotifyOn::WaveDone,
        NotifyOn::Failed,
        NotifyOn::Paused,
        NotifyOn::Finished,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOn::RunStart => "run_start",
            NotifyOn::WaveDone => "wave_done",
            NotifyOn::Failed => "failed",
            NotifyOn::Paused => "paused",
            NotifyOn::Finished => "finished",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Notify {
    /// Its URL; `${ENV}` keeps a secret out of the plan and of every message.
    pub webhook: At<Template>,
    pub on: Vec<NotifyOn>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            command: None,
            before: None,
            after: None,
            on_rollback: None,
            remove: None,
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
    /// Labels (`zone: eu-1a`), for failure domains and `@key=value` selectors.
    pub labels: BTreeMap<String, String>,
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
    pub labels: BTreeMap<String, String>,
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
    /// Published on the host at this port (see [`crate::group::Port::host`]).
    #[serde(default)]
    pub host: Option<u16>,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideVolume {
    pub path: String,
    /// The claim's size in a Kubernetes render (`10Gi`).
    #[serde(default)]
    pub size: Option<String>,
}

/// Software fleetup does not unpack itself (`scripted:`): the plan's commands read its
/// version and change it.
#[derive(Clone, Debug)]
pub struct ScriptedTarget {
    pub name: At<String>,
    /// The host its commands run on, over the SSH connection nodes there use.
    pub ssh: Option<At<SshAddr>>,
    /// Prints the running version (its last line that is a version counts).
    pub version: Vec<At<Template>>,
    /// Installs `{version}`.
    pub upgrade: Vec<At<Template>>,
    /// Goes back to `{previous}`; without it, `upgrade` with the previous version.
    pub rollback: Option<Vec<At<Template>>>,
    pub to: At<Version>,
    pub from: Option<At<Version>>,
    pub health: Option<Health>,
    pub vars: BTreeMap<String, Template>,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// The deadline of each command.
    pub timeout: Duration,
    /// Lifecycle hooks (`before`, `after`, `on_rollback`), run where its commands run.
    pub hooks: Hooks,
}

impl ScriptedTarget {
    /// Every template of the entry.
    pub fn templates(&self) -> Vec<&At<Template>> {
        let mut out: Vec<&At<Template>> = self.version.iter().chain(&self.upgrade).collect();
        out.extend(self.rollback.iter().flatten());
        let h = &self.hooks;
        for c in [&h.before, &h.after, &h.on_rollback] {
            out.extend(c.iter().flatten());
        }
        if let Some(h) = &self.health {
            out.extend(h.check.templates());
        }
        out
    }
}

/// One target of a plan, whatever section names it: what selectors, waves and reports
/// need of it, and (for the one list of target kinds, `run/kinds.rs`) its section.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub name: &'a At<String>,
    pub tags: &'a [String],
    pub labels: &'a BTreeMap<String, String>,
    pub section: Section<'a>,
}

/// The plan section an entry comes from, with its index there.
#[derive(Clone, Copy)]
pub enum Section<'a> {
    Node(usize, &'a NodeTarget),
    Group(usize, &'a GroupTarget),
    Scripted(usize, &'a ScriptedTarget),
}

impl Plan {
    /// How many targets the plan has: entries `0..target_count()`.
    pub fn target_count(&self) -> usize {
        self.nodes.len() + self.groups.len() + self.scripted.len()
    }

    /// Target `i` of the plan (`i < target_count()`). Targets are numbered nodes first,
    /// then groups, then scripted targets, each in file order: the one place that order
    /// is written. A run, its schedule and its journal know a target by this number and
    /// its name.
    pub fn entry(&self, i: usize) -> Entry<'_> {
        let (n, g) = (self.nodes.len(), self.groups.len());
        if let Some(t) = self.nodes.get(i) {
            Entry {
                name: &t.name,
                tags: &t.tags,
                labels: &t.labels,
                section: Section::Node(i, t),
            }
        } else if let Some(t) = self.groups.get(i - n) {
            Entry {
                name: &t.name,
                tags: &t.tags,
                labels: &t.labels,
                section: Section::Group(i - n, t),
            }
        } else {
            let t = &self.scripted[i - n - g];
            Entry {
                name: &t.name,
                tags: &t.tags,
                labels: &t.labels,
                section: Section::Scripted(i - n - g, t),
            }
        }
    }

    /// Every target of the plan, in the order of [`Plan::entry`].
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        (0..self.target_count()).map(|i| self.entry(i))
    }

    /// The node target `i` is, with its index among the nodes.
    pub fn node_of(&self, i: usize) -> Option<(usize, &NodeTarget)> {
        match self.entry(i).section {
            Section::Node(j, n) => Some((j, n)),
            _ => None,
        }
    }

    /// The target number of node `j` (of `nodes`).
    pub fn target_of_node(&self, j: usize) -> usize {
        j
    }

    /// The name of target `i`.
    pub fn target_name(&self, i: usize) -> &str {
        &self.entry(i).name.value
    }

    /// The templates filled with a node's placeholders: the health check, the hooks and
    /// the analyses.
    pub fn node_templates(&self) -> Vec<&At<Template>> {
        let mut out: Vec<&At<Template>> = Vec::new();
        if let Some(h) = &self.health {
            out.extend(h.check.templates());
        }
        let h = &self.hooks;
        for c in [&h.command, &h.before, &h.after, &h.on_rollback]
            .into_iter()
            .flatten()
        {
            out.extend(c.iter());
        }
        for a in &self.analysis {
            out.push(&a.url);
            out.push(&a.query);
        }
        out
    }

    /// Every template of the plan: the nodes' ones, the webhooks, the groups' checks and
    /// hooks.
    pub fn templates(&self) -> Vec<&At<Template>> {
        let mut all = self.node_templates();
        all.extend(self.notify.iter().map(|n| &n.webhook));
        for g in &self.groups {
            if let Some(h) = &g.health {
                all.extend(h.check.templates());
            }
            let h = &g.hooks;
            for c in [&h.command, &h.before, &h.after, &h.on_rollback] {
                all.extend(c.iter().flatten());
            }
        }
        for t in &self.scripted {
            all.extend(t.templates());
        }
        all
    }

    /// The `vars` of every node and group, with their names.
    pub fn var_templates(&self) -> Vec<(&str, &Template)> {
        self.nodes
            .iter()
            .flat_map(|n| n.vars.iter())
            .chain(self.groups.iter().flat_map(|g| g.vars.iter()))
            .chain(self.scripted.iter().flat_map(|t| t.vars.iter()))
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }

    /// The values of every `${VAR}` the plan reads, to be hidden from whatever is shown.
    pub fn secrets(&self) -> crate::template::Secrets {
        crate::template::Secrets::read(
            self.templates()
                .into_iter()
                .map(|t| &t.value)
                .chain(self.var_templates().into_iter().map(|(_, t)| t)),
        )
    }
}
