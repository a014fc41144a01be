//! Rollout control on real processes: failure domains with drain hooks around every
//! node, a manual gate approved and resumed, a real Prometheus (Debian's `prometheus`)
//! scraping the nodes' own /metrics and catching a release that stays HTTP-healthy but
//! raises its error counter, and webhooks posted to a local HTTP server.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A test's directory: every process started in it is killed when it is dropped.
struct Dir(tempfile::TempDir);

impl Drop for Dir {
    fn drop(&mut self) {
        kill_processes_under(self.0.path());
    }
}

impl Dir {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

fn run_id(state: &Path) -> String {
    latest_run(state)
}

/// Twelve local nodes in three zones on 4.4.15; n1 (zone b) is tagged canary. Drain and
/// undrain hooks append to hooks.log.
fn zoned_fleet(gate: &str) -> (Dir, PathBuf) {
    let dir = Dir(tempfile::tempdir().unwrap());
    let names: Vec<String> = (1..=12).map(|i| format!("n{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    local_fleet(dir.path(), &refs, &["4.4.15", "4.4.16"]);
    let log = dir.path().join("hooks.log");
    let mut nodes = String::new();
    for i in 1..=12 {
        let zone = ["a", "b", "c"][i % 3];
        let canary = if i == 1 { ", tags: [canary]" } else { "" };
        nodes.push_str(&format!(
            "  - {{ name: n{i}, root: ./n{i}, labels: {{ zone: {zone} }}{canary} }}\n"
        ));
    }
    let text = format!(
        "plan: 1\nname: zones\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout:\n  max_parallel: 6\n  waves: [\"@canary\", \"100%\"]\n  \
         domains: {{ by: zone, order: [a, b, c], max_unavailable: 1 }}\n{gate}\
         hooks:\n  before: [\"/bin/sh\", \"-c\", \"echo before {{name}} >> {log}; sleep 0.2\"]\n  \
         after: [\"/bin/sh\", \"-c\", \"echo after {{name}} {{version}} >> {log}\"]\n  timeout: 10s\n\
         defaults: {{ vars: {{ log: {} }} }}\nnodes:\n{nodes}",
        log.display(),
        log = "{log}",
    );
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, text).unwrap();
    (dir, plan)
}

fn zone_of(node: &str) -> &'static str {
    let i: usize = node[1..].parse().unwrap();
    ["a", "b", "c"][i % 3]
}

/// Reads hooks.log: checks every node was drained, then undrained on 4.4.16, and that
/// no zone ever had two nodes drained at once. Returns the order nodes were drained in.
fn check_hooks(dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join("hooks.log")).unwrap();
    let mut out: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut order = Vec::new();
    let mut undrained = Vec::new();
    for line in log.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        let zone = zone_of(w[1]);
        match w[0] {
            "before" => {
                let drained = out.entry(zone).or_default();
                assert!(
                    drained.is_empty(),
                    "{} drained while {drained:?} of zone {zone} were out:\n{log}",
                    w[1]
                );
                drained.push(w[1].to_owned());
                order.push(w[1].to_owned());
            }
            "after" => {
                assert_eq!(w[2], "4.4.16", "{line}");
                let drained = out.entry(zone).or_default();
                assert_eq!(drained.as_slice(), [w[1].to_owned()], "{log}");
                drained.clear();
                undrained.push(w[1].to_owned());
            }
            other => panic!("unexpected line {other}: {log}"),
        }
    }
    assert!(out.values().all(Vec::is_empty), "left drained: {out:?}");
    assert_eq!(order.len(), undrained.len());
    order
}

