//! The plan file: read it, pick its format, parse it into a spanned tree, validate it
//! into a typed [`Plan`]. Every problem found on the way is returned, none is printed.

pub mod model;
pub mod schedule;
pub mod schema;
pub mod tree;
pub mod validate;

use std::path::Path;

pub use crate::template;
pub use model::*;

use crate::diagnostics::{Code, Problem, SourceFile};
use tree::{Item, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

/// What loading a plan file gave: the file (when it could be read as text), the plan
/// (when it could be built at all), and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub file: Option<SourceFile>,
    pub plan: Option<Plan>,
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.problems
            .iter()
            .any(|p| p.severity == crate::diagnostics::Severity::Error)
    }
}

/// Largest plan file read; a 10,000-node plan is a few megabytes.
pub const MAX_PLAN_BYTES: u64 = 64 << 20;

/// The bytes of a plan file: a regular file (after links), read up to the size limit.
/// Devices, FIFOs and sockets are refused before a byte is read (a FIFO would block, a
/// device never end); a file whose size its file system does not know (`/proc`, `/sys`)
/// is refused too, so nothing but a plan is ever echoed in a diagnostic.
fn read_plan_file(path: &Path, name: &str) -> Result<Vec<u8>, Problem> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| Problem::new(Code::Io, format!("cannot read {name}: {e}"));
    let not_a_file = |what: &str| {
        Problem::new(Code::Io, format!("{name} is {what}, not a plan file"))
            .help("give the path of a .yaml, .yml or .toml file")
    };
    match std::fs::metadata(path).map_err(io)? {
        m if m.is_dir() => return Err(not_a_file("a directory")),
        m if !m.is_file() => return Err(not_a_file("a device, FIFO or socket")),
        _ => {}
    }
    // Non-blocking, and checked again on the open file: it may have been swapped since.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_a_file("a device, FIFO or socket"));
    }
    if meta.len() > MAX_PLAN_BYTES {
        return Err(Problem::new(
            Code::PlanLimit,
            format!(
                "{name} is {} bytes; plans are limited to {MAX_PLAN_BYTES} bytes",
                meta.len()
            ),
        )
        .help("check that this is the plan file: plans are a few kilobytes of text"));
    }
    let mut bytes = Vec::new();
    (&mut f)
        .take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(Problem::new(
            Code::PlanLimit,
            format!("{name} is over {MAX_PLAN_BYTES} bytes; that is the limit of a plan"),
        )
        .help("check that this is the plan file: plans are a few kilobytes of text"));
    }
    if meta.len() == 0 && !bytes.is_empty() {
        return Err(not_a_file(
            "a file whose size its file system does not know (/proc, /sys)",
        ));
    }
    Ok(bytes)
}

pub fn load(path: &Path) -> Loaded {
    let fail = |p: Problem| Loaded {
        file: None,
        plan: None,
        problems: vec![p],
    };
    let name = path.display().to_string();
    let Some(format) = Format::from_path(path) else {
        return fail(Problem::new(
            Code::PlanFormat,
            format!("{name}: cannot tell the format of the plan from its name"),
        ));
    };
    let bytes = match read_plan_file(path, &name) {
        Ok(b) => b,
        Err(p) => return fail(p),
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
            let line = valid.matches('\n').count() + 1;
            return fail(Problem::new(
                Code::PlanEncoding,
                format!("{name} is not UTF-8 text: invalid byte at offset {at} (line {line})"),
            ));
        }
    };
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    load_text(SourceFile::new(name, text), format, dir)
}

