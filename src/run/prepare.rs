//! A plan made ready to run, with nothing changed: loaded and validated, checked against
//! the world it names (remote stores read over SSH, in parallel, one session per host),
//! scheduled into waves once, and previewed for the dry run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::exec::Refusal;
use super::journal::RunSummary;
use super::preview::Preview;
use crate::diagnostics::{Code, Exit, Failure, Problem, Severity, SourceFile};
use crate::plan::schedule::{self, Schedule};
use crate::plan::{Plan, PreflightScope};
use crate::preflight::{self, Preflight};
use crate::remote::{Hosts, SshSettings};

/// A plan ready to run.
pub struct Prepared {
    pub plan: Plan,
    pub preflight: Preflight,
    pub schedule: Schedule,
    /// The `--only` selection.
    pub only: Option<String>,
    /// Connections made to read remote stores, reused by the run.
    pub hosts: Option<Arc<Hosts>>,
    /// Remote stores another fleetup holds now (read for a run only).
    pub held: Vec<Problem>,
    /// Warnings found on the way (errors make a [`Failure`] instead).
    pub warnings: Vec<Problem>,
    pub file: Option<SourceFile>,
}

impl Prepared {
    /// The package files the plan's nodes need: each node's own, else (its store unread)
    /// every package of its target version.
    pub fn packages_needed(&self) -> Vec<String> {
        let (p, plan) = (self, &self.plan);
        let listing: Vec<crate::package::PackageName> = match &p.preflight.mirror {
            Some(m) => m.repository(&plan.product, &plan.runtime).packages,
            None => plan
                .repository
                .as_ref()
                .and_then(|r| {
                    crate::package::Repository::scan(&r.value, &plan.product, &plan.runtime).ok()
                })
                .map(|r| r.packages)
                .unwrap_or_default(),
        };
        let mut out: Vec<String> = Vec::new();
        for (i, n) in plan.nodes.iter().enumerate() {
            let files: Vec<String> = match p.preflight.nodes.get(i).and_then(|f| f.package.as_ref())
            {
                Some(pkg) => vec![pkg.file.clone()],
                None => listing
                    .iter()
                    .filter(|k| k.version == n.to.value)
                    .map(|k| k.file.clone())
                    .collect(),
            };
            for f in files {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// The dry run: each wave's targets as they stand.
    pub fn preview(&self) -> Vec<Vec<Preview>> {
        let targets = super::kinds::of_plan(&self.plan);
        self.schedule
            .waves
            .iter()
            .map(|w| {
                w.iter()
                    .map(|&t| targets[t].preview(&self.preflight))
                    .collect()
            })
            .collect()
    }
}

/// How a plan's SSH connections are made.
pub fn ssh_settings(plan: &Plan) -> SshSettings {
    SshSettings::of_plan(plan)
}

/// Connections for the targets among `targets` reached over SSH, if there are any.
pub fn hosts_for(
    plan: &Plan,
    mut targets: impl Iterator<Item = usize>,
) -> Result<Option<Arc<Hosts>>, Problem> {
    let kinds = super::kinds::of_plan(plan);
    let remote = targets.any(|t| kinds[t].over_ssh().is_some());
    if !remote {
        return Ok(None);
    }
    Hosts::new(ssh_settings(plan)).map(|h| Some(Arc::new(h)))
}

/// Loads, validates, preflights and schedules a plan. The schedule is built once, here.
/// For a dry run (`run` false) every remote store is read; for a run, every one with
/// `rollout.preflight: all` (and which of them another fleetup holds), none with `wave`:
/// each wave's are read right before it.
pub fn prepare(path: &Path, only: Option<&str>, run: bool) -> Result<Prepared, Failure> {
    let loaded = crate::plan::load(path);
    let mut problems = loaded.problems;
    let file = loaded.file;
    let Some(plan) = loaded.plan else {
        return Err(Failure {
            problems,
            file,
            exit: Exit::Invalid,
        });
    };
    // Selected first; cut into waves once the stores are read, from the targets that
    // will change.
    let schedule = schedule::select(&plan, only);
    let mut hosts = None;
    let mut held = Vec::new();
    let read_now = !run || plan.rollout.preflight == PreflightScope::All;
    let pf = match &schedule {
        Ok(s) if plan.nodes.iter().any(|n| n.ssh.is_some()) => {
            match Hosts::new(ssh_settings(&plan)) {
                Ok(h) => {
                    let h = Arc::new(h);
                    let live = if read_now {
                        let nodes: Vec<usize> = s
                            .iter()
                            .filter_map(|&t| plan.node_of(t).map(|(i, _)| i))
                            .collect();
                        let (live, locks) = read_remote(&plan, &h, &nodes, run);
                        held = locks.into_iter().map(|h| h.problem).collect();
                        live
                    } else {
                        Vec::new()
                    };
                    hosts = Some(h);
                    preflight::run_with(&plan, &live)
                }
                Err(_) => preflight::run_with(&plan, &[]),
            }
        }
        _ => preflight::run_with(&plan, &[]),
    };
    problems.extend(pf.problems.iter().cloned());
    problems.sort_by_key(|p| p.span.map_or(usize::MAX, |s| s.start));
    if problems.iter().any(|p| p.severity == Severity::Error) {
        // A pin that does not match is a refusal to start (5), anything else invalid input.
        let refused = problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .all(|p| p.code == Code::FromMismatch);
        return Err(Failure {
            problems,
            file,
            exit: if refused {
                Exit::Refused
            } else {
                Exit::Invalid
            },
        });
    }
    let settled = |t: usize| match plan.node_of(t) {
        Some((i, n)) => {
            plan.rollout.permanent
                && pf.nodes[i]
                    .running
                    .as_ref()
                    .is_some_and(|r| r.version == n.to.value)
        }
        None => false,
    };
    if run && let (Some(m), Ok(targets)) = (&pf.mirror, &schedule) {
        fetch(&plan, m, &pf, targets.iter().copied()).map_err(|p| Failure {
            // A stopped download is a stop (exit 6); anything else, invalid input.
            exit: if p.code == Code::RunStopped {
                p.code.exit()
            } else {
                Exit::Invalid
            },
            problems: vec![p],
            file: file.clone(),
        })?;
    }
    let schedule = schedule
        .and_then(|_| schedule::build_with(&plan, only, &settled))
        .map_err(|p| Failure {
            problems: problems.iter().cloned().chain([p]).collect(),
            file: file.clone(),
            exit: Exit::Usage,
        })?;
    Ok(Prepared {
        plan,
        preflight: pf,
        schedule,
        only: only.map(str::to_owned),
        hosts,
        held,
        warnings: problems,
        file,
    })
}

/// Downloads from the plan's mirror, once each and before any node changes, the
/// packages `targets` need (with their signatures under `trust`): a node's own package
/// where the preflight found it, else every package of its version (its store decides).
pub fn fetch(
    plan: &Plan,
    mirror: &crate::mirror::Mirror,
    pf: &Preflight,
    targets: impl Iterator<Item = usize>,
) -> Result<(), Problem> {
    let mut files: Vec<String> = Vec::new();
    let repo = mirror.repository(&plan.product, &plan.runtime);
    for t in targets {
        let Some((i, node)) = plan.node_of(t) else {
            continue;
        };
        // A remote host downloads its own, unless the controller relays.
        if node.ssh.is_some() && !plan.via_controller {
            continue;
        }
        let found = pf.nodes.get(i).and_then(|f| f.package.as_ref());
        // Already there: nothing to download for it.
        if pf
            .nodes
            .get(i)
            .and_then(|f| f.running.as_ref())
            .is_some_and(|r| r.version == node.to.value)
        {
            continue;
        }
        let wanted: Vec<String> = match found {
            Some(p) => vec![p.file.clone()],
            None => repo
                .packages
                .iter()
                .filter(|p| p.version == node.to.value)
                .map(|p| p.file.clone())
                .collect(),
        };
        for f in wanted {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    for f in files {
        let at = |p: Problem| match &plan.mirror {
            Some(u) => p.at(u.span).label("from this mirror"),
            None => p,
        };
        let stop = super::stop::requested;
        let path = mirror.fetch(&f, plan.trust.is_some(), &stop).map_err(|e| {
            // A stop asked for meanwhile is why, whatever the download said.
            let code = if stop() { Code::RunStopped } else { e.code() };
            at(Problem::new(code, e.why().to_owned()))
        })?;
        // Verified here too: a run whose package does not verify never starts.
        if let Some(t) = &plan.trust {
            t.value.verify(&path, None).map_err(at)?;
        }
    }
    Ok(())
}

/// The stores of remote nodes `nodes`, read by their hosts' agents, changing nothing:
/// each node's state (indexed like the plan's nodes) and, with `locks`, the holds other
/// fleetups have on them. One request per host reads all of its nodes; hosts are read
/// in parallel, at most `max(max_parallel, 10)` at once and never more than the
/// connection cap. The hosts the run reaches first are read last, so that with more hosts
/// than connections, theirs are the ones still open when the run starts.
/// A remote node's store that another fleetup holds, as its host's agent found it.
pub struct Held {
    /// The node, as an index into the plan's nodes.
    pub node: usize,
    /// Who holds the lock, as the lock file says (`run r1 of pid 42 on web-1`).
    pub holder: String,
    /// The refusal to start that says so.
    pub problem: Problem,
}

pub fn read_remote(
    plan: &Plan,
    hosts: &Arc<Hosts>,
    nodes: &[usize],
    locks: bool,
) -> (Vec<preflight::RemoteState>, Vec<Held>) {
    let mut order: Vec<String> = Vec::new();
    let mut by_host: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for &i in nodes {
        if let Some(a) = &plan.nodes[i].ssh {
            let key = crate::remote::ssh::describe(&a.value);
            let e = by_host.entry(key.clone()).or_default();
            if e.is_empty() {
                order.push(key);
            }
            e.push(i);
        }
    }
    order.reverse();
    let workers = plan
        .rollout
        .max_parallel
        .max(10)
        .min(plan.rollout.max_connections)
        .min(order.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let found: std::sync::Mutex<Vec<(usize, preflight::RemoteState, Option<Held>)>> =
        Default::default();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(key) = order.get(k) else { break };
                    let idx = &by_host[key];
                    let Some(addr) = plan.nodes[idx[0]].ssh.as_ref().map(|a| &a.value) else {
                        continue;
                    };
                    let roots: Vec<String> = idx
                        .iter()
                        .map(|&i| plan.nodes[i].root.value.display().to_string())
                        .collect();
                    let read = hosts.read(addr, &roots, locks);
                    let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
                    for (&i, (state, who)) in idx.iter().zip(read) {
                        let n = &plan.nodes[i];
                        let held = who.map(|who| Held {
                            node: i,
                            problem: Problem::new(
                                Code::Locked,
                                format!(
                                    "the store of node `{}` ({key}:{}) is locked: {who}",
                                    n.name.value,
                                    n.root.value.display()
                                ),
                            )
                            .help(
                                "wait for that run to finish, or pass --wait-for-lock DURATION \
                                 to wait for it",
                            ),
                            holder: who,
                        });
                        f.push((i, Some(state), held));
                    }
                }
            });
        }
    });
    let mut out: Vec<preflight::RemoteState> = plan.nodes.iter().map(|_| None).collect();
    let mut held = Vec::new();
    for (i, state, h) in found.into_inner().unwrap_or_else(|e| e.into_inner()) {
        out[i] = state;
        if let Some(h) = h {
            held.push(h);
        }
    }
    held.sort_by_key(|h| h.node);
    (out, held)
}

