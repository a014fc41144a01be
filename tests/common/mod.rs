//! Helpers shared by the integration tests: release packages built for real, and the
//! binary under test.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

pub fn fleetup() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fleetup").unwrap();
    c.env("NO_COLOR", "1");
    c
}

/// Runs a command to its end: exit code, stdout, stderr.
pub fn output(cmd: &mut assert_cmd::Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `cond` until it holds or `limit` passes; whether it held. Not using the answer is
/// a test that goes on as if the condition held: assert it.
#[must_use]
pub fn wait_until(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub const PRODUCT: &str = "emqx";

pub fn package_name(version: &str) -> String {
    format!("{PRODUCT}-{version}-otp24.3.4.2-1-ubuntu20.04-amd64.zip")
}

/// A release package: VERSION, an executable bin/ctl, and `extra` data files.
pub fn release_zip(dir: &Path, version: &str, extra: usize) -> PathBuf {
    let path = dir.join(package_name(version));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    z.start_file("VERSION", opts).unwrap();
    writeln!(z, "{version}").unwrap();
    z.add_directory("bin/", opts).unwrap();
    z.start_file("bin/ctl", opts.unix_permissions(0o755))
        .unwrap();
    writeln!(z, "#!/bin/sh\necho {version} \"$@\"").unwrap();
    for i in 0..extra {
        z.start_file(format!("lib/part-{i:04}.dat"), opts).unwrap();
        z.write_all(format!("{version} part {i}\n").repeat(64).as_bytes())
            .unwrap();
    }
    z.finish().unwrap();
    path
}

/// Releases `versions` in `dir/repo`, and local nodes `names` under `dir` installed on
/// the first of them (product emqx), for tests that run plans against real stores.
pub fn local_fleet(dir: &Path, names: &[&str], versions: &[&str]) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for v in versions {
        release_zip(&repo, v, 0);
    }
    for n in names {
        fleetup()
            .current_dir(dir)
            .args([
                "node",
                "upgrade",
                versions[0],
                "--root",
                n,
                "--repo",
                "repo",
            ])
            .args(["--product", "emqx"])
            .assert()
            .success();
    }
}

/// Writes `<path>.sha256` in sha256sum format.
pub fn sidecar(path: &Path) {
    let digest = fleetup::package::sha256_file(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    std::fs::write(
        format!("{}.sha256", path.display()),
        format!("{digest}  {name}\n"),
    )
    .unwrap();
}

/// A node whose activate hook appends "<version> <previous>" to activations.log, and
/// fails for versions listed in `fail-versions` (one per line) if that file exists.
pub fn node_with_hook(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(
        root.join("node.toml"),
        r#"[activate]
command = ["/bin/sh", "-c", "echo \"$FLEETUP_VERSION $FLEETUP_PREVIOUS_VERSION $FLEETUP_RELEASE_DIR\" >> {root}/activations.log; ! grep -qx \"$FLEETUP_VERSION\" {root}/fail-versions 2>/dev/null"]
timeout = "10s"
"#,
    )
    .unwrap();
}

pub fn activations(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("activations.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

pub fn link(root: &Path, name: &str) -> Option<String> {
    std::fs::read_link(root.join(name))
        .ok()
        .map(|p| p.display().to_string())
}

/// Everything under a directory, with file contents, for "nothing changed" assertions.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((rel.clone() + "/", Vec::new()));
                walk(base, &p, out);
            } else if !rel.ends_with(".lock") {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The activate hook of a served release: (re)starts `python3 -m http.server` on the port
/// in `<root>/port`, serving the current release's www/.
pub const CTL: &str = r#"#!/bin/sh
root="$FLEETUP_ROOT"
if [ -f "$root/server.pid" ]; then kill "$(cat "$root/server.pid")" 2>/dev/null; sleep 0.3; fi
cd "$FLEETUP_RELEASE_DIR/www" || exit 1
python3 -m http.server --bind 127.0.0.1 "$(cat "$root/port")" >/dev/null 2>&1 &
echo $! > "$root/server.pid"
"#;

/// A release whose server answers /status (healthy) or 404 (broken).
pub fn served_release(repo: &Path, version: &str, healthy: bool) {
    let path = repo.join(package_name(version));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let o = SimpleFileOptions::default();
    z.start_file("VERSION", o).unwrap();
    writeln!(z, "{version}").unwrap();
    z.start_file("bin/ctl", o.unix_permissions(0o755)).unwrap();
    z.write_all(CTL.as_bytes()).unwrap();
    z.add_directory("www/", o).unwrap();
    if healthy {
        z.start_file("www/status", o).unwrap();
        write!(z, "{version}").unwrap();
    }
    z.finish().unwrap();
}

pub fn get_status(port: u16) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    write!(s, "GET /status HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.0 200")
        .then(|| out.rsplit("\r\n\r\n").next().unwrap_or("").to_owned())
}

pub fn wait_status(port: u16, want: &str) {
    if wait_until(std::time::Duration::from_secs(5), || {
        get_status(port).as_deref() == Some(want)
    }) {
        return;
    }
    panic!("port {port} never served {want}");
}

/// Whether process `pid` has `path` open (Linux: its /proc/PID/fd links), e.g. a lock
/// file it is waiting on.
pub fn holds_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
        d.flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|p| p == path))
    })
}

