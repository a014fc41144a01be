//! Plan keys as real plans use them: group-only plans without `product`, plan-level
//! health timing inherited by the groups' own checks, node roots with placeholders, and
//! a root that is not a directory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use fleetup::diagnostics::{Code, Severity, SourceFile};
use fleetup::plan::{Format, Loaded, load_text};

fn load(text: &str, dir: &Path) -> Loaded {
    load_text(
        SourceFile::new("p.yaml", text.to_owned()),
        Format::Yaml,
        dir,
    )
}

fn errors(l: &Loaded) -> Vec<(Code, String)> {
    l.problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| (p.code, p.message.clone()))
        .collect()
}

const GROUP: &str = "groups:\n  - name: shop\n    root: ./shop\n    market: ./market\n    apps: [{ app: mall, to: 1.0.1 }]\n    health:\n      command: [\"true\"]\n";

#[test]
fn a_plan_of_groups_needs_no_product_and_lends_them_its_health_timing() {
    let dir = Path::new("/tmp");
    let text = format!(
        "plan: 1\nname: g\nhealth:\n  timeout: 7s\n  interval: 250ms\n  healthy_for: 2s\n{GROUP}"
    );
    let l = load(&text, dir);
    assert_eq!(errors(&l), vec![], "{:?}", l.problems);
    let plan = l.plan.unwrap();
    assert!(plan.health.is_none(), "timing alone is no check of its own");
    let h = plan.groups[0].health.as_ref().unwrap();
    assert_eq!(h.timeout, Duration::from_secs(7));
    assert_eq!(h.interval, Duration::from_millis(250));
    assert_eq!(h.healthy_for, Duration::from_secs(2));
    assert_eq!(h.rollback_timeout, Duration::from_secs(7));

    // A group's own timing wins over the plan's.
    let own = GROUP.replace(
        "command: [\"true\"]\n",
        "command: [\"true\"]\n      timeout: 3s\n",
    );
    let text = format!("plan: 1\nname: g\nhealth:\n  timeout: 7s\n{own}");
    let plan = load(&text, dir).plan.unwrap();
    assert_eq!(
        plan.groups[0].health.as_ref().unwrap().timeout,
        Duration::from_secs(3)
    );
}

#[test]
fn nodes_still_need_a_product_and_a_check_in_a_plan_level_health() {
    let dir = Path::new("/tmp");
    let text = "plan: 1\nname: n\nrepository: ./repo\nto: 4.4.16\nhealth:\n  timeout: 7s\nnodes:\n  - { name: n1, root: /srv/n1 }\n";
    let codes: Vec<Code> = errors(&load(text, dir)).into_iter().map(|e| e.0).collect();
    assert!(codes.contains(&Code::MissingKey), "{codes:?}");
    assert!(codes.contains(&Code::BadValue), "names no check: {codes:?}");
}

#[test]
fn a_root_fills_its_placeholders_per_node_or_says_why_not() {
    let dir = Path::new("/srv/plans");
    let text = "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\n\
                defaults:\n  root: ./nodes/{name}-{site}\n  vars: { site: fra }\n\
                nodes:\n  - { name: n1 }\n  - { name: n2, vars: { site: ams } }\n\
                \x20 - { name: n3, ssh: n3.example, root: \"/opt/{name}\" }\n";
    let l = load(text, dir);
    assert_eq!(errors(&l), vec![], "{:?}", l.problems);
    let roots: Vec<String> = l
        .plan
        .unwrap()
        .nodes
        .iter()
        .map(|n| n.root.value.display().to_string())
        .collect();
    assert_eq!(
        roots,
        [
            "/srv/plans/nodes/n1-fra",
            "/srv/plans/nodes/n2-ams",
            "/opt/n3"
        ]
    );

    // A placeholder nothing fills is an error at the root's line.
    let text = "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nnodes:\n  - { name: n1, root: \"/srv/{rack}/n1\" }\n";
    let l = load(text, dir);
    let e = l
        .problems
        .iter()
        .find(|p| p.code == Code::Placeholder)
        .unwrap();
    assert!(e.message.contains("{rack}"), "{}", e.message);
    assert_eq!(l.file.unwrap().line_col(e.span.unwrap().start).0, 7);

    // Keys that name one directory for the plan refuse placeholders.
    let text = "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo/{name}\nto: 4.4.16\nnodes:\n  - { name: n1, root: /srv/n1 }\n";
    let l = load(text, dir);
    let e = l
        .problems
        .iter()
        .find(|p| p.code == Code::Placeholder)
        .unwrap();
    assert!(e.message.contains("`repository`"), "{}", e.message);
}

#[test]
fn defaults_root_with_name_gives_each_node_its_own_store_in_a_real_run() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    release_zip(&repo, "4.4.16", 1);
    std::fs::write(
        t.path().join("plan.yaml"),
        "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\n\
         defaults:\n  root: ./nodes/{name}\nnodes:\n  - { name: a }\n  - { name: b }\n",
    )
    .unwrap();
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(t.path())
                .args(["apply", "plan.yaml", "--yes"]),
        );
    assert_eq!(code, Some(0), "{out}{err}");
    for n in ["a", "b"] {
        assert_eq!(
            std::fs::read_to_string(t.path().join("nodes").join(n).join("current/VERSION"))
                .unwrap(),
            "4.4.16\n"
        );
    }
    assert!(!t.path().join("nodes/{name}").exists());
}

