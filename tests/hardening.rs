//! The third hardening round (issue 26): each test names the item it holds, and each
//! failed on the code before its fix.

mod common;

use std::path::Path;

use common::*;

/// A plan (relative root, repository and state) that pauses at a manual gate after its
/// first node, in `dir`.
fn gated_plan(dir: &Path) {
    local_fleet(dir, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        dir.join("plan.yaml"),
        "plan: 1\nname: rel\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  waves: [1, \"100%\"]\n  gates: [{ after_wave: 1, approve: manual }]\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
}

fn current(root: &Path) -> Option<String> {
    link(root, "current").map(|l| l.rsplit('/').next().unwrap_or_default().to_owned())
}

/// Item 1: `approve`, `resume` and `rollback RUN` started from another directory work on
/// the plan's own stores, never on fresh ones under the current directory.
#[test]
fn item_1_a_run_resumed_from_another_directory_works_on_the_plans_own_stores() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    gated_plan(&fleet);
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(&fleet)
                .args(["apply", "plan.yaml", "--yes"]),
        );
    assert_eq!(code, Some(6), "{out}{err}");
    let state = fleet.join("state");
    let run = latest_run(&state);
    let from_elsewhere = |args: &[&str]| {
        output(
            fleetup()
                .current_dir(&elsewhere)
                .args(args)
                .arg("--state")
                .arg(&state),
        )
    };
    let (code, out, err) = from_elsewhere(&["approve", &run]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = from_elsewhere(&["resume", &run, "--format", "json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "resume created stores in the directory it was started from"
    );
    assert_eq!(current(&fleet.join("n2")).as_deref(), Some("4.4.16"));
    let (code, out, err) = from_elsewhere(&["rollback", &run, "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    for n in ["n1", "n2"] {
        assert_eq!(current(&fleet.join(n)).as_deref(), Some("4.4.15"), "{n}");
    }
}

/// Item 1, journals written before the plan's location was recorded: worked out from
/// the plan's relative `state:` and where the run lives, or refused; never the current
/// directory.
#[test]
fn item_1_an_old_journal_is_resolved_from_its_state_directory_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    gated_plan(&fleet);
    let (code, _, _) = output(
        fleetup()
            .current_dir(&fleet)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(6));
    let state = fleet.join("state");
    let run = latest_run(&state);
    let journal = state.join("runs").join(&run).join("journal.jsonl");
    // As an older fleetup wrote it: no plan_file.
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut start: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(start["plan_file"].as_str().unwrap().starts_with('/'));
    start.as_object_mut().unwrap().remove("plan_file");
    lines[0] = start.to_string();
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    fleetup()
        .current_dir(&elsewhere)
        .args(["approve", &run, "--state"])
        .arg(&state)
        .assert()
        .success();
    let (code, out, err) = output(
        fleetup()
            .current_dir(&elsewhere)
            .args(["resume", &run, "--state"])
            .arg(&state),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    assert_eq!(current(&fleet.join("n2")).as_deref(), Some("4.4.16"));

    // The same run under a state directory that does not end in the plan's `state:`
    // cannot be placed: refused, nothing created anywhere.
    let moved = dir.path().join("moved");
    std::fs::rename(&state, &moved).unwrap();
    let before = snapshot(&fleet);
    let (code, out, err) = output(
        fleetup()
            .current_dir(&elsewhere)
            .args(["rollback", &run, "--yes", "--state"])
            .arg(&moved),
    );
    assert_eq!(code, Some(2), "{out}{err}");
    let said = flat(&err);
    assert!(
        said.contains("relative to a directory it did not record"),
        "{err}"
    );
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    assert_eq!(snapshot(&fleet), before);
}

/// `check --format json` of `plan`: each problem's code and message.
fn check_problems(plan: &Path) -> Vec<(String, String)> {
    let (_, out, _) = output(fleetup().args(["check", "--format", "json"]).arg(plan));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    doc["files"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_owned(),
                p["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// n1 on 4.4.14; the repository's 4.4.15 is genuine and signed; "4.4.16" is set up by
/// the caller. Returns the dir, the plan and the signed 4.4.15.
fn signed_fleet() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    local_fleet(dir.path(), &["n1"], &["4.4.14", "4.4.15"]);
    let (key, secret) = minisign_keypair(dir.path(), "release");
    let genuine = dir.path().join("repo").join(package_name("4.4.15"));
    minisign_sign(&secret, &genuine, false);
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "plan: 1\nname: signed\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             trust:\n  minisign: [\"{key}\"]\nnodes:\n  - {{ name: n1, root: ./n1 }}\n"
        ),
    )
    .unwrap();
    (dir, plan, genuine)
}

/// Item 2: the publisher's genuine signed 4.4.15 with its genuine signature, served as
/// 4.4.16, is refused by check and apply (`signature::name`, both names said).
#[test]
fn item_2_a_genuine_signature_under_another_name_is_refused() {
    let (dir, plan, genuine) = signed_fleet();
    let repo = dir.path().join("repo");
    let fake = repo.join(package_name("4.4.16"));
    std::fs::copy(&genuine, &fake).unwrap();
    std::fs::copy(
        format!("{}.minisig", genuine.display()),
        format!("{}.minisig", fake.display()),
    )
    .unwrap();
    let problems = check_problems(&plan);
    assert!(
        problems.iter().any(|(c, m)| c == "fleetup::signature::name"
            && m.contains(&package_name("4.4.15"))
            && m.contains(&package_name("4.4.16"))),
        "{problems:?}"
    );
    let before = snapshot(&dir.path().join("n1"));
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup::signature::name"), "{err}");
    assert_eq!(snapshot(&dir.path().join("n1")), before);
    // By hand, with the node's own [trust], the same.
    let key = std::fs::read_to_string(dir.path().join("release.pub")).unwrap();
    let key = key.lines().nth(1).unwrap();
    std::fs::write(
        dir.path().join("n1/node.toml"),
        format!("[trust]\nminisign = [\"{key}\"]\n"),
    )
    .unwrap();
    let before = snapshot(&dir.path().join("n1"));
    let (code, out, err) = output(fleetup().current_dir(dir.path()).args([
        "node", "upgrade", "4.4.16", "--root", "n1", "--repo", "repo",
    ]));
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(err.contains("fleetup::signature::name"), "{err}");
    assert_eq!(snapshot(&dir.path().join("n1")), before);
}

/// Item 2: a trusted comment changed after signing (to name the other file) is said to
/// be altered, not blamed on the package.
#[test]
fn item_2_a_tampered_trusted_comment_is_described_as_such() {
    let (dir, plan, genuine) = signed_fleet();
    let repo = dir.path().join("repo");
    let fake = repo.join(package_name("4.4.16"));
    std::fs::copy(&genuine, &fake).unwrap();
    let sig = std::fs::read_to_string(format!("{}.minisig", genuine.display())).unwrap();
    let forged = sig.replace(&package_name("4.4.15"), &package_name("4.4.16"));
    assert_ne!(sig, forged);
    std::fs::write(format!("{}.minisig", fake.display()), forged).unwrap();
    let problems = check_problems(&plan);
    assert!(
        problems
            .iter()
            .any(|(c, m)| c == "fleetup::package::signature"
                && m.contains("trusted comment")
                && m.contains("altered")
                && !m.contains("changed after it was signed")),
        "{problems:?}"
    );
}

/// A plain HTTP server on 127.0.0.1 for `files` (name → bytes) and their SHA256SUMS
/// (file names as given), every request line logged; `ranges` says whether it honours
/// `Range`, and `cut_first` cuts the first answer of each file short.
struct Mirror {
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn mirror(files: Vec<(String, Vec<u8>)>, index: String, ranges: bool, cut_first: bool) -> Mirror {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        let mut cut = std::collections::HashSet::new();
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let Some(common::http::Request { path, range }) = common::http::read_request(&c) else {
                continue;
            };
            let range = range.map(|r| r as usize);
            seen.lock().unwrap().push(format!(
                "{path} {}",
                range.map_or("-".into(), |r| r.to_string())
            ));
            let body = if path == "SHA256SUMS" {
                Some(index.clone().into_bytes())
            } else {
                files
                    .iter()
                    .find(|(n, _)| *n == path)
                    .map(|(_, b)| b.clone())
            };
            let Some(body) = body else {
                let _ = c.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let (status, from) = match range {
                Some(f) if ranges => ("206 Partial Content", f.min(body.len())),
                _ => ("200 OK", 0),
            };
            let rest = &body[from..];
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    rest.len()
                )
                .as_bytes(),
            );
            if cut_first && path.ends_with(".zip") && cut.insert(path.clone()) {
                let _ = c.write_all(&rest[..rest.len() / 2]);
            } else {
                let _ = c.write_all(rest);
            }
            let _ = c.flush();
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    });
    Mirror { port, log }
}

