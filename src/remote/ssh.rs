//! Hosts reached with the system's OpenSSH client (SPEC §7).
//!
//! Every `ssh` runs in batch mode (never a prompt), with a connect timeout, keepalives
//! that notice a dead connection, host keys checked, and the plan's `ssh_config` as `-F`.
//! Each host gets one master connection (ControlMaster) on first use; every later step
//! is a session multiplexed over it, so a run pays for one TCP and one key exchange per
//! host. The masters live in a private temporary directory and are told to exit when the
//! [`Hosts`] is dropped; should fleetup be killed, they exit on their own after
//! [`PERSIST`] of idleness.
//!
//! On first use of a host, fleetup copies itself there (content-addressed, checked with
//! its SHA-256 on the host before it is renamed into place) and runs the store code as
//! `fleetup __agent`: one implementation of the store serves local and remote nodes. The
//! host needs an SSH server, a POSIX `sh` with `uname`, `mkdir`, `cat`, `chmod` and `mv`,
//! and the same OS and CPU architecture as the machine fleetup runs on.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::diagnostics::{Code, Problem};
use crate::plan::{HostKeys, SshAddr};
use crate::store::StoreState;

/// How long an idle master outlives the last session (and a killed fleetup).
pub const PERSIST: &str = "60";

/// Sessions open at once over one host's connection: sshd's default `MaxSessions`. Nodes
/// beyond it that share a host wait for a session; a session the master refused would
/// make ssh fall back to a connection of its own, and multiplexing would be lost.
pub const SESSIONS_PER_HOST: usize = 10;

/// How `ssh` is run, from the plan or the command line.
#[derive(Clone, Debug)]
pub struct SshSettings {
    pub config: Option<PathBuf>,
    pub host_keys: HostKeys,
    pub connect_timeout: Duration,
}

/// `s` as one word of a POSIX shell command line.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
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

/// The hosts of one command, each connected at most once.
pub struct Hosts {
    settings: SshSettings,
    sockets: tempfile::TempDir,
    hosts: Mutex<HashMap<String, Arc<Connection>>>,
    /// Digests of local packages, computed once however many hosts get them.
    digests: Mutex<HashMap<PathBuf, String>>,
}

/// A host's connection, made by the first node that needs it; a failure is kept too.
type Connection = OnceLock<Result<Arc<Host>, Problem>>;

/// One host with its master connection.
pub struct Host {
    pub label: String,
    /// Every `ssh` argument but the remote command.
    args: Vec<OsString>,
    /// The host's work directory: fleetup binaries and received packages.
    pub dir: String,
    bin: OnceLock<Result<String, Problem>>,
    /// Packages already on the host, by digest: the directory holding each.
    packages: Mutex<HashMap<String, Arc<Mutex<Option<String>>>>>,
    /// Sessions open now, at most [`SESSIONS_PER_HOST`].
    sessions: Mutex<usize>,
    freed: Condvar,
}

/// A session slot on a host's connection, given back when dropped.
pub struct Permit<'a>(&'a Host);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Hosts {
    pub fn new(settings: SshSettings) -> Result<Hosts, Problem> {
        // Short: a control socket path must fit in sockaddr_un (108 bytes).
        let sockets = tempfile::Builder::new()
            .prefix("fleetup-ssh-")
            .tempdir_in("/tmp")
            .map_err(|e| Problem::new(Code::Io, format!("cannot make a socket directory: {e}")))?;
        Ok(Hosts {
            settings,
            sockets,
            hosts: Mutex::new(HashMap::new()),
            digests: Mutex::new(HashMap::new()),
        })
    }

