//! What a run says as it goes, and what it ends with: typed events, steps, outcomes and
//! run statuses. Workers only send these; the journal and `--format jsonl` hold them as
//! serde writes them, progress bars and plain lines render them, and nothing reads a
//! rendered string back.

use std::fmt;
use std::path::PathBuf;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::diagnostics::Exit;

/// How one target ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Upgraded,
    Unchanged,
    RolledBack,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Upgraded => "upgraded",
            Outcome::Unchanged => "unchanged",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }

    /// A failure the run counts against `max_failures` (rolled back or not).
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::RolledBack)
    }
}

/// Where a rollback goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Back {
    /// A node back on a release (`None`: on no release, a fresh node).
    To(Option<Version>),
    /// A group's last upgrade undone.
    LastUpgrade,
    /// With the rest of the run (`on_failure: rollback-all`).
    All,
}

/// One step of one target, as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The node's lock is taken, at this place (`root` or `host:root`).
    Lock {
        at: String,
    },
    /// A node's change begins: from its permanent release (`None`: a fresh node) to `to`.
    Install {
        from: Option<Version>,
        to: Version,
    },
    /// The release is already current: an earlier attempt installed it.
    AlreadyCurrent {
        to: Version,
    },
    /// An app of a group begins its upgrade (`from`: `None` when not installed).
    Upgrade {
        app: String,
        from: Option<Version>,
        to: Version,
    },
    HealthChecking,
    HealthFailed {
        why: String,
    },
    RollBack(Back),
    Permanent {
        version: Version,
    },
    /// A lifecycle hook runs (`before`, `after`, `on_rollback`).
    Hook(&'static str),
    /// A line a node's store said (EMQX's words).
    Store(String),
    /// A line an app group said.
    Group(String),
}

/// A step as the journal and the stream hold it: its name (`step`), its words
/// (`detail`, as progress lines show them), and the typed fields `resume` reads: `from`
/// exactly on the steps that begin a change (null for a fresh node or an app not
/// installed), `to`, and `app` for a group.
impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let v = |v: &Version| v.to_string();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("step", self.name())?;
        m.serialize_entry("detail", &self.to_string())?;
        match self {
            Step::Install { from, to } => {
                m.serialize_entry("from", &from.as_ref().map(v))?;
                m.serialize_entry("to", &v(to))?;
            }
            Step::Upgrade { app, from, to } => {
                m.serialize_entry("app", app)?;
                m.serialize_entry("from", &from.as_ref().map(v))?;
                m.serialize_entry("to", &v(to))?;
            }
            Step::AlreadyCurrent { to } | Step::Permanent { version: to } => {
                m.serialize_entry("to", &v(to))?;
            }
            _ => {}
        }
        m.end()
    }
}

fn or_fresh(v: &Option<Version>) -> String {
    v.as_ref().map_or("(fresh)".into(), Version::to_string)
}

impl Step {
    /// The step's name, as lines and the journal show it.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Lock { .. } => "lock",
            Step::Install { .. } | Step::AlreadyCurrent { .. } => "install",
            Step::Upgrade { .. } => "upgrade",
            Step::HealthChecking | Step::HealthFailed { .. } => "health",
            Step::RollBack(_) => "rollback",
            Step::Permanent { .. } => "permanent",
            Step::Hook(_) => "hook",
            Step::Store(_) => "store",
            Step::Group(_) => "group",
        }
    }

    /// Whether this step begins changing its target (what `resume` needs to know).
    pub fn begins_change(&self) -> Option<Option<&Version>> {
        match self {
            Step::Install { from, .. } => Some(from.as_ref()),
            Step::Upgrade { .. } => Some(None),
            _ => None,
        }
    }
}

