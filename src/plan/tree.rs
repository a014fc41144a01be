//! A format-neutral document tree in which every value keeps its byte span.
//!
//! YAML (serde-saphyr) and TOML (toml) are each read into this one tree through their own
//! `Spanned<T>` wrappers; validation then walks the tree and can report every problem at
//! its place, instead of stopping at the first one as a derived deserializer would.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Byte range in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn new(start: usize, len: usize) -> Self {
        Span { start, len }
    }
}

impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        Span::new(r.start, r.end.saturating_sub(r.start))
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.start, s.len).into()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Node {
    /// The value without its spans, for comparing documents across formats.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => Value::from(*f),
            Kind::Str(s) => Value::from(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(e) => Value::Object(e.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect()),
        }
    }
}

impl Kind {
    /// How the kind is named in "expected …, found …" messages.
    pub fn describe(&self) -> String {
        match self {
            Kind::Null => "nothing (null)".into(),
            Kind::Bool(b) => format!("the boolean {b}"),
            Kind::Int(i) => format!("the number {i}"),
            Kind::Float(f) => format!("the number {f}"),
            Kind::Str(s) if s.chars().count() > 40 => "a string".into(),
            Kind::Str(s) => format!("the string \"{s}\""),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a table".into(),
        }
    }
}

/// How a format wraps a value with its location.
pub trait Format {
    type Spanned<T: DeserializeOwned>: DeserializeOwned;
    fn split<T: DeserializeOwned>(s: Self::Spanned<T>) -> (T, Span);
}

pub enum Yaml {}
pub enum Toml {}

impl Format for Yaml {
    type Spanned<T: DeserializeOwned> = serde_saphyr::Spanned<T>;
    fn split<T: DeserializeOwned>(s: Self::Spanned<T>) -> (T, Span) {
        let span = s.referenced.span();
        let start = span.byte_offset().unwrap_or(span.offset()) as usize;
        let len = span.byte_len().unwrap_or(span.len()) as usize;
        (s.value, Span::new(start, len))
    }
}

impl Format for Toml {
    type Spanned<T: DeserializeOwned> = toml::Spanned<T>;
    fn split<T: DeserializeOwned>(s: Self::Spanned<T>) -> (T, Span) {
        let span = s.span().into();
        (s.into_inner(), span)
    }
}

/// A value read through format `F`, before its own span is attached by the parent.
pub struct Raw<F>(pub Kind, PhantomData<F>);

/// The marker toml uses for its date-time values inside serde's data model.
const TOML_DATETIME: &str = "$__toml_private_datetime";

impl<'de, F: Format> Deserialize<'de> for Raw<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor::<F>(PhantomData))
    }
}

struct RawVisitor<F>(PhantomData<F>);

fn node<F: Format>(s: F::Spanned<Raw<F>>) -> Node {
    let (raw, span) = F::split(s);
    Node { span, kind: raw.0 }
}

