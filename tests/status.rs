//! `fleetup status PLAN`: one row per target with what it runs, its lock holder, whether
//! it is mid-change, and the last run that touched it.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn status_shows_what_runs_where_and_what_needs_a_look() {
    let t = tempfile::tempdir().unwrap();
    local_fleet(t.path(), &["n1", "n2", "n3"], &["4.4.15", "4.4.16"]);
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "plan: 1\nname: fleet\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n  - { name: n3, root: ./n3 }\n",
    )
    .unwrap();
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--only", "n1,n2"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let run = latest_run(&t.path().join("state"));
    // n3 by hand: current, not permanent; and another holder of n2's lock.
    fleetup()
        .current_dir(t.path())
        .args([
            "node",
            "upgrade",
            "4.4.16",
            "--no-permanent",
            "--root",
            "n3",
            "--repo",
            "repo",
        ])
        .assert()
        .success();
    let lock = t.path().join("n2/releases/.lock");
    std::fs::write(&lock, "held by pid 4242 on elsewhere\n").unwrap();
    let mut holder = std::process::Command::new("flock")
        .args(["-o"])
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        fleetup::lock::holder_of(&t.path().join("n2/releases")).is_some()
    }));

    let (code, out, err) = output(fleetup().arg("status").arg(&plan));
    let (jcode, json, _) = output(
        fleetup()
            .arg("status")
            .arg(&plan)
            .args(["--format", "json"]),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, Some(0), "{out}{err}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(out.starts_with("Plan fleet: 3 targets"), "{out}");
    assert!(
        row("n1").starts_with(&format!("n1 node 4.4.16 4.4.16 {run} upgraded")),
        "{out}"
    );
    assert!(
        row("n2").contains("● locked: held by pid 4242 on elsewhere"),
        "{out}"
    );
    assert!(row("n3").starts_with("n3 node 4.4.16 4.4.15 -"), "{out}");
    assert!(row("n3").contains("● current is not permanent"), "{out}");
    assert!(!row("n1").contains('●'), "{out}");

    assert_eq!(jcode, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let t3 = &doc["targets"][2];
    assert_eq!(t3["target"], "n3");
    assert_eq!(t3["current"], "4.4.16");
    assert_eq!(t3["permanent"], "4.4.15");
    assert_eq!(doc["targets"][0]["last_run"]["run"], run.as_str());
    assert_eq!(doc["targets"][0]["last_run"]["outcome"], "upgraded");
    assert!(
        doc["targets"][1]["locked_by"]
            .as_str()
            .unwrap()
            .contains("4242")
    );

    // A node killed mid-install reads as mid-change: cut the journal as a kill leaves it.
    let cut = cut_journal(&t.path().join("state"), "n1");
    assert_eq!(cut, run);
    let (_, out, _) = output(fleetup().arg("status").arg(&plan).args(["--only", "n1"]));
    assert!(
        out.contains(&format!("{run} interrupted")) && out.contains("● mid-change"),
        "{out}"
    );
    // An invalid plan is refused as `check` refuses it.
    std::fs::write(&plan, "plan: 1\nname: x\n").unwrap();
    let (code, _, _) = output(fleetup().arg("status").arg(&plan));
    assert_eq!(code, Some(1));
}

#[test]
fn only_leaves_out_what_a_bang_names() {
    let t = tempfile::tempdir().unwrap();
    local_fleet(t.path(), &["n1", "n2", "n3"], &["4.4.15", "4.4.16"]);
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "plan: 1\nname: fleet\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         nodes:\n  - { name: n1, root: ./n1, tags: [canary] }\n  - { name: n2, root: ./n2 }\n  - { name: n3, root: ./n3, tags: [edge] }\n",
    )
    .unwrap();
    let names = |only: &str| {
        let (code, out, err) = output(
            fleetup()
                .arg("status")
                .arg(&plan)
                .args(["--format", "json", "--only", only]),
        );
        if code != Some(0) {
            return Err(err);
        }
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        Ok(doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["target"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(","))
    };
    assert_eq!(names("!n2").unwrap(), "n1,n3");
    assert_eq!(names("!@canary").unwrap(), "n2,n3");
    assert_eq!(names("n*,!@edge").unwrap(), "n1,n2");
    assert!(
        names("!nosuch")
            .unwrap_err()
            .contains("`nosuch` matches no target")
    );
    assert!(names("!n*").unwrap_err().contains("leaves no target"));
    // apply takes the same selection.
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--only", "!n2"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        link(&t.path().join("n2"), "permanent").as_deref(),
        Some("releases/4.4.15")
    );
    assert_eq!(
        link(&t.path().join("n3"), "permanent").as_deref(),
        Some("releases/4.4.16")
    );
}

