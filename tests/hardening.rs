//! The third hardening round (issue 26): each test names the item it holds, and each
//! failed on the code before its fix.

mod common;

use std::path::Path;

use common::*;

/// A plan (relative root, repository and state) that pauses at a manual gate after its
/// first node, in `dir`.
fn gated_plan(dir: &Path) {
    local_fleet(dir, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        dir.join("plan.yaml"),
        "plan: 1\nname: rel\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  waves: [1, \"100%\"]\n  gates: [{ after_wave: 1, approve: manual }]\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
}

fn current(root: &Path) -> Option<String> {
    link(root, "current").map(|l| l.rsplit('/').next().unwrap_or_default().to_owned())
}

/// Item 1: `approve`, `resume` and `rollback RUN` started from another directory work on
/// the plan's own stores, never on fresh ones under the current directory.
#[test]
fn item_1_a_run_resumed_from_another_directory_works_on_the_plans_own_stores() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    gated_plan(&fleet);
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(&fleet)
                .args(["apply", "plan.yaml", "--yes"]),
        );
    assert_eq!(code, Some(6), "{out}{err}");
    let state = fleet.join("state");
    let run = latest_run(&state);
    let from_elsewhere = |args: &[&str]| {
        output(
            fleetup()
                .current_dir(&elsewhere)
                .args(args)
                .arg("--state")
                .arg(&state),
        )
    };
    let (code, out, err) = from_elsewhere(&["approve", &run]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = from_elsewhere(&["resume", &run, "--format", "json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "resume created stores in the directory it was started from"
    );
    assert_eq!(current(&fleet.join("n2")).as_deref(), Some("4.4.16"));
    let (code, out, err) = from_elsewhere(&["rollback", &run, "--yes"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    for n in ["n1", "n2"] {
        assert_eq!(current(&fleet.join(n)).as_deref(), Some("4.4.15"), "{n}");
    }
}

/// Item 1, journals written before the plan's location was recorded: worked out from
/// the plan's relative `state:` and where the run lives, or refused; never the current
/// directory.
#[test]
fn item_1_an_old_journal_is_resolved_from_its_state_directory_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    gated_plan(&fleet);
    let (code, _, _) = output(
        fleetup()
            .current_dir(&fleet)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(6));
    let state = fleet.join("state");
    let run = latest_run(&state);
    let journal = state.join("runs").join(&run).join("journal.jsonl");
    // As an older fleetup wrote it: no plan_file.
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut start: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(start["plan_file"].as_str().unwrap().starts_with('/'));
    start.as_object_mut().unwrap().remove("plan_file");
    lines[0] = start.to_string();
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    fleetup()
        .current_dir(&elsewhere)
        .args(["approve", &run, "--state"])
        .arg(&state)
        .assert()
        .success();
    let (code, out, err) = output(
        fleetup()
            .current_dir(&elsewhere)
            .args(["resume", &run, "--state"])
            .arg(&state),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    assert_eq!(current(&fleet.join("n2")).as_deref(), Some("4.4.16"));

    // The same run under a state directory that does not end in the plan's `state:`
    // cannot be placed: refused, nothing created anywhere.
    let moved = dir.path().join("moved");
    std::fs::rename(&state, &moved).unwrap();
    let before = snapshot(&fleet);
    let (code, out, err) = output(
        fleetup()
            .current_dir(&elsewhere)
            .args(["rollback", &run, "--yes", "--state"])
            .arg(&moved),
    );
    assert_eq!(code, Some(2), "{out}{err}");
    let said = err
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        said.contains("relative to a directory it did not record"),
        "{err}"
    );
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    assert_eq!(snapshot(&fleet), before);
}
