//! Journals written by earlier fleetups still resume and roll back. The fixture under
//! tests/fixtures/journal-v1 is a real journal written by fleetup 0.1.0 (journal format
//! 1: steps as text only), cut as a kill leaves it right after n2 became permanent.

mod common;

use std::path::Path;

use common::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/journal-v1");

/// The fleet the fixture's run worked on: n1 and n2 upgraded 4.4.15 → 4.4.16 (permanent).
fn fleet_of_the_fixture(dir: &Path) -> String {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for v in ["4.4.15", "4.4.16"] {
        release_zip(&repo, v, 0);
    }
    for n in ["n1", "n2"] {
        for v in ["4.4.15", "4.4.16"] {
            fleetup()
                .current_dir(dir)
                .args(["node", "upgrade", v, "--root", n, "--repo", "repo"])
                .args(["--product", "emqx"])
                .assert()
                .success();
        }
    }
    let run = std::fs::read_to_string(Path::new(FIXTURE).join("RUN")).unwrap();
    let run = run.trim().to_owned();
    let plan = std::fs::read_to_string(Path::new(FIXTURE).join("plan.yaml")).unwrap();
    std::fs::write(dir.join("plan.yaml"), &plan).unwrap();
    let rundir = dir.join("state/runs").join(&run);
    std::fs::create_dir_all(&rundir).unwrap();
    std::fs::write(rundir.join("plan.yaml"), &plan).unwrap();
    std::fs::copy(
        Path::new(FIXTURE).join("journal.jsonl"),
        rundir.join("journal.jsonl"),
    )
    .unwrap();
    run
}

#[test]
fn a_format_1_journal_resumes_and_its_run_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let run = fleet_of_the_fixture(dir.path());
    let history = |args: &[&str]| {
        output(
            fleetup()
                .current_dir(dir.path())
                .arg("history")
                .args(args)
                .args(["--state", "state"]),
        )
    };
    let (code, out, _) = history(&[]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&run) && out.contains("interrupted"), "{out}");

    let (code, out, err) = output(
        fleetup()
            .current_dir(dir.path())
            .args(["resume", &run, "--format", "json", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["status"], "succeeded", "{doc}");
    let target = |name: &str| {
        doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == name)
            .cloned()
            .unwrap()
    };
    // n1 was finished in the journal; n2 began (`4.4.15 → 4.4.16` in the old text form)
    // and was found on its target: upgraded by this run, from 4.4.15.
    assert_eq!(target("n1")["outcome"], "upgraded", "{doc}");
    assert_eq!(target("n2")["outcome"], "upgraded", "{doc}");
    assert_eq!(target("n2")["from"], "4.4.15", "{doc}");
    assert!(
        target("n2")["detail"]
            .as_str()
            .unwrap()
            .contains("reached before the run was interrupted"),
        "{doc}"
    );
    let (_, out, _) = history(&[&run]);
    assert!(out.contains("succeeded"), "{out}");

    // Both nodes go back to where the journal says they came from.
    let (code, out, err) = output(
        fleetup()
            .current_dir(dir.path())
            .args(["rollback", &run, "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for n in ["n1", "n2"] {
        let v = output(
            fleetup()
                .current_dir(dir.path())
                .args(["node", "versions", "--root", n]),
        )
        .1;
        assert!(v.contains("* 4.4.15\tpermanent"), "{n}: {v}");
    }
    let (_, out, _) = history(&[&run]);
    assert!(out.contains("rolled-back"), "{out}");
}

#[test]
fn a_run_id_is_exact_or_a_unique_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let run = fleet_of_the_fixture(dir.path());
    // A second run sharing the first one's prefix.
    let other = format!("{}-other", &run[..20]);
    let src = dir.path().join("state/runs").join(&run);
    let dst = dir.path().join("state/runs").join(&other);
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join("plan.yaml"), dst.join("plan.yaml")).unwrap();
    let journal = std::fs::read_to_string(src.join("journal.jsonl"))
        .unwrap()
        .replace(&run, &other);
    std::fs::write(dst.join("journal.jsonl"), journal).unwrap();
    let fl = |args: &[&str]| {
        output(
            fleetup()
                .current_dir(dir.path())
                .args(args)
                .args(["--state", "state"]),
        )
    };
    for cmd in [&["history"][..], &["rollback"][..], &["resume"][..]] {
        // Ambiguous: both are named, nothing is done.
        let (code, out, err) = fl(&[cmd, &[&run[..20]]].concat());
        assert_eq!(code, Some(2), "{cmd:?}: {out}{err}");
        // (miette wraps long lines: compare without the wrapping.)
        let flat: String = err
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '│')
            .collect();
        assert!(
            flat.contains(&run) && flat.contains(&other),
            "{cmd:?}: {err}"
        );
        // Empty: refused.
        let (code, out, err) = fl(&[cmd, &[""]].concat());
        assert_eq!(code, Some(2), "{cmd:?} \"\": {out}{err}");
    }
    // Exact, and a unique prefix, both work.
    let (code, out, _) = fl(&["history", &run]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&run) && !out.contains(&other), "{out}");
    let (code, out, _) = fl(&["history", &other[..other.len() - 2]]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&other), "{out}");
    // Nothing was changed by the refusals: the fixture's run still resumes.
    let (code, out, err) = fl(&["resume", &run]);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// `plan.yaml` for nodes n1 and n2, one per wave, whose health check holds while the
