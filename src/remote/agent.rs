//! The remote side of node stores: `fleetup __agent`, started over SSH on a host, runs
//! the very same [`Store`] code a local node runs, for every node of that host, over one
//! session. Each line on stdin is a request [`Frame`] on a numbered channel; each line
//! on stdout a reply frame on the channel it answers: any number of `say` lines (the
//! store's messages, as they happen) and then exactly one final reply. A channel is one
//! node's store: its requests are served in order, by a thread of its own, while the
//! other channels go on. The first line the agent writes is its [`Hello`].
//!
//! A channel holds its store's lock from `open` (when asked) until `close`, so a fleet
//! run's lock → unpack → install → health → permanent sequence is one change on the host
//! too. The agent exits at the end of its input, when the controller closes the session
//! or the connection drops: each channel finishes the request it is serving, and the
//! locks are released with the process.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
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
    /// How alike two releases' runtimes must be (`major` when an older controller
    /// sends none).
    #[serde(default)]
    pub runtime_rule: Option<String>,
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
    /// The `.minisig` beside the package sent ahead, when the repository has one: the
    /// host verifies it with its own `[trust]` keys.
    #[serde(default)]
    pub signature: Option<String>,
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
            runtime_rule: Some(ctx.runtime_rule.as_str().to_owned()),
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
            signature: None,
        }
    }
}

pub use crate::store::StoreOp;

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
    /// The host downloads a package from a mirror itself (`url`), verified against
    /// `sha256`, and with `trust`, against `<url>.minisig` by one of those keys.
    Fetch {
        url: String,
        file: String,
        sha256: String,
        #[serde(default)]
        trust: Vec<String>,
        timeout_ms: u64,
        /// The certificates alone trusted for an HTTPS mirror (PEM).
        #[serde(default)]
        ca: Option<String>,
    },
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
    /// A `command` health check, run on the node; an exit status in `give_up` is
    /// answered as failed for good (`health::gave-up`).
    Check {
        argv: Vec<String>,
        timeout_ms: u64,
        #[serde(default)]
        give_up: Vec<u16>,
    },
    /// A command of a scripted target, run on the host: what it printed.
    Run {
        argv: Vec<String>,
        timeout_ms: u64,
    },
    /// The stores at `roots` as they stand, changing nothing; with `locks`, also which
    /// of them another fleetup holds right now.
    Read {
        roots: Vec<String>,
        locks: bool,
    },
    /// The channel is done: its store (and lock) is let go. No reply.
    Close,
    /// Prunes the host's cache: agents and received packages beyond the newest `keep`
    /// of each (this agent and what this session received are always kept).
    Gc {
        keep: usize,
    },
}

/// The version of the protocol below: a controller talks only to an agent that speaks
/// its own.
pub const PROTOCOL: u32 = 3;

/// One line on the wire: a request or reply `m` on channel `ch`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Frame<T> {
    pub ch: u32,
    pub m: T,
}

/// The agent's first line: which fleetup answers, and which protocol it speaks.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub hello: HelloBody,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HelloBody {
    pub version: String,
    pub protocol: u32,
}

/// A problem as it crosses the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireProblem {
    pub code: String,
    pub message: String,
    pub help: Option<String>,
}

impl WireProblem {
    pub fn of(p: &Problem) -> WireProblem {
        WireProblem {
            code: p.code.as_str().to_owned(),
            message: p.message.clone(),
            help: p.help.clone(),
        }
    }

    pub fn into_problem(self) -> Problem {
        Reply::into_problem(&self.code, self.message, self.help)
    }
}

/// One store as a `read` found it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadStore {
    pub state: Result<Option<StoreState>, WireProblem>,
    /// Who holds its lock, as the holder wrote it (asked with `locks`).
    pub held: Option<String>,
}

