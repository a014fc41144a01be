//! Properties that must hold for every input, checked on generated ones: the schedule
//! covers every target exactly once in order, the rules agree with SemVer precedence,
//! package names parse back to what they were built from, and no plan text, however
//! mangled, makes loading panic.

use proptest::prelude::*;

use fleetup::package::{PackageName, VersionPolicy, check_versions};
use fleetup::plan::Amount;
use fleetup::plan::schedule::wave_sizes;
use semver::Version;

/// CI runs a few hundred cases; `PROPTEST_CASES=100000` runs a long fuzzing session.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        (1u64..50).prop_map(Amount::Count),
        (1u32..=100).prop_map(|p| Amount::Percent(p as f64))
    ]
}

/// The wave sizes worked out the long way, in whole numbers: wave i takes the i-th amount
/// asked for (the last one repeating), a count as it is, a percentage of the whole fleet
/// rounded up, never less than one, never more than is left.
fn oracle_sizes(total: usize, sizes: &[Amount]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let asked = &sizes[out.len().min(sizes.len() - 1)];
        let size = match asked {
            Amount::Count(c) => *c as usize,
            // Percentages are whole numbers here: p% of total, rounded up.
            Amount::Percent(p) => (*p as usize * total).div_ceil(100),
        };
        let size = size.clamp(1, left);
        out.push(size);
        left -= size;
    }
    out
}

/// A local plan of `n` nodes, n0 … n{n-1} in that order, with the given waves.
fn plan_with(n: usize, sizes: &[Amount]) -> fleetup::plan::Plan {
    let waves: Vec<String> = sizes
        .iter()
        .map(|a| match a {
            Amount::Count(c) => c.to_string(),
            Amount::Percent(p) => format!("\"{p}%\""),
        })
        .collect();
    let mut text = format!(
        "plan: 1\nname: p\nproduct: emqx\nrepository: ./repo\nto: 4.4.16\nrollout:\n  waves: [{}]\nnodes:\n",
        waves.join(", ")
    );
    for i in 0..n {
        text.push_str(&format!("  - {{ name: n{i}, root: ./n{i} }}\n"));
    }
    let loaded = fleetup::plan::load_text(
        fleetup::diagnostics::SourceFile::new("p.yaml", text),
        fleetup::plan::Format::Yaml,
        std::path::Path::new("."),
    );
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.plan.unwrap()
}

#[test]
fn wave_sizes_by_hand() {
    use Amount::{Count, Percent};
    // The shipped canary shape: one, then a quarter of the fleet, then the rest.
    assert_eq!(
        wave_sizes(10, &[Count(1), Percent(25.0), Percent(100.0)]),
        [1, 3, 6]
    );
    assert_eq!(wave_sizes(10, &[Count(3)]), [3, 3, 3, 1]);
    assert_eq!(wave_sizes(3, &[Percent(1.0)]), [1, 1, 1]);
    assert_eq!(
        wave_sizes(200, &[Percent(10.0), Count(50)]),
        [20, 50, 50, 50, 30]
    );
    assert_eq!(wave_sizes(0, &[Count(1)]), Vec::<usize>::new());
}

