//! The demo fleet: `cargo run --release --example demo`.
//!
//! Builds four local nodes under `target/fleetup-demo/`, each running a real HTTP server
//! process started from its current release by the release's own `bin/ctl`, then:
//!
//! 1. `fleetup plan --explain` and `fleetup apply` of a good patch release (4.4.15 →
//!    4.4.16): the node tagged canary alone, drained and undrained around its upgrade
//!    (hooks writing to `lb.log`), then a manual gate: the run pauses (exit 6) until
//!    `fleetup approve`, and `fleetup resume` upgrades the rest, each node checked over
//!    HTTP;
//! 2. a broken release (4.4.17, whose server answers 500) rolled out canary first: the
//!    canary's health check catches it, the canary is rolled back and nobody else is
//!    touched;
//! 3. `fleetup history`.
//!
//! Every server it started is stopped at the end. The same program is the nodes' server
//! (`demo serve PORT DIR`), so nothing beyond the Rust toolchain is needed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use clap::Parser;
use zip::write::SimpleFileOptions;

const NODES: usize = 4;

/// `demo serve PORT DIR`: answers GET /status with 200 when DIR/status exists, else 500.
fn serve(port: &str, dir: &Path) -> ! {
    let listener = match TcpListener::bind(format!("127.0.0.1:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo server: cannot listen on {port}: {e}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming().flatten() {
        let mut s = stream;
        let mut buf = [0u8; 2048];
        let n = s.read(&mut buf).unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]);
        let path = req.split_whitespace().nth(1).unwrap_or("/");
        let (code, body) = match (path, std::fs::read_to_string(dir.join("status"))) {
            ("/status", Ok(b)) => ("200 OK", b),
            ("/status", Err(_)) => (
                "500 Internal Server Error",
                "this release is broken\n".to_owned(),
            ),
            _ => ("404 Not Found", String::new()),
        };
        let _ = write!(
            s,
            "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    std::process::exit(0)
}

/// The release's control script: `restart` stops the node's server and starts the one
/// of the current release.
const CTL: &str = r#"#!/bin/sh
set -e
root="$FLEETUP_ROOT"
if [ -f "$root/server.pid" ]; then
  kill "$(cat "$root/server.pid")" 2>/dev/null || true
  sleep 0.2
fi
"$(cat "$root/demo-server")" serve "$(cat "$root/port")" "$FLEETUP_RELEASE_DIR/www" >/dev/null 2>&1 &
echo $! > "$root/server.pid"
"#;

fn release(repo: &Path, version: &str, healthy: bool) {
    let path = repo.join(format!(
        "emqx-{version}-otp24.3.4.2-1-ubuntu20.04-amd64.zip"
    ));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).expect("create package"));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    z.start_file("VERSION", opts).expect("zip");
    writeln!(z, "{version}").expect("zip");
    z.start_file("bin/ctl", opts.unix_permissions(0o755))
        .expect("zip");
    z.write_all(CTL.as_bytes()).expect("zip");
    if healthy {
        z.start_file("www/status", opts).expect("zip");
        writeln!(z, "emqx {version} ok").expect("zip");
    } else {
        z.add_directory("www/", opts).expect("zip");
    }
    z.finish().expect("zip");
    let digest = fleetup::package::sha256_file(&path).expect("digest");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(
        format!("{}.sha256", path.display()),
        format!("{digest}  {name}\n"),
    )
    .expect("sidecar");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn fleetup(args: &[&str]) -> u8 {
    println!("\n$ fleetup {}", args.join(" "));
    let cli = fleetup::cli::Cli::parse_from(std::iter::once("fleetup").chain(args.iter().copied()));
    let code = fleetup::run(cli).code();
    println!("(exit {code})");
    code
}

/// Stops every demo server, whatever happens to the demo.
struct Servers(Vec<PathBuf>);

