//! Every diagnostic fleetup can emit: its stable code, its help line, its exit code,
//! and the three ways it is rendered (miette for people, JSON, GitHub annotations).
//!
//! Callers build a [`Problem`] with a [`Code`] and a message; wording that is the same for
//! every occurrence of a code (the help) lives here and nowhere else.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

pub use crate::span::SourceFile;
use crate::span::Span;

macro_rules! codes {
    ($($variant:ident = $code:literal, exit $exit:ident, $help:literal;)*) => {
        /// A stable diagnostic code. The text after `fleetup::` never changes once released.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The full code, e.g. `fleetup::plan::unknown-key`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => concat!("fleetup::", $code)),* }
            }

            /// What the user can do about it, when the problem has no more specific help.
            pub fn help(self) -> &'static str {
                match self { $(Code::$variant => $help),* }
            }

            /// How a command ends when this diagnostic ends it (SPEC §5.6).
            pub fn exit(self) -> Exit {
                match self { $(Code::$variant => Exit::$exit),* }
            }
        }
    };
}

/// How a command ended, and the one place its process exit code is written (SPEC §5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exit {
    /// Done: nothing failed (or nothing was to be done).
    Ok,
    /// The input is invalid: a plan, a package, a store, a version.
    Invalid,
    /// The command line is wrong.
    Usage,
    /// Something failed and was rolled back (or left as `on_failure: stop` says).
    Failed,
    /// Something failed and could not be undone: a person has to look.
    Attention,
    /// Refused to start: a lock is held, the window is closed, a `from` pin differs.
    Refused,
    /// The maintenance window closed: the run waits for `fleetup resume`.
    Paused,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Invalid => 1,
            Exit::Usage => 2,
            Exit::Failed => 3,
            Exit::Attention => 4,
            Exit::Refused => 5,
            Exit::Paused => 6,
        }
    }
}

/// Why a command stopped: problems to render once (with the file they point into),
/// and how the command ends.
#[derive(Debug)]
pub struct Failure {
    pub problems: Vec<Problem>,
    pub file: Option<SourceFile>,
    pub exit: Exit,
}

impl From<Problem> for Failure {
    fn from(p: Problem) -> Failure {
        Failure {
            exit: p.code.exit(),
            problems: vec![p],
            file: None,
        }
    }
}

