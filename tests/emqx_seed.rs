//! EMQX's hot-upgrade guide (the seed `shared/seeds/003_…`, "版本热升级") replayed step by
//! step against `fleetup node`, every line of output compared with the guide's; and
//! EMQX's install/uninstall verbs where the guide is silent, in the words of its
//! `bin/install_upgrade.escript`. The one difference by design: fleetup names the zip it
//! unpacks where EMQX names its internal `emqx-<vsn>.tar.gz`.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn node(root: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    output(fleetup().arg("node").args(args).arg("--root").arg(root))
}

fn ok(root: &Path, args: &[&str]) -> String {
    let (code, out, err) = node(root, args);
    assert_eq!(code, Some(0), "fleetup node {args:?}:\n{out}{err}");
    out
}

/// The guide's lines, with EMQX's tarball name where fleetup names the zip it unpacked.
fn as_guide_says(out: &str) -> String {
    let mut s = out.to_owned();
    for v in ["4.4.0", "4.4.15", "4.4.16", "4.4.17"] {
        s = s.replace(&package_name(v), &format!("emqx-{v}.tar.gz"));
    }
    s
}

/// A node on 4.4.0 (permanent), the guide's starting point, and a repository with more.
fn node_on_4_4_0(dir: &Path) -> (PathBuf, PathBuf) {
    let (repo, root) = (dir.join("repo"), dir.join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    for v in ["4.4.0", "4.4.15", "4.4.16", "4.4.17"] {
        release_zip(&repo, v, 1);
    }
    std::fs::create_dir_all(&root).unwrap();
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
    (repo, root)
}

/// Step 4 of the guide: the zip is copied into the node's releases/.
fn drop_in(repo: &Path, root: &Path, v: &str) {
    std::fs::copy(
        repo.join(package_name(v)),
        root.join("releases").join(package_name(v)),
    )
    .unwrap();
}

#[test]
fn the_guide_upgrade_versions_and_uninstall() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = node_on_4_4_0(t.path());
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.0\tpermanent\n"
    );
    drop_in(&repo, &root, "4.4.16");
    assert_eq!(
        as_guide_says(&ok(&root, &["upgrade", "4.4.16"])),
        "Release 4.4.16 not found, attempting to unpack releases/emqx-4.4.16.tar.gz\n\
         Unpacked successfully: \"4.4.16\"\n\
         Installed Release: 4.4.16\n\
         Made release permanent: \"4.4.16\"\n"
    );
    // The guide prints `* 4.4.16 permanent` with a space there: a typo of its own; EMQX
    // and fleetup both print a tab.
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tpermanent\n* 4.4.0\told\n"
    );
    assert_eq!(
        ok(&root, &["uninstall", "4.4.0"]),
        "Release 4.4.0 is marked old, uninstalling it.\nUninstalled Release: 4.4.0\n"
    );
}

#[test]
fn the_guide_no_permanent_then_install_then_downgrade() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = node_on_4_4_0(t.path());
    drop_in(&repo, &root, "4.4.16");
    assert_eq!(
        as_guide_says(&ok(&root, &["upgrade", "--no-permanent", "4.4.16"])),
        "Release 4.4.16 not found, attempting to unpack releases/emqx-4.4.16.tar.gz\n\
         Unpacked successfully: \"4.4.16\"\n\
         Installed Release: 4.4.16\n"
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.16\tcurrent\n* 4.4.0\tpermanent\n"
    );
    assert_eq!(
        ok(&root, &["install", "4.4.16"]),
        "Release 4.4.16 is already installed and current, making permanent.\n\
         Made release permanent: \"4.4.16\"\n"
    );
    // The guide's downgrade prints EMQX's three lines; fleetup's data warning goes to
    // stderr.
    let (code, out, err) = node(&root, &["downgrade", "4.4.0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "Release 4.4.0 is marked old, switching to it.\n\
         Installed Release: 4.4.0\n\
         Made release permanent: \"4.4.0\"\n"
    );
    assert!(err.starts_with("Warning: data written by 4.4.16"), "{err}");
}

