//! A plan's targets, selected and cut into waves, all worked out before anything is
//! touched. Waves follow file order (nodes, then groups); a wave size is a count or a
//! percentage of the selected targets, rounded up, at least 1; the last size repeats.
//!
//! Built from the targets that will change: one already where the plan wants it joins
//! the first wave (it is only looked at) and takes no place in any wave's size, so a
//! re-applied plan whose canary is done starts with the next real canary. Selector
//! waves (`"@canary"`) come first, in their order; then, with `rollout.domains`, one
//! failure domain at a time, the sizes starting again in each; no wave takes more of a
//! domain than `max_unavailable`, nor more of a `min_available` group than it can spare.

use std::collections::BTreeMap;

use crate::diagnostics::{Code, Problem};
use crate::plan::{Amount, BudgetScope, DomainOrder, Plan, WaveSize};

/// A wave's failure budget: the scope its failures count in (`run`, `wave N` or
/// `domain D`, shared by the waves of that scope) and how many that scope allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    pub scope: String,
    pub allowed: usize,
}

/// What a run walks ([`Schedule::compile`]): every wave's budget, by wave index, and the
/// rollout's stages in order.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub budgets: Vec<Budget>,
    pub stages: Vec<Stage>,
}

/// One step of a rollout, in the order a run walks them (as Argo Rollouts' canary
/// steps): compiled once from the schedule and the plan's `rollout`, `window`, `gates`
/// and `analysis`. Each names its wave (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `rollout.pause` before the wave.
    Pause(usize),
    /// The maintenance window is looked at before the wave starts (it may have closed).
    Window(usize),
    /// The wave's targets change.
    Wave(usize),
    /// The metric analyses over what the wave changed.
    Analyse(usize),
    /// The wave is over: what it upgraded and failed is told.
    WaveDone(usize),
    /// The gates after the wave, before the next one.
    Gates(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    pub waves: Vec<Vec<usize>>,
    /// Why each wave holds what it does (`plan --explain`).
    pub why: Vec<String>,
    /// The failure domain of each wave, with `rollout.domains`.
    pub domain: Vec<Option<String>>,
}

impl Schedule {
    /// [`Schedule::budget`] of every wave.
    pub fn budgets(&self, plan: &Plan) -> Vec<usize> {
        (0..self.waves.len())
            .map(|i| self.budget(plan, i))
            .collect()
    }

    /// Failures wave `index` tolerates before the run stops, by `max_failures` and its
    /// scope: the run's (the same number for every wave), the wave's own, or its
    /// domain's.
    pub fn budget(&self, plan: &Plan, index: usize) -> usize {
        let of = |n: usize| allowed(plan.rollout.max_failures, n);
        match plan.rollout.budget_scope {
            BudgetScope::Run => of(self.len()),
            BudgetScope::Wave => of(self.waves.get(index).map_or(0, Vec::len)),
            BudgetScope::Domain => {
                let d = self.domain.get(index).cloned().flatten();
                let n = self
                    .waves
                    .iter()
                    .zip(&self.domain)
                    .filter(|(_, x)| **x == d)
                    .map(|(w, _)| w.len())
                    .sum();
                of(n)
            }
        }
    }

    /// What a run walks, compiled once: each wave's failure budget and the rollout's
    /// stages.
    pub fn compile(&self, plan: &Plan) -> Compiled {
        let budgets = self
            .budgets(plan)
            .into_iter()
            .enumerate()
            .map(|(i, allowed)| Budget {
                scope: match plan.rollout.budget_scope {
                    BudgetScope::Run => "run".into(),
                    BudgetScope::Wave => format!("wave {i}"),
                    BudgetScope::Domain => format!(
                        "domain {}",
                        self.domain.get(i).cloned().flatten().unwrap_or_default()
                    ),
                },
                allowed,
            })
            .collect();
        Compiled {
            budgets,
            stages: self.stages(plan),
        }
    }

