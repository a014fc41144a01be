//! Fleet runs against honest baselines, measured side by side in one run:
//!
//! 1. apply to 200 local nodes (1 MB, 20-file package with its `.sha256`, max_parallel 10,
//!    no health wait) against a shell baseline doing the same copy, unzip and link switch
//!    with `xargs -P10` (target: within 1.5×);
//! 2. waiting on health: 100 nodes whose check takes 0.3 s at max_parallel 20, against
//!    the ideal ceil(100/20) × 0.3 s (target: within 1.3×).
//!
//! Every run takes every node one patch further (4.4.16, 4.4.17, …), so each run installs
//! a new release, as a real rollout does; the sides take turns going first, and every
//! exit status is checked.
//!
//! 3. with `FLEETUP_BENCH_BEFORE=PATH` (a fleetup binary of an earlier commit, built
//!    with `--release`): apply to 200 local nodes by this build against that one, side by
//!    side in the same run (target: no regression, within 1.1×).
//!
//! Run: `cargo bench --bench apply` (needs bash, xargs and unzip).

mod common;

use std::path::{Path, PathBuf};

use common::{fleetup, package, time};
use std::process::Command;

/// `n` nodes on 4.4.15 under `dir`.
fn nodes(dir: &Path, n: usize) {
    let repo = dir.join("repo");
    for i in 0..n {
        common::node_on_4_4_15(&dir.join(format!("n{i}")), &repo);
    }
}

/// A plan taking the `n` nodes to `to`, with the given extra YAML.
fn plan(dir: &Path, n: usize, max_parallel: usize, to: &str, extra: &str) -> PathBuf {
    let mut plan = format!(
        "plan: 1\nname: bench\nproduct: emqx\nrepository: ./repo\nto: {to}\nstate: ./state\nrollout:\n  max_parallel: {max_parallel}\n{extra}nodes:\n"
    );
    for i in 0..n {
        plan.push_str(&format!("  - {{ name: n{i}, root: ./n{i} }}\n"));
    }
    let p = dir.join(format!("plan-{to}.yaml"));
    std::fs::write(&p, plan).unwrap();
    p
}

/// Writes `<pkg>.sha256`, so that every install verifies the package.
fn sidecar(pkg: &Path) {
    let digest = fleetup::package::sha256_file(pkg).unwrap();
    let name = pkg.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(
        format!("{}.sha256", pkg.display()),
        format!("{digest}  {name}\n"),
    )
    .unwrap();
}

fn apply_vs_shell(runs: usize) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let first = common::two_releases(dir);
    sidecar(&first);
    let repo = dir.join("repo");
    let pkgs: Vec<PathBuf> = std::iter::once(first)
        .chain((1..runs).map(|k| package(&repo, &format!("4.4.{}", 16 + k), 20, 50_000)))
        .collect();
    for p in &pkgs {
        sidecar(p);
    }
    nodes(dir, 200);
    // The baseline: the same nodes' work done by a shell loop with xargs -P10.
    let base = dir.join("shell");
    for i in 0..200 {
        std::fs::create_dir_all(base.join(format!("n{i}/releases"))).unwrap();
    }
    let shell = |k: usize| {
        let script = format!(
            "ls -d {}/n* | xargs -P10 -I{{}} sh -c 'cp {pkg} {{}}/releases/ && unzip -q {{}}/releases/$(basename {pkg}) -d {{}}/releases/{v} && ln -sfn releases/{v} {{}}/current.tmp && mv -T {{}}/current.tmp {{}}/current'",
            base.display(),
            pkg = pkgs[k].display(),
            v = format!("4.4.{}", 16 + k)
        );
        let mut sh = Command::new("bash");
        sh.arg("-c").arg(&script);
        time(sh).as_secs_f64()
    };
    let fleet = |k: usize| {
        let to = format!("4.4.{}", 16 + k);
        let mut ap = fleetup();
        ap.arg("apply")
            .arg(plan(dir, 200, 10, &to, ""))
            .arg("--yes");
        let d = time(ap).as_secs_f64();
        let link = std::fs::read_link(dir.join("n199/permanent")).unwrap();
        assert_eq!(link, Path::new("releases").join(&to));
        d
    };
    let (f, s) = common::pair(runs, fleet, shell);
    println!(
        "apply to 200 nodes: fleetup {} s, shell xargs -P10 {} s, ratio {} (target <= 1.50)",
        common::spread(&f, 1.0, 2),
        common::spread(&s, 1.0, 2),
        common::paired_ratios(&f, &s)
    );
    common::row([
        "`apply` to 200 local nodes (1 MB, 20 files, checksummed; max_parallel 10; no health)",
        &format!("{} s", common::spread(&f, 1.0, 2)),
        &format!(
            "shell: `xargs -P10` of cp + unzip + link switch, {} s",
            common::spread(&s, 1.0, 2)
        ),
        &common::paired_ratios(&f, &s),
        "≤ 1.5",
    ]);
}

