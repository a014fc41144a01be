//! What the docs promise and no test held before (issue 29): each test names the
//! defect or promise it holds, and was checked to fail with the behaviour removed.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

/// A Prometheus HTTP API on 127.0.0.1 whose every answer is one sample of value 0 (in
/// bounds); it counts the queries it is asked.
fn steady_prometheus() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = common::http::read_request(&c);
            count.fetch_add(1, Ordering::SeqCst);
            common::http::answer(&mut c, common::http::prometheus_vector(&["0"]).as_bytes());
        }
    });
    (port, asked)
}

fn journal_of(state: &Path) -> String {
    let run = latest_run(state);
    std::fs::read_to_string(state.join("runs").join(run).join("journal.jsonl")).unwrap()
}

/// Defect 2: a stop during a metric analysis is not a pass. The run stops, the journal
/// records the analysis as inconclusive (cut short), and `resume` asks again before the
/// next wave.
#[test]
fn a_stop_during_an_analysis_is_asked_again_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let (port, asked) = steady_prometheus();
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: cut\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  waves: [1, \"100%\"]\n\
             analysis:\n  - name: errors\n    prometheus:\n      url: \"http://127.0.0.1:{port}\"\n\
             \x20     query: app_errors_total\n      max: 0\n      for: 4s\n      interval: 200ms\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(30), || asked
        .load(Ordering::SeqCst)
        >= 2));
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{said}");
    let journal = journal_of(&d.join("state"));
    assert!(
        journal.contains("\"verdict\":\"inconclusive\""),
        "{journal}"
    );
    assert!(!journal.contains("\"verdict\":\"passed\""), "{journal}");
    assert!(journal.contains("cut short by a stop"), "{journal}");
    let n2 = link(&d.join("n2"), "current");
    assert_eq!(n2.as_deref(), Some("releases/4.4.15"));
    // Resumed: the analysis is asked again (for its whole `for`), then wave 2 goes.
    let before = asked.load(Ordering::SeqCst);
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(
        asked.load(Ordering::SeqCst) > before + 5,
        "the analysis was not asked again"
    );
    let journal = journal_of(&d.join("state"));
    assert!(journal.contains("\"verdict\":\"passed\""), "{journal}");
    assert_eq!(
        link(&d.join("n2"), "current").as_deref(),
        Some("releases/4.4.16")
    );
}

/// Runs fleetup with `args` on a real pseudo-terminal (`script`) in `dir`, answering
/// `answer` once its question is up: what the terminal showed.
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

/// A run paused at a manual gate after wave 1 (n1 upgraded, n2 not): its id.
fn paused_at_gate(d: &Path) -> String {
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: gated\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  waves: [1, \"100%\"]\n  gates: [{ after_wave: 1, approve: manual }]\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(6), "{o}{e}");
    latest_run(&d.join("state"))
}

fn status_of(d: &Path, run: &str) -> String {
    let (_, out, _) = output(
        fleetup()
            .current_dir(d)
            .args(["history", run, "--format", "json", "--state", "state"]),
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    doc["status"].as_str().unwrap_or_default().to_owned()
}

/// Defect 3: declining `abort --rollback`'s question changes nothing (the run still
/// waits, n1 stays upgraded); saying yes rolls n1 back and ends the run (as rolled
/// back: nothing is left to resume).
#[test]
fn declining_abort_rollback_changes_nothing_and_yes_rolls_back_and_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = paused_at_gate(d);
    let shown = on_terminal(d, &format!("abort {run} --rollback --state state"), "n");
    assert!(shown.contains("Roll back?"), "{shown}");
    assert!(shown.contains("Nothing was changed"), "{shown}");
    assert_eq!(status_of(d, &run), "paused", "{shown}");
    assert_eq!(
        link(&d.join("n1"), "current").as_deref(),
        Some("releases/4.4.16")
    );

    let shown = on_terminal(d, &format!("abort {run} --rollback --state state"), "y");
    assert!(shown.contains("Roll back?"), "{shown}");
    // Ended: rolled back, no longer waiting for resume.
    assert_eq!(status_of(d, &run), "rolled-back", "{shown}");
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", &run, "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("nothing to resume"), "{o}");
    assert_eq!(
        link(&d.join("n1"), "current").as_deref(),
        Some("releases/4.4.15")
    );
    assert_eq!(
        link(&d.join("n2"), "current").as_deref(),
        Some("releases/4.4.15")
    );
}

