//! Strings with `{placeholder}`s and `${ENV_VAR}` secrets.
//!
//! A template is parsed once when the plan is validated, so an unknown placeholder is a
//! plan error rather than a surprise at run time. Rendering fills one argv element at a
//! time: a value can never split into new arguments. Displaying a template shows it as
//! written, so secrets read from the environment are never printed.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Var(String),
    Env(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    raw: String,
    pieces: Vec<Piece>,
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Why a render failed: the name of what was missing.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    Var(String),
    Env(String),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(ch) = rest.chars().next() {
            if rest.starts_with("{{") {
                lit.push('{');
                rest = &rest[2..];
            } else if rest.starts_with("}}") {
                lit.push('}');
                rest = &rest[2..];
            } else if rest.starts_with("${") || ch == '{' {
                let env = ch == '$';
                let body_start = if env { 2 } else { 1 };
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "`{}` is not closed with `}}`",
                        if env { "${" } else { "{" }
                    ));
                };
                let name = &rest[body_start..end];
                if !is_ident(name) {
                    return Err(format!(
                        "`{}` is not a placeholder: names are letters, digits and _ (write `{{{{` for a literal brace)",
                        &rest[..=end]
                    ));
                }
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(if env {
                    Piece::Env(name.to_owned())
                } else {
                    Piece::Var(name.to_owned())
                });
                rest = &rest[end + 1..];
            } else if ch == '}' {
                return Err("a lone `}` (write `}}` for a literal brace)".into());
            } else {
                lit.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template {
            raw: s.to_owned(),
            pieces,
        })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }

    pub fn env_vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Env(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Fills the placeholders with `var` and the `${…}` references with `env`.
    pub fn render(
        &self,
        var: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<String, Missing> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(v) => out.push_str(&var(v).ok_or_else(|| Missing::Var(v.clone()))?),
                Piece::Env(v) => out.push_str(&env(v).ok_or_else(|| Missing::Env(v.clone()))?),
            }
        }
        Ok(out)
    }
}

impl Template {
    /// The template as messages may show it: placeholders filled by `var` (left as
    /// written where it has none), `${…}` secrets always as written, never their values.
    pub fn shown(&self, var: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Var(v) => match var(v) {
                    Some(val) => out.push_str(&val),
                    None => out.push_str(&format!("{{{v}}}")),
                },
                Piece::Env(v) => out.push_str(&format!("${{{v}}}")),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The values of the `${VAR}` secrets some templates read from the environment, taken
/// out of any text before it is shown (hook output, an error that quotes a filled URL or
/// argv): each becomes `${VAR}` again, as written.
#[derive(Clone, Debug, Default)]
pub struct Secrets(Vec<(String, String)>);

impl Secrets {
    /// The secrets of `templates`, read from this process's environment now.
    pub fn read<'a>(templates: impl IntoIterator<Item = &'a Template>) -> Secrets {
        let mut names: Vec<&str> = templates.into_iter().flat_map(|t| t.env_vars()).collect();
        names.sort_unstable();
        names.dedup();
        let mut v: Vec<(String, String)> = names
            .into_iter()
            .filter_map(|k| {
                let value = std::env::var(k).ok().filter(|v| !v.is_empty())?;
                Some((value, format!("${{{k}}}")))
            })
            .collect();
        // The longest first: a secret that contains another is hidden whole.
        v.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        Secrets(v)
    }

    /// `s` with every secret value replaced by its `${VAR}`.
    pub fn hide(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for (value, shown) in &self.0 {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), shown);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_fills_placeholders_and_never_secrets() {
        let t = Template::parse("--url=http://{host}/x?t=${TOKEN}&p={port}").unwrap();
        let shown = t.shown(|k| (k == "host").then(|| "db1".to_owned()));
        assert_eq!(shown, "--url=http://db1/x?t=${TOKEN}&p={port}");
    }

    #[test]
    fn parses_placeholders_env_and_escapes() {
        let t = Template::parse("http://{host}:{port}/s?t=${TOKEN}&x={{y}}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), vec!["host", "port"]);
        assert_eq!(t.env_vars().collect::<Vec<_>>(), vec!["TOKEN"]);
        let out = t
            .render(
                |v| Some(format!("<{v}>")),
                |e| (e == "TOKEN").then(|| "sec".into()),
            )
            .unwrap();
        assert_eq!(out, "http://<host>:<port>/s?t=sec&x={y}");
        assert_eq!(t.to_string(), "http://{host}:{port}/s?t=${TOKEN}&x={{y}}");
    }

    #[test]
    fn refuses_malformed_braces() {
        assert!(Template::parse("{host").is_err());
        assert!(Template::parse("a}b").is_err());
        assert!(Template::parse("{a b}").is_err());
        assert!(Template::parse("${}").is_err());
    }

    #[test]
    fn a_value_never_becomes_more_than_its_element() {
        let t = Template::parse("--name={name}").unwrap();
        let out = t.render(|_| Some("x --rm -rf /".into()), |_| None).unwrap();
        assert_eq!(out, "--name=x --rm -rf /");
        assert_eq!(
            t.render(|_| None, |_| None),
            Err(Missing::Var("name".into()))
        );
    }
}