codes! {
    Io = "io", exit Invalid, "check that the path exists and is readable";
    PlanFormat = "plan::format", exit Invalid, "name plan files .yaml, .yml or .toml; the extension picks the format";
    PlanEncoding = "plan::encoding", exit Invalid, "save the plan as UTF-8 text";
    PlanEmpty = "plan::empty", exit Invalid, "start from `fleetup init` for a commented template";
    PlanSyntax = "plan::syntax", exit Invalid, "fix the syntax at the marked place; nothing else was checked in this file";
    PlanLimit = "plan::limit", exit Invalid, "the plan goes beyond a limit fleetup keeps so that no input can exhaust it";
    PlanSchemaVersion = "plan::schema-version", exit Invalid, "this fleetup reads `plan: 1`";
    UnknownKey = "plan::unknown-key", exit Invalid, "remove the key or fix its spelling; `fleetup schema` lists every key";
    MissingKey = "plan::missing-key", exit Invalid, "add the key; `fleetup init` shows every key with its default";
    DuplicateKey = "plan::duplicate-key", exit Invalid, "keep one of the two entries";
    WrongType = "plan::type", exit Invalid, "`fleetup schema` gives the type of every key";
    BadValue = "plan::value", exit Invalid, "`fleetup schema` describes what each key accepts";
    BadVersion = "plan::version", exit Invalid, "write a SemVer 2.0 version such as 4.4.16 or 5.0.0-rc.1, quoted in YAML if it looks like a number";
    BadDuration = "plan::duration", exit Invalid, "write a duration as a number and a unit: 500ms, 30s, 5m, 1h";
    BadWave = "plan::wave", exit Invalid, "a wave is a count of targets (1, 5), a share of all targets (\"25%\", \"100%\") or a selector (\"@canary\")";
    BadRollout = "plan::rollout", exit Invalid, "see docs/guide/rollout.md: domains need every target labelled, gates name waves the plan has, min_available must leave a target to change";
    DuplicateTarget = "plan::duplicate-target", exit Invalid, "every node and group needs its own name: names key the journal and `--only`";
    UnsafeName = "plan::unsafe-name", exit Invalid, "use letters, digits, '.', '_' and '-' (at most 64, not starting with '.' or '-')";
    Placeholder = "plan::placeholder", exit Invalid, "define the value under `vars` (of the target or of `defaults`), or write `{{` for a literal brace";
    NoTargets = "plan::no-targets", exit Invalid, "list at least one entry under `nodes` or `groups`";
    NoTargetVersion = "plan::no-target-version", exit Invalid, "give the node a `to`, or the plan a top-level `to`";
    EnvVar = "plan::env", exit Invalid, "export the variable before running fleetup; its value is never printed";
    Path = "plan::path", exit Invalid, "paths in a plan are relative to the plan file";
    PackageName = "package::name", exit Invalid, "release packages are named <product>[-<edition>]-<version>[-<flavour>][-<runtime>]-<os>-<arch>.zip (or .tar.gz)";
    PackageMissing = "package::missing", exit Invalid, "put the release package for that version into the repository";
    PackageAmbiguous = "package::ambiguous", exit Invalid, "keep exactly one package per product, edition and version in the repository";
    PackagePlatform = "package::platform", exit Invalid, "nothing tells this node's platform: give it `platform: <os>-<arch>` (or `defaults.platform`), or `--platform` by hand";
    PackageSignature = "package::signature", exit Invalid, "the package needs a valid <file>.minisig from a key in `trust.minisign`: fetch the release and its signature again; a package that does not verify is never unpacked";
    SignatureName = "signature::name", exit Invalid, "a genuine signature made for another file is no signature of this one: the mirror serves a package under a name it was not signed as; fetch the release from its publisher";
    PackageDownload = "package::download", exit Invalid, "the mirror did not deliver the package whole in time (retried, resumed; FLEETUP_DOWNLOAD_TIMEOUT bounds one download): check the mirror and run again; no node was changed";
    Checksum = "package::checksum", exit Invalid, "the package differs from its checksum: fetch it again and do not install it until they match";
    RuleVersion = "rule::version-rule", exit Invalid, "go through the intermediate versions, or relax the version policy (`policy.version` in a plan, `--policy` by hand) if a cold upgrade is intended";
    RuleNotNewer = "rule::not-newer", exit Invalid, "an upgrade goes to a newer version; use `fleetup node downgrade` to go back";
    RuleEdition = "rule::same-edition", exit Invalid, "an upgrade never crosses editions: pick the package of the node's own edition";
    RuleRuntime = "rule::same-runtime", exit Invalid, "pick the package built for the node's runtime major version";
    RuleFlavour = "rule::same-flavour", exit Invalid, "pick the package of the node's own build flavour (e.g. the -elixir build only replaces an -elixir build)";
    RuleOs = "rule::same-os", exit Invalid, "pick the package built for the node's operating system";
    RuleArch = "rule::same-arch", exit Invalid, "pick the package built for the node's CPU architecture";
    FromMismatch = "plan::from-mismatch", exit Refused, "the node runs another version than the plan's `from` pin: update the pin or check the node";
    StoreUnreadable = "store::unreadable", exit Invalid, "the node's releases/RELEASES could not be read; only fleetup writes it";
    MarketMissing = "market::missing-version", exit Invalid, "add the app template market/<app>/<version>.yaml, or pick a version the market has";
    PackageUnsafe = "package::unsafe-entry", exit Invalid, "the package tries to write outside its release tree: do not install it";
    PackageUnsupported = "package::unsupported", exit Invalid, "repack the release with stored or deflate compression (plain `zip`)";
    PackageTooLarge = "package::too-large", exit Invalid, "the package is larger than fleetup unpacks, or lies about its size";
    PackageCorrupt = "package::corrupt", exit Invalid, "the package is damaged or truncated: fetch it again";
    PackageDuplicate = "package::duplicate-entry", exit Invalid, "a package must hold each path once: repack it";
    Locked = "store::locked", exit Refused, "another fleetup is changing this store; it is released when that process ends";
    StoreState = "store::state", exit Invalid, "`fleetup node versions` shows every release and its state";
    Downgrade = "store::downgrade", exit Invalid, "downgrade goes back to an old or unpacked release of the same MAJOR.MINOR";
    ActivationFailed = "store::activation-failed", exit Failed, "the previous release was switched back and activated again; fix the hook or the release and retry";
    RollbackFailed = "store::rollback-failed", exit Attention, "the node needs attention: check what runs, then `fleetup node versions` and the activate hook";
    StateUnrecorded = "store::unrecorded", exit Attention, "the release was activated but RELEASES could not be written: free the disk or fix releases/RELEASES, then run `fleetup node versions`; the next command puts the node back where RELEASES says";
    NodeConfig = "store::config", exit Invalid, "see docs/guide/node-stores.md for <root>/node.toml: product, runtime, edition and the activate hook";
        MarketTemplate = "market::template", exit Invalid, "fix the app template in the market: app, version and services with image, ports, env, volumes";
    GroupUnreadable = "group::unreadable", exit Invalid, "the group's group.toml could not be read; only fleetup writes it";
    GroupState = "group::state", exit Invalid, "`fleetup group status` shows the group's apps and versions";
    GroupRollback = "group::rollback", exit Invalid, "only the last upgrade of a group can be rolled back, once; `fleetup group records` lists them";
    HealthGaveUp = "health::gave-up", exit Failed, "the health check answered with a status its `give_up_on` lists: failed for good, so the wait ended at once";
    Unhealthy = "health::unhealthy", exit Failed, "the target did not pass its health check in time; the message has the check's last answer";
    RunMovedOn = "run::moved-on", exit Refused, "a later run or a hand change moved the target on; roll that back first, or name the target with --force to take it back to where this run found it anyway";
    WindowClosed = "run::window-closed", exit Refused, "the plan's maintenance window is closed";
    HookFailed = "run::hook-failed", exit Failed, "a lifecycle hook (before, after, on_rollback) failed on the node's host; the message ends with its output";
    RunStopped = "run::stopped", exit Paused, "the run was stopped (SIGINT/SIGTERM, or its output was closed) before it changed anything: start it again when ready";
    GateWaiting = "run::gate", exit Paused, "the run waits at a manual gate: `fleetup approve RUN` then `fleetup resume RUN` continue it, `fleetup abort RUN` ends it";
    AnalysisFailed = "analysis::failed", exit Failed, "a metric went out of its bounds after the wave: the wave failed and the rollout policy applied";
    AnalysisInconclusive = "analysis::inconclusive", exit Paused, "Prometheus could not be asked or had no data: the run paused; `fleetup resume` asks again, `fleetup abort` ends it";
            GroupDeploy = "group::deploy-failed", exit Failed, "a service's deploy hook or health check failed; its previous spec was written back";
    Unsupported = "unsupported", exit Invalid, "this part of the plan needs a feature fleetup does not have yet; docs/guide/commands.md lists what is built";
    SshUnreachable = "remote::unreachable", exit Invalid, "check the address, that sshd runs there and that the network lets you through; jump hosts and ports can live in the plan's `ssh_config`";
    SshHostKey = "remote::host-key", exit Invalid, "verify the host's key and add it to known_hosts (ssh-keyscan prints it), or set `ssh_host_keys: accept-new` to trust a first contact";
    SshAuth = "remote::auth", exit Invalid, "ssh runs in batch mode and never prompts: load the key into ssh-agent or name it with IdentityFile in the plan's `ssh_config`";
    SshLost = "remote::connection-lost", exit Attention, "the step may have finished on the host: `fleetup node versions --ssh HOST --root ROOT` shows the store, and `fleetup resume` reconciles the run";
    RemotePlatform = "remote::platform", exit Invalid, "a host runs fleetup's agent: this fleetup on a host of its own OS and CPU, else a build for the host from the plan's `agents:` directory (fleetup-<os>-<arch>)";
    RemoteProtocol = "remote::protocol", exit Invalid, "the host answered what fleetup did not expect: a login script that prints to stdout, or another fleetup version";
    Usage = "usage", exit Usage, "`fleetup --help` lists the commands and their flags";
    UnknownProduct = "store::product", exit Invalid, "pass --product, or put `product = \"...\"` into <root>/node.toml";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding: what is wrong, where, and what to do.
#[derive(Clone, Debug)]
pub struct Problem {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub span: Option<Span>,
    pub label: Option<String>,
    /// Overrides the code's help when the problem knows better (e.g. "did you mean").
    pub help: Option<String>,
}

impl Problem {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Problem {
            code,
            severity: Severity::Error,
            message: message.into(),
            span: None,
            label: None,
            help: None,
        }
    }
    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }
    pub fn help_text(&self) -> &str {
        self.help.as_deref().unwrap_or(self.code.help())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A problem bound to its file, as miette wants it.
struct Located<'a> {
    problem: &'a Problem,
    source: Option<NamedSource<Arc<String>>>,
}