/// Defect 4: a plan without `health:` checks nothing, and says so: no `health: checking`
/// step, and the outcome reads "no health check configured", never "healthy".
#[test]
fn without_a_health_check_nothing_is_called_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: unchecked\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         nodes:\n  - { name: n1, root: ./n1 }\n",
    )
    .unwrap();
    let (code, out, err) = output(
        fleetup()
            .current_dir(d)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("health: checking"), "{out}");
    assert!(!out.contains("healthy"), "{out}");
    assert!(
        out.contains("upgraded (no health check configured, permanent"),
        "{out}"
    );
    let journal = journal_of(&d.join("state"));
    assert!(!journal.contains("\"step\":\"health\""), "{journal}");
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Promise: a wait gate sleeps, and `resume` never waits it again; a manual gate after
/// the same wave pauses the run, and resuming without an approval pauses again at once.
#[test]
fn a_wait_gate_is_waited_once_and_a_manual_gate_after_the_same_wave_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: gates\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  waves: [1, \"100%\"]\n  gates:\n    - { after_wave: 1, wait: 1s }\n    - { after_wave: 1, approve: manual }\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(6), "{o}{e}");
    let state = d.join("state");
    let run = latest_run(&state);
    assert_eq!(count(&journal_of(&state), "\"state\":\"waited\""), 1);
    // Not approved: paused again, the wait not waited again.
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", &run, "--state", "state"]),
    );
    assert_eq!(code, Some(6), "{o}{e}");
    assert_eq!(
        count(&journal_of(&state), "\"state\":\"waited\""),
        1,
        "{}",
        journal_of(&state)
    );
    assert_eq!(
        link(&d.join("n2"), "current").as_deref(),
        Some("releases/4.4.15")
    );
    // Approved: on through both gates, without waiting again.
    fleetup()
        .current_dir(d)
        .args(["approve", &run, "--state", "state"])
        .assert()
        .success();
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", &run, "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    assert_eq!(count(&journal_of(&state), "\"state\":\"waited\""), 1);
    assert_eq!(
        link(&d.join("n2"), "current").as_deref(),
        Some("releases/4.4.16")
    );
}

/// Promise: a stop signal ends a wait gate's wait at once; the run stops (exit 6) before
/// the next wave, its journal ended. (A wait cut short is waited in full on `resume`.)
#[test]
fn a_stop_ends_a_wait_gate_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: waits\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  waves: [1, \"100%\"]\n  gates: [{ after_wave: 1, wait: 10m }]\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let state = d.join("state");
    assert!(wait_until(std::time::Duration::from_secs(30), || {
        std::fs::read_dir(state.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|r| {
                std::fs::read_to_string(r.path().join("journal.jsonl"))
                    .is_ok_and(|j| j.contains("waiting 600s"))
            })
    }));
    let asked = std::time::Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    // Well within the 10 minutes the gate would wait.
    assert!(asked.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        link(&d.join("n2"), "current").as_deref(),
        Some("releases/4.4.15")
    );
    assert!(journal_of(&state).contains("\"status\":\"stopped\""));
}

