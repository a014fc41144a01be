//! A format-neutral document tree in which every value keeps its byte span.
//!
//! YAML is read from serde-saphyr's event parser (its spans are exact, and it is several
//! times faster than going through serde with a `Spanned<T>` around every value); TOML
//! through `toml::Spanned<T>`. Validation then walks the tree and can report every problem
//! at its place, instead of stopping at the first one as a derived deserializer would.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

pub use crate::span::Span;

/// One value of the parsed file, with its span: a *tree item* (never a fleet node).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
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
    Seq(Vec<Item>),
    Map(Vec<(Key, Item)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Item {
    /// How many values the item holds, itself included.
    pub fn count(&self) -> usize {
        1 + match &self.kind {
            Kind::Seq(items) => items.iter().map(Item::count).sum(),
            Kind::Map(e) => e.iter().map(|(_, v)| 1 + v.count()).sum(),
            _ => 0,
        }
    }

    /// The value without its spans, for comparing documents across formats.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => Value::from(*f),
            Kind::Str(s) => Value::from(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Item::to_json).collect()),
            Kind::Map(e) => Value::Object(
                e.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
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

/// Why a document could not be read into a tree.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub span: Option<Span>,
    /// The document exceeded a safety limit (nesting, aliases, documents).
    pub limit: bool,
    /// What to do about this one, when the code's help does not fit it.
    pub help: Option<&'static str>,
}

const NESTING_HELP: &str =
    "no plan key nests this deep: look for brackets or indentation that never close";
const ALIAS_HELP: &str = "write the values out, or use `defaults` for what nodes share; plans need no alias expansion this large";
const DOCUMENTS_HELP: &str =
    "put each plan into a file of its own (a `---` line starts a second document)";

/// Deepest nesting of lists and tables accepted, in both formats.
pub const MAX_DEPTH: usize = 32;

/// How many values aliases may add to a YAML document, against alias bombs.
pub const MAX_ALIAS_EXPANSION: usize = 10_000;

fn offset(m: &serde_saphyr::granit_parser::Marker) -> usize {
    m.byte_offset().unwrap_or(m.index())
}

/// Reads YAML into a tree. Iterative: nesting depth costs no stack.
pub fn parse_yaml(text: &str) -> Result<Option<Item>, SyntaxError> {
    use serde_saphyr::granit_parser::{Event, Parser};

    enum Frame {
        Seq(Vec<Item>),
        /// Entries so far, and a key waiting for its value.
        Map(Vec<(Key, Item)>, Option<Item>),
    }
    struct Open {
        frame: Frame,
        start: usize,
        anchor: usize,
    }
    let err = |message: String, at: usize, limit: bool| SyntaxError {
        message,
        span: Some(Span::new(at, 0)),
        limit,
        help: None,
    };
    let beyond = |message: String, at: usize, help: &'static str| SyntaxError {
        message,
        span: Some(Span::new(at, 0)),
        limit: true,
        help: Some(help),
    };
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, Item> = HashMap::new();
    let mut root: Option<Item> = None;
    let mut documents = 0;
    let mut replayed = 0usize;

    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let info = e.info();
            if info.contains("recursion limit") {
                beyond(info, offset(e.marker()), NESTING_HELP)
            } else {
                err(info, offset(e.marker()), false)
            }
        })?;
        let (start, end) = (offset(&span.start), offset(&span.end));
        let here = Span::new(start, end.saturating_sub(start));
        let node = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(beyond(
                        "a plan file holds one YAML document; this one has more (`---`)".into(),
                        start,
                        DOCUMENTS_HELP,
                    ));
                }
                continue;
            }
            Event::Scalar(value, style, anchor, tag) => {
                let kind = resolve_scalar(&value, style, tag.as_deref().map(|t| t.suffix()));
                let node = Item { span: here, kind };
                if anchor != 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(beyond(
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                        start,
                        NESTING_HELP,
                    ));
                }
                let frame = match event {
                    Event::SequenceStart(..) => Frame::Seq(Vec::new()),
                    _ => Frame::Map(Vec::new(), None),
                };
                stack.push(Open {
                    frame,
                    start,
                    anchor,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = stack.pop() else {
                    return Err(err("unbalanced collection".into(), start, false));
                };
                let kind = match open.frame {
                    Frame::Seq(items) => Kind::Seq(items),
                    Frame::Map(entries, _) => Kind::Map(entries),
                };
                let node = Item {
                    span: Span::new(open.start, end.saturating_sub(open.start)),
                    kind,
                };
                if open.anchor != 0 {
                    anchors.insert(open.anchor, node.clone());
                }
                node
            }
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err(err("an alias to an unknown anchor".into(), start, false));
                };
                replayed += target.count();
                if replayed > MAX_ALIAS_EXPANSION {
                    return Err(beyond(
                        format!("aliases expand into more than {MAX_ALIAS_EXPANSION} values"),
                        start,
                        ALIAS_HELP,
                    ));
                }
                let mut node = target.clone();
                node.span = here;
                node
            }
            Event::UnresolvedAlias(name) => {
                return Err(err(
                    format!("the alias *{name} has no anchor"),
                    start,
                    false,
                ));
            }
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open {
                frame: Frame::Seq(items),
                ..
            }) => items.push(node),
            Some(Open {
                frame: Frame::Map(entries, pending),
                ..
            }) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let name = match key.kind {
                        Kind::Str(s) => s,
                        Kind::Int(i) => i.to_string(),
                        Kind::Bool(b) => b.to_string(),
                        Kind::Float(f) => f.to_string(),
                        Kind::Null => "null".to_owned(),
                        Kind::Seq(_) | Kind::Map(_) => {
                            return Err(err(
                                "a key must be a plain string".into(),
                                key.span.start,
                                false,
                            ));
                        }
                    };
                    entries.push((
                        Key {
                            name,
                            span: key.span,
                        },
                        node,
                    ));
                }
            },
        }
    }
    // A document of only comments is empty, like an empty file.
    Ok(root.filter(|r| r.kind != Kind::Null))
}

