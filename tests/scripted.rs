//! Scripted targets against the real thing: a Python virtualenv and pip, installing
//! wheels of a small package from a local directory (`--no-index --find-links`: no
//! network). The shipped example plan `plans/scripted-pip.yaml` is what runs, its
//! `vars` pointed at this test's virtualenv and wheels.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Writes a wheel of `fleetup-demo` `version` into `wheels`: its module says the
/// version and, run as `python -m fleetup_demo`, exits 0 when `healthy`, else 1.
fn wheel(wheels: &Path, version: &str, healthy: bool) {
    let script = r#"
import base64, hashlib, sys, zipfile
out, version, healthy = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
dist = f"fleetup_demo-{version}.dist-info"
files = {
    "fleetup_demo/__init__.py": f"VERSION = {version!r}\n",
    "fleetup_demo/__main__.py": "import sys\nsys.exit(0 if %s else 1)\n" % healthy,
    f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: fleetup-demo\nVersion: {version}\n",
    f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: fleetup-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record.append(f"{name},sha256={digest},{len(text.encode())}")
record.append(f"{dist}/RECORD,,")
files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
with zipfile.ZipFile(f"{out}/fleetup_demo-{version}-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
"#;
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(wheels)
        .arg(version)
        .arg(if healthy { "1" } else { "0" })
        .status()
        .unwrap();
    assert!(made.success());
}

/// A virtualenv with fleetup-demo 1.0.0 installed, wheels of 1.0.0, 1.0.1 (healthy),
/// 1.0.2 (fails its check) and 1.1.0, and the shipped example plan pointed at them
/// (its `to` replaced by `to`).
fn pip_fleet(to: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (venv, wheels) = (dir.path().join("venv"), dir.path().join("wheels"));
    std::fs::create_dir_all(&wheels).unwrap();
    for (v, ok) in [
        ("1.0.0", true),
        ("1.0.1", true),
        ("1.0.2", false),
        ("1.1.0", true),
    ] {
        wheel(&wheels, v, ok);
    }
    let made = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv (scripts/test installs python3-venv)");
    assert!(made.success());
    let installed = std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--no-index", "--find-links"])
        .arg(&wheels)
        .arg("fleetup-demo==1.0.0")
        .status()
        .unwrap();
    assert!(installed.success());
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/scripted-pip.yaml"),
    )
    .unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        example
            .replace("/opt/fleetup-demo/venv", &venv.display().to_string())
            .replace("/opt/fleetup-demo/wheels", &wheels.display().to_string())
            .replace("to: 1.0.1", &format!("to: {to}")),
    )
    .unwrap();
    (dir, plan)
}

/// The ids of the runs under `dir`'s `state`, oldest first.
fn runs(dir: &Path) -> Vec<String> {
    runs_by_start(&dir.join("state"))
}

