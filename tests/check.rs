//! `fleetup check` behaviour: every problem at its line and column in both formats,
//! machine-readable output, exit codes, and rules checked against a live store.

mod common;

use assert_cmd::Command;
use serde_json::Value;

fn check(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    common::output(
        Command::cargo_bin("fleetup")
            .unwrap()
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .arg("check")
            .args(args),
    )
}

/// (code, line, column) of every problem, from the JSON report.
fn positions(report: &Value) -> Vec<(String, u64, u64)> {
    report["files"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("fleetup::")
                    .to_owned(),
                p["line"].as_u64().unwrap_or(0),
                p["column"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

const YAML: &str = "plan: 1
name: several
product: emqx
repository: ./repo
to: 4.4.16
rollout:
  waves: [1, \"120%\"]
  on_failur: stop
health:
  http: \"http://{host}:{port}/\"
nodes:
  - name: a
    root: /srv/a
  - name: a
    root: /srv/b
    to: \"4.4\"
";

const TOML: &str = "plan = 1
name = \"several\"
product = \"emqx\"
repository = \"./repo\"
to = \"4.4.16\"
[rollout]
waves = [1, \"120%\"]
on_failur = \"stop\"
[health]
http = \"http://{host}:{port}/\"
[[nodes]]
name = \"a\"
root = \"/srv/a\"
[[nodes]]
name = \"a\"
root = \"/srv/b\"
to = \"4.4\"
";

#[test]
fn several_problems_are_all_reported_each_at_its_line_and_column_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("repo")).unwrap();
    std::fs::write(dir.path().join("p.yaml"), YAML).unwrap();
    std::fs::write(dir.path().join("p.toml"), TOML).unwrap();

    let (code, out, _) = check(dir.path(), &["--format", "json", "p.yaml"]);
    assert_eq!(code, Some(1));
    let yaml = positions(&serde_json::from_str(&out).unwrap());
    assert_eq!(
        yaml,
        vec![
            ("package::missing".into(), 5, 5),
            ("plan::wave".into(), 7, 14),
            ("plan::unknown-key".into(), 8, 3),
            ("plan::placeholder".into(), 10, 9),
            ("plan::duplicate-target".into(), 14, 11),
            ("plan::version".into(), 16, 9),
        ]
    );

    let (code, out, _) = check(dir.path(), &["--format", "json", "p.toml"]);
    assert_eq!(code, Some(1));
    let toml = positions(&serde_json::from_str(&out).unwrap());
    assert_eq!(
        toml,
        vec![
            ("package::missing".into(), 5, 6),
            ("plan::wave".into(), 7, 13),
            ("plan::unknown-key".into(), 8, 1),
            ("plan::placeholder".into(), 10, 8),
            ("plan::duplicate-target".into(), 15, 8),
            ("plan::version".into(), 17, 6),
        ]
    );
}

#[test]
fn github_format_annotates_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("repo")).unwrap();
    std::fs::write(dir.path().join("p.yaml"), YAML).unwrap();
    let (code, out, _) = check(dir.path(), &["--format", "github", "p.yaml"]);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("::error file=p.yaml,line=")),
        "{out}"
    );
    assert!(lines[2].starts_with("::error file=p.yaml,line=8,col=3,title=fleetup%3A%3Aplan%3A%3Aunknown-key::unknown key `on_failur` in `rollout` (help: did you mean `on_failure`?)"), "{}", lines[2]);
}

