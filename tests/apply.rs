//! `fleetup apply` on real processes: every node's activate hook starts an HTTP server
//! (python3 -m http.server) from its current release, and health is checked over HTTP on
//! 127.0.0.1. Every test stops the servers it started.

mod common;

use std::path::{Path, PathBuf};

use common::*;

struct Fleet {
    dir: tempfile::TempDir,
    nodes: Vec<(String, PathBuf, u16)>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Every server any of its nodes started, whether its pid file names it or not.
        kill_processes_under(self.dir.path());
    }
}

/// `n` nodes on 4.4.15, serving it; releases 4.4.16 (healthy unless `broken16`).
fn fleet(n: usize, broken16: bool) -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    served_release(&repo, "4.4.15", true);
    served_release(&repo, "4.4.16", !broken16);
    let mut f = Fleet {
        dir,
        nodes: Vec::new(),
    };
    for i in 1..=n {
        let root = f.dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&root).unwrap();
        let port = free_port();
        std::fs::write(root.join("port"), port.to_string()).unwrap();
        std::fs::write(
            root.join("node.toml"),
            "[activate]\ncommand = [\"{root}/current/bin/ctl\"]\ntimeout = \"10s\"\n",
        )
        .unwrap();
        f.nodes.push((format!("n{i}"), root.clone(), port));
        fleetup()
            .args(["node", "upgrade", "4.4.15", "--root"])
            .arg(&root)
            .arg("--repo")
            .arg(&repo)
            .assert()
            .success();
        wait_status(port, "4.4.15");
    }
    f
}

impl Fleet {
    fn plan(&self, extra_rollout: &str, node_extra: &dyn Fn(usize) -> String) -> PathBuf {
        let mut nodes = String::new();
        for (i, (name, _, port)) in self.nodes.iter().enumerate() {
            nodes.push_str(&format!(
                "  - {{ name: {name}, root: ./{name}, vars: {{ port: {port} }}{} }}\n",
                node_extra(i)
            ));
        }
        let text = format!(
            "plan: 1\nname: t\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  max_parallel: 4\n{extra_rollout}\
             health:\n  http: \"http://127.0.0.1:{{port}}/status\"\n  timeout: 3s\n  interval: 100ms\n\
             hooks:\n  activate: [\"{{root}}/current/bin/ctl\"]\n  timeout: 10s\nnodes:\n{nodes}"
        );
        let p = self.dir.path().join("plan.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn apply(&self, plan: &Path, args: &[&str]) -> (Option<i32>, String, String) {
        common::output(fleetup().arg("apply").arg(plan).args(args))
    }

    fn versions(&self, i: usize) -> String {
        let out = fleetup()
            .args(["node", "versions", "--root"])
            .arg(&self.nodes[i].1)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn a_good_rollout_upgrades_every_node_wave_by_wave() {
    let f = fleet(3, false);
    let plan = f.plan("  waves: [1, \"100%\"]\n", &|_| String::new());
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("wave 1/2: n1") && out.contains("wave 2/2: n2, n3"),
        "{out}"
    );
    for (i, (_, _, port)) in f.nodes.iter().enumerate() {
        assert_eq!(
            f.versions(i),
            "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.15\told\n"
        );
        wait_status(*port, "4.4.16");
    }
    // The summary table and the history.
    assert!(out.contains("n3      4.4.15  4.4.16  upgraded"), "{out}");
    let hist = fleetup()
        .args(["history", "--state"])
        .arg(f.dir.path().join("state"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&hist.stdout).contains("succeeded"));
    // Again: nothing to do.
    let (code, out, _) = f.apply(&plan, &["--yes", "--format", "json"]);
    assert_eq!(code, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3, "{doc}");
    assert!(targets.iter().all(|t| t["outcome"] == "unchanged"), "{doc}");
}

#[test]
fn a_broken_canary_is_rolled_back_and_nobody_else_is_touched() {
    let f = fleet(3, true);
    let plan = f.plan("  waves: [1, \"100%\"]\n", &|i| {
        if i == 0 {
            ", tags: [canary]".into()
        } else {
            String::new()
        }
    });
    let before: Vec<_> = (1..3).map(|i| snapshot(&f.nodes[i].1)).collect();
    let (code, out, err) = f.apply(&plan, &["--yes", "--format", "json"]);
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let outcomes: Vec<&str> = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["rolled-back", "skipped", "skipped"]);
    assert_eq!(
        f.versions(0),
        "Installed versions:\n* 4.4.16\tunpacked\n* 4.4.15\tpermanent\n"
    );
    wait_status(f.nodes[0].2, "4.4.15");
    let after: Vec<_> = (1..3).map(|i| snapshot(&f.nodes[i].1)).collect();
    assert_eq!(before, after, "a node outside the canary wave was touched");
}

#[test]
fn rollback_all_undoes_the_earlier_waves_newest_first() {
    let f = fleet(3, false);
    served_release(&f.dir.path().join("repo"), "4.4.17", false);
    // n3 goes to a broken 4.4.17 in the last wave, after n1 and n2 are done.
    let plan = f.plan("  waves: [1]\n  on_failure: rollback-all\n", &|i| {
        if i == 2 {
            ", to: 4.4.17".into()
        } else {
            String::new()
        }
    });
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(3), "{out}{err}");
    for i in 0..3 {
        let v = f.versions(i);
        assert!(v.contains("* 4.4.15\tpermanent"), "node {i}: {v}");
        wait_status(f.nodes[i].2, "4.4.15");
    }
    // Newest first: n2 was rolled back before n1.
    let (p2, p1) = (
        out.find("n2: rollback: rollback-all").unwrap(),
        out.find("n1: rollback: rollback-all").unwrap(),
    );
    assert!(p2 < p1, "{out}");

