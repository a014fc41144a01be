//! Repositories over HTTP against a real server on 127.0.0.1 (a small one here, so that
//! it can misbehave on purpose): `check` and `plan` read only SHA256SUMS; `apply`
//! downloads each package once, verified, before any node changes; a download cut
//! short is resumed with a range; a server that lies about the size, serves other bytes
//! than its index says, or is gone, refuses the run with nothing changed.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::*;

/// How the server answers a package request.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Honest,
    /// The first GET of a package sends half of it and hangs up; ranges are honoured.
    CutOnce,
    /// Every GET announces more bytes than it sends, then hangs up.
    Lies,
    /// Serves bytes that are not what SHA256SUMS says.
    Other,
    /// The first GET of a package sends half of it, then stalls (sends nothing more,
    /// keeps the connection open); ranges are honoured.
    StallOnce,
}

struct Server {
    port: u16,
    /// Every request line and its Range header, in order.
    log: Arc<Mutex<Vec<String>>>,
}

/// Serves `files` (name → bytes) and their SHA256SUMS, behaving as `mode` says.
fn serve(files: HashMap<String, Vec<u8>>, mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let index: String = files
        .iter()
        .filter(|(n, _)| !n.ends_with(".minisig"))
        .map(|(n, b)| {
            format!(
                "{}  {}\n",
                fleetup::mirror::hex(b),
                n.rsplit('/').next().unwrap()
            )
        })
        .collect();
    std::thread::spawn(move || {
        let cut = Mutex::new(std::collections::HashSet::<String>::new());
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let Some(common::http::Request { path, range }) = common::http::read_request(&c) else {
                continue;
            };
            seen.lock().unwrap().push(format!(
                "{path} {}",
                range.map_or("-".into(), |r| r.to_string())
            ));
            let body: Option<Vec<u8>> = if path.ends_with("SHA256SUMS") {
                Some(index.clone().into_bytes())
            } else {
                files.get(&path).cloned()
            };
            let Some(mut body) = body else {
                let _ = c.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let package = path.ends_with(".zip");
            if package && mode == Mode::Other {
                body.iter_mut().for_each(|b| *b ^= 0x5a);
            }
            let from = range.unwrap_or(0).min(body.len() as u64) as usize;
            let status = if range.is_some() {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let rest = &body[from..];
            let head = |len: usize| {
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
                )
            };
            match mode {
                Mode::Lies if package => {
                    let _ = c.write_all(head(rest.len() + 4096).as_bytes());
                    let _ = c.write_all(rest);
                }
                Mode::CutOnce if package && cut.lock().unwrap().insert(path.clone()) => {
                    let _ = c.write_all(head(rest.len()).as_bytes());
                    let _ = c.write_all(&rest[..rest.len() / 2]);
                }
                Mode::StallOnce if package && cut.lock().unwrap().insert(path.clone()) => {
                    let _ = c.write_all(head(rest.len()).as_bytes());
                    let _ = c.write_all(&rest[..rest.len() / 2]);
                    let _ = c.flush();
                    // Held open, silent, on a thread of its own.
                    std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_secs(60));
                        drop(c);
                    });
                    continue;
                }
                _ => {
                    let _ = c.write_all(head(rest.len()).as_bytes());
                    let _ = c.write_all(rest);
                }
            }
            let _ = c.flush();
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    });
    Server { port, log }
}

impl Server {
    fn gets(&self, file: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&format!("{file} ")))
            .cloned()
            .collect()
    }
}

/// Two local nodes on 4.4.15; 4.4.16 (with 200 data files, so that it is large enough
/// to be cut) only on the mirror. Returns the dir, the mirror's files and the cache.
fn setup() -> (tempfile::TempDir, HashMap<String, Vec<u8>>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    local_fleet(dir.path(), &["n1", "n2"], &["4.4.15"]);
    let made = tempfile::tempdir().unwrap();
    let pkg = release_zip(made.path(), "4.4.16", 200);
    let mut files = HashMap::new();
    files.insert(package_name("4.4.16"), std::fs::read(&pkg).unwrap());
    let cache = dir.path().join("cache");
    (dir, files, cache)
}

