//! `${VAR}` secrets are shown as written, never as their values: on stdout and stderr,
//! in `--format json`, in journals, in `history` and in group records. A value is planted
//! in the environment and every channel is swept for it.

mod common;

use std::path::Path;

use common::*;

const PASSWORD: &str = "pw-0f9e8d7c6b5a";
const TOKEN: &str = "tok-1a2b3c4d5e6f";

fn with_secrets(c: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    c.env("DB_PASSWORD", PASSWORD).env("API_TOKEN", TOKEN)
}

/// Every file under `dir`, read as text.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read(&p) {
                out.push((
                    p.display().to_string(),
                    String::from_utf8_lossy(&t).into_owned(),
                ));
            }
        }
    }
    out
}

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD) && !text.contains(TOKEN),
        "{what} shows a secret:\n{text}"
    );
}

#[test]
fn secrets_never_reach_an_output_a_journal_or_a_record() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let port = free_port();
    // n1's activate hook fails, carrying the password; n2's health URL carries the token
    // and nothing answers it.
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: secrets\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  max_failures: 5\n\
             hooks:\n  activate: [\"/bin/sh\", \"-c\", \"echo argv: $0 $1 $2; env; test $0 != n1 || test $1 = 4.4.15\", \"{{name}}\", \"{{version}}\", \"--password=${{DB_PASSWORD}}\"]\n\
             health:\n  http: \"http://127.0.0.1:{port}/status?token=${{API_TOKEN}}\"\n  timeout: 300ms\n  interval: 100ms\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
        ),
    )
    .unwrap();
    for format in ["human", "json"] {
        let (code, out, err) = output(with_secrets(&mut fleetup()).current_dir(d).args([
            "apply",
            "plan.yaml",
            "--yes",
            "--format",
            format,
        ]));
        // n2 cannot be healthy again either (nothing answers): it needs attention.
        assert!(matches!(code, Some(3 | 4)), "{code:?}: {out}{err}");
        // The failures are explained, with the templates as written.
        let said = format!("{out}{err}");
        assert!(said.contains("${DB_PASSWORD}"), "{said}");
        assert!(said.contains("${API_TOKEN}"), "{said}");
        assert_clean(&format!("apply --format {format}"), &said);
    }
    let run = latest_run(&d.join("state"));
    for args in [
        &["history"][..],
        &["history", "--format", "json"][..],
        &["history", &run][..],
        &["history", &run, "--format", "json"][..],
    ] {
        let (_, out, err) = output(
            with_secrets(&mut fleetup())
                .current_dir(d)
                .args(args)
                .args(["--state", "state"]),
        );
        assert_clean(&format!("{args:?}"), &format!("{out}{err}"));
    }
    for (path, text) in files_under(&d.join("state")) {
        assert_clean(&path, &text);
    }
    for (path, text) in files_under(&d.join("n1")) {
        assert_clean(&path, &text);
    }
}

#[test]
fn a_group_deploy_with_a_secret_leaves_it_out_of_its_record() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let m = d.join("market/mall");
    std::fs::create_dir_all(&m).unwrap();
    for v in ["1.0.0", "1.0.1"] {
        std::fs::write(
            m.join(format!("{v}.yaml")),
            format!("app: mall\nversion: {v}\nservices:\n  web:\n    image: mall/web:{v}\n"),
        )
        .unwrap();
    }
    std::fs::create_dir_all(d.join("shop")).unwrap();
    output(fleetup().current_dir(d).args([
        "group", "install", "mall", "1.0.0", "--root", "shop", "--market", "market",
    ]));
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: g\nstate: ./state\ngroups:\n  - name: shop\n    root: ./shop\n    market: ./market\n\
         \x20   apps: [{ app: mall, to: 1.0.1 }]\n\
         \x20   hooks:\n      deploy: [\"/bin/sh\", \"-c\", \"echo argv: $0 $1; env | grep ^API_TOKEN=; test $0 != 1.0.1\", \"{version}\", \"--token=${API_TOKEN}\"]\n",
    )
    .unwrap();
    let (code, out, err) =
        output(
            with_secrets(&mut fleetup())
                .current_dir(d)
                .args(["apply", "plan.yaml", "--yes"]),
        );
    assert!(matches!(code, Some(3 | 4)), "{code:?}: {out}{err}");
    assert!(format!("{out}{err}").contains("${API_TOKEN}"), "{out}{err}");
    assert_clean("apply", &format!("{out}{err}"));
    for (path, text) in files_under(&d.join("shop")) {
        assert_clean(&path, &text);
    }
    for (path, text) in files_under(&d.join("state")) {
        assert_clean(&path, &text);
    }
    let (_, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["group", "records", "--root", "shop"]),
    );
    assert_clean("group records", &format!("{out}{err}"));
}