/// The `<root>/node.toml` values a controller needs to find a package.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireConfig {
    pub product: Option<String>,
    pub runtime: Option<String>,
    pub edition: Option<String>,
    #[serde(default)]
    pub runtime_compat: Option<String>,
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
    Read {
        stores: Vec<ReadStore>,
    },
    /// What a `gc` removed (paths under the work directory) and what it kept.
    Cleaned {
        removed: Vec<String>,
        kept: usize,
    },
    Done {
        outcome: Option<store::Outcome>,
    },
    /// What a command printed (its last 2 KiB).
    Output {
        text: String,
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

/// Where replies go: stdout, shared by every channel, one whole line at a time.
type Out = Arc<Mutex<std::io::Stdout>>;

fn send(out: &Out, ch: u32, r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&Frame { ch, m: r }).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
    o.write_all(&line)?;
    o.flush()
}

/// `fleetup __agent --dir DIR`: serves requests until the end of its input.
pub fn serve(dir: &Path) -> Exit {
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let hello = Hello {
        hello: HelloBody {
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL,
        },
    };
    {
        let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
        let line = serde_json::to_string(&hello).unwrap_or_default();
        if writeln!(o, "{line}").and_then(|()| o.flush()).is_err() {
            return Exit::Ok;
        }
    }
    let mut input = std::io::stdin().lock();
    let received: Received = Arc::default();
    let mut channels: HashMap<u32, mpsc::Sender<Request>> = HashMap::new();
    let mut workers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let frame = match serde_json::from_str::<Frame<serde_json::Value>>(&line) {
            Ok(f) => f,
            // Not even a frame: nothing can be answered, the channel is unknown.
            Err(_) => continue,
        };
        let ch = frame.ch;
        let req = match serde_json::from_value::<Request>(frame.m) {
            Ok(r) => r,
            Err(e) => {
                let p = Problem::new(
                    Code::RemoteProtocol,
                    format!("the agent cannot read a request: {e}"),
                );
                let _ = send(&out, ch, &Reply::failed(&p));
                continue;
            }
        };
        match req {
            // The bytes follow the request on this same input: read here, in order.
            Request::Receive { sha256, file, size } => {
                if package::is_sha256(&sha256) {
                    lock_set(&received).insert(sha256.to_ascii_lowercase());
                }
                let r = receive(dir, &sha256, &file, size, &mut input, &out, ch)
                    .unwrap_or_else(|p| Reply::failed(&p));
                let _ = send(&out, ch, &r);
            }
            Request::Close => {
                // The channel's thread ends after what it is serving; its lock goes with it.
                channels.remove(&ch);
            }
            req => {
                let tx = channels.entry(ch).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel();
                    let (dir, out, received) = (dir.to_owned(), out.clone(), received.clone());
                    workers.push(std::thread::spawn(move || {
                        channel(ch, &dir, &out, &received, rx)
                    }));
                    tx
                });
                let _ = tx.send(req);
            }
        }
    }
    // The end of input: every channel finishes what it is serving, then lets go.
    channels.clear();
    for w in workers {
        let _ = w.join();
    }
    // The host's cache is pruned at the end of every session: it never grows without end.
    let _ = gc(dir, GC_KEEP, &lock_set(&received));
    Exit::Ok
}

/// Agents and received packages a host keeps besides the ones in use.
pub const GC_KEEP: usize = 3;

/// Digests of the packages this session received: never pruned by it.
type Received = Arc<Mutex<std::collections::HashSet<String>>>;

