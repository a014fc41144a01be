//! Release package names, the compatibility rules between two releases (SPEC §1.1), and
//! the lookup of a node's package in a repository directory.
//!
//! Everything a rule needs is read from the package file name; this module never opens a
//! zip (the store does) and never decides what to do about a violation (callers do).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use semver::Version;
use sha2::{Digest, Sha256};

use crate::diagnostics::Code;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VersionPolicy {
    #[default]
    Patch,
    Minor,
    Major,
}

impl VersionPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "patch" => Some(Self::Patch),
            "minor" => Some(Self::Minor),
            "major" => Some(Self::Major),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patch => "patch",
            Self::Minor => "minor",
            Self::Major => "major",
        }
    }
}

/// How alike the runtimes of two releases must be for one to replace the other: the
/// same major (Erlang/OTP's rule, the default), the same major and minor (a Python's
/// compiled modules load only on the minor they were built for), or the very same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RuntimeRule {
    #[default]
    Major,
    Minor,
    Exact,
}

impl RuntimeRule {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "major" => Some(Self::Major),
            "minor" => Some(Self::Minor),
            "exact" => Some(Self::Exact),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Major => "major",
            Self::Minor => "minor",
            Self::Exact => "exact",
        }
    }
}

pub const DEFAULT_EDITION: &str = "ce";

/// Editions EMQX has published besides ce: `emqx-ee-…` (4.x), `emqx-edge-…`,
/// `emqx-enterprise-…` (5.x). On a fresh store they tell the product from its edition.
pub const KNOWN_EDITIONS: &[&str] = &["ee", "edge", "enterprise"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// As written, e.g. `otp24.3.4.2-1`.
    pub full: String,
    /// The digits right after the prefix, e.g. 24; `None` when there are none.
    pub major: Option<u64>,
}

impl Runtime {
    /// The digits after the major and a dot (`py3.11.7`: 11), when there are.
    pub fn minor(&self) -> Option<u64> {
        let digits = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_digit()).collect() };
        let at = self.full.find(|c: char| c.is_ascii_digit())?;
        let rest = &self.full[at..];
        let major = digits(rest);
        let after = rest[major.len()..].strip_prefix('.')?;
        digits(after).parse().ok()
    }
}

/// What a release is built for: the OS and CPU architecture tokens of its package name
/// (`ubuntu20.04-amd64`, `el8-arm64`). A repository holds every platform of a version
/// side by side; a node takes the package of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    /// Normalised: `x86_64` is `amd64`, `aarch64` is `arm64`.
    pub arch: String,
}

impl Platform {
    /// `<os>-<arch>`, as package names write them.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let Some((os, arch)) = s.rsplit_once('-') else {
            return Err(format!(
                "`{s}` is not <os>-<arch>, such as ubuntu20.04-amd64"
            ));
        };
        if !is_token(os) || !is_token(arch) {
            return Err(format!(
                "`{s}` is not <os>-<arch>, such as ubuntu20.04-amd64"
            ));
        }
        Ok(Platform {
            os: os.to_owned(),
            arch: normalise_arch(arch),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os, self.arch)
    }
}

/// The platform of the machine this runs on, in EMQX's tokens (as its
/// `scripts/get-distro.sh` and `pkg-full-vsn.sh` name a build): `None` off Linux or when
/// `/etc/os-release` cannot be read.
pub fn this_platform() -> Option<Platform> {
    if std::env::consts::OS != "linux" {
        return None;
    }
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    platform_of(&text, std::env::consts::ARCH)
}

/// A platform from the text of `/etc/os-release` and the machine name (`uname -m`):
/// Amazon Linux is `amzn<VERSION_ID>`; Red Hat and its rebuilds (anything whose `ID` or
/// `ID_LIKE` says rhel) `el<major>`; every other distribution `<ID><VERSION_ID>`
/// (`ubuntu20.04`, `debian11`). `x86_64` is `amd64`, `aarch64` `arm64`, `arm*` `arm`.
pub fn platform_of(os_release: &str, machine: &str) -> Option<Platform> {
    let field = |k: &str| {
        os_release.lines().find_map(|l| {
            let v = l.strip_prefix(k)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').trim_matches('\'').to_owned())
        })
    };
    let id = field("ID")?.to_ascii_lowercase();
    let like = field("ID_LIKE").unwrap_or_default().to_ascii_lowercase();
    let version = field("VERSION_ID").unwrap_or_default();
    let os = if id == "amzn" {
        format!("amzn{version}")
    } else if id == "rhel" || like.split_whitespace().any(|w| w == "rhel") {
        format!("el{}", version.split('.').next().unwrap_or(""))
    } else {
        format!("{id}{version}")
    };
    let arch = match machine {
        "x86_64" | "amd64" => "amd64".to_owned(),
        "aarch64" | "arm64" => "arm64".to_owned(),
        m if m.starts_with("arm") => "arm".to_owned(),
        m => m.to_owned(),
    };
    (is_token(&os) && is_token(&arch)).then_some(Platform { os, arch })
}

/// Several platforms, as a message lists them.
pub fn platform_list<'a>(ps: impl IntoIterator<Item = &'a Platform>) -> String {
    let mut v: Vec<String> = ps.into_iter().map(Platform::to_string).collect();
    v.sort();
    v.dedup();
    v.join(", ")
}

/// How a release package is archived: EMQX 4.x publishes zips, 5.x `.tar.gz` on Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archive {
    Zip,
    TarGz,
}

impl Archive {
    pub const ENDINGS: [(&'static str, Archive); 2] =
        [(".zip", Archive::Zip), (".tar.gz", Archive::TarGz)];

    /// The archive a file name ends in, and the name without that ending.
    pub fn of(file: &str) -> Option<(Archive, &str)> {
        Self::ENDINGS
            .iter()
            .find_map(|(end, a)| file.strip_suffix(end).map(|stem| (*a, stem)))
    }
}

/// Build flavours a package name may carry after its version (`emqx-5.1.0-elixir-…`):
/// they must match like an edition, and are never read as a pre-release.
pub const FLAVOURS: &[&str] = &["elixir"];

/// A parsed `<product>[-<edition>]-<version>[-<flavour>][-<runtime>]-<os>-<arch>` with
/// `.zip` or `.tar.gz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageName {
    pub file: String,
    pub archive: Archive,
    pub product: String,
    pub edition: String,
    pub version: Version,
    /// A build flavour such as `elixir`; `None` for the plain build.
    pub flavour: Option<String>,
    pub runtime: Option<Runtime>,
    pub os: String,
    /// Normalised: `x86_64` is `amd64`, `aarch64` is `arm64`.
    pub arch: String,
}

/// Which part of a package name failed to parse, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    pub file: String,
    pub part: &'static str,
    pub message: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.part, self.message)
    }
}

