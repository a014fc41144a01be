//! `scripted`: targets the plan's own commands read and change (a pip or apt package,
//! a container image): their commands, versions and health.

use super::*;

/// Placeholders a scripted target's commands and check may use, besides its vars.
pub const SCRIPTED_BUILTINS: &[&str] = &["name", "host", "version", "previous"];

impl Validator {
    pub(super) fn scripted(
        &mut self,
        t: &Item,
        names: &mut HashMap<String, Span>,
        timing: &HealthTiming,
        policy: crate::package::VersionPolicy,
    ) -> Option<ScriptedTarget> {
        if !matches!(t.kind, Kind::Map(_)) {
            return None;
        }
        let name = at_str(get(t, "name")).filter(|a| is_safe_name(&a.value))?;
        let line_of = self.line_fn();
        self.claim_name(names, &name, line_of);
        let to = version(get(t, "to"))?;
        let from = version(get(t, "from"));
        // A pinned `from` is checked against `to` here, as for nodes.
        if let Some(f) = &from {
            for v in crate::package::check_versions(&f.value, &to.value, policy) {
                self.push(
                    Problem::new(v.code, v.message)
                        .at(to.span)
                        .label("not allowed from the pinned version"),
                );
            }
        }
        let health = self.health(
            get(t, "health"),
            &format!("the health check of `{}`", name.value),
            timing,
            true,
        );
        let ssh = self.ssh(get(t, "ssh"), &format!("`{}`", name.value));
        let target = ScriptedTarget {
            ssh,
            version: Self::templates(get(t, "version"))?,
            upgrade: Self::templates(get(t, "upgrade"))?,
            rollback: Self::templates(get(t, "rollback")),
            to,
            from,
            health,
            vars: self.vars(get(t, "vars")),
            tags: Self::tags(get(t, "tags")),
            labels: Self::labels(get(t, "labels")),
            timeout: duration(get(t, "timeout"), Duration::from_secs(300)),
            hooks: Self::hooks(get(t, "hooks"), "command"),
            name,
        };
        // The `version` command reads what runs: it has no version to go to or come from.
        // (`templates()` lists the `version` command's words first.)
        let all = target.templates();
        let n = target.version.len();
        let reading = all[..n].iter().map(|t| (*t, &SCRIPTED_BUILTINS[..2]));
        let changing = all[n..].iter().map(|t| (*t, SCRIPTED_BUILTINS));
        for (tpl, builtins) in reading.chain(changing) {
            for var in tpl.value.vars() {
                if !builtins.contains(&var) && !target.vars.contains_key(var) {
                    self.push(
                        Problem::new(
                            Code::Placeholder,
                            format!(
                                "placeholder `{{{var}}}` has no value in `{}`",
                                target.name.value
                            ),
                        )
                        .at(tpl.span)
                        .label(format!("`{{{var}}}` unfilled"))
                        .help(format!(
                            "set `{var}` under the target's `vars`; built in here are {}",
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
        Some(target)
    }
}