/// Promise: a first SIGTERM asks the run to stop; a second ends fleetup at once with
/// exit 130, as a kill would; the journal is readable (the run is interrupted) and
/// `resume` finishes the run.
#[test]
fn a_second_signal_ends_fleetup_at_once_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: twice\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  max_parallel: 1\n\
         health:\n  command: [\"/bin/sh\", \"-c\", \"test -e {root}/ok || {{ touch {root}/checking; sleep 20; }}\"]\n  timeout: 60s\n\
         nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .current_dir(d)
        .args(["apply", "plan.yaml", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(std::time::Duration::from_secs(30), || d
        .join("n1/checking")
        .exists()));
    let pid = child.id() as i32;
    // SAFETY: kill(2) on our own child's pid, twice.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The journal reads back: the run was interrupted.
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["history", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("interrupted"), "{o}");
    // The checks pass from now on: resume finishes both nodes.
    for n in ["n1", "n2"] {
        std::fs::write(d.join(n).join("ok"), "").unwrap();
    }
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["resume", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    for n in ["n1", "n2"] {
        assert_eq!(
            link(&d.join(n), "current").as_deref(),
            Some("releases/4.4.16"),
            "{n}"
        );
    }
}

/// The lifecycle hooks' log of node `n`: one `<hook> <version>` line per run.
fn hook_log(d: &Path) -> Vec<String> {
    std::fs::read_to_string(d.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Promise (docs/guide/rollout.md): `rollback RUN` and `rollback-all` run `on_rollback` and then
/// `after` for each node they put back, so a node is never left drained.
#[test]
fn lifecycle_hooks_run_around_rollback_run_and_rollback_all() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let plan = |extra: &str| {
        format!(
            "plan: 1\nname: hooks\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  max_parallel: 1\n{extra}\
             hooks:\n  before: [\"/bin/sh\", \"-c\", \"echo before $0 $1 >> {log}\", \"{{name}}\", \"{{version}}\"]\n\
             \x20 after: [\"/bin/sh\", \"-c\", \"echo after $0 $1 >> {log}\", \"{{name}}\", \"{{version}}\"]\n\
             \x20 on_rollback: [\"/bin/sh\", \"-c\", \"echo on_rollback $0 $1 >> {log}\", \"{{name}}\", \"{{version}}\"]\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n",
            log = d.join("hooks.log").display()
        )
    };
    std::fs::write(d.join("plan.yaml"), plan("")).unwrap();
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    let run = latest_run(&d.join("state"));
    std::fs::remove_file(d.join("hooks.log")).unwrap();
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["rollback", &run, "--yes", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    let log = hook_log(d);
    for n in ["n1", "n2"] {
        let on = log
            .iter()
            .position(|l| *l == format!("on_rollback {n} 4.4.15"));
        let after = log.iter().position(|l| *l == format!("after {n} 4.4.15"));
        assert!(
            matches!((on, after), (Some(a), Some(b)) if a < b),
            "{n}: {log:?}"
        );
    }

    // rollback-all: n2's activate fails, so n1 is put back with the rest of the run.
    std::fs::write(
        d.join("plan.yaml"),
        plan("  on_failure: rollback-all\n").replace(
            "hooks:\n",
            "hooks:\n  activate: [\"/bin/sh\", \"-c\", \"test $0 != n2 || test $1 != 4.4.16\", \"{name}\", \"{version}\"]\n",
        ),
    )
    .unwrap();
    std::fs::remove_file(d.join("hooks.log")).unwrap();
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(3), "{o}{e}");
    let log = hook_log(d);
    let on = log.iter().position(|l| l == "on_rollback n1 4.4.15");
    let after = log.iter().rposition(|l| l == "after n1 4.4.15");
    assert!(
        matches!((on, after), (Some(a), Some(b)) if a < b),
        "{log:?}"
    );
    assert_eq!(
        link(&d.join("n1"), "current").as_deref(),
        Some("releases/4.4.15")
    );
}

/// Promise: `max_failures` scoped per wave gives each wave its own budget, in a real run
/// and across a resume (a manual gate splits the run); scoped to the run, the failure
/// before the resume still counts after it.
#[test]
fn max_failures_per_wave_and_per_run_hold_across_a_resume() {
    for (scope, n4) in [("wave", "releases/4.4.16"), ("run", "releases/4.4.15")] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        local_fleet(d, &["n1", "n2", "n3", "n4"], &["4.4.15", "4.4.16"]);
        std::fs::write(
            d.join("plan.yaml"),
            format!(
                "plan: 1\nname: budget\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
                 rollout:\n  max_parallel: 1\n  waves: [2, 2]\n  max_failures: {{ count: 1, scope: {scope} }}\n\
                 \x20 gates: [{{ after_wave: 1, approve: manual }}]\n\
                 hooks:\n  activate: [\"/bin/sh\", \"-c\", \"case $0-$1 in n1-4.4.16|n3-4.4.16) exit 1;; esac\", \"{{name}}\", \"{{version}}\"]\n\
                 nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n  - {{ name: n3, root: ./n3 }}\n  - {{ name: n4, root: ./n4 }}\n"
            ),
        )
        .unwrap();
        let (code, o, e) = output(
            fleetup()
                .current_dir(d)
                .args(["apply", "plan.yaml", "--yes"]),
        );
        assert_eq!(code, Some(6), "{scope}: {o}{e}");
        let run = latest_run(&d.join("state"));
        fleetup()
            .current_dir(d)
            .args(["approve", &run, "--state", "state"])
            .assert()
            .success();
        let (code, o, e) = output(
            fleetup()
                .current_dir(d)
                .args(["resume", &run, "--state", "state"]),
        );
        assert_eq!(code, Some(3), "{scope}: {o}{e}");
        assert_eq!(
            link(&d.join("n2"), "current").as_deref(),
            Some("releases/4.4.16")
        );
        assert_eq!(
            link(&d.join("n3"), "current").as_deref(),
            Some("releases/4.4.15")
        );
        assert_eq!(
            link(&d.join("n4"), "current").as_deref(),
            Some(n4),
            "{scope}: {o}"
        );
    }
}

/// Promise (docs/guide/repositories.md): a package is at most 8 GiB; a mirror that announces
/// more is refused before the body is read, never retried, and no node changes.
#[test]
fn a_package_announced_above_eight_gib_is_refused_before_its_body() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1"], &["4.4.15"]);
    let name = package_name("4.4.16");
    let index = format!("{}  {name}\n", "ab".repeat(32));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gets = Arc::new(AtomicUsize::new(0));
    let seen = gets.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let Some(req) = common::http::read_request(&c) else {
                continue;
            };
            if req.path.contains("SHA256SUMS") {
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{index}",
                        index.len()
                    )
                    .as_bytes(),
                );
            } else {
                seen.fetch_add(1, Ordering::SeqCst);
                // 8 GiB and one byte announced; a few bytes sent.
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\nPK",
                        (8u64 << 30) + 1
                    )
                    .as_bytes(),
                );
            }
        }
    });
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: big\nproduct: emqx\nrepository: \"http://127.0.0.1:{port}/\"\nto: 4.4.16\nstate: ./state\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n"
        ),
    )
    .unwrap();
    let before = snapshot(&d.join("n1"));
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .env("FLEETUP_CACHE_DIR", d.join("cache"))
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(1), "{o}{e}");
    let said = flat(&e);
    assert!(said.contains("more than the 8589934592 allowed"), "{e}");
    assert_eq!(snapshot(&d.join("n1")), before);
    // Nothing of it kept.
    let left: Vec<_> = std::fs::read_dir(d.join("cache/mirrors"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|m| std::fs::read_dir(m.path()).into_iter().flatten().flatten())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(gets.load(Ordering::SeqCst), 1, "retried");
}