/// This build against `before` (another fleetup binary): each applies the same plan to
/// a fleet of its own, 200 nodes one patch further per run, taking turns going first.
fn apply_vs_before(runs: usize, before: &Path, label: &str) {
    let t = tempfile::tempdir().unwrap();
    let fleet_of = |side: &str| -> PathBuf {
        let dir = t.path().join(side);
        std::fs::create_dir_all(&dir).unwrap();
        let first = common::two_releases(&dir);
        sidecar(&first);
        let repo = dir.join("repo");
        for k in 1..runs {
            sidecar(&package(&repo, &format!("4.4.{}", 16 + k), 20, 50_000));
        }
        nodes(&dir, 200);
        dir
    };
    // Two fleets, both one patch further after each pair of runs; the builds swap fleets
    // every run, so that neither keeps the one that happens to be slower (measured: the
    // same binary on both sides came out 1.12 with fixed fleets).
    let fleets = [fleet_of("a"), fleet_of("b")];
    let apply = |bin: Command, dir: &Path, k: usize| {
        let to = format!("4.4.{}", 16 + k);
        let mut ap = bin;
        ap.arg("apply")
            .arg(plan(dir, 200, 10, &to, ""))
            .arg("--yes");
        let d = time(ap).as_secs_f64();
        let link = std::fs::read_link(dir.join("n199/permanent")).unwrap();
        assert_eq!(link, Path::new("releases").join(&to));
        d
    };
    let (n, b) = common::pair(
        runs,
        |k| apply(fleetup(), &fleets[k % 2], k),
        |k| apply(Command::new(before), &fleets[(k + 1) % 2], k),
    );
    println!(
        "apply to 200 nodes: this build {} s, {label} {} s, ratio {} (target <= 1.10)",
        common::spread(&n, 1.0, 2),
        common::spread(&b, 1.0, 2),
        common::paired_ratios(&n, &b)
    );
    common::row([
        "`apply` to 200 local nodes, this build against an earlier one (same plan and packages)",
        &format!("{} s", common::spread(&n, 1.0, 2)),
        &format!("{label}: {} s", common::spread(&b, 1.0, 2)),
        &common::paired_ratios(&n, &b),
        "≤ 1.1",
    ]);
}

fn health_wait(runs: usize) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for p in 15..=15 + runs {
        package(&repo, &format!("4.4.{p}"), 1, 100);
    }
    nodes(dir, 100);
    let ideal = 0.3 * (100f64 / 20.0).ceil();
    let d: Vec<f64> = (0..runs)
        .map(|k| {
            let mut ap = fleetup();
            ap.arg("apply")
                .arg(plan(
                    dir,
                    100,
                    20,
                    &format!("4.4.{}", 16 + k),
                    "health:\n  command: [\"sleep\", \"0.3\"]\n  timeout: 30s\n",
                ))
                .arg("--yes");
            time(ap).as_secs_f64()
        })
        .collect();
    let ratio: Vec<f64> = d.iter().map(|x| x / ideal).collect();
    println!(
        "health wait, 100 nodes x 0.3 s at max_parallel 20: {} s, ideal {ideal:.2} s, ratio {} (target <= 1.30)",
        common::spread(&d, 1.0, 2),
        common::spread(&ratio, 1.0, 2)
    );
    common::row([
        "health wait: 100 nodes, 0.3 s check, max_parallel 20",
        &format!("{} s", common::spread(&d, 1.0, 2)),
        &format!("ideal ceil(100/20) × 0.3 s = {ideal:.2} s"),
        &common::spread(&ratio, 1.0, 2),
        "≤ 1.3",
    ]);
}

fn main() {
    common::require(&["unzip", "xargs", "bash"]);
    let runs = common::runs();
    apply_vs_shell(runs);
    health_wait(runs);
    if let Ok(before) = std::env::var("FLEETUP_BENCH_BEFORE") {
        let label =
            std::env::var("FLEETUP_BENCH_BEFORE_LABEL").unwrap_or_else(|_| format!("`{before}`"));
        apply_vs_before(runs, Path::new(&before), &label);
    }
}
