//! One host's link: a single `ssh` process whose one session first runs a small POSIX
//! `sh` bootstrap and then `fleetup __agent`. The bootstrap reports the host's OS, CPU
//! and work directory, runs the agent binary the controller names if the host has it,
//! or receives it (checked by its SHA-256 on the host before it is renamed into place)
//! and runs it. From then on the session carries numbered channels, one per node store
//! in use, so every node of the host, the reads before a run and every step of it
//! share one connection and one session: one key exchange and one login shell per host.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::agent::{Frame, Hello, PROTOCOL, Reply, Request};
use crate::diagnostics::{Code, Problem};

/// ssh's input: one end of a socket pair, written with `MSG_NOSIGNAL`, so that a session
/// that has ended is an error to handle (a lost connection), never a SIGPIPE that ends
/// fleetup mid-run.
struct Input(UnixStream);

impl Write for Input {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: a valid socket and a buffer of `buf.len()` bytes.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the bootstrap says before the agent takes over, and the agent's hello.
enum Boot {
    Line(String),
    Hello(Hello),
}

/// The longest line a host may send (a bootstrap line or a reply frame), as OpenSSH
/// caps a packet and git a pkt-line: past it the session is ended, and only this host's
/// nodes fail.
pub const MAX_FRAME: usize = 8 << 20;
/// What one request's `say` lines may add to the output and journal; the rest is
/// counted and summarised.
const SAY_LINES: usize = 400;
const SAY_BYTES: usize = 256 << 10;
/// The longest `say` line kept whole.
const SAY_LINE: usize = 4 << 10;
/// The bootstrap lines kept to explain an agent that would not start.
const HEARD: usize = 20;

/// Replies waiting for their channel's reader, by channel.
#[derive(Default)]
struct Routes {
    /// False once the session has ended: no reply will come.
    open: bool,
    map: HashMap<u32, mpsc::Sender<Reply>>,
    /// Why the controller ended the session itself (a host that broke the protocol).
    broken: Option<String>,
}

/// The host as the bootstrap found it.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `uname -s` and `uname -m`.
    pub os: String,
    pub arch: String,
    /// The host's work directory: agent binaries and received packages.
    pub dir: String,
}

/// An agent binary for a host: where it is here, its digest and size.
#[derive(Clone, Debug)]
pub struct AgentBinary {
    pub path: std::path::PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// Chooses the agent binary for a host from what its bootstrap reported.
pub type Choose<'a> = &'a (dyn Fn(&Probe) -> Result<AgentBinary, Problem> + Sync);

pub struct Link {
    pub label: String,
    pub probe: Probe,
    child: Mutex<Child>,
    /// Held across a request and its bytes when a package is streamed.
    stdin: Mutex<Option<Input>>,
    routes: Arc<Mutex<Routes>>,
    next: AtomicU32,
    stderr: Mutex<File>,
}

/// The bootstrap: probe, then run the agent the controller names, or receive it first.
/// Every word the controller sends is checked (hex digests, a decimal size) before it
/// reaches this script; the script itself only reads its own lines. A cached agent is
/// checked against its SHA-256 before it runs (with `sha256sum`, or the copy's own
/// `__self-check` where there is none); one that does not match is sent again. A check
/// that passed leaves a mark (`checked/<short>`, removed with its agent by `gc`); while
/// the agent is not newer than its mark it is not hashed again, so a fleet's hosts do
/// not hash their agent at every connection.
const BOOTSTRAP: &str = r#"d="${FLEETUP_REMOTE_DIR:-$HOME/.cache/fleetup}"
printf 'fleetup-probe %s %s %s\n' "$(uname -s)" "$(uname -m)" "$d"
intact() {
  m="$d/checked/$3"
  if [ -f "$m" ] && [ ! "$1" -nt "$m" ] && [ "$(cat "$m" 2>/dev/null)" = "$2" ]; then
    return 0
  fi
  if command -v sha256sum >/dev/null 2>&1; then
    [ "$(sha256sum < "$1" | cut -c1-64)" = "$2" ] || return 1
  else
    "$1" __self-check "$2" >/dev/null 2>&1 || return 1
  fi
  mkdir -p "$d/checked" 2>/dev/null && printf '%s' "$2" > "$m" 2>/dev/null || true
}
while read -r verb short size digest; do
  b="$d/bin/fleetup-$short"
  case "$verb" in
    run) if [ -x "$b" ] && intact "$b" "$digest" "$short"; then exec "$b" __agent --dir "$d"; fi
         echo fleetup-missing ;;
    send) mkdir -p "$d/bin" || exit 1
          t="$d/bin/.fleetup-$short.$$"
          if head -c "$size" > "$t" && chmod 755 "$t" && "$t" __self-check "$digest" 2>&1 && mv -f "$t" "$b"; then
            exec "$b" __agent --dir "$d"
          fi
          rm -f "$t"; echo fleetup-unusable; exit 1 ;;
    *) exit 0 ;;
  esac