pub fn load_text(file: SourceFile, format: Format, dir: &Path) -> Loaded {
    let text = file.text.as_str();
    // A leading byte-order mark is allowed and ignored by both parsers' users.
    let parsed = match format {
        Format::Yaml => tree::parse_yaml(text),
        Format::Toml => tree::parse_toml(text),
    };
    let root: Item = match parsed {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Loaded {
                problems: vec![Problem::new(Code::PlanEmpty, "the plan file is empty")],
                file: Some(file),
                plan: None,
            };
        }
        Err(e) => {
            let code = if e.limit {
                Code::PlanLimit
            } else {
                Code::PlanSyntax
            };
            let what = match format {
                Format::Yaml => "YAML",
                Format::Toml => "TOML",
            };
            let mut p = Problem::new(code, format!("invalid {what}: {}", e.message));
            if let Some(help) = e.help {
                p = p.help(help);
            }
            if let Some(span) = e.span {
                p = p.at(span).label("here");
            }
            return Loaded {
                problems: vec![p],
                file: Some(file),
                plan: None,
            };
        }
    };
    let mut v = validate::Validator::new(dir, file.text.clone());
    if !matches!(root.kind, tree::Kind::Map(_)) {
        v.shape_table(&root, schema::PLAN, "the plan");
        return Loaded {
            problems: v.problems,
            file: Some(file),
            plan: None,
        };
    }
    v.shape_table(&root, schema::PLAN, "the plan");
    let plan = v.build(&root, file.clone());
    let mut problems = v.problems;
    problems.sort_by_key(|p| p.span.unwrap_or(Span::new(usize::MAX, 0)).start);
    Loaded {
        file: Some(file),
        plan,
        problems,
    }
}

/// A copy of plan `text` to be kept in another directory: every path the plan resolves
/// against its own directory (`state`, `defaults.root`, each node's `root`) made
/// absolute against `dir`, where the plan is now, so the copy names the same stores;
/// `repository` (or the mirror's URL) becomes `repository`, and a given `agents`
/// becomes `agents`. Values are written as double-quoted strings, which YAML and TOML
/// read alike, in place of whatever form they had (a YAML block scalar included). The
/// caller loads the copy to check it.
pub fn relocated(
    text: &str,
    format: Format,
    dir: &Path,
    repository: &str,
    agents: Option<&str>,
) -> Result<String, String> {
    let root = match format {
        Format::Yaml => tree::parse_yaml(text),
        Format::Toml => tree::parse_toml(text),
    }
    .map_err(|e| e.message)?
    .ok_or("the plan is empty")?;
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    // The text a value takes: from the end of its key's separator (a block scalar's
    // indicator and line break included) to the end of the value.
    let edit = |(key, n): (&tree::Key, &Item), new: String| -> (usize, usize, String) {
        let key_end = key.span.start + key.span.len;
        let end = n.span.start + n.span.len;
        let between = text.get(key_end..n.span.start).unwrap_or("");
        if between.contains('\n') {
            let sep = between
                .find([':', '='])
                .map_or(key_end, |i| key_end + i + 1);
            let keep = if text[..end].ends_with('\n') {
                "\n"
            } else {
                ""
            };
            (sep, end, format!(" {new}{keep}"))
        } else {
            (n.span.start, end, new)
        }
    };
    let absolute = |n: &Item| -> Option<String> {
        let tree::Kind::Str(v) = &n.kind else {
            return None;
        };
        let p = Path::new(v);
        (!v.is_empty() && p.is_relative()).then(|| quoted(&dir.join(p).display().to_string()))
    };
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    if let Some(e) = lookup(&root, "repository") {
        edits.push(edit(e, quoted(repository)));
    }
    if let Some(e) = lookup(&root, "state")
        && let Some(new) = absolute(e.1)
    {
        edits.push(edit(e, new));
    }
    if let (Some(e), Some(a)) = (lookup(&root, "agents"), agents) {
        edits.push(edit(e, quoted(a)));
    }
    if let Some(e) = lookup(&root, "defaults").and_then(|(_, d)| lookup(d, "root"))
        && let Some(new) = absolute(e.1)
    {
        edits.push(edit(e, new));
    }
    if let Some((
        _,
        tree::Item {
            kind: tree::Kind::Seq(nodes),
            ..
        },
    )) = lookup(&root, "nodes")
    {
        for n in nodes {
            if let Some(e) = lookup(n, "root")
                && let Some(new) = absolute(e.1)
            {
                edits.push(edit(e, new));
            }
        }
    }
    edits.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut out = text.to_owned();
    let mut last = usize::MAX;
    for (start, end, new) in edits {
        if end > last
            || end > out.len()
            || !out.is_char_boundary(start)
            || !out.is_char_boundary(end)
        {
            return Err("the plan's path values overlap".into());
        }
        out.replace_range(start..end, &new);
        last = start;
    }
    Ok(out)
}

fn lookup<'n>(n: &'n Item, key: &str) -> Option<(&'n tree::Key, &'n Item)> {
    match &n.kind {
        tree::Kind::Map(e) => e.iter().find(|(k, _)| k.name == key).map(|(k, v)| (k, v)),
        _ => None,
    }
}