impl fmt::Debug for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.problem.fmt(f)
    }
}
impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What came from outside (a file name, a host's words) never reaches a terminal
        // as control characters.
        f.write_str(&crate::names::printable_text(&self.problem.message))
    }
}
impl std::error::Error for Located<'_> {}

impl miette::Diagnostic for Located<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.problem.code.as_str()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.problem.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(crate::names::printable_text(
            self.problem.help_text(),
        )))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        match (&self.source, self.problem.span) {
            (Some(s), Some(_)) => Some(s as &dyn SourceCode),
            _ => None,
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let span = self.problem.span?;
        let label = LabeledSpan::new_with_span(self.problem.label.clone(), span);
        Some(Box::new(std::iter::once(label)))
    }
}

/// Renders problems for a person. `color` is for terminals; tests and pipes get none.
pub fn render_human(problems: &[Problem], file: Option<&SourceFile>, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    for p in problems {
        let located = Located {
            problem: p,
            source: file.map(|f| NamedSource::new(f.name.clone(), f.text.clone())),
        };
        let mut one = String::new();
        if handler.render_report(&mut one, &located).is_err() {
            one = format!("{}: {}\n", p.code.as_str(), p.message);
        }
        // miette counts the column in bytes; fleetup's JSON, GitHub and SARIF output count
        // characters. Say the same column everywhere (they differ on non-ASCII lines).
        if let (Some(f), Some(s)) = (file, p.span) {
            let (line, col) = f.line_col(s.start);
            let start = s.start.min(f.text.len());
            let before = &f.text.as_bytes()[..start];
            let bytes = start
                - before
                    .iter()
                    .rposition(|b| matches!(b, b'\n' | b'\r'))
                    .map_or(0, |i| i + 1);
            if bytes + 1 != col {
                one = one.replacen(
                    &format!("[{}:{line}:{}]", f.name, bytes + 1),
                    &format!("[{}:{line}:{col}]", f.name),
                    1,
                );
            }
        }
        // Without a span miette names no file: say which one.
        if p.span.is_none()
            && let Some(f) = file
        {
            one = one.replacen(&p.message, &format!("{}: {}", f.name, p.message), 1);
        }
        out.push_str(&one);
    }
    out
}

