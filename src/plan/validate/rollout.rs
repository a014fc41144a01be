//! The rollout's shape beyond sizes: waves by selector, failure domains, targets kept
//! available, a scoped failure budget, gates, metric analysis, webhooks and labels; and
//! the checks that need the whole plan (every target labelled, every selector matching).

use super::*;

fn map_entries(n: Option<&Item>) -> &[(Key, Item)] {
    match n.map(|n| &n.kind) {
        Some(Kind::Map(e)) => e,
        _ => &[],
    }
}

fn number(n: Option<&Item>) -> Option<f64> {
    match n.map(|n| &n.kind) {
        Some(Kind::Int(i)) => Some(*i as f64),
        Some(Kind::Float(f)) => Some(*f),
        _ => None,
    }
}

/// Whether a wave entry is a selector rather than a size: sizes start with a digit or a
/// sign, or end with `%`.
pub(super) fn is_selector(t: &str) -> bool {
    let t = t.trim();
    !t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') && !t.ends_with('%')
}

impl Validator {
    pub(super) fn labels(n: Option<&Item>) -> BTreeMap<String, String> {
        map_entries(n)
            .iter()
            .filter_map(|(k, v)| Some((k.name.clone(), scalar_text(v)?)))
            .collect()
    }

    /// `trust: { minisign: [KEY…] }`: each key must be a minisign public key.
    pub(super) fn trust(&mut self, n: Option<&Item>) -> Option<At<crate::signature::Trust>> {
        let n = n?;
        let keys = list(get(n, "minisign"));
        if keys.is_empty() {
            if let Some(k) = get(n, "minisign") {
                self.push(
                    Problem::new(Code::BadValue, "`trust.minisign` lists no key: every package would be refused")
                        .at(k.span)
                        .label("no key")
                        .help("list the minisign public keys releases are signed with (the base64 line of minisign.pub), or remove `trust`"),
                );
            }
            return None;
        }
        let mut written = Vec::new();
        for k in keys {
            let text = s(Some(k))?;
            if let Err(e) = crate::signature::parse_key(text) {
                self.push(
                    Problem::new(Code::BadValue, format!("`{text}` is {e}"))
                        .at(k.span)
                        .label("not a key")
                        .help("give the base64 line of minisign.pub (it starts with RW), as `minisign -G` wrote it"),
                );
                return None;
            }
            written.push(text.to_owned());
        }
        crate::signature::Trust::new(&written).ok().map(|value| At {
            value,
            span: n.span,
        })
    }

    pub(super) fn wave_sizes(&mut self, n: Option<&Item>) -> Vec<WaveSize> {
        list(n)
            .iter()
            .filter_map(|w| match &w.kind {
                Kind::Str(t) if is_selector(t) => Some(WaveSize::Select(At {
                    value: t.trim().to_owned(),
                    span: w.span,
                })),
                _ => amount(w).map(WaveSize::Size),
            })
            .collect()
    }

    /// `max_failures`: a count or share of the run, or `{ count, scope }`.
    pub(super) fn budget(n: Option<&Item>) -> Option<(Amount, BudgetScope)> {
        let n = n?;
        if matches!(n.kind, Kind::Map(_)) {
            let count = amount(get(n, "count")?)?;
            let scope = match s(get(n, "scope")) {
                Some("wave") => BudgetScope::Wave,
                Some("domain") => BudgetScope::Domain,
                _ => BudgetScope::Run,
            };
            return Some((count, scope));
        }
        amount(n).map(|a| (a, BudgetScope::Run))
    }

    pub(super) fn domains(&mut self, n: Option<&Item>) -> Option<Domains> {
        let n = n?;
        let by = at_str(get(n, "by")).filter(|b| !b.value.is_empty())?;
        let order = match get(n, "order").map(|o| &o.kind) {
            Some(Kind::Seq(items)) => DomainOrder::Listed(
                items
                    .iter()
                    .filter_map(|i| {
                        Some(At {
                            value: scalar_text(i)?,
                            span: i.span,
                        })
                    })
                    .collect(),
            ),
            Some(Kind::Str(o)) if o == "smallest_first" => DomainOrder::SmallestFirst,
            _ => DomainOrder::Plan,
        };
        let max_unavailable = get(n, "max_unavailable")
            .and_then(amount)
            .unwrap_or(Amount::Count(1));
        Some(Domains {
            by,
            order,
            max_unavailable,
        })
    }

    pub(super) fn min_available(n: Option<&Item>) -> Vec<MinAvailable> {
        list(n)
            .iter()
            .filter_map(|m| {
                Some(MinAvailable {
                    select: at_str(get(m, "select"))?,
                    count: amount(get(m, "count")?)?,
                })
            })
            .collect()
    }