fn version() -> impl Strategy<Value = Version> {
    (
        0u64..5,
        0u64..5,
        0u64..20,
        proptest::option::of("[a-z]{1,3}\\.[1-9][0-9]?"),
    )
        .prop_map(|(a, b, c, pre)| {
            let mut v = Version::new(a, b, c);
            if let Some(p) = pre {
                v.pre = semver::Prerelease::new(&p).unwrap();
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn waves_cover_every_target_once_in_order(total in 0usize..300, sizes in proptest::collection::vec(amount(), 1..5)) {
        let w = wave_sizes(total, &sizes);
        prop_assert_eq!(&w, &oracle_sizes(total, &sizes));
        // The schedule of a plan with that many nodes: its waves, joined, are the plan's
        // nodes in the plan's order, each exactly once.
        if total > 0 {
            let plan = plan_with(total, &sizes);
            let schedule = fleetup::plan::schedule::build(&plan, None).unwrap();
            let waves: Vec<Vec<String>> = schedule
                .waves
                .iter()
                .map(|wave| wave.iter().map(|t| plan.target_name(*t).to_owned()).collect())
                .collect();
            prop_assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), w);
            let joined: Vec<String> = waves.into_iter().flatten().collect();
            let names: Vec<String> = (0..total).map(|i| format!("n{i}")).collect();
            prop_assert_eq!(joined, names);
        }
    }

    #[test]
    fn the_version_rules_agree_with_semver_precedence(a in version(), b in version()) {
        for policy in [VersionPolicy::Patch, VersionPolicy::Minor, VersionPolicy::Major] {
            let v = check_versions(&a, &b, policy);
            let not_newer = v.iter().any(|x| x.code.as_str() == "fleetup::rule::not-newer");
            // Refused as not newer exactly when b precedes a.
            prop_assert_eq!(not_newer, b < a);
            if b >= a {
                let allowed = v.is_empty();
                let expected = match policy {
                    VersionPolicy::Patch => (a.major, a.minor) == (b.major, b.minor) || a == b,
                    VersionPolicy::Minor => a.major == b.major || a == b,
                    VersionPolicy::Major => true,
                };
                prop_assert_eq!(allowed, expected, "{} → {} under {:?}", a, b, policy);
            }
        }
        // A looser policy never refuses what a stricter one allows.
        let ok = |p| check_versions(&a, &b, p).is_empty();
        prop_assert!(!ok(VersionPolicy::Patch) || ok(VersionPolicy::Minor));
        prop_assert!(!ok(VersionPolicy::Minor) || ok(VersionPolicy::Major));
    }

    #[test]
    fn package_names_parse_back_to_their_parts(
        product in "[a-z]{2,6}(-[a-z]{2,6})?",
        edition in proptest::option::of("ee|enterprise"),
        v in version(),
        runtime in proptest::option::of("otp[0-9]{2}(\\.[0-9]){0,3}(-[0-9])?"),
        os in "(ubuntu20\\.04|el8|debian12)",
        arch in "(amd64|arm64|x86_64|aarch64)",
    ) {
        let mut name = product.clone();
        if let Some(e) = &edition { name.push('-'); name.push_str(e); }
        name.push('-');
        name.push_str(&v.to_string());
        if let Some(r) = &runtime { name.push('-'); name.push_str(r); }
        name.push_str(&format!("-{os}-{arch}.zip"));
        let p = PackageName::parse(&name, &product, "otp").unwrap();
        prop_assert_eq!(&p.product, &product);
        prop_assert_eq!(p.edition.as_str(), edition.as_deref().unwrap_or("ce"));
        prop_assert_eq!(&p.version, &v);
        prop_assert_eq!(p.runtime.as_ref().map(|r| r.full.clone()), runtime);
        prop_assert_eq!(&p.os, &os);
        let want_arch = match arch.as_str() { "x86_64" => "amd64", "aarch64" => "arm64", a => a };
        prop_assert_eq!(p.arch.as_str(), want_arch);
    }

    #[test]
    fn package_name_parsing_never_panics(name in "\\PC{0,60}") {
        let _ = PackageName::parse(&name, "emqx", "otp");
        let _ = PackageName::parse(&name, "", "");
    }
}

/// Plan texts mutated from the shipped examples: loading must never panic, and every
/// problem it reports must point inside the file.
fn mutate(text: &str, ops: &[(usize, u8, u8)]) -> String {
    let mut b = text.as_bytes().to_vec();
    for &(pos, op, byte) in ops {
        if b.is_empty() {
            break;
        }
        let i = pos % b.len();
        match op % 4 {
            0 => {
                b.remove(i);
            }
            1 => b.insert(i, byte),
            2 => b[i] = byte,
            _ => {
                let j = (i + byte as usize) % b.len();
                b.swap(i, j);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(400), ..ProptestConfig::default() })]

    #[test]
    fn mangled_plans_never_panic_and_point_inside_the_file(
        which in 0usize..6,
        ops in proptest::collection::vec((any::<usize>(), any::<u8>(), prop_oneof![Just(b':'), Just(b'-'), Just(b'['), Just(b'{'), Just(b'"'), Just(b'\n'), Just(b' '), Just(b'='), Just(b'&'), Just(b'*'), any::<u8>()]), 1..8),
    ) {
        let files = ["plans/patch-rollout.yaml", "plans/patch-rollout.toml", "plans/canary-rollout.yaml", "plans/canary-rollout.toml", "plans/group-upgrade.yaml", "plans/group-upgrade.toml"];
        let path = std::path::Path::new(files[which]);
        let text = mutate(&std::fs::read_to_string(path).unwrap(), &ops);
        let format = fleetup::plan::Format::from_path(path).unwrap();
        let loaded = fleetup::plan::load_text(fleetup::diagnostics::SourceFile::new("p", text.clone()), format, std::path::Path::new("plans"));
        for p in &loaded.problems {
            if let Some(s) = p.span {
                prop_assert!(s.start + s.len <= text.len(), "{} points past the end: {:?}", p.code.as_str(), s);
                prop_assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.start + s.len), "{} cuts a character: {:?}", p.code.as_str(), s);
            }
            // Rendered as a person sees it: the code, the message, the help, and for a
            // located problem the file's line and column over a quote of the source.
            let file = loaded.file.as_ref();
            let shown = fleetup::diagnostics::render_human(std::slice::from_ref(p), file, false);
            prop_assert!(shown.contains(p.code.as_str()), "{shown}");
            // (miette wraps long lines: compare words)
            let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert!(words(&shown).contains(&words(p.help_text())), "{shown}");
            if let (Some(s), Some(f)) = (p.span, file) {
                let (line, col) = f.line_col(s.start);
                prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1, "{shown}");
                prop_assert!(shown.contains(&format!("[p:{line}:{col}]")), "{shown}");
            }
            let github = fleetup::diagnostics::render_github(std::slice::from_ref(p), file);
            prop_assert_eq!(github.lines().count(), 1, "{}", github);
        }
        if let Some(plan) = &loaded.plan {
            let _ = fleetup::run::kinds::World::read(plan, &[], fleetup::run::kinds::Reading::Check);
            let _ = fleetup::plan::schedule::build(plan, None);
        }
    }
}