#[test]
fn a_root_that_is_a_file_is_an_error_of_check_at_its_line() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("repo")).unwrap();
    release_zip(&t.path().join("repo"), "4.4.16", 1);
    std::fs::write(t.path().join("not-a-dir"), "x").unwrap();
    std::fs::write(
        t.path().join("plan.yaml"),
        "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nnodes:\n  - name: n1\n    root: ./not-a-dir\n",
    )
    .unwrap();
    let (code, out, _) =
        output(
            fleetup()
                .current_dir(t.path())
                .args(["check", "plan.yaml", "--format", "json"]),
        );
    assert_eq!(code, Some(1), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &doc["files"][0]["problems"][0];
    assert_eq!(p["code"], "fleetup::plan::path", "{doc}");
    assert_eq!(p["line"], 8, "{doc}");
}

#[test]
fn two_nodes_on_one_store_are_refused_by_check() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("repo")).unwrap();
    release_zip(&t.path().join("repo"), "4.4.16", 1);
    std::fs::create_dir_all(t.path().join("store")).unwrap();
    std::os::unix::fs::symlink("store", t.path().join("alias")).unwrap();
    for second in ["./store/", "./alias"] {
        std::fs::write(
            t.path().join("plan.yaml"),
            format!(
                "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nnodes:\n  - {{ name: a, root: ./store }}\n  - {{ name: b, root: \"{second}\" }}\n"
            ),
        )
        .unwrap();
        let (code, out, _) = output(fleetup().current_dir(t.path()).args([
            "check",
            "plan.yaml",
            "--format",
            "json",
        ]));
        assert_eq!(code, Some(1), "{second}: {out}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let p = &doc["files"][0]["problems"][0];
        assert_eq!(p["code"], "fleetup::plan::path", "{doc}");
        assert_eq!(p["line"], 8, "{doc}");
        assert!(
            p["message"]
                .as_str()
                .unwrap()
                .contains("same root as node `a`"),
            "{doc}"
        );
    }
}

#[test]
fn plan_calls_a_root_that_does_not_exist_yet_a_fresh_install() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("repo")).unwrap();
    release_zip(&t.path().join("repo"), "4.4.0", 1);
    std::fs::write(
        t.path().join("plan.yaml"),
        "plan: 1\nname: r\nproduct: emqx\nrepository: ./repo\nto: 4.4.0\nnodes:\n  - { name: n1, root: ./not-yet }\n",
    )
    .unwrap();
    let (code, out, err) = output(fleetup().current_dir(t.path()).args(["plan", "plan.yaml"]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(fresh install) → 4.4.0"), "{out}");
    assert!(!out.contains("unknown"), "{out}");
    assert!(!t.path().join("not-yet").exists(), "plan changed nothing");
    // `check` may run far from the nodes (a CI runner): there, a missing root is unknown.
    let (code, out, _) =
        output(
            fleetup()
                .current_dir(t.path())
                .args(["check", "plan.yaml", "--format", "json"]),
        );
    assert_eq!(code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["files"][0]["states_read"], 0, "{doc}");
}

#[test]
fn plan_as_markdown_for_a_pull_request() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    local_fleet(d, &["n1"], &["4.4.15", "4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: pr | review\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\n\
         rollout:\n  waves: [1]\nnodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
    )
    .unwrap();
    let (code, out, err) =
        output(
            fleetup()
                .current_dir(d)
                .args(["plan", "plan.yaml", "--format", "markdown"]),
        );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "### Dry run of `pr \\| review`\n\n\
         2 targets in 2 waves, at most 10 at once. Nothing was changed.\n\n\
         | wave | target | from | to | package | rules |\n\
         |---|---|---|---|---|---|\n\
         | 1 | n1 | 4.4.15 | 4.4.16 | `emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip` | passed |\n\
         | 2 | n2 | fresh install | 4.4.16 | `emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip` | none apply (fresh store) |\n"
    );
}

#[test]
fn a_pinned_node_with_no_release_is_refused_before_the_run() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    local_fleet(d, &[], &["4.4.16"]);
    std::fs::write(
        d.join("plan.yaml"),
        "plan: 1\nname: pin\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nstate: ./state\nnodes:\n  - { name: n1, root: ./n1, from: 4.4.15 }\n",
    )
    .unwrap();
    for cmd in [
        &["plan", "plan.yaml"][..],
        &["apply", "plan.yaml", "--yes"][..],
    ] {
        let (code, out, err) = output(fleetup().current_dir(d).args(cmd));
        assert_eq!(code, Some(5), "{cmd:?}: {out}{err}");
        assert!(err.contains("has no release yet"), "{err}");
    }
    assert!(!d.join("state/runs").exists(), "no run was started");
    // check may run far from the node: it cannot know, and says nothing.
    let (code, _, err) = output(fleetup().current_dir(d).args(["check", "plan.yaml"]));
    assert_eq!(code, Some(0), "{err}");
}
