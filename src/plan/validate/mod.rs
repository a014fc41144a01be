//! From the spanned tree to a typed [`Plan`], collecting every problem on the way.
//!
//! Two passes: `shape` checks the whole tree against the schema tables (unknown keys,
//! types, ranges, versions, durations), then `build` reads the typed values and checks
//! what needs more than one value at a time (duplicates, placeholders, inheritance).
//! Reading live state (stores, repositories, markets) is left to `preflight`.
//!
//! By plan section: `shape.rs` (pass 1), `nodes.rs`, `groups.rs`, `health.rs` (health
//! and hooks), `window.rs`, `placeholders.rs` (templates and `${ENV}`), and `values.rs`
//! (scalars: names, SSH addresses, times). This file holds the validator and `build`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;

use crate::diagnostics::{Code, Problem};
pub use crate::duration::parse_duration;
use crate::package::{self, VersionPolicy};
use crate::plan::model::*;
use crate::plan::schema::{self, Field, Ty};
use crate::plan::tree::{Item, Key, Kind, Span};
use crate::template::Template;

mod groups;
mod health;
mod nodes;
mod placeholders;
mod rollout;
mod scripted;
mod shape;
mod values;
mod window;

pub use crate::names::{did_you_mean, is_safe_name};
use health::HealthTiming;
pub use values::parse_ssh;
use values::*;

fn entries(n: &Item) -> &[(Key, Item)] {
    match &n.kind {
        Kind::Map(e) => e,
        _ => &[],
    }
}

fn get<'a>(n: &'a Item, key: &str) -> Option<&'a Item> {
    entries(n)
        .iter()
        .find(|(k, _)| k.name == key)
        .map(|(_, v)| v)
}

fn s(n: Option<&Item>) -> Option<&str> {
    match n.map(|n| &n.kind) {
        Some(Kind::Str(s)) => Some(s),
        _ => None,
    }
}

fn at_str(n: Option<&Item>) -> Option<At<String>> {
    let n = n?;
    s(Some(n)).map(|v| At {
        value: v.to_owned(),
        span: n.span,
    })
}

fn int(n: Option<&Item>) -> Option<i64> {
    match n.map(|n| &n.kind) {
        Some(Kind::Int(i)) => Some(*i),
        _ => None,
    }
}

fn version(n: Option<&Item>) -> Option<At<Version>> {
    let n = n?;
    Version::parse(s(Some(n))?).ok().map(|value| At {
        value,
        span: n.span,
    })
}

fn duration(n: Option<&Item>, default: Duration) -> Duration {
    s(n).and_then(parse_duration).unwrap_or(default)
}

fn amount(n: &Item) -> Option<Amount> {
    match &n.kind {
        Kind::Int(i) if *i >= 0 => Some(Amount::Count(*i as u64)),
        Kind::Str(t) => parse_percent(t).map(Amount::Percent),
        _ => None,
    }
}

fn list(n: Option<&Item>) -> &[Item] {
    match n.map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items,
        _ => &[],
    }
}

