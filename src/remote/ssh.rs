//! Hosts reached with the system's OpenSSH client (SPEC §7).
//!
//! Every `ssh` runs in batch mode (never a prompt), with a connect timeout, keepalives
//! that notice a dead connection, host keys checked, and the plan's `ssh_config` as `-F`.
//! Each host gets one [`Link`]: one `ssh` process, one connection and one session, which
//! probes the host, starts fleetup's agent there (copying it on first contact) and then
//! carries every node of the host as a channel of its own: the reads before a run, the
//! locks, the packages and every step. A host costs one key exchange and one login shell.
//!
//! At most `max_connections` links are open at once (one `ssh` process each): beyond it,
//! the link of a host not in use is closed (the least recently used first) and opened
//! again when the host is needed. A host whose nodes are all done in a run lets go of its
//! link at once. The agent is this fleetup, or one for the host's platform from the
//! `agents` directory; the host needs an SSH server and a POSIX `sh` with `uname`,
//! `mkdir`, `head -c`, `chmod` and `mv`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use super::agent::{ReadStore, Reply, Request};
use super::link::{AgentBinary, Channel, Link, Probe};
use crate::diagnostics::{Code, Problem};
use crate::plan::{HostKeys, MAX_CONNECTIONS, SshAddr};
use crate::store::StoreState;

/// How `ssh` is run, from the plan or the command line.
#[derive(Clone, Debug)]
pub struct SshSettings {
    pub config: Option<PathBuf>,
    pub host_keys: HostKeys,
    pub connect_timeout: Duration,
    /// Connections (`ssh` processes) open at once.
    pub max_connections: usize,
    /// Agent binaries for other platforms: `fleetup-<os>-<arch>`.
    pub agents: Option<PathBuf>,
}

impl SshSettings {
    /// The defaults, with `FLEETUP_AGENTS` as the agents directory when it is set.
    /// The settings a plan gives: its `ssh_config`, `ssh_host_keys`, `agents` and
    /// `rollout.max_connections`.
    pub fn of_plan(plan: &crate::plan::Plan) -> SshSettings {
        let mut s = SshSettings::new(plan.ssh_config.clone(), plan.ssh_host_keys);
        s.max_connections = plan.rollout.max_connections;
        if let Some(a) = &plan.agents {
            s.agents = Some(a.clone());
        }
        s
    }