/// Processes (other than this one) working in `dir` or below it, or naming it on their
/// command line: what a test's nodes and hooks started there (HTTP servers, hooks, an
/// sshd), even once their directory is deleted.
pub fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cwd = std::fs::read_link(e.path().join("cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cwd.starts_with(&needle) || cmdline.contains(&needle) {
            found.push((pid, cmdline.trim().to_owned()));
        }
    }
    found
}

/// Kills every process `processes_under(dir)` finds, and waits (briefly) until they are
/// gone: the drop guard of test fleets, so that no server outlives its test on any path
/// (a failed assertion, a killed run that never wrote its server's pid file).
pub fn kill_processes_under(dir: &Path) {
    for (pid, _) in processes_under(dir) {
        // SAFETY: kill(2) on a pid; a pid reused meanwhile by an unrelated process would
        // have to work in this test's temporary directory to be found.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let _ = wait_until(std::time::Duration::from_secs(5), || {
        processes_under(dir).iter().all(|(pid, _)| is_zombie(*pid))
    });
}

/// Whether `pid` is gone or a zombie (dead, not yet reaped).
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// The id of the newest run in a state directory (run ids sort by their start time).
pub fn latest_run(state: &Path) -> String {
    runs_by_start(state).pop().unwrap()
}

/// The ids of the runs in `state`, in the order they started (the journal's first line
/// says when, to the millisecond): two runs in one second have ids that sort by their
/// random part, not by when they began.
pub fn runs_by_start(state: &Path) -> Vec<String> {
    let mut runs: Vec<(String, String)> = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let first = std::fs::read_to_string(e.path().join("journal.jsonl"))
                .unwrap_or_default()
                .lines()
                .next()
                .map(str::to_owned)
                .unwrap_or_default();
            let started = serde_json::from_str::<serde_json::Value>(&first)
                .ok()
                .and_then(|v| v["started"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (started, e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    runs.sort();
    runs.into_iter().map(|(_, id)| id).collect()
}

/// Makes a finished run's journal look as a kill leaves it right after `target` was
/// changed: its outcome and the run's end are gone. Returns the run id.
pub fn cut_journal(state: &Path, target: &str) -> String {
    let run = latest_run(state);
    let journal = state.join("runs").join(&run).join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let done = format!("\"target\":\"{target}\"");
    let cut: String = text
        .lines()
        .filter(|l| {
            !(l.contains("\"kind\":\"end\"")
                || (l.contains("\"event\":\"done\"") && l.contains(&done)))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(cut.lines().count() + 2, text.lines().count());
    std::fs::write(&journal, cut).unwrap();
    run
}

/// A message as one line: miette's wrapping and its `│` margins taken out, so that a
/// test can look for a phrase wherever the terminal width broke it.
pub fn flat(s: &str) -> String {
    s.split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The result of target `name` in a run's `--format json` document.
pub fn target<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

pub mod http;
pub mod sshd;
#[allow(unused_imports)]
pub use sshd::free_port;

/// A minisign key pair in `dir` (no password), made by the real `minisign` tool: the
/// public key's base64 line and the secret key's file.
pub fn minisign_keypair(dir: &Path, name: &str) -> (String, PathBuf) {
    let (p, s) = (
        dir.join(format!("{name}.pub")),
        dir.join(format!("{name}.sec")),
    );
    let out = std::process::Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&p)
        .arg("-s")
        .arg(&s)
        .output()
        .expect("minisign (Debian's package) is installed by scripts/test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    (key, s)
}

/// Signs `file` with `secret` (`<file>.minisig`), in minisign's legacy mode if asked.
pub fn minisign_sign(secret: &Path, file: &Path, legacy: bool) {
    let mut c = std::process::Command::new("minisign");
    c.arg("-S").arg("-s").arg(secret).arg("-m").arg(file);
    if legacy {
        c.arg("-l");
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
