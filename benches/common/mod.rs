//! What the benchmarks share: release packages with incompressible-ish data, the binary
//! under test, and a timer that fails loudly.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zip::write::SimpleFileOptions;

/// The platforms EMQX publishes every 4.4 release for, besides the benches' own
/// (ubuntu20.04-amd64): a repository lists all of them side by side.
pub const OTHER_PLATFORMS: &[&str] = &[
    "el7-amd64",
    "el7-arm64",
    "el8-amd64",
    "el8-arm64",
    "debian10-amd64",
    "debian10-arm64",
    "debian11-amd64",
    "debian11-arm64",
    "ubuntu18.04-amd64",
    "ubuntu18.04-arm64",
    "ubuntu20.04-arm64",
    "ubuntu22.04-amd64",
    "ubuntu22.04-arm64",
    "raspbian10-arm64",
    "macos12-amd64",
];

/// The packages of `version` for every other platform, as a real repository has them
/// beside the benches' own. Small stand-ins: nothing ever installs them, but every
/// listing, lookup and index reads them as a real repository's.
pub fn other_platforms(repo: &Path, version: &str) {
    for p in OTHER_PLATFORMS {
        let path = repo.join(format!("emqx-{version}-otp24.3.4.2-1-{p}.zip"));
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        z.start_file("VERSION", SimpleFileOptions::default())
            .unwrap();
        writeln!(z, "{version} {p}").unwrap();
        z.finish().unwrap();
    }
}

/// A package of `files` files of `bytes` each, with the same version's packages for
/// every other platform beside it ([`other_platforms`]).
pub fn package(repo: &Path, version: &str, files: usize, bytes: usize) -> PathBuf {
    let path = repo.join(format!(
        "emqx-{version}-otp24.3.4.2-1-ubuntu20.04-amd64.zip"
    ));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let o = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..files {
        z.start_file(format!("lib/f{i:03}"), o).unwrap();
        let mut buf = Vec::with_capacity(bytes);
        while buf.len() < bytes {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            write!(buf, "{} ", seed % 1000).unwrap();
        }
        z.write_all(&buf).unwrap();
    }
    z.finish().unwrap();
    other_platforms(repo, version);
    path
}

pub fn fleetup() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleetup"))
}

/// How long `c` takes; panics with its stderr when it fails.
pub fn time(mut c: Command) -> Duration {
    let start = Instant::now();
    let out = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let d = start.elapsed();
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// `dir/repo` with 4.4.15 and 4.4.16 (20 files of 50 kB each, 1 MB): the 4.4.16 package.
pub fn two_releases(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let (files, bytes) = (20, 50_000);
    package(&repo, "4.4.15", files, bytes);
    let pkg = package(&repo, "4.4.16", files, bytes);
    println!(
        "package: {files} files, {:.1} MB unpacked",
        (files * bytes) as f64 / 1e6
    );
    pkg
}

/// Exits when a tool a baseline needs is missing.
pub fn require(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("{tool} is not installed: the baselines need it");
            std::process::exit(1);
        }
    }
}

/// A fresh node store at `root` on 4.4.15, from `repo`.
pub fn node_on_4_4_15(root: &Path, repo: &Path) {
    let ok = fleetup()
        .args(["node", "upgrade", "4.4.15", "--product", "emqx"])
        // The repository has every platform: a fresh node says which is its own.
        .args(["--platform", "ubuntu20.04-amd64", "--root"])
        .arg(root)
        .arg("--repo")
        .arg(repo)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Runs per side: `FLEETUP_BENCH_RUNS` (default 6), rounded up to an even number so that
/// paired runs come in twos ([`paired_ratios`]).
pub fn runs() -> usize {
    let n: usize = std::env::var("FLEETUP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    n.max(2).next_multiple_of(2)
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `median (min–max)`, each scaled by `scale` and shown with `digits` decimals.
pub fn spread(v: &[f64], scale: f64, digits: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min) * scale;
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max) * scale;
    format!(
        "{:.digits$} ({lo:.digits$}–{hi:.digits$})",
        median(v) * scale
    )
}

/// The ratio of each run of `a` to the paired run of `b`, as `spread` shows it.
pub fn ratios(a: &[f64], b: &[f64]) -> String {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    spread(&r, 1.0, 2)
}

/// The ratio of `a` to `b` measured by [`pair`], as `spread` shows it: runs go in twos,
/// each side first once, and a two's ratio is the geometric mean of its two per-run
/// ratios, which cancels whatever going first costs or gains. (The median of per-run
/// ratios did not: over an odd number of runs one side went first more often, and the
/// same binary on both sides of `benches/apply.rs` came out 1.10 to 1.12.)
pub fn paired_ratios(a: &[f64], b: &[f64]) -> String {
    let r: Vec<f64> = a
        .chunks(2)
        .zip(b.chunks(2))
        .filter(|(x, y)| x.len() == 2 && y.len() == 2)
        .map(|(x, y)| ((x[0] / y[0]) * (x[1] / y[1])).sqrt())
        .collect();
    spread(&r, 1.0, 2)
}

/// Runs `a` and `b` `runs` times each (an even number: see [`paired_ratios`]), each side
/// first in turn; their results in order.
pub fn pair<A, B>(
    runs: usize,
    mut a: impl FnMut(usize) -> A,
    mut b: impl FnMut(usize) -> B,
) -> (Vec<A>, Vec<B>) {
    assert!(
        runs.is_multiple_of(2),
        "paired runs come in twos, each side first once"
    );
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for k in 0..runs {
        if k % 2 == 0 {
            ra.push(a(k));
            rb.push(b(k));
        } else {
            rb.push(b(k));
            ra.push(a(k));
        }
    }
    (ra, rb)
}

/// One row of BENCHMARKS.md's table, on a line of its own that `scripts/benchmarks`
/// collects: benchmark | fleetup | baseline | fleetup / baseline | target.
pub fn row(cells: [&str; 5]) {
    println!("TABLE | {} |", cells.join(" | "));
}