    // When even the previous release is not healthy after a rollback, the node needs
    // attention: exit 4. (n1's check looks at a port nobody serves.)
    let dead = free_port();
    let text = std::fs::read_to_string(f.plan("  waves: [1]\n", &|_| String::new())).unwrap();
    let text = text.replace(
        &format!("port: {} }}", f.nodes[0].2),
        &format!("port: {dead} }}"),
    );
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(out.contains("needs attention"), "{out}");
}

#[test]
fn pins_locks_windows_and_confirmation_refuse_to_start() {
    let f = fleet(2, false);
    let before: Vec<_> = (0..2).map(|i| snapshot(&f.nodes[i].1)).collect();
    let unchanged =
        |f: &Fleet| (0..2).map(|i| snapshot(&f.nodes[i].1)).collect::<Vec<_>>() == before;

    // A pin that does not match: exit 5.
    let plan = f.plan("  waves: [1]\n", &|i| {
        if i == 1 {
            ", from: 4.4.14".into()
        } else {
            String::new()
        }
    });
    let (code, _, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("fleetup::plan::from-mismatch") && err.contains("runs 4.4.15"),
        "{err}"
    );
    assert!(unchanged(&f));

    // Another run holds a node: exit 5 naming it.
    let plan = f.plan("  waves: [1]\n", &|_| String::new());
    let lock = fleetup::lock::acquire(
        &f.nodes[1].1.join("releases"),
        "the store",
        Some("other-run"),
        std::time::Duration::ZERO,
    )
    .unwrap();
    let (code, _, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("fleetup::store::locked") && err.contains("other-run"),
        "{err}"
    );
    drop(lock);
    assert!(unchanged(&f));

    // Outside the window: exit 5 naming the next opening.
    let hour = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .hour();
    let (from, to) = ((hour + 2) % 24, (hour + 3) % 24);
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "health:",
        &format!("window:\n  from: \"{from:02}:00\"\n  to: \"{to:02}:00\"\nhealth:"),
    );
    std::fs::write(&plan, text).unwrap();
    let (code, _, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("fleetup::run::window-closed") && err.contains("next opens"),
        "{err}"
    );
    assert!(unchanged(&f));

    // No terminal and no --yes: a usage error, nothing done.
    let plan = f.plan("  waves: [1]\n", &|_| String::new());
    let (code, _, err) = f.apply(&plan, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(unchanged(&f));
}

fn state_of(f: &Fleet) -> PathBuf {
    f.dir.path().join("state")
}

/// `rollback RUN` of the fleet's latest run, and every node back on 4.4.15 permanent.
fn roll_back_latest(f: &Fleet, n: usize, context: &str) {
    let run = latest_run(&state_of(f));
    let out = fleetup()
        .args(["rollback", &run, "--state"])
        .arg(state_of(f))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{context}rollback: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for i in 0..n {
        assert!(
            f.versions(i).contains("* 4.4.15\tpermanent"),
            "{context}{}",
            f.versions(i)
        );
    }
}

