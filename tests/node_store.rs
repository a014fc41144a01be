//! The EMQX hot-upgrade walkthrough against the real binary, with SPEC §2.1's messages,
//! and the activation hook's failure handling (SPEC §2.2) and locks (SPEC §8).

mod common;

use std::path::Path;

use common::*;

fn node(root: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    common::output(fleetup().arg("node").args(args).arg("--root").arg(root))
}

fn ok(root: &Path, args: &[&str]) -> String {
    let (code, out, err) = node(root, args);
    assert_eq!(code, Some(0), "fleetup node {args:?}:\n{out}{err}");
    out
}

#[test]
fn the_emqx_walkthrough() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 3);
    let p16 = release_zip(&repo, "4.4.16", 3);
    sidecar(&p16);
    node_with_hook(&root);
    let repo_arg = repo.to_str().unwrap();

    // A fresh store: the first release is installed and made permanent, no rule applies.
    let out = ok(&root, &["upgrade", "4.4.0", "--repo", repo_arg]);
    assert_eq!(
        out,
        format!(
            "Release 4.4.0 not found, attempting to unpack releases/{}\nUnpacked successfully: \"4.4.0\"\nFresh install of 4.4.0\nInstalled Release: 4.4.0\nMade release permanent: \"4.4.0\"\n",
            package_name("4.4.0")
        )
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.0\tpermanent\n"
    );
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.0"));
    assert_eq!(link(&root, "permanent").as_deref(), Some("releases/4.4.0"));
    assert_eq!(
        std::fs::read_to_string(root.join("current/VERSION")).unwrap(),
        "4.4.0\n"
    );

    // The operator drops the package into releases/ and upgrades without making it permanent.
    std::fs::copy(&p16, root.join("releases").join(package_name("4.4.16"))).unwrap();
    let out = ok(&root, &["upgrade", "4.4.16", "--no-permanent"]);
    assert_eq!(
        out,
        format!(
            "Release 4.4.16 not found, attempting to unpack releases/{}\nUnpacked successfully: \"4.4.16\"\nInstalled Release: 4.4.16\n",
            package_name("4.4.16")
        )
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tcurrent\n* 4.4.0\tpermanent\n"
    );
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.16"));
    assert_eq!(link(&root, "permanent").as_deref(), Some("releases/4.4.0"));

    // install of the current release makes it permanent.
    let out = ok(&root, &["install", "4.4.16"]);
    assert_eq!(
        out,
        "Release 4.4.16 is already installed and current, making permanent.\nMade release permanent: \"4.4.16\"\n"
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.0\told\n"
    );
    assert_eq!(link(&root, "permanent").as_deref(), Some("releases/4.4.16"));

    // Permanent and running: nothing to do, in install_upgrade.escript's words.
    let out = ok(&root, &["upgrade", "4.4.16"]);
    assert_eq!(
        out,
        "Release 4.4.16 is already installed, running and set permanent.\n"
    );

    // Not newer: refused, nothing changes.
    let before = snapshot(&root);
    let (code, _, err) = node(&root, &["upgrade", "4.4.0"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("fleetup::rule::not-newer") && err.contains("4.4.16 → 4.4.0"),
        "{err}"
    );
    assert_eq!(snapshot(&root), before);

    // Downgrade to the old release: EMQX's lines on stdout, the data warning on stderr.
    let (code, out, err) = node(&root, &["downgrade", "4.4.0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "Release 4.4.0 is marked old, switching to it.\nInstalled Release: 4.4.0\nMade release permanent: \"4.4.0\"\n"
    );
    assert_eq!(
        err,
        "Warning: data written by 4.4.16 may not be readable by 4.4.0.\n"
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\told\n* 4.4.0\tpermanent\n"
    );

    // A downgrade must go to an older release.
    let (code, _, err) = node(&root, &["downgrade", "4.4.16"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("fleetup::store::downgrade"), "{err}");

    // Uninstall refuses current and permanent, removes an old one with its package.
    let (code, _, err) = node(&root, &["uninstall", "4.4.0"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Uninstall failed: Release 4.4.0 is running."),
        "{err}"
    );
    ok(&root, &["upgrade", "4.4.16", "--no-permanent"]);
    let (code, _, err) = node(&root, &["uninstall", "4.4.16"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Uninstall failed: Release 4.4.16 is marked current."),
        "{err}"
    );
    ok(&root, &["install", "4.4.16"]);
    assert_eq!(
        ok(&root, &["uninstall", "4.4.0"]),
        "Release 4.4.0 is marked old, uninstalling it.\nUninstalled Release: 4.4.0\n"
    );
    assert!(!root.join("releases/4.4.0").exists());
    assert!(!root.join("releases").join(package_name("4.4.0")).exists());
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tpermanent\n"
    );

    // The hook saw every switch, with the previous release in its environment.
    assert_eq!(
        activations(&root),
        vec!["4.4.0 ", "4.4.16 4.4.0", "4.4.0 4.4.16", "4.4.16 4.4.0",]
    );
    let log = std::fs::read_to_string(root.join("activations.log")).unwrap();
    assert!(
        log.lines()
            .next()
            .unwrap()
            .ends_with(&format!("{}/releases/4.4.0", root.display())),
        "{log}"
    );

    // JSON for scripts.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&root, &["versions", "--format", "json"])).unwrap();
    assert_eq!(v["product"], "emqx");
    assert_eq!(v["permanent"], "4.4.16");
    assert_eq!(v["releases"][0]["state"], "permanent");
}

#[test]
fn rules_refuse_before_anything_is_unpacked() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 0);
    release_zip(&repo, "4.5.0", 0);
    let ee = repo.join("emqx-ee-4.5.1-otp24.3.4.2-1-ubuntu20.04-amd64.zip");
    std::fs::copy(release_zip(t.path(), "4.5.1", 0), &ee).unwrap();
    let r = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.0", "--repo", r]);
    let before = snapshot(&root);
    let (code, _, err) = node(&root, &["upgrade", "4.5.0", "--repo", r]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("fleetup::rule::version-rule")
            && err.contains("4.4.0 → 4.5.0 is not a patch upgrade"),
        "{err}"
    );
    assert_eq!(
        snapshot(&root),
        before,
        "a refused upgrade changed the store"
    );
    // The plan-level escape hatch, by hand.
    ok(
        &root,
        &["upgrade", "4.5.0", "--repo", r, "--policy", "minor"],
    );
    // Asking for the other edition is a same-edition error, not a silent pick.
    let before = snapshot(&root);
    let (code, _, err) = node(&root, &["upgrade", "4.5.1", "--repo", r]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("fleetup::rule::same-edition") && err.contains("emqx-ee-4.5.1"),
        "{err}"
    );
    let (code, _, err) = node(&root, &["upgrade", "4.5.1", "--repo", r, "--edition", "ee"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("fleetup::rule::same-edition") && err.contains("(ce) → 4.5.1 (ee)"),
        "{err}"
    );
    let (code, _, err) = node(&root, &["upgrade", "4.5.2", "--repo", r]);
    assert_eq!(code, Some(1));
    assert!(err.contains("fleetup::package::missing"), "{err}");
    assert_eq!(snapshot(&root), before);
}

#[test]
fn a_failed_activation_switches_back_and_leaves_the_release_unpacked() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 0);
    release_zip(&repo, "4.4.16", 0);
    node_with_hook(&root);
    let r = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.0", "--repo", r]);
    std::fs::write(root.join("fail-versions"), "4.4.16\n").unwrap();
    let (code, out, err) = node(&root, &["upgrade", "4.4.16", "--repo", r]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        err.contains("fleetup::store::activation-failed") && err.contains("switched back to 4.4.0"),
        "{err}"
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tunpacked\n* 4.4.0\tpermanent\n"
    );
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.0"));
    // The new release was tried, then the previous one activated again.
    assert_eq!(
        activations(&root),
        vec!["4.4.0 ", "4.4.16 4.4.0", "4.4.0 4.4.16"]
    );
    // Fixed, the same command completes.
    std::fs::remove_file(root.join("fail-versions")).unwrap();
    ok(&root, &["upgrade", "4.4.16"]);
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.0\told\n"
    );
}