/// Promise: `rollback RUN` goes newest first by when each target finished, not by plan
/// order: n1 (slow to turn healthy) finished after n2, so it goes back first.
#[test]
fn rollback_run_goes_newest_first_by_completion_not_plan_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    local_fleet(d, &["n1", "n2"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        format!(
            "plan: 1\nname: order\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             rollout:\n  max_parallel: 2\n\
             health:\n  command: [\"/bin/sh\", \"-c\", \"test $0-$1 != n1-4.4.16 || sleep 1\", \"{{name}}\", \"{{version}}\"]\n  timeout: 30s\n\
             hooks:\n  on_rollback: [\"/bin/sh\", \"-c\", \"echo $0 >> {log}\", \"{{name}}\"]\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n",
            log = d.join("back.log").display()
        ),
    )
    .unwrap();
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["apply", "plan.yaml", "--yes"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    let run = latest_run(&d.join("state"));
    let journal = journal_of(&d.join("state"));
    // n2 finished first (the journal's done lines say so).
    let order: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("\"event\":\"done\""))
        .map(|l| {
            if l.contains("\"target\":\"n1\"") {
                "n1"
            } else {
                "n2"
            }
        })
        .collect();
    assert_eq!(order, ["n2", "n1"], "{journal}");
    let (code, o, e) = output(
        fleetup()
            .current_dir(d)
            .args(["rollback", &run, "--yes", "--state", "state"]),
    );
    assert_eq!(code, Some(0), "{o}{e}");
    let back = std::fs::read_to_string(d.join("back.log")).unwrap();
    assert_eq!(back.lines().collect::<Vec<_>>(), ["n1", "n2"], "{back}");
}

