//! The app-market walkthrough (SPEC §3) against the binary: install, status, diff, a
//! refused minor jump, an upgrade of chosen services, a second upgrade, records, the
//! rollback rules (only the last, chosen services, added services kept), and a failing
//! health check recorded as such.

mod common;

use std::path::Path;

use common::*;

fn market(dir: &Path) {
    let app = |v: &str, services: &str| {
        let d = dir.join("mall");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("{v}.yaml")),
            format!("app: mall\nversion: {v}\nservices:\n{services}"),
        )
        .unwrap();
    };
    app(
        "1.0.0",
        "  web:\n    image: mall/web:1.0.0\n    ports: [{ port: 80, protocol: http }]\n  api:\n    image: mall/api:1.0.0\n",
    );
    app(
        "1.0.1",
        "  web:\n    image: mall/web:1.0.1\n    ports: [{ port: 80, protocol: http }]\n    env: { API_URL: \"http://api:8080\" }\n  api:\n    image: mall/api:1.0.0\n  worker:\n    image: mall/worker:1.0.1\n",
    );
    app(
        "1.0.2",
        "  web:\n    image: mall/web:1.0.2\n    ports: [{ port: 80, protocol: http }]\n    env: { API_URL: \"http://api:8080\" }\n    volumes: [{ path: /data/static }]\n  api:\n    image: mall/api:1.0.2\n  worker:\n    image: mall/worker:1.0.1\n",
    );
    app(
        "1.0.3",
        "  web:\n    image: mall/web:1.0.3\n  api:\n    image: mall/api:1.0.3\n  worker:\n    image: mall/worker:1.0.1\n",
    );
    app(
        "1.1.0",
        "  web:\n    image: mall/web:1.1.0\n  api:\n    image: mall/api:1.1.0\n",
    );
}

fn group(root: &Path, market: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut c = fleetup();
    c.arg("group")
        .arg(args[0])
        .args(&args[1..])
        .arg("--root")
        .arg(root);
    if !matches!(args[0], "records" | "record" | "rollback") {
        c.arg("--market").arg(market);
    }
    output(&mut c)
}

fn ok(root: &Path, market: &Path, args: &[&str]) -> String {
    let (code, out, err) = group(root, market, args);
    assert_eq!(code, Some(0), "group {args:?}:\n{out}{err}");
    out
}

/// `apply PLAN --yes`, which must succeed.
fn apply_ok(plan: &Path) {
    let out = fleetup()
        .arg("apply")
        .arg(plan)
        .arg("--yes")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn spec_image(root: &Path, service: &str) -> String {
    let text = std::fs::read_to_string(root.join(format!("services/{service}.yaml"))).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("image: "))
        .unwrap()
        .trim()
        .to_owned()
}

/// A market and a group whose deploy hook copies the spec beside it and whose health
/// check fails for a service while `<root>/fail-<service>` exists.
fn hooked_group(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (m, root) = (dir.join("market"), dir.join("shop"));
    market(&m);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("group-hooks.toml"),
        r#"[deploy]
command = ["/bin/sh", "-c", "cp {spec} {root}/deployed-{service}.yaml && echo {service} {version} >> {root}/deploys.log"]
timeout = "10s"
[health]
command = ["/bin/sh", "-c", "test ! -e {root}/fail-{service}"]
timeout = "1s"
interval = "100ms"
"#,
    )
    .unwrap();
    (m, root)
}