impl<'de, F: Format> Visitor<'de> for RawVisitor<F> {
    type Value = Raw<F>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Raw<F>, E> {
        Ok(Raw(Kind::Null, PhantomData))
    }
    fn visit_none<E>(self) -> Result<Raw<F>, E> {
        Ok(Raw(Kind::Null, PhantomData))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw<F>, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw<F>, E> {
        Ok(Raw(Kind::Bool(v), PhantomData))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw<F>, E> {
        Ok(Raw(Kind::Int(v), PhantomData))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw<F>, E> {
        Ok(Raw(
            match i64::try_from(v) {
                Ok(i) => Kind::Int(i),
                Err(_) => Kind::Float(v as f64),
            },
            PhantomData,
        ))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw<F>, E> {
        Ok(Raw(Kind::Float(v), PhantomData))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw<F>, E> {
        Ok(Raw(Kind::Str(v.to_owned()), PhantomData))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw<F>, E> {
        Ok(Raw(Kind::Str(v), PhantomData))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Raw<F>, E> {
        Err(E::custom("binary values are not supported in a plan"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<F>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<F::Spanned<Raw<F>>>()? {
            items.push(node::<F>(item));
        }
        Ok(Raw(Kind::Seq(items), PhantomData))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<F>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<F::Spanned<Raw<F>>>()? {
            let key = node::<F>(key);
            let name = match key.kind {
                Kind::Str(s) => s,
                Kind::Int(i) => i.to_string(),
                Kind::Bool(b) => b.to_string(),
                Kind::Float(f) => f.to_string(),
                Kind::Null => "null".to_owned(),
                Kind::Seq(_) | Kind::Map(_) => {
                    return Err(de::Error::custom("a key must be a plain string"));
                }
            };
            let value = node::<F>(map.next_value::<F::Spanned<Raw<F>>>()?);
            entries.push((Key { name, span: key.span }, value));
        }
        Ok(Raw(Kind::Map(entries), PhantomData))
    }
}

/// Why a document could not be read into a tree.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub span: Option<Span>,
    /// The document exceeded a safety limit (nesting, aliases, size).
    pub limit: bool,
}

/// Deepest nesting of lists and tables accepted, in both formats.
pub const MAX_DEPTH: usize = 32;

/// Parsing recurses once per nesting level; a thread with a known, ample stack makes the
/// depth limits the only limits, whatever stack the caller runs on.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        match std::thread::Builder::new().stack_size(64 << 20).spawn_scoped(s, f) {
            Ok(h) => match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(e) => panic!("cannot start the parser thread: {e}"),
        }
    })
}

pub fn parse_yaml(text: &str) -> Result<Option<Node>, SyntaxError> {
    on_big_stack(|| parse_yaml_small(text))
}

fn parse_yaml_small(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut options = serde_saphyr::options::Options::default();
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = 4_000_000;
    budget.max_events = 8_000_000;
    budget.max_documents = 1;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 10_000;
    options.strict_booleans = true;
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_saphyr::from_str_with_options::<serde_saphyr::Spanned<Raw<Yaml>>>(text, options) {
        Ok(root) => Ok(Some(node::<Yaml>(root))),
        Err(e) => Err(yaml_error(e)),
    }
}

fn yaml_error(e: serde_saphyr::Error) -> SyntaxError {
    let span = e.location().map(|l| {
        let s = l.span();
        Span::new(
            s.byte_offset().unwrap_or(s.offset()) as usize,
            s.byte_len().unwrap_or(s.len()) as usize,
        )
    });
    let full = e.to_string();
    // The rendered error can carry a snippet after the first line, and starts with
    // "error: line L column C: "; our renderer draws its own location and snippet.
    let mut message = full.lines().next().unwrap_or("invalid YAML").trim();
    message = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(rest) = message.strip_prefix("line ") {
        if let Some((_, m)) = rest.split_once(": ") {
            message = m;
        }
    }
    let limit = message.contains("budget breached")
        || message.contains("recursion limit")
        || message.contains("limit exceeded");
    let message = match message.strip_prefix("budget breached: ") {
        Some(what) if what.starts_with("Depth") => format!("nesting deeper than {MAX_DEPTH} levels"),
        Some(what) if what.starts_with("Documents") => {
            "a plan file holds one YAML document; this one has more (`---`)".to_owned()
        }
        Some(what) => format!("the document exceeds a safety limit ({what})"),
        None if message.contains("alias replay limit") => {
            format!("aliases expand into too many values ({message})")
        }
        None => message.to_owned(),
    };
    SyntaxError {
        message,
        span,
        limit,
    }
}

pub fn parse_toml(text: &str) -> Result<Option<Node>, SyntaxError> {
    on_big_stack(|| parse_toml_small(text))
}

fn parse_toml_small(text: &str) -> Result<Option<Node>, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    // toml has no nesting limit of its own and both it and this reader recurse.
    if let Some(at) = toml_too_deep(text) {
        return Err(SyntaxError {
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
            span: Some(Span::new(at, 1)),
            limit: true,
        });
    }
    match toml::from_str::<toml::Spanned<Raw<Toml>>>(text) {
        Ok(root) => Ok(Some(node::<Toml>(root))),
        Err(e) if e.message().contains(TOML_DATETIME) => Err(SyntaxError {
            message: "a TOML date or time is not a plan value: quote it, as in \"02:00\"".into(),
            span: e.span().map(Span::from),
            limit: false,
        }),
        Err(e) => Err(SyntaxError {
            message: e.message().trim().to_owned(),
            span: e.span().map(Span::from),
            limit: false,
        }),
    }
}

/// Offset of the first bracket that nests deeper than [`MAX_DEPTH`] in TOML inline values.
/// Strings and comments are skipped; table headers (`[a]`, `[[a]]`) never nest deeply.
fn toml_too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(if q == b'"' { b"\"\"\"" } else { b"'''" });
                let close: &[u8] = if triple {
                    if q == b'"' { b"\"\"\"" } else { b"'''" }
                } else if q == b'"' {
                    b"\""
                } else {
                    b"'"
                };
                i += close.len();
                while i < bytes.len() && !bytes[i..].starts_with(close) {
                    if q == b'"' && bytes[i] == b'\\' {
                        i += 1;
                    }
                    if !triple && bytes[i] == b'\n' {
                        break;
                    }
                    i += 1;
                }
                i += close.len() - 1;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_keys(n: &Node) -> Vec<&str> {
        match &n.kind {
            Kind::Map(e) => e.iter().map(|(k, _)| k.name.as_str()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn yaml_and_toml_give_the_same_tree_shape_with_spans() {
        let y = "a: 1\nb:\n  - x\n  - 2.5\nc: { d: true }\n";
        let t = "a = 1\nb = [\"x\", 2.5]\n[c]\nd = true\n";
        let y = parse_yaml(y).unwrap().unwrap();
        let t = parse_toml(t).unwrap().unwrap();
        assert_eq!(map_keys(&y), vec!["a", "b", "c"]);
        assert_eq!(map_keys(&t), vec!["a", "b", "c"]);
        let Kind::Map(e) = &y.kind else { panic!() };
        assert_eq!(e[0].1.kind, Kind::Int(1));
        assert_eq!(e[0].1.span, Span::new(3, 1));
        assert_eq!(e[1].0.span, Span::new(5, 1));
        let Kind::Map(e) = &t.kind else { panic!() };
        assert_eq!(e[0].1.span, Span::new(4, 1));
        let Kind::Seq(items) = &e[1].1.kind else { panic!() };
        assert_eq!(items[0].kind, Kind::Str("x".into()));
        assert_eq!(items[0].span, Span::new(11, 3));
    }

    #[test]
    fn toml_times_must_be_quoted() {
        let e = parse_toml("from = 02:00:00\n").unwrap_err();
        assert!(e.message.contains("quote it"), "{}", e.message);
        assert_eq!(e.span, Some(Span::new(7, 8)));
    }

    #[test]
    fn deep_nesting_is_refused_in_both_formats() {
        let deep = format!("a = {}{}\n", "[".repeat(200), "]".repeat(200));
        assert!(parse_toml(&deep).unwrap_err().limit);
        for n in [200, 20_000] {
            let deep = format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
            assert!(parse_yaml(&deep).unwrap_err().limit, "{n}");
        }
        let ok = format!("a: {}{}\n", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert!(parse_yaml(&ok).is_ok());
    }

    #[test]
    fn toml_depth_scan_ignores_strings_and_comments() {
        let text = format!("a = \"{}\" # {}\nb = '{}'\n", "[".repeat(100), "{".repeat(100), "[".repeat(100));
        assert_eq!(toml_too_deep(&text), None);
    }
}