    pub fn new(config: Option<PathBuf>, host_keys: HostKeys) -> SshSettings {
        SshSettings {
            config,
            host_keys,
            connect_timeout: Duration::from_secs(10),
            max_connections: MAX_CONNECTIONS,
            agents: std::env::var_os("FLEETUP_AGENTS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

pub fn describe(a: &SshAddr) -> String {
    let host = if a.host.contains(':') {
        format!("[{}]", a.host)
    } else {
        a.host.clone()
    };
    let user = a.user.as_ref().map_or(String::new(), |u| format!("{u}@"));
    let port = a.port.map_or(String::new(), |p| format!(":{p}"));
    format!("{user}{host}{port}")
}

/// The hosts of one command, each connected when needed, at most `max_connections` at
/// once.
pub struct Hosts {
    settings: SshSettings,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// Digests of local packages, computed once however many hosts get them.
    digests: Mutex<HashMap<PathBuf, String>>,
}

#[derive(Default)]
struct Pool {
    slots: HashMap<String, Slot>,
    /// Links open or being opened.
    open: usize,
    tick: u64,
}

/// A host: its link when open, what it holds, what is left to do there.
#[derive(Default)]
struct Slot {
    link: Option<Arc<Link>>,
    connecting: bool,
    /// A failure to connect, kept for the rest of the command: the other nodes of an
    /// unreachable host fail at once.
    failed: Option<Problem>,
    /// Channels in use.
    users: usize,
    /// When it was last let go (the pool's clock).
    last: u64,
    /// Nodes of this host whose turn in the run has not ended (when the run said).
    pending: Option<usize>,
    /// Packages already on the host, by digest: the directory holding each.
    packages: HashMap<String, Arc<Mutex<Option<String>>>>,
}

/// A store as a host's agent read it, and who holds its lock (when asked).
pub type Read = (Result<Option<StoreState>, Problem>, Option<String>);

/// A channel to one host, given back to the pool when dropped.
pub struct Lease {
    hosts: Arc<Hosts>,
    key: String,
    /// A node's turn in a run: when it ends, the host has one node less to do.
    turn: bool,
    chan: Option<Channel>,
}

impl std::ops::Deref for Lease {
    type Target = Channel;
    fn deref(&self) -> &Channel {
        self.chan
            .as_ref()
            .expect("a lease holds its channel until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Channel {
        self.chan
            .as_mut()
            .expect("a lease holds its channel until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The channel first: its store and lock are let go on the host.
        self.chan.take();
        let closing = {
            let mut pool = self.hosts.lock();
            pool.tick += 1;
            let tick = pool.tick;
            let Some(slot) = pool.slots.get_mut(&self.key) else {
                return;
            };
            slot.users = slot.users.saturating_sub(1);
            slot.last = tick;
            if self.turn
                && let Some(p) = &mut slot.pending
            {
                *p = p.saturating_sub(1);
            }
            let done = slot.users == 0 && slot.pending == Some(0);
            if done { slot.link.take() } else { None }
        };
        // Closing waits for ssh to exit, outside the pool's lock; only then is its place
        // free for another host.
        if let Some(link) = closing {
            drop(link);
            self.hosts.lock().open -= 1;
        }
        self.hosts.freed.notify_all();
    }
}

impl Hosts {
    pub fn new(settings: SshSettings) -> Result<Hosts, Problem> {
        Ok(Hosts {
            settings,
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
            digests: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells how many nodes of each host a run will work on: a host lets go of its
    /// connection as soon as its last node's turn has ended.
    pub fn expect<'a>(&self, addrs: impl Iterator<Item = &'a SshAddr>) {
        let mut pool = self.lock();
        for a in addrs {
            let slot = pool.slots.entry(describe(a)).or_default();
            *slot.pending.get_or_insert(0) += 1;
        }
    }

    /// A channel to the host of `addr`, connecting it first when it has no link (a
    /// failure to connect is remembered for the command). `turn`: a node's turn in a run.
    pub fn channel(self: &Arc<Self>, addr: &SshAddr, turn: bool) -> Result<Lease, Problem> {
        let key = describe(addr);
        let cap = self.settings.max_connections.max(1);
        let mut pool = self.lock();
        loop {
            let slot = pool.slots.entry(key.clone()).or_default();
            if let Some(p) = &slot.failed {
                return Err(p.clone());
            }
            if let Some(link) = &slot.link {
                if link.alive() {
                    slot.users += 1;
                    let link = link.clone();
                    drop(pool);
                    return Ok(Lease {
                        hosts: self.clone(),
                        key,
                        turn,
                        chan: Some(link.channel()),
                    });
                }
                // The session ended (the connection was lost): open a new one.
                let dead = slot.link.take();
                drop(pool);
                drop(dead);
                pool = self.lock();
                pool.open -= 1;
                continue;
            }
            if slot.connecting {
                pool = self.freed.wait(pool).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if pool.open >= cap {
                // Make room: the link of a host nobody uses now, the longest unused first.
                let victim = pool
                    .slots
                    .iter()
                    .filter(|(_, s)| s.users == 0 && s.link.is_some())
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone());
                match victim {
                    Some(v) => {
                        // Its place is free once its ssh has exited, not before.
                        let link = pool.slots.get_mut(&v).and_then(|s| s.link.take());
                        drop(pool);
                        drop(link);
                        pool = self.lock();
                        pool.open -= 1;
                    }
                    None => pool = self.freed.wait(pool).unwrap_or_else(|e| e.into_inner()),
                }
                continue;
            }
            let slot = pool.slots.entry(key.clone()).or_default();
            slot.connecting = true;
            pool.open += 1;
            drop(pool);
            let made = self.connect(addr, &key);
            pool = self.lock();
            let slot = pool.slots.entry(key.clone()).or_default();
            slot.connecting = false;
            match made {
                Ok(link) => slot.link = Some(Arc::new(link)),
                Err(p) => {
                    slot.failed = Some(p.clone());
                    pool.open -= 1;
                    drop(pool);
                    self.freed.notify_all();
                    return Err(p);
                }
            }
            self.freed.notify_all();
        }
    }

    fn connect(&self, addr: &SshAddr, label: &str) -> Result<Link, Problem> {
        let s = &self.settings;
        let mut args: Vec<OsString> = Vec::new();
        if let Some(c) = &s.config {
            args.extend(["-F".into(), c.into()]);
        }
        for o in [
            "BatchMode=yes".to_owned(),
            format!("ConnectTimeout={}", s.connect_timeout.as_secs().max(1)),
            format!(
                "StrictHostKeyChecking={}",
                match s.host_keys {
                    HostKeys::Strict => "yes",
                    HostKeys::AcceptNew => "accept-new",
                }
            ),
            "ServerAliveInterval=5".into(),
            "ServerAliveCountMax=3".into(),
            "LogLevel=ERROR".into(),
            // One connection of its own: never a master's, never a master for others.
            "ControlMaster=no".into(),
            "ControlPath=none".into(),
        ] {
            args.extend(["-o".into(), o.into()]);
        }
        args.extend(["-T".into(), "-x".into(), "-a".into()]);
        if let Some(p) = addr.port {
            args.extend(["-p".into(), p.to_string().into()]);
        }
        if let Some(u) = &addr.user {
            args.extend(["-l".into(), u.into()]);
        }
        args.push(addr.host.clone().into());
        // Connect timeout, key exchange, authentication and the login shell, bounded.
        let limit = s.connect_timeout * 2 + Duration::from_secs(5);
        let agents = s.agents.clone();
        Link::connect(label.to_owned(), &args, limit, &move |p: &Probe| {
            agent_for(p, agents.as_deref(), label)
        })
    }

    /// The SHA-256 of a local file, computed once per command.
    pub fn digest(&self, path: &Path) -> Result<String, Problem> {
        if let Some(d) = self
            .digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return Ok(d.clone());
        }
        let d = crate::package::sha256_file(path)
            .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", path.display())))?;
        self.digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned(), d.clone());
        Ok(d)
    }

    /// Gets package `digest` onto the host of `lease` with `get` unless it is there
    /// already: the directory holding it on the host. Once per host and package, however
    /// many of its nodes need it.
    fn once_per_host(
        &self,
        lease: &mut Lease,
        digest: &str,
        get: impl FnOnce(&mut Lease) -> Result<String, Problem>,
    ) -> Result<String, Problem> {
        let slot = {
            let mut pool = self.lock();
            pool.slots
                .entry(lease.key.clone())
                .or_default()
                .packages
                .entry(digest.to_owned())
                .or_default()
                .clone()
        };
        let mut have = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &*have {
            return Ok(dir.clone());
        }
        let dir = get(lease)?;
        *have = Some(dir.clone());
        Ok(dir)
    }

    /// Has the host of `lease` download a package from a mirror itself (`req` is a
    /// [`super::agent::Request::Fetch`] of the package with SHA-256 `digest`).
    pub fn fetch_package(
        &self,
        lease: &mut Lease,
        digest: &str,
        req: &super::agent::Request,
    ) -> Result<String, Problem> {
        self.once_per_host(lease, digest, |l| l.fetch(req))
    }

    /// Sends a package over `lease` from this machine.
    pub fn send_package(
        &self,
        lease: &mut Lease,
        path: &Path,
        file: &str,
        digest: &str,
    ) -> Result<String, Problem> {
        self.once_per_host(lease, digest, |l| l.receive(path, file, digest))
    }

    /// Prunes the host's cache of agents and packages (see `agent::gc`): what was
    /// removed, and how many entries were kept.
    pub fn gc(
        self: &Arc<Self>,
        addr: &SshAddr,
        keep: usize,
    ) -> Result<(Vec<String>, usize), Problem> {
        let mut lease = self.channel(addr, false)?;
        let during = "pruning the host's cache";
        match lease.call(
            &Request::Gc { keep },
            during,
            Duration::from_secs(120),
            &mut |_| {},
        )? {
            Reply::Cleaned { removed, kept } => Ok((removed, kept)),
            other => Err(lease.unexpected(during, &other)),
        }
    }

    /// The stores at `roots` on the host of `addr`, read by its agent, changing nothing
    /// (a dry run, or before a run starts); with `locks`, which another fleetup holds.
    pub fn read(self: &Arc<Self>, addr: &SshAddr, roots: &[String], locks: bool) -> Vec<Read> {
        let all = |p: Problem| roots.iter().map(|_| (Err(p.clone()), None)).collect();
        let mut lease = match self.channel(addr, false) {
            Ok(l) => l,
            Err(p) => return all(p),
        };
        let req = Request::Read {
            roots: roots.to_vec(),
            locks,
        };
        let during = "reading the store states";
        let limit = Duration::from_secs(120 + roots.len() as u64 / 10);
        match lease.call(&req, during, limit, &mut |_| {}) {
            Ok(Reply::Read { stores }) if stores.len() == roots.len() => stores
                .into_iter()
                .map(|ReadStore { state, held }| (state.map_err(|w| w.into_problem()), held))
                .collect(),
            Ok(other) => all(lease.unexpected(during, &other)),
            Err(p) => all(p),
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Every session told to end first, then each waited for: hosts close in parallel.
        let pool = self.pool.get_mut().unwrap_or_else(|e| e.into_inner());
        let links: Vec<Arc<Link>> = pool
            .slots
            .values_mut()
            .filter_map(|s| s.link.take())
            .collect();
        for l in &links {
            l.close_input();
        }
        drop(links);
    }
}

/// The agent for a host: from the agents directory when it has one for the host's
/// platform, else this fleetup when the host is of its own platform.
fn agent_for(p: &Probe, agents: Option<&Path>, label: &str) -> Result<AgentBinary, Problem> {
    let name = format!(
        "fleetup-{}-{}",
        p.os.to_ascii_lowercase(),
        canonical_arch(&p.arch)
    );
    if let Some(dir) = agents {
        let path = dir.join(&name);
        if path.is_file() {
            let sha256 = crate::package::sha256_file(&path)
                .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", path.display())))?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            return Ok(AgentBinary { path, sha256, size });
        }
    }
    let (los, larch) = local_platform();
    if p.os == los && same_arch(&p.arch, larch) {
        let (path, sha256) = own_binary()?;
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        return Ok(AgentBinary {
            path: path.clone(),
            sha256: sha256.clone(),
            size,
        });
    }
    let looked = match agents {
        Some(d) => format!("{} has no {name}", d.display()),
        None => "no `agents` directory is set".to_owned(),
    };
    Err(Problem::new(
        Code::RemotePlatform,
        format!(
            "{label}: the host is {} {}, this fleetup is {los} {larch}, and {looked}",
            p.os, p.arch
        ),
    )
    .help(format!(
        "build fleetup for the host (cargo build --release --target <its target triple>) and          put it in the plan's `agents:` directory (or FLEETUP_AGENTS) as {name}"
    )))
}

/// `uname -m` in one spelling per architecture.
fn canonical_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        a => a,
    }
}

/// The machine fleetup runs on, in `uname -s`/`uname -m` words.
fn local_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        other => other,
    };
    (os, std::env::consts::ARCH)
}

fn same_arch(remote: &str, local: &str) -> bool {
    remote == local || matches!((remote, local), ("arm64", "aarch64") | ("amd64", "x86_64"))
}

/// This binary's path and digest, computed once per process.
fn own_binary() -> Result<&'static (PathBuf, String), Problem> {
    static OWN: OnceLock<Result<(PathBuf, String), String>> = OnceLock::new();
    OWN.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this fleetup: {e}"))?;
        let d = crate::package::sha256_file(&exe)
            .map_err(|e| format!("cannot hash {}: {e}", exe.display()))?;
        Ok((exe, d))
    })
    .as_ref()
    .map_err(|e| Problem::new(Code::Io, e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_described_as_written() {
        let a = |user: Option<&str>, host: &str, port| SshAddr {
            user: user.map(str::to_owned),
            host: host.into(),
            port,
        };
        assert_eq!(describe(&a(Some("deploy"), "h", Some(22))), "deploy@h:22");
        assert_eq!(describe(&a(None, "::1", None)), "[::1]");
    }

    #[test]
    fn a_host_runs_this_fleetup_only_on_the_same_architecture() {
        assert!(same_arch("x86_64", "x86_64"));
        assert!(same_arch("amd64", "x86_64"));
        assert!(same_arch("arm64", "aarch64"));
        assert!(!same_arch("aarch64", "x86_64"));
        assert!(!same_arch("i686", "x86_64"));
    }
}