#[test]
fn a_run_killed_at_any_instant_is_resumed_and_a_run_can_be_rolled_back() {
    let f = fleet(3, false);
    let plan = f.plan("  waves: [1]\n", &|_| String::new());
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("interval: 100ms", "interval: 100ms\n  healthy_for: 300ms");
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    roll_back_latest(&f, 3, "");
    for i in 0..3 {
        wait_status(f.nodes[i].2, "4.4.15");
    }
    let journal = |run: &str| {
        std::fs::read_to_string(state_of(&f).join("runs").join(run).join("journal.jsonl"))
            .unwrap_or_default()
    };

    // Killed as soon as the journal shows a point of the run (its nth line of a kind):
    // the first wave starting, n1 in its health check, n2 installing, n2 and n3 in theirs.
    // Each is followed by a health check of at least 300 ms, so the kill always lands
    // while the run is going; the test checks that it did.
    let points = [
        ("\"event\":\"wave\"", 1),
        ("\"step\":\"health\"", 1),
        ("\"step\":\"install\"", 2),
        ("\"step\":\"health\"", 2),
        ("\"step\":\"health\"", 3),
    ];
    for (k, (line, nth)) in points.into_iter().enumerate() {
        let before = latest_run(&state_of(&f));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
            .arg("apply")
            .arg(&plan)
            .arg("--yes")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let reached = wait_until(std::time::Duration::from_secs(60), || {
            let run = latest_run(&state_of(&f));
            run != before && journal(&run).matches(line).count() >= nth
        });
        assert!(reached, "kill {k}: the run never reached {line} #{nth}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "kill {k}: the run ended before the kill"
        );
        let _ = child.kill();
        let _ = child.wait();
        let run = latest_run(&state_of(&f));
        assert!(
            !journal(&run).contains("\"kind\":\"end\""),
            "kill {k}: the run had finished"
        );
        let out = fleetup()
            .args(["resume", "--state"])
            .arg(state_of(&f))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "kill {k}: {text}");
        assert!(!text.contains("nothing to resume"), "kill {k}: {text}");
        for i in 0..3 {
            assert_eq!(
                f.versions(i),
                "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.15\told\n",
                "kill {k}, node {i}: {text}"
            );
            wait_status(f.nodes[i].2, "4.4.16");
        }
        let hist = fleetup()
            .args(["history", "--state"])
            .arg(state_of(&f))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&hist.stdout)
                .lines()
                .last()
                .unwrap()
                .contains("succeeded")
        );
        // Undo the run for the next round.
        roll_back_latest(&f, 3, &format!("kill {k}: "));
    }
}

#[test]
fn when_the_window_closes_no_new_wave_starts_and_the_run_pauses() {
    let f = fleet(2, false);
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let from = now.checked_sub(jiff::Span::new().minutes(1)).unwrap();
    // Open for 10 s: long enough for the first wave to start on a loaded machine; the
    // pause after it outlasts the window.
    let to = now.checked_add(jiff::Span::new().seconds(10)).unwrap();
    let hms =
        |z: &jiff::ZonedDateTime| format!("{:02}:{:02}:{:02}", z.hour(), z.minute(), z.second());
    let plan = f.plan("  waves: [1]\n  pause: 15s\n", &|_| String::new());
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "health:",
        &format!(
            "window:\n  from: \"{}\"\n  to: \"{}\"\nhealth:",
            hms(&from),
            hms(&to)
        ),
    );
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(6), "{out}{err}");
    assert!(
        out.contains("closed: no new wave starts") && out.contains("fleetup resume"),
        "{out}"
    );
    assert!(f.versions(0).contains("* 4.4.16\tpermanent"));
    assert!(
        f.versions(1).contains("* 4.4.15\tpermanent"),
        "the second wave started after the window closed"
    );
    let hist = fleetup()
        .args(["history", "--state"])
        .arg(state_of(&f))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&hist.stdout).contains("paused"));
    // Outside the window, resume refuses and names the next opening.
    let out = fleetup()
        .args(["resume", "--state"])
        .arg(state_of(&f))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("next opens"), "{err}");
}

#[test]
fn a_second_concurrent_run_is_refused() {
    let f = fleet(2, false);
    let plan = f.plan("  waves: [1]\n", &|_| String::new());
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("interval: 100ms", "interval: 100ms\n  healthy_for: 2s");
    std::fs::write(&plan, text).unwrap();
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("apply")
        .arg(&plan)
        .arg("--yes")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds n1's store.
    let lock = f.nodes[0].1.join("releases/.lock");
    assert!(
        wait_until(std::time::Duration::from_secs(20), || {
            std::fs::read_to_string(&lock)
                .unwrap_or_default()
                .contains("run ")
        }),
        "the first run never took n1's store"
    );
    let (code, _, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("fleetup::store::locked") && err.contains("held by pid"),
        "{err}"
    );
    let status = first.wait_with_output().unwrap().status;
    assert!(status.success());
}