#[test]
fn a_hook_that_hangs_times_out_as_a_failure() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 0);
    release_zip(&repo, "4.4.16", 0);
    let r = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.0", "--repo", r]);
    std::fs::write(
        root.join("node.toml"),
        "[activate]\ncommand = [\"/bin/sh\", \"-c\", \"test $FLEETUP_VERSION = 4.4.0 || sleep 30\"]\ntimeout = \"300ms\"\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, _, err) = node(&root, &["upgrade", "4.4.16", "--repo", r]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("did not finish within 300ms"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.0"));
}

#[test]
fn a_second_writer_is_refused_with_exit_5_naming_the_holder() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 0);
    let lock = fleetup::lock::acquire(
        &root.join("releases"),
        "the store",
        Some("run-42"),
        std::time::Duration::ZERO,
    )
    .unwrap();
    let (code, _, err) = node(
        &root,
        &["upgrade", "4.4.0", "--repo", repo.to_str().unwrap()],
    );
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("fleetup::store::locked")
            && err.contains(&format!("pid {}", std::process::id()))
            && err.contains("run-42"),
        "{err}"
    );
    // Waiting for it works once the holder lets go. The waiter is seen blocked on the
    // lock (it holds the lock file open, still running, the store unchanged) before the
    // holder lets go.
    let mut waiter = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .args(["node", "upgrade", "4.4.0", "--repo"])
        .arg(&repo)
        .args(["--wait-for-lock", "60s", "--root"])
        .arg(&root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock_file = root.join("releases/.lock");
    assert!(
        wait_until(std::time::Duration::from_secs(20), || holds_open(
            waiter.id(),
            &lock_file
        )),
        "the waiter never opened the lock"
    );
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "the waiter did not wait"
    );
    assert!(!root.join("releases/4.4.0").exists());
    drop(lock);
    let status = waiter.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(root.join("releases/4.4.0").exists());
}

