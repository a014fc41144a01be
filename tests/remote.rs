//! Remote nodes (SPEC §7) against a real OpenSSH server on 127.0.0.1, started per test
//! with throwaway keys. Each "remote" node's store lives in the test's directory, and
//! fleetup reaches it only through ssh: its activate hook starts an HTTP server there,
//! checked over HTTP from the controller.

mod common;

use std::path::PathBuf;

use common::sshd::Sshd;
use common::*;

struct Remote {
    sshd: Sshd,
    dir: tempfile::TempDir,
    nodes: Vec<(String, PathBuf, u16)>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Every server any of its nodes started, whether its pid file names it or not.
        kill_processes_under(self.dir.path());
    }
}

/// `n` nodes on 4.4.15 behind one SSH server; releases 4.4.15 and 4.4.16 in ./repo.
/// The first node is installed over SSH (`fleetup node upgrade --ssh`), the others here.
fn remote_fleet(n: usize, broken16: bool) -> Remote {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    served_release(&repo, "4.4.15", true);
    served_release(&repo, "4.4.16", !broken16);
    let mut r = Remote {
        sshd,
        dir,
        nodes: Vec::new(),
    };
    for i in 1..=n {
        let root = r.dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&root).unwrap();
        let port = free_port();
        std::fs::write(root.join("port"), port.to_string()).unwrap();
        std::fs::write(
            root.join("node.toml"),
            "product = \"emqx\"\n[activate]\ncommand = [\"{root}/current/bin/ctl\"]\ntimeout = \"10s\"\n",
        )
        .unwrap();
        r.nodes.push((format!("n{i}"), root.clone(), port));
        let mut cmd = fleetup();
        cmd.args(["node", "upgrade", "4.4.15", "--root"])
            .arg(&root)
            .arg("--repo")
            .arg(&repo);
        if i == 1 {
            cmd.args(["--ssh", &r.sshd.addr(), "--ssh-config"])
                .arg(r.sshd.config());
        }
        let (code, out, err) = output(&mut cmd);
        assert_eq!(code, Some(0), "{out}{err}");
        wait_status(port, "4.4.15");
    }
    r
}

