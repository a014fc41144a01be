//! Hostile release packages, built here byte by byte: each is refused with a clear
//! error, the store is left exactly as it was, and nothing is written outside it.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use fleetup::store::unpack::{Limits, unpack};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

fn opts() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Stored)
}

/// A package named for `version` whose entries `build` writes.
fn hostile(
    repo: &Path,
    version: &str,
    build: impl FnOnce(&mut zip::ZipWriter<std::fs::File>),
) -> PathBuf {
    let path = repo.join(package_name(version));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    z.start_file("VERSION", opts()).unwrap();
    writeln!(z, "{version}").unwrap();
    build(&mut z);
    z.finish().unwrap();
    path
}

/// Replaces every occurrence of `from` by `to` (same length) in a file.
fn patch(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut b = std::fs::read(path).unwrap();
    let mut n = 0;
    for i in 0..b.len().saturating_sub(from.len()) {
        if &b[i..i + from.len()] == from {
            b[i..i + from.len()].copy_from_slice(to);
            n += 1;
        }
    }
    assert!(n > 0, "nothing to patch");
    std::fs::write(path, b).unwrap();
}

/// Sets the compression method of every entry (local and central headers).
fn set_method(path: &Path, method: u16) {
    let mut b = std::fs::read(path).unwrap();
    for i in 0..b.len().saturating_sub(12) {
        if b[i..i + 4] == *b"PK\x03\x04" {
            b[i + 8..i + 10].copy_from_slice(&method.to_le_bytes());
        } else if b[i..i + 4] == *b"PK\x01\x02" {
            b[i + 10..i + 12].copy_from_slice(&method.to_le_bytes());
        }
    }
    std::fs::write(path, b).unwrap();
}

struct Case {
    name: &'static str,
    code: &'static str,
    make: fn(&Path) -> PathBuf,
}

const CASES: &[Case] = &[
    Case {
        name: "zip-slip",
        code: "fleetup::package::unsafe-entry",
        make: |repo| {
            hostile(repo, "4.4.1", |z| {
                z.start_file("../../../outside/evil.txt", opts()).unwrap();
                z.write_all(b"pwned").unwrap();
            })
        },
    },
    Case {
        name: "absolute path",
        code: "fleetup::package::unsafe-entry",
        make: |repo| {
            let abs = format!("{}/outside/abs.txt", repo.parent().unwrap().display());
            hostile(repo, "4.4.1", move |z| {
                z.start_file(abs, opts()).unwrap();
                z.write_all(b"pwned").unwrap();
            })
        },
    },
    Case {
        name: "escaping symlink",
        code: "fleetup::package::unsafe-entry",
        make: |repo| {
            hostile(repo, "4.4.1", |z| {
                z.add_symlink("bin/escape", "../../../outside", opts())
                    .unwrap();
            })
        },
    },
    Case {
        // Each link stays inside on its own text; followed, `up` is `./..`.
        name: "symlink chain",
        code: "fleetup::package::unsafe-entry",
        make: |repo| {
            hostile(repo, "4.4.1", |z| {
                z.add_symlink("l1", ".", opts()).unwrap();
                z.add_symlink("up", "l1/..", opts()).unwrap();
            })
        },
    },
    Case {
        name: "symlink chain to /etc",
        code: "fleetup::package::unsafe-entry",
        make: |repo| {
            hostile(repo, "4.4.1", |z| {
                z.add_directory("a/", opts()).unwrap();
                z.add_symlink("a/l1", "..", opts()).unwrap();
                z.add_symlink("etc", "a/l1/a/l1/a/l1/../../../../etc", opts())
                    .unwrap();
            })
        },
    },
    Case {
        name: "symlink loop",
        code: "fleetup::package::unsafe-entry",
        make: |repo| {
            hostile(repo, "4.4.1", |z| {
                z.add_symlink("a", "b", opts()).unwrap();
                z.add_symlink("b", "a", opts()).unwrap();
            })
        },
    },
    Case {
        name: "absolute symlink",
        code: "fleetup::package::unsafe-entry",
        make: |repo| {
            hostile(repo, "4.4.1", |z| {
                z.add_symlink("etc-passwd", "/etc/passwd", opts()).unwrap();
            })
        },
    },
    Case {
        name: "bzip2 entry",
        code: "fleetup::package::unsupported",
        make: |repo| {
            let p = hostile(repo, "4.4.1", |z| {
                z.start_file("data.txt", opts()).unwrap();
                z.write_all(b"BZh9 pretend").unwrap();
            });
            set_method(&p, 12);
            p
        },
    },
    Case {
        name: "truncated archive",
        code: "fleetup::package::corrupt",
        make: |repo| {
            let p = release_zip(repo, "4.4.1", 20);
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            p
        },
    },
    Case {
        name: "not a zip at all",
        code: "fleetup::package::corrupt",
        make: |repo| {
            let p = repo.join(package_name("4.4.1"));
            std::fs::write(&p, b"#!/bin/sh\nrm -rf /\n").unwrap();
            p
        },
    },
    Case {
        name: "duplicate entries",
        code: "fleetup::package::duplicate-entry",
        make: |repo| {
            let p = hostile(repo, "4.4.1", |z| {
                z.start_file("conf/a.txt", opts()).unwrap();
                z.write_all(b"first").unwrap();
                z.start_file("conf/b.txt", opts()).unwrap();
                z.write_all(b"second").unwrap();
            });
            patch(&p, b"conf/b.txt", b"conf/a.txt");
            p
        },
    },
    Case {
        name: "damaged data",
        code: "fleetup::package::corrupt",
        make: |repo| {
            let p = hostile(repo, "4.4.1", |z| {
                z.start_file("data.txt", opts()).unwrap();
                z.write_all(b"the original content of the release").unwrap();
            });
            patch(&p, b"original", b"ORIGINAL");
            p
        },
    },
];