/// The step's detail, as lines and the journal show it.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Lock { at } => f.write_str(at),
            Step::Install { from, to } => write!(f, "{} → {to}", or_fresh(from)),
            Step::AlreadyCurrent { to } => {
                write!(f, "{to} is already current (an earlier run installed it)")
            }
            Step::Upgrade { app, from, to } => write!(
                f,
                "{app} {} → {to}",
                from.as_ref()
                    .map_or("(not installed)".into(), Version::to_string)
            ),
            Step::HealthChecking => f.write_str("checking"),
            Step::HealthFailed { why } => write!(f, "failed: {why}"),
            Step::RollBack(Back::To(v)) => write!(
                f,
                "back to {}",
                v.as_ref().map_or("nothing".into(), Version::to_string)
            ),
            Step::RollBack(Back::LastUpgrade) => f.write_str("the group's last upgrade"),
            Step::RollBack(Back::All) => f.write_str("rollback-all"),
            Step::Permanent { version } => write!(f, "{version}"),
            Step::Hook(which) => f.write_str(which),
            Step::Store(line) | Step::Group(line) => f.write_str(line),
        }
    }
}

/// How a command takes up a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// `apply`: a new run.
    New,
    /// `resume`: the run goes on, with this many targets already finished.
    Resumed { finished: usize },
    /// `rollback RUN`: what the run upgraded goes back.
    RollBack,
}

/// What happened, as it happens. Serialised, it *is* a journal line's `event` and a
/// `--format jsonl` line (docs/reference/journal.md, docs/reference/events.md): `{"event": "wave-done", …}`.
/// The run's start and its warnings are not journalled (the journal's first line and
/// the plan copy hold them) and the stream writes them itself; a probe in progress is
/// neither journalled nor streamed.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Warnings found while preparing the plan (in the plan file, or about the world it
    /// names); errors end the command as a `Failure` instead.
    #[serde(skip)]
    Warnings {
        problems: Vec<crate::diagnostics::Problem>,
        file: Option<crate::span::SourceFile>,
    },
    /// A run starts (or `resume` continues one): its id, plan, size and journal.
    #[serde(skip)]
    Began {
        run: String,
        plan: String,
        targets: usize,
        waves: usize,
        journal: PathBuf,
        how: Begin,
    },
    /// The run's waves, once, as it starts (`resume` goes on with the same ones).
    Schedule {
        waves: Vec<PlannedWave>,
    },
    Wave {
        index: usize,
        of: usize,
        targets: Vec<String>,
    },
    /// A wave is over (after its analyses): how many of it were upgraded and failed.
    WaveDone {
        index: usize,
        of: usize,
        upgraded: usize,
        failed: usize,
    },
    /// A gate after wave `after_wave` (1-based): waiting for an approval, approved,
    /// or waited through.
    Gate {
        after_wave: usize,
        #[serde(flatten)]
        state: GateState,
    },
    /// A metric analysis after wave `wave` (1-based) and its verdict.
    Analysis {
        wave: usize,
        name: String,
        verdict: Verdict,
        detail: String,
    },
    Step {
        target: String,
        #[serde(flatten)]
        step: Step,
    },
    Done(TargetResult),
    Note {
        detail: String,
    },
    /// How a health check in progress stands: the last probe's result and the time left,
    /// or the countdown of `healthy_for`. Shown live on a terminal; never journalled nor
    /// streamed (the step that ends the check is).
    #[serde(skip)]
    Probe {
        target: String,
        detail: String,
    },
}

impl Event {
    /// The event with every secret value in its words replaced by its `${VAR}`: what a
    /// hook printed, an error that quotes a filled URL, argv or query.
    pub fn hidden(self, secrets: &crate::template::Secrets) -> Event {
        if secrets.is_empty() {
            return self;
        }
        let h = |s: String| secrets.hide(&s);
        match self {
            Event::Analysis {
                wave,
                name,
                verdict,
                detail,
            } => Event::Analysis {
                wave,
                name,
                verdict,
                detail: h(detail),
            },
            Event::Step { target, step } => Event::Step {
                target,
                step: match step {
                    Step::HealthFailed { why } => Step::HealthFailed { why: h(why) },
                    Step::Store(s) => Step::Store(h(s)),
                    Step::Group(s) => Step::Group(h(s)),
                    other => other,
                },
            },
            Event::Done(r) => Event::Done(r.hidden(secrets)),
            Event::Note { detail } => Event::Note { detail: h(detail) },
            Event::Probe { target, detail } => Event::Probe {
                target,
                detail: h(detail),
            },
            other => other,
        }
    }
}

