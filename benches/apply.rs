//! Fleet runs against honest baselines, measured side by side in one run:
//!
//! 1. apply to 200 local nodes (1 MB, 20-file package, max_parallel 10, no health wait)
//!    against a shell baseline doing the same copy, unzip and link switch with
//!    `xargs -P10` (target: within 1.5×);
//! 2. waiting on health: 100 nodes whose check takes 0.3 s at max_parallel 20, against
//!    the ideal ceil(100/20) × 0.3 s (target: within 1.3×);
//! 3. `fleetup plan` on a 10,000-node plan: peak memory (target: under 64 MB).
//!
//! Run: `cargo bench --bench apply` (needs bash, xargs and unzip).

mod common;

use std::path::{Path, PathBuf};

use common::{fleetup, package, time};
use std::process::Command;

/// `n` nodes on 4.4.15 and a plan to 4.4.16 with the given extra YAML.
fn fleet(dir: &Path, n: usize, max_parallel: usize, extra: &str) -> PathBuf {
    let repo = dir.join("repo");
    for i in 0..n {
        common::node_on_4_4_15(&dir.join(format!("n{i}")), &repo);
    }
    let mut plan = format!(
        "plan: 1\nname: bench\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\nrollout:\n  max_parallel: {max_parallel}\n{extra}nodes:\n"
    );
    for i in 0..n {
        plan.push_str(&format!("  - {{ name: n{i}, root: ./n{i} }}\n"));
    }
    let p = dir.join("plan.yaml");
    std::fs::write(&p, plan).unwrap();
    p
}

fn apply_vs_shell() {
    let t = tempfile::tempdir().unwrap();
    let pkg = common::two_releases(t.path());
    let plan = fleet(t.path(), 200, 10, "");
    // The baseline: the same nodes' work done by a shell loop with xargs -P10.
    let base = t.path().join("shell");
    for i in 0..200 {
        std::fs::create_dir_all(base.join(format!("n{i}/releases"))).unwrap();
    }
    let script = format!(
        "ls -d {}/n* | xargs -P10 -I{{}} sh -c 'cp {pkg} {{}}/releases/ && unzip -q {{}}/releases/$(basename {pkg}) -d {{}}/releases/4.4.16 && ln -sfn releases/4.4.16 {{}}/current.tmp && mv -T {{}}/current.tmp {{}}/current'",
        base.display(),
        pkg = pkg.display()
    );
    let mut sh = Command::new("bash");
    sh.arg("-c").arg(&script);
    let shell = time(sh);
    let mut ap = fleetup();
    ap.arg("apply").arg(&plan).arg("--yes");
    let fleet = time(ap);
    println!(
        "apply to 200 nodes: fleetup {:.2} s, shell xargs -P10 {:.2} s, ratio {:.2} (target <= 1.50)",
        fleet.as_secs_f64(),
        shell.as_secs_f64(),
        fleet.as_secs_f64() / shell.as_secs_f64()
    );
}

fn health_wait() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    package(&repo, "4.4.15", 1, 100);
    package(&repo, "4.4.16", 1, 100);
    let plan = fleet(
        t.path(),
        100,
        20,
        "health:\n  command: [\"sleep\", \"0.3\"]\n  timeout: 30s\n",
    );
    let mut ap = fleetup();
    ap.arg("apply").arg(&plan).arg("--yes");
    let d = time(ap);
    let ideal = 0.3 * (100f64 / 20.0).ceil();
    println!(
        "health wait, 100 nodes x 0.3 s at max_parallel 20: {:.2} s, ideal {ideal:.2} s, ratio {:.2} (target <= 1.30)",
        d.as_secs_f64(),
        d.as_secs_f64() / ideal
    );
}

// The child is reaped by wait4, which also gives its rusage; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn plan_memory() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("repo")).unwrap();
    package(&t.path().join("repo"), "4.4.16", 1, 100);
    let mut plan =
        String::from("plan: 1\nname: big\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nnodes:\n");
    for i in 0..10_000 {
        plan.push_str(&format!(
            "  - {{ name: node-{i}, root: /srv/fleetup-bench/node-{i}, tags: [rack-{}] }}\n",
            i % 20
        ));
    }
    std::fs::write(t.path().join("plan.yaml"), plan).unwrap();
    // Measured through a small shell so the child's peak is its own, not inherited.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} plan {} >/dev/null & pid=$!; peak=0; while kill -0 $pid 2>/dev/null; do r=$(awk '/VmHWM/ {{print $2}}' /proc/$pid/status 2>/dev/null); [ -n \"$r\" ] && [ \"$r\" -gt \"$peak\" ] && peak=$r; sleep 0.01; done; echo $peak",
            env!("CARGO_BIN_EXE_fleetup"),
            t.path().join("plan.yaml").display()
        ))
        .output()
        .unwrap();
    let kb: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    println!(
        "fleetup plan, 10,000 nodes: peak {:.1} MB (sampled VmHWM; target < 64 MB, ratio {:.2})",
        kb / 1024.0,
        kb / 1024.0 / 64.0
    );
}

fn main() {
    common::require(&["unzip", "xargs", "bash"]);
    apply_vs_shell();
    health_wait();
    plan_memory();
}