impl Remote {
    /// A plan whose nodes are all reached over SSH; `node_ssh(i)` may override an address.
    fn plan(&self, extra: &str, node_ssh: &dyn Fn(usize) -> String) -> PathBuf {
        let mut nodes = String::new();
        for (i, (name, root, port)) in self.nodes.iter().enumerate() {
            nodes.push_str(&format!(
                "  - {{ name: {name}, ssh: \"{}\", root: {}, vars: {{ port: {port} }} }}\n",
                node_ssh(i),
                root.display()
            ));
        }
        let text = format!(
            "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             ssh_config: {}\n{extra}\
             rollout:\n  max_parallel: 4\n  max_failures: 1\n\
             health:\n  http: \"http://{{host}}:{{port}}/status\"\n  timeout: 3s\n  interval: 100ms\n\
             hooks:\n  activate: [\"{{root}}/current/bin/ctl\"]\n  timeout: 10s\nnodes:\n{nodes}",
            self.sshd.config().display()
        );
        let p = self.dir.path().join("plan.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn here(&self) -> String {
        self.sshd.addr()
    }

    /// `apply PLAN --yes --format json`: exit code, the JSON document, stderr.
    fn apply_json(&self, plan: &std::path::Path) -> (Option<i32>, serde_json::Value, String) {
        let (code, out, err) = output(
            fleetup()
                .arg("apply")
                .arg(plan)
                .args(["--yes", "--format", "json"]),
        );
        (code, json(&out), err)
    }

    /// Node `i` lists `listing` and its server answers `serving`.
    fn expect(&self, i: usize, listing: &str, serving: &str) {
        assert_eq!(self.versions(i), listing);
        wait_status(self.nodes[i].2, serving);
    }

    /// Starts `apply --format json` with an activate hook that takes 3 s, and returns
    /// once the hook runs on the (first) node.
    fn apply_with_slow_hook(&self) -> (PathBuf, std::process::Child) {
        let plan = self.plan("", &|_| self.here());
        let text = std::fs::read_to_string(&plan).unwrap().replace(
            "activate: [\"{root}/current/bin/ctl\"]",
            "activate: [\"sh\", \"-c\", \"touch {root}/hook-started; sleep 3; exec {root}/current/bin/ctl\"]",
        );
        std::fs::write(&plan, text).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = self.nodes[0].1.join("hook-started");
        assert!(wait_until(std::time::Duration::from_secs(30), || started.exists()));
        (plan, child)
    }

    fn versions(&self, i: usize) -> String {
        let (_, out, _) = output(
            fleetup()
                .args(["node", "versions", "--root"])
                .arg(&self.nodes[i].1),
        );
        out
    }
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_rollout_reaches_several_remote_nodes_over_one_connection() {
    let r = remote_fleet(3, false);
    let plan = r.plan("", &|_| r.here());

    // The dry run reads each remote store (with `cat`, copying nothing).
    let (code, out, err) = output(fleetup().arg("plan").arg(&plan).args(["--format", "json"]));
    assert_eq!(code, Some(0), "{out}{err}");
    let doc = json(&out);
    let dry = doc["waves"][0].as_array().unwrap();
    assert_eq!(dry.len(), 3, "{doc}");
    for t in dry {
        assert_eq!(t["from"], "4.4.15", "{t}");
        assert_eq!(t["from_source"], "live", "{t}");
        assert_eq!(t["rules"], "passed", "{t}");
    }

    let (conns, sessions_before) = r.sshd.counts();
    let (code, doc, err) = r.apply_json(&plan);
    assert_eq!(code, Some(0), "{doc}{err}");
    for (i, (name, _, _)) in r.nodes.iter().enumerate() {
        assert_eq!(target(&doc, name)["outcome"], "upgraded", "{doc}");
        r.expect(
            i,
            "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.15\told\n",
            "4.4.16",
        );
    }
    // One authenticated connection and one session for the whole run: the reads before
    // it, every node's lock and every step travel as channels of the host's one agent.
    let (conns_after, sessions) = r.sshd.counts();
    assert_eq!(conns_after - conns, 1, "{}", r.sshd.log());
    assert_eq!(sessions - sessions_before, 1, "{}", r.sshd.log());
    // The package is kept on the host once, under its digest (4.4.15 came with setup).
    let packages: Vec<_> = std::fs::read_dir(r.sshd.remote_dir().join("packages"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join(package_name("4.4.16")).exists())
        .collect();
    assert_eq!(packages.len(), 1);
    let digest = packages[0].file_name().to_string_lossy().into_owned();
    let sent = packages[0].path().join(package_name("4.4.16"));
    assert_eq!(
        fleetup::package::sha256_file(&sent).unwrap(),
        digest,
        "the package kept on the host is not the one sent"
    );
    // The master connection was told to exit at the end (not left to ControlPersist).
    let closed = wait_until(std::time::Duration::from_secs(5), || {
        let log = r.sshd.log();
        log.matches("Disconnected from user").count() == log.matches("Accepted publickey").count()
    });
    assert!(closed, "a connection is still open:\n{}", r.sshd.log());

    // `rollback RUN` reaches the same hosts: every node back on 4.4.15, healthy there.
    let run = doc["run"].as_str().unwrap().to_owned();
    let (code, out, err) = output(
        fleetup()
            .args(["rollback", &run, "--state"])
            .arg(r.dir.path().join("state")),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for i in 0..r.nodes.len() {
        r.expect(
            i,
            "Installed versions:\n* 4.4.16\told\n* 4.4.15\tpermanent\n",
            "4.4.15",
        );
    }
}

#[test]
fn a_broken_release_on_a_remote_node_is_rolled_back_there() {
    let r = remote_fleet(2, true);
    let plan = r.plan("", &|_| r.here());
    let (code, doc, err) = r.apply_json(&plan);
    assert_eq!(code, Some(3), "{doc}{err}");
    for (i, (name, _, _)) in r.nodes.iter().enumerate() {
        let t = target(&doc, name);
        assert_eq!(t["outcome"], "rolled-back", "{doc}");
        assert!(t["detail"].as_str().unwrap().contains("unhealthy"), "{t}");
        r.expect(
            i,
            "Installed versions:\n* 4.4.16\tunpacked\n* 4.4.15\tpermanent\n",
            "4.4.15",
        );
    }
}

#[test]
fn an_unreachable_port_fails_its_node_alone() {
    let r = remote_fleet(2, false);
    let closed = free_port();
    let plan = r.plan("", &|i| {
        if i == 1 {
            format!("127.0.0.1:{closed}")
        } else {
            r.here()
        }
    });
    let before = snapshot(&r.nodes[1].1);
    let (code, doc, err) = r.apply_json(&plan);
    assert_eq!(code, Some(3), "{doc}{err}");
    let bad = target(&doc, "n2");
    assert_eq!(bad["outcome"], "failed", "{doc}");
    let detail = bad["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("127.0.0.1:{closed}")) && detail.contains("Connection refused"),
        "{detail}"
    );
    assert_eq!(target(&doc, "n1")["outcome"], "upgraded", "{doc}");
    assert_eq!(
        snapshot(&r.nodes[1].1),
        before,
        "the unreachable node changed"
    );
}

#[test]
fn an_unknown_host_key_is_refused_and_nothing_changes() {
    let r = remote_fleet(1, false);
    let plan = r.plan("", &|_| r.here());
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        &r.sshd.config().display().to_string(),
        &r.sshd.config_unknown().display().to_string(),
    );
    std::fs::write(&plan, &text).unwrap();
    let before = snapshot(&r.nodes[0].1);
    let bins = || std::fs::read_dir(r.sshd.remote_dir().join("bin")).map_or(0, |d| d.count());
    let (conns, _) = r.sshd.counts();
    let (code, doc, err) = r.apply_json(&plan);
    assert_eq!(code, Some(3), "{doc}{err}");
    let t = target(&doc, "n1").clone();
    assert_eq!(t["outcome"], "failed");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("the host key is not in known_hosts"),
        "{t}"
    );
    assert_eq!(snapshot(&r.nodes[0].1), before, "the store changed");
    assert_eq!(
        r.sshd.counts().0,
        conns,
        "ssh authenticated to an unknown host"
    );
    assert_eq!(
        std::fs::read_to_string(r.sshd.config_unknown().with_file_name("empty_known_hosts"))
            .unwrap(),
        "",
        "strict checking must not learn the key"
    );

    // A first contact the plan chooses to trust: accept-new learns the key and goes on.
    std::fs::write(
        &plan,
        text.replace("ssh_config:", "ssh_host_keys: accept-new\nssh_config:"),
    )
    .unwrap();
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(bins() >= 1);
    assert!(
        std::fs::read_to_string(r.sshd.dir.path().join("empty_known_hosts"))
            .unwrap()
            .contains("127.0.0.1")
    );
}

#[test]
fn a_connection_dropped_mid_step_fails_the_node_with_a_clear_reason() {
    let r = remote_fleet(1, false);
    // The activate hook takes a while; the connection is cut while it runs.
    let (plan, child) = r.apply_with_slow_hook();
    r.sshd.cut_connections();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = target(&json(&stdout), "n1").clone();
    assert_eq!(t["outcome"], "failed", "{t}");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("the connection was lost during the install"),
        "{t}"
    );
    // The host finishes the step on its own (the store is never left half-changed), and
    // releases the lock when it cannot report back.
    let finished = wait_until(std::time::Duration::from_secs(20), || {
        !r.versions(0).contains("interrupted")
    });
    assert!(finished, "{}", r.versions(0));
    assert_eq!(
        r.versions(0),
        "Installed versions:\n* 4.4.16\tcurrent\n* 4.4.15\tpermanent\n"
    );
    // A new run picks the node up where the host left it.
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("already current"), "{out}");
    assert_eq!(
        r.versions(0),
        "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.15\told\n"
    );
}

