//! Runs and their journals (SPEC §5.3): one directory per run in the state directory,
//! holding the plan exactly as applied and one JSON line per event, each appended and
//! synced, so a run killed at any moment leaves a journal that can be read (a torn last
//! line is ignored).
//!
//! The line format is versioned (`format` in the first line) and documented in
//! docs/reference/journal.md. Format 2 writes typed fields beside each step's text; journals of
//! format 1 (no `format` key) are still read, from the step texts they wrote.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diagnostics::{Code, Problem};
use semver::Version;

use super::event::{Event, RunStatus, TargetResult};

/// The state directory: --state, the plan's `state`, $FLEETUP_STATE_DIR,
/// $XDG_STATE_HOME/fleetup, ~/.local/state/fleetup.
pub fn state_dir(flag: Option<&Path>, plan: Option<&Path>) -> Result<PathBuf, Problem> {
    if let Some(p) = flag.or(plan) {
        return Ok(p.to_owned());
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("FLEETUP_STATE_DIR") {
        return Ok(p);
    }
    if let Some(p) = env("XDG_STATE_HOME") {
        return Ok(p.join("fleetup"));
    }
    if let Some(home) = env("HOME") {
        return Ok(home.join(".local/state/fleetup"));
    }
    Err(Problem::new(
        Code::Io,
        "no state directory: set --state, the plan's `state`, or $FLEETUP_STATE_DIR",
    ))
}

/// Eight hex digits from the kernel's random source (the clock's nanoseconds and the
/// pid where it cannot be read): a run id's last part.
fn unique_suffix() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        b = (nanos ^ std::process::id().rotate_left(16)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// How many taken ids [`make_run_dir`] tries past before it gives up.
const RETRIES: usize = 16;

/// Makes a run's directory under `runs` as `<base>-<suffix>`, one only this caller gets
/// (`create_dir` fails if it exists): a taken id is tried again with another suffix, up
/// to [`RETRIES`] times; any other error at once. The id and the directory, or the
/// error and the directory it was about.
fn make_run_dir(
    runs: &Path,
    base: &str,
    mut suffix: impl FnMut() -> String,
) -> Result<(String, PathBuf), (std::io::Error, PathBuf)> {
    let mut tries = 0;
    loop {
        let id = format!("{base}-{}", suffix());
        let dir = runs.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < RETRIES => {
                tries += 1
            }
            Err(e) => return Err((e, dir)),
        }
    }
}

/// The journal format this fleetup writes.
pub const FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    /// The line format; journals without it are format 1.
    #[serde(default = "format_1")]
    pub format: u32,
    pub run: String,
    pub plan: String,
    pub plan_name: String,
    pub digest: String,
    pub started: String,
    /// The `--only` selection of the run, so `resume` works on the same targets.
    #[serde(default)]
    pub only: Option<String>,
    /// The plan file's canonical absolute path when the run started: its relative
    /// `root`, `repository` and `state` are resolved against its directory by every
    /// later command, wherever that is started from. Journals before it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_file: Option<String>,
}