fn plan(dir: &Path, port: u16) -> PathBuf {
    let text = format!(
        "plan: 1\nname: mirrored\nproduct: emqx\nrepository: \"http://127.0.0.1:{port}/emqx/\"\nto: 4.4.16\nstate: ./state\n\
         nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
    );
    let p = dir.join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn with_prefix(files: HashMap<String, Vec<u8>>) -> HashMap<String, Vec<u8>> {
    files
        .into_iter()
        .map(|(k, v)| (format!("emqx/{k}"), v))
        .collect()
}

fn run(cache: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", cache)
            .env("FLEETUP_DOWNLOAD_TIMEOUT", "5s")
            .args(args),
    )
}

fn current(dir: &Path, n: &str) -> Option<String> {
    link(&dir.join(n), "current")
}

#[test]
fn check_and_plan_read_the_index_and_apply_downloads_once_and_upgrades() {
    let (dir, files, cache) = setup();
    let s = serve(with_prefix(files), Mode::Honest);
    let p = plan(dir.path(), s.port);
    let (code, out, err) = run(&cache, &["check".as_ref(), p.as_os_str()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = run(&cache, &["plan".as_ref(), p.as_os_str()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&package_name("4.4.16")), "{out}");
    let pkg = format!("emqx/{}", package_name("4.4.16"));
    assert!(
        s.gets(&pkg).is_empty(),
        "check and plan fetched the package"
    );
    assert!(!s.gets("emqx/SHA256SUMS").is_empty());

    let (code, out, err) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        current(dir.path(), "n1").as_deref(),
        Some("releases/4.4.16")
    );
    assert_eq!(
        current(dir.path(), "n2").as_deref(),
        Some("releases/4.4.16")
    );
    // One download for both nodes.
    assert_eq!(s.gets(&pkg).len(), 1, "{:?}", s.gets(&pkg));
}

#[test]
fn a_download_cut_short_is_resumed_from_where_it_broke() {
    let (dir, files, cache) = setup();
    let s = serve(with_prefix(files), Mode::CutOnce);
    let p = plan(dir.path(), s.port);
    let (code, out, err) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let gets = s.gets(&format!("emqx/{}", package_name("4.4.16")));
    assert_eq!(gets.len(), 2, "{gets:?}");
    // The second asked for the rest only.
    let from: u64 = gets[1].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(from > 0, "{gets:?}");
    assert_eq!(
        current(dir.path(), "n1").as_deref(),
        Some("releases/4.4.16")
    );
}

#[test]
fn a_download_that_stalls_is_cut_off_at_its_timeout_and_resumed() {
    let (dir, files, cache) = setup();
    let s = serve(with_prefix(files), Mode::StallOnce);
    let p = plan(dir.path(), s.port);
    let started = std::time::Instant::now();
    // FLEETUP_DOWNLOAD_TIMEOUT is 5s in `run`.
    let (code, out, err) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "it waited for the stall"
    );
    let gets = s.gets(&format!("emqx/{}", package_name("4.4.16")));
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(
        gets[1].split(' ').nth(1).unwrap().parse::<u64>().unwrap() > 0,
        "{gets:?}"
    );
    assert_eq!(
        current(dir.path(), "n2").as_deref(),
        Some("releases/4.4.16")
    );
}

