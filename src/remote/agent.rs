//! The remote side of a node store: `fleetup __agent`, started over SSH on the node's
//! host, runs the very same [`Store`] code a local node runs. It reads one JSON request
//! per line on stdin and answers with JSON lines on stdout: any number of `say` lines
//! (the store's messages, as they happen) and then exactly one final reply.
//!
//! The agent holds the store's lock from `open` (when asked) until it exits, so a fleet
//! run's lock → unpack → install → health → permanent sequence is one change on the host
//! too. It exits at the end of its input: when the controller closes the session, or when
//! the connection drops — the lock is released with the process either way.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diagnostics::{Code, Exit, Problem};
use crate::package::{self, VersionPolicy};
use crate::store::{self, Activation, Ctx, NodeConfig, Store, StoreState};
use crate::template::Template;

/// A store operation, with everything the local [`Ctx`] holds but the `say` callback.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireCtx {
    pub product: Option<String>,
    pub runtime: String,
    pub edition: Option<String>,
    /// A directory on the host (a package sent ahead), never a path of the controller.
    pub repo: Option<String>,
    pub sha256: Option<String>,
    pub policy: String,
    /// The activate hook as written, filled on the host.
    pub activate: Option<Vec<String>>,
    pub activate_timeout_ms: u64,
    pub vars: BTreeMap<String, String>,
    /// `${VAR}` references of the hook, read from the controller's environment: a secret
    /// exported where fleetup runs must not need exporting on every host.
    pub env: BTreeMap<String, String>,
    pub lock_wait_ms: u64,
    pub run: Option<String>,
    /// The node's platform when the controller knows it (`platform:`, `--platform`).
    #[serde(default)]
    pub platform: Option<String>,
}

impl WireCtx {
    /// What a local context says, with `repo` replaced by a directory on the host.
    pub fn from_ctx(ctx: &Ctx, repo: Option<String>) -> WireCtx {
        let env = ctx
            .activation
            .command
            .iter()
            .flatten()
            .flat_map(|t| t.env_vars())
            .filter_map(|k| Some((k.to_owned(), std::env::var(k).ok()?)))
            .collect();
        WireCtx {
            product: ctx.product.clone(),
            runtime: ctx.runtime.clone(),
            edition: ctx.edition.clone(),
            repo,
            sha256: ctx.sha256.clone(),
            policy: ctx.policy.as_str().to_owned(),
            activate: ctx
                .activation
                .command
                .as_ref()
                .map(|c| c.iter().map(|t| t.raw().to_owned()).collect()),
            activate_timeout_ms: ctx.activation.timeout.as_millis() as u64,
            vars: ctx.activation.vars.clone(),
            env,
            lock_wait_ms: ctx.lock_wait.as_millis() as u64,
            run: ctx.run.clone(),
            platform: ctx.platform.as_ref().map(|p| p.to_string()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "req", rename_all = "kebab-case")]
pub enum Request {
    /// Opens the store at `root`; with `lock`, holds its lock until the agent exits.
    Open {
        root: String,
        lock: bool,
        run: Option<String>,
        lock_wait_ms: u64,
    },
    State,
    /// Raw bytes of a package follow the request (after a `ready` reply that asks for them).
    Receive {
        sha256: String,
        file: String,
        size: u64,
    },
    Store {
        op: StoreOp,
        version: Version,
        /// `upgrade`: make permanent. `roll-back-to`: the release being left is `other`.
        permanent: bool,
        other: Option<Version>,
        /// Fill what the context leaves open from `<root>/node.toml` (manual commands).
        node_config: bool,
        ctx: Box<WireCtx>,
    },
    /// A `command` health check, run on the node.
    Check {
        argv: Vec<String>,
        timeout_ms: u64,
    },
}

/// The `<root>/node.toml` values a controller needs to find a package.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireConfig {
    pub product: Option<String>,
    pub runtime: Option<String>,
    pub edition: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    Say {
        line: String,
    },
    Opened {
        state: Option<StoreState>,
        config: WireConfig,
        /// The host's platform in package-name tokens (`ubuntu20.04-amd64`).
        #[serde(default)]
        platform: Option<String>,
    },
    State {
        state: Option<StoreState>,
    },
    /// `send: false`: the host has the package already, at `path`.
    Ready {
        send: bool,
        path: String,
    },
    Received {
        path: String,
    },
    Done {
        outcome: Option<store::Outcome>,
    },
    Failed {
        code: String,
        message: String,
        help: Option<String>,
    },
}

impl Reply {
    fn failed(p: &Problem) -> Reply {
        Reply::Failed {
            code: p.code.as_str().to_owned(),
            message: p.message.clone(),
            help: p.help.clone(),
        }
    }

