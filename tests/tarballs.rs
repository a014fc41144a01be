//! `.tar.gz` release packages, as EMQX 5.x publishes them on Linux: installed like zips,
//! and vetted like zips (escaping names, links, duplicates, damage), byte by byte.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;

/// One entry of a hand-built tarball.
enum E<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
}

/// Writes a `.tar.gz` whose headers say exactly what `entries` say: names are written
/// into the header bytes directly, so hostile names (`../x`, `/etc/x`) go in as they are.
fn tarball(path: &Path, entries: &[E]) -> PathBuf {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, data): (&str, &[u8]) = match e {
            E::File(n, d, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                (n, d)
            }
            E::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (n, b"")
            }
            E::Symlink(n, target) | E::HardLink(n, target) => {
                h.set_entry_type(if matches!(e, E::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                h.set_mode(0o777);
                (n, b"")
            }
            E::Fifo(n) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                (n, b"")
            }
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
    path.to_owned()
}

fn name(v: &str) -> String {
    format!("emqx-{v}-ubuntu22.04-amd64.tar.gz")
}

/// A good 5.x-style release: VERSION, an executable bin/ctl, a link inside the tree.
fn release(repo: &Path, v: &str) -> PathBuf {
    let version = format!("{v}\n");
    tarball(
        &repo.join(name(v)),
        &[
            E::Dir("bin/"),
            E::File("VERSION", version.as_bytes(), 0o644),
            E::File("bin/ctl", b"#!/bin/sh\necho ctl\n", 0o755),
            E::Symlink("bin/emqx", "ctl"),
        ],
    )
}

fn node(root: &Path, repo: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    output(
        fleetup()
            .arg("node")
            .args(args)
            .arg("--root")
            .arg(root)
            .arg("--repo")
            .arg(repo),
    )
}

#[test]
fn a_tarball_release_installs_and_upgrades_like_a_zip() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    release(&repo, "5.1.0");
    release(&repo, "5.1.1");
    // A fresh store tells the product from the package names.
    let (code, out, err) = node(&root, &repo, &["upgrade", "5.1.0"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&name("5.1.0")), "{out}");
    assert_eq!(
        std::fs::read_to_string(root.join("current/VERSION")).unwrap(),
        "5.1.0\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("current/bin/ctl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "bin/ctl keeps its executable bits");
    assert_eq!(
        std::fs::read_link(root.join("current/bin/emqx")).unwrap(),
        PathBuf::from("ctl")
    );
    let (code, out, err) = node(&root, &repo, &["upgrade", "5.1.1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(root.join("current/VERSION")).unwrap(),
        "5.1.1\n"
    );
}

#[test]
fn hostile_tarballs_are_refused_and_change_nothing() {
    let cases: Vec<(&str, Vec<E>, &str)> = vec![
        (
            "parent",
            vec![E::File("../escaped", b"x", 0o644)],
            "fleetup::package::unsafe-entry",
        ),
        (
            "absolute",
            vec![E::File("/tmp/fleetup-escaped", b"x", 0o644)],
            "fleetup::package::unsafe-entry",
        ),
        (
            "symlink out",
            vec![E::Symlink("etc", "../../../etc")],
            "fleetup::package::unsafe-entry",
        ),
        (
            "symlink chain",
            vec![E::Symlink("l1", "."), E::Symlink("up", "l1/..")],
            "fleetup::package::unsafe-entry",
        ),
        (
            "absolute symlink",
            vec![E::Symlink("etc", "/etc")],
            "fleetup::package::unsafe-entry",
        ),
        (
            "hard link",
            vec![
                E::File("VERSION", b"5.1.0\n", 0o644),
                E::HardLink("passwd", "VERSION"),
            ],
            "fleetup::package::unsafe-entry",
        ),
        (
            "duplicate",
            vec![
                E::File("VERSION", b"5.1.0\n", 0o644),
                E::File("VERSION", b"evil\n", 0o644),
            ],
            "fleetup::package::duplicate-entry",
        ),
        (
            "fifo",
            vec![E::Fifo("pipe")],
            "fleetup::package::unsupported",
        ),
    ];
    for (what, entries, code_name) in cases {
        let t = tempfile::tempdir().unwrap();
        let (repo, root) = (t.path().join("repo"), t.path().join("deep/emqx"));
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        tarball(&repo.join(name("5.1.0")), &entries);
        let (code, out, err) = node(&root, &repo, &["upgrade", "5.1.0", "--product", "emqx"]);
        assert_eq!(code, Some(1), "{what}: {out}{err}");
        assert!(err.contains(code_name), "{what}: {err}");
        assert!(!t.path().join("deep/escaped").exists(), "{what}");
        assert!(!root.join("current").exists(), "{what}");
        let left: Vec<_> = std::fs::read_dir(root.join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert!(left.is_empty(), "{what}: left {left:?}");
    }
}

#[test]
fn a_damaged_tarball_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (repo, root) = (t.path().join("repo"), t.path().join("emqx"));
    std::fs::create_dir_all(&repo).unwrap();
    let good = release(&repo, "5.1.0");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::File::create(&good)
        .unwrap()
        .write_all(&bytes[..bytes.len() / 2])
        .unwrap();
    let (code, _, err) = node(&root, &repo, &["upgrade", "5.1.0", "--product", "emqx"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fleetup::package::corrupt"), "{err}");
    assert!(!root.join("current").exists());
}