/// The remote nodes among `targets`, as indexes into the plan's nodes.
pub fn remote_nodes(plan: &Plan, targets: &[usize]) -> Vec<usize> {
    targets
        .iter()
        .filter_map(|&t| match plan.node_of(t) {
            Some((i, n)) if n.ssh.is_some() => Some(i),
            _ => None,
        })
        .collect()
}

/// The preflight of one wave (`rollout.preflight: wave`): its remote nodes read, with
/// their locks, by their hosts' agents, over the connections the wave then works on, and
/// checked as `apply` checks every node before a run with `preflight: all`.
pub fn wave_preflight(plan: &Plan, hosts: &Arc<Hosts>, wave: &[usize]) -> Vec<Refusal> {
    let nodes = remote_nodes(plan, wave);
    if nodes.is_empty() {
        return Vec::new();
    }
    let (live, held) = read_remote(plan, hosts, &nodes, true);
    let mut out: Vec<Refusal> = held
        .into_iter()
        .map(|h| Refusal {
            target: plan.target_of_node(h.node),
            problem: h.problem,
        })
        .collect();
    for (i, problems) in preflight::check_nodes(plan, &live, &nodes) {
        if out.iter().any(|r| r.target == plan.target_of_node(i)) {
            continue;
        }
        if let Some(p) = problems.into_iter().find(|p| p.severity == Severity::Error) {
            out.push(Refusal {
                target: plan.target_of_node(i),
                problem: p,
            });
        }
    }
    out
}