    /// The rollout's steps, in order: before every wave but the first its pause and
    /// window check, then the wave, its analyses, its end, and the gates after it.
    pub fn stages(&self, plan: &Plan) -> Vec<Stage> {
        let of = self.waves.len();
        let mut out = Vec::new();
        for i in 0..of {
            if i > 0 {
                if !plan.rollout.pause.is_zero() {
                    out.push(Stage::Pause(i));
                }
                if plan.window.is_some() {
                    out.push(Stage::Window(i));
                }
            }
            out.push(Stage::Wave(i));
            if !plan.analysis.is_empty() {
                out.push(Stage::Analyse(i));
            }
            out.push(Stage::WaveDone(i));
            if i + 1 < of
                && plan
                    .rollout
                    .gates
                    .iter()
                    .any(|g| g.after_wave.value == i + 1)
            {
                out.push(Stage::Gates(i));
            }
        }
        out
    }

    pub fn targets(&self) -> impl Iterator<Item = usize> + '_ {
        self.waves.iter().flatten().copied()
    }
    pub fn len(&self) -> usize {
        self.waves.iter().map(Vec::len).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `*` and `?` globs, whole-string.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The targets `--only` selects (all without it), in plan order. Selectors are names,
/// globs (`emqx-*`) or tags (`@canary`); one starting with `!` excludes what it matches
/// (`!n3`, `!@canary`), and exclusions alone start from every target. A selector that
/// matches nothing is an error: a typo must not quietly upgrade nothing, or everything.
pub fn select(plan: &Plan, only: Option<&str>) -> Result<Vec<usize>, Problem> {
    let all: Vec<usize> = (0..plan.target_count()).collect();
    let Some(only) = only else { return Ok(all) };
    let selectors: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if selectors.is_empty() {
        return Err(Problem::new(Code::BadValue, "--only is empty")
            .help("select by name, glob (emqx-*) or tag (@canary), comma-separated"));
    }
    let matches = |sel: &str, t: &usize| matches(plan, sel, *t);
    let (excluded, included): (Vec<&str>, Vec<&str>) =
        selectors.iter().partition(|s| s.starts_with('!'));
    let excluded: Vec<&str> = excluded.iter().map(|s| &s[1..]).collect();
    if excluded.iter().any(|s| s.is_empty()) {
        return Err(
            Problem::new(Code::BadValue, "--only `!` names nothing to leave out")
                .help("write !NAME, !GLOB or !@TAG"),
        );
    }
    for sel in included.iter().chain(&excluded) {
        if !all.iter().any(|t| matches(sel, t)) {
            let names = all.iter().map(|t| plan.target_name(*t));
            let mut p = Problem::new(
                Code::BadValue,
                format!("--only `{sel}` matches no target of the plan"),
            );
            if let Some(m) = crate::names::did_you_mean(sel, names) {
                p = p.help(format!("did you mean `{m}`?"));
            } else {
                p = p.help("select by name, glob (emqx-*) or tag (@canary), comma-separated");
            }
            return Err(p);
        }
    }
    let picked: Vec<usize> = all
        .into_iter()
        .filter(|t| included.is_empty() || included.iter().any(|s| matches(s, t)))
        .filter(|t| !excluded.iter().any(|s| matches(s, t)))
        .collect();
    if picked.is_empty() {
        return Err(Problem::new(
            Code::BadValue,
            format!("--only `{only}` leaves no target of the plan"),
        )
        .help("the exclusions (`!…`) leave out every target the rest selected"));
    }
    Ok(picked)
}

/// Failures tolerated among `n` targets: a count, or a share rounded down.
fn allowed(a: Amount, n: usize) -> usize {
    match a {
        Amount::Count(c) => c as usize,
        Amount::Percent(p) => (p * n as f64 / 100.0).floor() as usize,
    }
}

/// Whether selector `sel` picks target `t`: `@tag`, `@label=value`, a name or a glob.
pub fn matches(plan: &Plan, sel: &str, t: usize) -> bool {
    let e = plan.entry(t);
    match sel.strip_prefix('@') {
        Some(l) => match l.split_once('=') {
            Some((k, v)) => e.labels.get(k.trim()).is_some_and(|x| x == v.trim()),
            None => e.tags.iter().any(|x| x == l),
        },
        None => glob(sel, &e.name.value),
    }
}

/// Every target of the plan `sel` picks, in plan order.
pub fn matching(plan: &Plan, sel: &str) -> Vec<usize> {
    select(plan, None)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| matches(plan, sel, *t))
        .collect()
}