/// Issue 26, item 5: a Prometheus that cannot be asked (its URL and query carry secrets)
/// and a failing `before` hook on a remote node (its argv carries one, and the hook
/// echoes its argv and environment) show the templates as written everywhere: stdout,
/// stderr, JSON, the journal and history.
#[test]
fn an_analysis_that_cannot_ask_and_a_failing_remote_hook_show_no_secret() {
    let sshd = common::sshd::Sshd::start();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let prometheus = free_port();
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: secrets\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             ssh_config: {cfg}\n\
             rollout:\n  waves: [1, \"100%\"]\n  max_failures: 5\n\
             analysis:\n  - name: errors\n    prometheus:\n      url: \"http://fleet:${{DB_PASSWORD}}@127.0.0.1:{prometheus}/\"\n\
             \x20     query: 'sum(errors{{{{token=\"${{API_TOKEN}}\"}}}})'\n      max: 0\n      for: 1s\n      interval: 200ms\n\
             hooks:\n  before: [\"/bin/sh\", \"-c\", \"echo argv: $0 $1; env; test $0 != n2\", \"{{name}}\", \"--password=${{DB_PASSWORD}}\"]\n\
             nodes:\n  - {{ name: n2, ssh: \"{addr}\", root: {root2} }}\n  - {{ name: n1, root: {root1} }}\n",
            cfg = sshd.config().display(),
            addr = sshd.addr(),
            root1 = d.join("n1").display(),
            root2 = d.join("n2").display(),
        ),
    )
    .unwrap();
    let mut said = String::new();
    for format in ["human", "json", "jsonl"] {
        let (code, out, err) = output(with_secrets(&mut fleetup()).current_dir(d).args([
            "apply",
            "plan.yaml",
            "--yes",
            "--format",
            format,
        ]));
        assert!(code.is_some_and(|c| c != 0), "{code:?}: {out}{err}");
        said.push_str(&out);
        said.push_str(&err);
        assert_clean(&format!("apply --format {format}"), &format!("{out}{err}"));
        // Each run leaves its run for the next format: put n1 back.
        let run = latest_run(&d.join("state"));
        let _ = output(
            with_secrets(&mut fleetup())
                .current_dir(d)
                .args(["abort", &run, "--state", "state"]),
        );
        let _ =
            output(
                fleetup()
                    .current_dir(d)
                    .args(["node", "downgrade", "4.4.15", "--root", "n1"]),
            );
    }
    // What failed is said, with the templates as written: the analysis could not ask
    // (the run paused), and n2's hook failed on its host having echoed its argv.
    assert!(said.contains("cannot be asked"), "{said}");
    assert!(said.contains("${API_TOKEN}"), "{said}");
    assert!(
        said.contains("argv: n2 --password=${DB_PASSWORD}"),
        "{said}"
    );
    for args in [&["history"][..], &["history", "--format", "json"][..]] {
        let (_, out, err) = output(
            with_secrets(&mut fleetup())
                .current_dir(d)
                .args(args)
                .args(["--state", "state"]),
        );
        assert_clean(&format!("{args:?}"), &format!("{out}{err}"));
    }
    let runs = std::fs::read_dir(d.join("state/runs")).unwrap();
    for r in runs.flatten() {
        let (_, out, err) = output(
            with_secrets(&mut fleetup())
                .current_dir(d)
                .args([
                    "history",
                    &r.file_name().to_string_lossy(),
                    "--format",
                    "json",
                ])
                .args(["--state", "state"]),
        );
        assert_clean("history RUN", &format!("{out}{err}"));
    }
    for (path, text) in files_under(&d.join("state")) {
        assert_clean(&path, &text);
    }
}

/// Issue 29, defect 1: a failing command health check and a failing `after` hook, each
/// echoing its argv and environment, leave no secret in any output, the journal or
/// history: their captured output is shown with `${VAR}` in place of each value.
#[test]
fn failing_hooks_that_echo_their_argv_and_environment_leak_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    local_fleet(d, &["n1"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: echo\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         health:\n  command: [\"/bin/sh\", \"-c\", \"test $1 != 4.4.16 || {{ env; echo argv: $0; exit 1; }}\", \"--token=${API_TOKEN}\", \"{version}\"]\n  timeout: 300ms\n  interval: 100ms\n\
         hooks:\n  after: [\"/bin/sh\", \"-c\", \"env; echo argv: $0; exit 1\", \"--password=${DB_PASSWORD}\"]\n\
         nodes:\n  - { name: n1, root: ./n1 }\n",
    )
    .unwrap();
    let mut said = String::new();
    for format in ["human", "json", "jsonl"] {
        let (code, out, err) = output(with_secrets(&mut fleetup()).current_dir(d).args([
            "apply",
            "plan.yaml",
            "--yes",
            "--format",
            format,
        ]));
        assert!(matches!(code, Some(3 | 4)), "{code:?}: {out}{err}");
        assert_clean(&format!("apply --format {format}"), &format!("{out}{err}"));
        assert!(out.contains("after"), "{out}");
        said.push_str(&out);
        said.push_str(&err);
    }
    // The hooks' own words are there, with the secrets as written.
    assert!(said.contains("argv: --token=${API_TOKEN}"), "{said}");
    assert!(said.contains("argv: --password=${DB_PASSWORD}"), "{said}");
    for args in [&["history"][..], &["history", "--format", "json"][..]] {
        let (_, out, err) = output(
            with_secrets(&mut fleetup())
                .current_dir(d)
                .args(args)
                .args(["--state", "state"]),
        );
        assert_clean(&format!("{args:?}"), &format!("{out}{err}"));
    }
    for (path, text) in files_under(&d.join("state")) {
        assert_clean(&path, &text);
    }
}
