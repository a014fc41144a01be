//! Remote stores: a node's store on another host, reached over SSH and served there by
//! the same `Store` code (`fleetup __agent`). Callers use the store seam
//! (`run::node::seam::NodeStore`), which holds either a local `Store` or a [`RemoteStore`].

pub mod agent;
pub mod link;
pub mod ssh;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use semver::Version;

use crate::diagnostics::{Code, Problem};
use crate::plan::SshAddr;
use crate::store::{self, Ctx, Outcome, StoreState};
use agent::{Reply, Request, StoreOp, WireConfig, WireCtx};
pub use ssh::{Hosts, Lease, SshSettings};

fn op_name(op: StoreOp) -> &'static str {
    match op {
        StoreOp::Unpack => "the unpack",
        StoreOp::Upgrade | StoreOp::Install => "the install",
        StoreOp::Downgrade => "the downgrade",
        StoreOp::Uninstall => "the uninstall",
        StoreOp::Revert => "the switch back",
        StoreOp::RollBackTo => "the rollback",
    }
}

/// Runs `argv` on the host `session` reaches (a command of a scripted target): what it
/// printed, or why it failed (`Code::HookFailed` with its output, or the session's end).
pub fn run_there(session: &mut Lease, argv: &[String], limit: Duration) -> Result<String, Problem> {
    let req = Request::Run {
        argv: argv.to_vec(),
        timeout_ms: limit.as_millis() as u64,
    };
    let during = "a command";
    match session.call(&req, during, limit + Duration::from_secs(60), &mut |_| {})? {
        Reply::Output { text } => Ok(text),
        other => Err(session.unexpected(during, &other)),
    }
}

/// A `command` health check run on the host of `session`: failed for good when the host
/// says it exited with a status `give_up` lists.
pub fn check_there(
    session: &mut Lease,
    argv: &[String],
    limit: Duration,
    give_up: &[u16],
) -> Result<(), crate::health::Miss> {
    let req = Request::Check {
        argv: argv.to_vec(),
        timeout_ms: limit.as_millis() as u64,
        give_up: give_up.to_vec(),
    };
    let during = "a health check";
    match session.call(&req, during, limit + Duration::from_secs(60), &mut |_| {}) {
        Ok(Reply::Done { .. }) => Ok(()),
        Ok(other) => Err(crate::health::Miss::again(
            session.unexpected(during, &other).message,
        )),
        Err(p) => Err(crate::health::Miss {
            for_good: p.code == Code::HealthGaveUp,
            why: p.message,
        }),
    }
}

/// A node's store on a host, served by `fleetup __agent` over a channel of the host's
/// session.
pub struct RemoteStore {
    session: Lease,
    hosts: Arc<Hosts>,
    root: String,
    config: WireConfig,
    /// The host's platform, as it reported it (for a store with no release yet).
    platform: Option<crate::package::Platform>,
    /// Manual commands fill open values from the host's `<root>/node.toml`.
    node_config: bool,
}

impl RemoteStore {
    /// Opens the store `root` on the host at `addr`; with `lock`, the agent holds its
    /// lock until the session ends.
    pub fn open(
        hosts: &Arc<Hosts>,
        addr: &SshAddr,
        root: &Path,
        ctx: &Ctx,
        lock: bool,
        node_config: bool,
    ) -> Result<RemoteStore, Problem> {
        let mut session = hosts.channel(addr, lock)?;
        let root = root.display().to_string();
        let req = Request::Open {
            root: root.clone(),
            lock,
            run: ctx.run.clone(),
            lock_wait_ms: ctx.lock_wait.as_millis() as u64,
        };
        let during = format!("opening the store {root}");
        let limit = ctx.lock_wait + Duration::from_secs(120);
        let (config, platform) = match session.call(&req, &during, limit, &mut |_| {})? {
            Reply::Opened {
                config, platform, ..
            } => (config, platform),
            r => return Err(session.unexpected(&during, &r)),
        };
        Ok(RemoteStore {
            session,
            hosts: hosts.clone(),
            root,
            config,
            platform: platform.and_then(|p| crate::package::Platform::parse(&p).ok()),
            node_config,
        })
    }

    /// The values of the host's `<root>/node.toml` a controller needs.
    pub fn config(&self) -> &WireConfig {
        &self.config
    }

    /// One store operation on the host, the package sent first when it needs one.
    pub fn op(
        &mut self,
        op: StoreOp,
        v: &Version,
        permanent: bool,
        other: Option<&Version>,
        ctx: &mut Ctx,
    ) -> Result<Outcome, Problem> {
        let repo = match (op, &ctx.repo) {
            (StoreOp::Unpack | StoreOp::Upgrade | StoreOp::Install, Some(dir)) => {
                self.send_package(v, dir, ctx)?
            }
            _ => None,
        };
        let mut wire = WireCtx::from_ctx(ctx, None);
        if let Some((dir, digest, signature)) = repo {
            wire.repo = Some(dir);
            wire.sha256 = Some(digest);
            wire.signature = signature;
        }
        let req = Request::Store {
            op,
            version: v.clone(),
            permanent,
            other: other.cloned(),
            node_config: self.node_config,
            ctx: Box::new(wire),
        };
        let during = format!("{} of {v}", op_name(op));
        let limit = ctx.lock_wait + ctx.activation.timeout * 2 + Duration::from_secs(900);
        match self.session.call(&req, &during, limit, ctx.say)? {
            Reply::Done {
                outcome: Some(outcome),
            } => Ok(outcome),
            other => Err(self.session.unexpected(&during, &other)),
        }
    }