#[test]
fn twelve_nodes_go_zone_by_zone_drained_one_per_zone_with_a_manual_gate() {
    let (dir, plan) = zoned_fleet("  gates: [{ after_wave: 1, approve: manual }]\n");
    let state = dir.path().join("state");
    // The dry run says why each wave holds what it does.
    let (code, out, err) = output(fleetup().args(["plan", "--explain"]).arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("Wave 1/12 (tolerates 0 failures in the run):"),
        "{out}"
    );
    assert!(out.contains("why: selected by @canary"), "{out}");
    assert!(
        out.contains(
            "why: domain zone=a: size 100% of 4 = 4, cut to 1 by max_unavailable 1 of zone=a"
        ),
        "{out}"
    );
    assert!(
        out.contains("then: gate: the run pauses until `fleetup approve RUN`"),
        "{out}"
    );

    // The canary, then the gate: exit 6, nothing else touched.
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(6), "{out}{err}");
    let run = run_id(&state);
    assert!(out.contains(&format!("`fleetup approve {run}`")), "{out}");
    assert_eq!(
        link(&dir.path().join("n1"), "current").as_deref(),
        Some("releases/4.4.16")
    );
    for i in 2..=12 {
        assert_eq!(
            link(&dir.path().join(format!("n{i}")), "current").as_deref(),
            Some("releases/4.4.15"),
            "n{i}"
        );
    }
    assert_eq!(check_hooks(dir.path()), ["n1"]);

    // Resuming without an approval waits at the gate again and changes nothing.
    let before = snapshot(&dir.path().join("n2"));
    let (code, out, err) = output(fleetup().args(["resume", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(6), "{out}{err}");
    assert_eq!(snapshot(&dir.path().join("n2")), before);

    let (code, out, err) = output(fleetup().args(["approve", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Approved the gate after wave 1"), "{out}");
    let journal =
        std::fs::read_to_string(state.join("runs").join(&run).join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"state\":\"approved\""), "{journal}");
    assert!(journal.contains("\"by\":\""), "{journal}");
    // A second approval has no gate to approve.
    let (code, _, err) = output(fleetup().args(["approve", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(2), "{err}");

    let (code, out, err) = output(fleetup().args(["resume", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("approved by"), "{out}");
    for i in 1..=12 {
        assert_eq!(
            link(&dir.path().join(format!("n{i}")), "current").as_deref(),
            Some("releases/4.4.16"),
            "n{i}"
        );
    }
    let order = check_hooks(dir.path());
    assert_eq!(order.len(), 12);
    // Zone by zone after the canary: a, then b, then c.
    let zones: Vec<&str> = order[1..].iter().map(|n| zone_of(n)).collect();
    assert_eq!(
        zones,
        ["a", "a", "a", "a", "b", "b", "b", "c", "c", "c", "c"]
    );

    // Applied again, every node is there already: one wave, nothing drained.
    std::fs::remove_file(dir.path().join("hooks.log")).unwrap();
    let (code, out, err) = output(fleetup().args(["plan", "--explain"]).arg(&plan));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Wave 1/1"), "{out}");
    assert!(out.contains("already there, only looked at"), "{out}");
}

#[test]
fn a_failing_before_hook_changes_nothing_and_a_failing_after_needs_attention() {
    let dir = Dir(tempfile::tempdir().unwrap());
    local_fleet(dir.path(), &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let write = |before: &str, after: &str| {
        let text = format!(
            "plan: 1\nname: h\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
             hooks:\n  before: {before}\n  after: {after}\n  timeout: 5s\n\
             nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
        );
        let p = dir.path().join("plan.yaml");
        std::fs::write(&p, text).unwrap();
        p
    };
    // `before` fails on n1 only: n1 is untouched and failed; max_failures 0 stops the rest.
    let plan = write(
        "[\"/bin/sh\", \"-c\", \"test {name} != n1 || (echo LB refused; exit 7)\"]",
        "[\"true\"]",
    );
    let untouched = snapshot(&dir.path().join("n1"));
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n1 = target(&doc, "n1");
    assert_eq!(n1["outcome"], "failed");
    assert_eq!(n1["code"], "fleetup::run::hook-failed");
    assert!(
        n1["detail"].as_str().unwrap().contains("LB refused"),
        "{n1}"
    );
    assert!(
        n1["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{n1}"
    );
    assert_eq!(snapshot(&dir.path().join("n1")), untouched);

    // n2, in the same wave, went through.
    assert_eq!(target(&doc, "n2")["outcome"], "upgraded");
    // `after` fails: the node is upgraded, but may still be drained: exit 4.
    let plan = write("[\"true\"]", "[\"/bin/sh\", \"-c\", \"exit 1\"]");
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--only", "n1"]),
    );
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(out.contains("the `after` hook failed"), "{out}");
    assert_eq!(
        link(&dir.path().join("n1"), "current").as_deref(),
        Some("releases/4.4.16")
    );
}

/// A release that serves /status (always healthy) and /metrics with `errors` in its
/// error counter; its activate hook restarts the node's server.
fn metrics_release(repo: &Path, version: &str, errors: u32) {
    use zip::write::SimpleFileOptions;
    let path = repo.join(package_name(version));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let o = SimpleFileOptions::default();
    z.start_file("VERSION", o).unwrap();
    writeln!(z, "{version}").unwrap();
    z.start_file("bin/ctl", o.unix_permissions(0o755)).unwrap();
    z.write_all(CTL.as_bytes()).unwrap();
    z.add_directory("www/", o).unwrap();
    z.start_file("www/status", o).unwrap();
    write!(z, "{version}").unwrap();
    z.start_file("www/metrics", o).unwrap();
    write!(
        z,
        "# TYPE app_errors_total counter\napp_errors_total {errors}\n# TYPE app_build_info gauge\napp_build_info{{version=\"{version}\"}} 1\n"
    )
    .unwrap();
    z.finish().unwrap();
}

/// A running Prometheus, stopped (and reaped) when dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus on 127.0.0.1 scraping each (node, port) every 200ms.
fn prometheus(dir: &Path, targets: &[(String, u16)]) -> Prometheus {
    let port = sshd::free_port();
    let mut cfg = String::from(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n",
    );
    for (name, p) in targets {
        cfg.push_str(&format!(
            "  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{p}']\n        labels: {{ node: {name} }}\n"
        ));
    }
    let conf = dir.join("prometheus.yml");
    std::fs::write(&conf, cfg).unwrap();
    let data = dir.join("prometheus-data");
    let child = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (Debian's package) is installed by scripts/test");
    let ready = wait_until(Duration::from_secs(30), || {
        http_get(port, "/-/ready").is_some_and(|(s, _)| s == 200)
    });
    assert!(
        ready,
        "{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
    Prometheus { child, port }
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    ))
}

/// Three nodes serving 4.4.15 (no errors); 4.4.16 raises the error counter.
fn metric_fleet() -> (Dir, Vec<(String, u16)>) {
    let dir = Dir(tempfile::tempdir().unwrap());
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    metrics_release(&repo, "4.4.15", 0);
    metrics_release(&repo, "4.4.16", 7);
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let root = dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&root).unwrap();
        let port = sshd::free_port();
        std::fs::write(root.join("port"), port.to_string()).unwrap();
        std::fs::write(
            root.join("node.toml"),
            "[activate]\ncommand = [\"{root}/current/bin/ctl\"]\ntimeout = \"10s\"\n",
        )
        .unwrap();
        fleetup()
            .args(["node", "upgrade", "4.4.15", "--root"])
            .arg(&root)
            .arg("--repo")
            .arg(&repo)
            .assert()
            .success();
        wait_status(port, "4.4.15");
        nodes.push((format!("n{i}"), port));
    }
    (dir, nodes)
}

fn metric_plan(dir: &Path, nodes: &[(String, u16)], prom: u16) -> PathBuf {
    let mut list = String::new();
    for (name, port) in nodes {
        list.push_str(&format!(
            "  - {{ name: {name}, root: ./{name}, vars: {{ port: {port} }} }}\n"
        ));
    }
    let text = format!(
        "plan: 1\nname: metrics\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout: {{ waves: [1, \"100%\"] }}\n\
         health: {{ http: \"http://127.0.0.1:{{port}}/status\", timeout: 5s, interval: 100ms }}\n\
         hooks: {{ activate: [\"{{root}}/current/bin/ctl\"], timeout: 10s }}\n\
         analysis:\n  - name: errors\n    prometheus:\n      url: \"http://127.0.0.1:{prom}\"\n      \
         query: 'app_errors_total{{{{node=\"{{name}}\"}}}}'\n      max: 0\n      for: 4s\n      interval: 250ms\n\
         nodes:\n{list}"
    );
    let p = dir.join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn prometheus_catches_a_release_that_stays_healthy_but_raises_its_error_counter() {
    let (dir, nodes) = metric_fleet();
    let server = prometheus(dir.path(), &nodes);
    let prom = server.port;
    // Prometheus sees the nodes' counters before the run.
    let seen = wait_until(Duration::from_secs(20), || {
        http_get(prom, "/api/v1/query?query=app_errors_total")
            .is_some_and(|(_, b)| b.matches("\"node\"").count() == 3)
    });
    assert!(seen, "Prometheus never scraped the three nodes");
    let plan = metric_plan(dir.path(), &nodes, prom);
    let (code, out, err) = output(
        fleetup()
            .arg("apply")
            .arg(&plan)
            .args(["--yes", "--format", "json"]),
    );
    // The canary passed its HTTP health check, then its error counter rose: rolled back.
    assert_eq!(code, Some(3), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n1 = target(&doc, "n1");
    assert_eq!(n1["outcome"], "rolled-back", "{n1}");
    assert_eq!(n1["code"], "fleetup::analysis::failed", "{n1}");
    assert!(
        n1["detail"].as_str().unwrap().contains("is 7, above max 0"),
        "{n1}"
    );
    assert_eq!(target(&doc, "n2")["outcome"], "skipped");
    for (name, port) in &nodes {
        assert_eq!(
            link(&dir.path().join(name), "current").as_deref(),
            Some("releases/4.4.15"),
            "{name}"
        );
        wait_status(*port, "4.4.15");
    }
    let state = dir.path().join("state");
    let journal = std::fs::read_to_string(
        state
            .join("runs")
            .join(run_id(&state))
            .join("journal.jsonl"),
    )
    .unwrap();
    assert!(journal.contains("\"event\":\"analysis\""), "{journal}");
    assert!(journal.contains("\"verdict\":\"failed\""), "{journal}");
}

#[test]
fn an_unreachable_prometheus_is_inconclusive_and_pauses_the_run() {
    let (dir, nodes) = metric_fleet();
    // Nothing listens there.
    let plan = metric_plan(dir.path(), &nodes, sshd::free_port());
    let (code, out, err) = output(fleetup().arg("apply").arg(&plan).arg("--yes"));
    assert_eq!(code, Some(6), "{out}{err}");
    assert!(out.contains("inconclusive"), "{out}");
    let state = dir.path().join("state");
    let run = run_id(&state);
    // The canary stays upgraded; the rest wait. Aborting ends the run for good.
    assert_eq!(
        link(&dir.path().join("n1"), "current").as_deref(),
        Some("releases/4.4.16")
    );
    assert_eq!(
        link(&dir.path().join("n2"), "current").as_deref(),
        Some("releases/4.4.15")
    );
    let (code, out, err) = output(fleetup().args(["abort", &run, "--state"]).arg(&state));
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, _) = output(
        fleetup()
            .args(["history", &run, "--format", "json", "--state"])
            .arg(&state),
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("\"status\": \"aborted\""), "{out}");
    let (code, out, _) = output(fleetup().args(["resume", "--state"]).arg(&state));
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to resume"), "{out}");
}

/// A local HTTP server that records every request body; answers 200.
fn webhook_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = c.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let first = head.lines().next().unwrap_or("").to_owned();
                        keep.lock().unwrap().push(format!("{first}\n{body}"));
                        break;
                    }
                }
            }
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (port, got)
}

#[test]
fn webhooks_are_told_and_a_failing_one_never_fails_the_run_nor_shows_its_secret() {
    let dir = Dir(tempfile::tempdir().unwrap());
    local_fleet(dir.path(), &["n1", "n2"], &["4.4.15", "4.4.16"]);
    let (port, got) = webhook_server();
    let dead = sshd::free_port();
    let text = format!(
        "plan: 1\nname: told\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         rollout: {{ waves: [1] }}\n\
         notify:\n  - webhook: \"http://127.0.0.1:{port}/hooks/${{HOOK_TOKEN}}\"\n    on: [run_start, wave_done, failed, paused, finished]\n  \
         - webhook: \"http://127.0.0.1:{dead}/down/${{HOOK_TOKEN}}\"\n\
         nodes:\n  - {{ name: n1, root: ./n1 }}\n  - {{ name: n2, root: ./n2 }}\n"
    );
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, text).unwrap();
    let (code, out, err) = output(
        fleetup()
            .env("HOOK_TOKEN", "s3cr3t-t0ken")
            .arg("apply")
            .arg(&plan)
            .arg("--yes"),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        !out.contains("s3cr3t-t0ken") && !err.contains("s3cr3t-t0ken"),
        "{out}{err}"
    );
    assert!(
        out.contains(&format!(
            "webhook http://127.0.0.1:{dead}/down/${{HOOK_TOKEN}} failed"
        )),
        "{out}"
    );
    let got = got.lock().unwrap().clone();
    let events: Vec<serde_json::Value> = got
        .iter()
        .map(|r| {
            assert!(r.starts_with("POST /hooks/s3cr3t-t0ken "), "{r}");
            serde_json::from_str(r.split_once('\n').unwrap().1).unwrap()
        })
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["run_start", "wave_done", "wave_done", "finished"]);
    assert!(
        events[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("fleetup: wave 1/2 done"),
        "{:?}",
        events[1]
    );
    assert_eq!(events[3]["status"], "succeeded");
    assert_eq!(events[3]["upgraded"], 2);
    let state = dir.path().join("state");
    let journal = std::fs::read_to_string(
        state
            .join("runs")
            .join(run_id(&state))
            .join("journal.jsonl"),
    )
    .unwrap();
    assert!(!journal.contains("s3cr3t-t0ken"), "{journal}");
}

#[test]
fn the_shipped_canary_example_starts_with_the_node_tagged_canary_alone() {
    for ext in ["yaml", "toml"] {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("plans/canary-rollout.{ext}"));
        let loaded = fleetup::plan::load(&path);
        let plan = loaded.plan.expect("the example loads");
        let s = fleetup::plan::schedule::build(&plan, None).unwrap();
        let first: Vec<&str> = s.waves[0].iter().map(|t| plan.target_name(*t)).collect();
        assert_eq!(first, ["edge-1"], "{ext}");
        assert!(plan.nodes[0].tags.contains(&"canary".to_owned()));
        assert_eq!(plan.rollout.gates[0].after_wave.value, 1, "{ext}");
    }
}

#[test]
fn check_points_at_rollout_mistakes() {
    let dir = Dir(tempfile::tempdir().unwrap());
    std::fs::create_dir_all(dir.path().join("repo")).unwrap();
    release_zip(&dir.path().join("repo"), "4.4.16", 0);
    let text = "plan: 1\nname: bad\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\n\
        rollout:\n  waves: [\"@canray\", \"100%\"]\n  domains: { by: zone, order: [eu-1a, eu-9] }\n  \
        gates: [{ after_wave: 5, approve: manual }]\n\
        analysis:\n  - name: e\n    prometheus: { url: \"http://127.0.0.1:9\", query: up }\n\
        nodes:\n  - { name: n1, root: ./n1, labels: { zone: eu-1a }, tags: [canary] }\n  - { name: n2, root: ./n2 }\n";
    let plan = dir.path().join("bad.yaml");
    std::fs::write(&plan, text).unwrap();
    let (code, out, _) = output(fleetup().args(["check", "--format", "json"]).arg(&plan));
    assert_eq!(code, Some(1), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let problems = doc["files"][0]["problems"].as_array().unwrap();
    let find = |needle: &str| {
        problems
            .iter()
            .find(|p| p["message"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {out}"))
    };
    let line = |p: &serde_json::Value| p["line"].as_u64().unwrap();
    assert_eq!(
        find("`@canray` selects no target")["help"],
        "did you mean `@canary`?"
    );
    assert_eq!(line(find("`@canray` selects no target")), 7);
    assert_eq!(line(find("`n2` has no label `zone`")), 15);
    assert_eq!(line(find("no target has `zone: eu-9`")), 8);
    assert_eq!(line(find("the gate after wave 5 never stands")), 9);
    assert_eq!(line(find("analysis `e` has no bound")), 12);
    assert!(
        problems
            .iter()
            .all(|p| p["code"] == "fleetup::plan::rollout"),
        "{out}"
    );
}