/// file `hold` exists (created here): a run to look at, or stop, while it goes.
fn held_plan(d: &Path, name: &str, extra_rollout: &str) {
    std::fs::write(d.join("hold"), "").unwrap();
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: {name}\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  waves: [1]\n{extra_rollout}\
             health:\n  command: [\"/bin/sh\", \"-c\", \"while [ -e hold ]; do sleep 0.05; done\"]\n  timeout: 60s\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_live_run_has_an_owner_and_cannot_be_joined() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    // A run that pauses between its waves while a marker file exists: long enough to
    // try to join it, and it ends on its own when the marker goes.
    held_plan(d, "live", "");
    let mut live = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(20), || d
            .join("state/runs")
            .read_dir()
            .is_ok_and(|mut r| r.next().is_some())),
        "the run never started"
    );
    let run = latest_run(&d.join("state"));
    let journal = d.join("state/runs").join(&run).join("journal.jsonl");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = std::fs::read(&journal).unwrap();

    let (code, out, _) = output(
        fleetup()
            .current_dir(d)
            .args(["history", "--state", "state"]),
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("running"), "{out}");
    for cmd in ["resume", "rollback"] {
        let (code, out, err) = output(
            fleetup()
                .current_dir(d)
                .args([cmd, &run, "--state", "state"]),
        );
        assert_eq!(code, Some(5), "{cmd}: {out}{err}");
        assert!(err.contains("held by pid"), "{cmd}: {err}");
    }
    // `resume` without a run id finds nothing to take over.
    let (code, out, _) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("nothing to resume"), "{out}");
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        before,
        "the journal was touched"
    );

    std::fs::remove_file(d.join("hold")).unwrap();
    assert!(live.wait().unwrap().success());
    let (_, out, _) = output(
        fleetup()
            .current_dir(d)
            .args(["history", "--state", "state"]),
    );
    assert!(
        out.contains("succeeded") && !out.contains("running"),
        "{out}"
    );
}

