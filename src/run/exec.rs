//! Executing a schedule: waves one after another, targets of a wave in parallel on a
//! rayon pool sized to `max_parallel`, each target as one locked sequence (open, change,
//! check, commit; undo what fails), failures counted across the run and handled as
//! `on_failure` says. Also `rollback RUN`: every target a run upgraded put back.
//!
//! This file drives [`Target`]s and never asks which kind it has. Workers only send
//! [`Event`]s; what reaches the terminal or the journal is decided by the consumers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semver::Version;

use super::event::{Back, Event, GateState, Outcome, Step, TargetResult, Verdict};
use super::target::{Change, ChangeError, Cx, Lifecycle, Refusal, Target};
use crate::diagnostics::{Code, Problem};
use crate::plan::schedule::{Budget, Schedule, Stage};
use crate::plan::{OnFailure, Plan};
use crate::remote::Hosts;

/// What an interrupted attempt of a run left behind; empty for a new run.
#[derive(Default)]
pub struct Earlier {
    /// Targets it finished: not run again.
    pub finished: BTreeMap<String, TargetResult>,
    /// Targets it began changing, with the release a node came from. One found already
    /// on its target was upgraded by this run (killed before it could say so), not
    /// unchanged.
    pub began: BTreeMap<String, Option<Version>>,
    /// Gates it passed, by the wave they follow.
    pub gates: BTreeMap<usize, GateState>,
    /// Waves after which its wait gates were waited through.
    pub waited: BTreeSet<usize>,
    /// Waves (1-based) whose analyses all passed.
    pub analysed: BTreeSet<usize>,
}

/// The preflight of one wave (`rollout.preflight: wave`): the targets among these that
/// may not start, read and checked right before the wave.
pub type WaveCheck<'a> = &'a (dyn Fn(&[usize]) -> Vec<Refusal> + Sync);

/// How the wave loop ended.
pub struct RunEnd {
    pub results: Vec<TargetResult>,
    /// Why the run paused (its window closed, a gate waits for an approval, an analysis
    /// was inconclusive): targets not started wait for `resume`.
    pub paused: Option<super::Pause>,
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
    /// Failures so far, by the scope `max_failures` counts them in.
    failures: Mutex<BTreeMap<String, usize>>,
    /// Each wave's failure budget.
    budgets: Vec<Budget>,
    /// The wave being worked on (0-based).
    wave: AtomicUsize,
    stop: AtomicBool,
    /// Targets this run upgraded (indexes into `targets`), in completion order, with
    /// the release they came from.
    upgraded: Mutex<Vec<(usize, Option<Version>)>>,
    /// A target was found locked by another fleetup: left unexamined for `resume`.
    left_locked: AtomicBool,
    /// Each wave's preflight, when the plan reads stores wave by wave.
    wave_check: Option<WaveCheck<'a>>,
}

