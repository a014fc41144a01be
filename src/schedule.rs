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

    fn names(plan: &Plan, ids: &[TargetId]) -> Vec<String> {
        ids.iter().map(|t| t.name(plan).to_owned()).collect()
    }

    #[test]
    fn targets_are_nodes_then_groups_and_indexed_so() {
        let plan = plan();
        let all = select(&plan, None).unwrap();
        assert_eq!(names(&plan, &all), ["n1", "n2", "n3", "shop", "blog"]);
        let index: Vec<usize> = all.iter().map(|t| t.index(&plan)).collect();
        assert_eq!(index, [0, 1, 2, 3, 4]);
        assert_eq!(TargetId::Group(1).index(&plan), 4);
        assert_eq!(TargetId::Node(2).tags(&plan), ["edge".to_owned()]);
        assert_eq!(TargetId::Group(0).tags(&plan), ["canary".to_owned()]);
        assert!(TargetId::Group(1).tags(&plan).is_empty());
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
        plan.rollout.waves = vec![Amount::Count(1), Amount::Percent(50.0)];
        let s = build(&plan, None).unwrap();
        assert_eq!(
            s.waves,
            vec![
                vec![TargetId::Node(0)],
                vec![TargetId::Node(1), TargetId::Node(2), TargetId::Group(0)],
                vec![TargetId::Group(1)],
            ]
        );
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert_eq!(
            names(&plan, &s.targets().collect::<Vec<_>>()),
            ["n1", "n2", "n3", "shop", "blog"]
        );
        let one = build(&plan, Some("blog")).unwrap();
        assert_eq!((one.len(), one.is_empty()), (1, false));
        assert!(Schedule { waves: vec![] }.is_empty());
        assert_eq!(
            Schedule {
                waves: vec![vec![], vec![]]
            }
            .len(),
            0
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
}