#[test]
fn a_lying_server_other_bytes_or_no_server_refuse_the_run_and_change_nothing() {
    for (mode, code_word) in [
        (Some(Mode::Lies), "fleetup::package::download"),
        (Some(Mode::Other), "fleetup::package::checksum"),
        (None, "fleetup::plan::path"),
    ] {
        let (dir, files, cache) = setup();
        let port = match mode {
            Some(m) => serve(with_prefix(files), m).port,
            None => sshd::free_port(),
        };
        let p = plan(dir.path(), port);
        let before = snapshot(&dir.path().join("n1"));
        let (code, out, err) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains(code_word), "{code_word}: {err}");
        assert_eq!(snapshot(&dir.path().join("n1")), before);
        // Nothing half-downloaded stays in the cache.
        let left: Vec<String> = std::fs::read_dir(&cache)
            .into_iter()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// Every file under `dir`, by name.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn remote_hosts_download_from_the_mirror_themselves_unless_the_controller_relays() {
    for via in ["host", "controller"] {
        let sshd = sshd::Sshd::start();
        let (dir, files, cache) = setup();
        let (key, secret) = minisign_keypair(dir.path(), "k");
        // The package and its signature on the mirror.
        let made = tempfile::tempdir().unwrap();
        let name = package_name("4.4.16");
        let pkg = made.path().join(&name);
        std::fs::write(&pkg, &files[&name]).unwrap();
        minisign_sign(&secret, &pkg, false);
        let mut served = with_prefix(files.clone());
        served.insert(
            format!("emqx/{name}.minisig"),
            std::fs::read(made.path().join(format!("{name}.minisig"))).unwrap(),
        );
        let s = serve(served, Mode::Honest);
        let root = dir.path().join("n1");
        let text = format!(
            "plan: 1\nname: far\nproduct: emqx\nrepository: \"http://127.0.0.1:{}/emqx/\"\nrepository_via: {via}\n\
             to: 4.4.16\nstate: ./state\nssh_config: {}\ntrust: {{ minisign: [\"{key}\"] }}\n\
             nodes:\n  - {{ name: n1, ssh: \"{}\", root: {} }}\n",
            s.port,
            sshd.config().display(),
            sshd.addr(),
            root.display()
        );
        let p = dir.path().join("plan.yaml");
        std::fs::write(&p, text).unwrap();
        let (code, out, err) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
        assert_eq!(code, Some(0), "{via}: {out}{err}");
        assert_eq!(
            current(dir.path(), "n1").as_deref(),
            Some("releases/4.4.16"),
            "{via}"
        );
        let gets = s.gets(&format!("emqx/{name}"));
        assert_eq!(gets.len(), 1, "{via}: {gets:?}");
        let on_controller = files_under(&cache).contains(&name);
        let on_host = files_under(&sshd.remote_dir()).contains(&name);
        match via {
            // The host fetched it (and its signature): nothing of it on the controller.
            "host" => {
                assert!(!on_controller && on_host, "{via}");
                assert!(files_under(&sshd.remote_dir()).contains(&format!("{name}.minisig")));
            }
            // The controller fetched it and sent it over SSH.
            _ => assert!(on_controller && on_host, "{via}"),
        }
    }
}