/// n1 and n2 on 4.4.15 in `dir`; 4.4.16 (200 data files) only on a mirror; the plan.
fn mirrored_fleet(dir: &Path, ranges: bool, cut_first: bool) -> (Mirror, std::path::PathBuf) {
    local_fleet(dir, &["n1", "n2"], &["4.4.15"]);
    let made = tempfile::tempdir().unwrap();
    let pkg = release_zip(made.path(), "4.4.16", 200);
    let bytes = std::fs::read(&pkg).unwrap();
    let name = package_name("4.4.16");
    let index = format!("{}  {name}\n", fleetup::mirror::hex(&bytes));
    let m = mirror(vec![(name, bytes)], index, ranges, cut_first);
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "plan: 1\nname: mirrored\nproduct: emqx\nrepository: \"http://127.0.0.1:{}/\"\nto: 4.4.16\nstate: ./state\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n",
            m.port
        ),
    )
    .unwrap();
    (m, plan)
}

/// Item 3: a cache directory other users can write is refused before any node changes.
#[test]
fn item_3_a_cache_others_can_write_or_own_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (_m, plan) = mirrored_fleet(dir.path(), true, false);
    let cache = dir.path().join("shared-cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = snapshot(&dir.path().join("n1"));
    let (code, out, err) = output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", &cache)
            .arg("apply")
            .arg(&plan)
            .arg("--yes"),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("can be written by other users"), "{err}");
    assert_eq!(snapshot(&dir.path().join("n1")), before);
    // Owned by another user (nobody): refused the same.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&cache, Some(65534), Some(65534))
        .expect("the tests run as root (scripts/test)");
    let (code, out, err) = output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", &cache)
            .arg("apply")
            .arg(&plan)
            .arg("--yes"),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("belongs to uid 65534"), "{err}");
    assert_eq!(snapshot(&dir.path().join("n1")), before);
}