#[test]
fn rollback_of_a_run_never_undoes_what_came_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16", "4.4.17"]);
    let plan = |to: &str, nodes: &str| {
        std::fs::write(
            d.join(format!("{to}.yaml")),
            format!("plan: 1\nname: p{to}\nproduct: emqx\nrepository: ./repo\nto: {to}\nstate: ./state\nnodes:\n{nodes}"),
        )
        .unwrap();
        let (code, out, err) =
            output(
                fleetup()
                    .current_dir(d)
                    .args(["apply", &format!("{to}.yaml"), "--yes"]),
            );
        assert_eq!(code, Some(0), "{out}{err}");
        latest_run(&d.join("state"))
    };
    // Run A takes both nodes to 4.4.16; run B takes n1 on to 4.4.17.
    let a = plan(
        "4.4.16",
        "  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    plan("4.4.17", "  - { name: n1, root: ./n1 }\n");
    let versions = |n: &str| {
        output(
            fleetup()
                .current_dir(d)
                .args(["node", "versions", "--root", n]),
        )
        .1
    };
    // rollback A: n1 has moved on, so nothing is done and the command says why.
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["rollback", &a, "--state", "state"]),
    );
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(err.contains("n1") && err.contains("4.4.17"), "{err}");
    assert!(
        versions("n1").contains("* 4.4.17\tpermanent"),
        "{}",
        versions("n1")
    );
    assert!(
        versions("n2").contains("* 4.4.16\tpermanent"),
        "{}",
        versions("n2")
    );
    // --force names it: then it goes back with the rest.
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["rollback", &a, "--force", "n1", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        versions("n1").contains("* 4.4.15\tpermanent"),
        "{}",
        versions("n1")
    );
    assert!(
        versions("n2").contains("* 4.4.15\tpermanent"),
        "{}",
        versions("n2")
    );
}

#[test]
fn sigint_stops_a_run_between_steps_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    held_plan(d, "stop", "");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // n1 is in its health check (the hold file): stop the run there.
    assert!(
        wait_until(std::time::Duration::from_secs(20), || {
            std::fs::read_to_string(d.join("n1/releases/RELEASES"))
                .is_ok_and(|t| t.contains("4.4.16"))
        }),
        "n1 never started"
    );
    // SAFETY: kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::remove_file(d.join("hold")).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(6), "{said}");
    assert!(said.contains("fleetup resume"), "{said}");
    // n1 finished its step; n2 never started.
    let versions = |n: &str| {
        output(
            fleetup()
                .current_dir(d)
                .args(["node", "versions", "--root", n]),
        )
        .1
    };
    assert!(
        versions("n1").contains("* 4.4.16\tpermanent"),
        "{}",
        versions("n1")
    );
    assert!(
        versions("n2").contains("* 4.4.15\tpermanent"),
        "{}",
        versions("n2")
    );
    let (_, hist, _) = output(
        fleetup()
            .current_dir(d)
            .args(["history", "--state", "state"]),
    );
    assert!(hist.contains("stopped"), "{hist}");
    // resume (with no id: the stopped run is the one to finish) takes n2 up.
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        versions("n2").contains("* 4.4.16\tpermanent"),
        "{}",
        versions("n2")
    );
}

#[test]
fn rollback_of_an_interrupted_run_takes_back_a_target_caught_mid_step() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture: n1 finished, n2 began (4.4.15 → 4.4.16) and reached 4.4.16 before the
    // kill; no resume in between.
    let run = fleet_of_the_fixture(dir.path());
    let (code, out, err) = output(
        fleetup()
            .current_dir(dir.path())
            .args(["rollback", &run, "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for n in ["n1", "n2"] {
        let v = output(
            fleetup()
                .current_dir(dir.path())
                .args(["node", "versions", "--root", n]),
        )
        .1;
        assert!(v.contains("* 4.4.15\tpermanent"), "{n}: {v}");
    }
}

#[test]
fn a_target_found_locked_is_left_for_resume_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    held_plan(d, "locked", "  on_failure: rollback-all\n");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(20), || {
            std::fs::read_to_string(d.join("n1/releases/RELEASES"))
                .is_ok_and(|t| t.contains("4.4.16"))
        }),
        "n1 never started"
    );
    // Someone takes n2 while n1 is in its health check.
    let lock = fleetup::lock::acquire(
        &d.join("n2/releases"),
        "the store",
        Some("other"),
        std::time::Duration::ZERO,
    )
    .unwrap();
    std::fs::remove_file(d.join("hold")).unwrap();
    let out = child.wait_with_output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // n2 was never looked at: not failed, and n1 not rolled back for it.
    assert_eq!(out.status.code(), Some(6), "{doc}");
    let n2 = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "n2")
        .unwrap();
    assert_eq!(n2["outcome"], "skipped", "{doc}");
    assert_eq!(n2["code"], "fleetup::store::locked", "{doc}");
    let n1 = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "n1")
        .unwrap();
    assert_eq!(n1["outcome"], "upgraded", "{doc}");
    drop(lock);
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let v = output(
        fleetup()
            .current_dir(d)
            .args(["node", "versions", "--root", "n2"]),
    )
    .1;
    assert!(v.contains("* 4.4.16\tpermanent"), "{v}");
}

