//! Properties that must hold for every input, checked on generated ones: the schedule
//! covers every target exactly once in order, the rules agree with SemVer precedence,
//! package names parse back to what they were built from, and no plan text, however
//! mangled, makes loading panic.

use proptest::prelude::*;

use fleetup::package::{PackageName, VersionPolicy, check_versions};
use fleetup::plan::Amount;
use fleetup::schedule::wave_sizes;
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
        prop_assert_eq!(w.iter().sum::<usize>(), total);
        prop_assert!(w.iter().all(|s| *s >= 1));
        // Every wave but the last is the size asked for (rounded up, at least 1).
        for (i, s) in w.iter().enumerate().take(w.len().saturating_sub(1)) {
            let want = match sizes.get(i).unwrap_or(sizes.last().unwrap()) {
                Amount::Count(c) => *c as usize,
                Amount::Percent(p) => ((p * total as f64 / 100.0).ceil() as usize).max(1),
            };
            prop_assert_eq!(*s, want);
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
                prop_assert!(s.start <= text.len(), "{} points past the end: {:?}", p.code.as_str(), s);
            }
        }
        if let Some(plan) = &loaded.plan {
            let _ = fleetup::preflight::run(plan);
            let _ = fleetup::schedule::build(plan, None);
        }
    }
}