#[derive(Serialize)]
pub struct JsonProblem<'a> {
    pub file: Option<&'a str>,
    pub code: &'static str,
    pub severity: Severity,
    pub message: &'a str,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub help: &'a str,
}

pub fn to_json<'a>(p: &'a Problem, file: Option<&'a SourceFile>) -> JsonProblem<'a> {
    let pos = match (file, p.span) {
        (Some(f), Some(s)) => Some(f.line_col(s.start)),
        _ => None,
    };
    JsonProblem {
        file: file.map(|f| f.name.as_str()),
        code: p.code.as_str(),
        severity: p.severity,
        message: &p.message,
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        help: p.help_text(),
    }
}

/// A SARIF 2.1.0 log of the problems of several files, for code-scanning tools (GitHub
/// code scanning, GitLab, IDEs): one run of fleetup, one rule per code that occurs, one
/// result per problem with its file, line and column (counted in characters, as every
/// other output counts them).
pub fn render_sarif(files: &[(&str, Option<&SourceFile>, &[Problem])]) -> serde_json::Value {
    use serde_json::json;
    let mut codes: Vec<Code> = files
        .iter()
        .flat_map(|(_, _, ps)| ps.iter().map(|p| p.code))
        .collect();
    codes.sort_by_key(|c| c.as_str());
    codes.dedup();
    let rules: Vec<serde_json::Value> = codes
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "shortDescription": { "text": c.help() },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let mut results = Vec::new();
    for (name, file, problems) in files {
        for p in problems.iter() {
            let mut location = json!({
                "physicalLocation": { "artifactLocation": { "uri": uri_path(name) } }
            });
            if let (Some(f), Some(s)) = (file, p.span) {
                let (line, col) = f.line_col(s.start);
                let (end_line, end_col) = f.line_col(s.start + s.len);
                location["physicalLocation"]["region"] = json!({
                    "startLine": line,
                    "startColumn": col,
                    "endLine": end_line,
                    "endColumn": end_col,
                });
            }
            results.push(json!({
                "ruleId": p.code.as_str(),
                "ruleIndex": codes.iter().position(|c| *c == p.code),
                "level": match p.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                "message": { "text": format!("{}\nhelp: {}", p.message, p.help_text()) },
                "locations": [location],
            }));
        }
    }
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "fleetup",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// A relative or absolute path as a URI reference: `/` kept, everything but unreserved
/// characters percent-encoded.
fn uri_path(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One `::error …::…` workflow command per problem, for GitHub Actions annotations.
pub fn render_github(problems: &[Problem], file: Option<&SourceFile>) -> String {
    fn data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn prop(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for p in problems {
        let level = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut props = Vec::new();
        if let Some(f) = file {
            props.push(format!("file={}", prop(&f.name)));
            if let Some(s) = p.span {
                let (line, col) = f.line_col(s.start);
                props.push(format!("line={line},col={col}"));
            }
        }
        props.push(format!("title={}", prop(p.code.as_str())));
        let msg = format!("{} (help: {})", p.message, p.help_text());
        out.push_str(&format!("::{level} {}::{}\n", props.join(","), data(&msg)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_terminal_names_the_same_column_as_json_on_a_non_ascii_line() {
        let text = "name: \"größe\"\nto: x\nnote: é é 4.4\n".to_owned();
        let at = text.find("4.4").unwrap();
        let file = SourceFile::new("p.yaml", text);
        let p = Problem::new(Code::BadValue, "bad").at(Span::new(at, 3));
        let json = to_json(&p, Some(&file));
        assert_eq!((json.line, json.column), (Some(3), Some(11)));
        let shown = render_human(std::slice::from_ref(&p), Some(&file), false);
        assert!(shown.contains("[p.yaml:3:11]"), "{shown}");
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            let rest = s.strip_prefix("fleetup::").unwrap();
            assert!(
                rest.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == ':' || ch == '-'),
                "{s}"
            );
            assert!(!c.help().is_empty());
        }
    }

    #[test]
    fn sarif_paths_are_uri_references() {
        assert_eq!(uri_path("plans/a b.yaml"), "plans/a%20b.yaml");
        assert_eq!(uri_path("../x/ü.toml"), "../x/%C3%BC.toml");
    }

    #[test]
    fn each_code_has_help_of_its_own() {
        let mut seen = std::collections::HashMap::new();
        for c in Code::ALL {
            if let Some(other) = seen.insert(c.help(), c.as_str()) {
                panic!("{} and {other} share their help", c.as_str());
            }
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../docs/reference/diagnostics.md");
        for c in Code::ALL {
            assert!(
                doc.contains(&format!("`{}`", c.as_str())),
                "{} is not in docs/reference/diagnostics.md",
                c.as_str()
            );
        }
    }

    #[test]
    fn line_col_counts_characters() {
        let f = SourceFile::new("p.yaml", "a: 1\nnäme: x\n".into());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(5), (2, 1));
        assert_eq!(f.line_col(12), (2, 7));
    }

    #[test]
    fn github_annotations_escape_their_fields() {
        let f = SourceFile::new("plans/a,b.yaml", "x: 1\n".into());
        let p = Problem::new(Code::BadValue, "50% wrong\nnext").at(Span::new(3, 1));
        let out = render_github(&[p], Some(&f));
        assert!(out.starts_with("::error file=plans/a%2Cb.yaml,line=1,col=4,title=fleetup%3A%3Aplan%3A%3Avalue::50%25 wrong%0Anext"), "{out}");
    }
}
