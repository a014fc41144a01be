//! `fleetup status PLAN`: the fleet as a table (or JSON), from `run::status`.

use std::path::Path;

use crate::cli::OutputFormat;
use crate::diagnostics::{Exit, Failure};
use crate::run::status::{FleetStatus, TargetStatus, fleet_status};

pub fn run(
    plan: &Path,
    only: Option<&str>,
    state: Option<&Path>,
    format: OutputFormat,
) -> Result<Exit, Failure> {
    let s = fleet_status(plan, only, state)?;
    match format {
        OutputFormat::Json => {
            if let Ok(t) = serde_json::to_string_pretty(&s) {
                println!("{t}");
            }
        }
        OutputFormat::Human => print!("{}", table(&s)),
    }
    Ok(Exit::Ok)
}

/// What a target runs, in a cell: `4.4.16` (a node's current), or a group's apps.
fn runs(t: &TargetStatus) -> (String, String) {
    if t.kind == "group" {
        let apps: Vec<String> = t
            .apps
            .iter()
            .map(|a| {
                let behind: Vec<String> =
                    a.running.iter().map(|(s, v)| format!("{s} {v}")).collect();
                if behind.is_empty() {
                    format!("{} {}", a.app, a.version)
                } else {
                    format!("{} {} ({})", a.app, a.version, behind.join(", "))
                }
            })
            .collect();
        let shown = if apps.is_empty() {
            "(no apps)".to_owned()
        } else {
            apps.join("; ")
        };
        return (shown, String::new());
    }
    let v = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    (v(&t.current), v(&t.permanent))
}

/// What an operator should notice about a target, in words.
fn notes(t: &TargetStatus) -> String {
    let mut n = Vec::new();
    if let Some(u) = &t.unreadable {
        n.push(format!("● not readable: {u}"));
    }
    match &t.last_run {
        Some(l) if l.outcome == crate::run::status::UNFINISHED => n.push(format!(
            "● mid-change, left by run {} ({}): `fleetup rollback {}` puts it back, the same upgrade again finishes it",
            l.run, l.status, l.run
        )),
        _ if t.mid_change => n.push(
            "● mid-change: `fleetup resume` (or the same upgrade again) finishes it".into(),
        ),
        _ => {}
    }
    if t.current_not_permanent() {
        n.push("● current is not permanent: a restart goes back".into());
    }
    if let Some(l) = &t.locked_by {
        n.push(format!("● locked: {l}"));
    }
    n.join("; ")
}

pub fn table(s: &FleetStatus) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "TARGET".into(),
        "KIND".into(),
        "CURRENT".into(),
        "PERMANENT".into(),
        "LAST RUN".into(),
        "NOTES".into(),
    ]];
    for t in &s.targets {
        let (cur, perm) = runs(t);
        let last = t
            .last_run
            .as_ref()
            .map_or("-".to_owned(), |l| format!("{} {}", l.run, l.outcome));
        rows.push([t.target.clone(), t.kind.into(), cur, perm, last, notes(t)]);
    }
    let mut width = [0usize; 6];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!(
        "Plan {}: {} target{} (journals in {})\n",
        s.plan,
        s.targets.len(),
        if s.targets.len() == 1 { "" } else { "s" },
        s.state.display()
    );
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            if i == 5 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
