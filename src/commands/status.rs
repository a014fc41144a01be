//! `fleetup status PLAN`: the fleet as a table (or JSON), from `run::status`.

use std::path::Path;

use crate::cli::StatusFormat;
use crate::diagnostics::{Exit, Failure};
use crate::run::status::{FleetStatus, TargetStatus, fleet_status};

/// `drift`: exit 1 when the fleet is not what the plan says, and say how.
pub fn run(
    plan: &Path,
    only: Option<&str>,
    state: Option<&Path>,
    drift: bool,
    format: StatusFormat,
) -> Result<Exit, Failure> {
    let s = fleet_status(plan, only, state)?;
    match format {
        StatusFormat::Json => {
            if let Ok(mut v) = serde_json::to_value(&s) {
                v["drifted"] = serde_json::Value::Bool(s.drifted());
                if let Ok(t) = serde_json::to_string_pretty(&v) {
                    println!("{t}");
                }
            }
        }
        StatusFormat::Human => {
            print!("{}", table(&s));
            if drift {
                print!("{}", drift_words(&s));
            }
        }
        StatusFormat::Prometheus => print!("{}", prometheus(&s, now_seconds())),
    }
    Ok(if drift && s.drifted() {
        Exit::Invalid
    } else {
        Exit::Ok
    })
}

/// What differs from the plan, one line each, or that nothing does.
fn drift_words(s: &FleetStatus) -> String {
    if !s.drifted() {
        return format!("No drift: every target runs what plan {} says.\n", s.plan);
    }
    let mut out = format!("Drift from plan {}:\n", s.plan);
    for t in &s.targets {
        for d in &t.drift {
            out.push_str(&format!("  {}: {d}\n", t.target));
        }
    }
    for r in &s.runs_left {
        out.push_str(&format!("  {r}\n"));
    }
    out
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A label value in Prometheus' text format: `\`, `"` and line feeds escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The fleet as a census in Prometheus' text format (node_exporter's textfile
/// collector reads it): per target what it runs and what the plan says, whether it
/// drifted, whether it is mid-change, its last run's outcome; per plan the runs left
/// unfinished and when the census was taken.
pub fn prometheus(s: &FleetStatus, now: u64) -> String {
    let plan = label(&s.plan);
    let mut out = String::new();
    let mut family = |name: &str, help: &str, rows: Vec<(String, u64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in rows {
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    };
    let per_target = |f: &dyn Fn(&TargetStatus) -> Option<(String, u64)>| {
        s.targets
            .iter()
            .filter_map(|t| {
                f(t).map(|(more, v)| {
                    (
                        format!("plan=\"{plan}\",target=\"{}\"{more}", label(&t.target)),
                        v,
                    )
                })
            })
            .collect::<Vec<_>>()
    };
    family(
        "fleetup_target_info",
        "What a target runs (current, permanent) and what its plan says (wanted); always 1.",
        per_target(&|t| {
            let (cur, perm) = runs(t);
            Some((
                format!(
                    ",kind=\"{}\",current=\"{}\",permanent=\"{}\",wanted=\"{}\"",
                    t.kind,
                    label(&cur),
                    label(&perm),
                    label(&t.wanted)
                ),
                1,
            ))
        }),
    );
    family(
        "fleetup_target_drift",
        "1 when a target differs from its plan (another version, not permanent, mid-change, unreadable), else 0.",
        per_target(&|t| Some((String::new(), u64::from(!t.drift.is_empty())))),
    );
    family(
        "fleetup_target_mid_change",
        "1 when a target is caught in the middle of a change, else 0.",
        per_target(&|t| Some((String::new(), u64::from(t.mid_change)))),
    );
    family(
        "fleetup_target_last_run",
        "The last run that touched a target and the target's outcome in it; always 1.",
        per_target(&|t| {
            t.last_run.as_ref().map(|l| {
                (
                    format!(
                        ",run=\"{}\",outcome=\"{}\"",
                        label(&l.run),
                        label(&l.outcome)
                    ),
                    1,
                )
            })
        }),
    );
    family(
        "fleetup_plan_runs_left",
        "Runs of the plan not yet ended (paused, stopped, interrupted or running).",
        vec![(format!("plan=\"{plan}\""), s.runs_left.len() as u64)],
    );
    family(
        "fleetup_plan_drift",
        "1 when anything of the plan differs from what it says, else 0.",
        vec![(format!("plan=\"{plan}\""), u64::from(s.drifted()))],
    );
    family(
        "fleetup_status_timestamp_seconds",
        "When this census was taken (Unix time).",
        vec![(format!("plan=\"{plan}\""), now)],
    );
    out
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