/// Item 3: without HOME (a systemd unit with no `User=`), the cache is never in the
/// shared temporary directory: it is the user's own, from the password database.
#[test]
fn item_3_without_home_the_cache_is_never_in_the_temporary_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (m, plan) = mirrored_fleet(dir.path(), true, false);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let url = format!("http://127.0.0.1:{}/", m.port);
    let (code, out, err) = output(
        fleetup()
            .env_remove("HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("FLEETUP_CACHE_DIR")
            .env("TMPDIR", &tmp)
            .arg("apply")
            .arg(&plan)
            .arg("--yes"),
    );
    let home_cache = fleetup::mirror::cache_dir(&url);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "the cache went to $TMPDIR"
    );
    // This test process has HOME; the run had not: both name the user's own home.
    let home = fleetup::fsutil::home_of_user().unwrap();
    let used = home
        .join(".cache/fleetup/mirrors")
        .join(home_cache.unwrap().file_name().unwrap());
    assert!(
        used.join(package_name("4.4.16")).is_file(),
        "{}",
        used.display()
    );
    std::fs::remove_dir_all(&used).unwrap();
}

/// Item 3: a package swapped in the cache (with a matching `.sha256` beside it) between
/// the download and the install is refused by the store: it checks the index's digest.
#[test]
fn item_3_a_package_swapped_in_the_cache_is_refused_by_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, plan) = mirrored_fleet(dir.path(), true, false);
    let cache = dir.path().join("cache");
    // The `before` hook runs after the download and before the install: it swaps in
    // another package and writes its digest beside it, as a local attacker would.
    let other = tempfile::tempdir().unwrap();
    let evil = release_zip(other.path(), "4.4.16", 3);
    sidecar(&evil);
    let swap = format!(
        "for d in {cache}/mirrors/*/; do cp {evil} \"$d\"; cp {evil}.sha256 \"$d\"; done",
        cache = cache.display(),
        evil = evil.display()
    );
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "nodes:\n",
        &format!("hooks:\n  before: [\"/bin/sh\", \"-c\", {swap:?}]\nnodes:\n"),
    );
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", &cache)
            .arg("apply")
            .arg(&plan)
            .arg("--yes")
            .args(["--format", "json"]),
    );
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(out.contains("SHA256SUMS says"), "{out}{err}");
    for n in ["n1", "n2"] {
        assert_eq!(
            link(&dir.path().join(n), "current").as_deref(),
            Some("releases/4.4.15"),
            "{n}"
        );
    }
}

impl Mirror {
    fn gets(&self, file: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| l.starts_with(&format!("{file} ")))
            .count()
    }
}

/// Item 11: a mirror that ignores `Range` (answers 200 with the whole file) after a
/// download broke off: the partial file restarts with that answer, which completes the
/// download; no whole body is appended to the part, thrown away and asked for again.
#[test]
fn item_11_a_whole_answer_to_a_range_request_restarts_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (m, plan) = mirrored_fleet(dir.path(), false, true);
    let cache = dir.path().join("cache");
    let (code, out, err) = output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", &cache)
            .arg("apply")
            .arg(&plan)
            .arg("--yes"),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    // The cut-short first answer, then one whole answer that completed it.
    assert_eq!(
        m.gets(&package_name("4.4.16")),
        2,
        "{:?}",
        m.log.lock().unwrap()
    );
    assert_eq!(
        link(&dir.path().join("n1"), "current").as_deref(),
        Some("releases/4.4.16")
    );
}

