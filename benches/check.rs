//! `fleetup check` and `fleetup plan` on a generated 10,000-node plan (YAML and TOML)
//! whose nodes are real stores: every root exists and holds a RELEASES file (4.4.15), and
//! the repository holds a 60 MB package of 4.4.16 with its `.sha256` and the packages of
//! 4.4.16 for the 15 other platforms EMQX publishes, so a run reads 10,000 stores, picks
//! each node's platform among 16 and computes the package's checksum, as on a real
//! controller.
//!
//! Targets (issue: foundation): under 200 ms wall and under 64 MB peak memory for the
//! whole `fleetup check` process on this 2-core machine; `fleetup plan` under 64 MB.
//! Baselines, measured in the same run, each side first in turn: coreutils doing the same
//! reads (`sha256sum` of the package, `cat` of every RELEASES), and bare parsing of the
//! plan in-process. Exit statuses are checked: a failed run is no figure.
//!
//! Run: `cargo bench --bench check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;

const NODES: usize = 10_000;
/// The size of an EMQX 4.4 package for one platform, roughly.
const PACKAGE_MB: usize = 60;

/// A `megabytes`-sized package of incompressible data, and its `.sha256`.
fn big_package(repo: &Path, version: &str, megabytes: usize) -> PathBuf {
    use std::io::Write;
    let path = repo.join(format!(
        "emqx-{version}-otp24.3.4.2-1-ubuntu20.04-amd64.zip"
    ));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..megabytes {
        z.start_file(format!("lib/part-{i:03}"), o).unwrap();
        let mut buf = Vec::with_capacity(1 << 20);
        while buf.len() < 1 << 20 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf.extend_from_slice(&seed.to_le_bytes());
        }
        z.write_all(&buf).unwrap();
    }
    z.finish().unwrap();
    let digest = fleetup::package::sha256_file(&path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(
        format!("{}.sha256", path.display()),
        format!("{digest}  {name}\n"),
    )
    .unwrap();
    // Beside it, as EMQX publishes a release: the other platforms' packages.
    common::other_platforms(repo, version);
    path
}

fn generate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let repo = dir.join("releases");
    std::fs::create_dir_all(&repo).unwrap();
    let pkg = big_package(&repo, "4.4.16", PACKAGE_MB);
    for i in 0..NODES {
        let store = dir.join(format!("stores/node-{i}/releases"));
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(
            store.join("RELEASES"),
            "# Release store state, written by fleetup. Do not edit.\nformat = 1\nproduct = \"emqx\"\n\n\
             [[release]]\nversion = \"4.4.15\"\npackage = \"emqx-4.4.15-otp24.3.4.2-1-ubuntu20.04-amd64.zip\"\nstate = \"permanent\"\n",
        )
        .unwrap();
    }
    let mut y = String::from(
        "plan: 1\nname: big\nproduct: emqx\nrepository: ./releases\nto: 4.4.16\nhealth:\n  http: \"http://{host}:{port}/status\"\nhooks:\n  activate: [\"{root}/current/bin/ctl\", \"restart\"]\ndefaults:\n  vars: { port: 18083 }\nnodes:\n",
    );
    let mut t = String::from(
        "plan = 1\nname = \"big\"\nproduct = \"emqx\"\nrepository = \"./releases\"\nto = \"4.4.16\"\n[health]\nhttp = \"http://{host}:{port}/status\"\n[hooks]\nactivate = [\"{root}/current/bin/ctl\", \"restart\"]\n[defaults]\nvars = { port = 18083 }\n",
    );
    for i in 0..NODES {
        let (a, b) = (i / 256, i % 256);
        y.push_str(&format!(
            "  - name: node-{i}\n    host: 10.0.{a}.{b}\n    root: ./stores/node-{i}\n    tags: [rack-{}]\n    vars: {{ port: {} }}\n",
            i % 20,
            18000 + i % 100
        ));
        t.push_str(&format!(
            "[[nodes]]\nname = \"node-{i}\"\nhost = \"10.0.{a}.{b}\"\nroot = \"./stores/node-{i}\"\ntags = [\"rack-{}\"]\nvars = {{ port = {} }}\n",
            i % 20,
            18000 + i % 100
        ));
    }
    let (py, pt) = (dir.join("plan.yaml"), dir.join("plan.toml"));
    std::fs::write(&py, y).unwrap();
    std::fs::write(&pt, t).unwrap();
    (py, pt, pkg)
}