#[test]
fn a_checksum_mismatch_refuses_the_package() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    let p = release_zip(&repo, "4.4.0", 0);
    std::fs::write(
        format!("{}.sha256", p.display()),
        format!("{}  x\n", "0".repeat(64)),
    )
    .unwrap();
    let (code, _, err) = node(
        &root,
        &["upgrade", "4.4.0", "--repo", repo.to_str().unwrap()],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("fleetup::package::checksum"), "{err}");
    assert!(!root.join("releases/4.4.0").exists());
    assert!(
        !root.join("releases").join(package_name("4.4.0")).exists(),
        "a package that failed its checksum stayed"
    );
}

#[test]
fn unpack_alone_leaves_the_release_unpacked() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 1);
    release_zip(&repo, "4.4.16", 1);
    let r = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.0", "--repo", r]);
    let out = ok(&root, &["unpack", "4.4.16", "--repo", r]);
    assert!(
        out.ends_with("Unpacked successfully: \"4.4.16\"\n"),
        "{out}"
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tunpacked\n* 4.4.0\tpermanent\n"
    );
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.0"));
    assert!(ok(&root, &["unpack", "4.4.16"]).contains("already unpacked"));
}

#[test]
fn a_wait_longer_than_fleetup_ever_waits_is_refused_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 1);
    let (code, _, err) = node(
        &root,
        &[
            "upgrade",
            "4.4.0",
            "--repo",
            repo.to_str().unwrap(),
            "--wait-for-lock",
            "5000000000000000h",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("fleetup::plan::duration") && err.contains("720h"),
        "{err}"
    );
    assert!(!root.join("current").exists());
}