#[test]
fn a_host_refuses_a_mirror_package_whose_signature_does_not_verify() {
    let sshd = sshd::Sshd::start();
    let (dir, files, cache) = setup();
    let (key, _) = minisign_keypair(dir.path(), "k");
    // The mirror has no signature for the package.
    let s = serve(with_prefix(files), Mode::Honest);
    let root = dir.path().join("n1");
    let text = format!(
        "plan: 1\nname: far\nproduct: emqx\nrepository: \"http://127.0.0.1:{}/emqx/\"\n\
         to: 4.4.16\nstate: ./state\nssh_config: {}\ntrust: {{ minisign: [\"{key}\"] }}\n\
         nodes:\n  - {{ name: n1, ssh: \"{}\", root: {} }}\n",
        s.port,
        sshd.config().display(),
        sshd.addr(),
        root.display()
    );
    let p = dir.path().join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    let before = snapshot(&root);
    let (code, out, err) = run(
        &cache,
        &[
            "apply".as_ref(),
            p.as_os_str(),
            "--yes".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
        ],
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n1 = target(&doc, "n1");
    assert_eq!(n1["code"], "fleetup::package::signature", "{n1}");
    assert!(
        n1["detail"].as_str().unwrap().contains("on the host"),
        "{n1}"
    );
    assert_eq!(snapshot(&root), before);
}

#[test]
fn a_bundle_applies_with_no_request_to_the_mirror() {
    let (dir, files, cache) = setup();
    let s = serve(with_prefix(files), Mode::Honest);
    // Absolute roots: the bundle's plan copy lives elsewhere.
    let text = format!(
        "plan: 1\nname: carried\nproduct: emqx\nrepository: \"http://127.0.0.1:{}/emqx/\"\nto: 4.4.16\nstate: ./state\n\
         nodes:\n  - {{ name: n1, root: {} }}\n  - {{ name: n2, root: {} }}\n",
        s.port,
        dir.path().join("n1").display(),
        dir.path().join("n2").display()
    );
    let p = dir.path().join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    let out = dir.path().join("bundle");
    let (code, o, e) = run(
        &cache,
        &[
            "bundle".as_ref(),
            p.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
    );
    assert_eq!(code, Some(0), "{o}{e}");
    let name = package_name("4.4.16");
    let listed = files_under(&out);
    for want in [
        name.clone(),
        format!("{name}.sha256"),
        "SHA256SUMS".into(),
        "plan.yaml".into(),
    ] {
        assert!(listed.contains(&want), "{want}: {listed:?}");
    }
    assert!(
        listed.iter().any(|f| f.starts_with("fleetup-linux-")),
        "{listed:?}"
    );
    let copy = std::fs::read_to_string(out.join("plan.yaml")).unwrap();
    assert!(copy.contains("repository: \".\""), "{copy}");
    // A second bundle never writes over the first.
    let (code, _, e) = run(
        &cache,
        &[
            "bundle".as_ref(),
            p.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
    );
    assert_eq!(code, Some(2), "{e}");

    // Applied from the bundle, with an empty cache: the mirror hears nothing.
    let asked = s.log.lock().unwrap().len();
    let empty = dir.path().join("empty-cache");
    let bundled = out.join("plan.yaml");
    let (code, o, e) = run(
        &empty,
        &["apply".as_ref(), bundled.as_os_str(), "--yes".as_ref()],
    );
    assert_eq!(code, Some(0), "{o}{e}");
    assert_eq!(
        s.log.lock().unwrap().len(),
        asked,
        "the run asked the mirror"
    );
    assert_eq!(
        current(dir.path(), "n1").as_deref(),
        Some("releases/4.4.16")
    );
    assert_eq!(
        current(dir.path(), "n2").as_deref(),
        Some("releases/4.4.16")
    );
}

#[test]
fn a_mirror_package_signed_by_another_key_refuses_the_run_before_any_node_changes() {
    let (dir, files, cache) = setup();
    let keys = |name: &str| minisign_keypair(dir.path(), name);
    let (trusted, _) = keys("trusted");
    let (_, other) = keys("other");
    let name = package_name("4.4.16");
    let made = tempfile::tempdir().unwrap();
    let pkg = made.path().join(&name);
    std::fs::write(&pkg, &files[&name]).unwrap();
    minisign_sign(&other, &pkg, false);
    let mut served = with_prefix(files);
    served.insert(
        format!("emqx/{name}.minisig"),
        std::fs::read(made.path().join(format!("{name}.minisig"))).unwrap(),
    );
    let s = serve(served, Mode::Honest);
    let p = plan(dir.path(), s.port);
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "nodes:",
        &format!("trust: {{ minisign: [\"{trusted}\"] }}\nnodes:"),
    );
    std::fs::write(&p, text).unwrap();
    let before = (
        snapshot(&dir.path().join("n1")),
        snapshot(&dir.path().join("n2")),
    );
    let (code, out, err) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup::package::signature"), "{err}");
    assert!(err.contains("not trust"), "{err}");
    assert_eq!(
        (
            snapshot(&dir.path().join("n1")),
            snapshot(&dir.path().join("n2"))
        ),
        before
    );
}

#[test]
fn an_https_mirror_is_trusted_through_fleetup_ca_file_and_refused_without_it() {
    let (dir, files, cache) = setup();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("emqx")).unwrap();
    let mut sums = String::new();
    for (name, bytes) in &files {
        std::fs::write(site.join("emqx").join(name), bytes).unwrap();
        sums.push_str(&format!("{}  {name}\n", fleetup::mirror::hex(bytes)));
    }
    std::fs::write(site.join("emqx/SHA256SUMS"), sums).unwrap();
    // A private CA and a server certificate for 127.0.0.1 it signed, made by openssl.
    let (ca, cert, key) = common::http::certificates(dir.path());
    let port = sshd::free_port();
    let script = "import functools, http.server, ssl, sys\n\
        h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])\n\
        s = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), h)\n\
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        c.load_cert_chain(sys.argv[3], sys.argv[4])\n\
        s.socket = c.wrap_socket(s.socket, server_side=True)\n\
        s.serve_forever()\n";
    let mut server = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(&site)
        .arg(&cert)
        .arg(&key)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let text = format!(
        "plan: 1\nname: tls\nproduct: emqx\nrepository: \"https://127.0.0.1:{port}/emqx/\"\nto: 4.4.16\nstate: ./state\n\
         nodes:\n  - {{ name: n1, root: ./n1 }}\n"
    );
    let p = dir.path().join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    // Not trusted: the index cannot be read, nothing changes.
    let before = snapshot(&dir.path().join("n1"));
    let (code, out, err) = output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", &cache)
            .env_remove("FLEETUP_CA_FILE")
            .args(["apply", "--yes"])
            .arg(&p),
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("cannot read the mirror's index"), "{err}");
    assert_eq!(snapshot(&dir.path().join("n1")), before);
    // Trusted through its certificate: upgraded.
    let (code, out, err) = output(
        fleetup()
            .env("FLEETUP_CACHE_DIR", &cache)
            .env("FLEETUP_CA_FILE", &ca)
            .args(["apply", "--yes"])
            .arg(&p),
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        current(dir.path(), "n1").as_deref(),
        Some("releases/4.4.16")
    );
}