/// Item 10: an https mirror whose package answer redirects to plain http is refused
/// (said so), nothing is fetched over http, no node changes.
#[test]
fn item_10_a_redirect_from_https_to_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, _) = mirrored_fleet(dir.path(), true, false);
    let index = {
        let made = tempfile::tempdir().unwrap();
        let pkg = release_zip(made.path(), "4.4.16", 200);
        format!(
            "{}  {}\n",
            fleetup::mirror::hex(&std::fs::read(&pkg).unwrap()),
            package_name("4.4.16")
        )
    };
    let (ca, cert, key) = common::http::certificates(dir.path());
    // Serves SHA256SUMS itself; redirects everything else to the plain mirror.
    let port = common::sshd::free_port();
    let script = "import http.server, ssl, sys\n\
        class H(http.server.BaseHTTPRequestHandler):\n\
        \x20   def do_GET(self):\n\
        \x20       if self.path.endswith('SHA256SUMS'):\n\
        \x20           b = sys.argv[5].encode()\n\
        \x20           self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)\n\
        \x20       else:\n\
        \x20           self.send_response(302); self.send_header('Location', 'http://127.0.0.1:' + sys.argv[2] + self.path); self.send_header('Content-Length', '0'); self.end_headers()\n\
        \x20   def log_message(self, *a): pass\n\
        s = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H)\n\
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        c.load_cert_chain(sys.argv[3], sys.argv[4])\n\
        s.socket = c.wrap_socket(s.socket, server_side=True)\n\
        s.serve_forever()\n";
    let mut server = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(plain.port.to_string())
        .arg(&cert)
        .arg(&key)
        .arg(&index)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let plan = dir.path().join("plan.yaml");
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        &format!("http://127.0.0.1:{}/", plain.port),
        &format!("https://127.0.0.1:{port}/"),
    );
    std::fs::write(&plan, text).unwrap();
    let before = snapshot(&dir.path().join("n1"));
    let (code, out, err) = output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", dir.path().join("cache"))
            .env("FLEETUP_CA_FILE", &ca)
            .arg("apply")
            .arg(&plan)
            .arg("--yes"),
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("leaves https"), "{err}");
    assert_eq!(plain.gets(&package_name("4.4.16")), 0);
    assert_eq!(snapshot(&dir.path().join("n1")), before);
}

/// A directory with an `ssh` that is a hostile host: it answers the bootstrap as
/// `FAKE_HOST` says (`banner`: a login banner that never stops; `endless`: one line
/// that never ends; `endless-late`: the same once it has read the controller's request; `old-agent`: an agent of an older
/// release that says hello in protocol 2; `flood`: an agent that answers its first request with 100,000 `say`
/// frames, then fails).
fn hostile_ssh(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = r#"#!/usr/bin/env python3
import json, os, sys, time
mode = os.environ.get("FAKE_HOST", "")
out = sys.stdout.buffer
def put(b):
    out.write(b)
    out.flush()
try:
    if mode == "banner":
        for _ in range(20 * 120):
            put(b"Welcome to a host whose banner never ends\n")
            time.sleep(0.05)
        sys.exit(0)
    put(b"fleetup-probe Linux x86_64 /tmp/fleetup-hostile\n")
    if mode == "endless-late":
        sys.stdin.readline()
        mode = "endless"
    if mode == "endless":
        chunk = b"x" * 65536
        for _ in range(48 * 16):
            out.write(chunk)
        sys.exit(0)
    sys.stdin.readline()
    put(json.dumps({"hello": {"version": "0", "protocol": 2 if mode == "old-agent" else 3}}).encode() + b"\n")
    if mode == "old-agent":
        sys.stdin.read()
        sys.exit(0)
    ch = json.loads(sys.stdin.readline())["ch"]
    put(json.dumps({"ch": ch, "m": {"reply": "opened", "state": None, "config": {"product": "emqx", "runtime": None, "edition": None}}}).encode() + b"\n")
    ch = json.loads(sys.stdin.readline())["ch"]
    for i in range(100000):
        out.write(json.dumps({"ch": ch, "m": {"reply": "say", "line": "flood %d" % i}}).encode() + b"\n")
    put(json.dumps({"ch": ch, "m": {"reply": "failed", "code": "io", "message": "the hostile host gave up", "help": None}}).encode() + b"\n")
    sys.stdin.read()
except BrokenPipeError:
    pass
"#;
    let ssh = bin.join("ssh");
    std::fs::write(&ssh, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `fleetup node versions` of /srv/n1 on the hostile host `h.example` in `mode`.
fn versions_on_hostile(bin: &Path, mode: &str) -> (Option<i32>, String, String) {
    output(with_hostile(bin, mode).args([
        "node",
        "versions",
        "--ssh",
        "h.example",
        "--root",
        "/srv/n1",
    ]))
}

fn with_hostile(bin: &Path, mode: &str) -> assert_cmd::Command {
    let mut c = fleetup();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path)
        .env("FAKE_HOST", mode)
        .timeout(std::time::Duration::from_secs(90));
    c
}

/// Item 4: a host that sends one endless line is cut off at the frame limit; the
/// controller fails that host with the reason instead of holding the line.
#[test]
fn item_4_an_endless_line_from_a_host_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let bin = hostile_ssh(dir.path());
    let (code, out, err) = versions_on_hostile(&bin, "endless");
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(flat(&err).contains("longer than 8 MiB"), "{err}");
}

/// Item 4: a host that takes the controller's request before its endless line is still
/// blamed for the line (the race that made the check above flaky under load: whether
/// the controller's write or the host's end came first).
#[test]
fn item_4_an_endless_line_after_the_request_is_blamed_on_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bin = hostile_ssh(dir.path());
    let (code, out, err) = versions_on_hostile(&bin, "endless-late");
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(flat(&err).contains("longer than 8 MiB"), "{err}");
    assert!(!err.contains("cannot run the agent"), "{err}");
}

/// Item 4: a login banner that keeps printing does not hold the bootstrap open past its
/// connect deadline.
#[test]
fn item_4_a_banner_that_never_ends_meets_the_connect_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let bin = hostile_ssh(dir.path());
    let (code, out, err) = versions_on_hostile(&bin, "banner");
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        flat(&err).contains("no SSH connection within the connect timeout"),
        "{err}"
    );
}

