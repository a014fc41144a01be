//! `fleetup check` on a generated 10,000-node plan, in YAML and in TOML.
//!
//! Targets (issue: foundation): under 200 ms wall and under 64 MB peak memory for the
//! whole `fleetup check` process on this 2-core machine. The baseline is bare parsing of
//! the same file: the benchmark prints how much of the time goes beyond it (validation,
//! preflight, output), and the ratio of each measurement to its target.
//!
//! Run: `cargo bench --bench check`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;

const NODES: usize = 10_000;

fn generate(dir: &Path) -> (PathBuf, PathBuf) {
    let repo = dir.join("releases");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip"),
        b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    )
    .unwrap();
    let mut y = String::from(
        "plan: 1\nname: big\nproduct: emqx\nrepository: ./releases\nto: 4.4.16\nhealth:\n  http: \"http://{host}:{port}/status\"\nhooks:\n  activate: [\"{root}/current/bin/ctl\", \"restart\"]\ndefaults:\n  vars: { port: 18083 }\nnodes:\n",
    );
    let mut t = String::from(
        "plan = 1\nname = \"big\"\nproduct = \"emqx\"\nrepository = \"./releases\"\nto = \"4.4.16\"\n[health]\nhttp = \"http://{host}:{port}/status\"\n[hooks]\nactivate = [\"{root}/current/bin/ctl\", \"restart\"]\n[defaults]\nvars = { port = 18083 }\n",
    );
    for i in 0..NODES {
        let (a, b) = (i / 256, i % 256);
        y.push_str(&format!(
            "  - name: node-{i}\n    host: 10.0.{a}.{b}\n    root: /srv/fleetup-bench/node-{i}\n    tags: [rack-{}]\n    vars: {{ port: {} }}\n",
            i % 20,
            18000 + i % 100
        ));
        t.push_str(&format!(
            "[[nodes]]\nname = \"node-{i}\"\nhost = \"10.0.{a}.{b}\"\nroot = \"/srv/fleetup-bench/node-{i}\"\ntags = [\"rack-{}\"]\nvars = {{ port = {} }}\n",
            i % 20,
            18000 + i % 100
        ));
    }
    let (py, pt) = (dir.join("plan.yaml"), dir.join("plan.toml"));
    std::fs::write(&py, y).unwrap();
    std::fs::write(&pt, t).unwrap();
    (py, pt)
}

/// Wall time and peak resident memory (KiB) of one `fleetup check` process.
///
/// Linux counts a child's memory from before its `exec`, which for a child of this large
/// benchmark process would be this process's own peak. So the measuring is done by a
/// fresh, small copy of this program (the shim), whose child starts from a few MB.
fn run_binary(plan: &Path) -> (Duration, i64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(SHIM, plan)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|x| x.parse::<i64>().unwrap());
    let (nanos, rss) = (it.next().unwrap(), it.next().unwrap());
    (Duration::from_nanos(nanos as u64), rss)
}

const SHIM: &str = "FLEETUP_BENCH_SHIM";

// The child is reaped by `wait4` below, which also gives its rusage; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn shim(plan: &Path) {
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("check")
        .arg(plan)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "fleetup check failed on {}",
        plan.display()
    );
    println!("{} {}", wall.as_nanos(), usage.ru_maxrss);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if let Some(plan) = std::env::var_os(SHIM) {
        return shim(Path::new(&plan));
    }
    let dir = tempfile::tempdir().unwrap();
    let (yaml, toml) = generate(dir.path());
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    for (label, path) in [("yaml", &yaml), ("toml", &toml)] {
        let text = std::fs::read_to_string(path).unwrap();
        let mut g = c.benchmark_group(format!("check-10k-{label}"));
        g.bench_function("parse only (baseline)", |b| {
            b.iter(|| {
                if label == "yaml" {
                    black_box(fleetup::plan::tree::parse_yaml(&text).unwrap());
                } else {
                    black_box(fleetup::plan::tree::parse_toml(&text).unwrap());
                }
            })
        });
        g.bench_function("load + validate", |b| {
            b.iter(|| black_box(fleetup::plan::load(path)))
        });
        g.bench_function("load + validate + preflight", |b| {
            b.iter(|| {
                let l = fleetup::plan::load(path);
                black_box(fleetup::preflight::run(l.plan.as_ref().unwrap()));
            })
        });
        g.bench_function("schedule (waves of 10,000)", |b| {
            let plan = fleetup::plan::load(path).plan.expect("a valid plan");
            b.iter(|| black_box(fleetup::schedule::build(&plan, Some("node-1*,@rack-3")).unwrap()))
        });
        g.finish();
    }
    c.final_summary();

    println!("\nWhole `fleetup check` process, {NODES} nodes, median of 11 runs:");
    for (label, path) in [("yaml", &yaml), ("toml", &toml)] {
        let text = std::fs::read_to_string(path).unwrap();
        let parse = median(
            (0..11)
                .map(|_| {
                    let t = Instant::now();
                    if label == "yaml" {
                        black_box(fleetup::plan::tree::parse_yaml(&text).unwrap());
                    } else {
                        black_box(fleetup::plan::tree::parse_toml(&text).unwrap());
                    }
                    t.elapsed()
                })
                .collect(),
        );
        let runs: Vec<(Duration, i64)> = (0..11).map(|_| run_binary(path)).collect();
        let wall = median(runs.iter().map(|r| r.0).collect());
        let rss_mb = runs.iter().map(|r| r.1).max().unwrap_or(0) as f64 / 1024.0;
        let beyond =
            100.0 * (wall.as_secs_f64() - parse.as_secs_f64()).max(0.0) / wall.as_secs_f64();
        println!(
            "  {label}: wall {:.0} ms (target 200 ms, ratio {:.2}); peak {:.1} MB (target 64 MB, ratio {:.2}); bare parsing {:.0} ms, {:.0}% of the time beyond it",
            wall.as_secs_f64() * 1000.0,
            wall.as_secs_f64() / 0.200,
            rss_mb,
            rss_mb / 64.0,
            parse.as_secs_f64() * 1000.0,
            beyond
        );
    }
}
