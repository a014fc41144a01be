//! A repository laid out as EMQX publishes it: every platform of a version side by side.
//! Each node takes the package of its own platform, read from the release it runs, or
//! from `platform:` / `--platform` while it runs none.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;

const PLATFORMS: [&str; 4] = [
    "ubuntu20.04-amd64",
    "ubuntu20.04-arm64",
    "el8-amd64",
    "el8-arm64",
];

/// `emqx-<v>-otp24.3.4.2-1-<platform>.zip` holding VERSION and PLATFORM.
fn build(repo: &Path, version: &str, platform: &str) -> PathBuf {
    let path = repo.join(format!("emqx-{version}-otp24.3.4.2-1-{platform}.zip"));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let o = zip::write::SimpleFileOptions::default();
    z.start_file("VERSION", o).unwrap();
    writeln!(z, "{version}").unwrap();
    z.start_file("PLATFORM", o).unwrap();
    write!(z, "{platform}").unwrap();
    z.finish().unwrap();
    path
}

/// Releases 4.4.16 and 4.4.17 for every platform.
fn repository(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for v in ["4.4.16", "4.4.17"] {
        for p in PLATFORMS {
            build(&repo, v, p);
        }
    }
    repo
}

fn node(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    output(
        fleetup()
            .current_dir(dir)
            .arg("node")
            .args(args)
            .args(["--repo", "repo"]),
    )
}

/// What the node's current release was built for, read from the release tree.
fn running_platform(root: &Path) -> String {
    std::fs::read_to_string(root.join("current/PLATFORM")).unwrap_or_default()
}