#[test]
fn node_commands_reach_a_store_over_ssh() {
    let r = remote_fleet(1, false);
    let root = &r.nodes[0].1;
    let ssh = |args: &[&str]| {
        let mut c = fleetup();
        c.args(["node"])
            .args(args)
            .arg("--root")
            .arg(root)
            .args(["--ssh", &r.here(), "--ssh-config"])
            .arg(r.sshd.config());
        output(&mut c)
    };
    let (code, out, _) = ssh(&["versions"]);
    assert_eq!(code, Some(0));
    assert_eq!(out, "Installed versions:\n* 4.4.15\tpermanent\n");
    let repo = r.dir.path().join("repo");
    let (code, out, err) = ssh(&["upgrade", "4.4.16", "--repo", repo.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        out,
        format!(
            "Release 4.4.16 not found, attempting to unpack releases/{p}\nUnpacked successfully: \"4.4.16\"\nInstalled Release: 4.4.16\nMade release permanent: \"4.4.16\"\n",
            p = package_name("4.4.16")
        )
    );
    // The hook from the host's node.toml ran there.
    wait_status(r.nodes[0].2, "4.4.16");
    let (code, out, _) = ssh(&["versions", "--format", "json"]);
    assert_eq!(code, Some(0));
    assert_eq!(json(&out)["permanent"], "4.4.16");
    // Refusals keep their codes across the connection.
    let (code, _, err) = ssh(&["uninstall", "4.4.16"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("fleetup::store::state"), "{err}");
    let (code, _, err) =
        output(fleetup().args(["node", "versions", "--root", "/x", "--ssh=-oProxyCommand=x"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a host name"), "{err}");
}

#[test]
fn a_refused_key_fails_with_its_own_code_and_changes_nothing() {
    let s = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("stranger");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let config = std::fs::read_to_string(s.config()).unwrap().replace(
        &format!("{}/client_key", s.dir.path().display()),
        &key.display().to_string(),
    );
    let cfg = dir.path().join("ssh_config");
    std::fs::write(&cfg, config).unwrap();
    let (code, _, err) = output(
        fleetup()
            .args([
                "node",
                "versions",
                "--root",
                "/srv/x",
                "--ssh",
                &s.addr(),
                "--ssh-config",
            ])
            .arg(&cfg),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("fleetup::remote::auth") && err.contains("refused our key"),
        "{err}"
    );
    assert!(!s.remote_dir().join("bin").exists());
}

#[test]
fn a_from_pin_a_remote_node_does_not_match_refuses_the_run() {
    let r = remote_fleet(1, false);
    let plan = r.plan("", &|_| r.here());
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("vars: {", "from: 4.4.14, vars: {");
    std::fs::write(&plan, text).unwrap();
    let before = snapshot(&r.nodes[0].1);
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(
        err.contains("fleetup::plan::from-mismatch") && err.contains("runs 4.4.15"),
        "{err}"
    );
    assert_eq!(snapshot(&r.nodes[0].1), before);
    assert!(!r.dir.path().join("state").exists(), "a run was started");
}

#[test]
fn a_run_killed_mid_step_is_resumed_over_ssh() {
    let r = remote_fleet(1, false);
    let (_, mut child) = r.apply_with_slow_hook();
    // SIGKILL: no cleanup of any kind; its ssh sessions see their input end.
    child.kill().unwrap();
    child.wait().unwrap();
    let settled = wait_until(std::time::Duration::from_secs(20), || {
        !r.versions(0).contains("interrupted")
    });
    assert!(settled, "{}", r.versions(0));
    // The host's agent finished its step and let go of the lock: resume finishes the run.
    let (code, out, err) = output(
        fleetup()
            .args(["resume", "--state"])
            .arg(r.dir.path().join("state")),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    r.expect(
        0,
        "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.15\told\n",
        "4.4.16",
    );
}

#[test]
fn more_nodes_on_one_host_than_its_sshd_allows_sessions_queue_on_one_connection() {
    // sshd's default: 10 sessions per connection. 14 nodes at once, each holding its
    // session for a second: the master would refuse 4, and ssh would open a connection of
    // its own for each, had fleetup not queued them.
    let sshd = Sshd::with_max_sessions(10);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    served_release(&repo, "4.4.15", true);
    served_release(&repo, "4.4.16", true);
    let mut nodes = String::new();
    for i in 0..14 {
        let root = dir.path().join(format!("n{i}"));
        let (code, out, err) = output(
            fleetup()
                .args(["node", "upgrade", "4.4.15", "--root"])
                .arg(&root)
                .arg("--repo")
                .arg(&repo),
        );
        assert_eq!(code, Some(0), "{out}{err}");
        nodes.push_str(&format!(
            "  - {{ name: n{i}, ssh: \"{}\", root: {} }}\n",
            sshd.addr(),
            root.display()
        ));
    }
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "plan: 1\nname: many\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             ssh_config: {}\nrollout:\n  max_parallel: 14\n  waves: [\"100%\"]\n\
             hooks:\n  activate: [\"sleep\", \"1\"]\nnodes:\n{nodes}",
            sshd.config().display()
        ),
    )
    .unwrap();
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc = json(&out);
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 14, "{doc}");
    for t in targets {
        assert_eq!(t["outcome"], "upgraded", "{t}");
    }
    // Still one connection: a session the master refuses would make ssh open a new one.
    assert_eq!(sshd.counts().0, 1, "{}", sshd.log());
}

#[test]
fn a_fresh_remote_node_takes_the_build_of_its_hosts_platform() {
    let sshd = common::sshd::Sshd::start();
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    // The host is this machine: its platform as EMQX would name its build.
    let here = fleetup::package::this_platform()
        .expect("the test host has /etc/os-release")
        .to_string();
    let build = |platform: &str| {
        use std::io::Write;
        let path = repo.join(format!("emqx-4.4.16-otp24.3.4.2-1-{platform}.zip"));
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("PLATFORM", o).unwrap();
        write!(z, "{platform}").unwrap();
        z.finish().unwrap();
    };
    let others = ["el7-arm64", "amzn2-arm64"];
    for p in others {
        build(p);
    }
    let root = t.path().join("fresh");
    let upgrade = || {
        output(
            fleetup()
                .args(["node", "upgrade", "4.4.16", "--product", "emqx", "--root"])
                .arg(&root)
                .args(["--repo", repo.to_str().unwrap()])
                .args(["--ssh", &sshd.addr(), "--ssh-config"])
                .arg(sshd.config()),
        )
    };
    // Not the host's platform among them: refused, the candidates listed.
    let (code, out, err) = upgrade();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup::package::platform"), "{err}");
    assert!(
        err.contains("amzn2-arm64") && err.contains("el7-arm64"),
        "{err}"
    );
    // With the host's build there, the host's own platform decides.
    build(&here);
    let (code, out, err) = upgrade();
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(root.join("current/PLATFORM")).unwrap(),
        here
    );
}

#[test]
fn lifecycle_hooks_of_a_remote_node_run_on_its_host_around_a_rollback() {
    let r = remote_fleet(1, true);
    let plan = r.plan("", &|_| r.here());
    // Each hook writes where it ran from: over SSH, $SSH_CONNECTION names the session.
    let hook = |which: &str| {
        format!(
            "[\"sh\", \"-c\", \"echo {which} {{version}} at$SSH_CONNECTION >> {{root}}/lb.log\"]"
        )
    };
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "  timeout: 10s\nnodes:",
        &format!(
            "  before: {}\n  after: {}\n  on_rollback: {}\n  timeout: 10s\nnodes:",
            hook("before"),
            hook("after"),
            hook("on_rollback")
        ),
    );
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let doc = json(&out);
    assert_eq!(target(&doc, "n1")["outcome"], "rolled-back", "{doc}");
    let log = std::fs::read_to_string(r.nodes[0].1.join("lb.log")).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split(' ').collect()).collect();
    let what: Vec<(&str, &str)> = lines.iter().map(|l| (l[0], l[1])).collect();
    // Drained for 4.4.16, rolled back, let back in on 4.4.15.
    assert_eq!(
        what,
        [
            ("before", "4.4.16"),
            ("on_rollback", "4.4.15"),
            ("after", "4.4.15")
        ],
        "{log}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.get(2).is_some_and(|w| w.starts_with("at127.0.0.1"))),
        "not run over SSH: {log}"
    );
}