impl Drop for Servers {
    fn drop(&mut self) {
        for root in &self.0 {
            if let Ok(pid) = std::fs::read_to_string(root.join("server.pid")) {
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        serve(&args[2], Path::new(&args[3]));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fleetup-demo");
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("releases");
    std::fs::create_dir_all(&repo).expect("create the demo directory");
    release(&repo, "4.4.15", true);
    release(&repo, "4.4.16", true);
    release(&repo, "4.4.17", false);
    let me = std::env::current_exe().expect("the demo's own path");

    let mut servers = Servers(Vec::new());
    let mut nodes = String::new();
    println!("Setting up {NODES} nodes on 4.4.15 under {}", dir.display());
    for i in 1..=NODES {
        let root = dir.join(format!("emqx-{i}"));
        std::fs::create_dir_all(&root).expect("node directory");
        let port = free_port();
        std::fs::write(root.join("port"), port.to_string()).expect("port");
        std::fs::write(root.join("demo-server"), me.display().to_string()).expect("server path");
        std::fs::write(
            root.join("node.toml"),
            "[activate]\ncommand = [\"{root}/current/bin/ctl\", \"restart\"]\ntimeout = \"10s\"\n",
        )
        .expect("node.toml");
        servers.0.push(root.clone());
        let code = fleetup::run(fleetup::cli::Cli::parse_from([
            "fleetup",
            "node",
            "upgrade",
            "4.4.15",
            "--root",
            &root.display().to_string(),
            "--repo",
            &repo.display().to_string(),
        ]));
        assert_eq!(
            code,
            fleetup::diagnostics::Exit::Ok,
            "installing 4.4.15 on node {i} failed"
        );
        let tag = if i == 1 { ", tags: [canary]" } else { "" };
        nodes.push_str(&format!(
            "  - {{ name: emqx-{i}, root: ./emqx-{i}, vars: {{ port: {port} }}{tag} }}\n"
        ));
    }

    let lb = dir.join("lb.log");
    let plan = |to: &str, waves: &str, extra: &str| {
        format!(
            "plan: 1\nname: demo-{to}\nproduct: emqx\nrepository: ./releases\nto: {to}\nstate: ./state\n\
             rollout:\n  max_parallel: 3\n  waves: {waves}\n  max_failures: 0\n  on_failure: rollback\n{extra}\
             health:\n  http: \"http://127.0.0.1:{{port}}/status\"\n  timeout: 3s\n  interval: 200ms\n  healthy_for: 400ms\n\
             hooks:\n  activate: [\"{{root}}/current/bin/ctl\", \"restart\"]\n  \
             before: [\"/bin/sh\", \"-c\", \"echo drain {{name}} >> {lb}\"]\n  \
             after: [\"/bin/sh\", \"-c\", \"echo undrain {{name}} on {{version}} >> {lb}\"]\n  \
             timeout: 10s\nnodes:\n{nodes}",
            lb = lb.display()
        )
    };
    let gate = "  gates: [{ after_wave: 1, approve: manual }]\n";
    std::fs::write(
        dir.join("patch.yaml"),
        plan("4.4.16", "[\"@canary\", \"100%\"]", gate),
    )
    .expect("plan");
    std::fs::write(
        dir.join("broken.yaml"),
        plan("4.4.17", "[\"@canary\", \"100%\"]", ""),
    )
    .expect("plan");
    let p = |f: &str| dir.join(f).display().to_string();

    println!("\n== 1. A good patch release: the canary, drained; a manual gate; the rest ==");
    fleetup(&["check", &p("patch.yaml")]);
    fleetup(&["plan", "--explain", &p("patch.yaml")]);
    let paused = fleetup(&["apply", &p("patch.yaml"), "--yes"]);
    let mut runs: Vec<String> = std::fs::read_dir(dir.join("state/runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    let run = runs.pop().unwrap_or_default();
    println!("\n-- someone looks at the canary, then approves --");
    fleetup(&["approve", &run, "--state", &p("state")]);
    let good = fleetup(&["resume", &run, "--state", &p("state")]);
    println!("\n-- the load balancer's log (lb.log) --");
    print!("{}", std::fs::read_to_string(&lb).unwrap_or_default());

    println!("\n== 2. A broken release: the canary's health check catches it ==");
    let bad = fleetup(&["apply", &p("broken.yaml"), "--yes"]);
    fleetup(&["node", "versions", "--root", &p("emqx-1")]);

    println!("\n== 3. The record ==");
    fleetup(&["history", "--state", &p("state")]);

    drop(servers);
    println!(
        "\nAll demo servers stopped. Files are in {}.",
        dir.display()
    );
    if paused != 6 || good != 0 || bad != 3 {
        eprintln!(
            "unexpected: the good rollout exited {paused} at its gate (expected 6) and {good} resumed (expected 0), the broken one {bad} (expected 3)"
        );
        std::process::exit(1);
    }
}