#[test]
fn a_fresh_node_needs_its_platform_and_then_takes_its_own_build() {
    let t = tempfile::tempdir().unwrap();
    repository(t.path());
    let (code, _, err) = node(t.path(), &["upgrade", "4.4.16", "--root", "n1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fleetup::package::platform"), "{err}");
    for p in PLATFORMS {
        assert!(err.contains(p), "the candidates are listed: {err}");
    }
    assert!(!t.path().join("n1/current").exists());

    let (code, out, err) = node(
        t.path(),
        &[
            "upgrade",
            "4.4.16",
            "--root",
            "n1",
            "--platform",
            "el8-aarch64",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(running_platform(&t.path().join("n1")), "el8-arm64");
    // From now on the release it runs tells its platform: no flag needed.
    let (code, out, err) = node(t.path(), &["upgrade", "4.4.17", "--root", "n1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("emqx-4.4.17-otp24.3.4.2-1-el8-arm64.zip"),
        "{out}"
    );
    assert_eq!(running_platform(&t.path().join("n1")), "el8-arm64");

    let (code, _, err) = node(
        t.path(),
        &["upgrade", "4.4.16", "--root", "n2", "--platform", "amd64"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--platform"), "{err}");
}

#[test]
fn a_mixed_fleet_upgrades_each_node_on_its_own_build_and_rolls_back() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    repository(dir);
    for (n, p) in [("ubuntu", "ubuntu20.04-amd64"), ("arm", "el8-arm64")] {
        let (code, out, err) = node(dir, &["upgrade", "4.4.16", "--root", n, "--platform", p]);
        assert_eq!(code, Some(0), "{out}{err}");
    }
    std::fs::write(
        dir.join("plan.yaml"),
        "plan: 1\nname: mixed\nproduct: emqx\nrepository: ./repo\nto: 4.4.17\nstate: ./state\n\
         nodes:\n  - { name: ubuntu, root: ./ubuntu }\n  - { name: arm, root: ./arm }\n\
         \x20 - { name: fresh, root: ./fresh, platform: el8-amd64 }\n",
    )
    .unwrap();
    let (code, out, err) = output(fleetup().current_dir(dir).args(["check", "plan.yaml"]));
    assert_eq!(code, Some(0), "{out}{err}");

    // The dry run names each node's package.
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(dir)
                .args(["plan", "plan.yaml", "--format", "json"]),
        );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let package = |name: &str| {
        doc["waves"][0]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == name)
            .map(|t| t["package"].as_str().unwrap_or("").to_owned())
            .unwrap()
    };
    assert_eq!(
        package("ubuntu"),
        "emqx-4.4.17-otp24.3.4.2-1-ubuntu20.04-amd64.zip"
    );
    assert_eq!(package("arm"), "emqx-4.4.17-otp24.3.4.2-1-el8-arm64.zip");
    assert_eq!(package("fresh"), "emqx-4.4.17-otp24.3.4.2-1-el8-amd64.zip");

    let (code, out, err) = output(
        fleetup()
            .current_dir(dir)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for (n, p) in [
        ("ubuntu", "ubuntu20.04-amd64"),
        ("arm", "el8-arm64"),
        ("fresh", "el8-amd64"),
    ] {
        assert_eq!(running_platform(&dir.join(n)), p, "node {n}");
        let releases = std::fs::read_to_string(dir.join(n).join("releases/RELEASES")).unwrap();
        assert!(
            releases.contains(&format!("emqx-4.4.17-otp24.3.4.2-1-{p}.zip")),
            "{n}: {releases}"
        );
    }

    // rollback RUN: the two nodes back on their own 4.4.16, the fresh one on nothing.
    let run = latest_run(&dir.join("state"));
    let (code, out, err) = output(
        fleetup()
            .current_dir(dir)
            .args(["rollback", &run, "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(running_platform(&dir.join("ubuntu")), "ubuntu20.04-amd64");
    assert_eq!(running_platform(&dir.join("arm")), "el8-arm64");
    for n in ["ubuntu", "arm"] {
        let v = output(
            fleetup()
                .current_dir(dir)
                .args(["node", "versions", "--root", n]),
        )
        .1;
        assert!(v.contains("* 4.4.16\tpermanent"), "{n}: {v}");
    }
    assert!(!dir.join("fresh/current").exists());
}

#[test]
fn a_fresh_node_without_a_platform_is_refused_at_its_line() {
    let t = tempfile::tempdir().unwrap();
    repository(t.path());
    std::fs::write(
        t.path().join("plan.yaml"),
        "plan: 1\nname: p\nproduct: emqx\nrepository: ./repo\nto: 4.4.17\nnodes:\n  - { name: fresh, root: ./fresh }\n",
    )
    .unwrap();
    let (code, out, _) =
        output(
            fleetup()
                .current_dir(t.path())
                .args(["check", "plan.yaml", "--format", "json"]),
        );
    assert_eq!(code, Some(1), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &doc["files"][0]["problems"][0];
    assert_eq!(p["code"], "fleetup::package::platform", "{doc}");
    assert_eq!(p["line"], 7, "{doc}");
    assert!(p["help"].as_str().unwrap().contains("el8-arm64"), "{doc}");
}

#[test]
fn the_rules_compare_with_the_release_that_runs_not_the_permanent_one() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let repo = repository(dir);
    build(&repo, "4.4.18", "el8-arm64");
    let pf = ["--platform", "el8-arm64"];
    for (v, extra) in [("4.4.16", &[][..]), ("4.4.18", &["--no-permanent"][..])] {
        let (code, out, err) = output(
            fleetup()
                .current_dir(dir)
                .args(["node", "upgrade", v, "--root", "n1", "--repo", "repo"])
                .args(pf)
                .args(extra),
        );
        assert_eq!(code, Some(0), "{out}{err}");
    }
    // 4.4.18 runs (current, not permanent): 4.4.17 is not an upgrade from it.
    let (code, out, err) = node(dir, &["upgrade", "4.4.17", "--root", "n1"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup::rule::not-newer"), "{err}");
    assert!(err.contains("4.4.18 → 4.4.17"), "{err}");
    // check says the same, from the live store.
    std::fs::write(
        dir.join("plan.yaml"),
        "plan: 1\nname: p\nproduct: emqx\nrepository: ./repo\nto: 4.4.17\nnodes:\n  - { name: n1, root: ./n1 }\n",
    )
    .unwrap();
    let (code, out, err) = output(fleetup().current_dir(dir).args(["check", "plan.yaml"]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup::rule::not-newer"), "{err}");
}

#[test]
fn an_ee_package_on_a_fresh_store_is_emqx_edition_ee() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let plain = build(&repo, "4.4.17", "el8-arm64");
    std::fs::rename(
        &plain,
        repo.join("emqx-ee-4.4.17-otp24.3.4.2-1-el8-arm64.zip"),
    )
    .unwrap();
    let (code, out, err) = node(
        t.path(),
        &["upgrade", "4.4.17", "--root", "n1", "--edition", "ee"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let releases = std::fs::read_to_string(t.path().join("n1/releases/RELEASES")).unwrap();
    assert!(releases.contains("product = \"emqx\""), "{releases}");
    // Without --edition too: the name says ee, and the product stays emqx.
    let (code, out, err) = node(t.path(), &["unpack", "4.4.17", "--root", "n2"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("only another edition"), "{err}");
    let releases =
        std::fs::read_to_string(t.path().join("n2/releases/RELEASES")).unwrap_or_default();
    assert!(!releases.contains("emqx-ee\""), "{releases}");
}

#[test]
fn a_package_whose_name_cannot_be_read_is_named_with_the_part_that_failed() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    // EMQX 4.3 put the OS before the version.
    let p = build(&repo, "4.3.22", "el8-amd64");
    std::fs::rename(&p, repo.join("emqx-ubuntu20.04-4.3.22-amd64.zip")).unwrap();
    let (code, _, err) = node(
        t.path(),
        &["upgrade", "4.3.22", "--root", "n1", "--product", "emqx"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fleetup::package::missing"), "{err}");
    // (miette wraps long lines, so the parts are looked for one by one.)
    assert!(
        err.contains("ubuntu20.04-4.3.22-amd64.zip cannot be read") && err.contains("(version:"),
        "{err}"
    );
    // check warns about it too.
    std::fs::write(
        t.path().join("plan.yaml"),
        "plan: 1\nname: p\nproduct: emqx\nrepository: ./repo\nto: 4.4.17\nnodes:\n  - { name: n1, root: ./n1, platform: el8-amd64 }\n",
    )
    .unwrap();
    let (_, _, err) = output(fleetup().current_dir(t.path()).args(["check", "plan.yaml"]));
    assert!(
        err.contains("emqx-ubuntu20.04-4.3.22-amd64.zip") && err.contains("does not parse"),
        "{err}"
    );
}