fn format_1() -> u32 {
    1
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Footer {
    pub status: RunStatus,
    pub exit: u8,
    pub finished: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Line {
    Start(Header),
    Event {
        at: String,
        #[serde(flatten)]
        event: serde_json::Value,
    },
    End(Footer),
}

pub struct Journal {
    pub dir: PathBuf,
    file: Mutex<std::fs::File>,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl Journal {
    /// Creates the run's directory with the plan text and the journal's first line, and
    /// takes the run's lock (returned, to be held while the run works) before anything
    /// is written. The directory is made exclusively under an id no other run has: two
    /// fleetups sharing a state directory, even started in the same second with the
    /// same pid (containers), never share a run.
    pub fn create(
        state: &Path,
        plan_path: &Path,
        plan_name: &str,
        plan_text: &str,
        only: Option<&str>,
    ) -> Result<(Journal, crate::lock::Lock), Problem> {
        let io = |e: std::io::Error, p: &Path| {
            Problem::new(
                Code::Io,
                format!("cannot write the journal in {}: {e}", p.display()),
            )
        };
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let digest: String = Sha256::digest(plan_text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let safe: String = plan_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let runs = state.join("runs");
        std::fs::create_dir_all(&runs).map_err(|e| io(e, &runs))?;
        let (id, dir) = make_run_dir(
            &runs,
            &format!("{stamp}-{safe}-{}", &digest[..6]),
            unique_suffix,
        )
        .map_err(|(e, dir)| io(e, &dir))?;
        let owner = lock_run(&dir, &id)?;
        let ext = plan_path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("yaml");
        crate::fsutil::write_atomic(&dir.join(format!("plan.{ext}")), plan_text.as_bytes())
            .map_err(|e| io(e, &dir))?;
        // Only its owner reads a journal: it may hold what hooks and checks answered.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join("journal.jsonl"))
            .map_err(|e| io(e, &dir))?;
        let j = Journal {
            dir,
            file: Mutex::new(file),
        };
        j.write(
            &Line::Start(Header {
                format: FORMAT,
                run: id,
                plan: plan_path.display().to_string(),
                plan_name: plan_name.to_owned(),
                digest,
                started: now(),
                only: only.map(str::to_owned),
                plan_file: std::fs::canonicalize(plan_path)
                    .or_else(|_| std::path::absolute(plan_path))
                    .ok()
                    .map(|p| p.display().to_string()),
            }),
            true,
        );
        Ok((j, owner))
    }

    /// Opens an existing run's journal to append to it (`resume`, `rollback`).
    pub fn reopen(dir: &Path) -> Result<Journal, Problem> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("journal.jsonl"))
            .map_err(|e| {
                Problem::new(
                    Code::Io,
                    format!("cannot open the journal in {}: {e}", dir.display()),
                )
            })?;
        Ok(Journal {
            dir: dir.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Appends one line. Every line survives a kill (it is in the page cache once
    /// written); `durable` lines (start, outcomes, end) are also synced against power loss.
    /// Step details are not: syncing each under the lock would queue the workers behind
    /// one another, and `resume` reads the stores' real state anyway.
    fn write(&self, line: &Line, durable: bool) {
        let Ok(mut text) = serde_json::to_string(line) else {
            return;
        };
        text.push('\n');
        let synced = match self.file.lock() {
            // A journal that cannot be written must not stop the upgrade it records;
            // the run's own output still reports every step.
            Ok(mut f) => f
                .write_all(text.as_bytes())
                .ok()
                .and_then(|_| durable.then(|| f.try_clone().ok()).flatten()),
            Err(_) => None,
        };
        // Synced outside the lock, on a duplicate handle, so other workers can write meanwhile.
        if let Some(f) = synced {
            let _ = f.sync_data();
        }
    }

    /// Records one event (`Began` and `Warnings` are not: the first line and the plan
    /// copy say it all).
    pub fn event(&self, e: &Event) {
        let Some(v) = event_json(e) else { return };
        let durable = matches!(
            e,
            Event::Done(_) | Event::Wave { .. } | Event::Schedule { .. } | Event::Gate { .. }
        );
        self.write(
            &Line::Event {
                at: now(),
                event: v,
            },
            durable,
        );
    }

    pub fn finish(&self, status: RunStatus, exit: u8) {
        self.write(
            &Line::End(Footer {
                status,
                exit,
                finished: now(),
            }),
            true,
        );
    }
}

/// The version of the event stream (`--format jsonl`, docs/reference/events.md).
pub const EVENTS_VERSION: u32 = 1;

/// An event as `--format jsonl` streams it: the journal's line, with `v`, and the run's
/// start (which the journal keeps in its first line) and warnings too.
pub fn event_line(e: &Event) -> Option<serde_json::Value> {
    use serde_json::json;
    let mut v = match e {
        Event::Began {
            run,
            plan,
            targets,
            waves,
            journal,
            how,
        } => json!({
            "event": "start",
            "run": run,
            "plan": plan,
            "targets": targets,
            "waves": waves,
            "journal": journal.display().to_string(),
            "digest": digest_of_run(journal),
            "how": match how {
                super::event::Begin::New => "apply",
                super::event::Begin::Resumed { .. } => "resume",
                super::event::Begin::RollBack => "rollback",
            },
        }),
        Event::Warnings { problems, .. } => json!({
            "event": "warnings",
            "problems": problems.iter().map(|p| json!({
                "code": p.code.as_str(), "message": p.message
            })).collect::<Vec<_>>(),
        }),
        other => event_json(other)?,
    };
    v.as_object_mut()?.insert("v".into(), EVENTS_VERSION.into());
    Some(v)
}

/// The plan digest a run's journal records in its first line.
fn digest_of_run(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).ok()?;
    match serde_json::from_str::<Line>(text.lines().next()?).ok()? {
        Line::Start(h) => Some(h.digest),
        _ => None,
    }
}

/// An event as a format-2 journal line holds it: the event itself, serialised (the run's
/// start, its warnings and probes in progress are not journalled).
fn event_json(e: &Event) -> Option<serde_json::Value> {
    match e {
        Event::Began { .. } | Event::Warnings { .. } | Event::Probe { .. } => None,
        e => serde_json::to_value(e).ok(),
    }
}

/// A run as `history` shows it, read back from its journal.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub run: String,
    pub plan: String,
    /// The plan's `name` (`plan` is its file as given).
    #[serde(skip)]
    pub plan_name: String,
    pub started: String,
    /// `interrupted` until the run writes its end; then what it ended as.
    pub status: RunStatus,
    pub exit: Option<u8>,
    pub only: Option<String>,
    /// The plan file's absolute path as the run recorded it (see [`Header::plan_file`]).
    #[serde(skip)]
    pub plan_file: Option<PathBuf>,
    /// Each target's latest outcome, in the order they finished.
    pub targets: Vec<TargetResult>,
    /// Targets the run began changing (a node's install, a group's upgrade), with the
    /// release a node came from (`None` for a fresh node and for a group).
    #[serde(skip)]
    pub began: std::collections::BTreeMap<String, Option<Version>>,
    /// The waves the run planned as it started (journals before 0.2 have none).
    #[serde(skip)]
    pub schedule: Option<Vec<super::event::PlannedWave>>,
    /// Gates passed, by the wave they follow: approved (by whom) or waited through.
    #[serde(skip)]
    pub gates: std::collections::BTreeMap<usize, super::event::GateState>,
    /// Waves (1-based) after which a wait gate was waited through: never waited again,
    /// whatever a manual gate after the same wave says since.
    #[serde(skip)]
    pub waited: std::collections::BTreeSet<usize>,
    /// The last verdict of each analysis after each wave: (wave, name).
    #[serde(skip)]
    pub analyses: std::collections::BTreeMap<(usize, String), super::event::Verdict>,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl RunSummary {
    /// Whether `resume` has anything to do.
    pub fn resumable(&self) -> bool {
        self.status.resumable()
    }

    /// The plan as the run applied it (the run directory keeps a copy).
    pub fn plan_copy(&self) -> Option<PathBuf> {
        ["yaml", "yml", "toml"]
            .iter()
            .map(|e| self.dir.join(format!("plan.{e}")))
            .find(|p| p.is_file())
    }
}

pub fn read_run(dir: &Path) -> Option<RunSummary> {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).ok()?;
    let mut summary: Option<RunSummary> = None;
    let mut format = 1;
    for line in text.lines() {
        // A torn last line of a killed run is skipped, never fatal.
        let Ok(l) = serde_json::from_str::<Line>(line) else {
            continue;
        };
        match l {
            Line::Start(h) => {
                format = h.format;
                summary = Some(RunSummary {
                    run: h.run,
                    plan: h.plan,
                    plan_name: h.plan_name,
                    started: h.started,
                    status: RunStatus::Interrupted,
                    exit: None,
                    only: h.only,
                    plan_file: h.plan_file.map(PathBuf::from),
                    targets: Vec::new(),
                    began: Default::default(),
                    schedule: None,
                    gates: Default::default(),
                    waited: Default::default(),
                    analyses: Default::default(),
                    dir: dir.to_owned(),
                });
            }
            Line::Event { event, .. } => {
                let Some(s) = summary.as_mut() else { continue };
                let field = |k: &str| event.get(k).and_then(|e| e.as_str());
                if field("event") == Some("step")
                    && let Some(t) = field("target")
                    && let Some(from) = began_from(&event, format)
                {
                    s.began.entry(t.to_owned()).or_insert(from);
                }
                if field("event") == Some("schedule")
                    && let Some(w) = event.get("waves")
                {
                    s.schedule = serde_json::from_value(w.clone()).ok();
                }
                if field("event") == Some("gate")
                    && let Some(after) = event.get("after_wave").and_then(|a| a.as_u64())
                    && let Ok(state) =
                        serde_json::from_value::<super::event::GateState>(event.clone())
                {
                    if matches!(state, super::event::GateState::Waited { .. }) {
                        s.waited.insert(after as usize);
                    }
                    s.gates.insert(after as usize, state);
                }
                if field("event") == Some("analysis")
                    && let Some(w) = event.get("wave").and_then(|a| a.as_u64())
                    && let Some(n) = field("name")
                    && let Some(v) = event.get("verdict")
                    && let Ok(v) = serde_json::from_value::<super::event::Verdict>(v.clone())
                {
                    s.analyses.insert((w as usize, n.to_owned()), v);
                }
                if field("event") != Some("done") {
                    continue;
                }
                let Ok(r) = serde_json::from_value::<TargetResult>(event) else {
                    continue;
                };
                s.targets.retain(|t| t.target != r.target);
                s.targets.push(r);
            }
            Line::End(f) => {
                if let Some(s) = summary.as_mut() {
                    s.status = f.status;
                    s.exit = Some(f.exit);
                }
            }
        }
    }
    summary
}

/// For a step line that began changing its target, the release the target came from.
fn began_from(step: &serde_json::Value, format: u32) -> Option<Option<Version>> {
    let field = |k: &str| step.get(k).and_then(|e| e.as_str());
    let name = field("step")?;
    if format >= 2 {
        // Format 2: `from` stands exactly on the steps that begin a change.
        let from = step.get("from")?;
        return match name {
            "install" => Some(from.as_str().and_then(|v| Version::parse(v).ok())),
            "upgrade" => Some(None),
            _ => None,
        };
    }
    // Format 1 wrote only text: `FROM → TO` (FROM `(fresh)` for a fresh node) on an
    // install, `APP FROM → TO` on a group's upgrade.
    let (from, _) = field("detail")?.split_once(" → ")?;
    match name {
        "install" => Some(Version::parse(from).ok()),
        "upgrade" => Some(None),
        _ => None,
    }
}

/// The run `id` names among `runs` (oldest first): the one with exactly that id, else the
/// only one it is a prefix of; `last` is the newest (an id starts with its date, so no id
/// is `last` or starts with it). An empty id, or a prefix of several runs, names none
/// (usage, exit 2).
pub fn lookup(runs: &[RunSummary], id: &str, state: &Path) -> Result<usize, Problem> {
    let usage = |m: String| {
        Problem::new(Code::Usage, m)
            .help("`fleetup history` lists the runs; give an id, a prefix of one, or `last`")
    };
    if id.is_empty() {
        return Err(usage("the run id is empty".into()));
    }
    if let Some(i) = runs.iter().position(|r| r.run == id) {
        return Ok(i);
    }
    if id == "last" {
        return match runs.len() {
            0 => Err(usage(format!("no run in {} yet", state.display()))),
            n => Ok(n - 1),
        };
    }
    let hits: Vec<usize> = (0..runs.len())
        .filter(|&i| runs[i].run.starts_with(id))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(usage(format!("no run `{id}` in {}", state.display()))),
        many => Err(usage(format!(
            "`{id}` is the start of {} runs: {}",
            many.len(),
            many.iter()
                .map(|&i| runs[i].run.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Takes the run's lock for the whole of an apply, resume or rollback: no second
/// fleetup works on one run at once, and `history` can tell a live run from a killed one.
pub fn lock_run(dir: &Path, run: &str) -> Result<crate::lock::Lock, Problem> {
    crate::lock::acquire(
        dir,
        &format!("run {run}"),
        Some(run),
        std::time::Duration::ZERO,
    )
    .map_err(|p| {
        if p.code == Code::Locked {
            p.help("that fleetup is working on this run now: wait for it to end, then `fleetup history` says how it ended")
        } else {
            p
        }
    })
}

/// Every run in the state directory, oldest first.
pub fn runs(state: &Path) -> Vec<RunSummary> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|d| read_run(d))
        .map(|mut r| {
            // A run without an end whose lock is held is not interrupted: it runs.
            if r.status == RunStatus::Interrupted && crate::lock::holder_of(&r.dir).is_some() {
                r.status = RunStatus::Running;
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Outcome, Step};

    const START: &str = r#"{"kind":"start","format":2,"run":"20261201T010000Z-p-aaaaaa-1","plan":"plan.yaml","plan_name":"p","digest":"d1","started":"2026-12-01T01:00:00.000Z","only":"n*"}"#;

    fn run_dir(lines: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("journal.jsonl"), lines.join("\n") + "\n").unwrap();
        d
    }

    fn ev(body: &str) -> String {
        format!(r#"{{"kind":"event","at":"2026-12-01T01:00:01.000Z",{body}}}"#)
    }

    /// A run's directory is one no other run has: a taken id is tried again with the
    /// next suffix, at most RETRIES times past the first; any other error at once.
    #[test]
    fn a_taken_run_id_is_tried_again_with_another_suffix_a_bounded_number_of_times() {
        let runs = tempfile::tempdir().unwrap();
        std::fs::create_dir(runs.path().join("r-aa")).unwrap();
        let mut given = ["aa", "bb"].into_iter();
        let (id, dir) =
            make_run_dir(runs.path(), "r", || given.next().unwrap().to_owned()).unwrap();
        assert_eq!((id.as_str(), dir), ("r-bb", runs.path().join("r-bb")));
        // Every suffix taken: the first try and RETRIES more, then the error.
        let mut asked = 0;
        let (e, dir) = make_run_dir(runs.path(), "r", || {
            asked += 1;
            "aa".to_owned()
        })
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!((asked, dir), (RETRIES + 1, runs.path().join("r-aa")));
        // Another error is not tried again.
        let mut asked = 0;
        let (e, _) = make_run_dir(&runs.path().join("missing"), "r", || {
            asked += 1;
            "cc".to_owned()
        })
        .unwrap_err();
        assert_eq!((e.kind(), asked), (std::io::ErrorKind::NotFound, 1));
    }

    /// Events serialise to exactly the lines format 2 has always held (written by hand
    /// before `Event` was serialised by serde): journals and streams read the same.
    #[test]
    fn events_serialise_to_the_format_2_lines() {
        use super::super::event::{Back, GateState, PlannedWave, Verdict};
        use serde_json::json;
        let v = |s: &str| Version::parse(s).unwrap();
        let step = |step| Event::Step {
            target: "n1".into(),
            step,
        };
        let cases: Vec<(Event, serde_json::Value)> = vec![
            (
                Event::WaveDone {
                    index: 1,
                    of: 2,
                    upgraded: 3,
                    failed: 0,
                },
                json!({"event": "wave-done", "index": 1, "of": 2, "upgraded": 3, "failed": 0}),
            ),
            (
                Event::Wave {
                    index: 1,
                    of: 2,
                    targets: vec!["n1".into()],
                },
                json!({"event": "wave", "index": 1, "of": 2, "targets": ["n1"]}),
            ),
            (
                Event::Note { detail: "d".into() },
                json!({"event": "note", "detail": "d"}),
            ),
            (
                Event::Schedule {
                    waves: vec![PlannedWave {
                        targets: vec!["n1".into()],
                        domain: None,
                        why: "size 1".into(),
                        budget: 0,
                    }],
                },
                json!({"event": "schedule", "waves": [{"targets": ["n1"], "why": "size 1", "budget": 0}]}),
            ),
            (
                Event::Gate {
                    after_wave: 1,
                    state: GateState::Approved { by: "ops@h".into() },
                },
                json!({"event": "gate", "after_wave": 1, "state": "approved", "by": "ops@h"}),
            ),
            (
                Event::Analysis {
                    wave: 1,
                    name: "e".into(),
                    verdict: Verdict::Inconclusive,
                    detail: "x".into(),
                },
                json!({"event": "analysis", "wave": 1, "name": "e", "verdict": "inconclusive", "detail": "x"}),
            ),
            (
                step(Step::Install {
                    from: None,
                    to: v("4.4.16"),
                }),
                json!({"event": "step", "target": "n1", "step": "install", "detail": "(fresh) → 4.4.16", "from": null, "to": "4.4.16"}),
            ),
            (
                step(Step::Upgrade {
                    app: "mall".into(),
                    from: Some(v("1.0.0")),
                    to: v("1.0.1"),
                }),
                json!({"event": "step", "target": "n1", "step": "upgrade", "detail": "mall 1.0.0 → 1.0.1", "app": "mall", "from": "1.0.0", "to": "1.0.1"}),
            ),
            (
                step(Step::Permanent {
                    version: v("4.4.16"),
                }),
                json!({"event": "step", "target": "n1", "step": "permanent", "detail": "4.4.16", "to": "4.4.16"}),
            ),
            (
                step(Step::RollBack(Back::All)),
                json!({"event": "step", "target": "n1", "step": "rollback", "detail": "rollback-all"}),
            ),
            (
                Event::Done(TargetResult {
                    target: "n1".into(),
                    from: Some("4.4.15".into()),
                    to: "4.4.16".into(),
                    outcome: Outcome::Upgraded,
                    detail: "ok".into(),
                    millis: 5,
                    attention: false,
                    code: None,
                    with_rest: false,
                }),
                json!({"event": "done", "target": "n1", "from": "4.4.15", "to": "4.4.16", "outcome": "upgraded", "detail": "ok", "millis": 5, "attention": false}),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(event_json(&e), Some(want), "{e:?}");
        }
        assert_eq!(
            event_json(&Event::Probe {
                target: "n1".into(),
                detail: "x".into()
            }),
            None
        );
    }

    #[test]
    fn a_killed_run_reads_back_with_what_it_began_and_what_it_finished() {
        let lines = [
            START.to_owned(),
            ev(r#""event":"step","step":"lock","target":"n1","detail":"n1""#),
            ev(
                r#""event":"step","step":"install","target":"n1","from":"4.4.15","to":"4.4.16","detail":"4.4.15 → 4.4.16""#,
            ),
            ev(
                r#""event":"step","step":"install","target":"n3","from":null,"to":"4.4.16","detail":"(fresh) → 4.4.16""#,
            ),
            ev(
                r#""event":"step","step":"upgrade","target":"shop","app":"mall","from":"1.0.0","to":"1.0.2","detail":"mall 1.0.0 → 1.0.2""#,
            ),
            ev(r#""event":"step","step":"health","target":"n2","detail":"checking""#),
            ev(
                r#""event":"done","target":"n2","from":"4.4.15","to":"4.4.16","outcome":"failed","detail":"x","millis":5"#,
            ),
            ev(
                r#""event":"done","target":"n2","from":"4.4.15","to":"4.4.16","outcome":"upgraded","detail":"y","millis":7"#,
            ),
            // A torn last line, as a kill leaves it.
            r#"{"kind":"event","at":"2026-12-01T01:00:02.000Z","event":"do"#.to_owned(),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let d = run_dir(&refs);
        let r = read_run(d.path()).unwrap();
        assert_eq!(r.run, "20261201T010000Z-p-aaaaaa-1");
        assert_eq!(r.only.as_deref(), Some("n*"));
        assert_eq!(r.status, RunStatus::Interrupted);
        assert!(r.resumable());
        assert_eq!(r.exit, None);
        // Only steps that begin a change count, with the release the node came from.
        let began: Vec<(String, Option<String>)> = r
            .began
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(Version::to_string)))
            .collect();
        assert_eq!(
            began,
            [
                ("n1".to_owned(), Some("4.4.15".to_owned())),
                ("n3".to_owned(), None),
                ("shop".to_owned(), None),
            ]
        );
        // A target's latest outcome replaces the earlier one.
        assert_eq!(r.targets.len(), 1);
        assert_eq!(r.targets[0].outcome, Outcome::Upgraded);
        assert_eq!(r.dir, d.path());
        assert_eq!(r.plan_copy(), None);
        std::fs::write(d.path().join("plan.toml"), "").unwrap();
        assert_eq!(r.plan_copy(), Some(d.path().join("plan.toml")));
    }

    #[test]
    fn an_ended_run_has_its_status_and_exit() {
        let end = r#"{"kind":"end","status":"needs-attention","exit":4,"finished":"2026-12-01T01:00:03.000Z"}"#;
        let d = run_dir(&[START, end]);
        let r = read_run(d.path()).unwrap();
        assert_eq!((r.status, r.exit), (RunStatus::NeedsAttention, Some(4)));
        assert!(!r.resumable());
        assert_eq!(digest_of_run(d.path()).as_deref(), Some("d1"));
        // No start line: no run.
        let d = run_dir(&[end]);
        assert!(read_run(d.path()).is_none());
        assert_eq!(digest_of_run(d.path()), None);
    }

    #[test]
    fn a_format_1_journal_tells_what_began_from_the_step_text() {
        let start = START.replace(r#""format":2,"#, "");
        let lines = [
            start,
            ev(r#""event":"step","step":"install","target":"n1","detail":"4.4.15 → 4.4.16""#),
            ev(r#""event":"step","step":"install","target":"n2","detail":"(fresh) → 4.4.16""#),
            ev(r#""event":"step","step":"upgrade","target":"shop","detail":"mall 1.0.0 → 1.0.2""#),
            ev(r#""event":"step","step":"store","target":"n4","detail":"a → b""#),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = read_run(run_dir(&refs).path()).unwrap();
        let began: Vec<(&str, Option<String>)> = r
            .began
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref().map(Version::to_string)))
            .collect();
        assert_eq!(
            began,
            [
                ("n1", Some("4.4.15".to_owned())),
                ("n2", None),
                ("shop", None)
            ]
        );
    }

    /// Issue 26, item 9: two runs of one plan started by one pid in the same second (as
    /// two containers whose fleetup is pid 1 would) get two ids, two directories and two
    /// journals, each run's lock taken as its directory is made.
    #[test]
    fn two_runs_started_at_once_never_share_an_id() {
        let state = tempfile::tempdir().unwrap();
        let make =
            || Journal::create(state.path(), Path::new("p.yaml"), "p", "plan: 1\n", None).unwrap();
        let (a, _a_owner) = make();
        let (b, _b_owner) = make();
        assert_ne!(a.id(), b.id());
        assert_ne!(a.dir, b.dir);
        for j in [&a, &b] {
            let text = std::fs::read_to_string(j.dir.join("journal.jsonl")).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains(&j.id()), "{text}");
            // Its lock is held: another fleetup cannot take the run up meanwhile.
            assert!(lock_run(&j.dir, &j.id()).is_err());
        }
    }

    #[test]
    fn a_journal_written_by_a_run_reads_back_as_that_run() {
        let state = tempfile::tempdir().unwrap();
        let (j, _owner) = Journal::create(
            state.path(),
            Path::new("plans/p.toml"),
            "emqx-4.4 patch/1 é",
            "plan = 1\n",
            Some("n1,n2"),
        )
        .unwrap();
        let id = j.id();
        // <stamp>-<safe name>-<digest>-<random>: a name that is safe as a file name.
        assert!(id.contains("-emqx-4.4_patch_1__-"), "{id}");
        assert_eq!(j.dir, state.path().join("runs").join(&id));
        assert_eq!(
            std::fs::read_to_string(j.dir.join("plan.toml")).unwrap(),
            "plan = 1\n"
        );
        let ver = |s: &str| Version::parse(s).unwrap();
        let step = |target: &str, step: Step| Event::Step {
            target: target.into(),
            step,
        };
        j.event(&step(
            "n1",
            Step::Install {
                from: Some(ver("4.4.15")),
                to: ver("4.4.16"),
            },
        ));
        j.event(&step(
            "n2",
            Step::Install {
                from: None,
                to: ver("4.4.16"),
            },
        ));
        j.event(&step(
            "shop",
            Step::Upgrade {
                app: "mall".into(),
                from: Some(ver("1.0.0")),
                to: ver("1.0.2"),
            },
        ));
        j.event(&step(
            "n1",
            Step::Permanent {
                version: ver("4.4.16"),
            },
        ));
        j.event(&step("n3", Step::AlreadyCurrent { to: ver("4.4.16") }));
        let text = std::fs::read_to_string(j.dir.join("journal.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0]["format"], FORMAT);
        assert_eq!(lines[0]["only"], "n1,n2");
        assert_eq!(lines[0]["plan"], "plans/p.toml");
        // Times as the journal writes them: 2026-12-01T01:00:00.000Z.
        let started = lines[0]["started"].as_str().unwrap();
        assert!(
            started.parse::<jiff::Timestamp>().is_ok() && started.ends_with('Z'),
            "{started}"
        );
        assert!(
            lines[1]["at"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        assert_eq!(
            (&lines[1]["from"], &lines[1]["to"]),
            (&serde_json::json!("4.4.15"), &serde_json::json!("4.4.16"))
        );
        assert!(lines[2]["from"].is_null() && lines[2].get("from").is_some());
        assert_eq!(
            (&lines[3]["app"], &lines[3]["from"]),
            (&serde_json::json!("mall"), &serde_json::json!("1.0.0"))
        );
        assert_eq!(lines[4]["to"], "4.4.16");
        assert!(
            lines[4].get("from").is_none(),
            "only a change's first step has `from`"
        );
        assert_eq!(lines[5]["to"], "4.4.16");
        let r = read_run(&j.dir).unwrap();
        assert_eq!(
            (r.run.as_str(), r.only.as_deref()),
            (id.as_str(), Some("n1,n2"))
        );
        assert_eq!(r.began.len(), 3);
        j.finish(RunStatus::Succeeded, 0);
        let r = read_run(&j.dir).unwrap();
        assert_eq!((r.status, r.exit), (RunStatus::Succeeded, Some(0)));
    }

    /// What `resume` goes on from reads back from the journal: the schedule, each
    /// gate's state (and which were waited), each analysis's verdict; each from its own
    /// event only.
    #[test]
    fn a_run_reads_back_its_schedule_gates_and_analyses() {
        use super::super::event::{GateState, PlannedWave, Verdict};
        let state = tempfile::tempdir().unwrap();
        let (j, _owner) =
            Journal::create(state.path(), Path::new("p.yaml"), "p", "plan: 1\n", None).unwrap();
        let waves = vec![
            PlannedWave {
                targets: vec!["n1".into()],
                domain: None,
                why: "size 1".into(),
                budget: 0,
            },
            PlannedWave {
                targets: vec!["n2".into(), "n3".into()],
                domain: Some("a".into()),
                why: "size 2".into(),
                budget: 1,
            },
        ];
        j.event(&Event::Schedule {
            waves: waves.clone(),
        });
        j.event(&Event::Gate {
            after_wave: 1,
            state: GateState::Approved { by: "ops@h".into() },
        });
        j.event(&Event::Gate {
            after_wave: 2,
            state: GateState::Waited { secs: 5 },
        });
        j.event(&Event::Analysis {
            wave: 1,
            name: "errors".into(),
            verdict: Verdict::Failed,
            detail: "x".into(),
        });
        j.event(&Event::Note { detail: "n".into() });
        let r = read_run(&j.dir).unwrap();
        assert_eq!(r.schedule, Some(waves));
        assert_eq!(
            r.gates.into_iter().collect::<Vec<_>>(),
            [
                (1, GateState::Approved { by: "ops@h".into() }),
                (2, GateState::Waited { secs: 5 })
            ]
        );
        assert_eq!(r.waited.into_iter().collect::<Vec<_>>(), [2]);
        assert_eq!(
            r.analyses.into_iter().collect::<Vec<_>>(),
            [((1, "errors".to_owned()), Verdict::Failed)]
        );
    }

    #[test]
    fn a_run_has_one_owner_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let held = lock_run(d.path(), "r1").unwrap();
        let e = lock_run(d.path(), "r1").unwrap_err();
        assert_eq!(e.code, Code::Locked);
        assert!(
            e.help_text().contains("working on this run now"),
            "{}",
            e.help_text()
        );
        drop(held);
        assert!(lock_run(d.path(), "r1").is_ok());
    }

    #[test]
    fn the_state_directory_comes_from_the_flag_the_plan_or_the_environment() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(state_dir(Some(&p("/a")), Some(&p("/b"))).unwrap(), p("/a"));
        assert_eq!(state_dir(None, Some(&p("/b"))).unwrap(), p("/b"));
    }

    #[test]
    fn a_run_is_named_by_its_id_or_a_unique_prefix() {
        let summary = |id: &str| RunSummary {
            run: id.to_owned(),
            plan: String::new(),
            plan_name: String::new(),
            started: String::new(),
            status: RunStatus::Succeeded,
            exit: Some(0),
            only: None,
            plan_file: None,
            targets: Vec::new(),
            began: Default::default(),
            schedule: None,
            gates: Default::default(),
            waited: Default::default(),
            analyses: Default::default(),
            dir: PathBuf::new(),
        };
        let runs = [
            summary("20261201T01-a"),
            summary("20261201T01-ab"),
            summary("20261202-c"),
        ];
        let state = Path::new("/state");
        assert_eq!(lookup(&runs, "20261201T01-a", state).unwrap(), 0);
        assert_eq!(lookup(&runs, "20261202", state).unwrap(), 2);
        assert_eq!(lookup(&runs, "20261201T01-ab", state).unwrap(), 1);
        assert_eq!(
            lookup(&runs, "2026120", state).unwrap_err().code,
            Code::Usage
        );
        assert_eq!(lookup(&runs, "", state).unwrap_err().code, Code::Usage);
        assert!(lookup(&runs, "nope", state).is_err());
        // `last` is the newest run (runs are listed oldest first), none without runs.
        assert_eq!(lookup(&runs, "last", state).unwrap(), 2);
        let none = lookup(&[], "last", state).unwrap_err();
        assert_eq!(none.code, Code::Usage);
        assert!(none.message.contains("no run"), "{}", none.message);
    }
}