/// How many of `members` targets `count` keeps up: a count, or a share rounded up.
pub fn keep_up(count: Amount, members: usize) -> usize {
    match count {
        Amount::Count(c) => c as usize,
        Amount::Percent(p) => (p * members as f64 / 100.0).ceil() as usize,
    }
}

/// How many targets of a domain of `members` may change at once: a count, or a share
/// rounded down; at least 1.
pub fn unavailable(a: Amount, members: usize) -> usize {
    match a {
        Amount::Count(c) => c as usize,
        Amount::Percent(p) => (p * members as f64 / 100.0).floor() as usize,
    }
    .max(1)
}

/// Sizes of consecutive waves covering `total` targets.
pub fn wave_sizes(total: usize, sizes: &[Amount]) -> Vec<usize> {
    let size_of = |a: &Amount| match *a {
        Amount::Count(c) => (c as usize).max(1),
        Amount::Percent(p) => ((p * total as f64 / 100.0).ceil() as usize).max(1),
    };
    let mut out = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let s = sizes
            .get(i)
            .or(sizes.last())
            .map_or(left, size_of)
            .min(left);
        out.push(s);
        left -= s;
        i += 1;
    }
    out
}

pub fn build(plan: &Plan, only: Option<&str>) -> Result<Schedule, Problem> {
    build_with(plan, only, &|_| false)
}

/// A limit on how many of some targets one wave may take.
struct Cap {
    members: std::collections::HashSet<usize>,
    most: usize,
    why: String,
}

/// Cuts `members` (in order) into waves of `sizes` (of `members.len()`, the last
/// repeating), none taking more of a cap's members than it allows. Each wave's reason.
/// Linear in the targets for each wave: a cap every target left belongs to ends the
/// wave as soon as it is full.
fn cut(members: Vec<usize>, sizes: &[Amount], caps: &[Cap]) -> Vec<(Vec<usize>, String)> {
    let total = members.len();
    let size_of = |a: &Amount| match *a {
        Amount::Count(c) => (c as usize).max(1),
        Amount::Percent(p) => ((p * total as f64 / 100.0).ceil() as usize).max(1),
    };
    // The caps each target is under.
    let under: BTreeMap<usize, Vec<usize>> = members
        .iter()
        .map(|t| {
            let of = (0..caps.len())
                .filter(|c| caps[*c].members.contains(t))
                .collect();
            (*t, of)
        })
        .collect();
    // Caps every target is under: once one is full, nothing more fits in the wave.
    let universal: Vec<usize> = (0..caps.len())
        .filter(|c| members.iter().all(|t| under[t].contains(c)))
        .collect();
    let mut pending = members;
    let mut out = Vec::new();
    let mut i = 0;
    while !pending.is_empty() {
        let want = sizes.get(i).or(sizes.last()).map_or(pending.len(), size_of);
        let mut count = vec![0usize; caps.len()];
        let mut wave: Vec<usize> = Vec::new();
        let mut capped: Vec<usize> = Vec::new();
        for t in &pending {
            if wave.len() >= want {
                break;
            }
            if let Some(c) = universal.iter().find(|c| count[**c] >= caps[**c].most) {
                if !capped.contains(c) {
                    capped.push(*c);
                }
                break;
            }
            match under[t].iter().find(|c| count[**c] >= caps[**c].most) {
                Some(c) => {
                    if !capped.contains(c) {
                        capped.push(*c);
                    }
                }
                None => {
                    for c in &under[t] {
                        count[*c] += 1;
                    }
                    wave.push(*t);
                }
            }
        }
        if wave.is_empty() {
            // Only a cap of 0 could leave nothing; `check` refuses that, so never here.
            wave.push(pending[0]);
        }
        let taken: std::collections::HashSet<usize> = wave.iter().copied().collect();
        pending.retain(|t| !taken.contains(t));
        let mut why = match sizes.get(i).or(sizes.last()) {
            Some(Amount::Count(c)) => format!("size {c}"),
            Some(Amount::Percent(p)) => {
                format!("size {p}% of {total} = {}", size_of(&Amount::Percent(*p)))
            }
            None => "all".into(),
        };
        if wave.len() < want.min(wave.len() + pending.len()) && !capped.is_empty() {
            let by: Vec<&str> = capped.iter().map(|c| caps[*c].why.as_str()).collect();
            why.push_str(&format!(", cut to {} by {}", wave.len(), by.join(" and ")));
        }
        out.push((wave, why));
        i += 1;
    }
    out
}