#[test]
fn the_app_market_walkthrough() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = hooked_group(t.path());

    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let out = ok(&root, &m, &["status"]);
    assert!(
        out.contains("mall 1.0.0  ● newer in the market: 1.0.1, 1.0.2, 1.0.3, 1.1.0"),
        "{out}"
    );

    // The per-service diff with its markers.
    let out = ok(&root, &m, &["diff", "mall", "--to", "1.0.1"]);
    assert!(out.contains("▲ web"), "{out}");
    assert!(
        out.contains("image mall/web:1.0.0 → mall/web:1.0.1; env API_URL added"),
        "{out}"
    );
    assert!(
        out.contains("+ worker") && out.contains("  api     unchanged"),
        "{out}"
    );

    // A minor jump is refused under the default patch policy, and changes nothing.
    let before = snapshot(&root);
    let (code, _, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.1.0"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("fleetup::rule::version-rule") && err.contains("1.0.0 → 1.1.0"),
        "{err}"
    );
    assert_eq!(snapshot(&root), before);

    // Upgrade only web; the deploy hook applies the rendered spec.
    let out = ok(
        &root,
        &m,
        &["upgrade", "mall", "--to", "1.0.1", "--services", "web"],
    );
    assert!(
        out.contains("▲ web: upgraded") && out.contains("Record 0001"),
        "{out}"
    );
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.1");
    assert!(
        std::fs::read_to_string(root.join("deployed-web.yaml"))
            .unwrap()
            .contains("mall/web:1.0.1")
    );
    assert!(
        !root.join("services/worker.yaml").exists(),
        "worker was not picked"
    );

    // A second upgrade: web and api change, worker is added.
    let out = ok(&root, &m, &["upgrade", "mall", "--to", "1.0.2"]);
    assert!(
        out.contains("+ worker: upgraded") && out.contains("Record 0002"),
        "{out}"
    );
    let out = ok(&root, &m, &["records"]);
    assert_eq!(out.lines().count(), 2, "{out}");

    // Only the last upgrade can be rolled back.
    let before = snapshot(&root);
    let (code, _, err) = group(&root, &m, &["rollback", "--record", "0001"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("only the last upgrade can be rolled back: that is record 0002"),
        "{err}"
    );
    assert_eq!(snapshot(&root), before);

    // Roll back only api; worker, added by that upgrade, is kept.
    let out = ok(&root, &m, &["rollback", "--services", "api"]);
    assert!(
        out.contains("↺ api: done") && out.contains("worker: kept"),
        "{out}"
    );
    assert_eq!(spec_image(&root, "api"), "mall/api:1.0.0");
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.2");
    assert!(root.join("services/worker.yaml").exists());
    // Record ids can be typed without their leading zeros.
    let rec = ok(&root, &m, &["record", "3"]);
    assert!(
        rec.contains("rollback of mall 1.0.2 → 1.0.1: partial-rollback, undoes 0002"),
        "{rec}"
    );
    let rec = ok(&root, &m, &["record", "0002", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(v["undone_by"], "0003");

    // A partial rollback is continued (as Rainbond does): web goes back too; then the
    // same upgrade cannot be rolled back again.
    let out = ok(&root, &m, &["rollback"]);
    assert!(
        out.contains("↺ web: done") && !out.contains("↺ api") && out.contains("rolled-back"),
        "{out}"
    );
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.1");
    let (code, _, err) = group(&root, &m, &["rollback"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already rolled back by record 0004"), "{err}");

    // A failing health check is recorded; the service keeps its previous spec.
    std::fs::write(root.join("fail-web"), "").unwrap();
    let (code, out, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.0.3"]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains("▲ web: failed") && out.contains("partial-upgraded"),
        "{out}"
    );
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.1");
    assert_eq!(spec_image(&root, "api"), "mall/api:1.0.3");
    // ...and the rollback of it restores api, while a rollback with nothing to do is refused.
    let (code, _, err) = group(&root, &m, &["rollback", "--services", "web"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing to roll back"), "{err}");
    std::fs::remove_file(root.join("fail-web")).unwrap();
    let out = ok(&root, &m, &["rollback"]);
    assert!(out.contains("rolled-back"), "{out}");
    // api goes back to what it ran before that upgrade: 1.0.0, after the earlier rollback.
    assert_eq!(spec_image(&root, "api"), "mall/api:1.0.0");
}

fn group_plan(dir: &Path, deploy_sleep: &str) -> std::path::PathBuf {
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            r#"plan: 1
name: shop-upgrade
product: mall
state: ./state
groups:
  - name: shop
    root: ./shop
    market: ./market
    apps:
      - app: mall
        to: 1.0.2
    hooks:
      deploy: ["/bin/sh", "-c", "sleep {deploy_sleep}; cp {{spec}} {{root}}/applied-{{service}}.yaml"]
      timeout: 10s
    health:
      command: ["/bin/sh", "-c", "test ! -e {{root}}/fail-{{service}}"]
      timeout: 1s
      interval: 100ms
"#
        ),
    )
    .unwrap();
    plan
}

#[test]
fn a_plan_driven_group_run_rolls_back_a_failed_service_and_records_it() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let plan = group_plan(t.path(), "0");

    // The dry run shows the per-service changes.
    let out = fleetup().arg("plan").arg(&plan).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("▲ web upgrade: image mall/web:1.0.0 → mall/web:1.0.2")
            && text.contains("+ worker add"),
        "{text}"
    );

    std::fs::write(root.join("fail-api"), "").unwrap();
    let out = fleetup()
        .arg("apply")
        .arg(&plan)
        .args(["--yes", "--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{doc}");
    assert_eq!(doc["targets"][0]["outcome"], "rolled-back", "{doc}");
    // The deploy hook really applied specs; the rollback put web back; worker is kept.
    assert!(
        std::fs::read_to_string(root.join("applied-web.yaml"))
            .unwrap()
            .contains("mall/web:1.0.0")
    );
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.0");
    assert_eq!(spec_image(&root, "api"), "mall/api:1.0.0");
    assert!(
        root.join("services/worker.yaml").exists(),
        "an added service was removed by the rollback"
    );
    let up = ok(&root, &m, &["record", "0001"]);
    assert!(
        up.contains("partial-upgraded, rolled back by 0002")
            && up.contains("api")
            && up.contains("failed: health"),
        "{up}"
    );
    let rb = ok(&root, &m, &["record", "0002"]);
    assert!(
        rb.contains("rolled-back, undoes 0001") && rb.contains("worker") && rb.contains("kept"),
        "{rb}"
    );

    // Fixed, the same plan goes through.
    std::fs::remove_file(root.join("fail-api")).unwrap();
    apply_ok(&plan);
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.2"));
}

/// A group on mall 1.0.0 whose plan-driven upgrade to 1.0.2 was SIGKILLed while the
/// second of three services (api, web, worker) deployed: once the first is applied,
/// the next one's deploy hook sleeps 0.4 s.
fn killed_mid_upgrade() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let plan = group_plan(t.path(), "0.4");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("apply")
        .arg(&plan)
        .arg("--yes")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = root.join("applied-api.yaml");
    assert!(
        wait_until(std::time::Duration::from_secs(30), || first.exists()),
        "the first service was never applied"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    let _ = child.kill();
    let _ = child.wait();
    (t, m, root)
}

#[test]
fn a_killed_group_upgrade_leaves_a_readable_group_that_resume_finishes() {
    let (t, m, root) = killed_mid_upgrade();
    let status = ok(&root, &m, &["status"]);
    assert!(status.contains("mall 1.0.0"), "{status}");
    assert!(ok(&root, &m, &["records"]).contains("in-progress"));
    let out = fleetup()
        .args(["resume", "--state"])
        .arg(t.path().join("state"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Finishing the interrupted upgrade 0001"),
        "{text}"
    );
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.2"));
    let rec = ok(&root, &m, &["record", "0001"]);
    assert!(
        rec.contains(": upgraded") && !rec.contains("pending"),
        "{rec}"
    );
    for s in ["web", "api", "worker"] {
        assert!(
            root.join(format!("applied-{s}.yaml")).exists(),
            "{s} was never deployed"
        );
    }
}

#[test]
fn a_group_run_previews_as_json_and_can_be_rolled_back_as_a_run() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    // A second install of the same app is refused.
    let (code, _, err) = group(&root, &m, &["install", "mall", "1.0.1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already installed"), "{err}");
    let plan = group_plan(t.path(), "0");

    let out = fleetup()
        .arg("plan")
        .arg(&plan)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shop = &doc["waves"][0][0];
    assert_eq!(shop["kind"], "group");
    assert_eq!(shop["from"], "mall 1.0.0");
    assert!(
        shop["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("+ worker add")),
        "{doc}"
    );

    // The run's summary says what the group came from, as its preview did.
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(target(&doc, "shop")["from"], "mall 1.0.0", "{doc}");
    let run = &latest_run(&t.path().join("state"));
    let (code, out, err) = output(
        fleetup()
            .args(["rollback", run, "--state"])
            .arg(t.path().join("state")),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with("shop")
            && l.split_whitespace().collect::<Vec<_>>()[1..5]
                == ["mall", "1.0.2", "mall", "1.0.0"]),
        "the rollback's summary says where the group went back to: {out}"
    );
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.0"));
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.0");
    assert!(
        root.join("services/worker.yaml").exists(),
        "a rollback removed an added service"
    );

    // The run is finished: resume has nothing to do; an unknown run is a usage error.
    let (code, out, _) = output(
        fleetup()
            .args(["resume", run, "--state"])
            .arg(t.path().join("state")),
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to resume"), "{out}");
    let (code, _, err) = output(
        fleetup()
            .args(["resume", "no-such-run", "--state"])
            .arg(t.path().join("state")),
    );
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn a_failed_install_records_nothing_and_leaves_no_spec_behind() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = hooked_group(t.path());
    // Services deploy in name order: api goes through, web fails its health check.
    std::fs::write(root.join("fail-web"), "").unwrap();
    let (code, _, err) = group(&root, &m, &["install", "mall", "1.0.0"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("service `web`"), "{err}");
    let said = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        said.contains("but api already went through the deploy hook"),
        "{err}"
    );
    for s in ["api", "web"] {
        assert!(
            !root.join(format!("services/{s}.yaml")).exists(),
            "the spec of {s} was left behind"
        );
    }
    let status = ok(&root, &m, &["status"]);
    assert!(!status.contains("mall"), "{status}");
    // Once the cause is gone, the install goes through.
    std::fs::remove_file(root.join("fail-web")).unwrap();
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.0");
}

#[test]
fn a_group_upgraded_just_before_a_kill_counts_as_upgraded_by_the_resumed_run() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let plan = group_plan(t.path(), "0");
    apply_ok(&plan);
    let state = t.path().join("state");
    let run = cut_journal(&state, "shop");
    let (code, out, err) = output(
        fleetup()
            .args(["resume", &run, "--format", "json", "--state"])
            .arg(&state),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["outcome"], "upgraded", "{doc}");
    let (code, out, err) = output(fleetup().args(["rollback", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.0"));
}

#[test]
fn rollback_all_after_a_resume_takes_back_a_group_the_killed_attempt_upgraded() {
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("market");
    market(&m);
    for g in ["shop1", "shop2"] {
        ok(&t.path().join(g), &m, &["install", "mall", "1.0.0"]);
    }
    let plan = t.path().join("plan.yaml");
    let entry = |name: &str| {
        format!(
            r#"  - name: {name}
    root: ./{name}
    market: ./market
    apps:
      - app: mall
        to: 1.0.1
    hooks:
      deploy: ["/bin/sh", "-c", "cp {{spec}} {{root}}/applied-{{service}}.yaml"]
      timeout: 10s
    health:
      command: ["/bin/sh", "-c", "test ! -e {{root}}/fail-{{service}}"]
      timeout: 1s
      interval: 100ms
"#
        )
    };
    std::fs::write(
        &plan,
        format!(
            "plan: 1\nname: two-shops\nproduct: mall\nstate: ./state\nrollout:\n  waves: [1]\n  on_failure: rollback-all\ngroups:\n{}{}",
            entry("shop1"),
            entry("shop2")
        ),
    )
    .unwrap();
    apply_ok(&plan);
    // Make the journal and shop2 look as a kill right after shop1 finished leaves them:
    // nothing of shop2's wave was written, and shop2 is still on 1.0.0.
    let state = t.path().join("state");
    let run = latest_run(&state);
    let journal = state.join("runs").join(&run).join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let wave2 = text.find("\"index\":2").unwrap();
    let cut = &text[..text[..wave2].rfind('\n').unwrap() + 1];
    std::fs::write(&journal, cut).unwrap();
    let (code, out, err) = group(&t.path().join("shop2"), &m, &["rollback"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(ok(&t.path().join("shop2"), &m, &["status"]).contains("mall 1.0.0"));

    // The resumed run fails shop2, so rollback-all takes back shop1 too: this run
    // upgraded it, in the attempt that was killed.
    std::fs::write(t.path().join("shop2/fail-web"), "").unwrap();
    let (code, out, err) = output(
        fleetup()
            .args(["resume", &run, "--format", "json", "--state"])
            .arg(&state),
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["targets"][0]["target"], "shop1", "{doc}");
    assert_eq!(doc["targets"][0]["outcome"], "rolled-back", "{doc}");
    let status = ok(&t.path().join("shop1"), &m, &["status"]);
    assert!(status.contains("mall 1.0.0"), "{status}");
}

#[test]
fn a_missing_record_never_makes_the_next_one_replace_another() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = hooked_group(t.path());
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    ok(&root, &m, &["upgrade", "mall", "--to", "1.0.1"]);
    ok(&root, &m, &["upgrade", "mall", "--to", "1.0.2"]);
    let second = std::fs::read(root.join("records/0002.json")).unwrap();
    // One record goes missing (a person, a disk): the next one still gets a new id.
    std::fs::remove_file(root.join("records/0001.json")).unwrap();
    ok(&root, &m, &["upgrade", "mall", "--to", "1.0.3"]);
    assert_eq!(
        std::fs::read(root.join("records/0002.json")).unwrap(),
        second,
        "record 0002 was replaced"
    );
    let third = ok(&root, &m, &["record", "0003"]);
    assert!(third.contains("1.0.2 → 1.0.3"), "{third}");
}

#[test]
fn rollback_of_a_run_leaves_a_group_upgraded_by_hand_after_it() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    apply_ok(&group_plan(t.path(), "0"));
    let state = t.path().join("state");
    let run = latest_run(&state);
    // By hand, after the run.
    ok(&root, &m, &["upgrade", "mall", "--to", "1.0.3"]);
    let (code, out, err) = output(fleetup().args(["rollback", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(
        err.contains("fleetup::run::moved-on") && err.contains("by hand"),
        "{err}"
    );
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.3"));
}

#[test]
fn a_killed_plan_upgrade_is_not_finished_by_hand_without_its_hooks() {
    let (t, m, root) = killed_mid_upgrade();
    // By hand there is no deploy hook (no group-hooks.toml): finishing the plan's
    // upgrade that way would record services as done that were never deployed.
    let (code, out, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.0.2"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("fleetup resume"), "{err}");
    assert!(ok(&root, &m, &["records"]).contains("in-progress"));
    // resume finishes it with the plan's hooks: every service deployed.
    let (code, out, err) = output(
        fleetup()
            .args(["resume", "--state"])
            .arg(t.path().join("state")),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for s in ["web", "api", "worker"] {
        assert!(
            root.join(format!("applied-{s}.yaml")).exists(),
            "{s} was never deployed"
        );
    }
}

#[test]
fn an_interrupted_upgrade_can_only_be_finished_not_rolled_back() {
    let (_t, m, root) = killed_mid_upgrade();
    let before = snapshot(&root);
    let (code, out, err) = group(&root, &m, &["rollback"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("upgrade 0001 of mall to 1.0.2 is unfinished and cannot be rolled back"),
        "{err}"
    );
    assert!(err.contains("fleetup resume"), "{err}");
    assert_eq!(
        snapshot(&root),
        before,
        "a refused rollback changed the group"
    );
}

#[test]
fn a_partial_upgrade_is_completed_by_the_same_upgrade_and_a_failed_service_is_deployed_back() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = hooked_group(t.path());
    // Health fails for one service at one version while `fail-<service>-<version>` exists.
    let hooks = std::fs::read_to_string(root.join("group-hooks.toml"))
        .unwrap()
        .replace("fail-{service}", "fail-{service}-{version}");
    std::fs::write(root.join("group-hooks.toml"), hooks).unwrap();
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    // api fails its health check at 1.0.2: its previous version is deployed again.
    std::fs::write(root.join("fail-api-1.0.2"), "").unwrap();
    let (code, out, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.0.2"]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("partial-upgraded"), "{out}");
    let deployed = std::fs::read_to_string(root.join("deployed-api.yaml")).unwrap();
    assert!(deployed.contains("mall/api:1.0.0"), "{deployed}");
    let log = std::fs::read_to_string(root.join("deploys.log")).unwrap();
    assert!(log.contains("api 1.0.2\napi 1.0.0\n"), "{log}");
    let rec = ok(&root, &m, &["record", "0001"]);
    assert!(rec.contains("1.0.0 deployed again"), "{rec}");
    // Status says what each service runs.
    let status = ok(&root, &m, &["status"]);
    assert!(status.contains("not all on 1.0.2: api 1.0.0"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&root, &m, &["status", "--format", "json"])).unwrap();
    assert_eq!(json[0]["running"]["api"], "1.0.0", "{json}");
    // The diff of finishing it names what api runs, and that only api is left.
    let diff = ok(&root, &m, &["diff", "mall", "--to", "1.0.2"]);
    assert!(diff.contains("(runs 1.0.0)"), "{diff}");
    assert!(diff.contains("▲ api") && !diff.contains("▲ web"), "{diff}");

    // The same upgrade again deploys what it left: api only.
    std::fs::remove_file(root.join("fail-api-1.0.2")).unwrap();
    let lines = log.lines().count();
    let out = ok(&root, &m, &["upgrade", "mall", "--to", "1.0.2"]);
    assert!(
        out.contains("▲ api: upgraded")
            && out.contains("Record 0002: mall 1.0.0 → 1.0.2: upgraded"),
        "{out}"
    );
    let log = std::fs::read_to_string(root.join("deploys.log")).unwrap();
    let new: Vec<&str> = log.lines().skip(lines).collect();
    assert_eq!(new, vec!["api 1.0.2"], "{log}");
    let status = ok(&root, &m, &["status"]);
    assert!(!status.contains("not all on"), "{status}");
    let (code, _, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.0.2"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("mall is already at 1.0.2"), "{err}");
}

#[test]
fn app_names_from_the_command_line_never_lead_out_of_the_market() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = hooked_group(t.path());
    // A template beside the market, which a path could reach.
    let evil = t.path().join("evil").join("x");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(
        evil.join("1.0.0.yaml"),
        "app: ../evil/x\nversion: 1.0.0\nservices:\n  s:\n    image: evil:1\n",
    )
    .unwrap();
    for args in [
        &["install", "../evil/x", "1.0.0"][..],
        &["diff", "../evil/x", "--to", "1.0.0"],
        &["upgrade", "../evil/x", "--to", "1.0.0"],
    ] {
        let (code, out, err) = group(&root, &m, args);
        assert_eq!(code, Some(1), "{args:?}: {out}{err}");
        assert!(err.contains("`../evil/x` is not an app name"), "{err}");
    }
    assert!(!root.join("group.toml").exists());
    assert!(!root.join("services").exists());
}

/// A second app in the market: `blog` 1.0.0 and 1.0.1 (one service each).
fn blog(market: &Path) {
    let d = market.join("blog");
    std::fs::create_dir_all(&d).unwrap();
    for v in ["1.0.0", "1.0.1"] {
        std::fs::write(
            d.join(format!("{v}.yaml")),
            format!("app: blog\nversion: {v}\nservices:\n  pages:\n    image: blog/pages:{v}\n"),
        )
        .unwrap();
    }
}

/// A group with mall 1.0.0 and blog 1.0.0 installed, and a plan taking mall to 1.0.2
/// and blog to 1.0.1: the directory, the market, the group and the plan.
fn two_apps() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    blog(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    ok(&root, &m, &["install", "blog", "1.0.0"]);
    let plan = group_plan(t.path(), "0");
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "      - app: mall\n        to: 1.0.2\n",
        "      - app: mall\n        to: 1.0.2\n      - app: blog\n        to: 1.0.1\n",
    );
    std::fs::write(&plan, text).unwrap();
    (t, m, root, plan)
}

#[test]
fn a_run_that_upgraded_two_apps_of_a_group_rolls_back_both_newest_first() {
    let (t, m, root, plan) = two_apps();
    apply_ok(&plan);
    let status = ok(&root, &m, &["status"]);
    assert!(
        status.contains("mall 1.0.2") && status.contains("blog 1.0.1"),
        "{status}"
    );

    let state = t.path().join("state");
    let run = latest_run(&state);
    let (code, out, err) = output(fleetup().args(["rollback", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(0), "{out}{err}");
    let status = ok(&root, &m, &["status"]);
    assert!(
        status.contains("mall 1.0.0") && status.contains("blog 1.0.0"),
        "{status}"
    );
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.0");
    assert_eq!(spec_image(&root, "pages"), "blog/pages:1.0.0");
    // Newest first: blog's upgrade (0002) was undone before mall's (0001).
    let recs = ok(&root, &m, &["records"]);
    let undo = |id: &str| {
        recs.lines()
            .find(|l| l.contains(&format!("(undoes {id})")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no rollback of {id}: {recs}"))
            .to_owned()
    };
    assert!(undo("0002") < undo("0001"), "{recs}");

    // Within a run too: when the second app fails, the first is taken back with it.
    let (_t, m, root, plan) = two_apps();
    std::fs::write(root.join("fail-pages"), "").unwrap();
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    let status = ok(&root, &m, &["status"]);
    assert!(
        status.contains("mall 1.0.0") && status.contains("blog 1.0.0"),
        "{status}"
    );
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.0");
}

/// A validator from PyPI (kubernetes-validate, check-jsonschema): from the throwaway
/// virtualenv `scripts/test` makes (`$FLEETUP_VALIDATORS`), else from PATH.
fn validator(name: &str) -> std::process::Command {
    let venv = std::env::var_os("FLEETUP_VALIDATORS")
        .map(|v| Path::new(&v).join("bin").join(name))
        .filter(|p| p.exists());
    let cmd = venv.unwrap_or_else(|| name.into());
    let found = std::process::Command::new(&cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is needed: scripts/test installs it (pip install kubernetes-validate check-jsonschema)"
    );
    std::process::Command::new(cmd)
}

/// `validator` on `file`: its exit status and what it said.
fn validate(v: &mut std::process::Command, file: &Path) -> (bool, String) {
    let out = v.arg(file).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A group whose market's `shop` app has every kind of field, rendered as `render`.
fn rendered_group(dir: &Path, render: &str) -> std::path::PathBuf {
    let (m, root) = (dir.join("market"), dir.join("g"));
    std::fs::create_dir_all(m.join("shop")).unwrap();
    std::fs::write(
        m.join("shop/2.0.0.yaml"),
        "app: shop\nversion: 2.0.0\nservices:\n\
         \x20 Web_front:\n    image: shop/web:2.0.0\n    ports: [{ port: 80, protocol: http, host: 8080 }, { port: 53, protocol: udp }]\n\
         \x20   env: { API_URL: \"http://api:8080\", EMPTY: \"\" }\n    volumes: [{ path: /data }, { path: /cache }]\n\
         \x20 worker:\n    image: shop/worker:2.0.0\n",
    )
    .unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("group-hooks.toml"),
        format!("render = \"{render}\"\n[deploy]\ncommand = [\"cp\", \"{{spec}}\", \"{{root}}/applied-{{service}}.yaml\"]\n\
                 [overrides.Web_front]\nvolumes = [{{ path = \"/data\", size = \"10Gi\" }}]\n"),
    )
    .unwrap();
    ok(&root, &m, &["install", "shop", "2.0.0"]);
    root
}

#[test]
fn kubernetes_manifests_pass_a_kubernetes_schema_validator() {
    let t = tempfile::tempdir().unwrap();
    let root = rendered_group(t.path(), "kubernetes");
    for s in ["Web_front", "worker"] {
        let file = root.join(format!("services/{s}.yaml"));
        let (ok, said) = validate(validator("kubernetes-validate").arg("--strict"), &file);
        assert!(ok, "{s}: {said}");
        // What the deploy hook was handed is the same file.
        assert_eq!(
            std::fs::read(&file).unwrap(),
            std::fs::read(root.join(format!("applied-{s}.yaml"))).unwrap()
        );
    }
    let web = std::fs::read_to_string(root.join("services/Web_front.yaml")).unwrap();
    for want in [
        "kind: Deployment",
        "kind: Service",
        "kind: PersistentVolumeClaim",
        "name: web-front",
        "containerPort: 80",
        "protocol: UDP",
        "mountPath: /data",
        "name: API_URL",
        // Its ReadWriteOnce claims: the old pod goes before the new one starts.
        "type: Recreate",
        // The override's size for /data, the default for /cache.
        "storage: 10Gi",
        "storage: 1Gi",
        // No client before it listens.
        "readinessProbe:",
        "tcpSocket:",
    ] {
        assert!(web.contains(want), "{want} missing:\n{web}");
    }
    // A worker with no ports has no Service and no probe; with no volume, it rolls.
    let worker = std::fs::read_to_string(root.join("services/worker.yaml")).unwrap();
    assert!(!worker.contains("kind: Service"), "{worker}");
    assert!(!worker.contains("readinessProbe"), "{worker}");
    assert!(worker.contains("type: RollingUpdate"), "{worker}");
    // The validator is live: a manifest it must refuse is refused.
    let broken = t.path().join("broken.yaml");
    std::fs::write(
        &broken,
        web.replace("containerPort: 80", "containerPort: eighty"),
    )
    .unwrap();
    let (ok, said) = validate(validator("kubernetes-validate").arg("--strict"), &broken);
    assert!(!ok, "a broken manifest passed: {said}");
}

#[test]
fn compose_files_pass_the_compose_specifications_schema() {
    let t = tempfile::tempdir().unwrap();
    let root = rendered_group(t.path(), "compose");
    let compose = || {
        let mut v = validator("check-jsonschema");
        v.args(["--builtin-schema", "vendor.compose-spec"]);
        v
    };
    for s in ["Web_front", "worker"] {
        let (ok, said) = validate(&mut compose(), &root.join(format!("services/{s}.yaml")));
        assert!(ok, "{s}: {said}");
    }
    let web = std::fs::read_to_string(root.join("services/Web_front.yaml")).unwrap();
    for want in [
        "image: shop/web:2.0.0",
        "53/udp",
        "Web_front-data-0:/data",
        "API_URL",
        // Published on the host for clients outside the project's network.
        "8080:80",
        "restart: unless-stopped",
    ] {
        assert!(web.contains(want), "{want} missing:\n{web}");
    }
    let broken = t.path().join("broken.yaml");
    std::fs::write(&broken, web.replace("image:", "imagez:")).unwrap();
    let (ok, said) = validate(&mut compose(), &broken);
    assert!(!ok, "a broken compose file passed: {said}");
}

#[test]
fn market_versions_as_real_markets_write_them_policy_marks_and_republished_templates() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("g"));
    let d = m.join("forum");
    std::fs::create_dir_all(&d).unwrap();
    let write = |file: &str, version: &str, image: &str| {
        std::fs::write(
            d.join(format!("{file}.yaml")),
            format!("app: forum\nversion: \"{version}\"\nservices:\n  web:\n    image: {image}\n"),
        )
        .unwrap();
    };
    write("1.16", "1.16", "forum/web:1.16");
    write("v1.16.2", "v1.16.2", "forum/web:1.16.2");
    write("v1.17.1", "v1.17.1", "forum/web:1.17.1");
    write("2.0", "2.0", "forum/web:2.0");
    ok(&root, &m, &["install", "forum", "1.16"]);
    let status = ok(&root, &m, &["status"]);
    assert!(
        status.contains(
            "forum 1.16.0  ● newer in the market: v1.16.2, v1.17.1 (needs --policy minor), 2.0 (needs --policy major)"
        ),
        "{status}"
    );
    let out = ok(&root, &m, &["upgrade", "forum", "--to", "v1.16.2"]);
    assert!(out.contains("forum 1.16.0 → 1.16.2: upgraded"), "{out}");

    // The market republishes 1.16.2 with another image: offered, taken, recorded.
    write("v1.16.2", "v1.16.2", "forum/web:1.16.2-r2");
    let status = ok(&root, &m, &["status"]);
    assert!(
        status.contains("1.16.2 was republished in the market"),
        "{status}"
    );
    let out = ok(&root, &m, &["upgrade", "forum", "--to", "1.16.2"]);
    assert!(out.contains("▲ web: upgraded"), "{out}");
    assert_eq!(spec_image(&root, "web"), "forum/web:1.16.2-r2");
    let rec: serde_json::Value =
        serde_json::from_str(&ok(&root, &m, &["record", "0002", "--format", "json"])).unwrap();
    assert_eq!(rec["republished"], true, "{rec}");
    assert!(!ok(&root, &m, &["status"]).contains("republished"));
    // A version no market writes is refused with what is accepted.
    let (code, _, err) = group(&root, &m, &["upgrade", "forum", "--to", "1.x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("1.2 (read as 1.2.0)"), "{err}");
}

#[test]
fn the_diff_shows_removals_and_local_overrides_survive_upgrades() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("g"));
    let d = m.join("svc");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("1.0.0.yaml"),
        "app: svc\nversion: 1.0.0\nservices:\n  api:\n    image: svc/api:1.0.0\n    ports: [{ port: 8080 }]\n    env: { OLD: x, KEEP: k }\n    volumes: [{ path: /old }]\n",
    )
    .unwrap();
    std::fs::write(
        d.join("1.0.1.yaml"),
        "app: svc\nversion: 1.0.1\nservices:\n  api:\n    image: svc/api:1.0.1\n    ports: [{ port: 8081 }]\n    env: { KEEP: k, LOG: info }\n",
    )
    .unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("group-hooks.toml"),
        "[overrides.api]\nenv = { LOG = \"debug\", REGION = \"eu\" }\nports = [{ port = 9090, protocol = \"http\" }]\n",
    )
    .unwrap();
    ok(&root, &m, &["install", "svc", "1.0.0"]);
    let spec = std::fs::read_to_string(root.join("services/api.yaml")).unwrap();
    assert!(
        spec.contains("REGION: eu") && spec.contains("9090"),
        "{spec}"
    );

    let out = ok(&root, &m, &["diff", "svc", "--to", "1.0.1"]);
    for want in [
        "- image svc/api:1.0.0",
        "+ image svc/api:1.0.1",
        "- port 8080/tcp",
        "+ port 8081/tcp",
        "- env OLD=x",
        "+ env LOG=info",
        "- volume /old",
        "= env REGION=eu (local override, kept)",
        "= port 9090/http (local override, kept)",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    assert!(out.contains("port 8080/tcp removed"), "{out}");

    ok(&root, &m, &["upgrade", "svc", "--to", "1.0.1"]);
    let spec = std::fs::read_to_string(root.join("services/api.yaml")).unwrap();
    assert!(spec.contains("8081") && !spec.contains("8080"), "{spec}");
    assert!(!spec.contains("OLD"), "{spec}");
    // The operator's settings survive: their LOG wins over the template's.
    assert!(
        spec.contains("REGION: eu") && spec.contains("LOG: debug"),
        "{spec}"
    );
    assert!(spec.contains("9090"), "{spec}");
}

#[test]
fn a_plans_group_overrides_are_checked_and_merged_into_what_it_deploys() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let plan = group_plan(t.path(), "0");
    let text = std::fs::read_to_string(&plan).unwrap();
    let with = |overrides: &str| {
        text.replace(
            "    apps:\n",
            &format!("    overrides:\n{overrides}    apps:\n"),
        )
    };
    // A misspelt key and a service name that is a path are refused by `check`.
    std::fs::write(
        &plan,
        with("      web: { envs: { A: \"1\" } }\n      \"../x\": { env: { A: \"1\" } }\n"),
    )
    .unwrap();
    let (code, _, err) = output(fleetup().arg("check").arg(&plan));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unknown key `envs`"), "{err}");
    assert!(
        err.contains("`../x` in `overrides` is not a service name"),
        "{err}"
    );

    std::fs::write(
        &plan,
        with("      web: { env: { REGION: eu }, volumes: [{ path: /var/log/web }] }\n"),
    )
    .unwrap();
    apply_ok(&plan);
    let web = std::fs::read_to_string(root.join("services/web.yaml")).unwrap();
    assert!(
        web.contains("REGION: eu")
            && web.contains("/var/log/web")
            && web.contains("mall/web:1.0.2"),
        "{web}"
    );
    let deployed = std::fs::read_to_string(root.join("applied-web.yaml")).unwrap();
    assert_eq!(deployed, web);
}

#[test]
fn a_plan_completes_a_partial_upgrade_made_by_hand() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    ok(
        &root,
        &m,
        &["upgrade", "mall", "--to", "1.0.2", "--services", "web"],
    );
    assert!(ok(&root, &m, &["status"]).contains("not all on 1.0.2: api 1.0.0"));
    let plan = group_plan(t.path(), "0");
    let (code, out, err) = output(fleetup().arg("plan").arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("already at"), "{out}");
    apply_ok(&plan);
    let status = ok(&root, &m, &["status"]);
    assert!(
        !status.contains("not all on") && status.contains("mall 1.0.2"),
        "{status}"
    );
    assert!(root.join("applied-api.yaml").exists() && root.join("applied-worker.yaml").exists());
    assert!(
        !root.join("applied-web.yaml").exists(),
        "web was deployed again"
    );
}

#[test]
fn a_group_another_fleetup_holds_is_refused_with_exit_5_and_waited_for_on_request() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let plan = group_plan(t.path(), "0");
    let before = common::snapshot(&root);
    let lock = fleetup::lock::acquire(
        &root,
        "the group",
        Some("other-run"),
        std::time::Duration::ZERO,
    )
    .unwrap();
    // By hand and from a plan: refused, naming the holder, nothing changed.
    let (code, _, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.0.2"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("fleetup::store::locked") && err.contains("other-run"),
        "{err}"
    );
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(
        err.contains("fleetup::store::locked") && err.contains("other-run"),
        "{err}"
    );
    assert_eq!(common::snapshot(&root), before);
    // With --wait-for-lock the run waits for the holder, then upgrades.
    let mut waiter = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .arg("apply")
        .arg(&plan)
        .args(["--yes", "--wait-for-lock", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // It is seen waiting on the group's lock, not yet changing anything.
    assert!(
        wait_until(std::time::Duration::from_secs(20), || holds_open(
            waiter.id(),
            &root.join(".lock")
        )),
        "the run never reached the group's lock"
    );
    assert!(waiter.try_wait().unwrap().is_none(), "it did not wait");
    assert_eq!(common::snapshot(&root), before);
    drop(lock);
    assert!(waiter.wait().unwrap().success());
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.2"));
}

/// [`group_plan`] with lifecycle hooks that log `<hook> <name> <root>` to
/// `<root>/lifecycle.log`; `before` fails while `<root>/no-before` exists.
fn lifecycle_plan(dir: &Path) -> std::path::PathBuf {
    let plan = group_plan(dir, "0");
    let log = |w: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo {w} {{name}} $FLEETUP_HOOK >> {{root}}/lifecycle.log\"]"
        )
    };
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "      timeout: 10s\n",
        &format!(
            "      before: [\"/bin/sh\", \"-c\", \"test ! -e {{root}}/no-before && echo before {{group}} >> {{root}}/lifecycle.log\"]\n      after: {}\n      on_rollback: {}\n      timeout: 10s\n",
            log("after"),
            log("on_rollback")
        ),
    );
    std::fs::write(&plan, text).unwrap();
    plan
}

fn lifecycle_log(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("lifecycle.log")).unwrap_or_default();
    let out: Vec<String> = text.lines().map(str::to_owned).collect();
    std::fs::remove_file(root.join("lifecycle.log")).ok();
    out
}

/// A group's lifecycle hooks run around its change as a node's do: `before` and
/// `after` around an upgrade, `on_rollback` and `after` when it goes back (a failed
/// check, `rollback RUN`); a failing `before` leaves it unchanged and failed.
#[test]
fn a_groups_lifecycle_hooks_run_around_its_upgrade_and_its_rollbacks() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let plan = lifecycle_plan(t.path());
    let (code, out, err) = output(fleetup().arg("check").arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");

    // A failing `before`: nothing changes, the group fails, `after` still runs.
    std::fs::write(root.join("no-before"), "").unwrap();
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("the `before` hook failed"), "{out}");
    assert_eq!(lifecycle_log(&root), ["after shop after"]);
    assert_eq!(spec_image(&root, "web"), "mall/web:1.0.0");
    std::fs::remove_file(root.join("no-before")).unwrap();

    // A failed check: the group goes back, then on_rollback and after.
    std::fs::write(root.join("fail-api"), "").unwrap();
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(3), "{out}{err}");
    assert_eq!(
        lifecycle_log(&root),
        [
            "before shop",
            "on_rollback shop on_rollback",
            "after shop after"
        ]
    );
    std::fs::remove_file(root.join("fail-api")).unwrap();

    // Upgraded: before and after.
    apply_ok(&plan);
    assert_eq!(lifecycle_log(&root), ["before shop", "after shop after"]);
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.2"));

    // `rollback RUN`: on_rollback, then after.
    let run = &latest_run(&t.path().join("state"));
    let (code, out, err) = output(
        fleetup()
            .args(["rollback", run, "--yes", "--state"])
            .arg(t.path().join("state")),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        lifecycle_log(&root),
        ["on_rollback shop on_rollback", "after shop after"]
    );
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.0"));
}

/// A lifecycle hook of a group may not use a per-service placeholder.
#[test]
fn a_groups_lifecycle_hook_with_a_per_service_placeholder_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let plan = lifecycle_plan(t.path());
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("echo after {name}", "echo after {service}");
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = output(fleetup().arg("check").arg(&plan));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        flat(&err).contains("placeholder `{service}` has no value in group `shop`"),
        "{err}"
    );
}

/// group-hooks.toml's health check has the plan's whole model: `healthy_for` holds a
/// service healthy for a while (a check that passes twice and then fails does not pass),
/// and `rollback_timeout` is read.
#[test]
fn group_hooks_health_holds_healthy_for_as_a_plans_does() {
    let t = tempfile::tempdir().unwrap();
    let (m, root) = (t.path().join("market"), t.path().join("shop"));
    market(&m);
    ok(&root, &m, &["install", "mall", "1.0.0"]);
    let hooks = |healthy_for: &str| {
        format!(
            r#"[health]
command = ["/bin/sh", "-c", "f={{root}}/count-{{service}}; n=$(cat $f 2>/dev/null || echo 0); echo $((n+1)) > $f; test $n -lt 2"]
timeout = "3s"
interval = "100ms"
healthy_for = "{healthy_for}"
rollback_timeout = "2s"
"#
        )
    };
    std::fs::write(root.join("group-hooks.toml"), hooks("1s")).unwrap();
    let (code, out, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.0.1"]);
    assert_ne!(
        code,
        Some(0),
        "a check that stopped passing held for healthy_for: {out}{err}"
    );
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.0"));
    // Without the hold, the same check passes at once.
    for f in std::fs::read_dir(&root).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("count-")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::fs::write(root.join("group-hooks.toml"), hooks("0s")).unwrap();
    ok(&root, &m, &["upgrade", "mall", "--to", "1.0.1"]);
    assert!(ok(&root, &m, &["status"]).contains("mall 1.0.1"));
}

/// A service an upgrade added whose health check failed is never forgotten: without a
/// `remove` hook its spec is kept and its record says it was added, failed and may still
/// run (nothing can undeploy it); with the hook, it is undeployed through it and its spec
/// removed. Either way the record says which.
#[test]
fn an_added_service_that_failed_is_removed_through_its_hook_or_kept_and_said() {
    for with_hook in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let (m, root) = hooked_group(t.path());
        if with_hook {
            let mut cfg = std::fs::read_to_string(root.join("group-hooks.toml")).unwrap();
            cfg.push_str(
                "[remove]\ncommand = [\"/bin/sh\", \"-c\", \"rm {root}/deployed-{service}.yaml && echo {service} >> {root}/removed.log\"]\n",
            );
            std::fs::write(root.join("group-hooks.toml"), cfg).unwrap();
        }
        ok(&root, &m, &["install", "mall", "1.0.0"]);
        // 1.0.1 adds worker, whose health check fails.
        std::fs::write(root.join("fail-worker"), "").unwrap();
        let (code, out, err) = group(&root, &m, &["upgrade", "mall", "--to", "1.0.1"]);
        assert_eq!(code, Some(3), "{out}{err}");
        let record = ok(&root, &m, &["record", "0001"]);
        let deployed = root.join("deployed-worker.yaml");
        let spec = root.join("services/worker.yaml");
        if with_hook {
            assert!(
                !deployed.exists(),
                "the remove hook did not undeploy worker"
            );
            assert!(!spec.exists(), "{record}");
            assert_eq!(
                std::fs::read_to_string(root.join("removed.log")).unwrap(),
                "worker\n"
            );
            assert!(
                record.contains("removed through the remove hook"),
                "{record}"
            );
        } else {
            // Deployed, failed, and nothing to undeploy it: kept where an operator sees it.
            assert!(deployed.exists());
            assert!(
                spec.exists(),
                "the spec of a service that may still run was removed"
            );
            assert!(
                record.contains("added by this upgrade and kept: no remove hook undeploys it"),
                "{record}"
            );
        }
        // `status` shows what no installed app has, so that it is never forgotten.
        let status = ok(&root, &m, &["status"]);
        assert_eq!(
            status.contains("deployed, but no installed app has them: worker"),
            !with_hook,
            "{status}"
        );
    }
}