#[test]
fn a_remote_node_with_a_relative_root_is_refused_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("p.yaml");
    std::fs::create_dir_all(dir.path().join("repo")).unwrap();
    served_release(&dir.path().join("repo"), "4.4.16", true);
    std::fs::write(
        &plan,
        "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\nnodes:\n  - { name: far, ssh: deploy@127.0.0.1, root: ./far }\n",
    )
    .unwrap();
    let out = fleetup()
        .arg("apply")
        .arg(&plan)
        .arg("--yes")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fleetup::plan::path") && err.contains("must be absolute"),
        "{err}"
    );
    assert!(
        !dir.path().join("far").exists(),
        "a remote node's root was created locally"
    );
    assert!(!dir.path().join("state").exists());
}

#[test]
fn only_selects_by_name_glob_and_tag() {
    let f = fleet(3, false);
    let plan = f.plan("  waves: [\"100%\"]\n", &|i| {
        if i == 2 {
            ", tags: [edge]".into()
        } else {
            String::new()
        }
    });
    let (code, out, err) = f.apply(&plan, &["--yes", "--only", "@edge"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(f.versions(2).contains("* 4.4.16\tpermanent"));
    assert!(
        f.versions(0).contains("* 4.4.15\tpermanent")
            && f.versions(1).contains("* 4.4.15\tpermanent")
    );
    // A name: n1 alone; n2 stays where it was.
    let (code, out, err) = f.apply(&plan, &["--yes", "--only", "n1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(f.versions(0).contains("* 4.4.16\tpermanent"), "{out}");
    assert!(f.versions(1).contains("* 4.4.15\tpermanent"), "{out}");
    // A list with a glob: `n*` takes n2, the one left.
    let (code, out, err) = f.apply(&plan, &["--yes", "--only", "n1,n*"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(f.versions(1).contains("* 4.4.16\tpermanent"), "{out}");
    // A selector that matches nothing is a usage error: a typo never quietly upgrades nothing.
    let (code, _, err) = f.apply(&plan, &["--yes", "--only", "@nosuchtag"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`@nosuchtag` matches no target"), "{err}");
}

#[test]
fn stop_leaves_a_failure_as_it_is_and_permanent_false_leaves_releases_current() {
    // on_failure: stop — the broken canary stays installed for inspection, unrolled.
    let f = fleet(2, true);
    let plan = f.plan("  waves: [1]\n  on_failure: stop\n", &|_| String::new());
    let (code, out, err) = f.apply(&plan, &["--yes", "--format", "json"]);
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["outcome"], "failed");
    assert!(
        doc["targets"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("on_failure: stop")
    );
    assert_eq!(doc["targets"][1]["outcome"], "skipped");
    assert_eq!(
        f.versions(0),
        "Installed versions:\n* 4.4.16\tcurrent\n* 4.4.15\tpermanent\n"
    );

    // permanent: false — healthy releases become current; a restart goes back.
    let g = fleet(1, false);
    let plan = g.plan("  permanent: false\n", &|_| String::new());
    let (code, out, err) = g.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        g.versions(0),
        "Installed versions:\n* 4.4.16\tcurrent\n* 4.4.15\tpermanent\n"
    );
    wait_status(g.nodes[0].2, "4.4.16");
    // Applying again is a no-op: the target is reached as the plan defines it.
    let (code, out, _) = g.apply(&plan, &["--yes", "--format", "json"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"unchanged\""), "{out}");
}

#[test]
fn resume_refuses_while_another_fleetup_holds_a_store_it_still_has_to_change() {
    let f = fleet(2, false);
    let plan = f.plan("  waves: [1]\n", &|_| String::new());
    // Someone holds n2; the run waits for it in its second wave, and is killed there.
    let lock = fleetup::lock::acquire(
        &f.nodes[1].1.join("releases"),
        "the store",
        Some("other"),
        std::time::Duration::ZERO,
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("apply")
        .arg(&plan)
        .args(["--yes", "--wait-for-lock", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let n1_done = wait_until(std::time::Duration::from_secs(20), || {
        f.versions(0).contains("4.4.16\tpermanent")
    });
    assert!(n1_done, "{}", f.versions(0));
    // It waits on n2's lock (issue 29: this was never checked): the lock file open, the
    // run still going, n2 unchanged.
    assert!(
        wait_until(std::time::Duration::from_secs(20), || holds_open(
            child.id(),
            &f.nodes[1].1.join("releases/.lock")
        )),
        "the run never waited on n2's lock"
    );
    assert!(child.try_wait().unwrap().is_none(), "the run did not wait");
    assert!(f.versions(1).contains("4.4.15\tpermanent"));
    let _ = child.kill();
    let _ = child.wait();
    let resume = || common::output(fleetup().args(["resume", "--state"]).arg(state_of(&f)));
    let (code, _, err) = resume();
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("fleetup::store::locked") && err.contains("run other"),
        "{err}"
    );
    assert!(f.versions(1).contains("4.4.15\tpermanent"));
    drop(lock);
    let (code, out, err) = resume();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        f.versions(1).contains("4.4.16\tpermanent"),
        "{}",
        f.versions(1)
    );
}

#[test]
fn a_node_made_permanent_just_before_a_kill_counts_as_upgraded_by_the_resumed_run() {
    let f = fleet(2, false);
    let plan = f.plan("  waves: [\"100%\"]\n", &|_| String::new());
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // The journal as a kill leaves it right after n1 became permanent: n1's outcome and
    // the run's end were never written.
    let run = cut_journal(&state_of(&f), "n1");

    let (code, out, err) = common::output(
        fleetup()
            .args(["resume", &run, "--format", "json", "--state"])
            .arg(state_of(&f)),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n1 = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "n1")
        .unwrap();
    assert_eq!(n1["outcome"], "upgraded", "{doc}");
    assert_eq!(n1["from"], "4.4.15", "{doc}");
    // So `rollback RUN` takes it back too.
    let (code, out, err) = common::output(
        fleetup()
            .args(["rollback", &run, "--state"])
            .arg(state_of(&f)),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for i in 0..2 {
        assert!(
            f.versions(i).contains("* 4.4.15\tpermanent"),
            "{}",
            f.versions(i)
        );
    }
}

#[test]
fn a_failed_target_carries_the_code_of_its_problem_in_json_and_history() {
    let f = fleet(1, true);
    let plan = f.plan("", &|_| String::new());
    let (code, out, err) = f.apply(&plan, &["--yes", "--format", "json"]);
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n1 = &doc["targets"][0];
    assert_eq!(n1["outcome"], "rolled-back", "{doc}");
    assert_eq!(n1["code"], "fleetup::health::unhealthy", "{doc}");
    // The journal keeps it: `history` shows the same code.
    let (code, out, _) = common::output(
        fleetup()
            .args(["history", doc["run"].as_str().unwrap(), "--format", "json"])
            .arg("--state")
            .arg(state_of(&f)),
    );
    assert_eq!(code, Some(0));
    let hist: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        hist["targets"][0]["code"], "fleetup::health::unhealthy",
        "{hist}"
    );
    // A target that succeeded carries no code.
    let f = fleet(1, false);
    let plan = f.plan("", &|_| String::new());
    let (code, out, _) = f.apply(&plan, &["--yes", "--format", "json"]);
    assert_eq!(code, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["targets"][0].get("code").is_none(), "{doc}");
}

/// libfaketime's library for threaded programs, as Debian's `libfaketime` installs it.
fn libfaketime() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
        .find(|p| p.exists())
        .expect("libfaketime is installed (scripts/test installs the faketime package)")
}

/// `fleetup ARGS…` with the wall clock set to `utc` (and running on from there) by
/// libfaketime, preloaded directly: the `faketime` wrapper would wait for the HTTP
/// servers the nodes' hooks leave running. The monotonic clock, which timeouts and
/// pauses use, stays real.
fn at_time(utc: &str, args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .args(args)
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME", format!("@{utc}"))
        .env("TZ", "UTC")
        .env("DONT_FAKE_MONOTONIC", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_sunday_window_in_berlin_across_the_spring_forward_pauses_a_run_and_resumes_it_a_week_later() {
    // 2026-03-29 is a Sunday; Berlin's clocks jump from 02:00 CET to 03:00 CEST (01:00
    // UTC), so the 02:30–03:30 window opens at the jump, 03:00 CEST, and closes at 03:30
    // CEST (01:30 UTC). A week later it is 00:30–01:30 UTC.
    let f = fleet(2, false);
    let plan = f.plan("  waves: [1]\n  pause: 5s\n", &|_| String::new());
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "health:",
        "window:\n  days: [sun]\n  from: \"02:30\"\n  to: \"03:30\"\n  tz: Europe/Berlin\nhealth:",
    );
    std::fs::write(&plan, text).unwrap();
    let state = state_of(&f);
    let apply = [plan.as_os_str(), "--yes".as_ref()];
    let resume = ["resume".as_ref(), "--state".as_ref(), state.as_os_str()];
    let mut apply_args = vec!["apply".as_ref()];
    apply_args.extend(apply);

    // 02:50 CET (01:50 in Berlin's winter reckoning): closed, opens at the jump.
    // (miette wraps long messages behind a `│`: compare words)
    let words = |t: &str| {
        t.split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (code, _, err) = at_time("2026-03-29 00:50:00", &apply_args);
    assert_eq!(code, Some(5), "{err}");
    let err = words(&err);
    assert!(
        err.contains("fleetup::run::window-closed")
            && err.contains("next opens Sun 2026-03-29 03:00:00 CEST"),
        "{err}"
    );
    assert!(f.versions(0).contains("* 4.4.15\tpermanent"));

    // 03:29:57 CEST: the first wave starts; the window closes during the pause.
    let (code, out, err) = at_time("2026-03-29 01:29:57", &apply_args);
    assert_eq!(code, Some(6), "{out}{err}");
    assert!(out.contains("closed: no new wave starts"), "{out}");
    assert!(f.versions(0).contains("* 4.4.16\tpermanent"));
    assert!(f.versions(1).contains("* 4.4.15\tpermanent"));

    // Saturday 2026-04-04, inside the hours but not a listed day: resume refuses.
    let (code, _, err) = at_time("2026-04-04 00:45:00", &resume);
    assert_eq!(code, Some(5), "{err}");
    let err = words(&err);
    assert!(
        err.contains("next opens Sun 2026-04-05 02:30:00 CEST"),
        "{err}"
    );
    assert!(f.versions(1).contains("* 4.4.15\tpermanent"));
    // The refusal says how to go on under the window the plan file has now.
    assert!(err.contains("--current-window"), "{err}");

    // The plan file's window now takes Saturdays too: `--current-window` goes on under it
    // (the run's own copy still says Sundays only).
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("days: [sun]", "days: [sat, sun]");
    std::fs::write(&plan, text).unwrap();
    let (code, _, err) = at_time("2026-04-04 00:45:00", &resume);
    assert_eq!(code, Some(5), "{err}");
    let mut current = resume.to_vec();
    current.push("--current-window".as_ref());
    let (code, out, err) = at_time("2026-04-04 00:45:00", &current);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(f.versions(1).contains("* 4.4.16\tpermanent"), "{out}");
    wait_status(f.nodes[1].2, "4.4.16");
    let (_, hist, _) = output(fleetup().args(["history", "--state"]).arg(&state));
    assert!(hist.lines().last().unwrap().contains("succeeded"), "{hist}");
}

/// The outcome of every target of a `--format json` run document, in schedule order.
fn outcomes(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_owned(),
                t["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn max_failures_lets_a_run_go_on_within_it_and_stops_it_beyond() {
    // Four nodes one at a time; n2 and n3 go to a broken 4.4.17.
    let broken = |i: usize| {
        if i == 1 || i == 2 {
            ", to: 4.4.17".to_owned()
        } else {
            String::new()
        }
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // A fresh fleet of four run with `max_failures`: each target's outcome, and the fleet.
    let run = |max_failures: &str| {
        let f = fleet(4, false);
        served_release(&f.dir.path().join("repo"), "4.4.17", false);
        let plan = f.plan(
            &format!("  waves: [1]\n  max_failures: {max_failures}\n"),
            &broken,
        );
        let (code, out, err) = f.apply(&plan, &["--yes", "--format", "json"]);
        assert_eq!(code, Some(3), "{out}{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        (outcomes(&doc), f)
    };
    // Within: two failures allowed, n4 still goes.
    let (got, f) = run("2");
    let want = pairs(&[
        ("n1", "upgraded"),
        ("n2", "rolled-back"),
        ("n3", "rolled-back"),
        ("n4", "upgraded"),
    ]);
    assert_eq!(got, want);
    drop(f);
    // Beyond: one failure allowed (as "25%" of four), so the second one stops the run.
    let (got, f) = run("\"25%\"");
    let want = pairs(&[
        ("n1", "upgraded"),
        ("n2", "rolled-back"),
        ("n3", "rolled-back"),
        ("n4", "skipped"),
    ]);
    assert_eq!(got, want);
    assert!(f.versions(3).contains("* 4.4.15\tpermanent"));
}

/// The test releases' hook, starting the server a second after it returns.
fn slow_ctl() -> String {
    CTL.replace(
        "python3 -m http.server",
        "sleep 1; exec python3 -m http.server",
    )
    .replace(
        "cd \"$FLEETUP_RELEASE_DIR/www\" || exit 1\n",
        "cd \"$FLEETUP_RELEASE_DIR/www\" || exit 1\n(\n",
    )
    .replace(" >/dev/null 2>&1 &\n", " >/dev/null 2>&1\n) &\n")
}

#[test]
fn the_check_after_a_rollback_is_given_rollback_timeout_not_timeout() {
    // 4.4.16 is broken; 4.4.15 takes a second to serve again after a rollback. The
    // plan's `timeout` (3s) would wait for it; a 300ms `rollback_timeout` does not, and
    // the node needs attention.
    for (rollback_timeout, code, attention) in [("300ms", 4, true), ("8s", 3, false)] {
        let f = fleet(1, true);
        // The release is already unpacked in the store: the rollback starts that copy.
        std::fs::write(f.nodes[0].1.join("releases/4.4.15/bin/ctl"), slow_ctl()).unwrap();
        let plan = f.plan("  waves: [1]\n", &|_| String::new());
        let text = std::fs::read_to_string(&plan).unwrap().replace(
            "  interval: 100ms\n",
            &format!("  interval: 100ms\n  rollback_timeout: {rollback_timeout}\n"),
        );
        std::fs::write(&plan, text).unwrap();
        let (got, out, err) = f.apply(&plan, &["--yes", "--format", "json"]);
        assert_eq!(got, Some(code), "{rollback_timeout}: {out}{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let n1 = target(&doc, "n1");
        assert_eq!(n1["attention"], attention, "{rollback_timeout}: {n1}");
        assert!(f.versions(0).contains("* 4.4.15\tpermanent"));
    }
}

#[test]
fn plan_previews_a_local_fleet_and_changes_nothing() {
    let f = fleet(3, false);
    let plan = f.plan("  waves: [1, \"100%\"]\n", &|i| {
        if i == 2 {
            ", to: 4.4.15".into()
        } else {
            String::new()
        }
    });
    let before: Vec<_> = (0..3).map(|i| snapshot(&f.nodes[i].1)).collect();
    let (code, out, err) = output(fleetup().arg("plan").arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");
    let wave1 = out.find("Wave 1").expect(&out);
    let wave2 = out.find("Wave 2").expect(&out);
    // A node's row, not the plan's path (a temporary directory's name may hold `n1`).
    let n1 = out.find("\n  n1 ").expect(&out);
    let n2 = out.find("\n  n2 ").expect(&out);
    assert!(wave1 < n1 && n1 < wave2 && wave2 < n2, "{out}");
    assert!(out.contains("4.4.15 → 4.4.16"), "{out}");
    // n3 is already where the plan wants it.
    let n3 = &out[out.find("\n  n3 ").expect(&out) + 1..];
    assert!(
        n3.lines()
            .next()
            .unwrap()
            .contains("at 4.4.15 already: unchanged"),
        "{out}"
    );
    let (code, out, _) = output(fleetup().arg("plan").arg(&plan).args(["--format", "json"]));
    assert_eq!(code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["waves"].as_array().unwrap().len(), 2, "{doc}");
    let after: Vec<_> = (0..3).map(|i| snapshot(&f.nodes[i].1)).collect();
    assert_eq!(before, after);
    assert!(!f.dir.path().join("state").exists(), "plan wrote a journal");
}

#[test]
fn rollback_of_a_run_goes_newest_first_and_exits_4_when_a_node_stays_unhealthy() {
    let f = fleet(3, false);
    let plan = f.plan("  waves: [1]\n", &|_| String::new());
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let run = latest_run(&state_of(&f));
    let (code, out, err) = output(
        fleetup()
            .args(["rollback", &run, "--yes", "--state"])
            .arg(state_of(&f)),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let at = |n: &str| {
        out.find(&format!("{n}: rollback"))
            .unwrap_or_else(|| panic!("no {n} in {out}"))
    };
    assert!(at("n3") < at("n2") && at("n2") < at("n1"), "{out}");
    for i in 0..3 {
        assert!(f.versions(i).contains("* 4.4.15\tpermanent"));
    }
    // Once more, but n2's 4.4.15 no longer serves after the rollback: exit 4, and n1 is
    // still rolled back (one node's trouble does not stop the others').
    let (code, out, err) = f.apply(&plan, &["--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let run = latest_run(&state_of(&f));
    let www = f.nodes[1].1.join("releases/4.4.15/www/status");
    std::fs::remove_file(&www).unwrap();
    let (code, out, err) = output(
        fleetup()
            .args(["rollback", &run, "--yes", "--state"])
            .arg(state_of(&f)),
    );
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(out.contains("needs attention"), "{out}");
    assert!(f.versions(0).contains("* 4.4.15\tpermanent"));
}

#[test]
fn a_run_limited_with_only_is_resumed_with_the_same_selection() {
    let f = fleet(3, false);
    let plan = f.plan("  waves: [1]\n  pause: 30s\n", &|_| String::new());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("apply")
        .arg(&plan)
        .args(["--yes", "--only", "n1,n2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed in the pause after the first wave.
    assert!(
        wait_until(std::time::Duration::from_secs(30), || {
            f.versions(0).contains("* 4.4.16\tpermanent")
        }),
        "n1 was never upgraded"
    );
    assert!(child.try_wait().unwrap().is_none());
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("pause: 30s", "pause: 0s");
    // (the run goes on from its own copy of the plan: its pause stays 30s)
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = output(
        fleetup()
            .args(["resume", "--format", "json", "--state"])
            .arg(state_of(&f)),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<String> = outcomes(&doc).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["n1", "n2"], "{doc}");
    assert!(f.versions(1).contains("* 4.4.16\tpermanent"));
    assert!(
        f.versions(2).contains("* 4.4.15\tpermanent"),
        "resume took n3, which --only left out"
    );
}

#[test]
fn tcp_health_in_a_real_run() {
    let f = fleet(2, false);
    let dead = free_port();
    let plan = f.plan("  waves: [1]\n  max_failures: 1\n", &|i| {
        if i == 1 {
            format!(", vars: {{ check: {dead} }}")
        } else {
            String::new()
        }
    });
    // n1 checks its own server's port; n2 a port nobody listens on.
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace(
            "  http: \"http://127.0.0.1:{port}/status\"\n",
            "  tcp: \"127.0.0.1:{check}\"\n",
        )
        .replace(
            &format!("vars: {{ port: {} }}", f.nodes[0].2),
            &format!("vars: {{ port: {p}, check: {p} }}", p = f.nodes[0].2),
        )
        .replace(
            &format!(
                "vars: {{ port: {} }}, vars: {{ check: {dead} }}",
                f.nodes[1].2
            ),
            &format!("vars: {{ port: {}, check: {dead} }}", f.nodes[1].2),
        );
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = f.apply(&plan, &["--yes", "--format", "json"]);
    // n2 fails its check, and its rollback's check too: attention.
    assert_eq!(code, Some(4), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(target(&doc, "n1")["outcome"], "upgraded", "{doc}");
    let n2 = target(&doc, "n2");
    assert_eq!(n2["attention"], true, "{n2}");
    assert!(
        n2["detail"].as_str().unwrap().contains(&dead.to_string()),
        "{n2}"
    );
}

#[test]
fn a_dropped_fleet_leaves_no_process_behind_even_one_no_pid_file_names() {
    let f = fleet(1, false);
    let dir = f.dir.path().to_owned();
    let served = processes_under(&dir);
    assert_eq!(served.len(), 1, "{served:?}");
    // As a hook killed before it wrote server.pid leaves its server: detached, unnamed.
    let www = f.nodes[0].1.join("current/www");
    std::process::Command::new("sh")
        .arg("-c")
        .arg("python3 -m http.server --bind 127.0.0.1 0 >/dev/null 2>&1 &")
        .current_dir(&www)
        .status()
        .unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(10), || processes_under(&dir)
            .len()
            == 2),
        "{:?}",
        processes_under(&dir)
    );
    drop(f);
    let left: Vec<_> = processes_under(&dir)
        .into_iter()
        .filter(|(pid, _)| !is_zombie(*pid))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
