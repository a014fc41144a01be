//! A plan's targets, selected and cut into waves, all worked out before anything is
//! touched. Waves follow file order (nodes, then groups); a wave size is a count or a
//! percentage of the selected targets, rounded up, at least 1; the last size repeats.

use crate::diagnostics::{Code, Problem};
use crate::plan::{Amount, Plan};

/// A target of the plan by its kind and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetId {
    Node(usize),
    Group(usize),
}

impl TargetId {
    /// Its position among all the plan's targets, nodes first then groups (the order of
    /// `run::kinds::of_plan`).
    pub fn index(&self, plan: &Plan) -> usize {
        match *self {
            TargetId::Node(i) => i,
            TargetId::Group(i) => plan.nodes.len() + i,
        }
    }
    pub fn name<'a>(&self, plan: &'a Plan) -> &'a str {
        match *self {
            TargetId::Node(i) => &plan.nodes[i].name.value,
            TargetId::Group(i) => &plan.groups[i].name.value,
        }
    }
    fn tags<'a>(&self, plan: &'a Plan) -> &'a [String] {
        match *self {
            TargetId::Node(i) => &plan.nodes[i].tags,
            TargetId::Group(i) => &plan.groups[i].tags,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub waves: Vec<Vec<TargetId>>,
}

impl Schedule {
    pub fn targets(&self) -> impl Iterator<Item = TargetId> + '_ {
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
pub fn select(plan: &Plan, only: Option<&str>) -> Result<Vec<TargetId>, Problem> {
    let all: Vec<TargetId> = (0..plan.nodes.len())
        .map(TargetId::Node)
        .chain((0..plan.groups.len()).map(TargetId::Group))
        .collect();
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
    let matches = |sel: &str, t: &TargetId| match sel.strip_prefix('@') {
        Some(tag) => t.tags(plan).iter().any(|x| x == tag),
        None => glob(sel, t.name(plan)),
    };
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
            let names = all.iter().map(|t| t.name(plan));
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
    let picked: Vec<TargetId> = all
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
    let targets = select(plan, only)?;
    let mut waves = Vec::new();
    let mut rest = targets.as_slice();
    for size in wave_sizes(targets.len(), &plan.rollout.waves) {
        let (wave, tail) = rest.split_at(size);
        waves.push(wave.to_vec());
        rest = tail;
    }
    Ok(Schedule { waves })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
