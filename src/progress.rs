//! The one consumer of run events that owns the terminal: on a terminal, a bar for the
//! run and a line per target in flight showing its step; elsewhere (cron, CI, pipes) one
//! plain log line per step. It never decides anything, it only shows.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::{Event, Outcome, TargetResult};

pub enum Progress {
    Bars {
        multi: MultiProgress,
        run: ProgressBar,
        targets: Mutex<HashMap<String, ProgressBar>>,
    },
    /// Plain lines to stdout, or to stderr when stdout carries JSON.
    Lines { to_stderr: bool },
}

impl Progress {
    /// The run bar's length comes with the run's `Began` event.
    pub fn new(terminal: bool, to_stderr: bool) -> Progress {
        if !terminal {
            return Progress::Lines { to_stderr };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let run = multi.add(ProgressBar::new(0));
        run.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} targets {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        run.enable_steady_tick(Duration::from_millis(120));
        Progress::Bars {
            multi,
            run,
            targets: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        match self {
            Progress::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
            Progress::Lines { to_stderr: true } => eprintln!("{text}"),
            Progress::Lines { to_stderr: false } => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    pub fn event(&self, e: &Event) {
        match (self, e) {
            (Progress::Bars { run, .. }, Event::Began { targets, .. }) => {
                run.set_length(*targets as u64)
            }
            (Progress::Lines { .. }, Event::Began { .. }) => {}
            (_, Event::Wave { index, of, targets }) => {
                let who = match targets.len() {
                    n if n > 8 => format!("{n} targets ({} … {})", targets[0], targets[n - 1]),
                    _ => targets.join(", "),
                };
                self.line(format!("wave {index}/{of}: {who}"))
            }
            (_, Event::Note { detail }) => self.line(detail.clone()),
            (Progress::Bars { multi, targets, .. }, Event::Step { target, step }) => {
                let Ok(mut map) = targets.lock() else { return };
                let bar = map.entry(target.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix}: {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b.set_prefix(target.clone());
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                bar.set_message(format!("{} {step}", step.name()));
            }
            (Progress::Lines { .. }, Event::Step { target, step }) => {
                self.line(format!("{target}: {}: {step}", step.name()))
            }
            (
                _,
                Event::Done(TargetResult {
                    target,
                    outcome,
                    detail,
                    millis,
                    ..
                }),
            ) => {
                if let Progress::Bars { run, targets, .. } = self {
                    if let Some(b) = targets.lock().ok().and_then(|mut m| m.remove(target)) {
                        b.finish_and_clear();
                    }
                    run.inc(1);
                }
                let mark = match outcome {
                    Outcome::Upgraded | Outcome::Unchanged => "ok",
                    Outcome::RolledBack => "ROLLED BACK",
                    Outcome::Failed => "FAILED",
                    Outcome::Skipped => "skipped",
                };
                self.line(format!(
                    "{target}: {mark}: {} ({detail}, {:.1}s)",
                    outcome.as_str(),
                    *millis as f64 / 1000.0
                ));
            }
        }
    }

    pub fn finish(&self) {
        if let Progress::Bars { run, .. } = self {
            run.finish_and_clear();
        }
    }
}

/// The end-of-run table: target, from, to, outcome, time.
pub fn summary_table(results: &[TargetResult]) -> String {
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                r.target.clone(),
                r.from.clone().unwrap_or_else(|| "-".into()),
                if r.to.is_empty() {
                    "-".into()
                } else {
                    r.to.clone()
                },
                r.outcome.as_str().to_owned()
                    + if r.attention {
                        " (needs attention)"
                    } else {
                        ""
                    },
                format!("{:.1}s", r.millis as f64 / 1000.0),
            ]
        })
        .collect();
    let header = ["TARGET", "FROM", "TO", "OUTCOME", "TIME"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
