//! Executing a schedule: waves one after another, targets of a wave in parallel on a
//! rayon pool sized to `max_parallel`, each target as one locked sequence (open, change,
//! check, commit; undo what fails), failures counted across the run and handled as
//! `on_failure` says. Also `rollback RUN`: every target a run upgraded put back.
//!
//! This file drives [`Target`]s and never asks which kind it has. Workers only send
//! [`Event`]s; what reaches the terminal or the journal is decided by the consumers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semver::Version;

use super::event::{Back, Event, Outcome, Step, TargetResult};
use super::target::{ChangeError, Cx, Target};
use crate::diagnostics::{Code, Problem};
use crate::plan::{Amount, OnFailure, Plan};
use crate::remote::Hosts;
use crate::schedule::{Schedule, TargetId};

/// What an interrupted attempt of a run left behind; empty for a new run.
#[derive(Default)]
pub struct Earlier {
    /// Targets it finished: not run again.
    pub finished: BTreeMap<String, TargetResult>,
    /// Targets it began changing, with the release a node came from. One found already
    /// on its target was upgraded by this run (killed before it could say so), not
    /// unchanged.
    pub began: BTreeMap<String, Option<Version>>,
}

/// Why a target of a wave may not start, as the wave's preflight found it.
pub struct Refusal {
    pub target: TargetId,
    pub problem: Problem,
}

/// The preflight of one wave (`rollout.preflight: wave`): the targets among these that
/// may not start, read and checked right before the wave.
pub type WaveCheck<'a> = &'a (dyn Fn(&[TargetId]) -> Vec<Refusal> + Sync);

/// How the wave loop ended.
pub struct RunEnd {
    pub results: Vec<TargetResult>,
    /// The maintenance window closed: targets not started wait for `resume`.
    pub paused: bool,
    /// SIGINT or SIGTERM: targets not started wait for `resume`.
    pub stopped: bool,
}

/// One run (or one `rollback RUN`) in progress.
pub struct Exec<'a> {
    plan: &'a Plan,
    targets: Vec<Box<dyn Target + 'a>>,
    run_id: &'a str,
    lock_wait: Duration,
    hosts: Option<Arc<Hosts>>,
    emit: &'a (dyn Fn(Event) + Sync),
    earlier: Earlier,
    failures: AtomicUsize,
    allowed: usize,
    stop: AtomicBool,
    /// Targets this run upgraded (indexes into `targets`), in completion order, with
    /// the release they came from.
    upgraded: Mutex<Vec<(usize, Option<Version>)>>,
    /// A target was found locked by another fleetup: left unexamined for `resume`.
    left_locked: AtomicBool,
    /// Each wave's preflight, when the plan reads stores wave by wave.
    wave_check: Option<WaveCheck<'a>>,
}

fn allowed_failures(a: Amount, total: usize) -> usize {
    match a {
        Amount::Count(c) => c as usize,
        Amount::Percent(p) => (p * total as f64 / 100.0).floor() as usize,
    }
}