#[test]
fn every_hostile_package_is_refused_and_changes_nothing() {
    for case in CASES {
        let t = tempfile::tempdir().unwrap();
        let (repo, root, outside) = (
            t.path().join("repo"),
            t.path().join("emqx"),
            t.path().join("outside"),
        );
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        release_zip(&repo, "4.4.0", 2);
        let r = repo.to_str().unwrap();
        fleetup()
            .args(["node", "upgrade", "4.4.0", "--root"])
            .arg(&root)
            .args(["--repo", r])
            .assert()
            .success();
        (case.make)(&repo);

        let before = snapshot(&root);
        let out = fleetup()
            .args(["node", "upgrade", "4.4.1", "--root"])
            .arg(&root)
            .args(["--repo", r])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", case.name);
        assert!(
            err.contains(case.code),
            "{}: expected {}, got:\n{err}",
            case.name,
            case.code
        );
        assert!(!err.contains("panicked"), "{}: {err}", case.name);
        assert_eq!(snapshot(&root), before, "{}: the store changed", case.name);
        assert!(
            snapshot(&outside).is_empty(),
            "{}: something was written outside",
            case.name
        );
        assert!(
            !t.path().join("evil.txt").exists() && !root.join("evil.txt").exists(),
            "{}",
            case.name
        );
    }
}

#[test]
fn size_limits_hold_even_when_headers_lie() {
    let t = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 100,
    };
    // A bomb: 16 MiB of zeros deflate to a few KiB.
    let bomb = t.path().join("bomb.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&bomb).unwrap());
    z.start_file(
        "zeros",
        SimpleFileOptions::default().compression_method(CompressionMethod::Deflated),
    )
    .unwrap();
    z.write_all(&vec![0u8; 16 << 20]).unwrap();
    z.finish().unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 100_000);
    let (staging, dest) = (t.path().join(".staging"), t.path().join("tree"));
    let e = unpack(&bomb, &staging, &dest, limits).unwrap_err();
    assert_eq!(e.code.as_str(), "fleetup::package::too-large");
    assert!(!staging.exists() && !dest.exists());

    // The same bomb with its declared size patched down to 1 KiB: caught while writing.
    let mut b = std::fs::read(&bomb).unwrap();
    let size = (16u32 << 20).to_le_bytes();
    let small = 1024u32.to_le_bytes();
    let mut n = 0;
    for i in 0..b.len() - 4 {
        if b[i..i + 4] == size {
            b[i..i + 4].copy_from_slice(&small);
            n += 1;
        }
    }
    assert!(n >= 2);
    let liar = t.path().join("liar.zip");
    std::fs::write(&liar, b).unwrap();
    let e = unpack(&liar, &staging, &dest, Limits::default()).unwrap_err();
    assert!(
        ["fleetup::package::too-large", "fleetup::package::corrupt"].contains(&e.code.as_str()),
        "{}: {}",
        e.code.as_str(),
        e.message
    );
    assert!(!staging.exists() && !dest.exists());

    // Too many entries.
    let many = t.path().join("many.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&many).unwrap());
    for i in 0..101 {
        z.start_file(format!("f{i}"), opts()).unwrap();
    }
    z.finish().unwrap();
    let e = unpack(&many, &staging, &dest, limits).unwrap_err();
    assert_eq!(e.code.as_str(), "fleetup::package::too-large");
}

#[test]
fn a_symlink_that_stays_inside_is_kept() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("ok.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    z.start_file("lib/real.sh", opts().unix_permissions(0o755))
        .unwrap();
    z.write_all(b"#!/bin/sh\n").unwrap();
    z.add_symlink("bin/run", "../lib/real.sh", opts()).unwrap();
    z.finish().unwrap();
    let dest = t.path().join("tree");
    unpack(&p, &t.path().join(".staging"), &dest, Limits::default()).unwrap();
    assert_eq!(
        std::fs::read_link(dest.join("bin/run")).unwrap(),
        Path::new("../lib/real.sh")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dest.join("lib/real.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}