/// Wall time and peak resident memory (KiB) of one `fleetup COMMAND PLAN` process.
///
/// Linux counts a child's memory from before its `exec`, which for a child of this large
/// benchmark process would be this process's own peak. So the measuring is done by a
/// fresh, small copy of this program (the shim), whose child starts from a few MB.
fn run_binary(command: &str, plan: &Path) -> (Duration, i64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(SHIM, format!("{command}\t{}", plan.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fleetup {command} {} failed: {}",
        plan.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|x| x.parse::<i64>().unwrap());
    let (nanos, rss) = (it.next().unwrap(), it.next().unwrap());
    (Duration::from_nanos(nanos as u64), rss)
}

const SHIM: &str = "FLEETUP_BENCH_SHIM";

// The child is reaped by `wait4` below, which also gives its rusage; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn shim(spec: &str) {
    let (command, plan) = spec.split_once('\t').unwrap();
    let plan = Path::new(plan);
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg(command)
        .arg(plan)
        .current_dir(plan.parent().unwrap())
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
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        eprintln!("fleetup {command} exited with status {status}");
        std::process::exit(1);
    }
    println!("{} {}", wall.as_nanos(), usage.ru_maxrss);
}

/// What `fleetup check` found, from its JSON report: stores read, problems.
fn sanity(plan: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .args(["check", "--format", "json"])
        .arg(plan)
        .current_dir(plan.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = &doc["files"][0];
    assert_eq!(file["states_read"], NODES, "{file}");
    assert_eq!(file["problems"].as_array().map(Vec::len), Some(0), "{file}");
}

/// The same reads done by coreutils: the package's checksum and every store's RELEASES.
fn coreutils(dir: &Path, pkg: &Path) -> Duration {
    let mut c = Command::new("bash");
    c.current_dir(dir).arg("-c").arg(format!(
        "sha256sum {} >/dev/null && find stores -name RELEASES -exec cat {{}} + >/dev/null",
        pkg.display()
    ));
    common::time(c)
}

fn main() {
    if let Ok(spec) = std::env::var(SHIM) {
        return shim(&spec);
    }
    let dir = tempfile::tempdir().unwrap();
    let (yaml, toml, pkg) = generate(dir.path());
    let runs = common::runs().max(12);
    if std::env::var_os("FLEETUP_BENCH_TABLE_ONLY").is_none() {
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
            g.bench_function("schedule (waves of 10,000)", |b| {
                let plan = fleetup::plan::load(path).plan.expect("a valid plan");
                b.iter(|| {
                    black_box(
                        fleetup::plan::schedule::build(&plan, Some("node-1*,@rack-3")).unwrap(),
                    )
                })
            });
            g.finish();
        }
        c.final_summary();
    }

    println!(
        "\nWhole processes, {NODES} nodes with live stores, a {PACKAGE_MB} MB package checksummed, {runs} runs a side, median (min–max):"
    );
    for (label, path) in [("YAML", &yaml), ("TOML", &toml)] {
        sanity(path);
        let text = std::fs::read_to_string(path).unwrap();
        let parse: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                if label == "YAML" {
                    black_box(fleetup::plan::tree::parse_yaml(&text).unwrap());
                } else {
                    black_box(fleetup::plan::tree::parse_toml(&text).unwrap());
                }
                t.elapsed().as_secs_f64()
            })
            .collect();
        let (fleet, base) = common::pair(
            runs,
            |_| run_binary("check", path),
            |_| coreutils(dir.path(), &pkg).as_secs_f64(),
        );
        let wall: Vec<f64> = fleet.iter().map(|r| r.0.as_secs_f64()).collect();
        let peak = fleet.iter().map(|r| r.1).max().unwrap_or(0) as f64 / 1024.0;
        println!(
            "  check {label}: {} ms, peak {peak:.1} MB; coreutils {} ms; bare parsing {} ms",
            common::spread(&wall, 1000.0, 0),
            common::spread(&base, 1000.0, 0),
            common::spread(&parse, 1000.0, 0),
        );
        common::row([
            &format!(
                "`fleetup check`, {NODES} nodes with live stores, {PACKAGE_MB} MB package checksummed, {label}"
            ),
            &format!("{} ms, {peak:.0} MB peak", common::spread(&wall, 1000.0, 0)),
            &format!(
                "the same reads by coreutils (`sha256sum`, `cat` of every RELEASES) {} ms; bare {label} parsing {:.0} ms",
                common::spread(&base, 1000.0, 0),
                common::median(&parse) * 1000.0
            ),
            &common::paired_ratios(&wall, &base),
            &format!(
                "< 200 ms ({:.2}), < 64 MB ({:.2})",
                common::median(&wall) / 0.2,
                peak / 64.0
            ),
        ]);
    }
    let plan_runs: Vec<(Duration, i64)> = (0..common::runs())
        .map(|_| run_binary("plan", &yaml))
        .collect();
    let wall: Vec<f64> = plan_runs.iter().map(|r| r.0.as_secs_f64()).collect();
    let peak = plan_runs.iter().map(|r| r.1).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "  plan YAML: {} ms, peak {peak:.1} MB",
        common::spread(&wall, 1000.0, 0)
    );
    common::row([
        &format!("`fleetup plan`, the same {NODES} nodes (YAML)"),
        &format!("{} ms, {peak:.0} MB peak", common::spread(&wall, 1000.0, 0)),
        "",
        "",
        &format!("< 64 MB ({:.2})", peak / 64.0),
    ]);
}