done"#;

impl Link {
    /// Connects to the host with `args` (every `ssh` argument, the host last), probes it
    /// and starts the agent `choose` picks for it.
    pub fn connect(
        label: String,
        args: &[std::ffi::OsString],
        connect_limit: Duration,
        choose: Choose,
    ) -> Result<Link, Problem> {
        let stderr = tempfile::tempfile()
            .map_err(|e| Problem::new(Code::Io, format!("cannot make a temporary file: {e}")))?;
        let err2 = stderr
            .try_clone()
            .map_err(|e| Problem::new(Code::Io, e.to_string()))?;
        let (ours, theirs) = UnixStream::pair()
            .map_err(|e| Problem::new(Code::Io, format!("cannot make a socket pair: {e}")))?;
        let mut cmd = Command::new("ssh");
        cmd.args(args)
            .arg(format!("sh -c {}", sh_quote(BOOTSTRAP)))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(err2);
        let spawned = cmd.spawn();
        // ssh's end of the pair, held by the command, closes here.
        drop(cmd);
        let mut child = spawned.map_err(|e| {
            Problem::new(
                Code::SshUnreachable,
                format!("{label}: cannot start ssh (is OpenSSH's client installed?): {e}"),
            )
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = Some(Input(ours));
        let routes = Arc::new(Mutex::new(Routes {
            open: true,
            map: HashMap::new(),
            broken: None,
        }));
        let (boot_tx, boot) = mpsc::channel();
        let r2 = routes.clone();
        std::thread::spawn(move || read_replies(stdout, &r2, boot_tx));
        let link = Link {
            label,
            probe: Probe {
                os: String::new(),
                arch: String::new(),
                dir: String::new(),
            },
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            routes,
            next: AtomicU32::new(1),
            stderr: Mutex::new(stderr),
        };
        link.start(boot, connect_limit, choose)
    }

    fn start(
        mut self,
        boot: mpsc::Receiver<Boot>,
        connect_limit: Duration,
        choose: Choose,
    ) -> Result<Link, Problem> {
        // Connect timeout, key exchange, authentication and the login shell, bounded as
        // a whole: a login banner that keeps printing does not hold it open.
        let probe_by = Instant::now() + connect_limit;
        let probe = loop {
            match boot.recv_timeout(probe_by.saturating_duration_since(Instant::now())) {
                Ok(Boot::Line(l)) => {
                    if let Some(rest) = l.strip_prefix("fleetup-probe ") {
                        break rest.to_owned();
                    }
                }
                Ok(Boot::Hello(_)) => return Err(self.protocol("an agent spoke before the probe")),
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(Problem::new(
                        Code::SshUnreachable,
                        format!(
                            "{}: no SSH connection within the connect timeout",
                            self.label
                        ),
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // A host that broke the protocol (a line past the frame limit) is
                    // blamed for that, whether or not our last write reached it first.
                    if self.broken() {
                        return Err(self.lost("the start of the agent"));
                    }
                    let (status, said) = self.ended();
                    return Err(classify(&self.label, &said, status));
                }
            }
        };
        let mut words = probe.splitn(3, ' ');
        self.probe = Probe {
            os: words.next().unwrap_or("").to_owned(),
            arch: words.next().unwrap_or("").to_owned(),
            dir: words.next().unwrap_or("").trim_end().to_owned(),
        };
        if !self.probe.dir.starts_with('/') {
            self.quit();
            return Err(Problem::new(
                Code::RemoteProtocol,
                format!(
                    "{}: the work directory `{}` is not absolute",
                    self.label, self.probe.dir
                ),
            ));
        }
        let bin = match choose(&self.probe) {
            Ok(b) => b,
            Err(p) => {
                self.quit();
                return Err(p);
            }
        };
        let short = &bin.sha256[..16];
        self.say(&format!("run {short} 0 {}\n", bin.sha256))?;
        let mut heard: std::collections::VecDeque<String> = Default::default();
        let mut sent = false;
        let limit = Duration::from_secs(60);
        // From the probe to the agent's hello, one deadline, whatever the host prints.
        let mut by = Instant::now() + limit;
        loop {
            let wait = by.saturating_duration_since(Instant::now());
            match boot.recv_timeout(wait) {
                Ok(Boot::Hello(h)) => {
                    if h.hello.protocol != PROTOCOL {
                        self.quit();
                        return Err(Problem::new(
                            Code::RemoteProtocol,
                            format!(
                                "{}: the agent {} speaks protocol {}, this fleetup {PROTOCOL}",
                                self.label,
                                bin.path.display(),
                                h.hello.protocol
                            ),
                        )
                        .help("give the host an agent built from the same fleetup release"));
                    }
                    return Ok(self);
                }
                Ok(Boot::Line(l)) if l == "fleetup-missing" && !sent => {
                    sent = true;
                    by += Duration::from_secs(bin.size / 1_000_000);
                    self.say(&format!("send {short} {} {}\n", bin.size, bin.sha256))?;
                    self.send_binary(&bin)?;
                }
                Ok(Boot::Line(l)) if l == "fleetup-unusable" => {
                    return Err(self.unusable(&bin, heard.make_contiguous()));
                }
                Ok(Boot::Line(l)) => {
                    if heard.len() == HEARD {
                        heard.pop_front();
                    }
                    heard.push_back(crate::names::printable(&l));
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(Problem::new(
                        Code::SshLost,
                        format!(
                            "{}: the agent did not start within {}s of the host's probe",
                            self.label,
                            limit.as_secs()
                        ),
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // A host that broke the protocol (a line past the frame limit) is
                    // blamed for that, whether or not our last write reached it first.
                    if self.broken() {
                        return Err(self.lost("the start of the agent"));
                    }
                    let (status, said) = self.ended();
                    heard.extend(said.lines().map(str::to_owned));
                    let heard = heard.make_contiguous();
                    return Err(match status.and_then(|s| s.code()) {
                        Some(255) | None => classify(&self.label, &said, status),
                        _ => self.unusable(&bin, heard),
                    });
                }
            }
        }
    }

    /// The host could not run the agent: what was tried, what it said, what to do.
    fn unusable(&self, bin: &AgentBinary, heard: &[String]) -> Problem {
        let said = heard
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>();
        let said = if said.is_empty() {
            "nothing".to_owned()
        } else {
            said.join(" / ")
        };
        Problem::new(
            Code::RemotePlatform,
            format!(
                "{}: the host ({} {}) cannot run the agent {}; it said: {said}",
                self.label,
                self.probe.os,
                self.probe.arch,
                bin.path.display()
            ),
        )
        .help(
            "put a fleetup built for that host in the plan's `agents:` directory (or \
             FLEETUP_AGENTS), named fleetup-<os>-<arch> as in fleetup-linux-x86_64; a static \
             musl build (cargo build --release --target x86_64-unknown-linux-musl) runs on \
             any glibc",
        )
    }

    fn protocol(&self, what: &str) -> Problem {
        self.kill();
        Problem::new(Code::RemoteProtocol, format!("{}: {what}", self.label))
    }

    /// Writes a bootstrap line; a session that is gone is a lost connection.
    fn say(&self, line: &str) -> Result<(), Problem> {
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let ok = match stdin.as_mut() {
            Some(s) => s
                .write_all(line.as_bytes())
                .and_then(|()| s.flush())
                .is_ok(),
            None => false,
        };
        drop(stdin);
        if ok {
            Ok(())
        } else {
            Err(self.lost("the start of the agent"))
        }
    }

    fn send_binary(&self, bin: &AgentBinary) -> Result<(), Problem> {
        let mut f = File::open(&bin.path)
            .map_err(|e| Problem::new(Code::Io, format!("{}: {e}", bin.path.display())))?;
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let copied = match stdin.as_mut() {
            Some(s) => {
                std::io::copy(&mut (&mut f).take(bin.size), s).and_then(|n| s.flush().map(|()| n))
            }
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        drop(stdin);
        match copied {
            Ok(n) if n == bin.size => Ok(()),
            Ok(n) => Err(Problem::new(
                Code::Io,
                format!(
                    "{} changed while it was sent ({n} of {} bytes)",
                    bin.path.display(),
                    bin.size
                ),
            )),
            Err(_) => Err(self.lost("copying fleetup to the host")),
        }
    }

    /// Ends the bootstrap without starting anything.
    fn quit(&self) {
        let _ = self.say("quit\n");
        self.close_input();
    }

    fn kill(&self) {
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = c.kill();
    }

    /// End of input: the agent finishes what it serves and exits, and ssh with it.
    pub fn close_input(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Whether the session still runs.
    pub fn alive(&self) -> bool {
        self.routes.lock().unwrap_or_else(|e| e.into_inner()).open
    }

    /// ssh's exit status (waiting up to 2 s for it) and everything it said on stderr.
    fn ended(&self) -> (Option<ExitStatus>, String) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            let r = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait();
            match r {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => break None,
            }
        };
        let mut said = String::new();
        let mut f = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.read_to_string(&mut said);
        (status, said)
    }

    /// Why the session ended: the host broke the protocol, or ssh's last words, or the
    /// agent's.
    /// Whether the host broke the protocol (its reader recorded why).
    fn broken(&self) -> bool {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .broken
            .is_some()
    }

    fn lost(&self, during: &str) -> Problem {
        let broken = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .broken
            .clone();
        if let Some(why) = broken {
            self.kill();
            return Problem::new(
                Code::RemoteProtocol,
                format!(
                    "{}: the session was ended during {during}: {why}",
                    self.label
                ),
            );
        }
        let (status, said) = self.ended();
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
                self.label
            ),
        )
    }

    /// A new channel on this session.
    pub fn channel(self: &Arc<Self>) -> Channel {
        let ch = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        // A session that has ended drops the sender at once: the first call says lost.
        if routes.open {
            routes.map.insert(ch, tx);
        }
        Channel {
            link: self.clone(),
            ch,
            rx,
        }
    }

    fn write_frame(&self, stdin: &mut Option<Input>, ch: u32, req: &Request) -> bool {
        let Ok(mut line) = serde_json::to_vec(&Frame { ch, m: req }) else {
            return false;
        };
        line.push(b'\n');
        match stdin.as_mut() {
            Some(s) => s.write_all(&line).and_then(|()| s.flush()).is_ok(),
            None => false,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close_input();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Reads the session's output: the bootstrap's lines and the agent's hello to `boot`,
/// reply frames to their channels. At the end, every waiting channel hears it.
fn read_replies(
    stdout: std::process::ChildStdout,
    routes: &Mutex<Routes>,
    boot: mpsc::Sender<Boot>,
) {
    let mut reader = BufReader::new(stdout);
    loop {
        let line = match bounded_line(&mut reader, MAX_FRAME) {
            Ok(Some(l)) => l,
            Ok(None) | Err(Overlong::Io) => break,
            Err(Overlong::Line) => {
                routes.lock().unwrap_or_else(|e| e.into_inner()).broken = Some(format!(
                    "the host sent a line longer than {} MiB",
                    MAX_FRAME >> 20
                ));
                break;
            }
        };
        if line.starts_with("{\"ch\":")
            && let Ok(f) = serde_json::from_str::<Frame<Reply>>(&line)
        {
            let r = routes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(tx) = r.map.get(&f.ch) {
                let _ = tx.send(f.m);
            }
            continue;
        }
        let msg = match serde_json::from_str::<Hello>(&line) {
            Ok(h) => Boot::Hello(h),
            Err(_) => Boot::Line(line),
        };
        let _ = boot.send(msg);
    }
    let mut r = routes.lock().unwrap_or_else(|e| e.into_inner());
    r.open = false;
    r.map.clear();
}

enum Overlong {
    Io,
    Line,
}

/// The next line of `r` without its `\n` (`None` at the end), read in pieces so that a
/// line longer than `max` is refused before it is held whole. Invalid UTF-8 is replaced.
fn bounded_line(r: &mut impl BufRead, max: usize) -> Result<Option<String>, Overlong> {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Overlong::Io),
        };
        if buf.is_empty() {
            return Ok((!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        let (take, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(Overlong::Line);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take + usize::from(end));
        if end {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// What one request's `say` lines have added so far: past [`SAY_LINES`] or
/// [`SAY_BYTES`] the rest is counted, and said as one line at the end.
#[derive(Default)]
struct Said {
    lines: usize,
    bytes: usize,
    held_lines: usize,
    held_bytes: usize,
}

impl Said {
    /// `line` as it may be passed on, or `None` once the bounds are reached.
    fn pass(&mut self, line: String) -> Option<String> {
        if self.lines >= SAY_LINES || self.bytes + line.len().min(SAY_LINE) > SAY_BYTES {
            self.held_lines += 1;
            self.held_bytes += line.len();
            return None;
        }
        self.lines += 1;
        let line = crate::names::printable(&line);
        let line = if line.len() > SAY_LINE {
            let mut cut = SAY_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}… ({} bytes more)", &line[..cut], line.len() - cut)
        } else {
            line
        };
        self.bytes += line.len();
        Some(line)
    }

    /// The summary of what was held back, if anything was.
    fn summary(&self) -> Option<String> {
        (self.held_lines > 0).then(|| {
            format!(
                "… {} more lines ({} bytes) from the host not shown",
                self.held_lines, self.held_bytes
            )
        })
    }
}

/// One node's conversation with the agent: requests in order, each with its replies.
pub struct Channel {
    link: Arc<Link>,
    ch: u32,
    rx: mpsc::Receiver<Reply>,
}

impl Channel {
    pub fn label(&self) -> &str {
        &self.link.label
    }

    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Sends `req` and waits up to `limit` for its final reply, handing `say` lines on.
    pub fn call(
        &mut self,
        req: &Request,
        during: &str,
        limit: Duration,
        say: &mut dyn FnMut(String),
    ) -> Result<Reply, Problem> {
        let ok = {
            let mut stdin = self.link.stdin.lock().unwrap_or_else(|e| e.into_inner());
            self.link.write_frame(&mut stdin, self.ch, req)
        };
        if !ok {
            return Err(self.link.lost(during));
        }
        self.reply(during, limit, say)
    }

    fn reply(
        &mut self,
        during: &str,
        limit: Duration,
        say: &mut dyn FnMut(String),
    ) -> Result<Reply, Problem> {
        let deadline = Instant::now() + limit;
        let mut said = Said::default();
        let end = |said: &Said, say: &mut dyn FnMut(String)| {
            if let Some(s) = said.summary() {
                say(s);
            }
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = match self.rx.recv_timeout(left) {
                Ok(r) => r,
                Err(RecvTimeoutError::Disconnected) => {
                    end(&said, say);
                    return Err(self.link.lost(during));
                }
                Err(RecvTimeoutError::Timeout) => {
                    end(&said, say);
                    // The session is the host's: a step that never answers ends it.
                    self.link.kill();
                    return Err(Problem::new(
                        Code::SshLost,
                        format!(
                            "{}: no answer during {during} within {}s; the session was closed",
                            self.link.label,
                            limit.as_secs()
                        ),
                    ));
                }
            };
            match r {
                Reply::Say { line } => {
                    if let Some(line) = said.pass(line) {
                        say(line);
                    }
                }
                Reply::Failed {
                    code,
                    message,
                    help,
                } => {
                    end(&said, say);
                    return Err(Reply::into_problem(&code, message, help));
                }
                r => {
                    end(&said, say);
                    return Ok(r);
                }
            }
        }
    }

    pub fn unexpected(&self, during: &str, r: &Reply) -> Problem {
        Problem::new(
            Code::RemoteProtocol,
            format!(
                "{}: unexpected answer during {during}: {r:?}",
                self.link.label
            ),
        )
    }

    /// Has the host download a package from a mirror itself (checked against `digest`,
    /// and with `trust` against its signature there): the directory holding it there.
    /// `req` is a [`Request::Fetch`].
    pub fn fetch(&mut self, req: &Request) -> Result<String, Problem> {
        let Request::Fetch {
            file, timeout_ms, ..
        } = req
        else {
            return Err(Problem::new(Code::RemoteProtocol, "not a fetch request"));
        };
        let during = format!("downloading {file} on the host");
        // Every attempt of the download, with its backoff, and some time to spare.
        let limit = Duration::from_millis(*timeout_ms) * 4 + Duration::from_secs(120);
        match self.call(req, &during, limit, &mut |_| {})? {
            Reply::Received { path } => Ok(path),
            r => Err(self.unexpected(&during, &r)),
        }
    }

    /// Streams a package to the host, which checks its digest before keeping it: the
    /// directory holding it there. No other channel writes while the bytes go.
    pub fn receive(&mut self, path: &Path, file: &str, digest: &str) -> Result<String, Problem> {
        let during = format!("sending {file}");
        let mut f = File::open(path)
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
        let link = self.link.clone();
        let mut stdin = link.stdin.lock().unwrap_or_else(|e| e.into_inner());
        if !link.write_frame(&mut stdin, self.ch, &req) {
            drop(stdin);
            return Err(link.lost(&during));
        }
        let dir = match self.reply(&during, limit, &mut |_| {})? {
            Reply::Ready { send: false, path } => return Ok(path),
            Reply::Ready { send: true, path } => path,
            r => return Err(self.unexpected(&during, &r)),
        };
        let copied = match stdin.as_mut() {
            Some(s) => {
                std::io::copy(&mut (&mut f).take(size), s).and_then(|n| s.flush().map(|()| n))
            }
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        drop(stdin);
        match copied {
            Ok(n) if n == size => {}
            Ok(n) => {
                // The host waits for bytes that will not come: end the session.
                link.kill();
                return Err(Problem::new(
                    Code::Io,
                    format!(
                        "{} changed while it was sent ({n} of {size} bytes)",
                        path.display()
                    ),
                ));
            }
            Err(_) => return Err(link.lost(&during)),
        }
        match self.reply(&during, limit, &mut |_| {})? {
            Reply::Received { .. } => Ok(dir),
            r => Err(self.unexpected(&during, &r)),
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.link
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .remove(&self.ch);
        let mut stdin = self.link.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.link.write_frame(&mut stdin, self.ch, &Request::Close);
    }
}

/// `s` as one word of a POSIX shell command line.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
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
