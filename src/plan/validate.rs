//! From the spanned tree to a typed [`Plan`], collecting every problem on the way.
//!
//! Two passes: `shape` checks the whole tree against the schema tables (unknown keys,
//! types, ranges, versions, durations), then `build` reads the typed values and checks
//! what needs more than one value at a time (duplicates, placeholders, inheritance).
//! Reading live state (stores, repositories, markets) is left to `preflight`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use semver::Version;

use super::model::*;
use super::schema::{self, Field, Ty};
use super::tree::{Key, Kind, Node, Span};
use crate::diagnostics::{Code, Problem};
pub use crate::duration::parse_duration;
use crate::package::{self, VersionPolicy};
use crate::template::Template;

/// Names of targets, apps, services and tags: safe as file names and in journals.
pub fn is_safe_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphanumeric() || ch == '_')
        && s.len() <= 64
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
}

/// A percentage such as `25%` or `12.5%`.
fn parse_percent(s: &str) -> Option<f64> {
    let n = s.strip_suffix('%')?;
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    n.parse().ok()
}

pub fn parse_ssh(s: &str) -> Result<SshAddr, String> {
    let (user, hostport) = match s.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, s),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err("an IPv6 address needs its closing `]`".into());
        };
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("unexpected `{after}` after the address")),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let bad = |x: &str| {
        x.is_empty() || x.starts_with('-') || x.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if let Some(u) = user
        && bad(u)
    {
        return Err(format!("`{u}` is not a user name"));
    }
    if bad(host) {
        return Err(format!("`{host}` is not a host name"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
    };
    Ok(SshAddr {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
    })
}

/// `HH:MM`, or `HH:MM:SS` for windows that must close to the second.
fn parse_time(s: &str) -> Option<jiff::civil::Time> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next().unwrap_or("00"));
    if parts.next().is_some() || h.is_empty() || h.len() > 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let num = |x: &str| {
        x.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| x.parse::<i8>().ok())
            .flatten()
    };
    jiff::civil::Time::new(num(h)?, num(m)?, num(sec)?, 0).ok()
}

fn weekday(s: &str) -> Option<jiff::civil::Weekday> {
    use jiff::civil::Weekday::*;
    Some(match s {
        "mon" => Monday,
        "tue" => Tuesday,
        "wed" => Wednesday,
        "thu" => Thursday,
        "fri" => Friday,
        "sat" => Saturday,
        "sun" => Sunday,
        _ => return None,
    })
}

/// The closest of `options` to `given`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    given: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best = None;
    let mut best_score = 0.0;
    for o in options {
        let score = strsim::jaro_winkler(&given.to_ascii_lowercase(), o);
        if score > best_score {
            best_score = score;
            best = Some(o);
        }
    }
    best.filter(|_| best_score >= 0.8)
}

fn entries(n: &Node) -> &[(Key, Node)] {
    match &n.kind {
        Kind::Map(e) => e,
        _ => &[],
    }
}

fn get<'a>(n: &'a Node, key: &str) -> Option<&'a Node> {
    entries(n)
        .iter()
        .find(|(k, _)| k.name == key)
        .map(|(_, v)| v)
}

fn s(n: Option<&Node>) -> Option<&str> {
    match n.map(|n| &n.kind) {
        Some(Kind::Str(s)) => Some(s),
        _ => None,
    }
}

fn at_str(n: Option<&Node>) -> Option<At<String>> {
    let n = n?;
    s(Some(n)).map(|v| At {
        value: v.to_owned(),
        span: n.span,
    })
}

fn int(n: Option<&Node>) -> Option<i64> {
    match n.map(|n| &n.kind) {
        Some(Kind::Int(i)) => Some(*i),
        _ => None,
    }
}

fn version(n: Option<&Node>) -> Option<At<Version>> {
    let n = n?;
    Version::parse(s(Some(n))?).ok().map(|value| At {
        value,
        span: n.span,
    })
}

fn duration(n: Option<&Node>, default: Duration) -> Duration {
    s(n).and_then(parse_duration).unwrap_or(default)
}

fn amount(n: &Node) -> Option<Amount> {
    match &n.kind {
        Kind::Int(i) if *i >= 0 => Some(Amount::Count(*i as u64)),
        Kind::Str(t) => parse_percent(t).map(Amount::Percent),
        _ => None,
    }
}

fn list(n: Option<&Node>) -> &[Node] {
    match n.map(|n| &n.kind) {
        Some(Kind::Seq(items)) => items,
        _ => &[],
    }
}