fn normalise_arch(arch: &str) -> String {
    match arch {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.to_owned(),
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
}

impl PackageName {
    pub fn parse(file: &str, product: &str, runtime_prefix: &str) -> Result<Self, NameError> {
        let err = |part, message: String| {
            Err(NameError {
                file: file.to_owned(),
                part,
                message,
            })
        };
        let Some((archive, stem)) = Archive::of(file) else {
            return err(
                "extension",
                format!("`{file}` does not end in .zip or .tar.gz"),
            );
        };
        let Some(rest) = stem.strip_prefix(product).and_then(|r| r.strip_prefix('-')) else {
            return err(
                "product",
                format!("`{file}` does not start with `{product}-`"),
            );
        };
        let Some((middle, arch)) = rest.rsplit_once('-') else {
            return err(
                "os",
                format!("`{file}` has no <os>-<arch> after the version"),
            );
        };
        let Some((middle, os)) = middle.rsplit_once('-') else {
            return err(
                "os",
                format!("`{file}` has no <os>-<arch> after the version"),
            );
        };
        if !is_token(arch) {
            return err(
                "arch",
                format!("`{arch}` in `{file}` is not an architecture"),
            );
        }
        if !is_token(os) {
            return err("os", format!("`{os}` in `{file}` is not an OS name"));
        }
        let (edition, middle) = match middle.split_once('-') {
            Some((first, rest)) if !first.starts_with(|c: char| c.is_ascii_digit()) => {
                (first, rest)
            }
            _ if !middle.starts_with(|c: char| c.is_ascii_digit()) => {
                return err(
                    "version",
                    format!("`{file}` has no version after `{product}-`"),
                );
            }
            _ => (DEFAULT_EDITION, middle),
        };
        if !edition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return err(
                "edition",
                format!("`{edition}` in `{file}` is not an edition (lowercase letters and digits)"),
            );
        }
        // A flavour is a whole token after the version: taken out before the version is read.
        let mut flavour = None;
        let owned_middle;
        let middle = match middle
            .split('-')
            .enumerate()
            .skip(1)
            .find(|(_, t)| FLAVOURS.contains(t))
        {
            Some((i, t)) => {
                flavour = Some(t.to_owned());
                owned_middle = middle
                    .split('-')
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, t)| t)
                    .collect::<Vec<_>>()
                    .join("-");
                owned_middle.as_str()
            }
            None => middle,
        };
        // The runtime starts at the first `-<prefix>` after which the text before is a version.
        let needle = format!("-{runtime_prefix}");
        let mut split = None;
        if !runtime_prefix.is_empty() {
            // A runtime carries its version right after the prefix (`otp24…`); this keeps
            // a pre-release such as `5.0.0-otp.1` a version. A pre-release that itself looks
            // like a runtime (`5.0.0-otp24`) is read as a runtime: the name cannot tell.
            for (pos, _) in middle.match_indices(&needle) {
                let after = middle[pos + needle.len()..].chars().next();
                if !after.is_some_and(|c| c.is_ascii_digit()) {
                    continue;
                }
                if let Ok(v) = Version::parse(&middle[..pos]) {
                    split = Some((v, &middle[pos + 1..]));
                    break;
                }
            }
        }
        let (version, runtime) = match split {
            Some((v, rt)) => {
                let digits: String = rt[runtime_prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                (
                    v,
                    Some(Runtime {
                        full: rt.to_owned(),
                        major: digits.parse().ok(),
                    }),
                )
            }
            None => match Version::parse(middle) {
                Ok(v) => (v, None),
                Err(e) => {
                    return err(
                        "version",
                        format!("`{middle}` in `{file}` is not a SemVer version: {e}"),
                    );
                }
            },
        };
        Ok(PackageName {
            file: file.to_owned(),
            archive,
            product: product.to_owned(),
            edition: edition.to_owned(),
            version,
            flavour,
            runtime,
            os: os.to_owned(),
            arch: normalise_arch(arch),
        })
    }
}

impl PackageName {
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            arch: self.arch.clone(),
        }
    }

    /// What the package is built for, as messages name it: `el8-arm64`, `el8-arm64 elixir`.
    pub fn build(&self) -> String {
        match &self.flavour {
            Some(f) => format!("{}-{} {f}", self.os, self.arch),
            None => format!("{}-{}", self.os, self.arch),
        }
    }
}

/// Several builds, as a message lists them.
pub fn build_list<'a>(ps: impl IntoIterator<Item = &'a PackageName>) -> String {
    let mut v: Vec<String> = ps.into_iter().map(PackageName::build).collect();
    v.sort();
    v.dedup();
    v.join(", ")
}

/// A broken compatibility rule, worded to name both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub code: Code,
    pub message: String,
}

/// The version rules alone (`version-rule`, `not-newer`), for when only versions are known.
/// The same version on both sides is no violation: there is nothing to do.
pub fn check_versions(from: &Version, to: &Version, policy: VersionPolicy) -> Vec<Violation> {
    let mut out = Vec::new();
    if to < from {
        out.push(Violation {
            code: Code::RuleNotNewer,
            message: format!("{from} → {to} is not an upgrade: {to} is older than {from}"),
        });
        return out;
    }
    if to == from {
        return out;
    }
    let ok = match policy {
        VersionPolicy::Patch => from.major == to.major && from.minor == to.minor,
        VersionPolicy::Minor => from.major == to.major,
        VersionPolicy::Major => true,
    };
    if !ok {
        let message = match policy {
            VersionPolicy::Patch => format!(
                "{from} → {to} is not a patch upgrade: hot upgrade is allowed only between patch versions of {}.{}.x",
                from.major, from.minor
            ),
            _ => format!(
                "{from} → {to} is not a minor upgrade: the plan's policy allows only versions of {}.x",
                from.major
            ),
        };
        out.push(Violation {
            code: Code::RuleVersion,
            message,
        });
    }
    out
}