    /// The host of `addr`, connected (once; a failure is remembered for the run, so the
    /// other nodes of an unreachable host fail at once).
    pub fn get(&self, addr: &SshAddr) -> Result<Arc<Host>, Problem> {
        let label = describe(addr);
        let (cell, index) = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            let index = hosts.len();
            (hosts.entry(label.clone()).or_default().clone(), index)
        };
        cell.get_or_init(|| self.connect(addr, label, index).map(Arc::new))
            .clone()
    }

    fn connect(&self, addr: &SshAddr, label: String, index: usize) -> Result<Host, Problem> {
        let s = &self.settings;
        let mut args: Vec<OsString> = Vec::new();
        if let Some(c) = &s.config {
            args.extend(["-F".into(), c.into()]);
        }
        let socket = self.sockets.path().join(index.to_string());
        let mut control = OsString::from("ControlPath=");
        control.push(&socket);
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
        ] {
            args.extend(["-o".into(), o.into()]);
        }
        args.extend(["-o".into(), control]);
        args.extend(["-T".into(), "-x".into(), "-a".into()]);
        if let Some(p) = addr.port {
            args.extend(["-p".into(), p.to_string().into()]);
        }
        if let Some(u) = &addr.user {
            args.extend(["-l".into(), u.into()]);
        }
        let mut master = Command::new("ssh");
        master
            .args(&args)
            .args(["-o", "ControlMaster=yes", "-o"])
            .arg(format!("ControlPersist={PERSIST}"))
            .args(["-f", "-N"])
            .arg(&addr.host);
        // Connect timeout, key exchange and authentication: bounded all together.
        let limit = s.connect_timeout * 2 + Duration::from_secs(5);
        let (status, err) = run(master, None, limit)
            .map_err(|e| Problem::new(Code::SshUnreachable, format!("{label}: {e}")))?;
        if !status.is_some_and(|s| s.success()) {
            return Err(classify(&label, &err, status));
        }
        args.extend(["-o".into(), "ControlMaster=no".into()]);
        args.push(addr.host.clone().into());
        let mut host = Host {
            label,
            args,
            dir: String::new(),
            bin: OnceLock::new(),
            packages: Mutex::new(HashMap::new()),
            sessions: Mutex::new(0),
            freed: Condvar::new(),
        };
        host.dir = host.probe()?;
        Ok(host)
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
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let hosts = self.hosts.get_mut().unwrap_or_else(|e| e.into_inner());
        for cell in hosts.values() {
            if let Some(Ok(h)) = cell.get() {
                // `-O exit` asks the master to close the connection and its socket.
                if let Some((host, rest)) = h.args.split_last() {
                    let mut exit = Command::new("ssh");
                    exit.args(rest).args(["-O", "exit"]).arg(host);
                    let _ = run(exit, None, Duration::from_secs(5));
                }
            }
        }
    }
}

/// Runs `cmd` with `stdin`, waiting at most `limit`: its exit status (`None` when it was
/// stopped at the limit) and its output. Output goes to a temporary file, not a pipe: a
/// backgrounded master keeps no pipe of ours open.
fn run(
    mut cmd: Command,
    stdin: Option<File>,
    limit: Duration,
) -> Result<(Option<ExitStatus>, String), String> {
    let mut out = tempfile::tempfile().map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let out2 = out.try_clone().map_err(|e| e.to_string())?;
    let out3 = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(stdin.map_or(Stdio::null(), Stdio::from))
        .stdout(out2)
        .stderr(out3);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start ssh (is OpenSSH's client installed?): {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("cannot wait for ssh: {e}")),
        }
    };
    let mut text = String::new();
    let _ = out.seek(SeekFrom::Start(0));
    let _ = out.read_to_string(&mut text);
    Ok((status, text))
}

/// The problem an `ssh` that failed to connect reports, in words for an operator.
pub fn classify(label: &str, stderr: &str, status: Option<ExitStatus>) -> Problem {
    let said = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned();
    let has = |s: &str| stderr.contains(s);
    if status.is_none() {
        return Problem::new(
            Code::SshUnreachable,
            format!("{label}: no SSH connection within the connect timeout"),
        );
    }
    if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return Problem::new(
            Code::SshHostKey,
            format!("{label}: the host key is not in known_hosts or does not match it ({said})"),
        );
    }
    if has("Permission denied") || has("Too many authentication failures") {
        return Problem::new(
            Code::SshAuth,
            format!("{label}: the host refused our key ({said})"),
        );
    }
    Problem::new(
        Code::SshUnreachable,
        format!(
            "{label}: cannot connect ({})",
            if said.is_empty() {
                "ssh failed and said nothing".to_owned()
            } else {
                said
            }
        ),
    )
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