#[test]
fn history_reads_the_plans_state_shows_from_to_in_plan_order_and_names_what_set_off_rollback_all() {
    // n2's activation fails: the run stops and rollback-all takes n1 back.
    let (t, plan) = rollback_all_fleet("journals");
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    // Found through the plan's `state`, wherever fleetup runs.
    let (code, list, err) = output(fleetup().args(["history", "--plan"]).arg(&plan));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        list.starts_with("Runs in ") && list.contains("journals"),
        "{list}"
    );
    let run = latest_run(&t.path().join("journals"));
    let (code, shown, err) = output(fleetup().args(["history", &run, "--plan"]).arg(&plan));
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<&str> = shown.lines().filter(|l| l.starts_with("  n")).collect();
    assert_eq!(rows.len(), 3, "{shown}");
    assert!(
        rows[0].contains("n1")
            && rows[0].contains("rolled back")
            && rows[0].contains("4.4.15 → 4.4.16"),
        "{shown}"
    );
    assert!(
        rows[1].contains("n2") && rows[1].contains("4.4.15 → 4.4.16"),
        "{shown}"
    );
    assert!(
        rows[2].contains("n3") && rows[2].contains("skipped"),
        "{shown}"
    );
    assert!(shown.contains("rollback-all was set off by n2"), "{shown}");
    // --plan and --state together are a usage error.
    let (code, _, _) = output(
        fleetup()
            .args(["history", "--state", "x", "--plan"])
            .arg(&plan),
    );
    assert_eq!(code, Some(2));
}

#[test]
fn check_offline_checks_the_plan_alone_and_says_what_it_skipped() {
    let t = tempfile::tempdir().unwrap();
    // The repository is not there (as on a CI runner where packages live elsewhere).
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "plan: 1\nname: fleet\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\n\
         nodes:\n  - { name: n1, root: /srv/emqx, platform: ubuntu20.04-amd64 }\n",
    )
    .unwrap();
    let (code, _, err) = output(fleetup().arg("check").arg(&plan));
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot read the repository"), "{err}");
    let (code, out, err) = output(fleetup().args(["check", "--offline"]).arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("offline: the repository, packages, stores and markets were not read"),
        "{out}"
    );
    let (_, json, _) = output(
        fleetup()
            .args(["check", "--offline", "--format", "json"])
            .arg(&plan),
    );
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["files"][0]["offline"], true);
    // What the plan itself says wrong is still found.
    std::fs::write(
        &plan,
        std::fs::read_to_string(&plan)
            .unwrap()
            .replace("4.4.16", "4.4"),
    )
    .unwrap();
    let (code, _, err) = output(fleetup().args(["check", "--offline"]).arg(&plan));
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn plain_lines_say_each_outcome_once_and_keep_the_stores_words_for_verbose() {
    let t = tempfile::tempdir().unwrap();
    local_fleet(t.path(), &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "plan: 1\nname: fleet\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  max_parallel: 1\n\
         hooks:\n  activate: [\"sh\", \"-c\", \"test {name}-{version} != n2-4.4.16\"]\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("n1: ok: upgraded ("), "{out}");
    assert!(
        out.contains("n2: ROLLED BACK (installing 4.4.16 failed"),
        "{out}"
    );
    for doubled in [
        "ROLLED BACK: rolled back",
        "FAILED: failed",
        "skipped: skipped",
    ] {
        assert!(!out.contains(doubled), "{doubled}:\n{out}");
    }
    assert!(
        !out.contains(": store: "),
        "the store's own lines without -v:\n{out}"
    );
    // -v brings them back.
    let (_, out, _) = output(
        fleetup()
            .args(["rollback", "-v", "--yes", "--state"])
            .arg(t.path().join("state"))
            .arg(latest_run(&t.path().join("state"))),
    );
    assert!(out.contains(": store: "), "{out}");
}

/// A run's output with what changes between runs (ids, paths, times) made constant.
fn normalised(out: &str, dir: &std::path::Path, run: &str) -> String {
    let mut s = out
        .replace(run, "<RUN>")
        .replace(&dir.display().to_string(), "<DIR>");
    // Seconds as the run measured them: `0.0s`, `12.5s` → `<T>s`.
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find('s') {
        let (head, tail) = rest.split_at(i);
        let digits = head
            .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(0, |j| j + 1);
        let num = &head[digits..];
        if num.contains('.') && num.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(&head[..digits]);
            out.push_str("<T>");
        } else {
            out.push_str(head);
        }
        out.push('s');
        rest = &tail[1..];
    }
    out.push_str(rest);
    s = out;
    // When the run started: `started 2026-12-02T05:57:11.904Z` → `started <TIME>`.
    if let Some(i) = s.find("started 20")
        && let Some(z) = s[i..].find('Z')
    {
        s.replace_range(i + "started ".len()..=i + z, "<TIME>");
    }
    s
}

#[test]
fn the_human_output_of_a_full_run_reads_as_reviewed() {
    // n1 goes, n2 fails to activate and goes back, rollback-all takes n1 back, n3 never
    // starts: every kind of line a plain run prints.
    let (t, _) = rollback_all_fleet("state");
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(t.path())
                .args(["apply", "plan.yaml", "--yes"]),
        );
    assert_eq!(code, Some(3), "{out}{err}");
    let run = latest_run(&t.path().join("state"));
    insta::assert_snapshot!("plain_run", normalised(&out, t.path(), &run));
    let (_, shown, _) =
        output(
            fleetup()
                .current_dir(t.path())
                .args(["history", &run, "--plan", "plan.yaml"]),
        );
    insta::assert_snapshot!("history_run", normalised(&shown, t.path(), &run));
}

