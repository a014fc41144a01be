//! `fleetup check PLAN...`: validation and preflight of each plan, reported as
//! diagnostics (stderr) with a summary line per plan (stdout), as JSON, as GitHub
//! workflow annotations, or as SARIF 2.1.0 for code-scanning tools. Exit 1 when any plan has an error.

use std::path::PathBuf;

use serde::Serialize;

use super::stderr_color;
use crate::cli::CheckFormat;
use crate::diagnostics::{
    Exit, JsonProblem, Problem, Severity, SourceFile, render_github, render_human, render_sarif,
    to_json,
};
use crate::plan;
use crate::run::kinds::{Reading, World};

struct Checked {
    name: String,
    file: Option<SourceFile>,
    problems: Vec<Problem>,
    nodes: usize,
    groups: usize,
    scripted: usize,
    states_read: usize,
}

impl Checked {
    fn count(&self, s: Severity) -> usize {
        self.problems.iter().filter(|p| p.severity == s).count()
    }
}

/// Checks one plan; `offline`: the plan alone, with nothing it names read (no
/// repository, package, store or market).
fn check_one(path: &std::path::Path, offline: bool) -> Checked {
    let loaded = plan::load(path);
    let mut problems = loaded.problems;
    let (mut nodes, mut groups, mut scripted, mut states_read) = (0, 0, 0, 0);
    if let Some(plan) = &loaded.plan {
        nodes = plan.nodes.len();
        groups = plan.groups.len();
        scripted = plan.scripted.len();
        if !offline {
            let world = World::read(plan, &[], Reading::Check);
            states_read = world.states_read();
            problems.extend(world.problems());
            problems.sort_by_key(|p| p.span.map_or(usize::MAX, |s| s.start));
        }
    }
    Checked {
        name: path.display().to_string(),
        file: loaded.file,
        problems,
        nodes,
        groups,
        scripted,
        states_read,
    }
}

#[derive(Serialize)]
struct JsonFile<'a> {
    file: &'a str,
    ok: bool,
    nodes: usize,
    groups: usize,
    #[serde(skip_serializing_if = "is_zero")]
    scripted: usize,
    states_read: usize,
    /// `--offline`: the repository, packages, stores and markets were not read.
    offline: bool,
    problems: Vec<JsonProblem<'a>>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    errors: usize,
    warnings: usize,
    files: Vec<JsonFile<'a>>,
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

pub fn run(paths: &[PathBuf], format: CheckFormat, offline: bool) -> Exit {
    let results: Vec<Checked> = paths.iter().map(|p| check_one(p, offline)).collect();
    let errors: usize = results.iter().map(|r| r.count(Severity::Error)).sum();
    let warnings: usize = results.iter().map(|r| r.count(Severity::Warning)).sum();
    match format {
        CheckFormat::Human => {
            let color = stderr_color();
            for r in &results {
                eprint!("{}", render_human(&r.problems, r.file.as_ref(), color));
                let e = r.count(Severity::Error);
                let w = r.count(Severity::Warning);
                if e == 0 {
                    let live = if offline {
                        "; offline: the repository, packages, stores and markets were not read"
                            .to_owned()
                    } else if r.nodes == 0 {
                        String::new()
                    } else {
                        format!(
                            "; live state read for {} of {}",
                            r.states_read,
                            plural(r.nodes, "node")
                        )
                    };
                    let warn = if w > 0 {
                        format!(" with {}", plural(w, "warning"))
                    } else {
                        String::new()
                    };
                    let scripted = if r.scripted > 0 {
                        format!(", {}", plural(r.scripted, "scripted target"))
                    } else {
                        String::new()
                    };
                    println!(
                        "ok: {}{warn} ({}, {}{scripted}{live})",
                        r.name,
                        plural(r.nodes, "node"),
                        plural(r.groups, "group")
                    );
                } else {
                    println!(
                        "invalid: {}: {}{}",
                        r.name,
                        plural(e, "error"),
                        if w > 0 {
                            format!(", {}", plural(w, "warning"))
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        CheckFormat::Json => {
            let report = JsonReport {
                ok: errors == 0,
                errors,
                warnings,
                files: results
                    .iter()
                    .map(|r| JsonFile {
                        file: &r.name,
                        ok: r.count(Severity::Error) == 0,
                        nodes: r.nodes,
                        groups: r.groups,
                        scripted: r.scripted,
                        states_read: r.states_read,
                        offline,
                        problems: r
                            .problems
                            .iter()
                            .map(|p| to_json(p, r.file.as_ref()))
                            .collect(),
                    })
                    .collect(),
            };
            match serde_json::to_string_pretty(&report) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot render the report: {e}"),
            }
        }
        CheckFormat::Sarif => {
            let files: Vec<(&str, Option<&SourceFile>, &[Problem])> = results
                .iter()
                .map(|r| (r.name.as_str(), r.file.as_ref(), r.problems.as_slice()))
                .collect();
            match serde_json::to_string_pretty(&render_sarif(&files)) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot render the report: {e}"),
            }
        }
        CheckFormat::Github => {
            for r in &results {
                // Problems without a file (unreadable paths) still name the plan.
                let fallback = SourceFile::new(r.name.clone(), String::new());
                print!(
                    "{}",
                    render_github(&r.problems, Some(r.file.as_ref().unwrap_or(&fallback)))
                );
            }
        }
    }
    if errors > 0 { Exit::Invalid } else { Exit::Ok }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