/// Every rule of SPEC §1.1 between the release a node runs and a target package.
pub fn check_upgrade(
    from: &PackageName,
    to: &PackageName,
    policy: VersionPolicy,
    rule: RuntimeRule,
) -> Vec<Violation> {
    let mut out = check_versions(&from.version, &to.version, policy);
    let (fv, tv) = (&from.version, &to.version);
    if from.edition != to.edition {
        out.push(Violation {
            code: Code::RuleEdition,
            message: format!(
                "{fv} ({}) → {tv} ({}) crosses editions: the {} edition never upgrades to {}",
                from.edition, to.edition, from.edition, to.edition
            ),
        });
    }
    if from.flavour != to.flavour {
        let fl = |f: &Option<String>| f.clone().unwrap_or_else(|| "the plain build".into());
        out.push(Violation {
            code: Code::RuleFlavour,
            message: format!(
                "{fv} ({}) → {tv} ({}) changes the build flavour: a release only replaces one of its own flavour",
                fl(&from.flavour),
                fl(&to.flavour)
            ),
        });
    }
    let rt = |r: &Option<Runtime>| {
        r.as_ref()
            .map_or("no runtime".to_owned(), |r| r.full.clone())
    };
    let runtime_ok = match (&from.runtime, &to.runtime) {
        (None, None) => true,
        (Some(a), Some(b)) => match (rule, a.major, b.major) {
            (RuntimeRule::Exact, _, _) => a.full == b.full,
            (RuntimeRule::Minor, Some(x), Some(y)) => x == y && a.minor() == b.minor(),
            (RuntimeRule::Major, Some(x), Some(y)) => x == y,
            _ => a.full == b.full,
        },
        _ => false,
    };
    if !runtime_ok {
        let (fm, tm) = (
            from.runtime.as_ref().and_then(|r| r.major),
            to.runtime.as_ref().and_then(|r| r.major),
        );
        let fmin = from.runtime.as_ref().and_then(Runtime::minor);
        let tmin = to.runtime.as_ref().and_then(Runtime::minor);
        let (what, why) = match (rule, fm, tm) {
            (RuntimeRule::Major, Some(a), Some(b)) => (
                format!(" (runtime major {a} → {b})"),
                "hot upgrade needs the same runtime major version",
            ),
            (RuntimeRule::Minor, Some(a), Some(b)) => (
                format!(
                    " (runtime {a}.{} → {b}.{})",
                    fmin.map_or("?".into(), |m| m.to_string()),
                    tmin.map_or("?".into(), |m| m.to_string())
                ),
                "the product's `runtime_compat: minor` needs the same runtime major and minor version",
            ),
            (RuntimeRule::Exact, _, _) => (
                String::new(),
                "the product's `runtime_compat: exact` needs the very same runtime",
            ),
            _ => (
                String::new(),
                "hot upgrade needs the same runtime major version",
            ),
        };
        out.push(Violation {
            code: Code::RuleRuntime,
            message: format!(
                "{fv} on {} → {tv} on {} changes the runtime{what}: {why}",
                rt(&from.runtime),
                rt(&to.runtime)
            ),
        });
    }
    if from.os != to.os {
        out.push(Violation {
            code: Code::RuleOs,
            message: format!(
                "{fv} for {} → {tv} for {}: a release built for {} cannot replace one built for {}",
                from.os, to.os, to.os, from.os
            ),
        });
    }
    if from.arch != to.arch {
        out.push(Violation {
            code: Code::RuleArch,
            message: format!(
                "{fv} for {} → {tv} for {}: a release built for {} cannot replace one built for {}",
                from.arch, to.arch, to.arch, from.arch
            ),
        });
    }
    out
}

/// Release packages found in a repository directory.
#[derive(Debug, Default)]
pub struct Repository {
    pub dir: PathBuf,
    pub packages: Vec<PackageName>,
    /// Files that start with the product's name but do not parse.
    pub unparsed: Vec<NameError>,
}

#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a PackageName),
    /// None of this edition; these of other editions have the version.
    Missing {
        other_editions: Vec<&'a PackageName>,
    },
    /// The edition has the version, but not for the wanted platform or flavour: these.
    OtherBuilds(Vec<&'a PackageName>),
    /// No platform was given and the version is there for several: these.
    Undecided(Vec<Platform>),
    Ambiguous(Vec<&'a PackageName>),
}

/// Which package of a version a node wants.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub edition: String,
    /// The node's platform, when something tells it (its release, its `platform:`).
    pub platform: Option<Platform>,
    /// The runtime major of the release the node runs: among builds of one platform for
    /// several runtimes, the one of the same major.
    pub runtime_major: Option<u64>,
    /// The platform of the machine the node is on (a remote host reports it): it decides
    /// between several platforms when nothing else does.
    pub host: Option<Platform>,
    /// The build flavour of the release the node runs (`None`: the plain build).
    pub flavour: Option<String>,
}

impl Wanted {
    /// The build a node wants, as messages name it (`el8-arm64`, `elixir`, `this node`).
    pub fn build(&self) -> String {
        match (&self.platform, &self.flavour) {
            (Some(p), Some(f)) => format!("{p} {f}"),
            (Some(p), None) => p.to_string(),
            (None, Some(f)) => f.clone(),
            (None, None) => "this node's build".into(),
        }
    }

    /// What a node running `running` wants (edition: `asked`, else the running one's).
    pub fn of(
        running: Option<&PackageName>,
        asked: Option<&str>,
        platform: Option<&Platform>,
    ) -> Wanted {
        Wanted {
            edition: asked
                .map(str::to_owned)
                .or_else(|| running.map(|p| p.edition.clone()))
                .unwrap_or_else(|| DEFAULT_EDITION.to_owned()),
            platform: running
                .map(PackageName::platform)
                .or_else(|| platform.cloned()),
            runtime_major: running
                .and_then(|p| p.runtime.as_ref())
                .and_then(|r| r.major),
            host: None,
            flavour: running.and_then(|p| p.flavour.clone()),
        }
    }
}

impl Repository {
    pub fn scan(dir: &Path, product: &str, runtime_prefix: &str) -> std::io::Result<Repository> {
        let mut repo = Repository {
            dir: dir.to_owned(),
            ..Default::default()
        };
        let prefix = format!("{product}-");
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if Archive::of(&name).is_none() || !name.starts_with(&prefix) {
                continue;
            }
            match PackageName::parse(&name, product, runtime_prefix) {
                Ok(p) => repo.packages.push(p),
                Err(e) => repo.unparsed.push(e),
            }
        }
        repo.packages.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(repo)
    }

    /// The one package of `version` that `want` names.
    pub fn find(&self, version: &Version, want: &Wanted) -> Lookup<'_> {
        let same_version: Vec<&PackageName> = self
            .packages
            .iter()
            .filter(|p| &p.version == version)
            .collect();
        let edition: Vec<&PackageName> = same_version
            .iter()
            .copied()
            .filter(|p| p.edition == want.edition)
            .collect();
        if edition.is_empty() {
            return Lookup::Missing {
                other_editions: same_version,
            };
        }
        let mut hits: Vec<&PackageName> = edition
            .iter()
            .copied()
            .filter(|p| p.flavour == want.flavour)
            .filter(|p| {
                want.platform
                    .as_ref()
                    .is_none_or(|pf| p.os == pf.os && p.arch == pf.arch)
            })
            .collect();
        if hits.is_empty() {
            return Lookup::OtherBuilds(edition);
        }
        // Builds for several runtimes: the node's runtime major, when that narrows it.
        if hits.len() > 1
            && let Some(major) = want.runtime_major
        {
            let same: Vec<&PackageName> = hits
                .iter()
                .copied()
                .filter(|p| p.runtime.as_ref().and_then(|r| r.major) == Some(major))
                .collect();
            if !same.is_empty() {
                hits = same;
            }
        }
        let mut platforms: Vec<Platform> = hits.iter().map(|p| p.platform()).collect();
        platforms.sort();
        platforms.dedup();
        // Several platforms and nothing named one: the host's, when it is among them.
        if want.platform.is_none()
            && platforms.len() > 1
            && let Some(h) = &want.host
            && platforms.contains(h)
        {
            hits.retain(|p| p.os == h.os && p.arch == h.arch);
            platforms = vec![h.clone()];
        }
        match hits.len() {
            1 => Lookup::Found(hits[0]),
            _ if want.platform.is_none() && platforms.len() > 1 => Lookup::Undecided(platforms),
            _ => Lookup::Ambiguous(hits),
        }
    }

    pub fn path_of(&self, p: &PackageName) -> PathBuf {
        self.dir.join(&p.file)
    }

    /// The files of `version` a lookup passed over, each with why, for the message that
    /// says no package fits: a name read as another version (a runtime whose prefix is
    /// not the product's is read as a pre-release: `0.11.3-py3.11.7`), or a name that
    /// does not parse.
    pub fn passed_over(&self, version: &Version) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.packages {
            let v = &p.version;
            if v == version
                || (v.major, v.minor, v.patch) != (version.major, version.minor, version.patch)
            {
                continue;
            }
            let pre = v.pre.as_str();
            let letters: String = pre
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let why = if !letters.is_empty()
                && pre[letters.len()..].starts_with(|c: char| c.is_ascii_digit())
            {
                format!(
                    "read as version {v}: if `{pre}` is its runtime, the product's runtime prefix is `{letters}` (`runtime: {letters}` in the plan or node.toml, `--runtime {letters}` by hand)"
                )
            } else {
                format!("version {v}, not {version}")
            };
            out.push(format!("`{}` {why}", p.file));
        }
        let needle = version.to_string();
        for e in &self.unparsed {
            if e.file.contains(&needle) {
                out.push(format!("{} cannot be read ({e})", e.file));
            }
        }
        out
    }

    /// How messages name edition `edition` of this repository's product: not at all
    /// when the product has no editions (no package names one) and `edition` is the
    /// default, so a product without editions is never told about "ce".
    pub fn edition_words(&self, edition: &str) -> String {
        if edition == DEFAULT_EDITION && self.packages.iter().all(|p| p.edition == DEFAULT_EDITION)
        {
            String::new()
        } else {
            format!("{edition} ")
        }
    }
}