/// An agent that speaks another protocol than this fleetup is refused by name, before
/// any request reaches it (issue 29: the protocol refusal no test held).
#[test]
fn an_agent_of_another_protocol_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let bin = hostile_ssh(dir.path());
    let (code, out, err) = versions_on_hostile(&bin, "old-agent");
    assert_eq!(code, Some(1), "{out}{err}");
    let all = flat(&err);
    assert!(
        all.contains("fleetup::remote::protocol")
            && all.contains("speaks protocol 2, this fleetup 3"),
        "{err}"
    );
}

/// Item 4: a flood of `say` frames adds a bounded number of lines, summarised.
#[test]
fn item_4_a_flood_of_say_frames_is_bounded_and_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let bin = hostile_ssh(dir.path());
    std::fs::create_dir_all(dir.path().join("repo")).unwrap();
    let (code, out, err) = output(with_hostile(&bin, "flood").current_dir(dir.path()).args([
        "node",
        "uninstall",
        "4.4.15",
        "--ssh",
        "h.example",
        "--root",
        "/srv/n1",
    ]));
    assert_ne!(code, Some(0), "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("the hostile host gave up"), "{all}");
    assert!(
        all.contains("more lines"),
        "{}",
        &all[all.len().saturating_sub(2000)..]
    );
    let floods = all.lines().filter(|l| l.contains("flood ")).count();
    assert!(
        (1..=400).contains(&floods),
        "{floods} lines of the flood shown"
    );
}

/// A Prometheus HTTP API on 127.0.0.1 that answers its first `answered` queries with
/// one sample of value 0, and every later one with no data (the canary crashed and its
/// series vanished).
fn vanishing_prometheus(answered: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut c) = conn else { continue };
            let _ = common::http::read_request(&c);
            let body = if n < answered {
                common::http::prometheus_vector(&["0"])
            } else {
                common::http::prometheus_vector(&[])
            };
            common::http::answer(&mut c, body.as_bytes());
        }
    });
    port
}

/// Item 6: one sample in bounds, then no data: never a pass. The measurements without
/// data reach `consecutive_errors` and the run pauses before the next wave.
#[test]
fn item_6_an_analysis_whose_metric_vanishes_does_not_pass() {
    let dir = tempfile::tempdir().unwrap();
    local_fleet(dir.path(), &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let port = vanishing_prometheus(1);
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            "plan: 1\nname: vanish\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  waves: [1, \"100%\"]\n\
             analysis:\n  - name: errors\n    prometheus:\n      url: \"http://127.0.0.1:{port}\"\n\
             \x20     query: app_errors_total\n      max: 0\n      for: 2s\n      interval: 200ms\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
        ),
    )
    .unwrap();
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(dir.path())
                .args(["apply", "plan.yaml", "--yes"]),
        );
    assert_eq!(code, Some(6), "{out}{err}");
    assert!(out.contains("in a row without data"), "{out}");
    assert_eq!(current(&dir.path().join("n2")).as_deref(), Some("4.4.15"));
}