#[test]
fn exit_codes_distinguish_valid_invalid_and_usage() {
    let (code, out, _) = check(
        std::path::Path::new("."),
        &["plans/patch-rollout.yaml", "plans/group-upgrade.toml"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().count(), 2);
    // One bad plan among good ones fails the run and is named.
    let (code, out, _) = check(
        std::path::Path::new("."),
        &["plans/patch-rollout.yaml", "tests/broken/bad-enums.toml"],
    );
    assert_eq!(code, Some(1));
    assert!(
        out.contains("ok: plans/patch-rollout.yaml")
            && out.contains("invalid: tests/broken/bad-enums.toml: 3 errors"),
        "{out}"
    );
    // Usage errors are exit 2.
    let (code, _, err) = check(
        std::path::Path::new("."),
        &["--format", "xml", "plans/patch-rollout.yaml"],
    );
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = check(std::path::Path::new("."), &[]);
    assert_eq!(code, Some(2));
    // A missing file is an input error, not a crash.
    let (code, _, err) = check(std::path::Path::new("."), &["no/such/plan.yaml"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("fleetup::io") && err.contains("no/such/plan.yaml"),
        "{err}"
    );
}

fn live_plan(to: &str, extra: &str) -> String {
    format!(
        "plan: 1\nname: live\nproduct: emqx\nrepository: ../repo\nto: {to}\n{extra}nodes:\n  - name: emqx-1\n    root: ../stores/emqx-1\n"
    )
}

#[test]
fn rules_are_checked_against_the_nodes_live_store() {
    let fixtures = std::path::Path::new("tests/fixtures");
    let dir = tempfile::tempdir_in(fixtures).unwrap();
    let run = |to: &str, extra: &str| {
        std::fs::write(dir.path().join("p.yaml"), live_plan(to, extra)).unwrap();
        check(dir.path(), &["--format", "json", "p.yaml"])
    };
    // 4.4.0 (running) → 4.4.16: a patch upgrade of the same edition, runtime, OS, arch.
    let (code, out, _) = run("4.4.16", "");
    assert_eq!(code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files"][0]["states_read"], 1);
    // 4.5.0 breaks the patch rule; the message names both sides.
    let (code, out, _) = run("4.5.0", "");
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&out).unwrap();
    let p = &report["files"][0]["problems"][0];
    assert_eq!(p["code"], "fleetup::rule::version-rule");
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("4.4.0 → 4.5.0 is not a patch upgrade")
    );
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(5), Some(5))
    );
    // ...and the plan may relax it.
    let (code, out, _) = run("4.5.0", "policy:\n  version: minor\n");
    assert_eq!(code, Some(0), "{out}");
    // Other runtime major, other OS and arch: each its own diagnostic.
    let (_, out, _) = run("4.4.18", "");
    assert!(out.contains("fleetup::rule::same-runtime"));
    let (_, out, _) = run("4.4.19", "");
    assert!(out.contains("fleetup::rule::same-os") && out.contains("fleetup::rule::same-arch"));
    // Asking for ee while the node runs ce.
    let (_, out, _) = run("4.4.17", "edition: ee\n");
    assert!(out.contains("fleetup::rule::same-edition"), "{out}");
    // A downgrade is never an upgrade: a node on 4.4.16 asked for 4.4.0, whose package
    // the repository has, so only the rule can refuse it.
    let store = dir.path().join("on-4.4.16/releases");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join("RELEASES"),
        "format = 1\nproduct = \"emqx\"\n\n[[release]]\nversion = \"4.4.16\"\n\
         package = \"emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip\"\nstate = \"permanent\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        live_plan("4.4.0", "").replace("../stores/emqx-1", "./on-4.4.16"),
    )
    .unwrap();
    let (code, out, _) = check(dir.path(), &["--format", "json", "p.yaml"]);
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let problems = report["files"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{out}");
    assert_eq!(problems[0]["code"], "fleetup::rule::not-newer", "{out}");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("4.4.16 → 4.4.0 is not an upgrade"),
        "{out}"
    );
}

#[test]
fn a_set_environment_variable_is_used_but_never_printed() {
    let (code, out, err) = Command::cargo_bin("fleetup")
        .unwrap()
        .current_dir("tests/fixtures")
        .env("FLEETUP_TEST_SECRET", "hunter2-very-secret")
        .env("FLEETUP_TEST_TOKEN_UNSET", "also-secret-value")
        .args(["check", "--format", "json", "env-warning.yaml"])
        .output()
        .map(|o| {
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(!out.contains("hunter2") && !err.contains("hunter2") && !out.contains("also-secret"));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["warnings"], 0);
    // Unset, it is a warning naming the variable, not an error.
    let (code, out, _) = check(
        std::path::Path::new("tests/fixtures"),
        &["--format", "json", "env-warning.yaml"],
    );
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["warnings"], 2, "{report}");
    assert_eq!(
        report["files"][0]["problems"][0]["code"],
        "fleetup::plan::env"
    );
}

#[test]
fn a_closed_stdout_ends_fleetup_quietly_not_with_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    // The reader is gone before fleetup writes, as after `| head` has read its lines.
    // (Closed before the spawn: closing it after raced with a fast first write.)
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("schema")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

#[test]
fn special_files_are_refused_as_plans_without_reading_them() {
    let t = tempfile::tempdir().unwrap();
    let zero = t.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let environ = t.path().join("environ.yaml");
    std::os::unix::fs::symlink("/proc/self/environ", &environ).unwrap();
    let fifo = t.path().join("fifo.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for plan in [&zero, &environ, &fifo] {
        let out = common::fleetup()
            .arg("check")
            .arg(plan)
            .env("FLEETUP_PLANTED_SECRET", "s3cr3t-value")
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", plan.display());
        assert!(err.contains("fleetup::io"), "{}: {err}", plan.display());
        assert!(!err.contains("s3cr3t-value"), "{}: {err}", plan.display());
    }
}

