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
    // One connection per host, several alive at once: never one at a time, never more
    // than the hosts (issue 29: `most <= 3` alone held with no ssh at all).
    assert!((2..=3).contains(&most), "{most}");
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
        fleetup::lock::holder_of(&f.root(1).join("releases")).is_some()
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
        fleetup::lock::holder_of(&f.root(2).join("releases")).is_some()
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

/// Points `plan` at the `agents` directory beside it.
fn with_agents(plan: &Path) {
    let text = std::fs::read_to_string(plan).unwrap();
    std::fs::write(plan, text.replace("rollout:", "agents: ./agents\nrollout:")).unwrap();
}

/// This machine's `fleetup-<os>-<arch>`, as the agents directory names builds.
fn agent_name() -> String {
    format!(
        "fleetup-{}-{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn short_digest(path: &Path) -> String {
    fleetup::package::sha256_file(path).unwrap()[..16].to_owned()
}

#[test]
fn an_agent_from_the_agents_directory_is_chosen_by_the_hosts_platform() {
    let f = fleet(1);
    // A build of its own for the host: this fleetup with a few bytes more, so that its
    // digest differs from the controller's.
    let agents = f.dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let build = agents.join(agent_name());
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_fleetup")).unwrap();
    bytes.extend_from_slice(b"\nbuilt for the host\n");
    std::fs::write(&build, bytes).unwrap();
    let plan = f.plan("", &|_| String::new());
    with_agents(&plan);
    let (code, doc, err) = apply_json(&plan);
    assert_eq!(code, Some(0), "{doc}{err}");
    let bins: Vec<String> = std::fs::read_dir(f.host_dir(0).join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(bins, vec![format!("fleetup-{}", short_digest(&build))]);
}

#[test]
fn a_build_the_hosts_cannot_run_fails_them_with_what_they_said_and_changes_nothing() {
    let f = fleet(2);
    // As a binary linked against a newer C library than the host's fails to start.
    let agents = f.dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let build = agents.join(agent_name());
    std::fs::write(
        &build,
        "#!/bin/sh\necho \"$0: /lib/libc.so.6: version 'GLIBC_2.99' not found\" >&2\nexit 1\n",
    )
    .unwrap();
    let before: Vec<_> = (0..2).map(|i| snapshot(&f.root(i))).collect();
    // Both hosts are tried: neither failure stops the other.
    let plan = f.plan("  max_failures: 2\n", &|_| String::new());
    with_agents(&plan);
    let (code, doc, err) = apply_json(&plan);
    assert_eq!(code, Some(3), "{doc}{err}");
    for (i, was) in before.iter().enumerate() {
        let t = target(&doc, &format!("n{}", i + 1));
        assert_eq!(t["outcome"], "failed", "{t}");
        assert_eq!(t["code"], "fleetup::remote::platform", "{t}");
        let detail = t["detail"].as_str().unwrap();
        assert!(
            detail.contains("cannot run the agent") && detail.contains("GLIBC_2.99"),
            "{detail}"
        );
        assert_eq!(&snapshot(&f.root(i)), was);
        // Nothing was left installed on the host: the copy that did not run is removed.
        let left = std::fs::read_dir(f.host_dir(i).join("bin")).map_or(0, |d| d.count());
        assert_eq!(left, 0, "host {i}");
    }
    // `plan` says what to do about it.
    let (code, out, err) = output(fleetup().arg("plan").arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("cannot run the agent"), "{out}");
}

#[test]
fn a_host_whose_agent_does_not_start_fails_alone() {
    let f = fleet(2);
    // Host 2 cannot keep an agent at all: where its agents go is a file.
    std::fs::create_dir_all(f.host_dir(1)).unwrap();
    std::fs::write(f.host_dir(1).join("bin"), "not a directory").unwrap();
    let plan = f.plan("  max_failures: 1\n", &|_| String::new());
    let (code, doc, err) = apply_json(&plan);
    assert_eq!(code, Some(3), "{doc}{err}");
    assert_eq!(target(&doc, "n1")["outcome"], "upgraded", "{doc}");
    let n2 = target(&doc, "n2");
    assert_eq!(n2["outcome"], "failed", "{n2}");
    // Said as the host said it: its agent cannot be put in place.
    assert!(
        n2["detail"]
            .as_str()
            .unwrap()
            .contains("cannot create directory"),
        "{n2}"
    );
    assert_eq!(f.permanent(1).as_deref(), Some("releases/4.4.15"));
}

/// Issue 29, defect 5: a damaged copy of the very agent the controller asks for, cached on
/// a host, is checked against its SHA-256 before it runs, found damaged, and sent again:
/// the host upgrades, and its cached agent is whole afterwards.
#[test]
fn a_damaged_cached_agent_is_checked_and_sent_again() {
    let f = fleet(2);
    let agent = Path::new(env!("CARGO_BIN_EXE_fleetup"));
    let bin = f.host_dir(1).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let damaged = bin.join(format!("fleetup-{}", short_digest(agent)));
    // Runs (so only a check before it runs can tell), but is not the agent.
    std::fs::write(&damaged, "#!/bin/sh\necho damaged >&2\nexit 1\n").unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&damaged)
        .status()
        .unwrap();
    let plan = f.plan("", &|_| String::new());
    let (code, doc, err) = apply_json(&plan);
    assert_eq!(code, Some(0), "{doc}{err}");
    assert_eq!(target(&doc, "n2")["outcome"], "upgraded", "{doc}");
    assert_eq!(
        fleetup::package::sha256_file(&damaged).unwrap(),
        fleetup::package::sha256_file(agent).unwrap()
    );
}

/// Makes `n` fake agents and `n` fake packages on a host, each a day older than the one
/// before.
fn stale_cache(host: &Path, n: usize) {
    for k in 0..n {
        let bin = host.join("bin").join(format!("fleetup-{:016x}", k + 1));
        let pkg = host.join("packages").join(format!("{:064x}", k + 1));
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(&bin, "old agent").unwrap();
        std::fs::write(pkg.join(package_name("4.4.1")), "old package").unwrap();
        for p in [&bin, &pkg] {
            let ok = std::process::Command::new("touch")
                .arg("-d")
                .arg(format!("{} days ago", k + 1))
                .arg(p)
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn host_caches_are_pruned_after_every_session_and_by_node_gc() {
    let f = fleet(1);
    let host = f.host_dir(0);
    stale_cache(&host, 6);
    let plan = f.plan("", &|_| String::new());
    let (code, doc, err) = apply_json(&plan);
    assert_eq!(code, Some(0), "{doc}{err}");
    // The run's own agent and package, and the three newest of the rest.
    let own = format!(
        "fleetup-{}",
        short_digest(Path::new(env!("CARGO_BIN_EXE_fleetup")))
    );
    let agents = names(&host.join("bin"));
    assert_eq!(agents.len(), 4, "{agents:?}");
    assert!(agents.contains(&own), "{agents:?}");
    for k in 1..=3 {
        assert!(agents.contains(&format!("fleetup-{k:016x}")), "{agents:?}");
    }
    let sent =
        fleetup::package::sha256_file(&f.dir.path().join("repo").join(package_name("4.4.16")))
            .unwrap();
    let packages = names(&host.join("packages"));
    assert_eq!(packages.len(), 4, "{packages:?}");
    assert!(packages.contains(&sent), "{packages:?}");

    // By hand, keeping one besides the agent that does the pruning.
    let (code, out, err) = output(
        fleetup()
            .args([
                "node",
                "gc",
                "--keep",
                "1",
                "--ssh",
                &f.sshd.host_addrs()[0],
            ])
            .arg("--ssh-config")
            .arg(f.sshd.config()),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("Removed bin/fleetup-0000000000000003"),
        "{out}"
    );
    assert!(out.contains("Removed 5 entries and kept 3"), "{out}");
    assert_eq!(names(&host.join("bin")).len(), 2);
    // Of the packages, the newest: the one the run sent.
    assert_eq!(names(&host.join("packages")), vec![sent]);
}