#[test]
fn the_target_that_set_off_rollback_all_is_known_by_its_record_not_by_its_words() {
    // n2's own failure quotes the words the rollback-all results carry: it is still
    // the one that set it off (the history knows which targets went back with the rest).
    let (t, plan) = rollback_all_fleet_with("journals", " # (on_failure: rollback-all)");
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    let run = latest_run(&t.path().join("journals"));
    let (code, shown, err) = output(fleetup().args(["history", &run, "--plan"]).arg(&plan));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        shown.contains("n2      rolled back") && shown.contains("# (on_failure: rollback-all)"),
        "{shown}"
    );
    assert!(shown.contains("rollback-all was set off by n2"), "{shown}");
}

/// Three local nodes on 4.4.15 and a plan to 4.4.16 (journals in `state` under the
/// directory) whose n2 fails to activate: max_parallel 1, so n1 goes first, and
/// `on_failure: rollback-all` takes it back; n3 never starts.
fn rollback_all_fleet(state: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    rollback_all_fleet_with(state, "")
}

/// [`rollback_all_fleet`] with `comment` appended to the activate hook's script (after
/// `#`), so that it shows in n2's failure.
fn rollback_all_fleet_with(state: &str, comment: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    local_fleet(t.path(), &["n1", "n2", "n3"], &["4.4.15", "4.4.16"]);
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "plan: 1\nname: fleet\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./{state}\n\
             rollout:\n  max_parallel: 1\n  on_failure: rollback-all\n\
             hooks:\n  activate: [\"sh\", \"-c\", \"test {{name}}-{{version}} != n2-4.4.16{comment}\"]\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n  - {{ name: n3, root: ./n3 }}\n"
        ),
    )
    .unwrap();
    (t, plan)
}