/// A store on 4.4.0 (permanent) and a repository that also holds 4.4.1.
fn store_on_4_4_0() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 1);
    release_zip(&repo, "4.4.1", 1);
    ok(
        &root,
        &[
            "upgrade",
            "4.4.0",
            "--repo",
            repo.to_str().unwrap(),
            "--product",
            "emqx",
        ],
    );
    (t, repo, root)
}

#[test]
fn a_store_cannot_lead_fleetup_to_files_outside_it() {
    let (t, repo, root) = store_on_4_4_0();
    let repo_arg = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.1", "--repo", repo_arg]);
    let victim = t.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();

    // A lock that is a link elsewhere is refused, and nothing is written through it.
    std::fs::remove_file(root.join("releases/.lock")).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("releases/.lock")).unwrap();
    let (code, _, err) = node(&root, &["uninstall", "4.4.0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("lock"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    std::fs::remove_file(root.join("releases/.lock")).unwrap();

    // A RELEASES whose package names a path outside: the store reads as damaged, and
    // uninstall deletes nothing.
    let state = root.join("releases/RELEASES");
    let text = std::fs::read_to_string(&state)
        .unwrap()
        .replace(&package_name("4.4.0"), victim.to_str().unwrap());
    std::fs::write(&state, text).unwrap();
    let (code, _, err) = node(&root, &["uninstall", "4.4.0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fleetup::store::unreadable"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_tampered_store_is_noticed_not_followed() {
    let (_t, repo, root) = store_on_4_4_0();
    let repo_arg = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.1", "--repo", repo_arg]);
    // The tree of the old release is gone: switching to it is refused, links untouched.
    std::fs::remove_dir_all(root.join("releases/4.4.0")).unwrap();
    let (code, _, err) = node(&root, &["install", "4.4.0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("fleetup::store::state") && err.contains("releases/4.4.0"),
        "{err}"
    );
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.1"));
    // `current` pointed elsewhere by hand: versions says so (and fails).
    std::fs::remove_file(root.join("current")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("current")).unwrap();
    let (code, out, err) = node(&root, &["versions"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("* 4.4.1\tpermanent"), "{out}");
    assert!(err.contains("`current` points at /etc"), "{err}");
}

#[test]
fn a_state_that_cannot_be_written_after_an_activation_needs_attention() {
    let (_t, repo, root) = store_on_4_4_0();
    let repo_arg = repo.to_str().unwrap();
    // The activation of 4.4.1 succeeds, and leaves RELEASES unwritable (a directory
    // where the file was; not even root writes over that).
    std::fs::write(
        root.join("node.toml"),
        "[activate]\ncommand = [\"/bin/sh\", \"-c\", \"test $1 != 4.4.1 || (rm $0/releases/RELEASES && mkdir $0/releases/RELEASES)\", \"{root}\", \"{version}\"]\n",
    )
    .unwrap();
    let (code, _, err) = node(&root, &["upgrade", "4.4.1", "--repo", repo_arg]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("4.4.1") && err.contains("runs"), "{err}");
}

/// Every move of the store's state machine, with EMQX's lines for each: a fresh install
/// is permanent even when not asked, an install of the permanent release switches back to
/// it, current-and-asked-again changes nothing, unpacked then installed, old switched to,
/// going back within MAJOR.MINOR warns and across it is refused, a tree changed by hand
/// is refused.
#[test]
fn the_store_moves_between_its_states_as_emqx_says() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    for v in ["4.3.9", "4.4.0", "4.4.1", "4.4.2"] {
        release_zip(&repo, v, 0);
    }
    let r = repo.to_str().unwrap();
    let versions = |root: &Path| ok(root, &["versions"]);

    // Fresh, --no-permanent: permanent all the same (there is nothing to go back to).
    let out = ok(&root, &["upgrade", "4.3.9", "--no-permanent", "--repo", r]);
    assert!(out.contains("Fresh install of 4.3.9\n"), "{out}");
    assert_eq!(versions(&root), "Installed versions:\n* 4.3.9\tpermanent\n");
    // Unpacked first, then installed.
    ok(&root, &["unpack", "4.4.0", "--repo", r]);
    let out = ok(&root, &["upgrade", "4.4.0", "--policy", "minor"]);
    assert_eq!(
        out,
        "Release 4.4.0 is already unpacked, now installing.\nInstalled Release: 4.4.0\nMade release permanent: \"4.4.0\"\n"
    );
    // Current and asked again without permanent: nothing to do.
    ok(&root, &["upgrade", "4.4.1", "--no-permanent", "--repo", r]);
    let before = snapshot(&root);
    let out = ok(&root, &["upgrade", "4.4.1", "--no-permanent"]);
    assert_eq!(out, "Release 4.4.1 is already installed and current.\n");
    assert_eq!(snapshot(&root), before);
    // Installing the permanent release that does not run: back to it.
    let out = ok(&root, &["install", "4.4.0"]);
    assert_eq!(
        out,
        "Release 4.4.1 is the currently running version.\nInstalled Release: 4.4.0\nMade release permanent: \"4.4.0\"\n"
    );
    assert_eq!(
        versions(&root),
        "Installed versions:\n* 4.4.1\told\n* 4.4.0\tpermanent\n* 4.3.9\told\n"
    );
    let out = ok(&root, &["install", "4.4.0"]);
    assert_eq!(
        out,
        "Release 4.4.0 is already installed, running and set permanent.\n"
    );
    // An old release within 4.4.x: switched to, with a warning.
    ok(&root, &["upgrade", "4.4.2", "--repo", r]);
    let (code, out, err) = node(&root, &["install", "4.4.1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "Release 4.4.1 is marked old, switching to it.\nInstalled Release: 4.4.1\nMade release permanent: \"4.4.1\"\n"
    );
    assert_eq!(
        err,
        "Warning: 4.4.1 is older than 4.4.2, which runs now: going back within 4.4.x.\n"
    );
    // Across 4.4.x: refused, nothing changes.
    let before = snapshot(&root);
    let (code, _, err) = node(&root, &["install", "4.3.9"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("fleetup::store::downgrade") && err.contains("going back leaves 4.4.x"),
        "{err}"
    );
    assert_eq!(snapshot(&root), before);
    // A release tree swapped for a link to a directory by hand: refused, not followed.
    let tree = root.join("releases/4.4.0");
    std::fs::remove_dir_all(&tree).unwrap();
    std::os::unix::fs::symlink(t.path(), &tree).unwrap();
    let (code, _, err) = node(&root, &["install", "4.4.0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fleetup::store::state"), "{err}");
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.1"));
}

#[test]
fn a_refused_package_is_removed_from_the_store_unless_the_operator_put_it_there() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.0", 0);
    let r = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.0", "--repo", r]);
    // Not a zip at all, from the repository: refused, and its copy in the store goes.
    let name = package_name("4.4.1");
    std::fs::write(repo.join(&name), b"not a zip").unwrap();
    let (code, _, err) = node(&root, &["upgrade", "4.4.1", "--repo", r]);
    assert_eq!(code, Some(1), "{err}");
    assert!(!root.join("releases").join(&name).exists());
    // The same file dropped into releases/ by the operator: refused, and left there.
    std::fs::write(root.join("releases").join(&name), b"not a zip").unwrap();
    let (code, _, err) = node(&root, &["upgrade", "4.4.1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(root.join("releases").join(&name).exists());
    // No package of the version anywhere and no product known: said so.
    let fresh = t.path().join("fresh");
    let (code, _, err) = node(&fresh, &["upgrade", "9.9.9", "--repo", r]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("fleetup::store::product") && err.contains("no package of version 9.9.9"),
        "{err}"
    );
}