/// YAML 1.2 core schema: what a plain scalar means. Quoted scalars are strings.
fn resolve_scalar(
    value: &str,
    style: serde_saphyr::granit_parser::ScalarStyle,
    tag: Option<&str>,
) -> Kind {
    use serde_saphyr::granit_parser::ScalarStyle;
    if tag == Some("str") || style != ScalarStyle::Plain {
        return Kind::Str(value.to_owned());
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<i64>() {
            Ok(i) => Kind::Int(i),
            Err(_) => Kind::Float(value.parse().unwrap_or(f64::NAN)),
        };
    }
    let radix = [("0o", 8), ("0x", 16)]
        .iter()
        .find_map(|(p, r)| i64::from_str_radix(value.strip_prefix(p)?, *r).ok());
    if let Some(i) = radix {
        return Kind::Int(i);
    }
    if is_yaml_float(value)
        && let Ok(f) = value.parse::<f64>()
    {
        return Kind::Float(f);
    }
    Kind::Str(value.to_owned())
}

/// The core schema's float: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_yaml_float(v: &str) -> bool {
    let b = v.strip_prefix(['-', '+']).unwrap_or(v).as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int_digits = digits(0);
    let mut i = int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        frac_digits = digits(i + 1);
        i += 1 + frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = digits(i);
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

/// A TOML value read through `toml::Spanned`, before the parent attaches its span.
struct Raw(Kind);

/// The marker toml uses for its date-time values inside serde's data model.
const TOML_DATETIME: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

