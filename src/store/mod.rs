//! The node release store (SPEC §2): releases/RELEASES, unpacked trees, and the
//! `current` and `permanent` links, changed only under the store's lock.
//!
//! RELEASES is the truth and the links follow it. Each step is atomic on its own (state
//! file replaced by rename, links switched by rename, trees renamed into place from
//! staging); before a hook runs, the intended change is recorded as `pending`, so the
//! next command finds an interrupted change and puts the node back on its previous
//! release before doing anything else. Messages are handed to the caller's `say`; this
//! module never prints.
//!
//! Callers reach a node's store through `run::node::seam::NodeStore`, which holds this
//! `Store` or a store on another host (`crate::remote`), served there by this same code.

pub mod state;
pub mod unpack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;
use serde::Deserialize;

use crate::diagnostics::{Code, Problem};
use crate::lock;
use crate::package::{self, Lookup, PackageName, Platform, Repository, VersionPolicy, Wanted};
use crate::template::Template;
pub use state::{Pending, Release, ReleaseState, StoreState, read_state, write_state};

/// How the running software is told to pick up a release (SPEC §2.2).
#[derive(Clone, Debug, Default)]
pub struct Activation {
    pub command: Option<Vec<Template>>,
    pub timeout: Duration,
    /// Values for the command's placeholders besides root, version and previous.
    pub vars: BTreeMap<String, String>,
}

/// Everything a store operation needs besides the store itself.
pub struct Ctx<'a> {
    pub say: &'a mut dyn FnMut(String),
    pub product: Option<String>,
    pub runtime: String,
    pub edition: Option<String>,
    pub repo: Option<PathBuf>,
    /// Expected SHA-256 of the package, when the caller pins one.
    pub sha256: Option<String>,
    pub policy: VersionPolicy,
    /// How alike two releases' runtimes must be (the product's `runtime_compat`).
    pub runtime_rule: package::RuntimeRule,
    /// The node's platform when its store cannot tell (a node with no release yet): the
    /// plan's `platform:` or `--platform`.
    pub platform: Option<Platform>,
    /// The platform of the machine the store is on, when known (a remote agent reads its
    /// host's): it picks among several platforms when nothing else does.
    pub host_platform: Option<Platform>,
    pub activation: Activation,
    pub lock_wait: Duration,
    pub run: Option<String>,
    pub limits: unpack::Limits,
    /// `${VAR}` values that win over this process's environment (a remote node gets the
    /// controller's).
    pub env: BTreeMap<String, String>,
    /// Keys a package must be signed by before it is unpacked (`trust.minisign`).
    pub trust: Option<crate::signature::Trust>,
    /// A mirror remote hosts download packages from themselves.
    pub mirror: Option<std::sync::Arc<crate::mirror::Mirror>>,
    /// The mirror whose index listed the package: its digest there is checked against
    /// the copy the store unpacks, not only the `.sha256` beside it in the cache.
    pub index: Option<std::sync::Arc<crate::mirror::Mirror>>,
}