/// `status --drift` exits 1 and says what differs until every target runs the plan's
/// version as permanent and no run of the plan is left to finish; then 0. Its
/// `--format prometheus` census is accepted by promtool and says the same per target.
#[test]
fn drift_says_what_differs_and_exits_1_until_the_fleet_is_what_the_plan_says() {
    let t = tempfile::tempdir().unwrap();
    local_fleet(t.path(), &["n1", "n2", "n3"], &["4.4.15", "4.4.16"]);
    let plan = t.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "plan: 1\nname: fleet\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  waves: [1, \"100%\"]\n  gates:\n    - { after_wave: 1, approve: manual }\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n  - { name: n3, root: ./n3 }\n",
    )
    .unwrap();
    let drift = || output(fleetup().arg("status").arg(&plan).arg("--drift"));

    // Before any run: every node on another version.
    let (code, out, err) = drift();
    assert_eq!(code, Some(1), "{out}{err}");
    for n in ["n1", "n2", "n3"] {
        assert!(
            out.contains(&format!("  {n}: runs 4.4.15; the plan says 4.4.16")),
            "{out}"
        );
    }

    // Paused at the gate after the canary: the run is left, the others still differ.
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(6), "{out}{err}");
    let run = latest_run(&t.path().join("state"));
    let (code, out, _) = drift();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        !out.contains("  n1: "),
        "the canary is where the plan says: {out}"
    );
    assert!(out.contains("  n2: runs 4.4.15"), "{out}");
    assert!(
        out.contains(&format!(
            "  run {run} is paused: `fleetup resume {run}` finishes it"
        )),
        "{out}"
    );

    // Approved and finished: no drift.
    for cmd in ["approve", "resume"] {
        let (code, out, err) = output(
            fleetup()
                .arg(cmd)
                .arg(&run)
                .arg("--state")
                .arg(t.path().join("state")),
        );
        assert_eq!(code, Some(0), "{cmd}: {out}{err}");
    }
    let (code, out, err) = drift();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("No drift: every target runs what plan fleet says."),
        "{out}"
    );
    // Without --drift, the same status exits 0 whatever it shows.
    fleetup()
        .current_dir(t.path())
        .args(["node", "downgrade", "4.4.15", "--root", "n2"])
        .assert()
        .success();
    std::fs::remove_dir_all(t.path().join("n3")).unwrap();
    let (code, out, _) = output(fleetup().arg("status").arg(&plan));
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("Drift"), "{out}");

    // A hand change and a missing store: drift again, in words and in JSON.
    let (code, out, _) = drift();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("  n2: runs 4.4.15; the plan says 4.4.16"),
        "{out}"
    );
    assert!(
        out.contains("  n3: nothing installed; the plan says 4.4.16"),
        "{out}"
    );
    assert!(!out.contains("  n1: "), "{out}");
    let (_, json, _) = output(
        fleetup()
            .arg("status")
            .arg(&plan)
            .args(["--format", "json"]),
    );
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["drifted"], true, "{json}");
    assert_eq!(target(&doc, "n1").get("drift"), None, "{json}");
    assert_eq!(target(&doc, "n2")["wanted"], "4.4.16", "{json}");

    // The census: promtool accepts it, and it says which target drifted.
    let (code, census, err) = output(
        fleetup()
            .arg("status")
            .arg(&plan)
            .args(["--format", "prometheus"]),
    );
    assert_eq!(code, Some(0), "{census}{err}");
    let prom = t.path().join("fleet.prom");
    std::fs::write(&prom, &census).unwrap();
    let check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap())
        .output()
        .expect("promtool (Debian's prometheus package) is installed by scripts/test");
    assert!(
        check.status.success(),
        "promtool refused the census: {}{}\n{census}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    for (node, drifted) in [("n1", 0), ("n2", 1), ("n3", 1)] {
        assert!(
            census.contains(&format!(
                "fleetup_target_drift{{plan=\"fleet\",target=\"{node}\"}} {drifted}\n"
            )),
            "{census}"
        );
    }
    assert!(
        census.contains("fleetup_plan_drift{plan=\"fleet\"} 1\n"),
        "{census}"
    );
    assert!(
        census.contains("target=\"n1\",kind=\"node\",current=\"4.4.16\",permanent=\"4.4.16\",wanted=\"4.4.16\"} 1"),
        "{census}"
    );
}

/// A target rolled back with the rest of the run counts its rollback in its TIME: n1's
/// activation back to 4.4.15 sleeps 1.5 s, so its time is at least that.
#[test]
fn the_time_of_a_target_rolled_back_with_the_rest_includes_its_rollback() {
    let (t, plan) = rollback_all_fleet("state");
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "activate: [\"sh\", \"-c\", \"test {name}-{version} != n2-4.4.16\"]",
        "activate: [\"sh\", \"-c\", \"if [ {name}-{version} = n1-4.4.15 ]; then sleep 1.5; fi; test {name}-{version} != n2-4.4.16\"]",
    );
    assert!(text.contains("sleep 1.5"), "{text}");
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n1 = target(&doc, "n1");
    assert_eq!(n1["outcome"], "rolled-back", "{doc}");
    assert!(n1["millis"].as_u64().unwrap() >= 1500, "{n1}");
    let _ = t;
}
