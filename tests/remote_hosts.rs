//! Remote fleets as they are: one node per host. Each "host" is a loopback address of
//! its own (127.0.0.2, .3, …) served by a real OpenSSH server, with a work directory of
//! its own, so each gets its own connection, its own copy of fleetup's agent and its own
//! package cache. The nodes' stores live in the test's directory and are reached only
//! through ssh.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sshd::Sshd;
use common::*;

struct Fleet {
    sshd: Sshd,
    dir: tempfile::TempDir,
}

/// `n` hosts with one node each (n1 on the first host, …), on 4.4.15, and releases
/// 4.4.15 and 4.4.16 in ./repo.
fn fleet(n: usize) -> Fleet {
    let addrs: Vec<String> = (0..n).map(|i| format!("127.0.0.{}", i + 2)).collect();
    let sshd = Sshd::hosts(&addrs);
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    local_fleet(dir.path(), &names, &["4.4.15", "4.4.16"]);
    Fleet { sshd, dir }
}

impl Fleet {
    /// A plan reaching node i on host i; `extra` goes under `rollout:`, `node(i)` after
    /// each node's keys.
    fn plan(&self, rollout: &str, node: &dyn Fn(usize) -> String) -> PathBuf {
        let mut nodes = String::new();
        for (i, addr) in self.sshd.host_addrs().iter().enumerate() {
            nodes.push_str(&format!(
                "  - {{ name: n{}, ssh: \"{addr}\", root: {}{} }}\n",
                i + 1,
                self.root(i).display(),
                node(i)
            ));
        }
        let text = format!(
            "plan: 1\nname: hosts\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             ssh_config: {}\nrollout:\n  max_parallel: 4\n{rollout}nodes:\n{nodes}",
            self.sshd.config().display()
        );
        let p = self.dir.path().join("plan.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn root(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{}", i + 1))
    }

    fn permanent(&self, i: usize) -> Option<String> {
        link(&self.root(i), "permanent")
    }

    fn host_dir(&self, i: usize) -> PathBuf {
        self.sshd.host_dir(&self.sshd.addrs[i])
    }
}

fn apply_json(plan: &Path) -> (Option<i32>, serde_json::Value, String) {
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(plan)
            .args(["--yes", "--format", "json"]),
    );
    let doc = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, doc, err)
}

fn target<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

/// Runs `cmd` while counting the `ssh` processes it has alive at once: the most seen.
fn most_ssh_alive(cmd: &mut std::process::Command) -> (std::process::Output, usize) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut most = 0;
        while !d2.load(std::sync::atomic::Ordering::SeqCst) {
            let n = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|e| {
                    let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                    // pid (comm) state ppid …
                    let Some((head, rest)) = stat.rsplit_once(')') else {
                        return false;
                    };
                    let ppid = rest.split_whitespace().nth(1).unwrap_or("");
                    head.ends_with("(ssh") && ppid == pid.to_string()
                })
                .count();
            most = most.max(n);
            std::thread::sleep(Duration::from_millis(2));
        }
        most
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    (out, sampler.join().unwrap())
}

#[test]
fn each_host_costs_one_connection_and_one_session_for_a_whole_run() {
    let f = fleet(3);
    let plan = f.plan("", &|_| String::new());
    let (code, doc, err) = apply_json(&plan);
    assert_eq!(code, Some(0), "{doc}{err}");
    for i in 0..3 {
        assert_eq!(target(&doc, &format!("n{}", i + 1))["outcome"], "upgraded");
        assert_eq!(f.permanent(i).as_deref(), Some("releases/4.4.16"));
        // Each host got its own agent and its own copy of the package.
        let bins = std::fs::read_dir(f.host_dir(i).join("bin"))
            .unwrap()
            .count();
        assert_eq!(bins, 1, "host {i}");
        assert!(f.host_dir(i).join("packages").is_dir(), "host {i}");
    }
    // The reads before the run, each node's lock and every step: one connection and one
    // session per host, nothing more.
    let (conns, sessions) = f.sshd.counts();
    assert_eq!((conns, sessions), (3, 3), "{}", f.sshd.log());
}