impl<'a> Ctx<'a> {
    /// A context with every default: no product, the `otp` runtime, no repository, no hook.
    pub fn bare(say: &'a mut dyn FnMut(String)) -> Ctx<'a> {
        Ctx {
            say,
            product: None,
            runtime: "otp".into(),
            edition: None,
            repo: None,
            sha256: None,
            policy: VersionPolicy::Patch,
            runtime_rule: package::RuntimeRule::Major,
            platform: None,
            host_platform: None,
            activation: Activation::default(),
            lock_wait: Duration::ZERO,
            run: None,
            limits: Default::default(),
            env: BTreeMap::new(),
            trust: None,
            mirror: None,
            index: None,
        }
    }

    fn say(&mut self, s: impl Into<String>) {
        (self.say)(s.into())
    }

    /// A warning among the store's lines: it starts with [`WARNING`], so a printer can send
    /// it to stderr (EMQX's own lines stay on stdout, word for word).
    fn warn(&mut self, s: impl std::fmt::Display) {
        (self.say)(format!("{WARNING}{s}"))
    }
}

/// How a warning line of the store begins.
pub const WARNING: &str = "Warning: ";

/// `<root>/node.toml`: what a manual `fleetup node` command needs to know about a node.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub product: Option<String>,
    pub runtime: Option<String>,
    /// How alike two releases' runtimes must be: `major` (default), `minor`, `exact`.
    pub runtime_compat: Option<String>,
    pub edition: Option<String>,
    pub activate: Option<ActivateConfig>,
    /// `[trust] minisign = [KEY…]`: keys packages must be signed by.
    pub trust: Option<TrustConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    pub minisign: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateConfig {
    pub command: Vec<String>,
    pub timeout: Option<String>,
}

impl NodeConfig {
    pub fn read(root: &Path) -> Result<NodeConfig, Problem> {
        let path = root.join("node.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NodeConfig::default()),
            Err(e) => {
                return Err(Problem::new(
                    Code::Io,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        };
        toml::from_str(&text).map_err(|e| {
            Problem::new(
                Code::NodeConfig,
                format!("{}: {}", path.display(), e.message()),
            )
        })
    }

    /// The keys of its `[trust]`, if it has one; a key that is none is an error, never
    /// skipped.
    pub fn trust_keys(&self, root: &Path) -> Result<Option<crate::signature::Trust>, Problem> {
        let Some(t) = &self.trust else {
            return Ok(None);
        };
        crate::signature::Trust::new(&t.minisign)
            .map(Some)
            .map_err(|(i, e)| {
                Problem::new(
                    Code::NodeConfig,
                    format!(
                        "{}: key {} of [trust] minisign is {e}",
                        root.join("node.toml").display(),
                        i + 1
                    ),
                )
            })
    }

    pub fn activation(&self, root: &Path) -> Result<Activation, Problem> {
        let Some(a) = &self.activate else {
            return Ok(Activation {
                timeout: Duration::from_secs(300),
                ..Default::default()
            });
        };
        let bad = |m: String| {
            Problem::new(
                Code::NodeConfig,
                format!("{}: {m}", root.join("node.toml").display()),
            )
        };
        if a.command.is_empty() {
            return Err(bad("`activate.command` is empty".into()));
        }
        let command = a
            .command
            .iter()
            .map(|c| Template::parse(c).map_err(|e| bad(format!("`{c}`: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = match &a.timeout {
            Some(t) => crate::duration::parse_duration(t)
                .ok_or_else(|| bad(format!("`{t}` is not a duration")))?,
            None => Duration::from_secs(300),
        };
        Ok(Activation {
            command: Some(command),
            timeout,
            vars: BTreeMap::new(),
        })
    }
}

/// What a store operation did, for callers that go on (fleet runs, reports).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing needed doing.
    Unchanged,
    Unpacked,
    /// Installed (and maybe made permanent), from `previous`.
    Installed {
        previous: Option<Version>,
        permanent: bool,
    },
    MadePermanent,
    Uninstalled,
}

pub struct Store {
    pub root: PathBuf,
    releases: PathBuf,
    /// Set when a fleet run holds the lock across several operations.
    held: Option<lock::Lock>,
}

fn io(what: &Path, e: std::io::Error) -> Problem {
    Problem::new(Code::Io, format!("{}: {e}", what.display()))
}

/// The package an upgrade of this store takes: the edition asked for, else the running
/// release's (else ce); the running release's platform and runtime, else `platform`,
/// else the host's when it decides.
pub fn wanted(
    st: &StoreState,
    asked: Option<&str>,
    platform: Option<&Platform>,
    host: Option<&Platform>,
    runtime: &str,
) -> Wanted {
    let running = st
        .running()
        .and_then(|r| PackageName::parse(&r.package, &st.product, runtime).ok());
    let mut want = Wanted::of(running.as_ref(), asked, platform);
    want.host = host.cloned();
    want
}

/// The one package of `product` `v` that `want` names, in the first of `dirs` holding one.
pub fn locate_package(
    dirs: &[PathBuf],
    product: &str,
    runtime: &str,
    v: &Version,
    want: &Wanted,
) -> Result<(PathBuf, PackageName), Problem> {
    let edition = &want.edition;
    let mut builds = Vec::new();
    // Files that look like a package of `v` but whose names cannot be read: named when
    // nothing else is found, so "not found" never hides a misnamed package.
    let mut unreadable = Vec::new();
    let mut package = None;
    let mut other_editions = Vec::new();
    // "ce " for EMQX's repositories; nothing for a product without editions.
    let mut edition_words = String::new();
    for dir in dirs {
        let repo = match Repository::scan(dir, product, runtime) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(dir, e)),
        };
        // Each file of `v` passed over, and why (a misnamed one, a runtime read as a
        // pre-release).
        unreadable.extend(repo.passed_over(v));
        if edition_words.is_empty() {
            edition_words = repo.edition_words(edition);
        }
        match repo.find(v, want) {
            Lookup::Found(p) => {
                package = Some((dir.clone(), p.clone()));
                break;
            }
            Lookup::Undecided(ps) => {
                return Err(Problem::new(
                    Code::PackagePlatform,
                    format!(
                        "{} holds {product} {v} {edition} for {} platforms ({}) and this store runs no release to tell which is its own",
                        dir.display(),
                        ps.len(),
                        package::platform_list(&ps)
                    ),
                )
                .help("pass --platform OS-ARCH (one of those listed), or give the node `platform:` in the plan"));
            }
            // The only packages are for other platforms: one is taken, so the rules
            // (same-os, same-arch) say what is wrong, as for another edition.
            Lookup::OtherBuilds(ps) if ps.len() == 1 && want.platform.is_some() => {
                package = Some((dir.clone(), ps[0].clone()));
                break;
            }
            Lookup::OtherBuilds(ps) => builds.extend(ps.into_iter().cloned()),
            Lookup::Ambiguous(ps) => {
                return Err(Problem::new(
                    Code::PackageAmbiguous,
                    format!(
                        "{} holds {} packages of {product} {v} {edition}: {}",
                        dir.display(),
                        ps.len(),
                        ps.iter()
                            .map(|p| p.file.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Lookup::Missing { other_editions: o } => {
                other_editions.extend(o.into_iter().map(|p| p.file.clone()))
            }
        }
    }
    let Some((dir, pkg)) = package else {
        if !builds.is_empty() {
            return Err(Problem::new(
                Code::PackageMissing,
                format!(
                    "Release {v} not found for {}: the {edition} packages of {product} {v} are built for {}",
                    want.build(),
                    package::build_list(&builds)
                ),
            )
            .help("put the package built for this node's platform and flavour into the repository"));
        }
        if !other_editions.is_empty() {
            return Err(Problem::new(
                Code::RuleEdition,
                format!(
                    "there is no {edition} package of {v}, only another edition: {}",
                    other_editions.join(", ")
                ),
            ));
        }
        let where_ = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        let mut msg = format!(
            "Release {v} not found: no {edition_words}package of {product} {v} in {where_}"
        );
        if !unreadable.is_empty() {
            msg.push_str(&format!("; passed over: {}", unreadable.join("; ")));
        }
        return Err(Problem::new(Code::PackageMissing, msg).help(
            "put the package into releases/ or name a repository with --repo; names are <product>[-<edition>]-<version>[-<runtime>]-<os>-<arch>.zip (or .tar.gz)",
        ));
    };
    Ok((dir, pkg))
}

/// One operation on a store, as `fleetup node` names them: the one list, dispatched by
/// [`Store::apply`] here and by the agent on a host (it travels in `Request::Store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreOp {
    Unpack,
    Upgrade,
    /// `install`: an upgrade that also switches to a release already in the store.
    Install,
    Downgrade,
    Uninstall,
    Revert,
    RollBackTo,
}

impl Store {
    /// Operation `op` on release `v`: `permanent` for an upgrade or install; `other` is
    /// the release a `roll-back-to` leaves (`v` itself when not given).
    pub fn apply(
        &self,
        op: StoreOp,
        v: &Version,
        permanent: bool,
        other: Option<&Version>,
        ctx: &mut Ctx,
    ) -> Result<Outcome, Problem> {
        match op {
            StoreOp::Unpack => self.unpack(v, ctx),
            StoreOp::Upgrade => self.upgrade(v, permanent, ctx),
            StoreOp::Install => self.install(v, permanent, ctx),
            StoreOp::Downgrade => self.downgrade(v, ctx),
            StoreOp::Uninstall => self.uninstall(v, ctx),
            StoreOp::Revert => self.revert(v, ctx).map(|()| Outcome::Unchanged),
            StoreOp::RollBackTo => self
                .roll_back_to(v, other.unwrap_or(v), ctx)
                .map(|()| Outcome::Unchanged),
        }
    }

    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_owned(),
            releases: root.join("releases"),
            held: None,
        }
    }

    /// Takes the store's lock and keeps it until the `Store` is dropped, so a sequence of
    /// operations (install, health check, make permanent) is one change to other writers.
    pub fn locked(root: &Path, ctx: &Ctx) -> Result<Store, Problem> {
        let mut s = Store::new(root);
        std::fs::create_dir_all(&s.releases).map_err(|e| io(&s.releases, e))?;
        s.held = Some(s.lock(ctx)?);
        Ok(s)
    }

    fn tree(&self, v: &Version) -> PathBuf {
        self.releases.join(v.to_string())
    }

    fn load(&self) -> Result<Option<StoreState>, Problem> {
        read_state(&self.root).map_err(|e| Problem::new(Code::StoreUnreadable, e))
    }

    fn save(&self, st: &StoreState) -> Result<(), Problem> {
        write_state(&self.root, st).map_err(|e| Problem::new(Code::Io, e))
    }

    /// The state, read without the lock; `None` for a store that has no release yet.
    pub fn state(&self) -> Result<Option<StoreState>, Problem> {
        self.load()
    }

    fn lock(&self, ctx: &Ctx) -> Result<lock::Lock, Problem> {
        lock::acquire(
            &self.releases,
            &format!("the store {}", self.root.display()),
            ctx.run.as_deref(),
            ctx.lock_wait,
        )
    }

    /// Points `current` and `permanent` at what the state says.
    fn sync_links(&self, st: &StoreState) -> Result<(), Problem> {
        for (name, rel) in [("current", st.running()), ("permanent", st.permanent())] {
            let link = self.root.join(name);
            match rel {
                Some(r) => {
                    let want = Path::new("releases").join(r.version.to_string());
                    if std::fs::read_link(&link).ok().as_deref() != Some(want.as_path()) {
                        crate::fsutil::replace_symlink(&want, &link).map_err(|e| io(&link, e))?;
                    }
                }
                None => {
                    if link.symlink_metadata().is_ok() {
                        std::fs::remove_file(&link).map_err(|e| io(&link, e))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes what a killed command left behind and finishes or undoes its change.
    fn repair(&self, st: &mut Option<StoreState>, ctx: &mut Ctx) -> Result<(), Problem> {
        if let Ok(entries) = std::fs::read_dir(&self.releases) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".staging-") || name.starts_with(".trash-") {
                    let _ = std::fs::remove_dir_all(e.path());
                } else if name.starts_with(".tmp-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for name in ["current", "permanent"] {
            let _ = std::fs::remove_file(
                self.root
                    .join(format!(".{name}.tmp-{}", std::process::id())),
            );
        }
        let Some(s) = st.as_mut() else { return Ok(()) };
        if let Some(p) = s.pending.clone() {
            // The interrupted change's hook may still run (its own children survive the
            // death of the fleetup that started it): stopped before anything else runs.
            if let Some(pid) = crate::hook::stop_tracked(&self.releases.join(".hook")) {
                ctx.say(format!(
                    "Stopped the activate hook the interrupted {} left running (pid {pid}).",
                    p.action
                ));
            }
            let back = p
                .previous
                .as_ref()
                .map_or("no release".to_owned(), |v| v.to_string());
            ctx.say(format!(
                "Found an interrupted {} of {} (started {}); switching back to {back}.",
                p.action, p.version, p.since
            ));
            self.sync_links(s)?;
            if let Some(prev) = s.running().cloned() {
                self.activate(&prev.version, Some(&p.version), ctx).map_err(|e| {
                    Problem::new(
                        Code::RollbackFailed,
                        format!("the interrupted {} of {} could not be undone: activating {} again failed: {e}", p.action, p.version, prev.version),
                    )
                })?;
            }
            s.pending = None;
            self.save(s)?;
        }
        self.sync_links(s)
    }

    fn activate(
        &self,
        v: &Version,
        previous: Option<&Version>,
        ctx: &mut Ctx,
    ) -> Result<(), String> {
        let Some(cmd) = &ctx.activation.command else {
            return Ok(());
        };
        // Hooks get absolute paths: they may change directory.
        let abs = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        let root = abs.display().to_string();
        let release_dir = abs.join("releases").join(v.to_string());
        let version = v.to_string();
        let prev = previous.map(|p| p.to_string()).unwrap_or_default();
        let mut argv = Vec::with_capacity(cmd.len());
        // What messages show of the hook: its templates, secrets as written.
        let mut shown = Vec::with_capacity(cmd.len());
        for t in cmd {
            let val = |k: &str| match k {
                "root" => Some(root.clone()),
                "version" => Some(version.clone()),
                "previous" => Some(prev.clone()),
                other => ctx.activation.vars.get(other).cloned(),
            };
            shown.push(t.shown(val));
            argv.push(
                t.render(val, |e| {
                    ctx.env.get(e).cloned().or_else(|| std::env::var(e).ok())
                })
                .map_err(|m| format!("the activate hook cannot be filled: {m:?}"))?,
            );
        }
        let env = [
            ("FLEETUP_ROOT", root.clone()),
            ("FLEETUP_RELEASE_DIR", release_dir.display().to_string()),
            ("FLEETUP_VERSION", version.clone()),
            ("FLEETUP_PREVIOUS_VERSION", prev.clone()),
        ];
        crate::hook::run_tracked(
            &argv,
            &env,
            ctx.activation.timeout,
            Some(&self.releases.join(".hook")),
        )
        .map_err(|e| format!("the activate hook `{}` failed: {e}", shown.join(" ")))
    }

    fn product(&self, st: &Option<StoreState>, v: &Version, ctx: &Ctx) -> Result<String, Problem> {
        if let Some(s) = st {
            return Ok(s.product.clone());
        }
        if let Some(p) = &ctx.product {
            return Ok(p.clone());
        }
        // A fresh store: the product is whatever prefixes this version in the package names
        // whose names read as a package of it (an edition token is not part of the product:
        // `emqx-ee-4.4.17-…` is emqx's ee edition).
        let marker = format!("-{v}-");
        let mut found = std::collections::BTreeSet::new();
        // Archives that mention the version but do not read as a package of it: named,
        // with why, when nothing else tells the product.
        let mut unreadable = Vec::new();
        for dir in std::iter::once(self.releases.clone()).chain(ctx.repo.clone()) {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if package::Archive::of(&name).is_none() || !name.contains(&v.to_string()) {
                    continue;
                }
                let Some(at) = name.find(&marker) else {
                    unreadable.push(name);
                    continue;
                };
                let prefix = &name[..at];
                let product = package::KNOWN_EDITIONS
                    .iter()
                    .chain(ctx.edition.as_deref().iter())
                    .find_map(|ed| prefix.strip_suffix(&format!("-{ed}")))
                    .unwrap_or(prefix);
                if PackageName::parse(&name, product, &ctx.runtime).is_ok_and(|p| &p.version == v) {
                    found.insert(product.to_owned());
                } else {
                    unreadable.push(name);
                }
            }
        }
        match found.len() {
            1 => Ok(found.into_iter().next().unwrap_or_default()),
            0 if !unreadable.is_empty() => {
                // Read as the product its first word names, to say what is wrong with it.
                let why: Vec<String> = unreadable
                    .iter()
                    .map(|name| {
                        let product = name.split('-').next().unwrap_or(name);
                        match PackageName::parse(name, product, &ctx.runtime) {
                            Err(e) => {
                                format!("{} cannot be read ({e})", crate::names::printable(name))
                            }
                            Ok(p) => format!(
                                "{} reads as {product} {}, not {v}",
                                crate::names::printable(name),
                                p.version
                            ),
                        }
                    })
                    .collect();
                Err(Problem::new(
                    Code::UnknownProduct,
                    format!(
                        "no package of version {v} found to tell which product this store holds: {}",
                        why.join("; ")
                    ),
                )
                .help("rename the package as current releases are named (<product>[-<edition>]-<version>[-<runtime>]-<os>-<arch>.zip), or pass --product"))
            }
            0 => Err(Problem::new(
                Code::UnknownProduct,
                format!("no package of version {v} found to tell which product this store holds"),
            )),
            _ => Err(Problem::new(
                Code::UnknownProduct,
                format!(
                    "packages of {v} name several products ({}); which one does this store hold?",
                    found.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Finds the package of `v` in releases/ or the repository, copies it in, verifies its
    /// checksum and unpacks it.
    fn unpack_into(&self, st: &mut StoreState, v: &Version, ctx: &mut Ctx) -> Result<(), Problem> {
        let (dir, pkg) = self.locate(st, v, ctx)?;
        self.unpack_found(st, v, &dir, &pkg, ctx, true)
    }

    /// The package of `v`: in releases/ first, then in the repository.
    fn locate(
        &self,
        st: &StoreState,
        v: &Version,
        ctx: &Ctx,
    ) -> Result<(PathBuf, PackageName), Problem> {
        let dirs: Vec<PathBuf> = std::iter::once(self.releases.clone())
            .chain(ctx.repo.clone())
            .collect();
        let want = wanted(
            st,
            ctx.edition.as_deref(),
            ctx.platform.as_ref(),
            ctx.host_platform.as_ref(),
            &ctx.runtime,
        );
        locate_package(&dirs, &st.product, &ctx.runtime, v, &want)
    }

    fn unpack_found(
        &self,
        st: &mut StoreState,
        v: &Version,
        dir: &Path,
        pkg: &PackageName,
        ctx: &mut Ctx,
        save: bool,
    ) -> Result<(), Problem> {
        ctx.say(format!(
            "Release {v} not found, attempting to unpack releases/{}",
            pkg.file
        ));
        let in_store = self.releases.join(&pkg.file);
        let source = dir.join(&pkg.file);
        // Checksums: the repository's sidecar, one beside the copy in releases/, a pin.
        let mut expected: Vec<(String, String)> = Vec::new();
        for side in [&source, &in_store] {
            match package::sidecar_sha256(side) {
                Ok(Some(d)) => expected.push((d, format!("{}.sha256", side.display()))),
                Ok(None) => {}
                Err(e) => return Err(Problem::new(Code::Checksum, e)),
            }
        }
        if let Some(pin) = &ctx.sha256 {
            expected.push((pin.to_ascii_lowercase(), "the pinned sha256".into()));
        }
        expected.extend(index_digest(ctx, &pkg.file));
        if source != in_store {
            crate::fsutil::copy_atomic(&source, &in_store).map_err(|e| io(&in_store, e))?;
        }
        // Signed by a trusted key, checked on the copy that is unpacked; failing closed.
        // The keys of whoever asks (a plan's `trust`) and the node's own `[trust]` in its
        // node.toml, whoever asks and from wherever (a plan run, a command, over SSH).
        let own = NodeConfig::read(&self.root)
            .and_then(|c| c.trust_keys(&self.root))
            .inspect_err(|_| {
                if source != in_store {
                    let _ = std::fs::remove_file(&in_store);
                }
            })?;
        for trust in ctx.trust.iter().chain(own.iter()) {
            let sig = crate::signature::sig_path(&source);
            if let Err(why) = trust.verify(&in_store, Some(&sig)) {
                if source != in_store {
                    let _ = std::fs::remove_file(&in_store);
                }
                return Err(why);
            }
        }
        if !expected.is_empty() {
            let actual = package::sha256_file(&in_store).map_err(|e| io(&in_store, e))?;
            if let Some((want, from)) = expected.iter().find(|(w, _)| *w != actual) {
                if source != in_store {
                    let _ = std::fs::remove_file(&in_store);
                }
                return Err(Problem::new(
                    Code::Checksum,
                    format!("{} has SHA-256 {actual}, but {from} says {want}", pkg.file),
                ));
            }
        }
        let dest = self.tree(v);
        if dest.exists() {
            // A tree RELEASES does not list is a leftover of a killed unpack, never a release.
            let trash = self
                .releases
                .join(format!(".trash-{v}-{}", std::process::id()));
            std::fs::rename(&dest, &trash).map_err(|e| io(&dest, e))?;
            let _ = std::fs::remove_dir_all(&trash);
        }
        let staging = self
            .releases
            .join(format!(".staging-{v}-{}", std::process::id()));
        if let Err(p) = unpack::unpack(&in_store, &staging, &dest, ctx.limits) {
            // A refused package leaves the store as it was, without its copy.
            if source != in_store {
                let _ = std::fs::remove_file(&in_store);
            }
            return Err(p);
        }
        st.releases.push(Release {
            version: v.clone(),
            package: pkg.file.clone(),
            state: ReleaseState::Unpacked,
        });
        // An install that follows records the release with its pending change in one
        // write; until then an unlisted tree is a leftover, unpacked again if needed.
        if save {
            self.save(st)?;
        }
        ctx.say(format!("Unpacked successfully: \"{v}\""));
        Ok(())
    }

    /// Opens the store for a change: lock, read, repair.
    fn begin(&self, ctx: &mut Ctx) -> Result<(Option<lock::Lock>, Option<StoreState>), Problem> {
        std::fs::create_dir_all(&self.releases).map_err(|e| io(&self.releases, e))?;
        let lock = match self.held {
            Some(_) => None,
            None => Some(self.lock(ctx)?),
        };
        let mut st = self.load()?;
        self.repair(&mut st, ctx)?;
        Ok((lock, st))
    }

    /// `fleetup node unpack`.
    pub fn unpack(&self, v: &Version, ctx: &mut Ctx) -> Result<Outcome, Problem> {
        let (_lock, st) = self.begin(ctx)?;
        let product = self.product(&st, v, ctx)?;
        let mut st = st.unwrap_or_else(|| StoreState::new(&product));
        if let Some(r) = st.get(v) {
            // install_upgrade.escript's words, by state.
            ctx.say(match r.state {
                ReleaseState::Old => format!("Release {v} is marked old."),
                ReleaseState::Unpacked => format!("Release {v} is already unpacked."),
                ReleaseState::Current => format!("Release {v} is already installed and current."),
                ReleaseState::Permanent => {
                    format!("Release {v} is already installed and set permanent.")
                }
            });
            return Ok(Outcome::Unchanged);
        }
        self.unpack_into(&mut st, v, ctx)?;
        Ok(Outcome::Unpacked)
    }

    /// `fleetup node upgrade`: move the node to `v`, a newer release (the rules).
    pub fn upgrade(&self, v: &Version, permanent: bool, ctx: &mut Ctx) -> Result<Outcome, Problem> {
        self.move_to(v, permanent, false, ctx)
    }

    /// `fleetup node install`: as `upgrade`, and a release already in the store is switched
    /// to as EMQX's install does: back to the permanent release (after `--no-permanent`),
    /// or to an old one of the running MAJOR.MINOR.
    pub fn install(&self, v: &Version, permanent: bool, ctx: &mut Ctx) -> Result<Outcome, Problem> {
        self.move_to(v, permanent, true, ctx)
    }

    fn move_to(
        &self,
        v: &Version,
        permanent: bool,
        switch: bool,
        ctx: &mut Ctx,
    ) -> Result<Outcome, Problem> {
        let (_lock, st) = self.begin(ctx)?;
        let product = self.product(&st, v, ctx)?;
        let fresh = st.as_ref().is_none_or(|s| s.running().is_none());
        let mut st = st.unwrap_or_else(|| StoreState::new(&product));
        let in_store = st.get(v).map(|r| r.state);
        if in_store.is_none() {
            // The rules read package names, so a refused upgrade changes nothing.
            let (dir, pkg) = self.locate(&st, v, ctx)?;
            if !fresh {
                self.check_rules(&st, &pkg, ctx)?;
            }
            self.unpack_found(&mut st, v, &dir, &pkg, ctx, false)?;
        }
        let running = st.running().map(|r| r.version.clone());
        let state = st.get(v).map(|r| r.state).unwrap_or(ReleaseState::Unpacked);
        match state {
            ReleaseState::Permanent if running.as_ref() == Some(v) => {
                ctx.say(format!(
                    "Release {v} is already installed, running and set permanent."
                ));
                return Ok(Outcome::Unchanged);
            }
            ReleaseState::Permanent if switch => {
                // Back from a release installed with --no-permanent.
                if let Some(r) = &running {
                    ctx.say(format!("Release {r} is the currently running version."));
                }
            }
            ReleaseState::Permanent => {}
            ReleaseState::Current if !permanent => {
                ctx.say(format!("Release {v} is already installed and current."));
                return Ok(Outcome::Unchanged);
            }
            ReleaseState::Current => {
                ctx.say(format!(
                    "Release {v} is already installed and current, making permanent."
                ));
                self.make_permanent(&mut st, v, ctx)?;
                return Ok(Outcome::MadePermanent);
            }
            ReleaseState::Old | ReleaseState::Unpacked => {}
        }
        if fresh {
            ctx.say(format!("Fresh install of {v}"));
        } else {
            match (state, &running) {
                // Going back to the permanent release: what the node would boot anyway.
                (ReleaseState::Permanent, _) if switch => {}
                (ReleaseState::Old, Some(r)) if switch && v < r => {
                    self.check_going_back(r, v, ctx)?
                }
                _ => {
                    let target = self.package_of(&st, v, ctx)?;
                    self.check_rules(&st, &target, ctx)?;
                }
            }
            match (state, in_store) {
                (ReleaseState::Old, _) => {
                    ctx.say(format!("Release {v} is marked old, switching to it."))
                }
                (ReleaseState::Unpacked, Some(_)) => {
                    ctx.say(format!("Release {v} is already unpacked, now installing."))
                }
                _ => {}
            }
        }
        let previous = self.switch_to(&mut st, v, "install", ctx)?;
        if permanent || fresh {
            self.make_permanent(&mut st, v, ctx)?;
        }
        Ok(Outcome::Installed {
            previous,
            permanent: permanent || fresh,
        })
    }

    /// An install of an old release older than the running one: allowed within the
    /// running MAJOR.MINOR (EMQX's install switches to any release in the store), and said.
    fn check_going_back(
        &self,
        running: &Version,
        v: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), Problem> {
        if (v.major, v.minor) != (running.major, running.minor) {
            return Err(Problem::new(
                Code::Downgrade,
                format!(
                    "cannot install {v} on {}: {running} runs, and going back leaves {}.{}.x",
                    self.root.display(),
                    running.major,
                    running.minor
                ),
            ));
        }
        ctx.warn(format_args!(
            "{v} is older than {running}, which runs now: going back within {}.{}.x.",
            running.major, running.minor
        ));
        Ok(())
    }

    /// The parsed package name of a release the store lists.
    fn package_of(&self, st: &StoreState, v: &Version, ctx: &Ctx) -> Result<PackageName, Problem> {
        let file = st.get(v).map(|r| r.package.clone()).unwrap_or_default();
        PackageName::parse(&file, &st.product, &ctx.runtime).map_err(|e| {
            Problem::new(
                Code::StoreUnreadable,
                format!("the store lists a package whose name does not parse: {e}"),
            )
        })
    }

    /// The rules of SPEC §1.1 between what runs (the current release, else the permanent
    /// one) and the target package.
    fn check_rules(&self, st: &StoreState, target: &PackageName, ctx: &Ctx) -> Result<(), Problem> {
        let Some(from) = st.running() else {
            return Ok(());
        };
        let v = &target.version;
        let a = self.package_of(st, &from.version, ctx)?;
        let violations = package::check_upgrade(&a, target, ctx.policy, ctx.runtime_rule);
        match violations.first() {
            None => Ok(()),
            Some(first) => {
                let mut msg = violations
                    .iter()
                    .map(|x| x.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                if from.version == *v {
                    msg = format!("{v} is already what runs");
                }
                Err(Problem::new(
                    first.code,
                    format!("cannot upgrade {} to {v}: {msg}", self.root.display()),
                ))
            }
        }
    }

    /// Switches `current` to `v` and activates it; on failure puts the previous release
    /// back. Returns the release that was current before.
    fn switch_to(
        &self,
        st: &mut StoreState,
        v: &Version,
        action: &str,
        ctx: &mut Ctx,
    ) -> Result<Option<Version>, Problem> {
        self.check_tree(v)?;
        let previous = st.running().map(|r| r.version.clone());
        st.pending = Some(Pending {
            action: action.to_owned(),
            version: v.clone(),
            previous: previous.clone(),
            since: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        });
        self.save(st)?;
        let link = self.root.join("current");
        crate::fsutil::replace_symlink(&Path::new("releases").join(v.to_string()), &link)
            .map_err(|e| io(&link, e))?;
        if let Err(e) = self.activate(v, previous.as_ref(), ctx) {
            // Back to the previous release: the pending change is undone as a whole.
            st.pending = None;
            self.sync_links(st)?;
            let restored = match &previous {
                Some(p) => self.activate(p, Some(v), ctx).map_err(|e2| {
                    Problem::new(
                        Code::RollbackFailed,
                        format!("{e}; then activating {p} again failed too: {e2}"),
                    )
                }),
                None => Ok(()),
            };
            self.save(st)?;
            restored?;
            let back = previous.map_or("no release".to_owned(), |p| p.to_string());
            return Err(Problem::new(
                Code::ActivationFailed,
                format!("installing {v} failed: {e}; switched back to {back}"),
            ));
        }
        // A release that was current without being permanent is now merely old; the
        // permanent release switched back to runs as what it is.
        st.demote(ReleaseState::Current, ReleaseState::Old);
        if st.get(v).map(|r| r.state) != Some(ReleaseState::Permanent) {
            st.set(v, ReleaseState::Current);
        }
        st.pending = None;
        // The release runs now: a state that cannot say so is no plain I/O error, the
        // node needs a person (the next command repairs it from the pending change).
        self.save(st).map_err(|p| {
            Problem::new(
                Code::StateUnrecorded,
                format!(
                    "{v} runs, but the store's state could not be written: {}",
                    p.message
                ),
            )
        })?;
        ctx.say(format!("Installed Release: {v}"));
        Ok(previous)
    }

    /// The tree of a release about to be switched to must be what fleetup unpacked: a
    /// directory (not a link), there. A store changed by hand is refused, not followed.
    fn check_tree(&self, v: &Version) -> Result<(), Problem> {
        let tree = self.tree(v);
        match std::fs::symlink_metadata(&tree) {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(Problem::new(
                Code::StoreState,
                format!(
                    "the tree of release {v} (releases/{v}) is missing or not a directory: the store was changed by hand"
                ),
            )
            .help(format!(
                "`fleetup node uninstall {v}` and install it again; nothing was switched"
            ))),
        }
    }

    /// What is wrong with the store's links and trees: `current` and `permanent` must
    /// point at the tree of a release RELEASES lists (which one is repaired by the next
    /// command after a kill; a link out of the store is tampering, reported, never
    /// followed), and every installed release's tree must be there.
    pub fn link_problems(&self, st: &StoreState) -> Vec<String> {
        let mut out = Vec::new();
        for name in ["current", "permanent"] {
            let Ok(is) = std::fs::read_link(self.root.join(name)) else {
                continue;
            };
            let listed = st
                .releases
                .iter()
                .any(|r| is == Path::new("releases").join(r.version.to_string()));
            if !listed {
                out.push(format!(
                    "`{name}` points at {}, which is no release of this store",
                    is.display()
                ));
            }
        }
        for r in &st.releases {
            if r.state != ReleaseState::Unpacked
                && !std::fs::symlink_metadata(self.tree(&r.version)).is_ok_and(|m| m.is_dir())
            {
                out.push(format!(
                    "the tree of release {} (releases/{}) is missing",
                    r.version, r.version
                ));
            }
        }
        out
    }

    fn make_permanent(
        &self,
        st: &mut StoreState,
        v: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), Problem> {
        st.demote(ReleaseState::Permanent, ReleaseState::Old);
        st.set(v, ReleaseState::Permanent);
        self.save(st)?;
        self.sync_links(st)?;
        ctx.say(format!("Made release permanent: \"{v}\""));
        Ok(())
    }

    /// `fleetup node downgrade`: back to an older release of the same MAJOR.MINOR.
    pub fn downgrade(&self, v: &Version, ctx: &mut Ctx) -> Result<Outcome, Problem> {
        let (_lock, st) = self.begin(ctx)?;
        let Some(mut st) = st else {
            return Err(Problem::new(
                Code::StoreState,
                format!(
                    "the store {} has no release to downgrade from",
                    self.root.display()
                ),
            ));
        };
        let Some(from) = st.running().cloned() else {
            return Err(Problem::new(
                Code::StoreState,
                "no release runs, so there is nothing to downgrade from",
            ));
        };
        let rel = st.get(v).cloned().ok_or_else(|| {
            Problem::new(Code::StoreState, format!("Release {v} is not in the store; only old or unpacked releases can be downgraded to"))
        })?;
        match rel.state {
            ReleaseState::Old | ReleaseState::Unpacked => {}
            s => {
                return Err(Problem::new(
                    Code::StoreState,
                    format!(
                        "Release {v} is marked {}; downgrade takes an old or unpacked release",
                        s.as_str()
                    ),
                ));
            }
        }
        if *v >= from.version {
            return Err(Problem::new(
                Code::Downgrade,
                format!("{v} is not older than {}, which runs now", from.version),
            )
            .help("to go forward, use `fleetup node upgrade`"));
        }
        if (v.major, v.minor) != (from.version.major, from.version.minor) {
            return Err(Problem::new(
                Code::Downgrade,
                format!(
                    "{} → {v} leaves {}.{}.x: a hot downgrade stays within one MAJOR.MINOR",
                    from.version, from.version.major, from.version.minor
                ),
            ));
        }
        ctx.warn(format_args!(
            "data written by {} may not be readable by {v}.",
            from.version
        ));
        if rel.state == ReleaseState::Old {
            ctx.say(format!("Release {v} is marked old, switching to it."));
        }
        let previous = self.switch_to(&mut st, v, "downgrade", ctx)?;
        self.make_permanent(&mut st, v, ctx)?;
        Ok(Outcome::Installed {
            previous,
            permanent: true,
        })
    }

    /// Undoes an install that is current but not yet permanent (its health check failed):
    /// `current` goes back to the permanent release, which is activated again, and `v` is
    /// left unpacked. On a fresh store there is nothing to go back to: `v` is just
    /// withdrawn.
    pub fn revert(&self, v: &Version, ctx: &mut Ctx) -> Result<(), Problem> {
        let (_lock, st) = self.begin(ctx)?;
        let Some(mut st) = st else { return Ok(()) };
        match st.get(v).map(|r| r.state) {
            Some(ReleaseState::Current) => {
                st.set(v, ReleaseState::Unpacked);
                self.save(&st)?;
                self.sync_links(&st)?;
                if let Some(p) = st.permanent().map(|r| r.version.clone()) {
                    self.activate(&p, Some(v), ctx).map_err(|e| {
                        Problem::new(
                            Code::RollbackFailed,
                            format!("switched back to {p}, but activating it failed: {e}"),
                        )
                    })?;
                    ctx.say(format!("Switched back to {p}"));
                }
                Ok(())
            }
            Some(ReleaseState::Permanent)
                if st
                    .releases
                    .iter()
                    .all(|r| &r.version == v || r.state == ReleaseState::Unpacked) =>
            {
                // The first release of a fresh store: nothing older to run.
                st.set(v, ReleaseState::Unpacked);
                self.save(&st)?;
                self.sync_links(&st)?;
                ctx.say(format!("Withdrew {v}; the store has no other release"));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Puts `previous` back as the permanent, running release after this run made `v`
    /// permanent (`on_failure: rollback-all`). Unlike `downgrade`, this undoes a change the
    /// plan made, so the policy that allowed the upgrade allows its undoing.
    pub fn roll_back_to(
        &self,
        previous: &Version,
        v: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), Problem> {
        let (_lock, st) = self.begin(ctx)?;
        let Some(mut st) = st else { return Ok(()) };
        if st.get(previous).is_none() {
            return Err(Problem::new(
                Code::RollbackFailed,
                format!(
                    "{previous} is no longer in the store {}",
                    self.root.display()
                ),
            ));
        }
        if st.permanent().map(|r| &r.version) == Some(previous)
            && st.running().map(|r| &r.version) == Some(previous)
        {
            return Ok(());
        }
        ctx.say(format!("Rolling back {v} to {previous}"));
        self.switch_to(&mut st, previous, "rollback", ctx)
            .map_err(|e| Problem::new(Code::RollbackFailed, e.message))?;
        self.make_permanent(&mut st, previous, ctx)?;
        Ok(())
    }

    /// `fleetup node uninstall`: removes an unpacked or old release, its tree and package.
    /// A release that is not there is already uninstalled (as EMQX says, not an error).
    pub fn uninstall(&self, v: &Version, ctx: &mut Ctx) -> Result<Outcome, Problem> {
        let (_lock, st) = self.begin(ctx)?;
        let Some((mut st, rel)) = st.and_then(|s| Some((s.clone(), s.get(v).cloned()?))) else {
            ctx.say(format!("Release {v} is already uninstalled."));
            return Ok(Outcome::Unchanged);
        };
        match rel.state {
            ReleaseState::Current => {
                return Err(Problem::new(
                    Code::StoreState,
                    format!("Uninstall failed: Release {v} is marked current."),
                ));
            }
            ReleaseState::Permanent => {
                return Err(Problem::new(
                    Code::StoreState,
                    format!("Uninstall failed: Release {v} is running."),
                ));
            }
            ReleaseState::Old => ctx.say(format!("Release {v} is marked old, uninstalling it.")),
            ReleaseState::Unpacked => {
                ctx.say(format!("Release {v} is marked unpacked, uninstalling it"))
            }
        }
        // State first: from here on the tree is no release, whatever happens to it.
        st.releases.retain(|r| &r.version != v);
        self.save(&st)?;
        let tree = self.tree(v);
        let trash = self
            .releases
            .join(format!(".trash-{v}-{}", std::process::id()));
        if std::fs::rename(&tree, &trash).is_ok() {
            let _ = std::fs::remove_dir_all(&trash);
        }
        let still_used = st.releases.iter().any(|r| r.package == rel.package);
        if !still_used {
            let _ = std::fs::remove_file(self.releases.join(&rel.package));
            let _ = std::fs::remove_file(self.releases.join(format!("{}.sha256", rel.package)));
        }
        ctx.say(format!("Uninstalled Release: {v}"));
        Ok(Outcome::Uninstalled)
    }
}

/// The digest the mirror's index gave `file`, when the package came from a mirror.
pub fn index_digest(ctx: &Ctx, file: &str) -> Option<(String, String)> {
    let m = ctx.index.as_ref()?;
    let d = m.digest(file)?;
    Some((d.to_owned(), format!("{}SHA256SUMS", m.url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_package_looks_in_each_directory_and_explains_what_it_did_not_take() {
        let d = tempfile::tempdir().unwrap();
        let (empty, repo) = (d.path().join("releases"), d.path().join("repo"));
        std::fs::create_dir_all(&repo).unwrap();
        let touch = |name: &str| std::fs::write(repo.join(name), b"").unwrap();
        touch("emqx-4.4.16-otp24.3-ubuntu20.04-amd64.zip");
        touch("emqx-4.4.17-otp24.3-ubuntu20.04-amd64.zip");
        touch("emqx-4.4.17-otp24.3-el8-amd64.zip");
        touch("emqx-4.4.18-elixir-otp24.3-ubuntu20.04-amd64.zip");
        touch("emqx-4.4.19-otp24.3-ubuntu20.04-.zip");
        let v = |s: &str| Version::parse(s).unwrap();
        let el8 = Platform::parse("el8-arm64").unwrap();
        let ubuntu = Platform::parse("ubuntu20.04-amd64").unwrap();
        let want = |p: Option<&Platform>| Wanted::of(None, None, p);
        let dirs = [empty.clone(), repo.clone()];
        let find = |version: &str, w: &Wanted| locate_package(&dirs, "emqx", "otp", &v(version), w);
        // A directory that does not exist is passed over.
        let (dir, p) = find("4.4.16", &want(Some(&ubuntu))).unwrap();
        assert_eq!(
            (dir, p.file.as_str()),
            (repo.clone(), "emqx-4.4.16-otp24.3-ubuntu20.04-amd64.zip")
        );
        // The only build is another platform's: taken, so that the rules say what is wrong.
        let (_, p) = find("4.4.16", &want(Some(&el8))).unwrap();
        assert_eq!(p.platform(), ubuntu);
        // Two other platforms' builds: none is taken, both are named.
        let e = find(
            "4.4.17",
            &want(Some(&Platform::parse("debian12-amd64").unwrap())),
        )
        .unwrap_err();
        assert_eq!(e.code, Code::PackageMissing);
        assert!(
            e.message.contains("el8-amd64, ubuntu20.04-amd64"),
            "{}",
            e.message
        );
        // Only another flavour and no platform named: not taken either.
        let e = find("4.4.18", &want(None)).unwrap_err();
        assert_eq!(e.code, Code::PackageMissing);
        assert!(e.message.contains("elixir"), "{}", e.message);
        // A file named like the version but unreadable as a package is named.
        let e = find("4.4.19", &want(None)).unwrap_err();
        assert!(
            e.message
                .contains("emqx-4.4.19-otp24.3-ubuntu20.04-.zip cannot be read"),
            "{}",
            e.message
        );
        let e = find("4.4.20", &want(None)).unwrap_err();
        assert!(!e.message.contains(';'), "{}", e.message);
        // A repository that is not a directory is an error, not an empty one.
        let file = d.path().join("not-a-dir");
        std::fs::write(&file, b"").unwrap();
        let e = locate_package(&[file], "emqx", "otp", &v("4.4.16"), &want(None)).unwrap_err();
        assert_eq!(e.code, Code::Io);
    }

    /// A store at `root` with releases `versions` in its repository (empty zips).
    fn repo_of(dir: &Path, versions: &[&str]) -> PathBuf {
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        for v in versions {
            let f =
                std::fs::File::create(repo.join(format!("emqx-{v}-otp24.3-ubuntu20.04-amd64.zip")))
                    .unwrap();
            zip::ZipWriter::new(f).finish().unwrap();
        }
        repo
    }

    /// Runs `f` on the store at `root` with a context taking its packages from `repo`;
    /// what it did and the lines it said.
    fn with_store<T>(
        root: &Path,
        repo: &Path,
        f: impl FnOnce(&Store, &mut Ctx) -> T,
    ) -> (T, Vec<String>) {
        let mut lines = Vec::new();
        let mut say = |l: String| lines.push(l);
        let mut ctx = Ctx::bare(&mut say);
        ctx.product = Some("emqx".into());
        ctx.repo = Some(repo.to_owned());
        let out = f(&Store::new(root), &mut ctx);
        (out, lines)
    }

    fn states(root: &Path) -> Vec<(String, &'static str)> {
        let st = Store::new(root).state().unwrap().unwrap();
        st.sorted()
            .iter()
            .map(|r| (r.version.to_string(), r.state.as_str()))
            .collect()
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn revert_takes_a_current_release_back_to_the_permanent_one_or_withdraws_a_first_one() {
        let d = tempfile::tempdir().unwrap();
        let repo = repo_of(d.path(), &["4.4.0", "4.4.1"]);
        let root = d.path().join("n");
        // The first release of a fresh store, reverted: withdrawn, nothing runs.
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), true, c))
            .0
            .unwrap();
        let (r, said) = with_store(&root, &repo, |s, c| s.revert(&v("4.4.0"), c));
        r.unwrap();
        assert_eq!(said, ["Withdrew 4.4.0; the store has no other release"]);
        assert_eq!(states(&root), [("4.4.0".to_owned(), "unpacked")]);
        assert!(std::fs::symlink_metadata(root.join("current")).is_err());
        // Installed again, then 4.4.1 current but not permanent, reverted: back to 4.4.0.
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), true, c))
            .0
            .unwrap();
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.1"), false, c))
            .0
            .unwrap();
        let (r, said) = with_store(&root, &repo, |s, c| s.revert(&v("4.4.1"), c));
        r.unwrap();
        assert_eq!(said, ["Switched back to 4.4.0"]);
        assert_eq!(
            states(&root),
            [
                ("4.4.1".to_owned(), "unpacked"),
                ("4.4.0".to_owned(), "permanent")
            ]
        );
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            Path::new("releases/4.4.0")
        );
        // A permanent release with another one installed is not withdrawn.
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.1"), true, c))
            .0
            .unwrap();
        let (r, said) = with_store(&root, &repo, |s, c| s.revert(&v("4.4.1"), c));
        r.unwrap();
        assert!(said.is_empty(), "{said:?}");
        assert_eq!(
            states(&root),
            [
                ("4.4.1".to_owned(), "permanent"),
                ("4.4.0".to_owned(), "old")
            ]
        );
    }

    #[test]
    fn an_install_reports_what_it_did_a_fresh_one_permanent_even_unasked() {
        let d = tempfile::tempdir().unwrap();
        let repo = repo_of(d.path(), &["4.4.0", "4.4.1"]);
        let root = d.path().join("n");
        let (out, _) = with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), false, c));
        assert_eq!(
            out.unwrap(),
            Outcome::Installed {
                previous: None,
                permanent: true
            }
        );
        let (out, _) = with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.1"), false, c));
        assert_eq!(
            out.unwrap(),
            Outcome::Installed {
                previous: Some(v("4.4.0")),
                permanent: false
            }
        );
        // `upgrade` to the permanent release below the current one is no upgrade (`install`
        // would switch back to it).
        let (out, said) = with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), true, c));
        assert_eq!(out.unwrap_err().code, Code::RuleNotNewer);
        assert!(said.is_empty(), "{said:?}");
        let (out, _) = with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.1"), true, c));
        assert_eq!(out.unwrap(), Outcome::MadePermanent);
        let (out, _) = with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.1"), true, c));
        assert_eq!(out.unwrap(), Outcome::Unchanged);
    }

    #[test]
    fn the_next_command_clears_what_a_killed_one_left_in_releases() {
        let d = tempfile::tempdir().unwrap();
        let repo = repo_of(d.path(), &["4.4.0"]);
        let root = d.path().join("n");
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), true, c))
            .0
            .unwrap();
        let rel = root.join("releases");
        std::fs::create_dir_all(rel.join(".staging-4.4.1-77/lib")).unwrap();
        std::fs::create_dir_all(rel.join(".trash-4.4.1-77")).unwrap();
        std::fs::write(rel.join(".tmp-RELEASES-77"), b"x").unwrap();
        let (out, _) = with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), true, c));
        assert_eq!(out.unwrap(), Outcome::Unchanged);
        for left in [".staging-4.4.1-77", ".trash-4.4.1-77", ".tmp-RELEASES-77"] {
            assert!(!rel.join(left).exists(), "{left} is still there");
        }
    }

    #[test]
    fn a_missing_tree_is_a_problem_only_for_a_release_that_was_installed() {
        let d = tempfile::tempdir().unwrap();
        let repo = repo_of(d.path(), &["4.4.0", "4.4.1"]);
        let root = d.path().join("n");
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), true, c))
            .0
            .unwrap();
        with_store(&root, &repo, |s, c| s.unpack(&v("4.4.1"), c))
            .0
            .unwrap();
        let store = Store::new(&root);
        let st = store.state().unwrap().unwrap();
        assert!(store.link_problems(&st).is_empty());
        std::fs::remove_dir_all(root.join("releases/4.4.1")).unwrap();
        assert!(
            store.link_problems(&st).is_empty(),
            "an unpacked tree may go"
        );
        std::fs::remove_dir_all(root.join("releases/4.4.0")).unwrap();
        let problems = store.link_problems(&st);
        assert_eq!(
            problems,
            ["the tree of release 4.4.0 (releases/4.4.0) is missing"]
        );
    }