impl Host {
    /// Waits for a free session slot on the connection; [`Host::release`] gives it back.
    pub fn acquire(&self) {
        let mut n = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= SESSIONS_PER_HOST {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    pub fn release(&self) {
        *self.sessions.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.freed.notify_one();
    }

    /// A session slot for as long as the permit lives.
    pub fn permit(&self) -> Permit<'_> {
        self.acquire();
        Permit(self)
    }

    /// An `ssh` over the master connection; append the remote command.
    pub fn ssh(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(&self.args);
        c
    }

    /// Runs a `sh` script on the host: its status and output.
    fn sh(
        &self,
        script: &str,
        stdin: Option<File>,
        limit: Duration,
    ) -> Result<(Option<ExitStatus>, String), Problem> {
        let mut c = self.ssh();
        c.arg(format!("sh -c {}", sh_quote(script)));
        let _slot = self.permit();
        run(c, stdin, limit).map_err(|e| Problem::new(Code::SshUnreachable, e))
    }

    /// Finds the host's work directory (`$FLEETUP_REMOTE_DIR`, else
    /// `~/.cache/fleetup`) and checks the host can run this fleetup.
    fn probe(&self) -> Result<String, Problem> {
        let script = r#"printf 'fleetup-probe %s %s %s\n' "$(uname -s)" "$(uname -m)" "${FLEETUP_REMOTE_DIR:-$HOME/.cache/fleetup}""#;
        let (status, out) = self.sh(script, None, Duration::from_secs(60))?;
        let line = out.lines().find_map(|l| l.strip_prefix("fleetup-probe "));
        let (Some(line), true) = (line, status.is_some_and(|s| s.success())) else {
            return Err(self.failure("looking at the host", &out, status));
        };
        let mut words = line.splitn(3, ' ');
        let (os, arch, dir) = (
            words.next().unwrap_or(""),
            words.next().unwrap_or(""),
            words.next().unwrap_or("").trim_end(),
        );
        let (los, larch) = local_platform();
        if os != los || !same_arch(arch, larch) {
            return Err(Problem::new(
                Code::RemotePlatform,
                format!(
                    "{}: the host is {os} {arch}, this fleetup is {los} {larch}; fleetup copies itself to a host to run its store there",
                    self.label
                ),
            ));
        }
        if !dir.starts_with('/') {
            return Err(Problem::new(
                Code::RemoteProtocol,
                format!("{}: the work directory `{dir}` is not absolute", self.label),
            ));
        }
        Ok(dir.to_owned())
    }

    /// The problem of an `ssh` step that did not do its job.
    fn failure(&self, during: &str, out: &str, status: Option<ExitStatus>) -> Problem {
        match status.and_then(|s| s.code()) {
            Some(255) | None => classify(&self.label, out, status),
            Some(c) => Problem::new(
                Code::RemoteProtocol,
                format!(
                    "{}: {during} failed (exit {c}): {}",
                    self.label,
                    out.trim().lines().last().unwrap_or("no output")
                ),
            ),
        }
    }

    /// The path of this fleetup on the host, copied there on first use.
    pub fn binary(&self) -> Result<String, Problem> {
        self.bin.get_or_init(|| self.install_binary()).clone()
    }

    fn install_binary(&self) -> Result<String, Problem> {
        let (exe, digest) = own_binary()?;
        let short = &digest[..16];
        let bin = format!("{}/bin/fleetup-{short}", self.dir);
        let check = format!("test -x {}", sh_quote(&bin));
        if let (Some(s), _) = self.sh(&check, None, Duration::from_secs(60))?
            && s.success()
        {
            return Ok(bin);
        }
        let file = File::open(exe)
            .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", exe.display())))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let d = sh_quote(&format!("{}/bin", self.dir));
        let script = format!(
            "set -e; mkdir -p {d}; t={d}/.fleetup-{short}.$$; trap 'rm -f \"$t\"' EXIT; \
             cat > \"$t\"; chmod 755 \"$t\"; \"$t\" __self-check {digest}; mv -f \"$t\" {}",
            sh_quote(&bin)
        );
        // Generous for slow links: 60 s plus a second per MB.
        let limit = Duration::from_secs(60 + size / 1_000_000);
        let (status, out) = self.sh(&script, Some(file), limit)?;
        if !status.is_some_and(|s| s.success()) {
            return Err(self.failure("copying fleetup to the host", &out, status));
        }
        Ok(bin)
    }

    /// Sends a package unless the host has it: the directory holding it on the host. One
    /// transfer per host and package, however many of its nodes need it.
    pub fn send_package(
        &self,
        session: &mut super::Session,
        path: &Path,
        file: &str,
        digest: &str,
    ) -> Result<String, Problem> {
        let slot = self
            .packages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(digest.to_owned())
            .or_default()
            .clone();
        let mut have = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &*have {
            return Ok(dir.clone());
        }
        let dir = session.receive(path, file, digest)?;
        *have = Some(dir.clone());
        Ok(dir)
    }

    /// The store states of `roots` on the host, read with `cat` in one session per few
    /// hundred roots: nothing is copied or changed (a dry run, or before a run starts).
    pub fn read_states(&self, roots: &[String]) -> Vec<Result<Option<StoreState>, Problem>> {
        let mut out = Vec::with_capacity(roots.len());
        for chunk in roots.chunks(200) {
            match self.read_chunk(chunk) {
                Ok(states) => out.extend(states),
                Err(p) => out.extend(chunk.iter().map(|_| Err(p.clone()))),
            }
        }
        out
    }

    fn read_chunk(
        &self,
        roots: &[String],
    ) -> Result<Vec<Result<Option<StoreState>, Problem>>, Problem> {
        // A marker no RELEASES file holds: fleetup writes them, as TOML.
        let mark = format!("fleetup-{}-{}", std::process::id(), roots.len());
        let files: Vec<String> = roots
            .iter()
            .map(|r| format!("{}/releases/RELEASES", r.trim_end_matches('/')))
            .collect();
        let mut script = String::new();
        for f in &files {
            script.push_str(&format!(
                "if [ -e {q} ]; then printf '\\n{mark} state\\n'; cat {q}; else printf '\\n{mark} none\\n'; fi; ",
                q = sh_quote(f)
            ));
        }
        script.push_str(&format!("printf '\\n{mark} end\\n'"));
        let (status, text) = self.sh(&script, None, Duration::from_secs(120))?;
        let complete = text.contains(&format!("\n{mark} end\n"));
        if !status.is_some_and(|s| s.success()) || !complete {
            return Err(self.failure("reading the store states", &text, status));
        }
        let sep = format!("\n{mark} ");
        let mut parts = text.split(sep.as_str()).skip(1);
        Ok(files
            .iter()
            .map(|f| {
                let part = parts.next().unwrap_or("");
                match part.split_once('\n') {
                    Some(("none", _)) => Ok(None),
                    Some(("state", body)) => {
                        crate::store::state::parse_state(body, &format!("{}:{f}", self.label))
                            .map(Some)
                            .map_err(|e| Problem::new(Code::StoreUnreadable, e))
                    }
                    _ => Err(self.failure("reading the store states", &text, status)),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn quoting_keeps_every_string_one_word() {
        for s in [
            "plain",
            "with space",
            "it's",
            "$(rm -rf /)",
            "'",
            "a\nb",
            "",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

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

    #[test]
    fn ssh_failures_are_told_apart() {
        let st = Some(ExitStatus::from_raw(255 << 8));
        let code = |err: &str| classify("h", err, st).code;
        assert_eq!(code("Host key verification failed.\n"), Code::SshHostKey);
        assert_eq!(
            code("root@127.0.0.1: Permission denied (publickey).\n"),
            Code::SshAuth
        );
        let p = classify(
            "h",
            "ssh: connect to host 127.0.0.1 port 9: Connection refused\n",
            st,
        );
        assert_eq!(p.code, Code::SshUnreachable);
        assert!(p.message.ends_with("Connection refused)"), "{}", p.message);
        assert_eq!(classify("h", "", None).code, Code::SshUnreachable);
    }
}