fn scalar_text(n: &Node) -> Option<String> {
    match &n.kind {
        Kind::Str(s) => Some(s.clone()),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Float(f) => Some(f.to_string()),
        Kind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn type_name(ty: &Ty) -> String {
    match ty {
        Ty::Str | Ty::Path | Ty::Template => "a string".into(),
        Ty::Name => "a name".into(),
        Ty::Int { .. } => "a whole number".into(),
        Ty::Bool => "true or false".into(),
        Ty::Version => "a version string".into(),
        Ty::Duration => "a duration string".into(),
        Ty::Enum(v) => format!("one of {}", v.join(", ")),
        Ty::Argv => "a command as a list of strings".into(),
        Ty::Vars => "a table of values".into(),
        Ty::CountOrPercent { .. } => "a count or a percentage".into(),
        Ty::List(_) => "a list".into(),
        Ty::Table(_) => "a table".into(),
    }
}

/// Placeholders every node command or check may use, besides the node's vars.
pub const NODE_BUILTINS: &[&str] = &["name", "host", "root", "version", "previous"];
/// Placeholders every group hook or check may use, besides the group's vars.
pub const GROUP_BUILTINS: &[&str] = &[
    "name", "group", "root", "app", "service", "spec", "version", "previous",
];

/// What every node inherits from the plan unless it says otherwise.
struct Inherited {
    root: Option<At<PathBuf>>,
    /// `defaults.root` as written: a remote node takes it unresolved.
    root_raw: Option<String>,
    vars: BTreeMap<String, Template>,
    tags: Vec<String>,
    to: Option<At<Version>>,
    /// The plan's `sha256` pins the package of the plan's `to`.
    sha256: Option<At<String>>,
    policy: VersionPolicy,
}

pub struct Validator {
    pub problems: Vec<Problem>,
    dir: PathBuf,
    text: std::sync::Arc<String>,
}

impl Validator {
    pub fn new(plan_dir: &Path, text: std::sync::Arc<String>) -> Self {
        Validator {
            problems: Vec::new(),
            dir: plan_dir.to_owned(),
            text,
        }
    }

    fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    // ---- pass 1: shape ------------------------------------------------------------

    /// Checks a table against its fields; `what` names it in messages ("the plan", "node #2").
    pub fn shape_table(&mut self, node: &Node, fields: &[Field], what: &str) {
        let Kind::Map(entries) = &node.kind else {
            self.push(
                Problem::new(
                    Code::WrongType,
                    format!("{what} must be a table, found {}", node.kind.describe()),
                )
                .at(node.span)
                .label("expected a table"),
            );
            return;
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (key, value) in entries {
            if seen.insert(&key.name, key.span).is_some() {
                self.push(
                    Problem::new(
                        Code::DuplicateKey,
                        format!("`{}` is given twice in {what}", key.name),
                    )
                    .at(key.span)
                    .label("second time"),
                );
                continue;
            }
            match fields.iter().find(|f| f.name == key.name) {
                Some(f) => self.shape_value(value, &f.ty, &format!("`{}`", key.name)),
                None => {
                    let mut p = Problem::new(
                        Code::UnknownKey,
                        format!("unknown key `{}` in {what}", key.name),
                    )
                    .at(key.span)
                    .label("not a key of this table");
                    let names = fields.iter().map(|f| f.name);
                    p = match did_you_mean(&key.name, names) {
                        Some(m) => p.help(format!("did you mean `{m}`?")),
                        None => p.help(format!(
                            "the keys here are: {}",
                            fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                        )),
                    };
                    self.push(p);
                }
            }
        }
        for f in fields.iter().filter(|f| f.required) {
            if !seen.contains_key(f.name) {
                self.push(
                    Problem::new(
                        Code::MissingKey,
                        format!("{what} lacks the required key `{}`", f.name),
                    )
                    .at(Span::new(node.span.start, 0))
                    .label(format!("`{}` missing here", f.name))
                    .help(format!("add `{}`: {}", f.name, f.doc)),
                );
            }
        }
    }

    fn wrong(&mut self, n: &Node, ty: &Ty, what: &str) {
        let mut p = Problem::new(
            Code::WrongType,
            format!(
                "{what} must be {}, found {}",
                type_name(ty),
                n.kind.describe()
            ),
        )
        .at(n.span)
        .label(format!("expected {}", type_name(ty)));
        if matches!(ty, Ty::Version) && matches!(n.kind, Kind::Float(_) | Kind::Int(_)) {
            p = p.help("quote the version: YAML reads 4.4 as a number, \"4.4.16\" is a version");
        }
        self.push(p);
    }

    pub fn shape_value(&mut self, n: &Node, ty: &Ty, what: &str) {
        match ty {
            Ty::Str | Ty::Path => {
                if !matches!(n.kind, Kind::Str(_)) {
                    self.wrong(n, ty, what);
                } else if s(Some(n)) == Some("") {
                    self.push(Problem::new(Code::BadValue, format!("{what} is empty")).at(n.span).label("empty"));
                }
            }
            Ty::Template => match &n.kind {
                Kind::Str(t) => {
                    if let Err(e) = Template::parse(t) {
                        self.push(
                            Problem::new(Code::Placeholder, format!("{what} is not a valid template: {e}"))
                                .at(n.span)
                                .label("here"),
                        );
                    }
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::Name => match &n.kind {
                Kind::Str(t) if is_safe_name(t) => {}
                Kind::Str(t) => self.push(
                    Problem::new(Code::UnsafeName, format!("{what} `{t}` is not safe as a file name"))
                        .at(n.span)
                        .label("unsafe name"),
                ),
                _ => self.wrong(n, ty, what),
            },
            Ty::Int { min, max } => match n.kind {
                Kind::Int(i) if i < *min || i > *max => {
                    let range = if min == max { format!("{min}") } else { format!("{min} to {max}") };
                    let code = if what == "`plan`" { Code::PlanSchemaVersion } else { Code::BadValue };
                    self.push(
                        Problem::new(code, format!("{what} is {i}, which is out of range ({range})"))
                            .at(n.span)
                            .label(format!("expected {range}")),
                    )
                }
                Kind::Int(_) => {}
                _ => self.wrong(n, ty, what),
            },
            Ty::Bool => {
                if !matches!(n.kind, Kind::Bool(_)) {
                    self.wrong(n, ty, what)
                }
            }
            Ty::Version => match &n.kind {
                Kind::Str(t) => {
                    if let Err(e) = Version::parse(t) {
                        self.push(
                            Problem::new(Code::BadVersion, format!("{what} `{t}` is not a SemVer version: {e}"))
                                .at(n.span)
                                .label("not MAJOR.MINOR.PATCH"),
                        );
                    }
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::Duration => match &n.kind {
                Kind::Str(t) if parse_duration(t).is_some() => {}
                Kind::Str(t) => self.push(
                    Problem::new(Code::BadDuration, format!("{what} `{t}` is not a duration"))
                        .at(n.span)
                        .label("not a duration"),
                ),
                Kind::Int(_) | Kind::Float(_) => self.push(
                    Problem::new(Code::BadDuration, format!("{what} needs a unit, found {}", n.kind.describe()))
                        .at(n.span)
                        .label("no unit")
                        .help("durations carry their unit: \"30s\", \"500ms\", \"5m\""),
                ),
                _ => self.wrong(n, ty, what),
            },
            Ty::Enum(values) => match &n.kind {
                Kind::Str(t) if values.contains(&t.as_str()) => {}
                Kind::Str(t) => {
                    let mut p = Problem::new(Code::BadValue, format!("{what} `{t}` is not one of {}", values.join(", ")))
                        .at(n.span)
                        .label("unknown value");
                    if let Some(m) = did_you_mean(t, values.iter().copied()) {
                        p = p.help(format!("did you mean `{m}`?"));
                    }
                    self.push(p)
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::Argv => match &n.kind {
                Kind::Seq(items) if items.is_empty() => self.push(
                    Problem::new(Code::BadValue, format!("{what} is an empty command"))
                        .at(n.span)
                        .label("empty"),
                ),
                Kind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.shape_value(item, &Ty::Template, &format!("element {} of {what}", i + 1));
                    }
                }
                Kind::Str(_) => self.push(
                    Problem::new(Code::WrongType, format!("{what} must be a list of arguments, not a shell string"))
                        .at(n.span)
                        .label("a string")
                        .help("write the command as a list, e.g. [\"systemctl\", \"restart\", \"emqx\"]; it never goes through a shell"),
                ),
                _ => self.wrong(n, ty, what),
            },
            Ty::Vars => match &n.kind {
                Kind::Map(entries) => {
                    let mut seen = HashMap::new();
                    for (k, v) in entries {
                        if seen.insert(k.name.as_str(), ()).is_some() {
                            self.push(
                                Problem::new(Code::DuplicateKey, format!("`{}` is given twice in {what}", k.name))
                                    .at(k.span)
                                    .label("second time"),
                            );
                        }
                        if !k.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || k.name.is_empty() {
                            self.push(
                                Problem::new(Code::BadValue, format!("`{}` cannot be a placeholder name", k.name))
                                    .at(k.span)
                                    .label("letters, digits and _ only")
                                    .help("name vars with letters, digits and _, as they are written in {placeholders}"),
                            );
                        }
                        if NODE_BUILTINS.contains(&k.name.as_str()) || GROUP_BUILTINS.contains(&k.name.as_str()) {
                            self.push(
                                Problem::new(Code::BadValue, format!("`{}` is a built-in placeholder and cannot be set in vars", k.name))
                                    .at(k.span)
                                    .label("built in")
                                    .help(format!("rename it; fleetup fills {} itself", NODE_BUILTINS.iter().chain(GROUP_BUILTINS).map(|b| format!("{{{b}}}")).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", "))),
                            );
                        }
                        match scalar_text(v) {
                            Some(t) => match Template::parse(&t) {
                                Ok(tpl) if tpl.vars().next().is_some() => self.push(
                                    Problem::new(Code::Placeholder, format!("the value of `{}` uses a placeholder; vars take literal values and ${{ENV}} only", k.name))
                                        .at(v.span)
                                        .label("placeholder in a var"),
                                ),
                                Ok(_) => {}
                                Err(e) => self.push(
                                    Problem::new(Code::Placeholder, format!("the value of `{}` is not valid: {e}", k.name))
                                        .at(v.span)
                                        .label("here"),
                                ),
                            },
                            None => self.push(
                                Problem::new(Code::WrongType, format!("the value of `{}` must be a string, number or boolean, found {}", k.name, v.kind.describe()))
                                    .at(v.span)
                                    .label("not a plain value"),
                            ),
                        }
                    }
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::CountOrPercent { min } => match &n.kind {
                Kind::Int(i) if *i >= *min => {}
                Kind::Int(i) => self.push(
                    Problem::new(Code::BadWave, format!("{what} is {i}; it must be at least {min}"))
                        .at(n.span)
                        .label(format!("at least {min}")),
                ),
                Kind::Str(t) => match parse_percent(t) {
                    Some(p) if (*min == 0 || p > 0.0) && p <= 100.0 => {}
                    Some(_) => self.push(
                        Problem::new(Code::BadWave, format!("{what} `{t}` is out of range"))
                            .at(n.span)
                            .label(if *min == 0 { "from 0% to 100%" } else { "above 0% and at most 100%" }),
                    ),
                    None => self.push(
                        Problem::new(Code::BadWave, format!("{what} `{t}` is neither a count nor a percentage"))
                            .at(n.span)
                            .label("expected e.g. 5 or \"25%\""),
                    ),
                },
                _ => self.wrong(n, ty, what),
            },
            Ty::List(item) => match &n.kind {
                Kind::Seq(items) => {
                    for (i, it) in items.iter().enumerate() {
                        let w = match item {
                            Ty::Table(_) => format!("{} #{}", what.trim_matches('`').trim_end_matches('s'), i + 1),
                            _ => format!("item {} of {what}", i + 1),
                        };
                        self.shape_value(it, item, &w);
                    }
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::Table(fields) => self.shape_table(n, fields, what),
        }
    }

    // ---- pass 2: build ------------------------------------------------------------

    fn path(&self, n: Option<&Node>) -> Option<At<PathBuf>> {
        let a = at_str(n)?;
        if a.value.is_empty() {
            return None;
        }
        // Lexically tidy (`dir/./x` → `dir/x`) so messages show the path a person would write.
        let joined: PathBuf = self
            .dir
            .join(&a.value)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        Some(At {
            value: joined,
            span: a.span,
        })
    }

    fn vars(&self, n: Option<&Node>) -> BTreeMap<String, Template> {
        let mut out = BTreeMap::new();
        for (k, v) in n.map(entries).unwrap_or(&[]) {
            if let Some(t) = scalar_text(v).and_then(|t| Template::parse(&t).ok()) {
                out.insert(k.name.clone(), t);
            }
        }
        out
    }

    fn templates(n: Option<&Node>) -> Option<Vec<At<Template>>> {
        let items = list(n);
        let out: Vec<At<Template>> = items
            .iter()
            .filter_map(|i| {
                Template::parse(s(Some(i))?).ok().map(|value| At {
                    value,
                    span: i.span,
                })
            })
            .collect();
        (!items.is_empty() && out.len() == items.len()).then_some(out)
    }

    fn health(&mut self, n: Option<&Node>, what: &str) -> Option<Health> {
        let n = n?;
        let tpl = |key| {
            let a = at_str(get(n, key))?;
            Template::parse(&a.value).ok().map(|value| At {
                value,
                span: a.span,
            })
        };
        let kinds: Vec<&str> = ["http", "tcp", "command"]
            .into_iter()
            .filter(|k| get(n, k).is_some())
            .collect();
        if kinds.len() != 1 {
            let msg = if kinds.is_empty() {
                format!("{what} names no check: give one of http, tcp or command")
            } else {
                format!(
                    "{what} gives {}: give exactly one check",
                    kinds.join(" and ")
                )
            };
            self.push(
                Problem::new(Code::BadValue, msg)
                    .at(Span::new(n.span.start, 0))
                    .label("here"),
            );
            return None;
        }
        let check = match kinds[0] {
            "http" => Check::Http(tpl("http")?),
            "tcp" => Check::Tcp(tpl("tcp")?),
            _ => Check::Command(Self::templates(get(n, "command"))?),
        };
        if let Check::Http(t) = &check {
            let raw = t.value.raw();
            if !(raw.starts_with("http://") || raw.starts_with("https://")) {
                self.push(
                    Problem::new(
                        Code::BadValue,
                        format!("the health URL `{raw}` must start with http:// or https://"),
                    )
                    .at(t.span)
                    .label("not an http URL"),
                );
            }
        }
        let timeout = duration(get(n, "timeout"), Duration::from_secs(60));
        let interval = duration(get(n, "interval"), Duration::from_secs(1));
        if interval.is_zero()
            && let Some(i) = get(n, "interval")
        {
            self.push(
                Problem::new(
                    Code::BadDuration,
                    "the health `interval` must be above zero",
                )
                .at(i.span)
                .label("zero"),
            );
        }
        Some(Health {
            check,
            expect_status: int(get(n, "expect_status"))
                .and_then(|i| u16::try_from(i).ok())
                .unwrap_or(200),
            timeout,
            interval,
            healthy_for: duration(get(n, "healthy_for"), Duration::ZERO),
            rollback_timeout: duration(get(n, "rollback_timeout"), timeout),
        })
    }

    fn hooks(n: Option<&Node>, key: &str) -> Hooks {
        Hooks {
            command: n.and_then(|n| Self::templates(get(n, key))),
            timeout: duration(n.and_then(|n| get(n, "timeout")), Duration::from_secs(300)),
        }
    }

    fn tags(n: Option<&Node>) -> Vec<String> {
        list(n)
            .iter()
            .filter_map(|t| s(Some(t)).map(str::to_owned))
            .collect()
    }

    fn window(&mut self, n: Option<&Node>) -> Option<Window> {
        let n = n?;
        let mut ok = true;
        let mut time = |key: &str, this: &mut Self| {
            let a = at_str(get(n, key))?;
            let t = parse_time(&a.value);
            if t.is_none() {
                this.push(
                    Problem::new(
                        Code::BadValue,
                        format!("window `{key}` `{}` is not a time of day", a.value),
                    )
                    .at(a.span)
                    .label("expected HH:MM")
                    .help("write the time as 24-hour HH:MM, quoted: \"02:00\""),
                );
                ok = false;
            }
            t
        };
        let from = time("from", self);
        let to = time("to", self);
        let tz_name = at_str(get(n, "tz")).map_or_else(|| "UTC".to_owned(), |a| a.value);
        let tz = match jiff::tz::TimeZone::get(&tz_name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                if let Some(t) = get(n, "tz") {
                    self.push(
                        Problem::new(
                            Code::BadValue,
                            format!("`{tz_name}` is not a known time zone"),
                        )
                        .at(t.span)
                        .label("unknown time zone")
                        .help("use an IANA name such as UTC, Europe/Berlin or Asia/Shanghai"),
                    );
                }
                None
            }
        };
        let (from, to, tz) = (from?, to?, tz?);
        if from == to {
            if let Some(t) = get(n, "to") {
                self.push(
                    Problem::new(
                        Code::BadValue,
                        "the window opens and closes at the same time",
                    )
                    .at(t.span)
                    .label("same as `from`"),
                );
            }
            return None;
        }
        let days = match get(n, "days") {
            None => schema::DAYS.iter().filter_map(|d| weekday(d)).collect(),
            Some(d) => list(Some(d))
                .iter()
                .filter_map(|d| weekday(s(Some(d))?))
                .collect(),
        };
        ok.then_some(Window {
            days,
            from,
            to,
            tz,
            tz_name,
        })
    }

    /// Builds the typed plan from a tree that passed (or partly failed) the shape pass.
    pub fn build(&mut self, root: &Node, file: crate::diagnostics::SourceFile) -> Option<Plan> {
        let name = s(get(root, "name")).unwrap_or_default().to_owned();
        let product = s(get(root, "product")).unwrap_or_default().to_owned();
        let runtime = s(get(root, "runtime")).unwrap_or("otp").to_owned();
        if let Some(p) = at_str(get(root, "product"))
            && p.value.contains(|c: char| c.is_whitespace() || c == '/')
        {
            self.push(
                Problem::new(
                    Code::BadValue,
                    format!("product `{}` cannot appear in a file name", p.value),
                )
                .at(p.span)
                .label("here"),
            );
        }
        let edition = at_str(get(root, "edition"));
        if let Some(e) = &edition
            && !e
                .value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            self.push(
                Problem::new(
                    Code::BadValue,
                    format!(
                        "edition `{}` must be lowercase letters and digits, as in package names",
                        e.value
                    ),
                )
                .at(e.span)
                .label("not an edition"),
            );
        }
        let policy = s(get(root, "policy").and_then(|p| get(p, "version")))
            .and_then(VersionPolicy::parse)
            .unwrap_or_default();
        let r = get(root, "rollout");
        let rg = |k| r.and_then(|r| get(r, k));
        let mut rollout = Rollout::default();
        if let Some(i) = int(rg("max_parallel")) {
            rollout.max_parallel = i.max(1) as usize;
        }
        if rg("waves").is_some() {
            let w: Vec<Amount> = list(rg("waves")).iter().filter_map(amount).collect();
            if let Some(
                n @ Node {
                    kind: Kind::Seq(items),
                    ..
                },
            ) = rg("waves")
                && items.is_empty()
            {
                self.push(
                    Problem::new(Code::BadWave, "`waves` is empty")
                        .at(n.span)
                        .label("no wave"),
                );
            } else if !w.is_empty() {
                rollout.waves = w;
            }
        }
        if let Some(a) = rg("max_failures").and_then(amount) {
            rollout.max_failures = a;
        }
        rollout.on_failure = match s(rg("on_failure")) {
            Some("rollback-all") => OnFailure::RollbackAll,
            Some("stop") => OnFailure::Stop,
            _ => OnFailure::Rollback,
        };
        if let Some(Kind::Bool(b)) = rg("permanent").map(|n| &n.kind) {
            rollout.permanent = *b;
        }
        rollout.pause = duration(rg("pause"), Duration::ZERO);

        let health = self.health(get(root, "health"), "`health`");
        let hooks = Self::hooks(get(root, "hooks"), "activate");
        let window = self.window(get(root, "window"));
        let plan_to = version(get(root, "to"));
        let plan_sha = at_str(get(root, "sha256"));
        for sha in plan_sha.iter() {
            self.check_sha(sha);
        }

        let defaults = get(root, "defaults");
        let inherited = Inherited {
            root: self.path(defaults.and_then(|d| get(d, "root"))),
            root_raw: at_str(defaults.and_then(|d| get(d, "root"))).map(|a| a.value),
            vars: self.vars(defaults.and_then(|d| get(d, "vars"))),
            tags: Self::tags(defaults.and_then(|d| get(d, "tags"))),
            to: plan_to,
            sha256: plan_sha,
            policy,
        };

        let mut names: HashMap<String, Span> = HashMap::new();
        let mut nodes = Vec::new();
        for (i, n) in list(get(root, "nodes")).iter().enumerate() {
            if let Some(t) = self.node(n, i, &mut names, &inherited) {
                nodes.push(t);
            }
        }
        let mut groups = Vec::new();
        for g in list(get(root, "groups")) {
            if let Some(t) = self.group(g, &mut names) {
                groups.push(t);
            }
        }

        let repository = self.path(get(root, "repository"));
        if !list(get(root, "nodes")).is_empty() && get(root, "repository").is_none() {
            self.push(
                Problem::new(
                    Code::MissingKey,
                    "the plan has nodes but no `repository` to take their packages from",
                )
                .at(get(root, "nodes").map_or(Span::default(), |n| Span::new(n.span.start, 0)))
                .label("nodes need packages")
                .help("add `repository: <dir>`, the directory holding the release packages"),
            );
        }
        if get(root, "nodes").is_none() && get(root, "groups").is_none() {
            self.push(
                Problem::new(Code::NoTargets, "the plan lists no nodes and no groups")
                    .at(Span::new(0, 0)),
            );
        } else if list(get(root, "nodes")).is_empty() && list(get(root, "groups")).is_empty() {
            let at = get(root, "nodes")
                .or(get(root, "groups"))
                .map_or(Span::default(), |n| n.span);
            self.push(
                Problem::new(Code::NoTargets, "the plan's target lists are empty")
                    .at(at)
                    .label("empty"),
            );
        }

        let plan = Plan {
            dir: self.dir.clone(),
            file,
            name,
            product,
            runtime,
            repository,
            edition,
            state: self.path(get(root, "state")).map(|a| a.value),
            ssh_config: self.path(get(root, "ssh_config")).map(|a| a.value),
            ssh_host_keys: match s(get(root, "ssh_host_keys")) {
                Some("accept-new") => HostKeys::AcceptNew,
                _ => HostKeys::Strict,
            },
            policy,
            rollout,
            health,
            hooks,
            window,
            nodes,
            groups,
        };
        self.placeholders(&plan);
        Some(plan)
    }

    fn check_sha(&mut self, sha: &At<String>) {
        if !package::is_sha256(&sha.value) {
            self.push(
                Problem::new(Code::BadValue, "`sha256` must be 64 hexadecimal digits")
                    .at(sha.span)
                    .label("not a SHA-256 digest"),
            );
        }
    }

    fn claim_name(
        &mut self,
        names: &mut HashMap<String, Span>,
        name: &At<String>,
        file_line: impl Fn(Span) -> usize,
    ) {
        if let Some(first) = names.get(&name.value) {
            let line = file_line(*first);
            self.push(
                Problem::new(
                    Code::DuplicateTarget,
                    format!("target name `{}` is used twice", name.value),
                )
                .at(name.span)
                .label(format!("first used on line {line}")),
            );
        } else {
            names.insert(name.value.clone(), name.span);
        }
    }

    fn node(
        &mut self,
        n: &Node,
        i: usize,
        names: &mut HashMap<String, Span>,
        inherited: &Inherited,
    ) -> Option<NodeTarget> {
        if !matches!(n.kind, Kind::Map(_)) {
            return None;
        }
        let name = at_str(get(n, "name")).filter(|a| is_safe_name(&a.value))?;
        let line_of = self.line_fn();
        self.claim_name(names, &name, line_of);
        let root = match self.path(get(n, "root")).or_else(|| inherited.root.clone()) {
            Some(r) => r,
            None => {
                if get(n, "root").is_none() {
                    self.push(
                        Problem::new(
                            Code::MissingKey,
                            format!("node `{}` has no `root`", name.value),
                        )
                        .at(name.span)
                        .label("no root")
                        .help("give the node a `root`, or set `defaults.root`"),
                    );
                }
                return None;
            }
        };
        let to = match (get(n, "to"), &inherited.to) {
            (Some(t), _) => version(Some(t))?,
            (None, Some(t)) => t.clone(),
            (None, None) => {
                self.push(
                    Problem::new(
                        Code::NoTargetVersion,
                        format!("node `{}` has no target version", name.value),
                    )
                    .at(name.span)
                    .label(format!("node #{} has no `to`", i + 1)),
                );
                return None;
            }
        };
        let from = version(get(n, "from"));
        if let Some(f) = &from {
            for v in package::check_versions(&f.value, &to.value, inherited.policy) {
                self.push(
                    Problem::new(v.code, format!("node `{}`: {}", name.value, v.message))
                        .at(to.span)
                        .label(format!("from the pin {}", f.value)),
                );
            }
        }
        let ssh = match at_str(get(n, "ssh")) {
            Some(a) => match parse_ssh(&a.value) {
                Ok(value) => Some(At {
                    value,
                    span: a.span,
                }),
                Err(e) => {
                    self.push(
                        Problem::new(
                            Code::BadValue,
                            format!("`ssh` of node `{}`: {e}", name.value),
                        )
                        .at(a.span)
                        .label("expected [user@]host[:port]"),
                    );
                    None
                }
            },
            None => None,
        };
        // A remote root is a path on its host: taken as written, never against the plan.
        let root = match &ssh {
            Some(_) => {
                let raw = at_str(get(n, "root"))
                    .map(|a| a.value)
                    .or_else(|| inherited.root_raw.clone())
                    .unwrap_or_default();
                if !raw.starts_with('/') {
                    self.push(
                        Problem::new(
                            Code::Path,
                            format!(
                                "node `{}` is remote: its `root` `{raw}` is a path on its host and must be absolute",
                                name.value
                            ),
                        )
                        .at(root.span)
                        .label("not an absolute path")
                        .help("write the absolute path of the node's directory on its host, such as /opt/emqx"),
                    );
                }
                At {
                    value: PathBuf::from(raw),
                    span: root.span,
                }
            }
            None => root,
        };
        let host = s(get(n, "host"))
            .map(str::to_owned)
            .or_else(|| ssh.as_ref().map(|a| a.value.host.clone()))
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let mut vars = inherited.vars.clone();
        vars.extend(self.vars(get(n, "vars")));
        let sha256 = at_str(get(n, "sha256"));
        if let Some(sha) = &sha256 {
            self.check_sha(sha);
        }
        let plan_pin = inherited
            .sha256
            .clone()
            .filter(|_| inherited.to.as_ref().is_some_and(|t| t.value == to.value));
        let sha256 = sha256.or(plan_pin);
        let mut tags = inherited.tags.clone();
        for t in Self::tags(get(n, "tags")) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        Some(NodeTarget {
            name,
            host,
            ssh,
            root,
            vars,
            from,
            to,
            sha256,
            tags,
        })
    }

    fn group(&mut self, g: &Node, names: &mut HashMap<String, Span>) -> Option<GroupTarget> {
        if !matches!(g.kind, Kind::Map(_)) {
            return None;
        }
        let name = at_str(get(g, "name")).filter(|a| is_safe_name(&a.value))?;
        let line_of = self.line_fn();
        self.claim_name(names, &name, line_of);
        let mut apps = Vec::new();
        let mut seen_apps: HashMap<String, Span> = HashMap::new();
        for a in list(get(g, "apps")) {
            let (Some(app), Some(to)) = (at_str(get(a, "app")), version(get(a, "to"))) else {
                continue;
            };
            if seen_apps.insert(app.value.clone(), app.span).is_some() {
                self.push(
                    Problem::new(
                        Code::DuplicateTarget,
                        format!(
                            "app `{}` is listed twice in group `{}`",
                            app.value, name.value
                        ),
                    )
                    .at(app.span)
                    .label("second time"),
                );
            }
            let services = get(a, "services").map(|sv| {
                let mut out: Vec<At<String>> = Vec::new();
                for item in list(Some(sv)) {
                    if let Some(x) = at_str(Some(item)) {
                        if out.iter().any(|o| o.value == x.value) {
                            self.push(
                                Problem::new(
                                    Code::DuplicateKey,
                                    format!("service `{}` is listed twice", x.value),
                                )
                                .at(x.span)
                                .label("second time"),
                            );
                        } else {
                            out.push(x);
                        }
                    }
                }
                out
            });
            if let Some(sv) = get(a, "services")
                && list(Some(sv)).is_empty()
            {
                self.push(
                    Problem::new(
                        Code::BadValue,
                        "`services` is empty: the app would upgrade nothing",
                    )
                    .at(sv.span)
                    .label("empty")
                    .help("remove `services` to upgrade every changed service"),
                );
            }
            apps.push(AppTarget { app, to, services });
        }
        let health = self.health(
            get(g, "health"),
            &format!("the health check of group `{}`", name.value),
        );
        Some(GroupTarget {
            root: self.path(get(g, "root"))?,
            market: self.path(get(g, "market"))?,
            apps,
            hooks: Self::hooks(get(g, "hooks"), "deploy"),
            health,
            vars: self.vars(get(g, "vars")),
            tags: Self::tags(get(g, "tags")),
            name,
        })
    }

    fn line_fn(&self) -> impl Fn(Span) -> usize + use<> {
        let text = self.text.clone();
        move |sp: Span| {
            text.get(..sp.start)
                .map_or(0, |t| t.matches('\n').count() + 1)
        }
    }

    /// `${ENV}` references must be set when the plan runs; `check` often runs where the
    /// secrets are not (a CI runner), so here an unset one is a warning.
    fn env_refs(&mut self, templates: &[&At<Template>], vars: &[(&str, &Template)]) {
        let mut seen = std::collections::HashSet::new();
        for (name, span) in templates
            .iter()
            .flat_map(|t| t.value.env_vars().map(move |e| (e, Some(t.span))))
            .chain(
                vars.iter()
                    .flat_map(|(_, t)| t.env_vars().map(|e| (e, None))),
            )
        {
            if std::env::var_os(name).is_none() && seen.insert(name.to_owned()) {
                let mut p = Problem::new(
                    Code::EnvVar,
                    format!("the environment variable `{name}` is not set here"),
                )
                .label("read from the environment")
                .warning();
                if let Some(s) = span {
                    p = p.at(s);
                }
                self.push(p);
            }
        }
    }

    /// Every placeholder must have a value for every target that uses the template.
    fn placeholders(&mut self, plan: &Plan) {
        let mut node_templates: Vec<&At<Template>> = Vec::new();
        if let Some(h) = &plan.health {
            match &h.check {
                Check::Http(t) | Check::Tcp(t) => node_templates.push(t),
                Check::Command(c) => node_templates.extend(c.iter()),
            }
        }
        if let Some(c) = &plan.hooks.command {
            node_templates.extend(c.iter());
        }
        let mut all: Vec<&At<Template>> = node_templates.clone();
        for g in &plan.groups {
            if let Some(h) = &g.health {
                match &h.check {
                    Check::Http(t) | Check::Tcp(t) => all.push(t),
                    Check::Command(c) => all.extend(c.iter()),
                }
            }
            all.extend(g.hooks.command.iter().flatten());
        }
        let vars: Vec<(&str, &Template)> = plan
            .nodes
            .iter()
            .flat_map(|n| n.vars.iter())
            .chain(plan.groups.iter().flat_map(|g| g.vars.iter()))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        self.env_refs(&all, &vars);
        for t in node_templates {
            for var in t.value.vars() {
                if NODE_BUILTINS.contains(&var) {
                    continue;
                }
                let lacking: Vec<&str> = plan
                    .nodes
                    .iter()
                    .filter(|n| !n.vars.contains_key(var))
                    .map(|n| n.name.value.as_str())
                    .collect();
                if !lacking.is_empty() {
                    self.push(
                        Problem::new(Code::Placeholder, format!(
                            "placeholder `{{{var}}}` has no value for {} {}",
                            if lacking.len() == 1 { "node" } else { "nodes" },
                            name_list(&lacking)
                        ))
                            .at(t.span)
                            .label(format!("`{{{var}}}` unfilled"))
                            .help(format!(
                                "set `{var}` under `defaults.vars` or each node's `vars`; built in are {}",
                                NODE_BUILTINS.iter().map(|b| format!("{{{b}}}")).collect::<Vec<_>>().join(", ")
                            )),
                    );
                }
            }
        }
        for g in &plan.groups {
            let mut ts: Vec<&At<Template>> = Vec::new();
            if let Some(h) = &g.health {
                match &h.check {
                    Check::Http(t) | Check::Tcp(t) => ts.push(t),
                    Check::Command(c) => ts.extend(c.iter()),
                }
            }
            if let Some(c) = &g.hooks.command {
                ts.extend(c.iter());
            }
            for t in ts {
                for var in t.value.vars() {
                    if !GROUP_BUILTINS.contains(&var) && !g.vars.contains_key(var) {
                        self.push(
                            Problem::new(
                                Code::Placeholder,
                                format!(
                                    "placeholder `{{{var}}}` has no value in group `{}`",
                                    g.name.value
                                ),
                            )
                            .at(t.span)
                            .label(format!("`{{{var}}}` unfilled"))
                            .help(format!(
                                "set `{var}` under the group's `vars`; built in are {}",
                                GROUP_BUILTINS
                                    .iter()
                                    .map(|b| format!("{{{b}}}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        );
                    }
                }
            }
        }
    }
}

fn name_list(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "30",
            "s",
            "5 m",
            "1.5s",
            "-1s",
            "3d",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn ssh_addresses() {
        let a = parse_ssh("deploy@10.0.0.2:2222").unwrap();
        assert_eq!(
            (a.user.as_deref(), a.host.as_str(), a.port),
            (Some("deploy"), "10.0.0.2", Some(2222))
        );
        assert_eq!(parse_ssh("[::1]:22").unwrap().host, "::1");
        assert_eq!(parse_ssh("host").unwrap().port, None);
        for bad in ["-oProxyCommand=x", "u@", "@h", "h:0", "h:x", "a b", "u@-h"] {
            assert!(parse_ssh(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn safe_names() {
        for ok in ["emqx-1", "a", "node_2.x", "0"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "../x",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_safe_name(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("reposiotry", ["repository", "runtime"]),
            Some("repository")
        );
        assert_eq!(
            did_you_mean("max_paralel", ["max_parallel", "waves"]),
            Some("max_parallel")
        );
        assert_eq!(did_you_mean("zzz", ["repository", "runtime"]), None);
    }
}
