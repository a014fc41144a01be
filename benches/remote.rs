//! Remote nodes over loopback SSH, against an honest baseline measured in the same run:
//!
//! apply to 50 remote nodes (1 MB, 20-file package, `max_parallel: 10`, no health wait,
//! no hook) against a shell baseline of `xargs -P10` running one `ssh` per node that
//! streams the package and unpacks it with `unzip` (target: within 1.5×).
//!
//! fleetup is measured twice: on a host that has never seen it (the run copies fleetup
//! itself and the package there first), and again on a second set of nodes once both
//! are on the host. The sshd is a real OpenSSH server on 127.0.0.1 with throwaway keys.
//!
//! Run: `cargo bench --bench remote` (needs /usr/sbin/sshd, ssh, bash, xargs, unzip).

mod common;
#[path = "../tests/common/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use std::path::{Path, PathBuf};

use common::{fleetup, time};
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 50;

/// Polls `cond` until it holds or `limit` passes (used by the sshd helper).
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// `NODES` stores on 4.4.15 under `dir/<set>`, and a plan that reaches them over SSH.
fn remote_fleet(dir: &Path, set: &str, s: &sshd::Sshd) -> PathBuf {
    let repo = dir.join("repo");
    let mut nodes = String::new();
    for i in 0..NODES {
        let root = dir.join(set).join(format!("n{i}"));
        common::node_on_4_4_15(&root, &repo);
        nodes.push_str(&format!(
            "  - {{ name: n{i}, ssh: \"{}\", root: {} }}\n",
            s.addr(),
            root.display()
        ));
    }
    let plan = dir.join(format!("{set}.yaml"));
    std::fs::write(
        &plan,
        format!(
            "plan: 1\nname: {set}\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             ssh_config: {}\nrollout:\n  max_parallel: 10\n  waves: [\"100%\"]\nnodes:\n{nodes}",
            s.config().display()
        ),
    )
    .unwrap();
    plan
}

fn main() {
    common::require(&["unzip", "xargs", "bash", "ssh"]);
    let s = sshd::Sshd::start();
    let t = tempfile::tempdir().unwrap();
    let pkg = common::two_releases(t.path());
    println!("{NODES} nodes behind one sshd on 127.0.0.1");
    let cold = remote_fleet(t.path(), "cold", &s);
    let warm = remote_fleet(t.path(), "warm", &s);

    // The baseline: one ssh per node, ten at a time, streaming the package into unzip.
    let base = t.path().join("shell");
    for i in 0..NODES {
        std::fs::create_dir_all(base.join(format!("n{i}/releases"))).unwrap();
    }
    let node_sh = t.path().join("node.sh");
    std::fs::write(
        &node_sh,
        format!(
            "#!/bin/sh\nssh -F {cfg} -p {port} -o BatchMode=yes 127.0.0.1 \
             \"r={base}/n$1/releases; cat > \\$r/p.zip && unzip -q \\$r/p.zip -d \\$r/4.4.16 \
             && ln -sfn releases/4.4.16 \\$r/../current.tmp && mv -T \\$r/../current.tmp \\$r/../current\" < {pkg}\n",
            cfg = s.config().display(),
            port = s.port,
            base = base.display(),
            pkg = pkg.display(),
        ),
    )
    .unwrap();
    let script = format!(
        "seq 0 {} | xargs -P10 -n1 sh {}",
        NODES - 1,
        node_sh.display()
    );
    let mut sh = Command::new("bash");
    sh.arg("-c").arg(&script);
    let shell = time(sh);
    for i in 0..NODES {
        assert!(
            base.join(format!("n{i}/current/lib/f000")).exists(),
            "the baseline did not unpack node {i}"
        );
    }

    let run = |plan: &Path| {
        let mut c = fleetup();
        c.arg("apply").arg(plan).arg("--yes");
        time(c)
    };
    let first = run(&cold);
    let again = run(&warm);
    for set in ["cold", "warm"] {
        let root = t.path().join(set).join("n0");
        assert_eq!(
            std::fs::read_link(root.join("permanent")).unwrap(),
            Path::new("releases/4.4.16")
        );
    }
    let (conns, sessions) = s.counts();
    println!(
        "apply to {NODES} remote nodes, max_parallel 10: shell xargs -P10 ssh {:.2} s",
        shell.as_secs_f64()
    );
    println!(
        "  fleetup, first contact (copies itself and the package): {:.2} s, ratio {:.2} (target <= 1.50)",
        first.as_secs_f64(),
        first.as_secs_f64() / shell.as_secs_f64()
    );
    println!(
        "  fleetup, host already has both: {:.2} s, ratio {:.2} (target <= 1.50)",
        again.as_secs_f64(),
        again.as_secs_f64() / shell.as_secs_f64()
    );
    println!(
        "  sshd saw {conns} authenticated connections and {sessions} sessions in all \
         (setup and baseline included)"
    );
}