impl TargetResult {
    /// The result with every secret value in its detail replaced by its `${VAR}`.
    pub fn hidden(mut self, secrets: &crate::template::Secrets) -> TargetResult {
        self.detail = secrets.hide(&self.detail);
        self
    }
}

/// One wave as the run planned it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedWave {
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default)]
    pub why: String,
    /// Failures the wave tolerates (`max_failures` in its scope).
    #[serde(default)]
    pub budget: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum GateState {
    /// A manual gate: the run pauses until `fleetup approve`.
    Waiting,
    /// `fleetup approve` by `by` (user@host).
    Approved { by: String },
    /// A wait gate waited `secs` seconds.
    Waited { secs: u64 },
}

pub use crate::analysis::Verdict;

/// One target's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    pub target: String,
    pub from: Option<String>,
    pub to: String,
    pub outcome: Outcome,
    pub detail: String,
    pub millis: u64,
    /// The failure could not be undone: the target needs attention (exit 4).
    #[serde(default)]
    pub attention: bool,
    /// The diagnostic code of what failed (`fleetup::health::unhealthy`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Rolled back because another target failed (`on_failure: rollback-all`), not for
    /// a failure of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_rest: bool,
}

/// How a run stands: what `history` shows and the journal's last line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Its owner is working on it now (it holds the run's lock).
    Running,
    /// Started and never ended, and no one holds it: killed.
    Interrupted,
    Succeeded,
    Failed,
    /// It waits on its own terms (a [`Pause`]: the window closed, a manual gate, an
    /// inconclusive analysis): `resume` continues it.
    Paused,
    /// Stopped between steps (SIGINT or SIGTERM, or a target found locked by another
    /// fleetup): `resume` continues it.
    Stopped,
    NeedsAttention,
    /// `rollback RUN` put back everything the run had upgraded.
    RolledBack,
    /// `fleetup abort` ended it while it waited for `resume`.
    Aborted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Paused => "paused",
            RunStatus::Stopped => "stopped",
            RunStatus::NeedsAttention => "needs-attention",
            RunStatus::RolledBack => "rolled-back",
            RunStatus::Aborted => "aborted",
        }
    }

    /// Whether `resume` has anything to do.
    pub fn resumable(self) -> bool {
        matches!(
            self,
            RunStatus::Interrupted | RunStatus::Paused | RunStatus::Stopped
        )
    }

    /// How the command that ended the run with this status exits.
    pub fn exit(self) -> Exit {
        match self {
            RunStatus::Succeeded | RunStatus::RolledBack | RunStatus::Aborted => Exit::Ok,
            RunStatus::Failed => Exit::Failed,
            // Both wait for `fleetup resume` (exit 6).
            RunStatus::Paused | RunStatus::Stopped => Exit::Paused,
            RunStatus::NeedsAttention | RunStatus::Interrupted | RunStatus::Running => {
                Exit::Attention
            }
        }
    }

    /// The status of a run whose targets ended as `results` (SPEC §5.6): attention
    /// first; then a run that is not over (stopped, or paused by its window, a gate or an
    /// analysis) waits for `resume`, whatever failed within its budget so far (those
    /// failures make the run `failed` once it ends); then failures.
    pub fn of(results: &[TargetResult], paused: bool, stopped: bool) -> RunStatus {
        if results.iter().any(|r| r.attention) {
            RunStatus::NeedsAttention
        } else if stopped {
            RunStatus::Stopped
        } else if paused {
            RunStatus::Paused
        } else if results.iter().any(|r| r.outcome.is_failure()) {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        }
    }
}