/// Issue 29: a package already in the cache with its digest is not downloaded again (0
/// GETs); a copy damaged in the cache is downloaded again (1 GET); a package whose bytes
/// do not match the index is refused at once, never retried (1 GET).
#[test]
fn the_cache_is_reused_a_damaged_copy_fetched_again_and_other_bytes_never_retried() {
    let (dir, files, cache) = setup();
    let s = serve(with_prefix(files.clone()), Mode::Honest);
    let p = plan(dir.path(), s.port);
    let pkg = format!("emqx/{}", package_name("4.4.16"));
    let apply = || run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
    let back = || {
        for n in ["n1", "n2"] {
            fleetup()
                .current_dir(dir.path())
                .args(["node", "downgrade", "4.4.15", "--root", n])
                .assert()
                .success();
        }
    };
    let (code, o, e) = apply();
    assert_eq!(code, Some(0), "{o}{e}");
    assert_eq!(s.gets(&pkg).len(), 1);
    back();
    let (code, o, e) = apply();
    assert_eq!(code, Some(0), "{o}{e}");
    assert_eq!(
        s.gets(&pkg).len(),
        1,
        "the cached package was downloaded again"
    );
    // Damaged in the cache: downloaded again, once.
    let cached: Vec<PathBuf> = std::fs::read_dir(cache.join("mirrors"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join(package_name("4.4.16")))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(cached.len(), 1);
    std::fs::write(&cached[0], b"damaged").unwrap();
    back();
    let (code, o, e) = apply();
    assert_eq!(code, Some(0), "{o}{e}");
    assert_eq!(s.gets(&pkg).len(), 2);
    assert_eq!(
        current(dir.path(), "n1").as_deref(),
        Some("releases/4.4.16")
    );

    // Other bytes than the index says: one GET, refused, nothing retried.
    let (dir, files, cache) = setup();
    let s = serve(with_prefix(files), Mode::Other);
    let p = plan(dir.path(), s.port);
    let (code, o, e) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(e.contains("fleetup::package::checksum"), "{e}");
    assert_eq!(s.gets(&pkg).len(), 1, "{:?}", s.gets(&pkg));
}

#[test]
fn a_failed_download_is_coded_by_what_failed_not_by_words_in_its_url() {
    // A mirror under /signatures-and-SHA-256/ whose server lies about a package's size:
    // the download failed, whatever its URL says.
    let (dir, files, cache) = setup();
    let files = files
        .into_iter()
        .map(|(k, v)| (format!("signatures-and-SHA-256/{k}"), v))
        .collect();
    let port = serve(files, Mode::Lies).port;
    let p = plan(dir.path(), port);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("/emqx/", "/signatures-and-SHA-256/");
    std::fs::write(&p, text).unwrap();
    let before = snapshot(&dir.path().join("n1"));
    let (code, out, err) = run(&cache, &["apply".as_ref(), p.as_os_str(), "--yes".as_ref()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup::package::download"), "{err}");
    assert!(!err.contains("fleetup::package::checksum"), "{err}");
    assert_eq!(snapshot(&dir.path().join("n1")), before);
}