#[test]
fn jsonl_streams_one_event_per_line_as_the_run_goes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    held_plan(d, "stream", "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes", "--format", "jsonl"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        let l = lines.next().expect("a line").unwrap();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}"))
    };
    // While n1 is held in its health check, the stream has already told the start, the
    // first wave and n1's steps: it is live, not written at the end.
    let start = next();
    assert_eq!(
        (start["v"].as_u64(), start["event"].as_str()),
        (Some(1), Some("start")),
        "{start}"
    );
    assert_eq!(start["digest"].as_str().map(str::len), Some(64), "{start}");
    // The run's waves, as planned, before the first starts.
    let schedule = next();
    assert_eq!(schedule["event"], "schedule", "{schedule}");
    assert_eq!(schedule["waves"][0]["targets"][0], "n1", "{schedule}");
    assert_eq!(
        schedule["waves"].as_array().map(Vec::len),
        Some(2),
        "{schedule}"
    );
    let wave = next();
    assert_eq!(wave["event"], "wave", "{wave}");
    let mut seen = Vec::new();
    loop {
        let e = next();
        seen.push(e.clone());
        if e["event"] == "step" && e["step"] == "health" {
            break;
        }
    }
    assert!(d.join("hold").exists(), "the run was still going");
    std::fs::remove_file(d.join("hold")).unwrap();
    let mut last = next();
    while last["event"] != "end" {
        seen.push(last.clone());
        last = next();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["exit"], 0, "{last}");
    let done: Vec<&serde_json::Value> = seen.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 2, "{seen:?}");
    assert!(done.iter().all(|e| e["outcome"] == "upgraded"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| e["event"] == "step" && e["step"] == "install" && e["from"] == "4.4.15")
    );
}

/// Without --state or a plan's `state`: $FLEETUP_STATE_DIR, else $XDG_STATE_HOME/fleetup,
/// else ~/.local/state/fleetup; a variable set but empty counts as unset.
#[test]
fn the_state_directory_follows_the_environment_and_an_empty_variable_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    let run = fleet_of_the_fixture(dir.path());
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::rename(dir.path().join("state"), xdg.join("fleetup")).unwrap();
    let history = |env: &[(&str, &std::path::Path)]| {
        let mut c = fleetup();
        c.arg("history")
            .env_remove("FLEETUP_STATE_DIR")
            .env_remove("XDG_STATE_HOME");
        c.env("HOME", dir.path().join("home"));
        for (k, v) in env {
            c.env(k, v);
        }
        output(&mut c)
    };
    let empty = std::path::Path::new("");
    let (code, out, err) = history(&[("FLEETUP_STATE_DIR", empty), ("XDG_STATE_HOME", &xdg)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&run), "{out}");
    let (code, out, err) = history(&[("FLEETUP_STATE_DIR", &xdg.join("fleetup"))]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&run), "{out}");
    // Neither: the home directory's, where there is no run.
    let (_, out, err) = history(&[]);
    assert!(!out.contains(&run), "{out}{err}");
}