/// Item 7: a run killed while n1's health is checked, then aborted: `status` says that
/// `rollback RUN` puts n1 back (not `resume`, which refuses an aborted run), and
/// `rollback RUN` does, although the run's journal never recorded n1's outcome.
#[test]
fn item_7_an_aborted_runs_rollback_covers_the_target_it_left_mid_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: cut\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         health:\n  command: [\"/bin/sh\", \"-c\", \"test {version} != 4.4.16 || {{ touch {root}/checking; sleep 60; }}\"]\n  timeout: 90s\n\
         nodes:\n  - { name: n1, root: ./n1 }\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(30), || d
        .join("n1/checking")
        .exists()));
    child.kill().unwrap();
    child.wait().unwrap();
    let run = latest_run(&d.join("state"));
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["abort", &run])
            .args(["--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = output(fleetup().current_dir(d).args(["status", "plan.yaml"]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("`fleetup rollback {run}`")), "{out}");
    assert!(!out.contains("fleetup resume"), "{out}");
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["rollback", &run, "--yes", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("nothing to roll back"), "{out}");
    assert_eq!(current(&d.join("n1")).as_deref(), Some("4.4.15"));
    let (_, versions, _) = output(
        fleetup()
            .current_dir(d)
            .args(["node", "versions", "--root", "n1"]),
    );
    assert!(versions.contains("4.4.15\tpermanent"), "{versions}");
}

/// Item 8: a node's `[trust]` holds over `--ssh` as it does here: an unsigned package is
/// refused on the host (nothing changes), and a signed one, whose signature travels
/// with it, is installed.
#[test]
fn item_8_a_hosts_own_trust_holds_over_ssh() {
    let sshd = common::sshd::Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1"], &["4.4.15", "4.4.16"]);
    let (key, secret) = minisign_keypair(d, "release");
    std::fs::write(
        d.join("n1/node.toml"),
        format!("product = \"emqx\"\n[trust]\nminisign = [\"{key}\"]\n"),
    )
    .unwrap();
    let root = d.join("n1");
    let upgrade = || {
        output(
            fleetup()
                .current_dir(d)
                .args([
                    "node",
                    "upgrade",
                    "4.4.16",
                    "--ssh",
                    &sshd.addr(),
                    "--ssh-config",
                ])
                .arg(sshd.config())
                .arg("--root")
                .arg(&root)
                .args(["--repo", "repo"]),
        )
    };
    let before = snapshot(&root);
    let (code, out, err) = upgrade();
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(err.contains("fleetup::package::signature"), "{err}");
    assert!(err.contains("has no signature"), "{err}");
    assert_eq!(snapshot(&root), before);
    minisign_sign(&secret, &d.join("repo").join(package_name("4.4.16")), false);
    let (code, out, err) = upgrade();
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(current(&root).as_deref(), Some("4.4.16"));
}

/// Item 12: the reader of `--format jsonl` goes away while n1 is being checked: the run
/// is not killed mid-step; n1 is finished (its `after` hook ran: it is not left
/// drained), n2 is not started, the run ends stopped (exit 6) with its journal complete.
#[test]
fn item_12_a_closed_jsonl_output_stops_the_run_between_steps() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: closed\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  max_parallel: 1\n\
         health:\n  command: [\"/bin/sh\", \"-c\", \"touch {root}/checking; sleep 1\"]\n  timeout: 30s\n\
         hooks:\n  before: [\"/bin/sh\", \"-c\", \"echo drained > {root}/drain\"]\n\
         \x20 after: [\"/bin/sh\", \"-c\", \"echo undrained > {root}/drain\"]\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes", "--format", "jsonl"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && !d.join("n1/checking").exists() {
        line.clear();
    }
    assert!(d.join("n1/checking").exists());
    drop(out);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(6), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(d.join("n1/drain")).unwrap().trim(),
        "undrained"
    );
    assert_eq!(current(&d.join("n1")).as_deref(), Some("4.4.16"));
    assert_eq!(current(&d.join("n2")).as_deref(), Some("4.4.15"));
    assert!(!d.join("n2/drain").exists());
    let run = latest_run(&d.join("state"));
    let journal =
        std::fs::read_to_string(d.join("state/runs").join(&run).join("journal.jsonl")).unwrap();
    assert!(
        journal.lines().last().unwrap().contains("\"kind\":\"end\""),
        "{journal}"
    );
    assert!(journal.contains("\"status\":\"stopped\""), "{journal}");
}

