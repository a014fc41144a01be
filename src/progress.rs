//! The one consumer of run events that owns the terminal: on a terminal, a bar for the
//! run and a line per target in flight showing its step; elsewhere (cron, CI, pipes) one
//! plain log line per step. It never decides anything, it only shows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::{Event, Outcome, Step, TargetResult};

/// Bars on a terminal (drawn once the run begins, never over a prompt), else plain
/// lines to stdout, or to stderr when stdout carries JSON.
pub struct Progress {
    terminal: bool,
    to_stderr: bool,
    bars: Mutex<Option<Bars>>,
}

struct Bars {
    multi: MultiProgress,
    run: ProgressBar,
    targets: HashMap<String, ProgressBar>,
    /// `rollback-all`, counted as a phase of its own once it starts.
    rollback: Option<ProgressBar>,
}

impl Bars {
    fn new(total: usize) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let run = multi.add(ProgressBar::new(total as u64));
        run.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} targets {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        run.enable_steady_tick(Duration::from_millis(120));
        Bars {
            multi,
            run,
            targets: HashMap::new(),
            rollback: None,
        }
    }

    /// `rollback-all` begins: the run's bar says so, and a bar of its own counts it.
    fn rolling_back(&mut self) {
        if self.rollback.is_some() {
            return;
        }
        self.run
            .set_message("done; rolling back (on_failure: rollback-all)");
        let b = self.multi.add(ProgressBar::new_spinner());
        b.set_style(
            ProgressStyle::with_template("{spinner} rollback-all: {pos} rolled back")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        self.rollback = Some(b);
    }

    /// A health check's passing word, on the target's spinner.
    fn probe(&mut self, target: &str, detail: &str) {
        if let Some(b) = self.targets.get(target) {
            b.set_message(format!("health: {detail}"));
        }
    }

    /// A target's spinner showing its current step.
    fn step(&mut self, target: &str, text: String) {
        let multi = &self.multi;
        let bar = self.targets.entry(target.to_owned()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("  {spinner} {prefix}: {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(target.to_owned());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        bar.set_message(text);
    }

    fn done(&mut self, target: &str) {
        if let Some(b) = self.targets.remove(target) {
            b.finish_and_clear();
        }
        match &self.rollback {
            Some(r) => r.inc(1),
            None => self.run.inc(1),
        }
    }
}

/// `-v`: plain lines include the store's own words for each step.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

impl Progress {
    pub fn new(terminal: bool, to_stderr: bool) -> Progress {
        Progress {
            terminal,
            to_stderr,
            bars: Mutex::new(None),
        }
    }

    fn line(&self, text: String) {
        if let Ok(guard) = self.bars.lock()
            && let Some(b) = guard.as_ref()
        {
            let _ = b.multi.println(text);
            return;
        }
        crate::run::stop::say_line(&crate::names::printable_text(&text), self.to_stderr);
    }

    pub fn event(&self, e: &Event) {
        match e {
            Event::Began { targets, .. } => {
                if self.terminal
                    && let Ok(mut b) = self.bars.lock()
                {
                    *b = Some(Bars::new(*targets));
                }
            }
            Event::Wave { index, of, targets } => {
                let who = match targets.len() {
                    n if n > 8 => format!("{n} targets ({} … {})", targets[0], targets[n - 1]),
                    _ => targets.join(", "),
                };
                self.line(format!("wave {index}/{of}: {who}"))
            }
            Event::Note { detail } => self.line(detail.clone()),
            // `plan` shows the waves; a run shows each as it starts.
            Event::Schedule { .. } | Event::WaveDone { .. } => {}
            Event::Gate { after_wave, state } => match state {
                // The note that follows says how to go on.
                crate::run::GateState::Waiting => {}
                crate::run::GateState::Approved { by } => {
                    self.line(format!("gate after wave {after_wave}: approved by {by}"))
                }
                crate::run::GateState::Waited { secs } => {
                    self.line(format!("gate after wave {after_wave}: waited {secs}s"))
                }
            },
            Event::Analysis {
                wave,
                name,
                verdict,
                detail,
            } => {
                let word = match verdict {
                    crate::run::Verdict::Passed => "passed",
                    crate::run::Verdict::Failed => "FAILED",
                    crate::run::Verdict::Inconclusive => "inconclusive",
                };
                self.line(format!(
                    "analysis `{name}` after wave {wave}: {word}: {detail}"
                ))
            }
            // Diagnostics are the caller's to render.
            Event::Warnings { .. } => {}
            Event::Probe { target, detail } => {
                if let Ok(mut guard) = self.bars.lock()
                    && let Some(b) = guard.as_mut()
                {
                    b.probe(target, detail);
                }
            }
            Event::Step { target, step } => {
                if let Ok(mut guard) = self.bars.lock()
                    && let Some(b) = guard.as_mut()
                {
                    if matches!(step, Step::RollBack(crate::run::Back::All)) {
                        b.rolling_back();
                    }
                    b.step(target, format!("{} {step}", step.name()));
                    return;
                }
                // The store's own lines repeat what the steps say: only with -v.
                if matches!(step, Step::Store(_))
                    && !VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
                {
                    return;
                }
                self.line(format!("{target}: {}: {step}", step.name()))
            }
            Event::Done(TargetResult {
                target,
                outcome,
                detail,
                millis,
                ..
            }) => {
                if let Ok(mut guard) = self.bars.lock()
                    && let Some(b) = guard.as_mut()
                {
                    b.done(target);
                }
                // The outcome once: `ok: upgraded`, `ROLLED BACK`, `FAILED`, `skipped`.
                let mark = match outcome {
                    Outcome::Upgraded | Outcome::Unchanged => format!("ok: {}", outcome.as_str()),
                    Outcome::RolledBack => "ROLLED BACK".into(),
                    Outcome::Failed => "FAILED".into(),
                    Outcome::Skipped => "skipped".into(),
                };
                self.line(format!(
                    "{target}: {mark} ({detail}, {:.1}s)",
                    *millis as f64 / 1000.0
                ));
            }
        }
    }

    pub fn finish(&self) {
        if let Ok(mut guard) = self.bars.lock()
            && let Some(b) = guard.take()
        {
            b.run.finish_and_clear();
            if let Some(r) = b.rollback {
                r.finish_and_clear();
            }
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