fn lock_set(r: &Received) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prunes `dir`: of `bin/fleetup-*`, this agent and the `keep` newest others stay; of
/// `packages/<sha256>/`, those in `keep_digests` and the `keep` newest others. Leftover
/// temporary files of a copy or a receive that died an hour or more ago go too. Returns
/// what was removed, relative to `dir`, and how many entries were kept.
pub fn gc(
    dir: &Path,
    keep: usize,
    keep_digests: &std::collections::HashSet<String>,
) -> std::io::Result<(Vec<String>, usize)> {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let stale = |m: &std::fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600))
    };
    let mut removed = Vec::new();
    let mut kept = 0;
    // Newest first, by modification time.
    let listed = |sub: &str| -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.path(), std::fs::symlink_metadata(e.path()).ok()?)))
            .collect();
        v.sort_by_key(|(_, m)| std::cmp::Reverse(m.modified().ok()));
        v
    };
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut others = 0;
    for (path, meta) in listed("bin") {
        let n = name(&path);
        let temp = n.starts_with(".fleetup-");
        if !temp && !n.starts_with("fleetup-") {
            continue;
        }
        let mine = me
            .as_ref()
            .is_some_and(|m| path.canonicalize().ok().as_ref() == Some(m));
        let keep_it = mine || (temp && !stale(&meta)) || (!temp && others < keep);
        if !mine && !temp && others < keep {
            others += 1;
        }
        if keep_it {
            kept += 1;
        } else if std::fs::remove_file(&path).is_ok() {
            // The mark of its last SHA-256 check goes with it (see the bootstrap).
            if let Some(short) = n.strip_prefix("fleetup-") {
                let _ = std::fs::remove_file(dir.join("checked").join(short));
            }
            removed.push(format!("bin/{n}"));
        }
    }
    let mut others = 0;
    for (path, meta) in listed("packages") {
        let n = name(&path);
        if !meta.is_dir() || !package::is_sha256(&n) {
            continue;
        }
        let receiving = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                name(&e.path()).starts_with(".receiving-") && e.metadata().is_ok_and(|m| !stale(&m))
            });
        let keep_it = keep_digests.contains(&n) || receiving || others < keep;
        if !keep_digests.contains(&n) && !receiving && others < keep {
            others += 1;
        }
        if keep_it {
            kept += 1;
        } else if std::fs::remove_dir_all(&path).is_ok() {
            removed.push(format!("packages/{n}"));
        }
    }
    Ok((removed, kept))
}

/// Whether the controller names a package the agent may keep: a plain archive name.
fn package_file(file: &str) -> bool {
    package::is_plain_file_name(file) && package::Archive::of(file).is_some()
}

/// `Fetch`: the package downloaded here into `packages/<sha256>/`, unless it is there.
fn fetch(
    dir: &Path,
    url: &str,
    file: &str,
    sha256: &str,
    trust: &[String],
    timeout: Duration,
    ca: Option<&str>,
) -> Result<Reply, Problem> {
    if !package::is_sha256(sha256) || !package_file(file) {
        return Err(Problem::new(
            Code::RemoteProtocol,
            format!("refusing to fetch `{file}` ({sha256})"),
        ));
    }
    let sha256 = sha256.to_ascii_lowercase();
    let pdir = package_dir(dir, &sha256);
    std::fs::create_dir_all(&pdir)
        .map_err(|e| Problem::new(Code::Io, format!("cannot create {}: {e}", pdir.display())))?;
    let dest = pdir.join(file);
    if package::sha256_file(&dest).ok().as_deref() != Some(sha256.as_str()) {
        crate::mirror::download(url, &sha256, &dest, timeout, ca, &|| false)
            .map_err(|e| Problem::new(e.code(), format!("on the host: {e}")))?;
    }
    if !trust.is_empty() {
        let t = crate::signature::Trust::new(trust)
            .map_err(|(_, e)| Problem::new(Code::PackageSignature, e))?;
        let sig = pdir.join(format!("{file}.minisig"));
        crate::mirror::download_small(&format!("{url}.minisig"), &sig, timeout, ca).map_err(
            |why| {
                Problem::new(
                    Code::PackageSignature,
                    format!("on the host: {file} has no signature on the mirror: {why}"),
                )
            },
        )?;
        if let Err(mut why) = t.verify(&dest, Some(&sig)) {
            let _ = std::fs::remove_file(&dest);
            why.message = format!("on the host: {}", why.message);
            return Err(why);
        }
    }
    Ok(Reply::Received {
        path: pdir.display().to_string(),
    })
}

/// One channel: its requests in order, against its own store.
fn channel(ch: u32, dir: &Path, out: &Out, received: &Received, rx: mpsc::Receiver<Request>) {
    let mut store: Option<Store> = None;
    for req in rx {
        let reply = match req {
            Request::Fetch {
                url,
                file,
                sha256,
                trust,
                timeout_ms,
                ca,
            } => {
                if package::is_sha256(&sha256) {
                    lock_set(received).insert(sha256.to_ascii_lowercase());
                }
                fetch(
                    dir,
                    &url,
                    &file,
                    &sha256,
                    &trust,
                    Duration::from_millis(timeout_ms),
                    ca.as_deref(),
                )
                .unwrap_or_else(|p| Reply::failed(&p))
            }
            Request::Gc { keep } => match gc(dir, keep, &lock_set(received)) {
                Ok((removed, kept)) => Reply::Cleaned { removed, kept },
                Err(e) => Reply::failed(&Problem::new(
                    Code::Io,
                    format!("cannot prune {}: {e}", dir.display()),
                )),
            },
            req => handle(req, &mut store, out, ch),
        };
        // A controller that is gone reads nothing; the step itself is done either way.
        let _ = send(out, ch, &reply);
    }
}

