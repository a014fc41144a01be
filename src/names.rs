//! Names: which ones are safe as file names and journal keys, and the "did you mean"
//! for a name that is almost right. Shared vocabulary of the plan, groups and `--only`.

/// Names of targets, apps, services and tags: safe as file names and in journals.
pub fn is_safe_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphanumeric() || ch == '_')
        && s.len() <= 64
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
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

/// `s` safe to print on a terminal: control characters (escape sequences, carriage
/// returns, line breaks) shown escaped (`\u{1b}`), everything else as it is. For text
/// from outside (a mirror's index, a signature's comment) in any message.
pub fn printable(s: &str) -> String {
    escaped(s, |_| false)
}

/// `s` as [`printable`] shows it, but with its line breaks and tabs kept: for text of
/// several lines (a hook's output, a message) shown to a person.
pub fn printable_text(s: &str) -> String {
    escaped(s, |c| c == '\n' || c == '\t')
}

/// `s` with every control character but those `keep` accepts escaped.
fn escaped(s: &str, keep: impl Fn(char) -> bool) -> String {
    if !s.chars().any(|c| c.is_control() && !keep(c)) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() && !keep(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The singular of a plan key that lists tables, to name one of them (`nodes` → `node`,
/// `analysis` stays `analysis`, `policies` → `policy`).
pub fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies") {
        return format!("{stem}y");
    }
    if word.ends_with("ss") || word.ends_with("is") || word.ends_with("us") {
        return word.to_owned();
    }
    word.strip_suffix('s').unwrap_or(word).to_owned()
}

#[cfg(test)]
mod singular_tests {
    #[test]
    fn one_of_a_list_is_named_in_the_singular() {
        for (many, one) in [
            ("nodes", "node"),
            ("analysis", "analysis"),
            ("gates", "gate"),
            ("notify", "notify"),
            ("policies", "policy"),
            ("apps", "app"),
        ] {
            assert_eq!(super::singular(many), one);
        }
    }
}