    pub(super) fn gates(&mut self, n: Option<&Item>) -> Vec<Gate> {
        let mut out = Vec::new();
        for g in list(n) {
            let Some(after) = get(g, "after_wave") else {
                continue;
            };
            let Some(i) = int(Some(after)).filter(|i| *i >= 1) else {
                continue;
            };
            let after_wave = At {
                value: i as usize,
                span: after.span,
            };
            let manual = s(get(g, "approve")) == Some("manual");
            let wait = get(g, "wait");
            let kind = match (manual, wait) {
                (true, Some(w)) => {
                    self.push(
                        Problem::new(
                            Code::BadRollout,
                            "a gate either waits for an approval or waits a time, not both",
                        )
                        .at(w.span)
                        .label("and `approve: manual` too")
                        .help("write two gates after the same wave if both are meant; the wait comes first"),
                    );
                    continue;
                }
                (true, None) => GateKind::Manual,
                (false, Some(w)) => match s(Some(w)).and_then(parse_duration) {
                    Some(d) => GateKind::Wait(d),
                    None => continue,
                },
                (false, None) => {
                    self.push(
                        Problem::new(Code::BadRollout, "the gate neither asks an approval nor waits")
                            .at(g.span)
                            .label("a gate without `approve` or `wait`")
                            .help("add `approve: manual` (the run pauses until `fleetup approve`) or `wait: 30m`"),
                    );
                    continue;
                }
            };
            out.push(Gate { after_wave, kind });
        }
        out.sort_by_key(|g| (g.after_wave.value, matches!(g.kind, GateKind::Manual)));
        out
    }

    pub(super) fn analysis(&mut self, n: Option<&Item>) -> Vec<Analysis> {
        let mut out = Vec::new();
        for a in list(n) {
            let Some(name) = s(get(a, "name")) else {
                continue;
            };
            let Some(p) = get(a, "prometheus") else {
                continue;
            };
            let tpl = |k| {
                let n = get(p, k)?;
                Some(At {
                    value: Template::parse(s(Some(n))?).ok()?,
                    span: n.span,
                })
            };
            let (Some(url), Some(query)) = (tpl("url"), tpl("query")) else {
                continue;
            };
            let (max, min) = (number(get(p, "max")), number(get(p, "min")));
            if max.is_none() && min.is_none() {
                self.push(
                    Problem::new(
                        Code::BadRollout,
                        format!("analysis `{name}` has no bound: nothing could fail it"),
                    )
                    .at(p.span)
                    .label("no `max` and no `min`")
                    .help("give `max:` (e.g. 0 for an error counter's increase) or `min:` (a success rate)"),
                );
                continue;
            }
            if let (Some(hi), Some(lo)) = (max, min)
                && lo > hi
            {
                self.push(
                    Problem::new(
                        Code::BadRollout,
                        format!("analysis `{name}`: `min` {lo} is above `max` {hi}, so every sample fails"),
                    )
                    .at(p.span)
                    .label("no value passes")
                    .help("swap the bounds, or keep the one that matters"),
                );
                continue;
            }
            if !matches!(url.value.raw().split_once("://"), Some(("http", _)))
                && url.value.vars().next().is_none()
                && url.value.env_vars().next().is_none()
            {
                self.push(
                    Problem::new(
                        Code::Unsupported,
                        format!("analysis `{name}`: only http:// Prometheus servers are reached yet"),
                    )
                    .at(url.span)
                    .label("not http://")
                    .help("give the server's http:// address (for loopback or a trusted network); https is not built yet"),
                );
            }
            out.push(Analysis {
                name: name.to_owned(),
                url,
                query,
                max,
                min,
                watch_for: duration(get(p, "for"), Duration::ZERO),
                interval: duration(get(p, "interval"), Duration::from_secs(10)),
                failure_limit: int(get(p, "failure_limit")).unwrap_or(0).max(0) as u32,
                consecutive_errors: int(get(p, "consecutive_errors")).unwrap_or(2).max(1) as u32,
            });
        }
        out
    }

    pub(super) fn notify(&mut self, n: Option<&Item>) -> Vec<Notify> {
        let mut out = Vec::new();
        for w in list(n) {
            let Some(hook) = get(w, "webhook") else {
                continue;
            };
            let Some(t) = s(Some(hook)).and_then(|t| Template::parse(t).ok()) else {
                continue;
            };
            if let Some(var) = t.vars().next() {
                self.push(
                    Problem::new(
                        Code::Placeholder,
                        format!("a webhook URL cannot use the placeholder `{{{var}}}`: it is one URL for the whole run"),
                    )
                    .at(hook.span)
                    .label("a placeholder")
                    .help("write the URL out, with ${ENV} for its secret part"),
                );
                continue;
            }
            if !matches!(t.raw().split_once("://"), Some(("http", _))) {
                self.push(
                    Problem::new(Code::Unsupported, "only http:// webhooks are posted to yet")
                        .at(hook.span)
                        .label("not http://")
                        .help(
                            "post to an http:// relay on a trusted network; https is not built yet",
                        ),
                );
            }
            let on = match get(w, "on") {
                Some(o) => list(Some(o))
                    .iter()
                    .filter_map(|e| {
                        NotifyOn::ALL
                            .into_iter()
                            .find(|k| Some(k.as_str()) == s(Some(e)))
                    })
                    .collect(),
                None => vec![NotifyOn::Failed, NotifyOn::Paused, NotifyOn::Finished],
            };
            out.push(Notify {
                webhook: At {
                    value: t,
                    span: hook.span,
                },
                on,
            });
        }
        out
    }