/// The version pip says is installed.
fn installed(dir: &Path) -> String {
    let out = std::process::Command::new(dir.join("venv/bin/python"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('fleetup-demo'))",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_example_plan_upgrades_a_pip_package_and_rollback_run_takes_it_back() {
    let (dir, plan) = pip_fleet("1.0.1");
    let (code, out, err) = output(fleetup().arg("check").arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("1 scripted target"), "{out}");

    // The dry run reads what runs with the `version` command and changes nothing.
    let (code, out, err) = output(fleetup().arg("plan").arg(&plan).args(["--format", "json"]));
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let t = &doc["waves"][0][0];
    assert_eq!(
        (
            t["kind"].as_str(),
            t["from"].as_str(),
            t["from_source"].as_str()
        ),
        (Some("scripted"), Some("1.0.0"), Some("live")),
        "{doc}"
    );
    assert_eq!(t["rules"], "passed", "{doc}");
    assert_eq!(installed(dir.path()), "1.0.0");

    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["outcome"], "upgraded", "{doc}");
    assert_eq!(doc["targets"][0]["from"], "1.0.0", "{doc}");
    assert_eq!(installed(dir.path()), "1.0.1");

    // `status` reads it the same way.
    let (code, out, err) = output(
        fleetup()
            .arg("status")
            .arg(&plan)
            .args(["--format", "json"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["current"], "1.0.1", "{doc}");
    assert_eq!(
        doc["targets"][0]["last_run"]["outcome"], "upgraded",
        "{doc}"
    );

    // Applied again: already there.
    let (code, out, _) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already runs 1.0.1"), "{out}");

    // `rollback RUN` of the first run puts 1.0.0 back with pip.
    let ids = runs(dir.path());
    let first = &ids[0];
    let (code, out, err) = output(
        fleetup()
            .args(["rollback", first, "--yes", "--state"])
            .arg(dir.path().join("state")),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(installed(dir.path()), "1.0.0");
}

#[test]
fn a_scripted_upgrade_that_fails_its_check_is_rolled_back_with_pip() {
    let (dir, plan) = pip_fleet("1.0.2");
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["outcome"], "rolled-back", "{doc}");
    assert_eq!(
        doc["targets"][0]["code"], "fleetup::health::unhealthy",
        "{doc}"
    );
    assert!(
        doc["targets"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("back on 1.0.0"),
        "{doc}"
    );
    assert_eq!(installed(dir.path()), "1.0.0");
}

#[test]
fn a_minor_upgrade_of_a_scripted_target_is_refused_under_patch_only() {
    let (dir, plan) = pip_fleet("1.1.0");
    let (code, out, _) = output(fleetup().arg("plan").arg(&plan).args(["--format", "json"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not a patch upgrade"), "{out}");
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("not a patch upgrade"), "{out}");
    assert_eq!(installed(dir.path()), "1.0.0");
}

/// Over SSH: the same plan with `ssh:` runs its commands on the host through the agent
/// nodes use (the commands record `$SSH_CONNECTION`, set only in an SSH session), a
/// failed check included.
#[test]
fn a_scripted_target_is_upgraded_and_rolled_back_on_its_host_over_ssh() {
    let sshd = common::sshd::Sshd::start();
    for (to, code, outcome, after) in [
        ("1.0.2", Some(3), "rolled-back", "1.0.0"),
        ("1.0.1", Some(0), "upgraded", "1.0.1"),
    ] {
        let (dir, plan) = pip_fleet(to);
        let log = dir.path().join("ssh.log");
        let text = std::fs::read_to_string(&plan).unwrap();
        let text = text
            .replace(
                "    version: [\"{venv}/bin/python\", \"-c\",",
                &format!(
                    "    ssh: \"{}\"\n    version: [\"sh\", \"-c\", \"echo \\\"$SSH_CONNECTION\\\" >> {}; exec \\\"$0\\\" \\\"$@\\\"\", \"{{venv}}/bin/python\", \"-c\",",
                    sshd.addr(),
                    log.display()
                ),
            )
            .replace(
                "state: ./state\n",
                &format!("state: ./state\nssh_config: {}\n", sshd.config().display()),
            );
        std::fs::write(&plan, text).unwrap();
        let (c, out, err) = output(fleetup().arg("check").arg(&plan));
        assert_eq!(c, Some(0), "{out}{err}");
        let (c, out, err) = output(
            fleetup()
                .arg("apply")
                .arg(&plan)
                .args(["--yes", "--format", "json"]),
        );
        assert_eq!(c, code, "{out}{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["targets"][0]["outcome"], outcome, "{doc}");
        assert_eq!(installed(dir.path()), after);
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = seen.lines().collect();
        assert!(
            lines.len() >= 2 && lines.iter().all(|l| l.starts_with("127.0.0.1 ")),
            "the version command did not run over SSH: {seen:?}"
        );
    }
}

/// `bundle` says plainly that what scripted targets install is not bundled, and writes
/// nothing.
#[test]
fn a_bundle_of_a_plan_with_scripted_targets_is_refused_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/scripted-pip.yaml");
    let out = dir.path().join("bundle");
    let (code, o, err) = output(fleetup().arg("bundle").arg(&plan).arg("-o").arg(&out));
    assert_eq!(code, Some(1), "{o}{err}");
    assert!(
        flat(&err).contains("fleetup::unsupported") && flat(&err).contains("not bundled"),
        "{err}"
    );
    assert!(!out.exists());
}

/// Lifecycle hooks of a scripted target run around its change and after any rollback,
/// with `{version}` where it is or goes: `before`/`after` around an upgrade,
/// `on_rollback` then `after` when a failed check or `rollback RUN` takes it back.
#[test]
fn a_scripted_targets_lifecycle_hooks_run_around_its_change_and_rollbacks() {
    let (dir, plan) = pip_fleet("1.0.2");
    let log = dir.path().join("hooks.log");
    let hook = |w: &str| {
        format!(
            "[\"sh\", \"-c\", \"echo {w} {{version}} >> {}\"]",
            log.display()
        )
    };
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "    timeout: 2m\n",
        &format!(
            "    timeout: 2m\n    hooks:\n      before: {}\n      after: {}\n      on_rollback: {}\n",
            hook("before"),
            hook("after"),
            hook("on_rollback")
        ),
    );
    std::fs::write(&plan, &text).unwrap();
    let take = || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        t.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    assert_eq!(
        take(),
        ["before 1.0.2", "on_rollback 1.0.0", "after 1.0.0"],
        "{out}"
    );
    std::fs::write(&plan, text.replace("to: 1.0.2", "to: 1.0.1")).unwrap();
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(take(), ["before 1.0.1", "after 1.0.1"], "{out}");
    let ids = runs(dir.path());
    let (code, out, err) = output(
        fleetup()
            .args(["rollback", &ids[1], "--yes", "--state"])
            .arg(dir.path().join("state")),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(take(), ["on_rollback 1.0.0", "after 1.0.0"], "{out}");
    assert_eq!(installed(dir.path()), "1.0.0");
}

/// The `version` command reads what runs: `{version}` there is refused at its place.
#[test]
fn the_version_command_cannot_use_the_version_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/scripted-pip.yaml"),
    )
    .unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        example.replace("print(m.version('fleetup-demo'))", "print('{version}')"),
    )
    .unwrap();
    let (code, out, err) = output(fleetup().arg("check").arg(&plan));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        flat(&err).contains("placeholder `{version}` has no value in `fleetup-demo`"),
        "{err}"
    );
}