impl<'a> Exec<'a> {
    pub fn new(
        plan: &'a Plan,
        run_id: &'a str,
        lock_wait: Duration,
        hosts: Option<Arc<Hosts>>,
        emit: &'a (dyn Fn(Event) + Sync),
    ) -> Exec<'a> {
        Exec {
            plan,
            targets: super::kinds::of_plan(plan),
            run_id,
            lock_wait,
            hosts,
            emit,
            earlier: Earlier::default(),
            failures: AtomicUsize::new(0),
            allowed: 0,
            stop: AtomicBool::new(false),
            upgraded: Mutex::new(Vec::new()),
            left_locked: AtomicBool::new(false),
            wave_check: None,
        }
    }

    /// Checks each wave with `check` right before it starts.
    pub fn check_waves(mut self, check: WaveCheck<'a>) -> Self {
        self.wave_check = Some(check);
        self
    }

    /// A wave whose preflight refused some of its targets does not start: those fail
    /// with the reason (a store another fleetup holds is left for `resume`, as at its
    /// turn), the others are not started, and the run stops.
    fn refuse_wave(
        &self,
        index: usize,
        wave: &[TargetId],
        refusals: &[Refusal],
    ) -> Vec<TargetResult> {
        let plan = self.plan;
        let mut out = Vec::new();
        for t in wave {
            let i = t.index(plan);
            let target = &self.targets[i];
            if self.earlier.finished.contains_key(target.name()) {
                out.push(self.target(i));
                continue;
            }
            let mut r = TargetResult {
                target: target.name().to_owned(),
                from: None,
                to: target.to(),
                outcome: Outcome::Skipped,
                detail: format!(
                    "not started: the preflight of wave {} refused other targets of it",
                    index + 1
                ),
                millis: 0,
                attention: false,
                code: None,
            };
            if let Some(x) = refusals.iter().find(|x| x.target == *t) {
                r.code = Some(x.problem.code.as_str().to_owned());
                if x.problem.code == Code::Locked {
                    self.left_locked.store(true, Ordering::SeqCst);
                    r.detail = format!(
                        "not examined: {}; `fleetup resume` tries it again",
                        x.problem.message
                    );
                } else {
                    r.outcome = Outcome::Failed;
                    r.detail = format!("preflight of wave {}: {}", index + 1, x.problem.message);
                    r = self.failed(r);
                }
            }
            self.done(&r);
            out.push(r);
        }
        self.stop.store(true, Ordering::SeqCst);
        out
    }

    fn cx(&self) -> Cx<'_> {
        Cx {
            plan: self.plan,
            run_id: self.run_id,
            lock_wait: self.lock_wait,
            hosts: self.hosts.as_ref(),
            emit: self.emit,
        }
    }

    fn step(&self, target: &str, step: Step) {
        self.cx().step(target, step);
    }

    fn done(&self, r: &TargetResult) {
        (self.emit)(Event::Done(r.clone()));
    }

    /// Remembers that this run upgraded target `i` (from `from`), for `rollback-all`.
    fn record_upgraded(&self, i: usize, from: Option<Version>) {
        if let Ok(mut u) = self.upgraded.lock() {
            u.push((i, from));
        }
    }

    fn failed(&self, r: TargetResult) -> TargetResult {
        let n = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if n > self.allowed {
            self.stop.store(true, Ordering::SeqCst);
        }
        r
    }

    /// Target `i`'s turn: its earlier result on resume, else its upgrade.
    fn target(&self, i: usize) -> TargetResult {
        let t = &*self.targets[i];
        if let Some(r) = self.earlier.finished.get(t.name()) {
            if r.outcome == Outcome::Upgraded {
                let from = r.from.as_deref().and_then(|v| Version::parse(v).ok());
                self.record_upgraded(i, from);
            }
            return r.clone();
        }
        let r = self.upgrade(i, t);
        self.done(&r);
        r
    }

    /// One target's upgrade: open (lock), change, check, commit; what fails is undone
    /// or left as `on_failure` says.
    fn upgrade(&self, i: usize, t: &dyn Target) -> TargetResult {
        let started = Instant::now();
        let to = t.to();
        let done = |from: Option<&Version>, outcome, detail: String, attention| TargetResult {
            target: t.name().to_owned(),
            from: from.map(Version::to_string),
            to: to.clone(),
            outcome,
            detail,
            millis: started.elapsed().as_millis() as u64,
            attention,
            code: None,
        };
        // A result that failed keeps the code of the problem that says why.
        let with = |mut r: TargetResult, p: &Problem| {
            r.code = Some(p.code.as_str().to_owned());
            r
        };
        if self.stop.load(Ordering::SeqCst) {
            return done(
                None,
                Outcome::Skipped,
                "not started: the run's failures exceeded max_failures".into(),
                false,
            );
        }
        if super::stop::requested() {
            return done(
                None,
                Outcome::Skipped,
                "not started: the run was stopped (SIGINT/SIGTERM); `fleetup resume` continues"
                    .into(),
                false,
            );
        }
        let cx = self.cx();
        let (mut change, standing) = match t.open(&cx) {
            Ok(x) => x,
            // Another fleetup holds it: not looked at, so neither failed nor done; the run
            // ends waiting for `resume`, which tries it again.
            Err(p) if p.code == Code::Locked => {
                self.left_locked.store(true, Ordering::SeqCst);
                let detail = format!(
                    "not examined: {}; `fleetup resume` tries it again",
                    p.message
                );
                return with(done(None, Outcome::Skipped, detail, false), &p);
            }
            Err(p) => {
                return self.failed(with(
                    done(None, Outcome::Failed, p.message.clone(), false),
                    &p,
                ));
            }
        };
        let from = standing.from.as_ref();
        if let Some(already) = standing.reached {
            if let Some(came_from) = self.earlier.began.get(t.name()) {
                // The earlier attempt got this far and was stopped before it could say so.
                self.record_upgraded(i, came_from.clone());
                return done(
                    came_from.as_ref(),
                    Outcome::Upgraded,
                    format!("{to} was reached before the run was interrupted"),
                    false,
                );
            }
            return done(from, Outcome::Unchanged, already, false);
        }
        let unhealthy = match change.change() {
            Ok(()) => change.check().err(),
            Err(ChangeError::Undone(p)) => {
                let r = done(from, Outcome::RolledBack, p.message.clone(), false);
                return self.failed(with(r, &p));
            }
            Err(ChangeError::Failed { problem, attention }) => {
                let r = done(from, Outcome::Failed, problem.message.clone(), attention);
                return self.failed(with(r, &problem));
            }
            Err(ChangeError::Unhealthy(p)) => Some(p),
        };
        if let Some(p) = unhealthy {
            let what = &p.message;
            if self.plan.rollout.on_failure == OnFailure::Stop {
                let detail = format!("{what}; left as it is (on_failure: stop)");
                return self.failed(with(done(from, Outcome::Failed, detail, false), &p));
            }
            self.step(t.name(), Step::RollBack(t.back(from)));
            return match change.undo() {
                Ok(note) => {
                    let r = done(from, Outcome::RolledBack, format!("{what}{note}"), false);
                    self.failed(with(r, &p))
                }
                Err(e) => {
                    let detail = format!("{what}; rollback failed: {}", e.message);
                    self.failed(with(done(from, Outcome::Failed, detail, true), &e))
                }
            };
        }
        match change.commit() {
            Ok(detail) => {
                self.record_upgraded(i, standing.from.clone());
                done(from, Outcome::Upgraded, detail, false)
            }
            Err(p) => {
                let r = done(from, Outcome::Failed, p.message.clone(), true);
                self.failed(with(r, &p))
            }
        }
    }

    /// `rollback-all`: every target this run upgraded goes back, newest first.
    fn roll_back_all(&self, results: &mut [TargetResult]) {
        let upgraded = self.upgraded.lock().map(|u| u.clone()).unwrap_or_default();
        let cx = self.cx();
        for (i, from) in upgraded.into_iter().rev() {
            let t = &*self.targets[i];
            let Some(r) = results.iter_mut().find(|r| r.target == t.name()) else {
                continue;
            };
            self.step(t.name(), Step::RollBack(Back::All));
            match t.roll_back(&cx, from.as_ref()) {
                Ok(_) => {
                    r.outcome = Outcome::RolledBack;
                    r.detail =
                        "rolled back with the rest of the run (on_failure: rollback-all)".into();
                }
                Err(e) => {
                    r.outcome = Outcome::Failed;
                    r.detail = format!("rollback-all failed: {}", e.message);
                    r.attention = true;
                    r.code = Some(e.code.as_str().to_owned());
                }
            }
            self.done(r);
        }
    }

    /// Runs every wave of `schedule` and returns each target's result, in schedule order.
    pub fn execute(mut self, schedule: &Schedule, earlier: Earlier) -> Result<RunEnd, Problem> {
        let plan = self.plan;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.rollout.max_parallel.min(schedule.len().max(1)))
            .build()
            .map_err(|e| Problem::new(Code::Io, format!("cannot start the worker pool: {e}")))?;
        // On resume, what already failed counts against max_failures as before.
        let failed_before = earlier
            .finished
            .values()
            .filter(|r| r.outcome.is_failure())
            .count();
        self.failures = AtomicUsize::new(failed_before);
        self.allowed = allowed_failures(plan.rollout.max_failures, schedule.len());
        self.earlier = earlier;
        let run = self;
        // A host lets go of its connection when its last node's turn has ended.
        if let Some(h) = &run.hosts {
            h.expect(schedule.targets().filter_map(|t| match t {
                TargetId::Node(i) if !run.earlier.finished.contains_key(t.name(plan)) => {
                    plan.nodes[i].ssh.as_ref().map(|a| &a.value)
                }
                _ => None,
            }));
        }
        let name = |t: &crate::schedule::TargetId| t.name(plan);
        let mut results = Vec::with_capacity(schedule.len());
        let of = schedule.waves.len();
        let mut paused = false;
        for (index, wave) in schedule.waves.iter().enumerate() {
            let all_finished = wave
                .iter()
                .all(|t| run.earlier.finished.contains_key(name(t)));
            // The pause comes before the window check: a window may close during it.
            if index > 0
                && !all_finished
                && !paused
                && !run.stop.load(Ordering::SeqCst)
                && !plan.rollout.pause.is_zero()
            {
                (run.emit)(Event::Note {
                    detail: format!(
                        "pausing {}s before the next wave",
                        plan.rollout.pause.as_secs_f64()
                    ),
                });
                // In short steps: a stop asked for during the pause ends it.
                let until = Instant::now() + plan.rollout.pause;
                while Instant::now() < until && !super::stop::requested() {
                    std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
                }
            }
            if !paused
                && !all_finished
                && index > 0
                && let Some(w) = &plan.window
                && !crate::window::is_open(w, jiff::Timestamp::now())
            {
                paused = true;
                (run.emit)(Event::Note {
                    detail: format!(
                        "the maintenance window {} closed: no new wave starts; `fleetup resume` continues",
                        crate::window::describe(w)
                    ),
                });
            }
            if paused {
                for t in wave {
                    let target = &run.targets[t.index(plan)];
                    results.push(
                        run.earlier
                            .finished
                            .get(name(t))
                            .cloned()
                            .unwrap_or_else(|| TargetResult {
                                target: name(t).to_owned(),
                                from: None,
                                to: target.to(),
                                outcome: Outcome::Skipped,
                                detail: "paused: the maintenance window closed".into(),
                                millis: 0,
                                attention: false,
                                code: None,
                            }),
                    );
                }
                continue;
            }
            if run.stop.load(Ordering::SeqCst) {
                results.extend(wave.iter().map(|t| run.target(t.index(plan))));
                continue;
            }

            (run.emit)(Event::Wave {
                index: index + 1,
                of,
                targets: wave.iter().map(|t| name(t).to_owned()).collect(),
            });
            if let Some(check) = run.wave_check {
                let todo: Vec<TargetId> = wave
                    .iter()
                    .filter(|t| !run.earlier.finished.contains_key(name(t)))
                    .copied()
                    .collect();
                let refusals = check(&todo);
                if !refusals.is_empty() {
                    results.extend(run.refuse_wave(index, wave, &refusals));
                    continue;
                }
            }
            // Exactly max_parallel workers, each taking the next target in file order:
            // targets start in the order of the plan, and none waits batched behind a
            // slow one.
            let next = AtomicUsize::new(0);
            let slots: Vec<Mutex<Option<TargetResult>>> =
                wave.iter().map(|_| Mutex::new(None)).collect();
            pool.scope(|scope| {
                for _ in 0..pool.current_num_threads().min(wave.len()) {
                    scope.spawn(|_| {
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(t) = wave.get(i) else { break };
                            let r = run.target(t.index(plan));
                            if let Ok(mut slot) = slots[i].lock() {
                                *slot = Some(r);
                            }
                        }
                    });
                }
            });
            let wave_results: Vec<TargetResult> = slots
                .into_iter()
                .filter_map(|m| m.into_inner().ok().flatten())
                .collect();
            let wave_failed = wave_results.iter().any(|r| r.outcome.is_failure());
            results.extend(wave_results);
            // A wave starts only when the previous one is all healthy, within max_failures.
            if wave_failed && run.failures.load(Ordering::SeqCst) > run.allowed {
                run.stop.store(true, Ordering::SeqCst);
            }
        }
        let signalled = super::stop::requested();
        let stopped = signalled || run.left_locked.load(Ordering::SeqCst);
        if signalled {
            (run.emit)(Event::Note {
                detail: "stopped by SIGINT/SIGTERM: targets in progress finished their step, no other started; `fleetup resume` continues".into(),
            });
        }
        if run.stop.load(Ordering::SeqCst)
            && !stopped
            && plan.rollout.on_failure == OnFailure::RollbackAll
        {
            run.roll_back_all(&mut results);
        }
        Ok(RunEnd {
            results,
            paused,
            stopped,
        })
    }

    /// The targets among `upgraded` that a later run or a hand change has moved on from
    /// where this run left them, with why: `rollback RUN` must not undo that.
    pub fn moved_on(&self, upgraded: &[TargetResult]) -> Vec<(String, String)> {
        let cx = self.cx();
        upgraded
            .iter()
            .filter_map(|r| {
                let t = self.targets.iter().find(|t| t.name() == r.target)?;
                t.moved_on(&cx, r).map(|why| (r.target.clone(), why))
            })
            .collect()
    }

    /// `fleetup rollback RUN`: every target the run upgraded (`upgraded`, in the order
    /// they finished) goes back, newest first: a node to the release it came from,
    /// checked healthy there; a group's last upgrade undone.
    pub fn roll_back_run(&self, upgraded: &[TargetResult]) -> Vec<TargetResult> {
        let cx = self.cx();
        let mut out = Vec::new();
        for r in upgraded.iter().rev() {
            let Some(t) = self.targets.iter().find(|t| t.name() == r.target) else {
                continue;
            };
            let from = r.from.as_deref().and_then(|v| Version::parse(v).ok());
            let started = Instant::now();
            self.step(&r.target, Step::RollBack(t.back(from.as_ref())));
            let (outcome, detail, attention, code) = match t.roll_back(&cx, from.as_ref()) {
                Ok(words) => (Outcome::RolledBack, words, false, None),
                Err(e) => (
                    Outcome::Failed,
                    format!("rollback failed: {}", e.message),
                    true,
                    Some(e.code.as_str().to_owned()),
                ),
            };
            let res = TargetResult {
                target: r.target.clone(),
                from: Some(r.to.clone()),
                to: r.from.clone().unwrap_or_default(),
                outcome,
                detail,
                millis: started.elapsed().as_millis() as u64,
                attention,
                code,
            };
            self.done(&res);
            out.push(res);
        }
        out
    }
}

/// Targets among `ids` whose lock another fleetup holds right now: a run refuses to
/// start (exit 5).
pub fn locks_held(
    plan: &Plan,
    ids: impl Iterator<Item = crate::schedule::TargetId>,
) -> Vec<Problem> {
    let targets = super::kinds::of_plan(plan);
    ids.filter_map(|t| targets[t.index(plan)].lock_held())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_failures_as_a_count_or_a_share_rounded_down() {
        assert_eq!(allowed_failures(Amount::Count(0), 10), 0);
        assert_eq!(allowed_failures(Amount::Count(3), 10), 3);
        // A share of the run's targets, rounded down: 25% of 4 is one, of 7 one (1.75).
        assert_eq!(allowed_failures(Amount::Percent(25.0), 4), 1);
        assert_eq!(allowed_failures(Amount::Percent(25.0), 7), 1);
        assert_eq!(allowed_failures(Amount::Percent(25.0), 8), 2);
        assert_eq!(allowed_failures(Amount::Percent(10.0), 5), 0);
        assert_eq!(allowed_failures(Amount::Percent(100.0), 5), 5);
    }
}