#[test]
fn status_names_who_holds_a_remote_nodes_lock_as_its_agent_read_it() {
    let r = remote_fleet(1, false);
    let plan = r.plan("", &|_| r.here());
    // The holder's own words may say anything, even what fleetup's refusal says.
    let lock = r.nodes[0].1.join("releases/.lock");
    std::fs::write(
        &lock,
        "held by pid 4242 on elsewhere (the store is locked: since noon)\n",
    )
    .unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        fleetup::lock::holder_of(&r.nodes[0].1.join("releases")).is_some()
    }));
    let (code, out, err) = output(
        fleetup()
            .arg("status")
            .arg(&plan)
            .args(["--format", "json"]),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, Some(0), "{out}{err}");
    let doc = json(&out);
    assert_eq!(
        doc["targets"][0]["locked_by"],
        "held by pid 4242 on elsewhere (the store is locked: since noon)",
        "{out}"
    );
}

/// A `command` check that exits with a status `give_up_on` lists ends the wait at once
/// on a remote node too: the agent on the host says "failed for good", and the node is
/// rolled back without waiting out its 10-minute deadline.
#[test]
fn a_remote_check_that_gives_up_ends_the_wait_and_rolls_back() {
    let r = remote_fleet(1, false);
    let plan = r.plan("", &|_| r.here());
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "  http: \"http://{host}:{port}/status\"\n  timeout: 3s\n",
        "  command: [\"sh\", \"-c\", \"grep -qx 4.4.16 {root}/current/VERSION && exit 3; exit 0\"]\n  give_up_on: [3]\n  timeout: 10m\n",
    );
    assert!(text.contains("give_up_on"), "{text}");
    std::fs::write(&plan, text).unwrap();
    let (code, doc, err) = r.apply_json(&plan);
    assert_eq!(code, Some(3), "{doc}{err}");
    let t = target(&doc, "n1");
    assert_eq!(t["outcome"], "rolled-back", "{doc}");
    let detail = t["detail"].as_str().unwrap();
    assert!(detail.contains("gave up after "), "{detail}");
    assert!(
        detail.contains("of 10m: `sh -c grep -qx 4.4.16"),
        "{detail}"
    );
    assert!(
        detail.contains("it exited with status 3, which `give_up_on` says means failed for good"),
        "{detail}"
    );
    r.expect(
        0,
        "Installed versions:\n* 4.4.16\tunpacked\n* 4.4.15\tpermanent\n",
        "4.4.15",
    );
}