/// The plan a run applied, from the copy in its journal, with paths resolved against
/// where the original plan was (never against the current directory).
pub fn run_plan(run: &RunSummary) -> Result<Plan, Failure> {
    let (copy, text) = plan_copy_text(run)?;
    let original = plan_location(run, &copy, &text)?;
    let dir = original.parent().unwrap_or(Path::new("/"));
    let format = crate::plan::Format::from_path(&copy).unwrap_or(crate::plan::Format::Yaml);
    let loaded = crate::plan::load_text(SourceFile::new(run.plan.clone(), text), format, dir);
    if loaded.has_errors() {
        return Err(Failure {
            problems: loaded.problems,
            file: loaded.file,
            exit: Exit::Invalid,
        });
    }
    loaded.plan.ok_or(Failure {
        problems: Vec::new(),
        file: None,
        exit: Exit::Invalid,
    })
}

/// The copy of the plan a run keeps in its directory, and its text.
fn plan_copy_text(run: &RunSummary) -> Result<(PathBuf, String), Problem> {
    let Some(copy) = run.plan_copy() else {
        return Err(Problem::new(
            Code::Io,
            format!("run {} has no copy of its plan", run.run),
        ));
    };
    let text = std::fs::read_to_string(&copy)
        .map_err(|e| Problem::new(Code::Io, format!("cannot read {}: {e}", copy.display())))?;
    Ok((copy, text))
}