/// [`build`], knowing which targets are already where the plan wants them (`settled`):
/// those join the first wave and count in no wave's size.
pub fn build_with(
    plan: &Plan,
    only: Option<&str>,
    settled: &dyn Fn(usize) -> bool,
) -> Result<Schedule, Problem> {
    let targets = select(plan, only)?;
    let r = &plan.rollout;
    let (done, mut rest): (Vec<usize>, Vec<usize>) =
        targets.iter().copied().partition(|t| settled(*t));
    // Limits that hold in every wave: min_available groups over the whole plan, and each
    // domain's max_unavailable.
    let mut caps: Vec<Cap> = r
        .min_available
        .iter()
        .map(|m| {
            let members = matching(plan, &m.select.value);
            let keep = keep_up(m.count, members.len());
            Cap {
                most: members.len().saturating_sub(keep).max(1),
                why: format!(
                    "min_available {} (keeps {keep} of {} up)",
                    m.select.value,
                    members.len()
                ),
                members: members.into_iter().collect(),
            }
        })
        .collect();
    let domain_of = |t: &usize| {
        r.domains
            .as_ref()
            .and_then(|d| plan.entry(*t).labels.get(&d.by.value).cloned())
    };
    let mut domains: Vec<(String, Vec<usize>)> = Vec::new();
    if let Some(d) = &r.domains {
        for t in &targets {
            let v = domain_of(t).unwrap_or_default();
            match domains.iter_mut().find(|(k, _)| *k == v) {
                Some((_, m)) => m.push(*t),
                None => domains.push((v, vec![*t])),
            }
        }
        for (v, members) in &domains {
            let most = unavailable(d.max_unavailable, members.len());
            caps.push(Cap {
                members: members.iter().copied().collect(),
                most,
                why: format!("max_unavailable {most} of {}={v}", d.by.value),
            });
        }
        match &d.order {
            DomainOrder::Plan => {}
            DomainOrder::SmallestFirst => domains.sort_by_key(|(_, m)| m.len()),
            DomainOrder::Listed(order) => {
                let rank = |v: &str| {
                    order
                        .iter()
                        .position(|o| o.value == v)
                        .unwrap_or(order.len())
                };
                domains.sort_by_key(|(v, _)| rank(v));
            }
        }
    }
    let mut sizes: Vec<Amount> = Vec::new();
    let mut cuts: Vec<(Vec<usize>, String, Option<String>)> = Vec::new();
    for w in &r.waves {
        match w {
            WaveSize::Size(a) => sizes.push(*a),
            WaveSize::Select(sel) => {
                let picked: Vec<usize> = rest
                    .iter()
                    .copied()
                    .filter(|t| matches(plan, &sel.value, *t))
                    .collect();
                let taken: std::collections::HashSet<usize> = picked.iter().copied().collect();
                rest.retain(|t| !taken.contains(t));
                for (wave, why) in cut(picked, &[], &caps) {
                    let why = format!(
                        "selected by {}{}",
                        sel.value,
                        why.strip_prefix("all").unwrap_or("")
                    );
                    cuts.push((wave, why, None));
                }
            }
        }
    }
    if sizes.is_empty() {
        sizes.push(Amount::Percent(100.0));
    }
    if r.domains.is_some() {
        for (v, members) in &domains {
            let members: std::collections::HashSet<&usize> = members.iter().collect();
            let todo: Vec<usize> = rest
                .iter()
                .copied()
                .filter(|t| members.contains(t))
                .collect();
            for (wave, why) in cut(todo, &sizes, &caps) {
                let by = &r
                    .domains
                    .as_ref()
                    .map_or(String::new(), |d| d.by.value.clone());
                cuts.push((wave, format!("domain {by}={v}: {why}"), Some(v.clone())));
            }
        }
    } else {
        for (wave, why) in cut(rest, &sizes, &caps) {
            cuts.push((wave, why, None));
        }
    }
    let mut s = Schedule::default();
    for (wave, why, dom) in cuts {
        s.waves.push(wave);
        s.why.push(why);
        s.domain.push(dom);
    }
    if !done.is_empty() {
        let names: Vec<&str> = done.iter().map(|t| plan.target_name(*t)).collect();
        let note = format!("already there, only looked at: {}", names.join(", "));
        if s.waves.is_empty() {
            s.waves.push(Vec::new());
            s.why.push(String::new());
            s.domain.push(None);
        }
        let first = &mut s.waves[0];
        first.extend(done);
        // Plan order within the wave, as every wave has.
        first.sort_unstable();
        s.why[0] = if s.why[0].is_empty() {
            note
        } else {
            format!("{}; {note}", s.why[0])
        };
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `max_failures` as a count, or a share rounded down: tested on the function the
    /// run uses (an earlier test tested a copy of it in run/exec.rs).
    #[test]
    fn max_failures_as_a_count_or_a_share_rounded_down() {
        assert_eq!(allowed(Amount::Count(0), 10), 0);
        assert_eq!(allowed(Amount::Count(3), 10), 3);
        // A share of the targets, rounded down: 25% of 4 is one, of 7 one (1.75).
        assert_eq!(allowed(Amount::Percent(25.0), 4), 1);
        assert_eq!(allowed(Amount::Percent(25.0), 7), 1);
        assert_eq!(allowed(Amount::Percent(25.0), 8), 2);
        assert_eq!(allowed(Amount::Percent(10.0), 5), 0);
        assert_eq!(allowed(Amount::Percent(100.0), 5), 5);
    }

    /// Three nodes and two groups; n2 and the group `shop` carry the tag `canary`.
    fn plan() -> Plan {
        let text = "plan: 1\nname: p\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\n\
            nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2, tags: [canary] }\n  \
            - { name: n3, root: ./n3, tags: [edge] }\n\
            groups:\n  - name: shop\n    root: ./shop\n    market: ./market\n    tags: [canary]\n    \
            apps: [{ app: mall, to: 1.0.2 }]\n  - name: blog\n    root: ./blog\n    market: ./market\n    \
            apps: [{ app: blog, to: 2.0.0 }]\n";
        let loaded = crate::plan::load_text(
            crate::span::SourceFile::new("p.yaml", text.to_owned()),
            crate::plan::Format::Yaml,
            std::path::Path::new("."),
        );
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.plan.unwrap()
    }

    fn names(plan: &Plan, ids: &[usize]) -> Vec<String> {
        ids.iter()
            .map(|t| plan.target_name(*t).to_owned())
            .collect()
    }

    #[test]
    fn targets_are_nodes_then_groups_and_indexed_so() {
        let plan = plan();
        let all = select(&plan, None).unwrap();
        assert_eq!(names(&plan, &all), ["n1", "n2", "n3", "shop", "blog"]);
        assert_eq!(all, [0, 1, 2, 3, 4]);
        assert!(matches!(
            plan.entry(4).section,
            crate::plan::Section::Group(1, g) if g.name.value == "blog"
        ));
        assert_eq!(plan.entry(2).tags, ["edge".to_owned()]);
        assert_eq!(plan.entry(3).tags, ["canary".to_owned()]);
        assert!(plan.entry(4).tags.is_empty());
    }

    #[test]
    fn only_selects_by_name_glob_tag_and_exclusion_in_plan_order() {
        let plan = plan();
        let pick = |only: &str| names(&plan, &select(&plan, Some(only)).unwrap());
        assert_eq!(pick("n3,n1"), ["n1", "n3"]);
        assert_eq!(pick("n*"), ["n1", "n2", "n3"]);
        assert_eq!(pick("@canary"), ["n2", "shop"]);
        assert_eq!(pick("!@canary"), ["n1", "n3", "blog"]);
        assert_eq!(pick("n*, !n2"), ["n1", "n3"]);
        assert_eq!(pick(" blog ,"), ["blog"]);
        let err = |only: &str| select(&plan, Some(only)).unwrap_err().message;
        assert!(err("@nope").contains("`@nope` matches no target"));
        assert!(err("n1,!n9").contains("`n9` matches no target"));
        assert!(err(" , ").contains("--only is empty"));
        assert!(err("!").contains("names nothing to leave out"));
        assert!(err("n1,!n1").contains("leaves no target"));
    }

    #[test]
    fn a_schedule_counts_and_lists_its_targets_wave_by_wave() {
        let mut plan = plan();
        plan.rollout.waves = vec![
            WaveSize::Size(Amount::Count(1)),
            WaveSize::Size(Amount::Percent(50.0)),
        ];
        let s = build(&plan, None).unwrap();
        assert_eq!(s.waves, vec![vec![0], vec![1, 2, 3], vec![4]]);
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert_eq!(
            names(&plan, &s.targets().collect::<Vec<_>>()),
            ["n1", "n2", "n3", "shop", "blog"]
        );
        let one = build(&plan, Some("blog")).unwrap();
        assert_eq!((one.len(), one.is_empty()), (1, false));
        let empty = Schedule {
            waves: vec![vec![], vec![]],
            ..Schedule::default()
        };
        assert_eq!((empty.len(), empty.is_empty()), (0, true));
    }

    #[test]
    fn a_rollout_is_compiled_into_stages_in_the_order_a_run_walks_them() {
        let mut plan = plan();
        plan.rollout.waves = vec![
            WaveSize::Size(Amount::Count(1)),
            WaveSize::Size(Amount::Percent(50.0)),
        ];
        let s = build(&plan, None).unwrap();
        // Three waves, nothing between them.
        use Stage::*;
        assert_eq!(
            s.stages(&plan),
            [
                Wave(0),
                WaveDone(0),
                Wave(1),
                WaveDone(1),
                Wave(2),
                WaveDone(2)
            ]
        );
        // A pause, a window, analysis and a gate after wave 1.
        let with = load(
            "plan: 1\nname: p\nproduct: emqx\nrepository: ./r\nto: 4.4.16\n\
             rollout: { waves: [1, 1], pause: 5s, gates: [{ after_wave: 1, approve: manual }] }\n\
             window: { from: \"01:00\", to: \"05:00\" }\n\
             analysis:\n  - name: e\n    prometheus: { url: \"http://127.0.0.1:9\", query: up, max: 0 }\n\
             nodes:\n  - { name: n1, root: ./n1 }\n  - { name: n2, root: ./n2 }\n",
        );
        let s = build(&with, None).unwrap();
        assert_eq!(
            s.stages(&with),
            [
                Wave(0),
                Analyse(0),
                WaveDone(0),
                Gates(0),
                Pause(1),
                Window(1),
                Wave(1),
                Analyse(1),
                WaveDone(1)
            ]
        );
        // With `--only`, a gate may name the last wave that remains (or one past it):
        // nothing follows, so it is not a stage.
        let one = build(&with, Some("n1")).unwrap();
        assert_eq!(one.stages(&with), [Wave(0), Analyse(0), WaveDone(0)]);
    }

    /// `plan --explain` says a wave was cut by a cap only when the cap made it smaller:
    /// not when it filled up anyway, nor when it holds what was left.
    #[test]
    fn a_wave_is_said_to_be_cut_only_when_a_cap_made_it_smaller() {
        let cap = |members: &[usize]| Cap {
            members: members.iter().copied().collect(),
            most: 1,
            why: "zone a".into(),
        };
        // 1 waits for 0's wave to end, and 2 and 3 fill it: full, not cut.
        let waves = cut(vec![0, 1, 2, 3], &[Amount::Count(3)], &[cap(&[0, 1])]);
        assert_eq!(
            waves,
            [
                (vec![0, 2, 3], "size 3".to_owned()),
                (vec![1], "size 3".to_owned())
            ]
        );
        // Every target under one cap of 1: each wave is cut to 1, but the last, which
        // holds all that was left.
        let waves = cut(vec![0, 1, 2], &[Amount::Count(3)], &[cap(&[0, 1, 2])]);
        let cut_to_1 = "size 3, cut to 1 by zone a".to_owned();
        assert_eq!(
            waves,
            [
                (vec![0], cut_to_1.clone()),
                (vec![1], cut_to_1),
                (vec![2], "size 3".to_owned())
            ]
        );
    }

    #[test]
    fn globs() {
        assert!(glob("emqx-*", "emqx-12"));
        assert!(glob("*", ""));
        assert!(glob("e?qx-*-a", "emqx-1-a"));
        assert!(!glob("emqx-*", "nano-1"));
        assert!(!glob("emqx", "emqx-1"));
        assert!(glob("*-1*", "a-b-1-c"));
    }

    #[test]
    fn waves_cover_every_target_once_with_the_last_size_repeating() {
        use Amount::*;
        assert_eq!(
            wave_sizes(10, &[Count(1), Percent(25.0), Percent(100.0)]),
            vec![1, 3, 6]
        );
        assert_eq!(wave_sizes(10, &[Count(1), Count(4)]), vec![1, 4, 4, 1]);
        assert_eq!(wave_sizes(3, &[Percent(100.0)]), vec![3]);
        assert_eq!(wave_sizes(3, &[Percent(10.0)]), vec![1, 1, 1]);
        assert_eq!(wave_sizes(0, &[Count(1)]), Vec::<usize>::new());
        // Percentages round up, so 12.5% of 10 is 2.
        assert_eq!(wave_sizes(10, &[Percent(12.5)]), vec![2, 2, 2, 2, 2]);
        for total in 0..60 {
            for sizes in [
                vec![Count(1), Percent(25.0)],
                vec![Percent(33.0)],
                vec![Count(7), Count(2), Percent(50.0)],
            ] {
                let w = wave_sizes(total, &sizes);
                assert_eq!(w.iter().sum::<usize>(), total);
                assert!(w.iter().all(|s| *s >= 1));
            }
        }
    }

    fn load(text: &str) -> Plan {
        let loaded = crate::plan::load_text(
            crate::span::SourceFile::new("p.yaml", text.to_owned()),
            crate::plan::Format::Yaml,
            std::path::Path::new("."),
        );
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.plan.unwrap()
    }

    /// Twelve nodes in three zones of four; n1 is the canary, in zone b.
    fn zones(rollout: &str) -> Plan {
        let mut text = format!(
            "plan: 1\nname: p\nproduct: emqx\nrepository: ./r\nto: 4.4.16\nrollout:\n{rollout}\nnodes:\n"
        );
        for i in 1..=12 {
            let zone = ["a", "b", "c"][i % 3];
            let canary = if i == 1 { ", tags: [canary]" } else { "" };
            text.push_str(&format!(
                "  - {{ name: n{i}, root: ./n{i}, labels: {{ zone: {zone} }}{canary} }}\n"
            ));
        }
        load(&text)
    }

    fn waves(plan: &Plan, s: &Schedule) -> Vec<Vec<String>> {
        s.waves.iter().map(|w| names(plan, w)).collect()
    }

    #[test]
    fn domains_go_one_at_a_time_never_more_than_max_unavailable_of_one_out() {
        let plan = zones(
            "  waves: [\"@canary\", \"100%\"]\n  domains: { by: zone, order: [c, a], max_unavailable: 2 }",
        );
        let s = build(&plan, None).unwrap();
        let w = waves(&plan, &s);
        // The canary alone first, then zone c, then a, then b (not listed), 2 at a time.
        assert_eq!(w[0], ["n1"]);
        assert_eq!(&w[1..3], [vec!["n2", "n5"], vec!["n8", "n11"]]);
        assert_eq!(&w[3..5], [vec!["n3", "n6"], vec!["n9", "n12"]]);
        assert_eq!(&w[5..], [vec!["n4", "n7"], vec!["n10"]]);
        assert_eq!(s.domain[1].as_deref(), Some("c"));
        assert!(s.why[0].starts_with("selected by @canary"), "{}", s.why[0]);
        assert!(s.why[1].contains("domain zone=c"), "{}", s.why[1]);
        assert!(
            s.why[1].contains("cut to 2 by max_unavailable 2 of zone=c"),
            "{}",
            s.why[1]
        );
        // Every target once.
        let mut all: Vec<String> = w.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 12);
        let small =
            zones("  domains: { by: zone, order: smallest_first, max_unavailable: \"50%\" }");
        let w = waves(&small, &build(&small, None).unwrap());
        assert_eq!(w.len(), 6);
        assert!(w.iter().all(|x| x.len() == 2), "{w:?}");
    }

    #[test]
    fn min_available_cuts_waves_so_enough_stay_up() {
        let plan = load(
            "plan: 1\nname: p\nproduct: emqx\nrepository: ./r\nto: 4.4.16\n\
             rollout: { min_available: [{ select: \"@core\", count: 2 }] }\n\
             nodes:\n  - { name: c1, root: ./c1, tags: [core] }\n  - { name: c2, root: ./c2, tags: [core] }\n  \
             - { name: c3, root: ./c3, tags: [core] }\n  - { name: e1, root: ./e1 }\n",
        );
        let s = build(&plan, None).unwrap();
        assert_eq!(waves(&plan, &s), [vec!["c1", "e1"], vec!["c2"], vec!["c3"]]);
        assert!(
            s.why[0].contains("min_available @core (keeps 2 of 3 up)"),
            "{}",
            s.why[0]
        );
    }

    #[test]
    fn targets_already_there_join_the_first_wave_and_the_canary_is_the_next_one() {
        let plan = zones("  waves: [1, \"100%\"]");
        // n1 is done: the first real canary is n2, and n1 is only looked at with it.
        let done = |t: usize| t == 0;
        let s = build_with(&plan, None, &done).unwrap();
        let w = waves(&plan, &s);
        assert_eq!(w[0], ["n1", "n2"]);
        assert_eq!(w[1].len(), 10);
        assert!(
            s.why[0].contains("already there, only looked at: n1"),
            "{}",
            s.why[0]
        );
        // Without knowing, n1 would be the canary.
        assert_eq!(waves(&plan, &build(&plan, None).unwrap())[0], ["n1"]);
    }

    #[test]
    fn budgets_are_per_run_wave_or_domain() {
        let run = zones("  waves: [4]\n  max_failures: 1");
        let s = build(&run, None).unwrap();
        assert_eq!(
            (0..3).map(|i| s.budget(&run, i)).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        let wave = zones("  waves: [4, 8]\n  max_failures: { count: \"50%\", scope: wave }");
        let s = build(&wave, None).unwrap();
        assert_eq!(
            (0..2).map(|i| s.budget(&wave, i)).collect::<Vec<_>>(),
            [2, 4]
        );
        let dom = zones(
            "  domains: { by: zone, max_unavailable: 2 }\n  max_failures: { count: \"25%\", scope: domain }",
        );
        let s = build(&dom, None).unwrap();
        // Each zone has 4 targets: 25% of 4 is 1, whichever wave of the zone.
        assert!((0..s.waves.len()).all(|i| s.budget(&dom, i) == 1));
        // Every wave's at once.
        assert_eq!(s.budgets(&dom), vec![1; s.waves.len()]);
        assert_eq!(build(&wave, None).unwrap().budgets(&wave), [2, 4]);
    }

    #[test]
    fn selectors_pick_tags_labels_names_and_globs() {
        let plan = zones("  waves: [\"@zone=a\", \"n1*\", \"100%\"]");
        let w = waves(&plan, &build(&plan, None).unwrap());
        assert_eq!(w[0], ["n3", "n6", "n9", "n12"]);
        // n12 went with zone a already: a target is in one wave.
        assert_eq!(w[1], ["n1", "n10", "n11"]);
        assert_eq!(w[2].len(), 5);
        assert_eq!(
            names(&plan, &select(&plan, Some("@zone=b")).unwrap()),
            ["n1", "n4", "n7", "n10"]
        );
        assert_eq!(unavailable(Amount::Percent(10.0), 4), 1);
        assert_eq!(keep_up(Amount::Percent(50.0), 3), 2);
    }
}