/// SHA-256 of a file, in lowercase hex.
/// Whether `name` names a file in one directory and nothing else: not empty, not
/// hidden, no path separator (a mirror's index line, a package sent to a host).
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The expected digest from a `<package>.sha256` file beside the package, if there is one.
/// The file is in `sha256sum` format: the hex digest, optionally followed by a file name.
pub fn sidecar_sha256(package: &Path) -> Result<Option<String>, String> {
    let mut side = package.as_os_str().to_owned();
    side.push(".sha256");
    let side = PathBuf::from(side);
    let text = match std::fs::read_to_string(&side) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", side.display())),
    };
    let digest = text.split_whitespace().next().unwrap_or("");
    if is_sha256(digest) {
        Ok(Some(digest.to_ascii_lowercase()))
    } else {
        Err(format!("{} does not hold a SHA-256 digest", side.display()))
    }
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(file: &str) -> PackageName {
        PackageName::parse(file, "emqx", "otp").unwrap()
    }

    #[test]
    fn a_build_is_named_by_platform_and_flavour_and_listed_once_each() {
        let plain = p("emqx-5.1.0-otp25.3.2-2-el8-arm64.zip");
        let elixir = p("emqx-5.1.0-elixir-otp25.3.2-2-el8-arm64.zip");
        let ubuntu = p("emqx-5.1.0-otp25.3.2-2-ubuntu22.04-amd64.zip");
        assert_eq!(plain.build(), "el8-arm64");
        assert_eq!(elixir.build(), "el8-arm64 elixir");
        assert_eq!(
            build_list([&ubuntu, &plain, &elixir, &plain]),
            "el8-arm64, el8-arm64 elixir, ubuntu22.04-amd64"
        );
    }

    #[test]
    fn the_runtime_rule_compares_majors_and_names_them() {
        let from = p("emqx-4.4.0-otp24.3.4.2-1-ubuntu20.04-amd64.zip");
        // Same major, another minor: allowed.
        let same = p("emqx-4.4.1-otp24.1-ubuntu20.04-amd64.zip");
        assert!(check_upgrade(&from, &same, VersionPolicy::Patch, RuntimeRule::Major).is_empty());
        // Another major: refused, both majors named.
        let other = p("emqx-4.4.1-otp25.1-ubuntu20.04-amd64.zip");
        let v = check_upgrade(&from, &other, VersionPolicy::Patch, RuntimeRule::Major);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].code, Code::RuleRuntime);
        assert!(
            v[0].message.contains("(runtime major 24 → 25)"),
            "{}",
            v[0].message
        );
        // No runtime on one side: refused, without majors to name.
        let none = p("emqx-4.4.1-ubuntu20.04-amd64.zip");
        let v = check_upgrade(&from, &none, VersionPolicy::Patch, RuntimeRule::Major);
        assert_eq!(v[0].code, Code::RuleRuntime);
        assert!(v[0].message.contains("no runtime"), "{}", v[0].message);
        assert!(!v[0].message.contains("(runtime major"), "{}", v[0].message);
    }

    /// `runtime_compat`: the same major (OTP's rule, the default), the same major and
    /// minor (a Python's compiled modules), or the very same runtime.
    #[test]
    fn the_runtime_rule_asks_for_the_major_the_minor_or_the_very_runtime() {
        let py = |file: &str| PackageName::parse(file, "amqtt", "py").unwrap();
        let from = py("amqtt-0.11.2-py3.11.7-debian12-amd64.zip");
        let next_minor = py("amqtt-0.11.3-py3.12.1-debian12-amd64.zip");
        let same_minor = py("amqtt-0.11.3-py3.11.9-debian12-amd64.zip");
        let codes = |v: Vec<Violation>| v.into_iter().map(|v| v.code).collect::<Vec<_>>();
        assert_eq!(from.runtime.as_ref().unwrap().minor(), Some(11));
        assert!(
            check_upgrade(&from, &next_minor, VersionPolicy::Patch, RuntimeRule::Major).is_empty()
        );
        let v = check_upgrade(&from, &next_minor, VersionPolicy::Patch, RuntimeRule::Minor);
        assert_eq!(codes(v.clone()), vec![Code::RuleRuntime]);
        assert!(
            v[0].message
                .contains("(runtime 3.11 → 3.12): the product's `runtime_compat: minor`"),
            "{}",
            v[0].message
        );
        assert!(
            check_upgrade(&from, &same_minor, VersionPolicy::Patch, RuntimeRule::Minor).is_empty()
        );
        assert_eq!(
            codes(check_upgrade(
                &from,
                &same_minor,
                VersionPolicy::Patch,
                RuntimeRule::Exact
            )),
            vec![Code::RuleRuntime]
        );
        assert!(check_upgrade(&from, &from, VersionPolicy::Patch, RuntimeRule::Exact).is_empty());
        // OTP's full runtime names: the minor is the digits after the major's dot.
        let otp = p("emqx-4.4.1-otp24.3.4.2-1-ubuntu20.04-amd64.zip");
        assert_eq!(otp.runtime.unwrap().minor(), Some(3));
    }

    #[test]
    fn runtimes_without_a_major_must_be_the_same_runtime() {
        let with = |full: &str| {
            let mut p = p("emqx-4.4.1-otp24.3-ubuntu20.04-amd64.zip");
            p.runtime = Some(Runtime {
                full: full.into(),
                major: None,
            });
            p
        };
        let from = with("otp-custom");
        assert!(
            check_upgrade(
                &from,
                &with("otp-custom"),
                VersionPolicy::Patch,
                RuntimeRule::Major
            )
            .is_empty()
        );
        let v = check_upgrade(
            &from,
            &with("otp-other"),
            VersionPolicy::Patch,
            RuntimeRule::Major,
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].code, Code::RuleRuntime);
    }

    #[test]
    fn a_wanted_build_is_named_by_what_is_known_of_it() {
        let el8 = Platform::parse("el8-arm64").unwrap();
        let w = |platform: Option<&Platform>, flavour: Option<&str>| Wanted {
            platform: platform.cloned(),
            flavour: flavour.map(str::to_owned),
            ..Wanted::of(None, None, None)
        };
        assert_eq!(w(Some(&el8), Some("elixir")).build(), "el8-arm64 elixir");
        assert_eq!(w(Some(&el8), None).build(), "el8-arm64");
        assert_eq!(w(None, Some("elixir")).build(), "elixir");
        assert_eq!(w(None, None).build(), "this node's build");
    }

    #[test]
    fn a_scanned_repository_gives_the_paths_of_its_packages() {
        let dir = tempfile::tempdir().unwrap();
        let name = "emqx-4.4.16-otp24.3.4.2-1-el8-arm64.zip";
        std::fs::write(dir.path().join(name), b"").unwrap();
        std::fs::write(dir.path().join("emqx-not-a-version.zip"), b"").unwrap();
        let repo = Repository::scan(dir.path(), "emqx", "otp").unwrap();
        assert_eq!(repo.packages.len(), 1);
        assert_eq!(repo.unparsed.len(), 1);
        assert_eq!(repo.path_of(&repo.packages[0]), dir.path().join(name));
    }

    /// What a lookup passed over is said file by file, with real names of products that
    /// are not EMQX: a Python package whose runtime (`py3.11.7`) is read as a pre-release
    /// under the default prefix, and a Go release whose `v2.10.7` is no SemVer version.
    #[test]
    fn the_files_a_lookup_passed_over_are_named_with_why() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "amqtt-0.11.3-py3.11.7-debian12-amd64.zip",
            "amqtt-0.11.2-py3.11.7-debian12-amd64.zip",
            "amqtt-v0.11.3-debian12-amd64.zip",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let repo = Repository::scan(dir.path(), "amqtt", "otp").unwrap();
        let v = Version::new(0, 11, 3);
        assert!(matches!(
            repo.find(&v, &Wanted::of(None, None, None)),
            Lookup::Missing { .. }
        ));
        let seen = repo.passed_over(&v);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(
            seen[0],
            "`amqtt-0.11.3-py3.11.7-debian12-amd64.zip` read as version 0.11.3-py3.11.7: if `py3.11.7` is its runtime, the product's runtime prefix is `py` (`runtime: py` in the plan or node.toml, `--runtime py` by hand)"
        );
        // A misnamed file of that version (0.11.2's is another version: not named).
        assert!(
            seen[1].starts_with("amqtt-v0.11.3-debian12-amd64.zip cannot be read (version: "),
            "{seen:?}"
        );
        // With the product's own prefix, the package is found.
        let repo = Repository::scan(dir.path(), "amqtt", "py").unwrap();
        assert!(matches!(
            repo.find(&v, &Wanted::of(None, None, None)),
            Lookup::Found(_)
        ));
        // A product without editions is never told about "ce"; EMQX's repositories are.
        assert_eq!(repo.edition_words(DEFAULT_EDITION), "");
        let emqx = super::tests::repo(&[
            "emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip",
            "emqx-ee-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip",
        ]);
        assert_eq!(emqx.edition_words("ce"), "ce ");
        // A Go release's `v`-prefixed version does not parse, and says so.
        let nats = tempfile::tempdir().unwrap();
        std::fs::write(nats.path().join("nats-server-v2.10.7-linux-amd64.zip"), b"").unwrap();
        let repo = Repository::scan(nats.path(), "nats-server", "go").unwrap();
        let seen = repo.passed_over(&Version::new(2, 10, 7));
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].starts_with("nats-server-v2.10.7-linux-amd64.zip cannot be read (version: "),
            "{seen:?}"
        );
    }

    fn repo(files: &[&str]) -> Repository {
        Repository {
            dir: PathBuf::from("/repo"),
            packages: files.iter().map(|f| p(f)).collect(),
            unparsed: Vec::new(),
        }
    }

    fn found(l: Lookup<'_>) -> String {
        match l {
            Lookup::Found(p) => p.file.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn find_takes_the_nodes_platform_then_its_runtime_major_then_the_hosts_platform() {
        let r = repo(&[
            "emqx-4.4.20-otp24.3-ubuntu20.04-amd64.zip",
            "emqx-4.4.20-otp25.1-ubuntu20.04-amd64.zip",
            "emqx-4.4.20-otp24.3-el8-arm64.zip",
            "emqx-ee-4.4.20-otp24.3-ubuntu20.04-amd64.zip",
        ]);
        let v = Version::parse("4.4.20").unwrap();
        let ubuntu = Platform::parse("ubuntu20.04-amd64").unwrap();
        let el8 = Platform::parse("el8-arm64").unwrap();
        let want =
            |platform: Option<&Platform>, major: Option<u64>, host: Option<&Platform>| Wanted {
                runtime_major: major,
                host: host.cloned(),
                ..Wanted::of(None, None, platform)
            };
        // The node's platform and runtime major pick one of two runtimes.
        let w = want(Some(&ubuntu), Some(24), None);
        assert_eq!(
            found(r.find(&v, &w)),
            "emqx-4.4.20-otp24.3-ubuntu20.04-amd64.zip"
        );
        let w = want(Some(&ubuntu), Some(25), None);
        assert_eq!(
            found(r.find(&v, &w)),
            "emqx-4.4.20-otp25.1-ubuntu20.04-amd64.zip"
        );
        // A major no build has: both stay, and the lookup says it cannot choose.
        match r.find(&v, &want(Some(&ubuntu), Some(26), None)) {
            Lookup::Ambiguous(ps) => assert_eq!(ps.len(), 2),
            other => panic!("{other:?}"),
        }
        // Nothing names a platform: undecided between the two, unless the host is one.
        match r.find(&v, &want(None, Some(24), None)) {
            Lookup::Undecided(ps) => assert_eq!(ps, vec![el8.clone(), ubuntu.clone()]),
            other => panic!("{other:?}"),
        }
        let w = want(None, Some(24), Some(&el8));
        assert_eq!(found(r.find(&v, &w)), "emqx-4.4.20-otp24.3-el8-arm64.zip");
        let w = want(None, Some(24), Some(&ubuntu));
        assert_eq!(
            found(r.find(&v, &w)),
            "emqx-4.4.20-otp24.3-ubuntu20.04-amd64.zip"
        );
        // Another platform only: the builds there are, named.
        let other = Platform::parse("debian12-amd64").unwrap();
        match r.find(&v, &want(Some(&other), None, None)) {
            Lookup::OtherBuilds(ps) => assert_eq!(ps.len(), 3),
            other => panic!("{other:?}"),
        }
        // Another edition: missing, naming the editions there are.
        let w = Wanted {
            edition: "enterprise".into(),
            ..want(Some(&ubuntu), None, None)
        };
        match r.find(&v, &w) {
            Lookup::Missing { other_editions } => assert_eq!(other_editions.len(), 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_builds_of_one_platform_and_runtime_are_ambiguous_not_undecided() {
        let r = repo(&[
            "emqx-4.4.20-otp24.3-ubuntu20.04-amd64.zip",
            "emqx-4.4.20-otp24.3.4.2-1-ubuntu20.04-amd64.zip",
        ]);
        let v = Version::parse("4.4.20").unwrap();
        for w in [
            Wanted::of(None, None, None),
            Wanted::of(
                None,
                None,
                Some(&Platform::parse("ubuntu20.04-amd64").unwrap()),
            ),
        ] {
            match r.find(&v, &w) {
                Lookup::Ambiguous(ps) => assert_eq!(ps.len(), 2),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_sidecar_gives_its_digest_in_lowercase_or_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("emqx-4.4.16-otp24.3-el8-arm64.zip");
        assert_eq!(sidecar_sha256(&pkg), Ok(None));
        let digest = "AB".repeat(32);
        let side = dir.path().join("emqx-4.4.16-otp24.3-el8-arm64.zip.sha256");
        std::fs::write(
            &side,
            format!("{digest}  emqx-4.4.16-otp24.3-el8-arm64.zip\n"),
        )
        .unwrap();
        assert_eq!(sidecar_sha256(&pkg), Ok(Some("ab".repeat(32))));
        std::fs::write(&side, "not a digest\n").unwrap();
        assert!(
            sidecar_sha256(&pkg)
                .unwrap_err()
                .contains("does not hold a SHA-256")
        );
        assert!(is_sha256(&"0f".repeat(32)));
        assert!(!is_sha256(&"0f".repeat(31)));
        assert!(!is_sha256(&"0g".repeat(32)));
        // Unreadable is not absent.
        std::fs::remove_file(&side).unwrap();
        std::fs::create_dir(&side).unwrap();
        assert!(sidecar_sha256(&pkg).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn version_policies_read_and_write_their_names() {
        for (name, policy) in [
            ("patch", VersionPolicy::Patch),
            ("minor", VersionPolicy::Minor),
            ("major", VersionPolicy::Major),
        ] {
            assert_eq!(VersionPolicy::parse(name), Some(policy));
            assert_eq!(policy.as_str(), name);
        }
        assert_eq!(VersionPolicy::parse("Patch"), None);
        assert_eq!(VersionPolicy::parse(""), None);
    }

    #[test]
    fn this_machine_has_the_platform_its_os_release_names() {
        // The tests run on Linux with /etc/os-release (CI: Debian).
        let text = std::fs::read_to_string("/etc/os-release").unwrap();
        let here = this_platform().expect("a Linux machine with /etc/os-release");
        assert_eq!(Some(here), platform_of(&text, std::env::consts::ARCH));
    }

    #[test]
    fn machine_names_map_to_emqx_arch_tokens() {
        let deb = "ID=debian\nVERSION_ID=\"12\"\n";
        let arch = |m: &str| platform_of(deb, m).unwrap().arch;
        assert_eq!(arch("x86_64"), "amd64");
        assert_eq!(arch("aarch64"), "arm64");
        assert_eq!(arch("armv7l"), "arm");
        assert_eq!(arch("mips64"), "mips64");
        assert_eq!(arch("riscv64"), "riscv64");
        // Neither an OS nor a machine name that could not be a package-name token.
        assert_eq!(platform_of("ID=my/os\nVERSION_ID=1\n", "x86_64"), None);
        assert_eq!(platform_of(deb, "x86 64"), None);
    }
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// (file, edition, version, flavour, runtime, os, arch)
    type Expected = (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
        &'static str,
    );

    /// Package names EMQX has published (4.4 zips, 5.x tarballs; ce, ee, edge,
    /// enterprise; the OS and arch tokens of its builds), each with what it must read as.
    const REAL: &[Expected] = &[
        (
            "emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip",
            "ce",
            "4.4.16",
            None,
            Some("otp24.3.4.2-1"),
            "ubuntu20.04",
            "amd64",
        ),
        (
            "emqx-4.4.17-otp24.3.4.2-1-el8-arm64.zip",
            "ce",
            "4.4.17",
            None,
            Some("otp24.3.4.2-1"),
            "el8",
            "arm64",
        ),
        (
            "emqx-4.4.19-otp24.3.4.2-1-ubuntu18.04-amd64.zip",
            "ce",
            "4.4.19",
            None,
            Some("otp24.3.4.2-1"),
            "ubuntu18.04",
            "amd64",
        ),
        (
            "emqx-4.4.0-otp24.1.5-3-debian11-arm64.zip",
            "ce",
            "4.4.0",
            None,
            Some("otp24.1.5-3"),
            "debian11",
            "arm64",
        ),
        (
            "emqx-4.4.5-otp24.1.5-3-el7-amd64.zip",
            "ce",
            "4.4.5",
            None,
            Some("otp24.1.5-3"),
            "el7",
            "amd64",
        ),
        (
            "emqx-4.4.10-otp24.3.4.2-1-amzn2-arm64.zip",
            "ce",
            "4.4.10",
            None,
            Some("otp24.3.4.2-1"),
            "amzn2",
            "arm64",
        ),
        (
            "emqx-4.4.11-otp24.3.4.2-1-raspbian10-arm.zip",
            "ce",
            "4.4.11",
            None,
            Some("otp24.3.4.2-1"),
            "raspbian10",
            "arm",
        ),
        (
            "emqx-4.4.12-otp24.3.4.2-1-macos12-amd64.zip",
            "ce",
            "4.4.12",
            None,
            Some("otp24.3.4.2-1"),
            "macos12",
            "amd64",
        ),
        (
            "emqx-ee-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip",
            "ee",
            "4.4.16",
            None,
            Some("otp24.3.4.2-1"),
            "ubuntu20.04",
            "amd64",
        ),
        (
            "emqx-ee-4.4.19-otp24.3.4.2-1-el9-arm64.zip",
            "ee",
            "4.4.19",
            None,
            Some("otp24.3.4.2-1"),
            "el9",
            "arm64",
        ),
        (
            "emqx-edge-4.4.16-otp24.3.4.2-1-debian10-arm64.zip",
            "edge",
            "4.4.16",
            None,
            Some("otp24.3.4.2-1"),
            "debian10",
            "arm64",
        ),
        (
            "emqx-5.0.26-otp24.3.4.2-1-ubuntu22.04-amd64.tar.gz",
            "ce",
            "5.0.26",
            None,
            Some("otp24.3.4.2-1"),
            "ubuntu22.04",
            "amd64",
        ),
        (
            "emqx-5.1.0-ubuntu22.04-amd64.tar.gz",
            "ce",
            "5.1.0",
            None,
            None,
            "ubuntu22.04",
            "amd64",
        ),
        (
            "emqx-5.1.0-elixir-ubuntu22.04-amd64.tar.gz",
            "ce",
            "5.1.0",
            Some("elixir"),
            None,
            "ubuntu22.04",
            "amd64",
        ),
        (
            "emqx-5.1.0-elixir-otp25.3.2-1-el8-arm64.tar.gz",
            "ce",
            "5.1.0",
            Some("elixir"),
            Some("otp25.3.2-1"),
            "el8",
            "arm64",
        ),
        (
            "emqx-enterprise-5.1.0-debian12-arm64.tar.gz",
            "enterprise",
            "5.1.0",
            None,
            None,
            "debian12",
            "arm64",
        ),
        (
            "emqx-5.0.0-rc.1-el8-amd64.tar.gz",
            "ce",
            "5.0.0-rc.1",
            None,
            None,
            "el8",
            "amd64",
        ),
        (
            "emqx-5.2.0-alpha.1-elixir-amzn2023-amd64.tar.gz",
            "ce",
            "5.2.0-alpha.1",
            Some("elixir"),
            None,
            "amzn2023",
            "amd64",
        ),
        (
            "emqx-5.3.0-macos13-arm64.zip",
            "ce",
            "5.3.0",
            None,
            None,
            "macos13",
            "arm64",
        ),
    ];

    #[test]
    fn real_package_names_read_right() {
        for (file, edition, version, flavour, runtime, os, arch) in REAL {
            let n =
                PackageName::parse(file, "emqx", "otp").unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(n.edition, *edition, "{file}");
            assert_eq!(n.version, v(version), "{file}");
            assert_eq!(n.flavour.as_deref(), *flavour, "{file}");
            assert_eq!(
                n.runtime.as_ref().map(|r| r.full.as_str()),
                *runtime,
                "{file}"
            );
            assert_eq!((n.os.as_str(), n.arch.as_str()), (*os, *arch), "{file}");
            let tar = file.ends_with(".tar.gz");
            assert_eq!(n.archive == Archive::TarGz, tar, "{file}");
        }
        // EMQX 4.3 put the OS before the version: not a name this reads, and it says which
        // part failed, naming the file.
        let e = PackageName::parse("emqx-ubuntu20.04-4.3.22-amd64.zip", "emqx", "otp").unwrap_err();
        assert_eq!(e.file, "emqx-ubuntu20.04-4.3.22-amd64.zip");
        assert_eq!(e.part, "version");
    }

    #[test]
    fn a_flavour_must_match_like_an_edition() {
        let plain = p("emqx-5.1.0-ubuntu22.04-amd64.tar.gz");
        let elixir = p("emqx-5.1.1-elixir-ubuntu22.04-amd64.tar.gz");
        let codes: Vec<Code> =
            check_upgrade(&plain, &elixir, VersionPolicy::Patch, RuntimeRule::Major)
                .iter()
                .map(|x| x.code)
                .collect();
        assert_eq!(codes, vec![Code::RuleFlavour]);
        let repo = Repository {
            dir: PathBuf::from("r"),
            packages: vec![
                p("emqx-5.1.1-ubuntu22.04-amd64.tar.gz"),
                p("emqx-5.1.1-elixir-ubuntu22.04-amd64.tar.gz"),
            ],
            unparsed: Vec::new(),
        };
        for (running, want) in [
            (&plain, "emqx-5.1.1-ubuntu22.04-amd64.tar.gz"),
            (
                &p("emqx-5.1.0-elixir-ubuntu22.04-amd64.tar.gz"),
                "emqx-5.1.1-elixir-ubuntu22.04-amd64.tar.gz",
            ),
        ] {
            match repo.find(&v("5.1.1"), &Wanted::of(Some(running), None, None)) {
                Lookup::Found(f) => assert_eq!(f.file, want),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_hosts_platform_is_named_as_emqx_names_its_builds() {
        let pf = |text: &str, m: &str| platform_of(text, m).map(|p| p.to_string());
        let ubuntu = "NAME=\"Ubuntu\"\nVERSION_ID=\"20.04\"\nID=ubuntu\nID_LIKE=debian\n";
        assert_eq!(pf(ubuntu, "x86_64").as_deref(), Some("ubuntu20.04-amd64"));
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\nVERSION_ID=\"11\"\nID=debian\n";
        assert_eq!(pf(debian, "aarch64").as_deref(), Some("debian11-arm64"));
        let rocky = "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.9\"\n";
        assert_eq!(pf(rocky, "x86_64").as_deref(), Some("el8-amd64"));
        let rhel = "ID=\"rhel\"\nVERSION_ID=\"9.3\"\n";
        assert_eq!(pf(rhel, "aarch64").as_deref(), Some("el9-arm64"));
        let centos7 = "ID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\n";
        assert_eq!(pf(centos7, "x86_64").as_deref(), Some("el7-amd64"));
        let amzn = "NAME=\"Amazon Linux\"\nID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\nVERSION_ID=\"2\"\n";
        assert_eq!(pf(amzn, "x86_64").as_deref(), Some("amzn2-amd64"));
        let pi = "ID=raspbian\nVERSION_ID=\"10\"\n";
        assert_eq!(pf(pi, "armv7l").as_deref(), Some("raspbian10-arm"));
        assert_eq!(pf("NAME=nothing\n", "x86_64"), None);
    }

    #[test]
    fn a_repository_of_every_platform_gives_each_node_its_own() {
        let repo = Repository {
            dir: PathBuf::from("r"),
            packages: [
                "emqx-4.4.17-otp24.3.4.2-1-ubuntu20.04-amd64.zip",
                "emqx-4.4.17-otp24.3.4.2-1-ubuntu20.04-arm64.zip",
                "emqx-4.4.17-otp24.3.4.2-1-el8-amd64.zip",
                "emqx-4.4.17-otp24.3.4.2-1-el8-arm64.zip",
                "emqx-ee-4.4.17-otp24.3.4.2-1-el8-arm64.zip",
            ]
            .iter()
            .map(|f| p(f))
            .collect(),
            unparsed: Vec::new(),
        };
        let running = p("emqx-4.4.16-otp24.3.4.2-1-el8-arm64.zip");
        let want = Wanted::of(Some(&running), None, None);
        match repo.find(&v("4.4.17"), &want) {
            Lookup::Found(f) => assert_eq!(f.file, "emqx-4.4.17-otp24.3.4.2-1-el8-arm64.zip"),
            other => panic!("{other:?}"),
        }
        // A fresh node: its `platform:` decides, or nothing does.
        let el8 = Platform::parse("el8-x86_64").unwrap();
        assert_eq!(el8.to_string(), "el8-amd64");
        match repo.find(&v("4.4.17"), &Wanted::of(None, None, Some(&el8))) {
            Lookup::Found(f) => assert_eq!(f.file, "emqx-4.4.17-otp24.3.4.2-1-el8-amd64.zip"),
            other => panic!("{other:?}"),
        }
        match repo.find(&v("4.4.17"), &Wanted::of(None, None, None)) {
            Lookup::Undecided(ps) => assert_eq!(
                platform_list(&ps),
                "el8-amd64, el8-arm64, ubuntu20.04-amd64, ubuntu20.04-arm64"
            ),
            other => panic!("{other:?}"),
        }
        let deb = Platform::parse("debian11-amd64").unwrap();
        match repo.find(&v("4.4.17"), &Wanted::of(None, None, Some(&deb))) {
            Lookup::OtherBuilds(ps) => assert_eq!(ps.len(), 4),
            other => panic!("{other:?}"),
        }
        // A remote host's own platform decides for a fresh node, when it is there.
        let mut want = Wanted::of(None, None, None);
        want.host = Some(Platform::parse("ubuntu20.04-arm64").unwrap());
        match repo.find(&v("4.4.17"), &want) {
            Lookup::Found(f) => assert_eq!(f.os, "ubuntu20.04"),
            other => panic!("{other:?}"),
        }
        want.host = Some(deb.clone());
        assert!(matches!(
            repo.find(&v("4.4.17"), &want),
            Lookup::Undecided(_)
        ));
        assert!(Platform::parse("amd64").is_err() && Platform::parse("a b-amd64").is_err());
    }

    #[test]
    fn parses_the_spec_examples() {
        let ce = p("emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip");
        assert_eq!(ce.edition, "ce");
        assert_eq!(ce.version, v("4.4.16"));
        assert_eq!(ce.runtime.as_ref().unwrap().full, "otp24.3.4.2-1");
        assert_eq!(ce.runtime.as_ref().unwrap().major, Some(24));
        assert_eq!((ce.os.as_str(), ce.arch.as_str()), ("ubuntu20.04", "amd64"));

        let ee = p("emqx-ee-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip");
        assert_eq!(ee.edition, "ee");
        assert_eq!(ee.version, v("4.4.16"));

        let mb =
            PackageName::parse("my-broker-2.1.0-debian12-arm64.zip", "my-broker", "otp").unwrap();
        assert_eq!(mb.product, "my-broker");
        assert_eq!(mb.edition, "ce");
        assert_eq!(mb.runtime, None);
        assert_eq!((mb.os.as_str(), mb.arch.as_str()), ("debian12", "arm64"));
    }

    #[test]
    fn prereleases_and_build_metadata_stay_in_the_version() {
        let rc = p("emqx-5.0.0-rc.1-otp25.1-el8-x86_64.zip");
        assert_eq!(rc.version, v("5.0.0-rc.1"));
        assert_eq!(rc.runtime.unwrap().full, "otp25.1");
        assert_eq!(rc.arch, "amd64");
        let pre = p("emqx-ee-5.0.0-beta-2+b7-el8-aarch64.zip");
        assert_eq!(pre.version, v("5.0.0-beta-2+b7"));
        assert_eq!(pre.runtime, None);
        assert_eq!(pre.arch, "arm64");
    }

    #[test]
    fn a_prerelease_that_starts_like_the_runtime_stays_in_the_version() {
        // Found by the property tests (tests/properties.rs): kept as a regression test.
        let p = PackageName::parse("aa-0.0.0-otp.1-ubuntu20.04-amd64.zip", "aa", "otp").unwrap();
        assert_eq!(p.version, v("0.0.0-otp.1"));
        assert_eq!(p.runtime, None);
    }

    #[test]
    fn other_runtime_prefixes() {
        let j = PackageName::parse("svc-1.2.3-jre17.0.2-el9-amd64.zip", "svc", "jre").unwrap();
        assert_eq!(j.runtime.unwrap().major, Some(17));
    }

    #[test]
    fn names_the_part_that_failed() {
        let part = |f: &str| PackageName::parse(f, "emqx", "otp").unwrap_err().part;
        assert_eq!(part("emqx-4.4.16-el8-amd64.tar.bz2"), "extension");
        assert_eq!(part("nanomq-4.4.16-el8-amd64.zip"), "product");
        assert_eq!(part("emqx-4.4-otp24-el8-amd64.zip"), "version");
        assert_eq!(part("emqx-ee-el8-amd64.zip"), "version");
        assert_eq!(part("emqx-4.4.16.zip"), "os");
        assert_eq!(part("emqx-EE-4.4.16-el8-amd64.zip"), "edition");
        assert_eq!(part("emqx-4.4.16-el8-.zip"), "arch");
    }

    fn codes(v: Vec<Violation>) -> Vec<Code> {
        v.into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn patch_rule_and_its_wording() {
        let from = p("emqx-4.3.9-otp24.1-ubuntu20.04-amd64.zip");
        let to = p("emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip");
        let v = check_upgrade(&from, &to, VersionPolicy::Patch, RuntimeRule::Major);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].message,
            "4.3.9 → 4.4.16 is not a patch upgrade: hot upgrade is allowed only between patch versions of 4.3.x"
        );
        assert!(check_upgrade(&from, &to, VersionPolicy::Minor, RuntimeRule::Major).is_empty());
        let five = p("emqx-5.0.0-otp24.1-ubuntu20.04-amd64.zip");
        assert_eq!(
            codes(check_upgrade(
                &from,
                &five,
                VersionPolicy::Minor,
                RuntimeRule::Major
            )),
            vec![Code::RuleVersion]
        );
        assert!(check_upgrade(&from, &five, VersionPolicy::Major, RuntimeRule::Major).is_empty());
    }

    #[test]
    fn not_newer_even_under_major_policy() {
        let a = v("4.4.16");
        let b = v("4.4.0");
        let out = check_versions(&a, &b, VersionPolicy::Major);
        assert_eq!(codes(out.clone()), vec![Code::RuleNotNewer]);
        assert!(out[0].message.contains("4.4.16 → 4.4.0"));
        assert!(check_versions(&a, &a, VersionPolicy::Patch).is_empty());
        // A prerelease precedes its release.
        assert!(check_versions(&v("4.4.16-rc.1"), &a, VersionPolicy::Patch).is_empty());
        assert_eq!(
            codes(check_versions(&a, &v("4.4.16-rc.1"), VersionPolicy::Patch)),
            vec![Code::RuleNotNewer]
        );
    }

    #[test]
    fn every_crossing_is_its_own_violation_naming_both_sides() {
        let from = p("emqx-4.4.0-otp23.3-ubuntu20.04-amd64.zip");
        let cases = [
            (
                "emqx-ee-4.4.1-otp23.3-ubuntu20.04-amd64.zip",
                Code::RuleEdition,
                ["ce", "ee"],
            ),
            (
                "emqx-4.4.1-otp24.3-ubuntu20.04-amd64.zip",
                Code::RuleRuntime,
                ["otp23.3", "otp24.3"],
            ),
            (
                "emqx-4.4.1-ubuntu20.04-amd64.zip",
                Code::RuleRuntime,
                ["otp23.3", "no runtime"],
            ),
            (
                "emqx-4.4.1-otp23.3-el8-amd64.zip",
                Code::RuleOs,
                ["ubuntu20.04", "el8"],
            ),
            (
                "emqx-4.4.1-otp23.3-ubuntu20.04-arm64.zip",
                Code::RuleArch,
                ["amd64", "arm64"],
            ),
        ];
        for (file, code, sides) in cases {
            let out = check_upgrade(&from, &p(file), VersionPolicy::Patch, RuntimeRule::Major);
            assert_eq!(codes(out.clone()), vec![code], "{file}");
            for s in sides {
                assert!(out[0].message.contains(s), "{}: {s}", out[0].message);
            }
        }
        // Same runtime major, other minor: fine. Aliased architectures: fine.
        let ok = p("emqx-4.4.1-otp23.4.1-ubuntu20.04-x86_64.zip");
        assert!(check_upgrade(&from, &ok, VersionPolicy::Patch, RuntimeRule::Major).is_empty());
        // Everything at once: each rule reported.
        let all = p("emqx-ee-5.0.0-otp25-el8-arm64.zip");
        assert_eq!(
            codes(check_upgrade(
                &from,
                &all,
                VersionPolicy::Patch,
                RuntimeRule::Major
            )),
            vec![
                Code::RuleVersion,
                Code::RuleEdition,
                Code::RuleRuntime,
                Code::RuleOs,
                Code::RuleArch
            ]
        );
    }
}