/// The absolute path of the plan file run `run` was started from. Recorded by the run
/// itself; for a journal that recorded the path only as typed (relative), worked out
/// from the state directory the run lives in and the plan's own relative `state:`
/// (`state: ./state` and a run in /srv/fleet/state/runs/ID: the plan was in
/// /srv/fleet). Anything else is refused: the current directory is never a guess.
pub fn plan_location(run: &RunSummary, copy: &Path, text: &str) -> Result<PathBuf, Problem> {
    if let Some(p) = &run.plan_file {
        return Ok(p.clone());
    }
    let typed = Path::new(&run.plan);
    if typed.is_absolute() {
        return Ok(typed.to_owned());
    }
    let refuse = |why: &str| {
        Problem::new(
            Code::Usage,
            format!(
                "run {} recorded its plan only as `{}`, relative to a directory it did not record, and {why}",
                run.run, run.plan
            ),
        )
        .help(
            "journals of fleetup 0.2 and earlier record no plan location; so that no relative `root`, `repository` or `state` is resolved against the wrong directory, this run cannot be taken up: `fleetup abort RUN` ends it, and a new `fleetup apply` of the plan starts from the stores' real state",
        )
    };
    // The plan's `state` as written: loaded against an empty directory, relative stays relative.
    let format = crate::plan::Format::from_path(copy).unwrap_or(crate::plan::Format::Yaml);
    let loaded = crate::plan::load_text(
        SourceFile::new(run.plan.clone(), text.to_owned()),
        format,
        Path::new(""),
    );
    let written = loaded.plan.and_then(|p| p.state);
    let Some(written) = written.filter(|s| s.is_relative()) else {
        return Err(refuse(
            "its plan names no relative `state:` to tell that directory from",
        ));
    };
    // runs/ID under the state directory, as the run found it.
    let state = run
        .dir
        .parent()
        .and_then(Path::parent)
        .and_then(|s| std::fs::canonicalize(s).ok())
        .ok_or_else(|| refuse("its state directory cannot be read"))?;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in written.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::Normal(n) => parts.push(n),
            _ => return Err(refuse("its plan's `state:` climbs out of its directory")),
        }
    }
    let mut origin = state.as_path();
    for n in parts.iter().rev() {
        if origin.file_name() != Some(n) {
            return Err(refuse(&format!(
                "its state directory {} does not end in the plan's `state: {}`",
                state.display(),
                written.display()
            )));
        }
        origin = origin.parent().unwrap_or(Path::new("/"));
    }
    Ok(origin.join(typed))
}

/// The plan file run `run` was started from, as it is now (`resume --current-window`).
pub fn plan_file_now(run: &RunSummary) -> Result<PathBuf, Problem> {
    let (copy, text) = plan_copy_text(run)?;
    plan_location(run, &copy, &text)
}