fn toml_node(s: toml::Spanned<Raw>) -> Item {
    let span = s.span().into();
    Item {
        span,
        kind: s.into_inner().0,
    }
}

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(Kind::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(Kind::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw(match i64::try_from(v) {
            Ok(i) => Kind::Int(i),
            Err(_) => Kind::Float(v as f64),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(Kind::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(Kind::Str(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(Kind::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<toml::Spanned<Raw>>()? {
            items.push(toml_node(item));
        }
        Ok(Raw(Kind::Seq(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<toml::Spanned<String>>()? {
            let span = key.span().into();
            let value = toml_node(map.next_value::<toml::Spanned<Raw>>()?);
            entries.push((
                Key {
                    name: key.into_inner(),
                    span,
                },
                value,
            ));
        }
        Ok(Raw(Kind::Map(entries)))
    }
}

/// Reads TOML into a tree. Recursive, so nesting is capped before parsing starts.
pub fn parse_toml(text: &str) -> Result<Option<Item>, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    // toml has no nesting limit of its own and both it and this reader recurse.
    if let Some(at) = toml_too_deep(text) {
        return Err(SyntaxError {
            message: format!("nesting deeper than {MAX_DEPTH} levels"),
            span: Some(Span::new(at, 1)),
            limit: true,
            help: Some(NESTING_HELP),
        });
    }
    match toml::from_str::<toml::Spanned<Raw>>(text) {
        Ok(root) => match root.get_ref().0 {
            Kind::Map(ref e) if e.is_empty() => Ok(None),
            _ => Ok(Some(toml_node(root))),
        },
        Err(e) if e.message().contains(TOML_DATETIME) => Err(SyntaxError {
            message: "a TOML date or time is not a plan value: quote it, as in \"02:00\"".into(),
            span: e.span().map(Span::from),
            limit: false,
            help: None,
        }),
        Err(e) => Err(SyntaxError {
            message: e.message().trim().to_owned(),
            span: e.span().map(Span::from),
            limit: false,
            help: None,
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

    fn map_keys(n: &Item) -> Vec<&str> {
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
        let Kind::Seq(items) = &e[1].1.kind else {
            panic!()
        };
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
        let ok = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse_yaml(&ok).is_ok());
    }

    #[test]
    fn toml_depth_scan_ignores_strings_and_comments() {
        let text = format!(
            "a = \"{}\" # {}\nb = '{}'\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(toml_too_deep(&text), None);
    }
}

#[cfg(test)]
mod yaml_tests {
    use super::*;

    fn scalar(y: &str) -> Kind {
        let root = parse_yaml(&format!("v: {y}\n")).unwrap().unwrap();
        let Kind::Map(mut e) = root.kind else {
            panic!()
        };
        e.remove(0).1.kind
    }

    #[test]
    fn core_schema_scalars() {
        assert_eq!(scalar("1"), Kind::Int(1));
        assert_eq!(scalar("-12"), Kind::Int(-12));
        assert_eq!(scalar("0x1f"), Kind::Int(31));
        assert_eq!(scalar("0o17"), Kind::Int(15));
        assert_eq!(scalar("4.4"), Kind::Float(4.4));
        assert_eq!(scalar("1e3"), Kind::Float(1000.0));
        assert_eq!(scalar("4.4.16"), Kind::Str("4.4.16".into()));
        assert_eq!(scalar("\"1\""), Kind::Str("1".into()));
        assert_eq!(scalar("!!str 1"), Kind::Str("1".into()));
        assert_eq!(scalar("true"), Kind::Bool(true));
        assert_eq!(scalar("yes"), Kind::Str("yes".into()));
        assert_eq!(scalar("~"), Kind::Null);
        assert_eq!(scalar("30s"), Kind::Str("30s".into()));
        assert_eq!(scalar("02:00"), Kind::Str("02:00".into()));
        assert_eq!(scalar(".5"), Kind::Float(0.5));
        assert_eq!(scalar("1."), Kind::Float(1.0));
        assert_eq!(scalar("."), Kind::Str(".".into()));
    }

    #[test]
    fn aliases_are_expanded_within_a_limit() {
        let ok = parse_yaml("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        assert_eq!(ok.to_json(), serde_json::json!({"a": [1, 2], "b": [1, 2]}));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            bomb.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(", ")
            ));
        }
        assert!(parse_yaml(&bomb).unwrap_err().limit);
    }

    #[test]
    fn one_document_only_and_comments_alone_are_empty() {
        assert!(parse_yaml("a: 1\n---\nb: 2\n").unwrap_err().limit);
        assert_eq!(parse_yaml("# nothing\n").unwrap(), None);
        assert!(parse_yaml("a: [1, 2\n").is_err());
    }
}