    /// A `command` health check run on the host.
    pub fn check(
        &mut self,
        argv: &[String],
        limit: Duration,
        give_up: &[u16],
    ) -> Result<(), crate::health::Miss> {
        check_there(&mut self.session, argv, limit, give_up)
    }

    pub fn state(&mut self) -> Result<Option<StoreState>, Problem> {
        let during = format!("reading the store {}", self.root);
        let limit = Duration::from_secs(120);
        match self
            .session
            .call(&Request::State, &during, limit, &mut |_| {})?
        {
            Reply::State { state } => Ok(state),
            other => Err(self.session.unexpected(&during, &other)),
        }
    }

    /// Sends the package of `v` from the local `repo` unless the store has the release:
    /// the directory holding it on the host, and its digest (checked there again).
    fn send_package(
        &mut self,
        v: &Version,
        repo: &Path,
        ctx: &Ctx,
    ) -> Result<Option<(String, String, Option<String>)>, Problem> {
        let st = self.state()?;
        if st.as_ref().is_some_and(|s| s.get(v).is_some()) {
            return Ok(None);
        }
        let cfg = if self.node_config {
            self.config.clone()
        } else {
            WireConfig::default()
        };
        let product = ctx
            .product
            .clone()
            .or_else(|| st.as_ref().map(|s| s.product.clone()))
            .or(cfg.product)
            .ok_or_else(|| {
                Problem::new(
                    Code::UnknownProduct,
                    format!(
                        "{}: the store {} is empty and no product is named",
                        self.session.label(),
                        self.root
                    ),
                )
            })?;
        let empty = StoreState::new(&product);
        let want = store::wanted(
            st.as_ref().unwrap_or(&empty),
            ctx.edition.as_deref().or(cfg.edition.as_deref()),
            ctx.platform.as_ref(),
            self.platform.as_ref(),
            &ctx.runtime,
        );
        // From a mirror, the host downloads it itself: the controller sends no byte of it.
        if let Some(m) = &ctx.mirror {
            let index = m.repository(&product, &ctx.runtime);
            if let crate::package::Lookup::Found(pkg) = index.find(v, &want)
                && let Some(digest) = m.digest(&pkg.file)
            {
                let digest = digest.to_owned();
                let trust = ctx.trust.as_ref().map(|t| t.written()).unwrap_or_default();
                let req = Request::Fetch {
                    url: format!("{}{}", m.url, pkg.file),
                    file: pkg.file.clone(),
                    sha256: digest.clone(),
                    trust,
                    timeout_ms: m.timeout.as_millis() as u64,
                    ca: m.ca.clone(),
                };
                let remote_dir = self.hosts.fetch_package(&mut self.session, &digest, &req)?;
                return Ok(Some((remote_dir, digest, None)));
            }
            if ctx.trust.is_some() {
                return Err(Problem::new(
                    Code::PackageSignature,
                    format!(
                        "the mirror has no single package of {v} for this node; with `trust`, a package must come from the mirror with its signature"
                    ),
                ));
            }
            return Ok(None);
        }
        let (dir, pkg) = match store::locate_package(
            &[repo.to_owned()],
            &product,
            &ctx.runtime,
            v,
            &want,
        ) {
            Ok(found) => found,
            // The host's releases/ may hold it; the store there says if not.
            Err(p) if p.code == Code::PackageMissing && ctx.trust.is_none() => return Ok(None),
            // With `trust`, packages come from the repository, where they are verified.
            Err(p) if p.code == Code::PackageMissing => {
                return Err(Problem::new(
                    Code::PackageSignature,
                    format!(
                        "{}; with `trust`, a package must come from the repository with its signature",
                        p.message
                    ),
                ));
            }
            Err(p) => return Err(p),
        };
        let path = dir.join(&pkg.file);
        let digest = self.hosts.digest(&path)?;
        // Checked here first: a package that does not match is never sent.
        let mut expected = Vec::new();
        if let Some(d) =
            crate::package::sidecar_sha256(&path).map_err(|e| Problem::new(Code::Checksum, e))?
        {
            expected.push((d, format!("{}.sha256", path.display())));
        }
        if let Some(pin) = &ctx.sha256 {
            expected.push((pin.to_ascii_lowercase(), "the pinned sha256".into()));
        }
        expected.extend(store::index_digest(ctx, &pkg.file));
        if let Some((want, from)) = expected.iter().find(|(w, _)| *w != digest) {
            return Err(Problem::new(
                Code::Checksum,
                format!("{} has SHA-256 {digest}, but {from} says {want}", pkg.file),
            ));
        }
        // Verified here, after its digest was taken: the host checks what it receives
        // against that digest, so what it unpacks is what was verified.
        if let Some(trust) = &ctx.trust {
            trust.verify(&path, None)?;
        }
        let remote_dir = self
            .hosts
            .send_package(&mut self.session, &path, &pkg.file, &digest)?;
        // Its signature goes along (a few hundred bytes): a host with `[trust]` checks it.
        let signature = std::fs::metadata(crate::signature::sig_path(&path))
            .ok()
            .filter(|m| m.len() <= 64 << 10)
            .and_then(|_| std::fs::read_to_string(crate::signature::sig_path(&path)).ok());
        Ok(Some((remote_dir, digest, signature)))
    }
}