    #[test]
    fn roll_back_to_puts_the_previous_release_back_permanent_and_running() {
        let d = tempfile::tempdir().unwrap();
        let repo = repo_of(d.path(), &["4.4.0", "4.4.1"]);
        let root = d.path().join("n");
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.0"), true, c))
            .0
            .unwrap();
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.1"), true, c))
            .0
            .unwrap();
        let (r, said) = with_store(&root, &repo, |s, c| {
            s.roll_back_to(&v("4.4.0"), &v("4.4.1"), c)
        });
        r.unwrap();
        assert_eq!(said[0], "Rolling back 4.4.1 to 4.4.0");
        assert_eq!(
            states(&root),
            [
                ("4.4.1".to_owned(), "old"),
                ("4.4.0".to_owned(), "permanent")
            ]
        );
        // Already there: nothing said, nothing done.
        let (r, said) = with_store(&root, &repo, |s, c| {
            s.roll_back_to(&v("4.4.0"), &v("4.4.1"), c)
        });
        r.unwrap();
        assert!(said.is_empty(), "{said:?}");
        // Current but not permanent is not "already there".
        with_store(&root, &repo, |s, c| s.upgrade(&v("4.4.1"), false, c))
            .0
            .unwrap();
        let (r, said) = with_store(&root, &repo, |s, c| {
            s.roll_back_to(&v("4.4.0"), &v("4.4.1"), c)
        });
        r.unwrap();
        assert_eq!(said[0], "Rolling back 4.4.1 to 4.4.0");
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            Path::new("releases/4.4.0")
        );
        // Gone from the store: the rollback fails and says why.
        let (r, _) = with_store(&root, &repo, |s, c| {
            s.roll_back_to(&v("4.3.0"), &v("4.4.1"), c)
        });
        let e = r.unwrap_err();
        assert_eq!(e.code, Code::RollbackFailed);
        assert!(
            e.message.contains("4.3.0 is no longer in the store"),
            "{}",
            e.message
        );
    }

    #[test]
    fn node_toml_is_optional_but_never_ignored_when_unreadable() {
        let d = tempfile::tempdir().unwrap();
        // None: the defaults, a 300 s activation timeout and no command.
        let c = NodeConfig::read(d.path()).unwrap();
        assert!(c.product.is_none() && c.activate.is_none());
        let a = c.activation(d.path()).unwrap();
        assert!(a.command.is_none());
        assert_eq!(a.timeout, Duration::from_secs(300));
        // Written: its command and timeout.
        std::fs::write(
            d.path().join("node.toml"),
            "product = \"emqx\"\n[activate]\ncommand = [\"{root}/bin/ctl\", \"restart\"]\ntimeout = \"7s\"\n",
        )
        .unwrap();
        let c = NodeConfig::read(d.path()).unwrap();
        assert_eq!(c.product.as_deref(), Some("emqx"));
        let a = c.activation(d.path()).unwrap();
        assert_eq!(a.command.map(|c| c.len()), Some(2));
        assert_eq!(a.timeout, Duration::from_secs(7));
        // An unknown key, an empty command, a bad duration: refused, naming the file.
        for (text, says) in [
            ("produkt = \"emqx\"\n", "unknown field"),
            ("[activate]\ncommand = []\n", "is empty"),
            (
                "[activate]\ncommand = [\"x\"]\ntimeout = \"soon\"\n",
                "not a duration",
            ),
        ] {
            std::fs::write(d.path().join("node.toml"), text).unwrap();
            let e = NodeConfig::read(d.path())
                .and_then(|c| c.activation(d.path()).map(|_| c))
                .unwrap_err();
            assert_eq!(e.code, Code::NodeConfig, "{text}");
            assert!(
                e.message.contains("node.toml") && e.message.contains(says),
                "{}",
                e.message
            );
        }
        // Unreadable is not absent.
        std::fs::remove_file(d.path().join("node.toml")).unwrap();
        std::fs::create_dir(d.path().join("node.toml")).unwrap();
        assert_eq!(NodeConfig::read(d.path()).unwrap_err().code, Code::Io);
    }
}