/// Item 12: SIGINT during a mirror download that stalls interrupts it at once: the run
/// ends (exit 6, said so) long before the download's own timeout, nothing changed.
#[test]
fn item_12_a_signal_interrupts_a_download() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1"], &["4.4.15"]);
    // A mirror whose package answer sends a little, then nothing more for a minute.
    let made = tempfile::tempdir().unwrap();
    let pkg = release_zip(made.path(), "4.4.16", 200);
    let bytes = std::fs::read(&pkg).unwrap();
    let name = package_name("4.4.16");
    let index = format!("{}  {name}\n", fleetup::mirror::hex(&bytes));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Write;
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let Some(req) = common::http::read_request(&c) else {
                continue;
            };
            if req.path.contains("SHA256SUMS") {
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{index}",
                        index.len()
                    )
                    .as_bytes(),
                );
                continue;
            }
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                )
                .as_bytes(),
            );
            // A trickle: one byte a second, so the download never ends by itself soon.
            let head: Vec<u8> = bytes.iter().take(120).copied().collect();
            std::thread::spawn(move || {
                for b in &head {
                    if c.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            });
        }
    });
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: sig\nproduct: emqx\nrepository: \"http://127.0.0.1:{port}/\"\nto: 4.4.16\nstate: ./state\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n"
        ),
    )
    .unwrap();
    let before = snapshot(&d.join("n1"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .env("FLEETUP_CACHE_DIR", d.join("cache"))
        .args(["apply", "plan.yaml", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The download has begun once the part file is there.
    assert!(wait_until(std::time::Duration::from_secs(30), || {
        std::fs::read_dir(d.join("cache/mirrors"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|m| std::fs::read_dir(m.path()).into_iter().flatten().flatten())
            .any(|f| f.file_name().to_string_lossy().contains(".part."))
    }));
    let asked = std::time::Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(20),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("fleetup::run::stopped"), "{err}");
    assert_eq!(snapshot(&d.join("n1")), before);
}

/// Item 13: a bundle of a plan with relative roots and state, applied from anywhere,
/// upgrades the original stores (none inside the bundle); a block-scalar `repository`
/// still gives a bundle whose plan loads.
#[test]
fn item_13_a_bundles_plan_loads_and_names_the_original_stores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    for (file, repository) in [
        ("plan.yaml", "./repo".to_owned()),
        ("block.yaml", "|-\n  ./repo".to_owned()),
    ] {
        std::fs::write(
            d.join(file),
            format!(
                "plan: 1\nname: carried\nproduct: emqx\nrepository: {repository}\nto: 4.4.16\nstate: ./state\n\
                 defaults:\n  root: ./{{name}}\nnodes:\n  - {{ name: n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
            ),
        )
        .unwrap();
        let out = d.join(format!("bundle-{file}"));
        let (code, o, e) = output(
            fleetup()
                .current_dir(d)
                .args(["bundle", file, "-o"])
                .arg(&out),
        );
        assert_eq!(code, Some(0), "{file}: {o}{e}");
        let (code, o, e) = output(fleetup().arg("check").arg(out.join("plan.yaml")));
        assert_eq!(code, Some(0), "{file}: {o}{e}");
    }
    // Applied from elsewhere: the original stores change, the bundle holds no store.
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let bundle = d.join("bundle-plan.yaml");
    let (code, o, e) = output(
        fleetup()
            .current_dir(&elsewhere)
            .arg("apply")
            .arg(bundle.join("plan.yaml"))
            .arg("--yes"),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    for n in ["n1", "n2"] {
        assert_eq!(current(&d.join(n)).as_deref(), Some("4.4.16"), "{n}");
        assert!(!bundle.join(n).exists(), "a store was made in the bundle");
    }
    assert!(!bundle.join("state").exists());
    assert!(d.join("state/runs").exists());
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
}

/// Item 14: a market holding `1.0.1.yaml` and `v1.0.1.yaml` (one version twice) is
/// refused, naming both files, by hand and by a plan; nothing is deployed.
#[test]
fn item_14_two_templates_of_one_version_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = d.join("market/mall");
    std::fs::create_dir_all(&m).unwrap();
    for (file, image) in [
        ("1.0.0.yaml", "1.0.0"),
        ("1.0.1.yaml", "1.0.1"),
        ("v1.0.1.yaml", "evil"),
    ] {
        std::fs::write(
            m.join(file),
            format!(
                "app: mall\nversion: {}\nservices:\n  web:\n    image: mall/web:{image}\n",
                &file[..file.len() - 5]
            ),
        )
        .unwrap();
    }
    std::fs::create_dir_all(d.join("shop")).unwrap();
    fleetup()
        .current_dir(d)
        .args([
            "group", "install", "mall", "1.0.0", "--root", "shop", "--market", "market",
        ])
        .assert()
        .success();
    let before = snapshot(&d.join("shop"));
    let (code, out, err) = output(fleetup().current_dir(d).args([
        "group", "upgrade", "mall", "--to", "1.0.1", "--root", "shop", "--market", "market",
    ]));
    assert_eq!(code, Some(1), "{out}{err}");
    let said = flat(&err);
    assert!(
        said.contains("1.0.1.yaml") && said.contains("v1.0.1.yaml"),
        "{err}"
    );
    assert_eq!(snapshot(&d.join("shop")), before);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: g\nstate: ./state\ngroups:\n  - name: shop\n    root: ./shop\n    market: ./market\n\
         \x20   apps: [{ app: mall, to: 1.0.1 }]\n",
    )
    .unwrap();
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        flat(&format!("{out}{err}")).contains("v1.0.1.yaml"),
        "{out}{err}"
    );
    assert_eq!(snapshot(&d.join("shop")), before);
}

/// Item 15: a mirror whose SHA256SUMS names a file with control characters (a terminal
/// escape that would forge a line of `plan`'s output) is refused, and no control
/// character reaches the output.
#[test]
fn item_15_control_characters_in_an_index_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1"], &["4.4.15"]);
    let made = tempfile::tempdir().unwrap();
    let pkg = release_zip(made.path(), "4.4.16", 0);
    let bytes = std::fs::read(&pkg).unwrap();
    let name = package_name("4.4.16");
    let forged = format!("{name}\r\x1b[2K  n1   4.4.15 → 9.9.9");
    let index = format!(
        "{d}  {name}\n{d}  {forged}\n",
        d = fleetup::mirror::hex(&bytes)
    );
    let m = mirror(vec![(name, bytes)], index, true, false);
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: esc\nproduct: emqx\nrepository: \"http://127.0.0.1:{}/\"\nto: 4.4.16\nstate: ./state\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n",
            m.port
        ),
    )
    .unwrap();
    for cmd in ["check", "plan"] {
        let out = fleetup()
            .current_dir(d)
            .env("FLEETUP_CACHE_DIR", d.join("cache"))
            .args([cmd, "plan.yaml"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !all.contains(&0x1b) && !all.contains(&b'\r'),
            "{cmd}: {}",
            String::from_utf8_lossy(&all)
        );
        assert!(
            flat(&String::from_utf8_lossy(&all)).contains("no plain file name"),
            "{cmd}: {}",
            String::from_utf8_lossy(&all)
        );
    }
}

/// Smaller: a store whose RELEASES marks two releases permanent is reported damaged by
/// `versions` (exit 1), as other damage is.
#[test]
fn two_permanent_releases_are_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1"], &["4.4.15", "4.4.16"]);
    fleetup()
        .current_dir(d)
        .args([
            "node", "upgrade", "4.4.16", "--root", "n1", "--repo", "repo",
        ])
        .assert()
        .success();
    let releases = d.join("n1/releases/RELEASES");
    let text = std::fs::read_to_string(&releases).unwrap();
    assert!(text.contains("\"old\""), "{text}");
    std::fs::write(&releases, text.replace("\"old\"", "\"permanent\"")).unwrap();
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["node", "versions", "--root", "n1"]),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        flat(&err).contains("2 releases are marked permanent"),
        "{err}"
    );
}

