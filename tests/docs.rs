//! The docs are tested: every `console` session in README.md and docs/guide/*.md is run
//! as written by trycmd, in a scratch copy of what the page sets up, and its output is
//! compared with the page (`[..]` stands for a run id or a time, `...` for lines whose
//! order varies, `[CWD]` for the scratch directory). A page's files come from the page
//! itself: a code block after `<!-- file: NAME -->` is written to NAME, so the plan a
//! reader copies is the plan the test runs.
//!
//! The release packages are the first rollout's: zips of 4.4.15, 4.4.16 and a broken
//! 4.4.17 whose `bin/ctl` is the script that page shows. A page may add fixtures under
//! `docs/guide/examples/<page>/` and nodes installed before its first session.

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The code blocks of `text` that follow a `<!-- file: NAME -->` line: (NAME, content).
fn files_of(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- file:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "`{line}` must be followed by a code block"
        );
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.push((name.trim().to_owned(), body));
    }
    out
}

/// The packages of the first rollout, with the `bin/ctl` that page shows.
fn releases(dir: &Path) {
    let page = std::fs::read_to_string(repo().join("docs/guide/first-rollout.md")).unwrap();
    let ctl = files_of(&page)
        .into_iter()
        .find(|(n, _)| n == "ctl")
        .expect("first-rollout.md shows bin/ctl")
        .1;
    let releases = dir.join("releases");
    std::fs::create_dir_all(&releases).unwrap();
    for (version, broken) in [("4.4.15", false), ("4.4.16", false), ("4.4.17", true)] {
        let path = releases.join(format!(
            "emqx-{version}-otp24.3.4.2-1-ubuntu20.04-amd64.zip"
        ));
        let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let o = SimpleFileOptions::default();
        z.start_file("VERSION", o).unwrap();
        writeln!(z, "{version}").unwrap();
        if broken {
            z.start_file("BROKEN", o).unwrap();
            writeln!(z, "this release never answers its ping").unwrap();
        }
        z.start_file("bin/ctl", o.unix_permissions(0o755)).unwrap();
        z.write_all(ctl.as_bytes()).unwrap();
        z.finish().unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Runs `page`'s sessions; `nodes` are installed on 4.4.15 before the first.
fn run_page(page: &str, nodes: &[&str]) {
    let scratch = tempfile::tempdir().unwrap();
    let stem = Path::new(page).file_stem().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(repo().join(page)).unwrap();
    assert!(
        text.contains("```console"),
        "{page} has no console session to test"
    );
    // trycmd copies <stem>.in into a fresh sandbox (because <stem>.out exists: empty, so
    // no file is compared afterwards) and runs the page's sessions there, in order.
    let input = scratch.path().join(format!("{stem}.in"));
    std::fs::create_dir_all(scratch.path().join(format!("{stem}.out"))).unwrap();
    releases(&input);
    for (name, body) in files_of(&text) {
        std::fs::write(input.join(name), body).unwrap();
    }
    let extra = repo().join("docs/guide/examples").join(stem);
    if extra.is_dir() {
        copy_tree(&extra, &input);
    }
    for node in nodes {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
            .current_dir(&input)
            .args(["node", "upgrade", "4.4.15", "--root", node])
            .args(["--repo", "releases"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let copy = scratch.path().join(format!("{stem}.md"));
    std::fs::write(&copy, &text).unwrap();
    trycmd::TestCases::new()
        .register_bin("fleetup", Path::new(env!("CARGO_BIN_EXE_fleetup")))
        .env(
            "FLEETUP_STATE_DIR",
            scratch.path().join("state").display().to_string(),
        )
        .env("NO_COLOR", "1")
        .case(&copy)
        .run();
}

#[test]
fn the_readme() {
    run_page(
        "README.md",
        &["nodes/emqx-1", "nodes/emqx-2", "nodes/emqx-3"],
    );
}

#[test]
fn the_first_rollout() {
    run_page("docs/guide/first-rollout.md", &[]);
}

#[test]
fn node_stores() {
    run_page("docs/guide/node-stores.md", &[]);
}

#[test]
fn app_groups() {
    run_page("docs/guide/app-groups.md", &[]);
}

/// Every page of the guide with a console session has a test above.
#[test]
fn every_guide_page_with_a_session_is_tested() {
    let tested = ["first-rollout.md", "node-stores.md", "app-groups.md"];
    let mut untested = Vec::new();
    for e in std::fs::read_dir(repo().join("docs/guide")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".md")
            && std::fs::read_to_string(&path)
                .unwrap()
                .contains("```console")
            && !tested.contains(&name.as_str())
        {
            untested.push(name);
        }
    }
    assert!(
        untested.is_empty(),
        "pages with untested sessions: {untested:?}"
    );
}

/// A reference page generated by fleetup: the committed page is what `args` prints now.
fn generated(page: &str, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetup"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let now = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(repo().join(page)).unwrap();
    assert!(
        committed == now,
        "{page} is not what `fleetup {}` prints now: regenerate it with `cargo run -- {} > {page}`",
        args.join(" "),
        args.join(" ")
    );
}

#[test]
fn the_plan_keys_reference_is_the_schema() {
    generated("docs/reference/plan.md", &["schema", "--markdown"]);
}

#[test]
fn the_commands_reference_is_the_command_line() {
    generated("docs/reference/commands.md", &["__commands-md"]);
}