/// Runs lifecycle hooks in turn; what failed, in words.
fn hooks(change: &mut dyn Change, which: &[Lifecycle]) -> Option<String> {
    let failed: Vec<String> = which
        .iter()
        .filter_map(|w| change.hook(*w).err().map(|p| p.message))
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
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
            failures: Mutex::new(BTreeMap::new()),
            budgets: Vec::new(),
            wave: AtomicUsize::new(0),
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
    fn refuse_wave(&self, index: usize, wave: &[usize], refusals: &[Refusal]) -> Vec<TargetResult> {
        let mut out = Vec::new();
        for &i in wave {
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
                with_rest: false,
            };
            if let Some(x) = refusals.iter().find(|x| x.target == i) {
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
        let w = self.wave.load(Ordering::SeqCst);
        let Some(Budget { scope, allowed }) = self.budgets.get(w) else {
            self.stop.store(true, Ordering::SeqCst);
            return r;
        };
        let n = match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(scope.clone()).or_default();
                *n += 1;
                *n
            }
            Err(_) => usize::MAX,
        };
        if n > *allowed {
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
        // What the target stood at, for a kind whose `from` is no version (a group).
        let shown_from = std::cell::OnceCell::<String>::new();
        let done = |from: Option<&Version>, outcome, detail: String, attention| TargetResult {
            target: t.name().to_owned(),
            from: from
                .map(Version::to_string)
                .or_else(|| shown_from.get().cloned()),
            to: to.clone(),
            outcome,
            detail,
            millis: started.elapsed().as_millis() as u64,
            attention,
            code: None,
            with_rest: false,
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
                "not started: the run was stopped (SIGINT/SIGTERM or a closed output); `fleetup resume` continues"
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
        if let Some(s) = &standing.shown_from {
            let _ = shown_from.set(s.clone());
        }
        let from = standing.from.as_ref();
        if let Some(already) = standing.reached {
            if let Some(came_from) = self.earlier.began.get(t.name()) {
                // The earlier attempt got this far and was stopped before it could say so;
                // whether its `after` hook ran is not known, so it runs (again).
                self.record_upgraded(i, came_from.clone());
                let (detail, attention) = match hooks(&mut *change, &[Lifecycle::After]) {
                    None => (
                        format!("{to} was reached before the run was interrupted"),
                        false,
                    ),
                    Some(h) => (
                        format!("{to} was reached before the run was interrupted, but {h}"),
                        true,
                    ),
                };
                return done(came_from.as_ref(), Outcome::Upgraded, detail, attention);
            }
            return done(from, Outcome::Unchanged, already, false);
        }
        // Drained first: a `before` hook that fails leaves the node unchanged (and lets
        // it back in, should the hook have half-drained it).
        if let Err(p) = change.hook(Lifecycle::Before) {
            let detail = match hooks(&mut *change, &[Lifecycle::After]) {
                None => format!("{}; nothing was changed", p.message),
                Some(h) => format!("{}; nothing was changed, but {h}", p.message),
            };
            return self.failed(with(done(from, Outcome::Failed, detail, false), &p));
        }
        // What a hook said after the node's last step, added to its result.
        let and = |detail: String, h: Option<String>| match h {
            None => (detail, false),
            Some(h) => (format!("{detail}; then {h}"), true),
        };
        let unhealthy = match change.change() {
            Ok(()) => change.check().err(),
            Err(ChangeError::Undone(p)) => {
                let h = hooks(&mut *change, &[Lifecycle::OnRollback, Lifecycle::After]);
                let (detail, attention) = and(p.message.clone(), h);
                let r = done(from, Outcome::RolledBack, detail, attention);
                return self.failed(with(r, &p));
            }
            Err(ChangeError::Failed { problem, attention }) => {
                let h = hooks(&mut *change, &[Lifecycle::After]);
                let (detail, hooked) = and(problem.message.clone(), h);
                let r = done(from, Outcome::Failed, detail, attention || hooked);
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
                    let h = hooks(&mut *change, &[Lifecycle::OnRollback, Lifecycle::After]);
                    let (detail, attention) = and(format!("{what}{note}"), h);
                    let r = done(from, Outcome::RolledBack, detail, attention);
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
                let (detail, attention) = and(detail, hooks(&mut *change, &[Lifecycle::After]));
                done(from, Outcome::Upgraded, detail, attention)
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
            let started = Instant::now();
            let result = t.roll_back(&cx, from.as_ref());
            // Its time is its upgrade's and its rollback's.
            r.millis += started.elapsed().as_millis() as u64;
            match result {
                Ok(_) => {
                    r.outcome = Outcome::RolledBack;
                    r.with_rest = true;
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

    /// The result of a target that waits for `resume` because the run paused.
    fn paused_result(&self, i: usize, why: &str) -> TargetResult {
        let t = &self.targets[i];
        self.earlier
            .finished
            .get(t.name())
            .cloned()
            .unwrap_or_else(|| TargetResult {
                target: t.name().to_owned(),
                from: None,
                to: t.to(),
                outcome: Outcome::Skipped,
                detail: format!("paused: {why}"),
                millis: 0,
                attention: false,
                code: None,
                with_rest: false,
            })
    }

    /// Waits `d` in short steps, so that a stop asked for meanwhile ends it.
    fn sleep(d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !super::stop::requested() {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }

    /// The analyses after wave `index` (0-based) over what it upgraded. A failing one
    /// fails the wave: the targets it upgraded go back (or stay, with `on_failure:
    /// stop`) and count as failures. `Some(why)` when one was inconclusive: the run
    /// pauses.
    fn analyse(
        &self,
        index: usize,
        wave: &[usize],
        results: &mut [TargetResult],
    ) -> Option<super::Pause> {
        let plan = self.plan;
        if plan.analysis.is_empty() || self.earlier.analysed.contains(&(index + 1)) {
            return None;
        }
        // Each target of the wave the analysis can ask about, with its placeholders.
        let asked: Vec<(String, BTreeMap<String, String>)> = wave
            .iter()
            .filter_map(|&i| {
                let t = &self.targets[i];
                Some((t.name().to_owned(), t.analysis_vars()?))
            })
            .collect();
        let mut failed: Vec<String> = Vec::new();
        for a in &plan.analysis {
            let (verdict, detail) = crate::analysis::check(a, &asked, &super::stop::requested);
            (self.emit)(Event::Analysis {
                wave: index + 1,
                name: a.name.clone(),
                verdict,
                detail: detail.clone(),
            });
            match verdict {
                Verdict::Passed => {}
                Verdict::Inconclusive => {
                    let pause = super::Pause::Inconclusive {
                        analysis: a.name.clone(),
                        wave: index + 1,
                        detail,
                    };
                    (self.emit)(Event::Note {
                        detail: pause.why(self.run_id),
                    });
                    return Some(pause);
                }
                Verdict::Failed => failed.push(format!("analysis `{}`: {detail}", a.name)),
            }
        }
        if failed.is_empty() {
            return None;
        }
        let why = failed.join("; ");
        let code = Some(Code::AnalysisFailed.as_str().to_owned());
        let upgraded: Vec<(usize, Option<Version>)> =
            self.upgraded.lock().map(|u| u.clone()).unwrap_or_default();
        let cx = self.cx();
        for &i in wave {
            let Some(r) = results
                .iter_mut()
                .find(|r| r.target == self.targets[i].name())
            else {
                continue;
            };
            let Some((_, from)) = upgraded.iter().find(|(u, _)| *u == i) else {
                continue;
            };
            if plan.rollout.on_failure == OnFailure::Stop {
                r.outcome = Outcome::Failed;
                r.detail = format!("{why}; left as it is (on_failure: stop)");
            } else {
                let target = &*self.targets[i];
                self.step(target.name(), Step::RollBack(target.back(from.as_ref())));
                match target.roll_back(&cx, from.as_ref()) {
                    Ok(words) => {
                        r.outcome = Outcome::RolledBack;
                        r.detail = format!("{why}; {words}");
                    }
                    Err(e) => {
                        r.outcome = Outcome::Failed;
                        r.detail = format!("{why}; rollback failed: {}", e.message);
                        r.attention = true;
                    }
                }
                if let Ok(mut u) = self.upgraded.lock() {
                    u.retain(|(x, _)| *x != i);
                }
            }
            r.code = code.clone();
            *r = self.failed(r.clone());
            self.done(r);
        }
        // However many the budget allows, a wave whose metrics failed is not followed.
        self.stop.store(true, Ordering::SeqCst);
        None
    }

    /// The gates after wave `index` (0-based): waits are waited, a manual gate not yet
    /// approved pauses the run (`Some(why)`).
    fn gates(&self, index: usize) -> Option<super::Pause> {
        let after = index + 1;
        for g in self
            .plan
            .rollout
            .gates
            .iter()
            .filter(|g| g.after_wave.value == after)
        {
            let passed = self.earlier.gates.get(&after);
            match g.kind {
                crate::plan::GateKind::Wait(d) => {
                    if self.earlier.waited.contains(&after) {
                        continue;
                    }
                    (self.emit)(Event::Note {
                        detail: format!("gate after wave {after}: waiting {}s", d.as_secs()),
                    });
                    Self::sleep(d);
                    if super::stop::requested() {
                        return None;
                    }
                    (self.emit)(Event::Gate {
                        after_wave: after,
                        state: GateState::Waited { secs: d.as_secs() },
                    });
                }
                crate::plan::GateKind::Manual => {
                    if let Some(GateState::Approved { by }) = passed {
                        (self.emit)(Event::Note {
                            detail: format!("gate after wave {after}: approved by {by}"),
                        });
                        continue;
                    }
                    (self.emit)(Event::Gate {
                        after_wave: after,
                        state: GateState::Waiting,
                    });
                    let pause = super::Pause::Gate { after_wave: after };
                    (self.emit)(Event::Note {
                        detail: pause.why(self.run_id),
                    });
                    return Some(pause);
                }
            }
        }
        None
    }

    /// Works on the targets of one wave: exactly max_parallel workers, each taking the
    /// next target in file order, so that targets start in the order of the plan and none
    /// waits batched behind a slow one. Their results, in the wave's order.
    fn wave_of(&self, pool: &rayon::ThreadPool, wave: &[usize]) -> Vec<TargetResult> {
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<TargetResult>>> =
            wave.iter().map(|_| Mutex::new(None)).collect();
        pool.scope(|scope| {
            for _ in 0..pool.current_num_threads().min(wave.len()) {
                scope.spawn(|_| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(t) = wave.get(i) else { break };
                        let r = self.target(*t);
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(r);
                        }
                    }
                });
            }
        });
        slots
            .into_iter()
            .filter_map(|m| m.into_inner().ok().flatten())
            .collect()
    }

    /// Runs `schedule`'s rollout, stage by stage ([`Schedule::stages`]), and returns each
    /// target's result, in schedule order.
    pub fn execute(mut self, schedule: &Schedule, earlier: Earlier) -> Result<RunEnd, Problem> {
        let plan = self.plan;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.rollout.max_parallel.min(schedule.len().max(1)))
            .build()
            .map_err(|e| Problem::new(Code::Io, format!("cannot start the worker pool: {e}")))?;
        let compiled = schedule.compile(plan);
        self.budgets = compiled.budgets;
        // On resume, what already failed counts against max_failures as before, in the
        // scope of the wave it was in.
        let mut before: BTreeMap<String, usize> = BTreeMap::new();
        for (i, wave) in schedule.waves.iter().enumerate() {
            for t in wave {
                if earlier
                    .finished
                    .get(self.targets[*t].name())
                    .is_some_and(|r| r.outcome.is_failure())
                {
                    *before.entry(self.budgets[i].scope.clone()).or_default() += 1;
                }
            }
        }
        self.failures = Mutex::new(before);
        self.earlier = earlier;
        let run = self;
        // A host lets go of its connection when its last node's turn has ended.
        if let Some(h) = &run.hosts {
            h.expect(schedule.targets().filter_map(|i| {
                let t = &run.targets[i];
                if run.earlier.finished.contains_key(t.name()) {
                    None
                } else {
                    t.over_ssh()
                }
            }));
        }
        let name = |t: &usize| run.targets[*t].name();
        let mut results = Vec::with_capacity(schedule.len());
        let of = schedule.waves.len();
        let mut paused: Option<super::Pause> = None;
        // The wave that ran (its results until its end is told), and whether its gates
        // may be reached: a wave refused, stopped or paused has neither.
        let mut ran: Option<Vec<TargetResult>> = None;
        let mut gates_after: Option<usize> = None;
        let stopping = || run.stop.load(Ordering::SeqCst);
        let all_finished = |index: usize| {
            schedule.waves[index]
                .iter()
                .all(|t| run.earlier.finished.contains_key(name(t)))
        };
        for stage in compiled.stages {
            match stage {
                // The pause comes before the window check: a window may close during it.
                Stage::Pause(index) => {
                    if !all_finished(index) && paused.is_none() && !stopping() {
                        (run.emit)(Event::Note {
                            detail: format!(
                                "pausing {} before the next wave",
                                crate::duration::human(plan.rollout.pause)
                            ),
                        });
                        Self::sleep(plan.rollout.pause);
                    }
                }
                Stage::Window(index) => {
                    if paused.is_none()
                        && !all_finished(index)
                        && let Some(w) = &plan.window
                        && !crate::window::is_open(w, jiff::Timestamp::now())
                    {
                        let why = format!(
                            "the maintenance window {} closed: no new wave starts; `fleetup resume` continues (`--current-window` takes the plan file's window as it is now), `fleetup abort` ends the run",
                            crate::window::describe(w)
                        );
                        (run.emit)(Event::Note { detail: why });
                        paused = Some(super::Pause::Window);
                    }
                }
                Stage::Wave(index) => {
                    run.wave.store(index, Ordering::SeqCst);
                    let wave = &schedule.waves[index];
                    gates_after = None;
                    if let Some(pause) = &paused {
                        let why = pause.why(run.run_id);
                        for t in wave {
                            results.push(run.paused_result(*t, &why));
                        }
                        continue;
                    }
                    if stopping() {
                        results.extend(wave.iter().map(|t| run.target(*t)));
                        continue;
                    }
                    (run.emit)(Event::Wave {
                        index: index + 1,
                        of,
                        targets: wave.iter().map(|t| name(t).to_owned()).collect(),
                    });
                    if let Some(check) = run.wave_check {
                        let todo: Vec<usize> = wave
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
                    ran = Some(run.wave_of(&pool, wave));
                    gates_after = Some(index);
                }
                // A wave is followed only when all of it is healthy (within max_failures),
                // its metrics hold, and its gates let the run through.
                Stage::Analyse(index) => {
                    if let Some(r) = ran.as_mut()
                        && !stopping()
                        && !super::stop::requested()
                    {
                        paused = run.analyse(index, &schedule.waves[index], r);
                    }
                }
                Stage::WaveDone(index) => {
                    if let Some(r) = ran.take() {
                        (run.emit)(Event::WaveDone {
                            index: index + 1,
                            of,
                            upgraded: r.iter().filter(|r| r.outcome == Outcome::Upgraded).count(),
                            failed: r.iter().filter(|r| r.outcome.is_failure()).count(),
                        });
                        results.extend(r);
                    }
                }
                Stage::Gates(index) => {
                    if gates_after == Some(index)
                        && paused.is_none()
                        && !stopping()
                        && !super::stop::requested()
                    {
                        paused = run.gates(index);
                    }
                }
            }
        }
        let signalled = super::stop::requested();
        let stopped = signalled || run.left_locked.load(Ordering::SeqCst);
        if signalled {
            (run.emit)(Event::Note {
                detail: "stopped by SIGINT/SIGTERM or a closed output: targets in progress were finished, no other started; `fleetup resume` continues".into(),
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
                with_rest: false,
            };
            self.done(&res);
            out.push(res);
        }
        out
    }
}

/// Targets among `ids` whose lock another fleetup holds right now: a run refuses to
/// start (exit 5).
pub fn locks_held(plan: &Plan, ids: impl Iterator<Item = usize>) -> Vec<Problem> {
    let targets = super::kinds::of_plan(plan);
    ids.filter_map(|t| targets[t].lock_held()).collect()
}
