//! The .deb: `scripts/deb` builds it (cargo-deb), `dpkg -i` installs it into a scratch
//! root, and what it installed works: `fleetup --version`, a man page per command found
//! by `man -w`, completions and docs in their places.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_installs_a_working_fleetup_with_man_pages_and_completions() {
    // Its own target directory: the suite's build is not disturbed.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/deb-test");
    let built = run(Command::new("scripts/deb").env("CARGO_TARGET_DIR", &target));
    let deb = built
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no .deb named in:\n{built}"))
        .trim()
        .to_owned();

    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    // The scratch root has no libc6 or openssh-client registered: depends are forced.
    run(Command::new("dpkg")
        .arg(format!("--root={}", r.display()))
        .args([
            "--force-depends",
            "--force-not-root",
            "--log=/dev/null",
            "-i",
        ])
        .arg(&deb));
    let status = run(Command::new("dpkg")
        .arg(format!("--root={}", r.display()))
        .args(["-s", "fleetup"]));
    assert!(status.contains("Status: install ok installed"), "{status}");

    let version = run(Command::new(r.join("usr/bin/fleetup")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("fleetup {}", env!("CARGO_PKG_VERSION"))
    );
    for page in [
        "fleetup",
        "fleetup-apply",
        "fleetup-node-upgrade",
        "fleetup-group-rollback",
    ] {
        let found = run(Command::new("man")
            .env("MANPATH", r.join("usr/share/man"))
            .args(["-w", page]));
        assert!(found.contains(&format!("man1/{page}.1")), "{page}: {found}");
    }
    for f in [
        "usr/share/bash-completion/completions/fleetup",
        "usr/share/zsh/vendor-completions/_fleetup",
        "usr/share/fish/vendor_completions.d/fleetup.fish",
        "usr/share/doc/fleetup/README.md",
        "usr/share/doc/fleetup/guide/first-rollout.md",
        "usr/share/doc/fleetup/reference/diagnostics.md",
    ] {
        assert!(r.join(f).is_file(), "{f} is missing");
    }
}