#[test]
fn the_connection_cap_bounds_ssh_processes_and_hosts_are_connected_again() {
    let f = fleet(3);
    let plan = f.plan("  max_connections: 1\n", &|_| String::new());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"));
    cmd.arg("apply").arg(&plan).arg("--yes");
    let (out, most) = most_ssh_alive(&mut cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..3 {
        assert_eq!(f.permanent(i).as_deref(), Some("releases/4.4.16"));
    }
    assert!(most >= 1, "the sampler saw no ssh at all");
    assert_eq!(
        most, 1,
        "more ssh processes alive at once than max_connections"
    );
    // Read, let go, connected again for the run: more connections than hosts.
    let (conns, _) = f.sshd.counts();
    assert!(conns > 3, "{conns} connections: {}", f.sshd.log());

    // Without a cap below the fleet's size, the same reads run in parallel.
    let f = fleet(3);
    let plan = f.plan("", &|_| String::new());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"));
    cmd.arg("plan").arg(&plan);
    let (out, most) = most_ssh_alive(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    assert!(most <= 3, "{most}");
}

#[test]
fn a_remote_store_another_fleetup_holds_refuses_apply_and_resume_before_anything_changes() {
    let f = fleet(3);
    let plan = f.plan("", &|_| String::new());
    // Another holder of n2's lock, as a second fleetup would be (flock on the same file).
    let lock = f.root(1).join("releases/.lock");
    std::fs::write(&lock, "held by pid 4242 on elsewhere, run other-run\n").unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        fleetup::store::lock::holder_of(&f.root(1).join("releases")).is_some()
    }));
    let before: Vec<_> = (0..3).map(|i| snapshot(&f.root(i))).collect();
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(err.contains("fleetup::store::locked"), "{err}");
    assert!(
        err.contains("node `n2`") && err.contains("run other-run"),
        "{err}"
    );
    for (i, was) in before.iter().enumerate() {
        assert_eq!(&snapshot(&f.root(i)), was, "n{} changed", i + 1);
    }
    let runs = f.dir.path().join("state/runs");
    assert_eq!(
        std::fs::read_dir(&runs).map_or(0, |d| d.count()),
        0,
        "a refused run was journalled"
    );

    // A run stopped before n3 (the lock was let go, then taken again) is not resumed
    // while the lock is held: resume checks remote locks as apply does.
    let _ = holder.kill();
    let _ = holder.wait();
    let state = f.dir.path().join("state");
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(0), "{out}{err}");
    let run = cut_journal(&state, "n3");
    let cut = state.join("runs").join(&run).join("journal.jsonl");
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(f.root(2).join("releases/.lock"))
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        fleetup::store::lock::holder_of(&f.root(2).join("releases")).is_some()
    }));
    let journal = std::fs::read_to_string(&cut).unwrap();
    let (code, out, err) = output(fleetup().args(["resume", "--state"]).arg(&state));
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(err.contains("node `n3`"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&cut).unwrap(),
        journal,
        "the journal changed"
    );
}

#[test]
fn with_preflight_wave_each_wave_is_read_right_before_it_in_the_session_that_upgrades_it() {
    // n3 is pinned to a release it does not run: found only when its wave comes.
    let f = fleet(3);
    let pin = |i: usize| {
        if i == 2 {
            ", from: 4.4.14".to_owned()
        } else {
            String::new()
        }
    };
    // With the default, nothing starts: every store is read before any host changes.
    let plan = f.plan("  waves: [1, 2]\n", &pin);
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(5), "{out}{err}");
    assert_eq!(f.permanent(0).as_deref(), Some("releases/4.4.15"));

    let plan = f.plan("  waves: [1, 2]\n  preflight: wave\n", &pin);
    let (conns, sessions) = f.sshd.counts();
    let (code, doc, err) = apply_json(&plan);
    assert_eq!(code, Some(3), "{doc}{err}");
    // Wave 1 went; wave 2 was read, refused at n3, and none of it started.
    assert_eq!(target(&doc, "n1")["outcome"], "upgraded", "{doc}");
    assert_eq!(f.permanent(0).as_deref(), Some("releases/4.4.16"));
    let n3 = target(&doc, "n3");
    assert_eq!(n3["outcome"], "failed", "{doc}");
    assert_eq!(n3["code"], "fleetup::plan::from-mismatch", "{doc}");
    assert!(
        n3["detail"]
            .as_str()
            .unwrap()
            .starts_with("preflight of wave 2:"),
        "{n3}"
    );
    assert_eq!(target(&doc, "n2")["outcome"], "skipped", "{doc}");
    assert_eq!(f.permanent(1).as_deref(), Some("releases/4.4.15"));
    assert_eq!(f.permanent(2).as_deref(), Some("releases/4.4.15"));
    // Each host read and worked on over one connection and one session: wave 2's reads
    // were all it took of n2 and n3.
    let (conns2, sessions2) = f.sshd.counts();
    assert_eq!(
        (conns2 - conns, sessions2 - sessions),
        (3, 3),
        "{}",
        f.sshd.log()
    );
}