#[test]
fn install_switches_back_to_the_permanent_release_after_no_permanent() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = node_on_4_4_0(t.path());
    let repo = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.16", "--repo", repo]);
    ok(
        &root,
        &["upgrade", "--no-permanent", "4.4.17", "--repo", repo],
    );
    // 4.4.16 is permanent, 4.4.17 runs: install 4.4.16 goes back to it.
    assert_eq!(
        ok(&root, &["install", "4.4.16"]),
        "Release 4.4.17 is the currently running version.\n\
         Installed Release: 4.4.16\n\
         Made release permanent: \"4.4.16\"\n"
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.17\told\n* 4.4.16\tpermanent\n* 4.4.0\told\n"
    );
    assert_eq!(link(&root, "current").as_deref(), Some("releases/4.4.16"));
    assert_eq!(
        std::fs::read_to_string(root.join("current/VERSION")).unwrap(),
        "4.4.16\n"
    );
    // Now it runs and is permanent: EMQX's words for nothing to do.
    assert_eq!(
        ok(&root, &["install", "4.4.16"]),
        "Release 4.4.16 is already installed, running and set permanent.\n"
    );
    // --no-permanent back to the permanent release keeps it permanent.
    ok(&root, &["install", "--no-permanent", "4.4.17"]);
    assert_eq!(
        ok(&root, &["install", "--no-permanent", "4.4.16"]),
        "Release 4.4.17 is the currently running version.\nInstalled Release: 4.4.16\n"
    );
    assert_eq!(
        ok(&root, &["versions"]),
        "Installed versions:\n* 4.4.17\told\n* 4.4.16\tpermanent\n* 4.4.0\told\n"
    );
    // `upgrade` stays an upgrade: going back is refused, and says how.
    let (code, _, err) = node(&root, &["upgrade", "4.4.0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fleetup::rule::not-newer"), "{err}");
}

#[test]
fn install_of_an_old_release_goes_back_within_its_minor_and_says_so() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = node_on_4_4_0(t.path());
    let repo = repo.to_str().unwrap();
    ok(&root, &["upgrade", "4.4.15", "--repo", repo]);
    ok(&root, &["upgrade", "4.4.16", "--repo", repo]);
    let (code, out, err) = node(&root, &["install", "4.4.15"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        out,
        "Release 4.4.15 is marked old, switching to it.\n\
         Installed Release: 4.4.15\n\
         Made release permanent: \"4.4.15\"\n"
    );
    assert_eq!(
        err,
        "Warning: 4.4.15 is older than 4.4.16, which runs now: going back within 4.4.x.\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("current/VERSION")).unwrap(),
        "4.4.15\n"
    );
}

#[test]
fn uninstall_and_unpack_speak_as_emqx_does() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = node_on_4_4_0(t.path());
    let repo = repo.to_str().unwrap();
    // Not in the store: already uninstalled, not an error.
    let before = snapshot(&root);
    assert_eq!(
        ok(&root, &["uninstall", "4.4.9"]),
        "Release 4.4.9 is already uninstalled.\n"
    );
    assert_eq!(snapshot(&root), before);
    // unpack, by the state the release is in.
    ok(&root, &["unpack", "4.4.16", "--repo", repo]);
    assert_eq!(
        ok(&root, &["unpack", "4.4.16"]),
        "Release 4.4.16 is already unpacked.\n"
    );
    assert_eq!(
        ok(&root, &["unpack", "4.4.0"]),
        "Release 4.4.0 is already installed and set permanent.\n"
    );
    // install of an unpacked release.
    assert_eq!(
        ok(&root, &["install", "4.4.16", "--no-permanent"]),
        "Release 4.4.16 is already unpacked, now installing.\nInstalled Release: 4.4.16\n"
    );
    assert_eq!(
        ok(&root, &["unpack", "4.4.16"]),
        "Release 4.4.16 is already installed and current.\n"
    );
    let (code, _, err) = node(&root, &["uninstall", "4.4.16"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Uninstall failed: Release 4.4.16 is marked current."),
        "{err}"
    );
    let (code, _, err) = node(&root, &["uninstall", "4.4.0"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Uninstall failed: Release 4.4.0 is running."),
        "{err}"
    );
    ok(&root, &["install", "4.4.16"]);
    ok(&root, &["unpack", "4.4.17", "--repo", repo]);
    assert_eq!(
        ok(&root, &["uninstall", "4.4.17"]),
        "Release 4.4.17 is marked unpacked, uninstalling it\nUninstalled Release: 4.4.17\n"
    );
}