fn handle(req: Request, store: &mut Option<Store>, out: &Out, ch: u32) -> Reply {
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
        Request::Read { roots, locks } => Ok(Reply::Read {
            stores: roots.iter().map(|r| read(Path::new(r), locks)).collect(),
        }),
        Request::Receive { .. } | Request::Fetch { .. } | Request::Close | Request::Gc { .. } => {
            Err(Problem::new(
                Code::RemoteProtocol,
                "a receive, close or gc reached a store",
            ))
        }
        Request::Check {
            argv,
            timeout_ms,
            give_up,
        } => crate::health::command_check(&argv, Duration::from_millis(timeout_ms), &give_up)
            .map(|()| Reply::Done { outcome: None })
            .map_err(|m| {
                let code = if m.for_good {
                    Code::HealthGaveUp
                } else {
                    Code::Io
                };
                Problem::new(code, m.why)
            }),
        Request::Run { argv, timeout_ms } => {
            crate::hook::output(&argv, &[], Duration::from_millis(timeout_ms))
                .map(|text| Reply::Output { text })
                .map_err(|e| Problem::new(Code::HookFailed, e.to_string()))
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
                let _ = send(out, ch, &Reply::Say { line: l });
            };
            let mut ctx = local_ctx(*ctx, &s.root, node_config, &mut say)?;
            if op == StoreOp::RollBackTo && other.is_none() {
                return Err(Problem::new(
                    Code::RemoteProtocol,
                    "roll-back-to names no release to leave",
                ));
            }
            // The same dispatch as a local store's (`Store::apply`).
            let outcome = s.apply(op, &version, permanent, other.as_ref(), &mut ctx)?;
            Ok(Reply::Done {
                outcome: Some(outcome),
            })
        }),
    };
    result.unwrap_or_else(|p| Reply::failed(&p))
}

/// A store's state as its RELEASES says, changing nothing (a dry run, or before a run
/// starts); with `locks`, who holds its lock now, if anyone (nothing is taken).
fn read(root: &Path, locks: bool) -> ReadStore {
    let state = store::read_state(root)
        .map_err(|m| WireProblem::of(&Problem::new(Code::StoreUnreadable, m)));
    let held = if locks {
        crate::lock::holder_of(&root.join("releases"))
    } else {
        None
    };
    ReadStore { state, held }
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
            runtime_compat: config.runtime_compat,
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
    // The host's own `[trust]` (which the store enforces whoever asks) needs the
    // signature beside the package the controller sent.
    if let (Some(repo), Some(sig)) = (&w.repo, &w.signature)
        && let Some(file) = std::fs::read_dir(repo)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| package::Archive::of(n).is_some() && package::is_plain_file_name(n))
    {
        crate::fsutil::write_atomic(
            &Path::new(repo).join(format!("{file}.minisig")),
            sig.as_bytes(),
        )
        .map_err(|e| {
            Problem::new(
                Code::Io,
                format!("cannot keep the signature of {file}: {e}"),
            )
        })?;
    }
    ctx.repo = w.repo.map(PathBuf::from);
    ctx.sha256 = w.sha256;
    ctx.policy = VersionPolicy::parse(&w.policy)
        .ok_or_else(|| bad(format!("unknown version policy `{}`", w.policy)))?;
    ctx.runtime_rule = match &w.runtime_rule {
        None => crate::package::RuntimeRule::Major,
        Some(r) => crate::package::RuntimeRule::parse(r)
            .ok_or_else(|| bad(format!("unknown runtime rule `{r}`")))?,
    };
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
    out: &Out,
    ch: u32,
) -> Result<Reply, Problem> {
    if !package::is_sha256(sha256) || !package_file(file) {
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
        out,
        ch,
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