/// Smaller: a fresh store and a repository holding only an old-style package name: the
/// product cannot be told, and the message names the file and why it cannot be read.
#[test]
fn an_old_style_package_name_is_named_when_the_product_cannot_be_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("repo")).unwrap();
    let made = release_zip(d, "4.3.22", 0);
    std::fs::rename(&made, d.join("repo/emqx-ubuntu20.04-4.3.22-amd64.zip")).unwrap();
    let (code, out, err) = output(fleetup().current_dir(d).args([
        "node", "upgrade", "4.3.22", "--root", "n1", "--repo", "repo",
    ]));
    assert_ne!(code, Some(0), "{out}{err}");
    // Wrapped anywhere, even inside the file name: compared without white space.
    let said: String = err
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect();
    assert!(
        said.contains("emqx-ubuntu20.04-4.3.22-amd64.zipcannotberead"),
        "{err}"
    );
}

/// The agent on a host checks what it received against the digest the controller
/// announced, and keeps nothing that does not match; a copied agent checks itself
/// (issue 29: promises no test held). Driven here as a controller drives it: frames on
/// its standard input.
#[test]
fn the_agent_keeps_no_received_package_whose_digest_differs_and_checks_itself() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("__agent")
        .arg("--dir")
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = agent.stdin.take().unwrap();
    let mut replies = BufReader::new(agent.stdout.take().unwrap());
    let mut next = || {
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()
    };
    assert_eq!(next()["hello"]["protocol"], 3);
    let file = package_name("4.4.16");
    let announced = fleetup::mirror::hex(b"good");
    writeln!(
        input,
        r#"{{"ch":1,"m":{{"req":"receive","sha256":"{announced}","file":"{file}","size":4}}}}"#
    )
    .unwrap();
    let ready = next();
    assert_eq!(ready["m"]["reply"], "ready", "{ready}");
    assert_eq!(ready["m"]["send"], true, "{ready}");
    input.write_all(b"evil").unwrap();
    input.flush().unwrap();
    let answer = next();
    assert_eq!(answer["m"]["reply"], "failed", "{answer}");
    assert_eq!(
        answer["m"]["code"], "fleetup::package::checksum",
        "{answer}"
    );
    assert!(
        answer["m"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("but the controller sent {announced}")),
        "{answer}"
    );
    drop(input);
    assert!(agent.wait().unwrap().success());
    let kept = dir.path().join("packages").join(&announced).join(&file);
    assert!(!kept.exists(), "a package that did not match was kept");

    // A copy of the agent checks itself before it is put in place.
    let me =
        fleetup::package::sha256_file(std::path::Path::new(env!("CARGO_BIN_EXE_fleetup"))).unwrap();
    let (code, _, _) = output(fleetup().args(["__self-check", &me]));
    assert_eq!(code, Some(0));
    let (code, _, err) = output(fleetup().args(["__self-check", &announced]));
    assert_ne!(code, Some(0));
    assert!(err.contains(&format!("not {announced}")), "{err}");
}

/// A plan's relative paths are the plan's, hooks' too: its hooks run in the plan's
/// directory, so `./note.sh` and the files it writes are the same ones whether the run
/// was started, or resumed, from somewhere else.
#[test]
fn hooks_run_in_the_plans_directory_wherever_the_run_was_started_or_resumed_from() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let started = dir.path().join("started");
    let resumed = dir.path().join("resumed");
    for d in [&fleet, &started, &resumed] {
        std::fs::create_dir_all(d).unwrap();
    }
    gated_plan(&fleet);
    let plan = fleet.join("plan.yaml");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &plan,
        text.replace(
            "rollout:",
            // A relative program is the plan's; a bare name is looked up in PATH.
            "hooks:\n  before: [\"sh\", \"-c\", \"echo before $0 >> hooks.log\", \"{name}\"]\n  after: [\"./note.sh\", \"{name}\"]\n  timeout: 30s\nrollout:",
        ),
    )
    .unwrap();
    let script = fleet.join("note.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"after $1\" >> hooks.log\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let (code, out, err) = output(
        fleetup()
            .current_dir(&started)
            .args(["apply", "--yes"])
            .arg(&plan),
    );
    assert_eq!(code, Some(6), "{out}{err}");
    let state = fleet.join("state");
    let run = latest_run(&state);
    for args in [vec!["approve", &run], vec!["resume", &run]] {
        let (code, out, err) = output(
            fleetup()
                .current_dir(&resumed)
                .args(&args)
                .arg("--state")
                .arg(&state),
        );
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
    }
    let log = std::fs::read_to_string(fleet.join("hooks.log")).unwrap_or_default();
    assert_eq!(log, "before n1\nafter n1\nbefore n2\nafter n2\n");
    for d in [&started, &resumed] {
        assert!(
            std::fs::read_dir(d).unwrap().next().is_none(),
            "a hook wrote into {}",
            d.display()
        );
    }
}
