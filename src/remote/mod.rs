//! Remote stores: a node's store on another host, reached over SSH and served there by
//! the same `Store` code (`fleetup __agent`). Callers use the store seam
//! (`store::NodeStore`), which holds either a local `Store` or a [`RemoteStore`].

pub mod agent;
pub mod ssh;

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use semver::Version;

use crate::diagnostics::{Code, Problem};
use crate::plan::SshAddr;
use crate::store::{self, Ctx, Outcome, StoreState};
use agent::{Reply, Request, StoreOp, WireConfig, WireCtx};
pub use ssh::{Host, Hosts, SshSettings};

/// One `fleetup __agent` on a host, over a session of the host's master connection.
pub struct Session {
    host: Arc<Host>,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::fs::File,
}

impl Session {
    pub fn start(host: Arc<Host>) -> Result<Session, Problem> {
        let bin = host.binary()?;
        let mut cmd = host.ssh();
        cmd.arg(format!(
            "{} __agent --dir {}",
            ssh::sh_quote(&bin),
            ssh::sh_quote(&host.dir)
        ));
        let stderr = tempfile::tempfile()
            .map_err(|e| Problem::new(Code::Io, format!("cannot make a temporary file: {e}")))?;
        let err2 = stderr
            .try_clone()
            .map_err(|e| Problem::new(Code::Io, e.to_string()))?;
        // The slot is held for the session's life and given back in `drop`.
        host.acquire();
        let mut child = match cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err2)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                host.release();
                return Err(Problem::new(
                    Code::SshUnreachable,
                    format!("cannot start ssh: {e}"),
                ));
            }
        };
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Session {
            host,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// Why the session ended: ssh's last words, or the agent's.
    fn lost(&mut self, during: &str) -> Problem {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => break None,
            }
        };
        let mut said = String::new();
        let _ = self.stderr.seek(SeekFrom::Start(0));
        let _ = self.stderr.read_to_string(&mut said);
        let said = said.trim().lines().last().unwrap_or("").to_owned();
        let why = match (status.and_then(|s| s.code()), said.is_empty()) {
            (_, false) => said,
            (Some(c), true) => format!("ssh exited with {c}"),
            (None, true) => "ssh did not exit".into(),
        };
        Problem::new(
            Code::SshLost,
            format!(
                "{}: the connection was lost during {during} ({why})",
                self.host.label
            ),
        )
    }

    fn write(&mut self, bytes: &[u8], during: &str) -> Result<(), Problem> {
        let ok = match self.stdin.as_mut() {
            Some(s) => s.write_all(bytes).and_then(|()| s.flush()).is_ok(),
            None => false,
        };
        if ok { Ok(()) } else { Err(self.lost(during)) }
    }

    /// Sends `req` and waits up to `limit` for its final reply, handing `say` lines on.
    fn call(
        &mut self,
        req: &Request,
        during: &str,
        limit: Duration,
        say: &mut dyn FnMut(String),
    ) -> Result<Reply, Problem> {
        let mut line = serde_json::to_vec(req)
            .map_err(|e| Problem::new(Code::RemoteProtocol, format!("cannot encode: {e}")))?;
        line.push(b'\n');
        self.write(&line, during)?;
        self.reply(during, limit, say)
    }

    fn reply(
        &mut self,
        during: &str,
        limit: Duration,
        say: &mut dyn FnMut(String),
    ) -> Result<Reply, Problem> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Disconnected) => return Err(self.lost(during)),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    return Err(Problem::new(
                        Code::SshLost,
                        format!(
                            "{}: no answer during {during} within {}s; the session was closed",
                            self.host.label,
                            limit.as_secs()
                        ),
                    ));
                }
            };
            match serde_json::from_str::<Reply>(&line) {
                Ok(Reply::Say { line }) => say(line),
                Ok(Reply::Failed {
                    code,
                    message,
                    help,
                }) => return Err(Reply::into_problem(&code, message, help)),
                Ok(r) => return Ok(r),
                Err(e) => {
                    return Err(Problem::new(
                        Code::RemoteProtocol,
                        format!(
                            "{}: unexpected answer during {during}: {e}: {line:.200}",
                            self.host.label
                        ),
                    ));
                }
            }
        }
    }

    fn unexpected(&self, during: &str, r: &Reply) -> Problem {
        Problem::new(
            Code::RemoteProtocol,
            format!(
                "{}: unexpected answer during {during}: {r:?}",
                self.host.label
            ),
        )
    }

    /// Streams a package to the host, which checks its digest before keeping it: the
    /// directory holding it there.
    fn receive(&mut self, path: &Path, file: &str, digest: &str) -> Result<String, Problem> {
        let during = format!("sending {file}");
        let mut f = std::fs::File::open(path)
            .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", path.display())))?;
        let size = f
            .metadata()
            .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", path.display())))?
            .len();
        let req = Request::Receive {
            sha256: digest.to_owned(),
            file: file.to_owned(),
            size,
        };
        let limit = Duration::from_secs(600 + size / 1_000_000);
        let dir = match self.call(&req, &during, limit, &mut |_| {})? {
            Reply::Ready { send: false, path } => return Ok(path),
            Reply::Ready { send: true, path } => path,
            r => return Err(self.unexpected(&during, &r)),
        };
        let copied = match self.stdin.as_mut() {
            Some(s) => std::io::copy(&mut f, s).and_then(|n| s.flush().map(|()| n)),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        match copied {
            Ok(n) if n == size => {}
            Ok(n) => {
                return Err(Problem::new(
                    Code::Io,
                    format!(
                        "{} changed while it was sent ({n} of {size} bytes)",
                        path.display()
                    ),
                ));
            }
            Err(_) => return Err(self.lost(&during)),
        }
        match self.reply(&during, limit, &mut |_| {})? {
            Reply::Received { .. } => Ok(dir),
            r => Err(self.unexpected(&during, &r)),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // End of input: the agent exits and its lock goes with it.
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.host.release();
    }
}

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

/// A node's store on a host, served by `fleetup __agent` over one session.
pub struct RemoteStore {
    session: Session,
    host: Arc<Host>,
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
        let host = hosts.get(addr)?;
        let mut session = Session::start(host.clone())?;
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
            host,
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
        if let Some((dir, digest)) = repo {
            wire.repo = Some(dir);
            wire.sha256 = Some(digest);
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
    pub fn check(&mut self, argv: &[String], limit: Duration) -> Result<(), String> {
        let req = Request::Check {
            argv: argv.to_vec(),
            timeout_ms: limit.as_millis() as u64,
        };
        let during = "a health check";
        match self
            .session
            .call(&req, during, limit + Duration::from_secs(60), &mut |_| {})
        {
            Ok(Reply::Done { .. }) => Ok(()),
            Ok(other) => Err(self.session.unexpected(during, &other).message),
            Err(p) => Err(p.message),
        }
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
    ) -> Result<Option<(String, String)>, Problem> {
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
                        self.host.label, self.root
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
        let (dir, pkg) =
            match store::locate_package(&[repo.to_owned()], &product, &ctx.runtime, v, &want) {
                Ok(found) => found,
                // The host's releases/ may hold it; the store there says if not.
                Err(p) if p.code == Code::PackageMissing => return Ok(None),
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
        if let Some((want, from)) = expected.iter().find(|(w, _)| *w != digest) {
            return Err(Problem::new(
                Code::Checksum,
                format!("{} has SHA-256 {digest}, but {from} says {want}", pkg.file),
            ));
        }
        let host = self.host.clone();
        let remote_dir = host.send_package(&mut self.session, &path, &pkg.file, &digest)?;
        Ok(Some((remote_dir, digest)))
    }
}
