//! A real upgrade killed with SIGKILL at many instants: afterwards the store is always
//! readable, both links lead to complete release trees, and re-running the command
//! completes the upgrade.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const EXTRA_FILES: usize = 300;

fn complete_tree(root: &Path, link: &str) -> Result<String, String> {
    let target = root.join(link);
    let version = std::fs::read_to_string(target.join("VERSION"))
        .map_err(|e| format!("{link}: no VERSION: {e}"))?;
    if !target.join("bin/ctl").is_file() {
        return Err(format!("{link}: no bin/ctl"));
    }
    let parts = std::fs::read_dir(target.join("lib"))
        .map(|d| d.count())
        .unwrap_or(0);
    if parts != EXTRA_FILES {
        return Err(format!("{link}: {parts} of {EXTRA_FILES} files"));
    }
    Ok(version.trim().to_owned())
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn upgrade(root: &Path, repo: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetup"));
    c.args(["node", "upgrade", "4.4.16", "--root"])
        .arg(root)
        .arg("--repo")
        .arg(repo);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

#[test]
fn an_upgrade_killed_at_any_instant_leaves_a_sound_store_and_completes_on_rerun() {
    let t = tempfile::tempdir().unwrap();
    let (repo, template) = (t.path().join("repo"), t.path().join("template"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", EXTRA_FILES);
    let p = release_zip(&repo, "4.4.16", EXTRA_FILES);
    sidecar(&p);
    std::fs::create_dir_all(&template).unwrap();
    // A hook that takes a moment, like a real restart.
    std::fs::write(
        template.join("node.toml"),
        "[activate]\ncommand = [\"/bin/sh\", \"-c\", \"touch {root}/activating; sleep 0.1\"]\ntimeout = \"10s\"\n",
    )
    .unwrap();
    fleetup()
        .args(["node", "upgrade", "4.4.0", "--root"])
        .arg(&template)
        .arg("--repo")
        .arg(&repo)
        .assert()
        .success();

    // How long one whole upgrade takes here, to spread the kills across it.
    let probe = t.path().join("probe");
    copy_tree(&template, &probe);
    let started = Instant::now();
    assert!(upgrade(&probe, &repo).status().unwrap().success());
    let whole = started.elapsed();

    const KILLS: u32 = 24;
    let mut states_seen = std::collections::BTreeSet::new();
    for i in 0..KILLS {
        let root = t.path().join(format!("node-{i}"));
        copy_tree(&template, &root);
        let _ = std::fs::remove_file(root.join("activating"));
        let delay = whole * i / KILLS;
        let mut child = upgrade(&root, &repo).spawn().unwrap();
        if i % 3 == 2 {
            // Deterministically mid-install: wait until the activate hook is running.
            let marker = root.join("activating");
            assert!(
                wait_until(std::time::Duration::from_secs(20), || marker.exists()),
                "kill {i}: the activate hook never started"
            );
        } else {
            std::thread::sleep(delay);
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        // Readable, and the links lead to complete trees.
        let out = fleetup()
            .args(["node", "versions", "--root"])
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kill #{i} after {delay:?}: versions failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The phase the kill hit, without the time stamp of an interrupted change.
        let phase = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split(" from ").next().unwrap_or(l).to_owned())
            .collect::<Vec<_>>()
            .join("\n");
        states_seen.insert(phase);
        for link in ["current", "permanent"] {
            if let Err(e) = complete_tree(&root, link) {
                panic!("kill #{i} after {delay:?}: {e}");
            }
        }
        // Re-running the command completes the upgrade.
        let out = upgrade(&root, &repo)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kill #{i}: rerun failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let versions = fleetup()
            .args(["node", "versions", "--root"])
            .arg(&root)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&versions.stdout),
            "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.0\told\n",
            "kill #{i} after {delay:?}"
        );
        assert_eq!(complete_tree(&root, "current").unwrap(), "4.4.16");
        assert_eq!(complete_tree(&root, "permanent").unwrap(), "4.4.16");
        // No leftovers of the killed run.
        let leftovers: Vec<String> = std::fs::read_dir(root.join("releases"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with(".staging") || n.starts_with(".trash") || n.starts_with(".tmp")
            })
            .collect();
        assert!(leftovers.is_empty(), "kill #{i}: {leftovers:?}");
    }
    // The kills landed in more than one phase, and at least one in the middle of the
    // change (an interrupted install the next command had to repair): the window that
    // matters. Which other phases are hit depends on this machine's timing.
    assert!(
        states_seen.len() >= 2,
        "every kill hit the same phase: {states_seen:?}"
    );
    assert!(
        states_seen.iter().any(|s| s.contains("interrupted")),
        "no kill landed mid-install: {states_seen:?}"
    );
    if std::env::var_os("FLEETUP_CRASH_VERBOSE").is_some() {
        eprintln!("states seen after kills: {states_seen:#?}");
    }
}

#[test]
fn an_activate_hook_dies_with_the_fleetup_that_started_it() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("node"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 0);
    std::fs::create_dir_all(&root).unwrap();
    let pidfile = t.path().join("hook.pid");
    std::fs::write(
        root.join("node.toml"),
        format!(
            "product = \"emqx\"\n[activate]\ncommand = [\"/bin/sh\", \"-c\", \"echo $$ > {}; exec sleep 60\"]\ntimeout = \"2m\"\n",
            pidfile.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .args(["node", "upgrade", "4.4.0", "--root"])
        .arg(&root)
        .arg("--repo")
        .arg(&repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read_to_string(
            &pidfile
        )
        .is_ok_and(|s| s.trim().parse::<i32>().is_ok())),
        "the hook never started"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = child.kill(); // SIGKILL fleetup
    let _ = child.wait();
    // SAFETY: kill(pid, 0) only asks whether the process exists.
    let alive = || unsafe { libc::kill(pid, 0) } == 0 && !zombie(pid);
    assert!(
        wait_until(Duration::from_secs(5), || !alive()),
        "the hook (pid {pid}) outlived the fleetup that started it"
    );
}

/// Whether `pid` is a zombie (dead, not yet reaped by its new parent).
fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[test]
fn what_a_killed_hook_started_is_stopped_before_the_repair() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("node"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 0);
    release_zip(&repo, "4.4.1", 0);
    std::fs::create_dir_all(&root).unwrap();
    let node = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fleetup"));
        c.arg("node").args(args).arg("--root").arg(&root);
        if args[0] == "upgrade" {
            c.arg("--repo").arg(&repo);
        }
        c
    };
    assert!(
        node(&["upgrade", "4.4.0", "--product", "emqx"])
            .status()
            .unwrap()
            .success()
    );
    // 4.4.1's hook starts a child in its process group and waits on it.
    let pidfile = t.path().join("child.pid");
    std::fs::write(
        root.join("node.toml"),
        format!(
            "[activate]\ncommand = [\"/bin/sh\", \"-c\", \"test $0 = 4.4.1 || exit 0; sleep 60 & echo $! > {}; wait\", \"{{version}}\"]\ntimeout = \"2m\"\n",
            pidfile.display()
        ),
    )
    .unwrap();
    let mut child = node(&["upgrade", "4.4.1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read_to_string(
            &pidfile
        )
        .is_ok_and(|s| s.trim().parse::<i32>().is_ok())),
        "the hook never started its child"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = child.kill(); // SIGKILL: the hook's shell dies with it, its child does not
    let _ = child.wait();
    // SAFETY: kill(pid, 0) only asks whether the process exists.
    let alive = || unsafe { libc::kill(pid, 0) } == 0 && !zombie(pid);
    assert!(
        alive(),
        "the hook's child should outlive the kill by itself"
    );
    // The next change repairs the store, and first stops what the hook left running.
    let out = node(&["uninstall", "4.4.9"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Stopped the activate hook"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        wait_until(Duration::from_secs(5), || !alive()),
        "pid {pid} still runs"
    );
}