/// A Prometheus that answers every query with `value` and keeps each query's path.
fn recording_prometheus(value: &'static str) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            if let Some(r) = common::http::read_request(&c) {
                log.lock().unwrap().push(r.path);
            }
            common::http::answer(&mut c, common::http::prometheus_vector(&[value]).as_bytes());
        }
    });
    (port, asked)
}

/// A group `shop` on mall 1.0.0 (market `market`, root `shop`) under `d`, and a plan
/// taking it to 1.0.1 with `analysis` (YAML, indented as a top-level key).
fn analysed_group(d: &Path, analysis: &str) -> std::path::PathBuf {
    for (v, web) in [("1.0.0", "mall/web:1.0.0"), ("1.0.1", "mall/web:1.0.1")] {
        let app = d.join("market/mall");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join(format!("{v}.yaml")),
            format!("app: mall\nversion: {v}\nservices:\n  web:\n    image: {web}\n"),
        )
        .unwrap();
    }
    let (code, out, err) = output(fleetup().current_dir(d).args([
        "group", "install", "mall", "1.0.0", "--root", "shop", "--market", "market",
    ]));
    assert_eq!(code, Some(0), "{out}{err}");
    let plan = d.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "plan: 1\nname: shop\nproduct: mall\nstate: ./state\n{analysis}\
             groups:\n  - name: shop\n    root: ./shop\n    market: ./market\n    \
             vars: {{ zone: west }}\n    apps: [{{ app: mall, to: 1.0.1 }}]\n"
        ),
    )
    .unwrap();
    plan
}

/// An analysis asks about a group as it asks about a node: per target, with the group's
/// placeholders; a group whose metric is out of bounds is rolled back.
#[test]
fn an_analysis_asks_about_a_group_and_rolls_it_back_when_its_metric_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, asked) = recording_prometheus("7");
    let plan = analysed_group(
        d,
        &format!(
            "analysis:\n  - name: errors\n    prometheus:\n      url: \"http://127.0.0.1:{port}\"\n\
             \x20     query: 'app_errors_total{{{{group=\"{{name}}\",zone=\"{{zone}}\"}}}}'\n\
             \x20     max: 0\n      for: 1s\n      interval: 200ms\n"
        ),
    );
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["outcome"], "rolled-back", "{doc}");
    assert!(
        doc["targets"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("analysis `errors`"),
        "{doc}"
    );
    assert_eq!(
        doc["targets"][0]["code"], "fleetup::analysis::failed",
        "{doc}"
    );
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|p| p.contains("shop") && p.contains("west")),
        "{asked:?}"
    );
    let (_, status, _) = output(
        fleetup()
            .current_dir(d)
            .args(["group", "status", "--root", "shop", "--market", "market"]),
    );
    assert!(status.contains("mall 1.0.0"), "{status}");
}

/// A query's placeholder a group lacks is refused by `check`, pointing at the query.
#[test]
fn a_query_placeholder_a_group_lacks_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let plan = analysed_group(
        dir.path(),
        "analysis:\n  - name: errors\n    prometheus:\n      url: \"http://127.0.0.1:9\"\n\
         \x20     query: 'app_errors_total{{host=\"{host}\"}}'\n      max: 0\n",
    );
    let (code, out, err) = output(fleetup().arg("check").arg(&plan));
    assert_eq!(code, Some(1), "{out}{err}");
    let all = flat(&format!("{out}{err}"));
    assert!(
        all.contains("placeholder `{host}` has no value for group `shop`"),
        "{all}"
    );
}
