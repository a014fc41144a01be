//! Templates: every `{placeholder}` a value fills, and every `${ENV}` secret set
//! (warned about, never printed).

use super::*;

impl Validator {
    /// `${ENV}` references must be set when the plan runs; `check` often runs where the
    /// secrets are not (a CI runner), so here an unset one is a warning.
    pub(super) fn env_refs(&mut self, templates: &[&At<Template>], vars: &[(&str, &Template)]) {
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
    pub(super) fn placeholders(&mut self, plan: &Plan) {
        let node_templates = plan.node_templates();
        self.env_refs(&plan.templates(), &plan.var_templates());
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
        // An analysis asks about every target of its wave, groups too.
        for t in plan.analysis.iter().flat_map(|a| [&a.url, &a.query]) {
            for var in t.value.vars() {
                if GROUP_ANALYSIS_BUILTINS.contains(&var) {
                    continue;
                }
                let lacking: Vec<&str> = plan
                    .groups
                    .iter()
                    .filter(|g| !g.vars.contains_key(var))
                    .map(|g| g.name.value.as_str())
                    .collect();
                if !lacking.is_empty() {
                    self.push(
                        Problem::new(
                            Code::Placeholder,
                            format!(
                                "placeholder `{{{var}}}` has no value for {} {}",
                                if lacking.len() == 1 { "group" } else { "groups" },
                                name_list(&lacking)
                            ),
                        )
                        .at(t.span)
                        .label(format!("`{{{var}}}` unfilled"))
                        .help(format!(
                            "an analysis asks about every target of its wave, groups too: set `{var}` under each group's `vars`; built in for a group are {}",
                            GROUP_ANALYSIS_BUILTINS
                                .iter()
                                .map(|b| format!("{{{b}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                }
            }
        }
        for g in &plan.groups {
            let mut ts: Vec<&At<Template>> = Vec::new();
            if let Some(h) = &g.health {
                ts.extend(h.check.templates());
            }
            if let Some(c) = &g.hooks.command {
                ts.extend(c.iter());
            }
            let lifecycle: Vec<&At<Template>> =
                [&g.hooks.before, &g.hooks.after, &g.hooks.on_rollback]
                    .into_iter()
                    .flatten()
                    .flatten()
                    .collect();
            let n = ts.len();
            ts.extend(lifecycle);
            for (k, t) in ts.into_iter().enumerate() {
                let builtins = if k < n {
                    GROUP_BUILTINS
                } else {
                    GROUP_LIFECYCLE_BUILTINS
                };
                for var in t.value.vars() {
                    if !builtins.contains(&var) && !g.vars.contains_key(var) {
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
                                builtins
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
