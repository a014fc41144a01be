//! What fleetup asks on a terminal says what will happen; `--yes` answers for scripts.
//! The terminal is a real pseudo-terminal (`script` from util-linux), answered with `n`.

mod common;

use std::path::Path;

use common::*;

/// Runs fleetup with `args` on a pseudo-terminal in `dir`, answering `answer`: what the
/// terminal showed.
fn on_terminal(dir: &Path, args: &str, answer: &str) -> String {
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_fleetup"));
    let out = std::process::Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(format!(
            "(sleep 2; printf '{answer}\\n') | script -qec \"$0\" /dev/null",
        ))
        .arg(&cmd)
        .output()
        .expect("script (util-linux) runs commands on a pseudo-terminal");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn prompts_say_what_will_change_and_no_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    local_fleet(t.path(), &["n1", "n2"], &["4.4.15", "4.4.16"]);
    // A window open now: it closes in half an hour and opens again a minute later
    // (across midnight when need be). Wide enough that a loaded machine cannot see it
    // close between the prompt and the run (a window closing within the minute could).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let hm = |m: u64| format!("{:02}:{:02}", (m / 60) % 24, m % 60);
    let (from, to) = (hm(now + 31), hm(now + 30));
    std::fs::write(
        t.path().join("plan.yaml"),
        format!(
            "plan: 1\nname: fleet\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  waves: [1, \"100%\"]\nwindow: {{ from: \"{from}\", to: \"{to}\", tz: UTC }}\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n  - {{ name: n3, root: ./n3 }}\n"
        ),
    )
    .unwrap();
    let before = snapshot(t.path());
    // `snapshot` leaves lock files out: read them as they are.
    let locks = || {
        ["n1", "n2"]
            .map(|n| std::fs::read(t.path().join(n).join("releases/.lock")).unwrap_or_default())
    };
    let locks_before = locks();
    let shown = on_terminal(t.path(), "apply plan.yaml", "n");
    assert!(
        shown.contains("Apply fleet: 3 targets in 2 waves, at most 10 at once."),
        "{shown}"
    );
    assert!(shown.contains("wave 1/2: n1 (4.4.15 → 4.4.16)"), "{shown}");
    assert!(
        shown.contains("wave 2/2: n2 (4.4.15 → 4.4.16), n3 (fresh install → 4.4.16)"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("window: {from}–{to} UTC (open now)")),
        "{shown}"
    );
    assert!(shown.contains("Apply? [y/N]"), "{shown}");
    // Declining changed nothing at all: no store, no journal, not even a lock file (the
    // check of who holds each store takes nothing and writes nothing).
    assert_eq!(snapshot(t.path()), before, "declining changed a file");
    assert_eq!(locks(), locks_before, "declining rewrote a lock file");
    for n in ["n1", "n2"] {
        assert_eq!(
            link(&t.path().join(n), "permanent").as_deref(),
            Some("releases/4.4.15")
        );
    }
    assert!(!t.path().join("n3").exists());
    assert_eq!(
        std::fs::read_dir(t.path().join("state/runs")).map_or(0, |d| d.count()),
        0
    );

    // rollback RUN asks too, naming what goes back, newest first.
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(t.path())
                .args(["apply", "plan.yaml", "--yes"]),
        );
    assert_eq!(code, Some(0), "{out}{err}");
    let run = latest_run(&t.path().join("state"));
    let shown = on_terminal(t.path(), &format!("rollback {run} --state state"), "n");
    assert!(
        shown.contains(&format!("Roll back run {run}: 3 targets, newest first:")),
        "{shown}"
    );
    assert!(shown.contains("n1 (4.4.16 → 4.4.15)"), "{shown}");
    assert!(shown.contains("Roll back? [y/N]"), "{shown}");
    assert_eq!(
        link(&t.path().join("n1"), "permanent").as_deref(),
        Some("releases/4.4.16")
    );
    // --yes answers, as for apply.
    let shown = on_terminal(
        t.path(),
        &format!("rollback {run} --state state --yes"),
        "n",
    );
    assert!(!shown.contains("Roll back?"), "{shown}");
    assert_eq!(
        link(&t.path().join("n1"), "permanent").as_deref(),
        Some("releases/4.4.15")
    );
}

#[test]
fn group_rollback_asks_on_a_terminal() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("market/mall");
    std::fs::create_dir_all(&m).unwrap();
    for v in ["1.0.0", "1.0.1"] {
        std::fs::write(
            m.join(format!("{v}.yaml")),
            format!("app: mall\nversion: {v}\nservices:\n  web:\n    image: mall/web:{v}\n"),
        )
        .unwrap();
    }
    for args in [
        &["install", "mall", "1.0.0"][..],
        &["upgrade", "mall", "--to", "1.0.1"],
    ] {
        let (code, out, err) = output(
            fleetup()
                .current_dir(t.path())
                .arg("group")
                .args(args)
                .args(["--root", "g", "--market", "market"]),
        );
        assert_eq!(code, Some(0), "{out}{err}");
    }
    let shown = on_terminal(t.path(), "group rollback --root g --services web", "n");
    assert!(
        shown.contains(
            "Roll back the last upgrade of the group g (web); services it added are kept."
        ),
        "{shown}"
    );
    assert!(shown.contains("Nothing was changed."), "{shown}");
    let spec = std::fs::read_to_string(t.path().join("g/services/web.yaml")).unwrap();
    assert!(spec.contains("mall/web:1.0.1"), "{spec}");
    let shown = on_terminal(t.path(), "group rollback --root g --yes", "n");
    assert!(shown.contains("rolled-back"), "{shown}");
}