#[test]
fn a_hold_longer_than_its_deadline_is_refused_at_its_line() {
    let t = tempfile::tempdir().unwrap();
    let plan = t.path().join("plan.yaml");
    for (health, key) in [
        ("  timeout: 4s\n  healthy_for: 5s\n", "`timeout` (4s)"),
        (
            "  timeout: 10s\n  healthy_for: 2s\n  rollback_timeout: 1s\n",
            "`rollback_timeout` (1s)",
        ),
    ] {
        std::fs::write(
            &plan,
            format!(
                "plan: 1\nname: x\nproduct: emqx\nrepository: ./r\nto: 4.4.16\n\
                 health:\n  tcp: \"{{host}}:1883\"\n{health}nodes:\n  - {{ name: n1, root: /srv/n1 }}\n"
            ),
        )
        .unwrap();
        let out = Command::cargo_bin("fleetup")
            .unwrap()
            .args(["check", "--offline"])
            .arg(&plan)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("`healthy_for` (") && err.contains(&format!("does not fit in {key}")),
            "{err}"
        );
        assert!(err.contains("plan.yaml:"), "not located: {err}");
    }
}

/// `give_up_on` lists statuses the check can answer with: none for tcp, exit statuses
/// (1-255) for a command, HTTP statuses other than `expect_status` for http; anything
/// else is refused at its line.
#[test]
fn give_up_on_is_refused_where_the_check_has_no_such_status() {
    let t = tempfile::tempdir().unwrap();
    let plan = t.path().join("plan.yaml");
    for (health, said) in [
        (
            "  tcp: \"{host}:1883\"\n  give_up_on: [3]\n",
            "a tcp check has no status",
        ),
        (
            "  command: [\"true\"]\n  give_up_on: [3, 300]\n",
            "300 is no exit status",
        ),
        (
            "  http: \"http://{host}/s\"\n  give_up_on: [200]\n",
            "200 is not an HTTP status that means failed for good",
        ),
    ] {
        std::fs::write(
            &plan,
            format!(
                "plan: 1\nname: x\nproduct: emqx\nrepository: ./r\nto: 4.4.16\n\
                 health:\n{health}nodes:\n  - {{ name: n1, root: /srv/n1 }}\n"
            ),
        )
        .unwrap();
        let out = Command::cargo_bin("fleetup")
            .unwrap()
            .args(["check", "--offline"])
            .arg(&plan)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("`give_up_on`: {said}")), "{err}");
        assert!(err.contains("plan.yaml:8:"), "not at its line: {err}");
    }
    // What fits passes.
    std::fs::write(
        &plan,
        "plan: 1\nname: x\nproduct: emqx\nrepository: ./r\nto: 4.4.16\n\
         health:\n  http: \"http://{host}/s\"\n  give_up_on: [410, 503]\nnodes:\n  - { name: n1, root: /srv/n1 }\n",
    )
    .unwrap();
    let out = Command::cargo_bin("fleetup")
        .unwrap()
        .args(["check", "--offline"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_never_contacts_a_remote_host_plan_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("repo")).unwrap();
    common::release_zip(&dir.path().join("repo"), "4.4.16", 0);
    // Every ssh connection to the plan's hosts runs this ProxyCommand first, which leaves
    // a mark, then reaches a listener that counts who came.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mark = dir.path().join("contacted");
    std::fs::write(
        dir.path().join("ssh_config"),
        format!(
            "Host edge-*\n  HostName 127.0.0.1\n  Port {port}\n  ConnectTimeout 2\n  \
             ProxyCommand sh -c 'echo %h >> {}; exec nc 127.0.0.1 {port} 2>/dev/null || sleep 1'\n",
            mark.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "plan: 1\nname: far\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nssh_config: ./ssh_config\n\
         nodes:\n  - { name: n1, ssh: \"deploy@edge-1\", root: /opt/emqx }\n  \
         - { name: n2, ssh: \"deploy@edge-2\", root: /opt/emqx }\n",
    )
    .unwrap();
    let (code, out, err) = check(dir.path(), &["--format", "json", "p.yaml"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files"][0]["states_read"], 0, "{out}");
    assert!(!mark.exists(), "check ran ssh");
    assert!(listener.accept().is_err(), "check connected to a host");
    // The positive control: `plan` does reach for the hosts.
    let _ = common::output(
        Command::cargo_bin("fleetup")
            .unwrap()
            .current_dir(dir.path())
            .args(["plan", "p.yaml"]),
    );
    assert!(
        mark.exists(),
        "plan never tried the hosts; this test sees nothing"
    );
}

/// When no package fits, `check` names each file of that version it passed over and
/// why, and a product without editions is not told about "ce": a Python product whose
/// runtime (`py3.11.7`) the default prefix reads as a pre-release.
#[test]
fn a_package_passed_over_is_named_with_why_and_the_runtime_prefix_finds_it() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("releases");
    std::fs::create_dir_all(&repo).unwrap();
    for v in ["0.11.2", "0.11.3"] {
        let z = repo.join(format!("amqtt-{v}-py3.11.7-debian12-amd64.zip"));
        let mut w = zip::ZipWriter::new(std::fs::File::create(&z).unwrap());
        w.start_file("VERSION", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.finish().unwrap();
    }
    let plan = t.path().join("plan.yaml");
    let write = |runtime: &str| {
        std::fs::write(
            &plan,
            format!(
                "plan: 1\nname: mqtt\nproduct: amqtt\n{runtime}repository: ./releases\nto: 0.11.3\n\
                 nodes:\n  - {{ name: b1, root: ./b1, platform: debian12-amd64 }}\n"
            ),
        )
        .unwrap();
    };
    write("");
    let out = Command::cargo_bin("fleetup")
        .unwrap()
        .args(["check", "--format", "json"])
        .arg(&plan)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("has no package of amqtt 0.11.3; passed over: `amqtt-0.11.3-py3.11.7-debian12-amd64.zip` read as version 0.11.3-py3.11.7: if `py3.11.7` is its runtime, the product's runtime prefix is `py` (`runtime: py` in the plan or node.toml, `--runtime py` by hand)"),
        "{text}"
    );
    assert!(!flat.contains(" ce "), "{text}");
    // With the product's own prefix the package is found.
    write("runtime: py\n");
    let out = Command::cargo_bin("fleetup")
        .unwrap()
        .args(["check"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `runtime_compat: minor` (in a plan or a node.toml) refuses a Python product moving
/// from py3.11 to py3.12, which the default rule (the same major) lets through.
#[test]
fn runtime_compat_minor_refuses_another_python_minor() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("releases");
    std::fs::create_dir_all(&repo).unwrap();
    for name in [
        "amqtt-0.11.2-py3.11.7-debian12-amd64.zip",
        "amqtt-0.11.3-py3.12.1-debian12-amd64.zip",
    ] {
        let mut w = zip::ZipWriter::new(std::fs::File::create(repo.join(name)).unwrap());
        w.start_file("VERSION", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.finish().unwrap();
    }
    let node = |args: &[&str]| {
        Command::cargo_bin("fleetup")
            .unwrap()
            .current_dir(t.path())
            .args(["node"])
            .args(args)
            .args(["--root", "b1", "--repo", "releases"])
            .output()
            .unwrap()
    };
    let out = node(&["upgrade", "0.11.2", "--product", "amqtt", "--runtime", "py"]);
    assert!(out.status.success(), "{out:?}");
    let plan = t.path().join("plan.yaml");
    let check = |compat: &str| {
        std::fs::write(
            &plan,
            format!(
                "plan: 1\nname: mqtt\nproduct: amqtt\nruntime: py\n{compat}repository: ./releases\nto: 0.11.3\n\
                 nodes:\n  - {{ name: b1, root: ./b1 }}\n"
            ),
        )
        .unwrap();
        let out = Command::cargo_bin("fleetup")
            .unwrap()
            .args(["check"])
            .arg(&plan)
            .output()
            .unwrap();
        (
            out.status.code(),
            // The message as one line: the terminal renderer's wrapping taken out.
            String::from_utf8_lossy(&out.stderr)
                .split_whitespace()
                .filter(|w| *w != "│")
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    let (code, err) = check("");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check("runtime_compat: minor\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("changes the runtime (runtime 3.11 → 3.12): the product's `runtime_compat: minor` needs the same runtime major and minor version"),
        "{err}"
    );
    // By hand, from the node's node.toml.
    std::fs::write(
        t.path().join("b1/node.toml"),
        "product = \"amqtt\"\nruntime = \"py\"\nruntime_compat = \"minor\"\n",
    )
    .unwrap();
    let out = node(&["upgrade", "0.11.3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("runtime_compat: minor"), "{err}");
    std::fs::write(
        t.path().join("b1/node.toml"),
        "product = \"amqtt\"\nruntime = \"py\"\nruntime_compat = \"patch\"\n",
    )
    .unwrap();
    let out = node(&["upgrade", "0.11.3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not major, minor or exact"), "{err}");
}

/// A volume size an override gives must be a Kubernetes quantity, refused at its line.
#[test]
fn a_volume_size_that_is_no_quantity_is_refused_at_its_line() {
    let t = tempfile::tempdir().unwrap();
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "plan: 1\nname: g\ngroups:\n  - name: shop\n    root: ./shop\n    market: ./market\n\
         \x20   apps: [{ app: mall, to: 1.0.1 }]\n    overrides:\n      web:\n\
         \x20       volumes: [{ path: /data, size: 10 GB }]\n",
    )
    .unwrap();
    let out = Command::cargo_bin("fleetup")
        .unwrap()
        .args(["check", "--offline"])
        .arg(&plan)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`10 GB` is not a size Kubernetes reads"),
        "{err}"
    );
    assert!(err.contains("plan.yaml:10:"), "not at its line: {err}");
}