/// Why a run paused: the targets not started wait for `resume`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pause {
    /// The maintenance window closed between waves.
    Window,
    /// A manual gate after this wave (1-based) waits for `fleetup approve`.
    Gate { after_wave: usize },
    /// An analysis after this wave (1-based) could not be judged.
    Inconclusive {
        analysis: String,
        wave: usize,
        detail: String,
    },
}

impl Pause {
    /// What the operator is told, naming the commands that go on from here for `run`.
    pub fn why(&self, run: &str) -> String {
        match self {
            Pause::Window => "the maintenance window closed".to_owned(),
            Pause::Gate { after_wave } => format!(
                "waiting for an approval at the gate after wave {after_wave}: `fleetup approve {run}` then `fleetup resume {run}` continue, `fleetup abort {run}` ends the run"
            ),
            Pause::Inconclusive {
                analysis,
                wave,
                detail,
            } => format!(
                "the analysis `{analysis}` after wave {wave} was inconclusive ({detail}); `fleetup resume {run}` asks again, `fleetup abort {run}` ends the run"
            ),
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn steps_read_as_they_always_did() {
        let install = Step::Install {
            from: Some(v("4.4.15")),
            to: v("4.4.16"),
        };
        assert_eq!(
            (install.name(), install.to_string().as_str()),
            ("install", "4.4.15 → 4.4.16")
        );
        let fresh = Step::Install {
            from: None,
            to: v("4.4.16"),
        };
        assert_eq!(fresh.to_string(), "(fresh) → 4.4.16");
        let up = Step::Upgrade {
            app: "mall".into(),
            from: None,
            to: v("1.0.1"),
        };
        assert_eq!(up.to_string(), "mall (not installed) → 1.0.1");
        assert_eq!(
            Step::RollBack(Back::To(None)).to_string(),
            "back to nothing"
        );
        assert_eq!(Step::RollBack(Back::All).to_string(), "rollback-all");
    }

    #[test]
    fn a_status_knows_its_exit_and_whether_it_resumes() {
        let r = |outcome, attention| TargetResult {
            target: "n".into(),
            from: None,
            to: "1.0.1".into(),
            outcome,
            detail: String::new(),
            millis: 0,
            attention,
            code: None,
            with_rest: false,
        };
        assert_eq!(
            RunStatus::of(&[r(Outcome::Upgraded, false)], false, false),
            RunStatus::Succeeded
        );
        assert_eq!(
            RunStatus::of(&[r(Outcome::Upgraded, false)], true, false),
            RunStatus::Paused
        );
        assert_eq!(
            RunStatus::of(
                &[r(Outcome::RolledBack, false), r(Outcome::Failed, true)],
                true,
                false
            ),
            RunStatus::NeedsAttention
        );
        // A failure within the budget, then a pause: the run is not over, it waits
        // (it used to end `failed`, which no `resume` could take up).
        assert_eq!(
            RunStatus::of(&[r(Outcome::RolledBack, false)], true, false),
            RunStatus::Paused
        );
        assert_eq!(
            RunStatus::of(&[r(Outcome::RolledBack, false)], false, false),
            RunStatus::Failed
        );
        assert_eq!(RunStatus::Paused.exit().code(), 6);
        assert_eq!(RunStatus::Failed.exit().code(), 3);
        assert!(RunStatus::Interrupted.resumable() && RunStatus::Paused.resumable());
        assert!(!RunStatus::RolledBack.resumable());
        // A stop by a signal waits for resume, as a pause does.
        assert_eq!(
            RunStatus::of(&[r(Outcome::Upgraded, false)], false, true),
            RunStatus::Stopped
        );
        assert!(RunStatus::Stopped.resumable() && RunStatus::Stopped.exit().code() == 6);
    }
}