    /// The problem a `failed` reply carries, with its original code when this fleetup
    /// knows it.
    pub fn into_problem(code: &str, message: String, help: Option<String>) -> Problem {
        let known = Code::ALL.iter().find(|c| c.as_str() == code).copied();
        let p = Problem::new(known.unwrap_or(Code::RemoteProtocol), message);
        match help {
            Some(h) => p.help(h),
            None => p,
        }
    }
}

fn send(out: &mut impl Write, r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// `fleetup __agent --dir DIR`: serves requests until the end of its input.
pub fn serve(dir: &Path) -> Exit {
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut store: Option<Store> = None;
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return Exit::Ok,
            Ok(_) => {}
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => handle(req, dir, &mut store, &mut input, &mut out),
            Err(e) => Reply::Failed {
                code: Code::RemoteProtocol.as_str().into(),
                message: format!("the agent cannot read a request: {e}"),
                help: None,
            },
        };
        if send(&mut out, &reply).is_err() {
            // The controller is gone; the lock goes with this process.
            return Exit::Ok;
        }
    }
}

fn handle(
    req: Request,
    dir: &Path,
    store: &mut Option<Store>,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Reply {
    fn opened(store: &Option<Store>) -> Result<&Store, Problem> {
        store.as_ref().ok_or_else(|| {
            Problem::new(
                Code::RemoteProtocol,
                "the agent was asked for a store before `open`",
            )
        })
    }
    let result = match req {
        Request::Open {
            root,
            lock,
            run,
            lock_wait_ms,
        } => open(&root, lock, run, lock_wait_ms).map(|(s, reply)| {
            *store = Some(s);
            reply
        }),
        Request::State => opened(store).and_then(|s| s.state().map(|state| Reply::State { state })),
        Request::Receive { sha256, file, size } => receive(dir, &sha256, &file, size, input, out),
        Request::Check { argv, timeout_ms } => {
            crate::hook::run(&argv, &[], Duration::from_millis(timeout_ms))
                .map(|()| Reply::Done { outcome: None })
                .map_err(|e| Problem::new(Code::Io, format!("`{}`: {e}", argv.join(" "))))
        }
        Request::Store {
            op,
            version,
            permanent,
            other,
            node_config,
            ctx,
        } => opened(store).and_then(|s| {
            let mut say = |l: String| {
                let _ = send(&mut *out, &Reply::Say { line: l });
            };
            let mut ctx = local_ctx(*ctx, &s.root, node_config, &mut say)?;
            let v = &version;
            let outcome = match op {
                StoreOp::Unpack => s.unpack(v, &mut ctx),
                StoreOp::Upgrade => s.upgrade(v, permanent, &mut ctx),
                StoreOp::Install => s.install(v, permanent, &mut ctx),
                StoreOp::Downgrade => s.downgrade(v, &mut ctx),
                StoreOp::Uninstall => s.uninstall(v, &mut ctx),
                StoreOp::Revert => s.revert(v, &mut ctx).map(|()| store::Outcome::Unchanged),
                StoreOp::RollBackTo => {
                    let left = other.as_ref().ok_or_else(|| {
                        Problem::new(
                            Code::RemoteProtocol,
                            "roll-back-to names no release to leave",
                        )
                    })?;
                    s.roll_back_to(v, left, &mut ctx)
                        .map(|()| store::Outcome::Unchanged)
                }
            }?;
            Ok(Reply::Done {
                outcome: Some(outcome),
            })
        }),
    };
    result.unwrap_or_else(|p| Reply::failed(&p))
}

fn open(
    root: &str,
    lock: bool,
    run: Option<String>,
    lock_wait_ms: u64,
) -> Result<(Store, Reply), Problem> {
    let root = PathBuf::from(root);
    let store = if lock {
        let mut say = |_: String| {};
        let mut ctx = Ctx::bare(&mut say);
        ctx.run = run;
        ctx.lock_wait = Duration::from_millis(lock_wait_ms);
        Store::locked(&root, &ctx)?
    } else {
        Store::new(&root)
    };
    let config = NodeConfig::read(&root).unwrap_or_default();
    let reply = Reply::Opened {
        state: store.state()?,
        config: WireConfig {
            product: config.product,
            runtime: config.runtime,
            edition: config.edition,
        },
        platform: crate::package::this_platform().map(|p| p.to_string()),
    };
    Ok((store, reply))
}

/// The host's context for one operation: the controller's, with templates parsed here.
fn local_ctx<'a>(
    w: WireCtx,
    root: &Path,
    node_config: bool,
    say: &'a mut dyn FnMut(String),
) -> Result<Ctx<'a>, Problem> {
    let bad = |m: String| Problem::new(Code::RemoteProtocol, m);
    let mut activation = Activation {
        command: match &w.activate {
            Some(c) => Some(
                c.iter()
                    .map(|t| Template::parse(t).map_err(|e| bad(format!("`{t}`: {e}"))))
                    .collect::<Result<_, _>>()?,
            ),
            None => None,
        },
        timeout: Duration::from_millis(w.activate_timeout_ms),
        vars: w.vars,
    };
    let mut ctx = Ctx::bare(say);
    ctx.product = w.product;
    ctx.runtime = w.runtime;
    ctx.edition = w.edition;
    if node_config {
        let config = NodeConfig::read(root)?;
        if activation.command.is_none() {
            activation = config.activation(root)?;
        }
        ctx.product = ctx.product.or(config.product);
        ctx.edition = ctx.edition.or(config.edition);
    }
    ctx.repo = w.repo.map(PathBuf::from);
    ctx.sha256 = w.sha256;
    ctx.policy = VersionPolicy::parse(&w.policy)
        .ok_or_else(|| bad(format!("unknown version policy `{}`", w.policy)))?;
    ctx.activation = activation;
    ctx.env = w.env;
    ctx.lock_wait = Duration::from_millis(w.lock_wait_ms);
    ctx.run = w.run;
    // A store with no release takes the platform the controller names; this host's
    // decides between several when nothing names one.
    ctx.platform = match &w.platform {
        Some(p) => Some(crate::package::Platform::parse(p).map_err(bad)?),
        None => None,
    };
    ctx.host_platform = crate::package::this_platform();
    Ok(ctx)
}