fn scalar_text(n: &Item) -> Option<String> {
    match &n.kind {
        Kind::Str(s) => Some(s.clone()),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Float(f) => Some(f.to_string()),
        Kind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Placeholders every node command or check may use, besides the node's vars.
pub const NODE_BUILTINS: &[&str] = &["name", "host", "root", "version", "previous"];

/// Placeholders a per-target metric query may use for a group, besides its vars.
pub const GROUP_ANALYSIS_BUILTINS: &[&str] = &["name", "group", "root"];

/// Placeholders a group's lifecycle hooks (`before`, `after`, `on_rollback`) may use,
/// besides the group's vars.
pub const GROUP_LIFECYCLE_BUILTINS: &[&str] = &["name", "group", "root"];

/// Placeholders every group hook or check may use, besides the group's vars.
pub const GROUP_BUILTINS: &[&str] = &[
    "name", "group", "root", "app", "service", "spec", "version", "previous",
];

/// What every node inherits from the plan unless it says otherwise.
struct Inherited {
    /// `defaults.root` as written: placeholders are filled per node, and a remote node
    /// takes it unresolved.
    root: Option<At<String>>,
    vars: BTreeMap<String, Template>,
    tags: Vec<String>,
    labels: BTreeMap<String, String>,
    to: Option<At<Version>>,
    /// The plan has a `to`, valid or not: a node without its own is not told to add one
    /// (the plan's own problem is reported where it is).
    to_written: bool,
    /// The plan's `sha256` pins the package of the plan's `to`.
    sha256: Option<At<String>>,
    policy: VersionPolicy,
    platform: Option<At<crate::package::Platform>>,
}

pub struct Validator {
    pub problems: Vec<Problem>,
    dir: PathBuf,
    text: std::sync::Arc<String>,
}

impl Validator {
    pub fn new(plan_dir: &Path, text: std::sync::Arc<String>) -> Self {
        Validator {
            problems: Vec::new(),
            dir: plan_dir.to_owned(),
            text,
        }
    }

    fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    // ---- pass 1: shape ------------------------------------------------------------

    /// A path key of the plan, relative to the plan file. It names one directory for the
    /// whole plan, so placeholders are refused at its line, never taken literally.
    pub(super) fn path(&mut self, n: Option<&Item>, key: &str) -> Option<At<PathBuf>> {
        let a = at_str(n)?;
        if a.value.is_empty() {
            return None;
        }
        if Template::parse(&a.value)
            .is_ok_and(|t| t.vars().next().is_some() || t.env_vars().next().is_some())
        {
            self.push(
                Problem::new(
                    Code::Placeholder,
                    format!("`{key}` `{}` cannot take placeholders: it names one directory", a.value),
                )
                .at(a.span)
                .label("a placeholder here")
                .help("write the path out; a node's `root` (and `defaults.root`) can use {name}, {host} and vars"),
            );
            return None;
        }
        Some(self.relative_to_plan(&a))
    }

    /// A path as written, relative to the plan file's directory.
    pub(super) fn relative_to_plan(&self, a: &At<String>) -> At<PathBuf> {
        // Lexically tidy (`dir/./x` → `dir/x`) so messages show the path a person would write.
        let joined: PathBuf = self
            .dir
            .join(&a.value)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        At {
            value: joined,
            span: a.span,
        }
    }

    pub(super) fn vars(&self, n: Option<&Item>) -> BTreeMap<String, Template> {
        let mut out = BTreeMap::new();
        for (k, v) in n.map(entries).unwrap_or(&[]) {
            if let Some(t) = scalar_text(v).and_then(|t| Template::parse(&t).ok()) {
                out.insert(k.name.clone(), t);
            }
        }
        out
    }

    pub(super) fn templates(n: Option<&Item>) -> Option<Vec<At<Template>>> {
        let items = list(n);
        let out: Vec<At<Template>> = items
            .iter()
            .filter_map(|i| {
                Template::parse(s(Some(i))?).ok().map(|value| At {
                    value,
                    span: i.span,
                })
            })
            .collect();
        (!items.is_empty() && out.len() == items.len()).then_some(out)
    }

    pub(super) fn tags(n: Option<&Item>) -> Vec<String> {
        list(n)
            .iter()
            .filter_map(|t| s(Some(t)).map(str::to_owned))
            .collect()
    }

    pub(super) fn line_fn(&self) -> impl Fn(Span) -> usize + use<> {
        let text = self.text.clone();
        move |sp: Span| {
            text.get(..sp.start)
                .map_or(0, |t| t.matches('\n').count() + 1)
        }
    }

    /// Builds the typed plan from a tree that passed (or partly failed) the shape pass.
    pub fn build(&mut self, root: &Item, file: crate::diagnostics::SourceFile) -> Option<Plan> {
        let name = s(get(root, "name")).unwrap_or_default().to_owned();
        let product = s(get(root, "product")).unwrap_or_default().to_owned();
        let runtime = s(get(root, "runtime")).unwrap_or("otp").to_owned();
        if let Some(p) = at_str(get(root, "product"))
            && p.value.contains(|c: char| c.is_whitespace() || c == '/')
        {
            self.push(
                Problem::new(
                    Code::BadValue,
                    format!("product `{}` cannot appear in a file name", p.value),
                )
                .at(p.span)
                .label("here")
                .help(
                    "write the product as its package names start, e.g. emqx for emqx-4.4.16-….zip",
                ),
            );
        }
        let edition = at_str(get(root, "edition"));
        if let Some(e) = &edition
            && !e
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            self.push(
                Problem::new(
                    Code::BadValue,
                    format!(
                        "edition `{}` must be lowercase letters and digits, as in package names",
                        e.value
                    ),
                )
                .at(e.span)
                .label("not an edition")
                .help("write the edition as package names carry it, e.g. ee for emqx-ee-4.4.17-….zip, or leave it out for ce"),
            );
        }
        let policy = s(get(root, "policy").and_then(|p| get(p, "version")))
            .and_then(VersionPolicy::parse)
            .unwrap_or_default();
        let r = get(root, "rollout");
        let rg = |k| r.and_then(|r| get(r, k));
        let mut rollout = Rollout::default();
        if let Some(i) = int(rg("max_parallel")) {
            rollout.max_parallel = i.max(1) as usize;
        }
        if rg("waves").is_some() {
            let w = self.wave_sizes(rg("waves"));
            if let Some(
                n @ Item {
                    kind: Kind::Seq(items),
                    ..
                },
            ) = rg("waves")
                && items.is_empty()
            {
                self.push(
                    Problem::new(Code::BadWave, "`waves` is empty")
                        .at(n.span)
                        .label("no wave"),
                );
            } else if !w.is_empty() {
                rollout.waves = w;
            }
        }
        if let Some((a, scope)) = Self::budget(rg("max_failures")) {
            rollout.max_failures = a;
            rollout.budget_scope = scope;
        }
        rollout.domains = self.domains(rg("domains"));
        rollout.min_available = Self::min_available(rg("min_available"));
        rollout.gates = self.gates(rg("gates"));
        rollout.on_failure = match s(rg("on_failure")) {
            Some("rollback-all") => OnFailure::RollbackAll,
            Some("stop") => OnFailure::Stop,
            _ => OnFailure::Rollback,
        };
        if let Some(Kind::Bool(b)) = rg("permanent").map(|n| &n.kind) {
            rollout.permanent = *b;
        }
        rollout.pause = duration(rg("pause"), Duration::ZERO);
        if let Some(i) = int(rg("max_connections")) {
            rollout.max_connections = i.max(1) as usize;
        }
        if s(rg("preflight")) == Some("wave") {
            rollout.preflight = crate::plan::PreflightScope::Wave;
        }

        // Plan-level health timing is the default of every check, the groups' included; a
        // block with timing only is fine when no node would need its check.
        let timing = self.health_timing(get(root, "health"), &HealthTiming::default());
        let has_nodes = !list(get(root, "nodes")).is_empty();
        let health = self.health(get(root, "health"), "`health`", &timing, has_nodes);
        let hooks = Self::hooks(get(root, "hooks"), "activate");
        let analysis = self.analysis(get(root, "analysis"));
        let notify = self.notify(get(root, "notify"));
        let window = self.window(get(root, "window"));
        let plan_to = version(get(root, "to"));
        let plan_sha = at_str(get(root, "sha256"));
        for sha in plan_sha.iter() {
            self.check_sha(sha);
        }

        let defaults = get(root, "defaults");
        let inherited = Inherited {
            root: at_str(defaults.and_then(|d| get(d, "root"))).filter(|a| !a.value.is_empty()),
            vars: self.vars(defaults.and_then(|d| get(d, "vars"))),
            tags: Self::tags(defaults.and_then(|d| get(d, "tags"))),
            labels: Self::labels(defaults.and_then(|d| get(d, "labels"))),
            to: plan_to,
            to_written: get(root, "to").is_some(),
            sha256: plan_sha,
            policy,
            platform: self.platform(defaults.and_then(|d| get(d, "platform"))),
        };

        let mut names: HashMap<String, Span> = HashMap::new();
        let mut nodes = Vec::new();
        for (i, n) in list(get(root, "nodes")).iter().enumerate() {
            if let Some(t) = self.node(n, i, &mut names, &inherited) {
                nodes.push(t);
            }
        }
        let mut groups = Vec::new();
        for g in list(get(root, "groups")) {
            if let Some(t) = self.group(g, &mut names, &timing) {
                groups.push(t);
            }
        }
        let mut scripted = Vec::new();
        for t in list(get(root, "scripted")) {
            if let Some(t) = self.scripted(t, &mut names, &timing, policy) {
                scripted.push(t);
            }
        }

        let (repository, mirror) = match at_str(get(root, "repository")) {
            Some(u) if crate::mirror::is_url(&u.value) => {
                match crate::mirror::cache_dir(&u.value) {
                    Ok(value) => (
                        Some(At {
                            value,
                            span: u.span,
                        }),
                        Some(u),
                    ),
                    Err(why) => {
                        self.push(
                            Problem::new(Code::Path, why)
                                .at(u.span)
                                .label("its packages need a cache"),
                        );
                        (None, Some(u))
                    }
                }
            }
            _ => (self.path(get(root, "repository"), "repository"), None),
        };
        if !list(get(root, "nodes")).is_empty() && get(root, "product").is_none() {
            self.push(
                Problem::new(
                    Code::MissingKey,
                    "the plan has nodes but no `product` to find their packages by",
                )
                .at(get(root, "nodes").map_or(Span::default(), |n| Span::new(n.span.start, 0)))
                .label("nodes need a product")
                .help("add `product: <name>`, the name release packages start with (e.g. emqx)"),
            );
        }
        if !list(get(root, "nodes")).is_empty() && get(root, "repository").is_none() {
            self.push(
                Problem::new(
                    Code::MissingKey,
                    "the plan has nodes but no `repository` to take their packages from",
                )
                .at(get(root, "nodes").map_or(Span::default(), |n| Span::new(n.span.start, 0)))
                .label("nodes need packages")
                .help("add `repository: <dir>`, the directory holding the release packages"),
            );
        }
        let sections = ["nodes", "groups", "scripted"];
        if sections.iter().all(|k| get(root, k).is_none()) {
            self.push(
                Problem::new(Code::NoTargets, "the plan lists no nodes and no groups")
                    .at(Span::new(0, 0)),
            );
        } else if sections.iter().all(|k| list(get(root, k)).is_empty()) {
            let at = sections
                .iter()
                .find_map(|k| get(root, k))
                .map_or(Span::default(), |n| n.span);
            self.push(
                Problem::new(Code::NoTargets, "the plan's target lists are empty")
                    .at(at)
                    .label("empty"),
            );
        }

        let plan = Plan {
            dir: self.dir.clone(),
            file,
            name,
            product,
            runtime,
            runtime_compat: s(get(root, "runtime_compat"))
                .and_then(crate::package::RuntimeRule::parse)
                .unwrap_or_default(),
            repository,
            mirror,
            via_controller: s(get(root, "repository_via")) == Some("controller"),
            edition,
            state: self.path(get(root, "state"), "state").map(|a| a.value),
            ssh_config: self
                .path(get(root, "ssh_config"), "ssh_config")
                .map(|a| a.value),
            ssh_host_keys: match s(get(root, "ssh_host_keys")) {
                Some("accept-new") => HostKeys::AcceptNew,
                _ => HostKeys::Strict,
            },
            agents: self.path(get(root, "agents"), "agents").map(|a| a.value),
            trust: self.trust(get(root, "trust")),
            policy,
            rollout,
            health,
            hooks,
            window,
            analysis,
            notify,
            nodes,
            groups,
            scripted,
        };
        self.placeholders(&plan);
        self.check_rollout(&plan);
        Some(plan)
    }
}

fn name_list(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}
