//! Pass 1: the whole tree against the schema tables: unknown keys (with "did you
//! mean"), types, ranges, versions, durations.

use super::*;

pub(super) fn type_name(ty: &Ty) -> String {
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
        Ty::Wave => "a count, a percentage or a selector".into(),
        Ty::Labels => "a table of labels".into(),
        Ty::Number => "a number".into(),
        Ty::Either(a, b) => format!("{} or {}", type_name(a), type_name(b)),
        Ty::List(_) => "a list".into(),
        Ty::Table(_) => "a table".into(),
        Ty::Named(_) => "a table of tables by name".into(),
    }
}

impl Validator {
    /// Checks a table against its fields; `what` names it in messages ("the plan", "node #2").
    pub fn shape_table(&mut self, node: &Item, fields: &[Field], what: &str) {
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

    /// A key given a second time in one table.
    fn given_twice(&mut self, k: &Key, what: &str) {
        self.push(
            Problem::new(
                Code::DuplicateKey,
                format!("`{}` is given twice in {what}", k.name),
            )
            .at(k.span)
            .label("second time"),
        );
    }

    pub(super) fn wrong(&mut self, n: &Item, ty: &Ty, what: &str) {
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

    /// A count or a percentage (`min` the least count): a wave's size (`wave`) is told as
    /// waves are; any other (max_failures, min_available, max_unavailable, all given as
    /// a key's value, `what` naming the key) as what it is.
    fn count_or_percent(&mut self, n: &Item, min: i64, what: &str, wave: bool) {
        let tell = |p: Problem| {
            if wave {
                p
            } else {
                Problem {
                    code: Code::BadValue,
                    ..p
                }
                .help(format!(
                    "{what} is a count (2) or a share of the targets ({}\"10%\" … \"100%\")",
                    if min == 0 { "\"0%\", " } else { "" }
                ))
            }
        };
        match &n.kind {
            Kind::Int(i) if *i >= min => {}
            Kind::Int(i) => self.push(tell(
                Problem::new(
                    Code::BadWave,
                    format!("{what} is {i}; it must be at least {min}"),
                )
                .at(n.span)
                .label(format!("at least {min}")),
            )),
            Kind::Str(t) => match parse_percent(t) {
                Some(p) if (min == 0 || p > 0.0) && p <= 100.0 => {}
                Some(_) => self.push(tell(
                    Problem::new(Code::BadWave, format!("{what} `{t}` is out of range"))
                        .at(n.span)
                        .label(if min == 0 {
                            "from 0% to 100%"
                        } else {
                            "above 0% and at most 100%"
                        }),
                )),
                None => self.push(tell(
                    Problem::new(
                        Code::BadWave,
                        format!("{what} `{t}` is neither a count nor a percentage"),
                    )
                    .at(n.span)
                    .label("expected e.g. 5 or \"25%\""),
                )),
            },
            _ => self.wrong(n, &Ty::CountOrPercent { min }, what),
        }
    }

    pub fn shape_value(&mut self, n: &Item, ty: &Ty, what: &str) {
        match ty {
            Ty::Str | Ty::Path => {
                if !matches!(n.kind, Kind::Str(_)) {
                    self.wrong(n, ty, what);
                } else if s(Some(n)) == Some("") {
                    self.push(Problem::new(Code::BadValue, format!("{what} is empty")).at(n.span).label("empty").help(format!("give {what} a value, or remove the key")));
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
                            .label(format!("expected {range}"))
                            .help(match code {
                                Code::BadValue => format!("give {what} a number in {range}"),
                                _ => code.help().to_owned(),
                            }),
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
                Kind::Str(t) if crate::duration::too_long(t) => self.push(
                    Problem::new(
                        Code::BadDuration,
                        format!("{what} `{t}` is longer than fleetup ever waits (720h, 30 days)"),
                    )
                    .at(n.span)
                    .label("too long")
                    .help("give a duration of at most 720h"),
                ),
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
                    p = match did_you_mean(t, values.iter().copied()) {
                        Some(m) => p.help(format!("did you mean `{m}`?")),
                        None => p.help("use one of the values the message lists"),
                    };
                    self.push(p)
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::Argv => match &n.kind {
                Kind::Seq(items) if items.is_empty() => self.push(
                    Problem::new(Code::BadValue, format!("{what} is an empty command"))
                        .at(n.span)
                        .label("empty")
                        .help("give the program and its arguments, e.g. [\"systemctl\", \"restart\", \"emqx\"], or remove the key"),
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
                            self.given_twice(k, what);
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
            Ty::CountOrPercent { min } => self.count_or_percent(n, *min, what, false),
            Ty::Wave => match &n.kind {
                Kind::Str(t) if super::rollout::is_selector(t) => {
                    if t.trim().is_empty() || t == "@" {
                        self.push(
                            Problem::new(Code::BadWave, format!("{what} `{t}` selects nothing"))
                                .at(n.span)
                                .label("an empty selector")
                                .help("write a size (2, \"25%\") or a selector: @tag, @label=value, a name or a glob"),
                        );
                    }
                }
                _ => self.count_or_percent(n, 1, what, true),
            },
            Ty::Labels => match &n.kind {
                Kind::Map(entries) => {
                    let mut seen = HashMap::new();
                    for (k, v) in entries {
                        if seen.insert(k.name.as_str(), ()).is_some() {
                            self.given_twice(k, what);
                        }
                        let ok = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
                        if k.name.is_empty() || !k.name.chars().all(ok) {
                            self.push(
                                Problem::new(Code::BadValue, format!("`{}` cannot be a label name", k.name))
                                    .at(k.span)
                                    .label("letters, digits and . _ / - only")
                                    .help("name labels as Kubernetes does: zone, rack, topology.kubernetes.io/zone"),
                            );
                        }
                        match scalar_text(v) {
                            Some(t) if t.contains(['=', ',']) || t.trim().is_empty() => self.push(
                                Problem::new(Code::BadValue, format!("label `{}` is `{t}`, which a selector cannot name", k.name))
                                    .at(v.span)
                                    .label("empty, or with = or ,")
                                    .help("give the label a value without `=` and `,`, such as eu-1a"),
                            ),
                            Some(_) => {}
                            None => self.push(
                                Problem::new(Code::WrongType, format!("label `{}` must be a string, number or boolean, found {}", k.name, v.kind.describe()))
                                    .at(v.span)
                                    .label("not a plain value")
                                    .help("give the label one plain value, such as eu-1a"),
                            ),
                        }
                    }
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::Number => {
                if !matches!(n.kind, Kind::Int(_) | Kind::Float(_)) {
                    self.wrong(n, ty, what)
                }
            }
            Ty::Either(a, b) => {
                let fits = |t: &Ty| match (t, &n.kind) {
                    (Ty::List(_) | Ty::Argv, Kind::Seq(_)) => true,
                    (Ty::Table(_) | Ty::Named(_) | Ty::Vars | Ty::Labels, Kind::Map(_)) => true,
                    (Ty::List(_) | Ty::Argv | Ty::Table(_) | Ty::Named(_) | Ty::Vars | Ty::Labels, _) => false,
                    _ => !matches!(n.kind, Kind::Seq(_) | Kind::Map(_)),
                };
                if fits(a) {
                    self.shape_value(n, a, what)
                } else if fits(b) {
                    self.shape_value(n, b, what)
                } else {
                    self.wrong(n, ty, what)
                }
            }
            Ty::List(item) => match &n.kind {
                Kind::Seq(items) => {
                    for (i, it) in items.iter().enumerate() {
                        let w = match item {
                            Ty::Table(_) => format!(
                                "{} #{}",
                                crate::names::singular(what.trim_matches('`')),
                                i + 1
                            ),
                            _ => format!("item {} of {what}", i + 1),
                        };
                        self.shape_value(it, item, &w);
                    }
                }
                _ => self.wrong(n, ty, what),
            },
            Ty::Table(fields) => self.shape_table(n, fields, what),
            Ty::Named(fields) => match &n.kind {
                Kind::Map(entries) => {
                    let mut seen = HashMap::new();
                    for (k, v) in entries {
                        if seen.insert(k.name.as_str(), ()).is_some() {
                            self.given_twice(k, what);
                            continue;
                        }
                        if !is_safe_name(&k.name) {
                            self.push(
                                Problem::new(Code::UnsafeName, format!("`{}` in {what} is not a service name", k.name))
                                    .at(k.span)
                                    .label("not a name"),
                            );
                        }
                        self.shape_table(v, fields, &format!("{what} of `{}`", k.name));
                    }
                }
                _ => self.wrong(n, ty, what),
            },
        }
    }

    // ---- pass 2: build ------------------------------------------------------------
}