/// Where the host keeps a package the controller sent: named by its digest, so two
/// runs (or two fleetups) never mix up packages, and a second run sends nothing.
pub fn package_dir(dir: &Path, sha256: &str) -> PathBuf {
    dir.join("packages").join(sha256)
}

fn receive(
    dir: &Path,
    sha256: &str,
    file: &str,
    size: u64,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<Reply, Problem> {
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && !file.contains('/')
        && crate::package::Archive::of(file).is_some();
    if !package::is_sha256(sha256) || !plain {
        // Nothing is read: the controller does not send bytes without a `ready`.
        return Err(Problem::new(
            Code::RemoteProtocol,
            format!("refusing to receive `{file}` ({sha256})"),
        ));
    }
    let sha256 = sha256.to_ascii_lowercase();
    let pdir = package_dir(dir, &sha256);
    let dest = pdir.join(file);
    let path = pdir.display().to_string();
    if package::sha256_file(&dest).is_ok_and(|d| d == sha256) {
        // The final reply: no bytes follow.
        return Ok(Reply::Ready { send: false, path });
    }
    send(
        &mut *out,
        &Reply::Ready {
            send: true,
            path: path.clone(),
        },
    )
    .map_err(|e| Problem::new(Code::Io, format!("cannot answer: {e}")))?;
    let mut bytes = input.take(size);
    let io = |e: std::io::Error| Problem::new(Code::Io, format!("{}: {e}", dest.display()));
    let written = (|| -> std::io::Result<(tempfile::NamedTempFile, String, u64)> {
        std::fs::create_dir_all(&pdir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".receiving-")
            .tempfile_in(&pdir)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            let k = bytes.read(&mut buf)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            tmp.write_all(&buf[..k])?;
            n += k as u64;
        }
        let digest = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok((tmp, digest, n))
    })();
    // Whatever happened, the rest of the announced bytes is not a request.
    std::io::copy(&mut bytes, &mut std::io::sink()).map_err(io)?;
    let (tmp, digest, n) = written.map_err(io)?;
    if n != size {
        return Err(Problem::new(
            Code::Checksum,
            format!("{file}: {n} of {size} bytes arrived"),
        ));
    }
    if digest != sha256 {
        return Err(Problem::new(
            Code::Checksum,
            format!("{file} arrived with SHA-256 {digest}, but the controller sent {sha256}"),
        ));
    }
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    tmp.persist(&dest).map_err(|e| io(e.error))?;
    Ok(Reply::Received { path })
}

/// `fleetup __self-check SHA256`: does this binary hash to what the controller sent?
/// Run on a freshly copied binary before it is renamed into place.
pub fn self_check(expected: &str) -> Exit {
    let digest = std::env::current_exe().and_then(|p| package::sha256_file(&p));
    match digest {
        Ok(d) if d == expected => Exit::Ok,
        Ok(d) => {
            eprintln!("fleetup: this copy hashes to {d}, not {expected}");
            Exit::Invalid
        }
        Err(e) => {
            eprintln!("fleetup: cannot hash this copy: {e}");
            Exit::Invalid
        }
    }
}