    /// What needs the whole plan: every target labelled by the domain label, listed
    /// domains and selectors that exist, groups kept available that can still change,
    /// gates after waves the plan has.
    pub(super) fn check_rollout(&mut self, plan: &Plan) {
        let r = &plan.rollout;
        let all = crate::plan::schedule::select(plan, None).unwrap_or_default();
        if let Some(d) = &r.domains {
            let by = &d.by.value;
            let mut values: Vec<String> = Vec::new();
            for t in &all {
                match plan.entry(*t).labels.get(by) {
                    Some(v) => {
                        if !values.contains(v) {
                            values.push(v.clone());
                        }
                    }
                    None => self.push(
                        Problem::new(
                            Code::BadRollout,
                            format!(
                                "`{}` has no label `{by}`, and the rollout goes by `{by}`",
                                plan.target_name(*t)
                            ),
                        )
                        .at(plan.entry(*t).name.span)
                        .label(format!("no `{by}` label"))
                        .help(format!(
                            "give it `labels: {{ {by}: … }}` (or `defaults.labels`): every target belongs to one failure domain"
                        )),
                    ),
                }
            }
            if let DomainOrder::Listed(order) = &d.order {
                let mut seen = Vec::new();
                for o in order {
                    if seen.contains(&&o.value) {
                        self.push(
                            Problem::new(
                                Code::BadRollout,
                                format!("domain `{}` is listed twice in `order`", o.value),
                            )
                            .at(o.span)
                            .label("second time")
                            .help("list each domain once"),
                        );
                    } else if !values.contains(&o.value) {
                        let mut p = Problem::new(
                            Code::BadRollout,
                            format!("no target has `{by}: {}`", o.value),
                        )
                        .at(o.span)
                        .label("names no domain");
                        p = match did_you_mean(&o.value, values.iter().map(String::as_str)) {
                            Some(m) => p.help(format!("did you mean `{m}`?")),
                            None => p.help(format!("the domains are: {}", values.join(", "))),
                        };
                        self.push(p);
                    }
                    seen.push(&o.value);
                }
            }
        }
        let selectors = r
            .waves
            .iter()
            .filter_map(|w| match w {
                WaveSize::Select(s) => Some(s),
                WaveSize::Size(_) => None,
            })
            .chain(r.min_available.iter().map(|m| &m.select));
        for sel in selectors {
            if crate::plan::schedule::matching(plan, &sel.value).is_empty() {
                let mut known: Vec<String> = all
                    .iter()
                    .map(|t| plan.target_name(*t).to_owned())
                    .collect();
                for t in &all {
                    known.extend(plan.entry(*t).tags.iter().map(|g| format!("@{g}")));
                    known.extend(
                        plan.entry(*t)
                            .labels
                            .iter()
                            .map(|(k, v)| format!("@{k}={v}")),
                    );
                }
                let names = known.iter().map(String::as_str);
                let mut p = Problem::new(
                    Code::BadRollout,
                    format!("`{}` selects no target of the plan", sel.value),
                )
                .at(sel.span)
                .label("matches nothing");
                p = match did_you_mean(&sel.value, names) {
                    Some(m) => p.help(format!("did you mean `{m}`?")),
                    None => p.help("select by @tag, @label=value, a name or a glob (emqx-*); a wave size is a count (2) or a share (\"25%\")"),
                };
                self.push(p);
            }
        }
        for m in &r.min_available {
            let members = crate::plan::schedule::matching(plan, &m.select.value).len();
            let keep = crate::plan::schedule::keep_up(m.count, members);
            if members > 0 && keep >= members {
                self.push(
                    Problem::new(
                        Code::BadRollout,
                        format!(
                            "`{}` has {members} target(s) and {keep} must stay up: none could ever change",
                            m.select.value
                        ),
                    )
                    .at(m.select.span)
                    .label(format!("keeps {keep} of {members} up"))
                    .help("lower `count`, or add targets to the group"),
                );
            }
        }
        if !r.gates.is_empty()
            && let Ok(s) = crate::plan::schedule::build(plan, None)
        {
            for g in &r.gates {
                if g.after_wave.value >= s.waves.len() {
                    self.push(
                        Problem::new(
                            Code::BadRollout,
                            format!(
                                "the gate after wave {} never stands: the plan has {} wave(s), and nothing follows the last",
                                g.after_wave.value,
                                s.waves.len()
                            ),
                        )
                        .at(g.after_wave.span)
                        .label(format!("of {} waves", s.waves.len()))
                        .help("`fleetup plan --explain` shows the waves; name one before the last"),
                    );
                }
            }
        }
    }
}
