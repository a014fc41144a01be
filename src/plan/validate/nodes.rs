//! `nodes`: each node with what it inherits from `defaults` and the plan; names claimed
//! once across nodes and groups; `sha256` pins.

use super::*;

impl Validator {
    /// A node's root with its placeholders filled: `{name}`, `{host}` and the node's vars
    /// (`defaults.root: /srv/emqx/{name}` gives every node its own directory). A
    /// placeholder nothing fills is an error at the root's line, never taken literally.
    pub(super) fn fill_root(
        &mut self,
        src: &At<String>,
        name: &str,
        host: &str,
        vars: &BTreeMap<String, Template>,
    ) -> Option<String> {
        let Ok(t) = Template::parse(&src.value) else {
            // Not a template (a lone brace): a path like any other.
            return Some(src.value.clone());
        };
        if t.vars().next().is_none() && t.env_vars().next().is_none() {
            return Some(src.value.clone());
        }
        let env = |k: &str| std::env::var(k).ok();
        let filled = t.render(
            |k| match k {
                "name" => Some(name.to_owned()),
                "host" => Some(host.to_owned()),
                other => vars.get(other)?.render(|_| None, env).ok(),
            },
            env,
        );
        match filled {
            Ok(path) => Some(path),
            Err(missing) => {
                let what = match missing {
                    crate::template::Missing::Var(k) => format!("no value fills `{{{k}}}`"),
                    crate::template::Missing::Env(k) => format!("`${{{k}}}` is not set"),
                };
                self.push(
                    Problem::new(
                        Code::Placeholder,
                        format!("the `root` of node `{name}`, `{}`: {what}", src.value),
                    )
                    .at(src.span)
                    .label("cannot be filled")
                    .help("a root may use {name}, {host} and the node's vars (its own or `defaults.vars`)"),
                );
                None
            }
        }
    }

    /// A `platform:` value: `<os>-<arch>` as package names write them.
    pub(super) fn platform(&mut self, n: Option<&Item>) -> Option<At<crate::package::Platform>> {
        let a = at_str(n)?;
        match crate::package::Platform::parse(&a.value) {
            Ok(value) => Some(At {
                value,
                span: a.span,
            }),
            Err(e) => {
                self.push(
                    Problem::new(Code::BadValue, format!("`platform` {e}"))
                        .at(a.span)
                        .label("expected <os>-<arch>")
                        .help("write the OS and architecture tokens of the package names, such as el8-arm64"),
                );
                None
            }
        }
    }

    pub(super) fn check_sha(&mut self, sha: &At<String>) {
        if !package::is_sha256(&sha.value) {
            self.push(
                Problem::new(Code::BadValue, "`sha256` must be 64 hexadecimal digits")
                    .at(sha.span)
                    .label("not a SHA-256 digest")
                    .help("paste the digest `sha256sum PACKAGE` prints, or remove `sha256` to rely on the package's .sha256 file"),
            );
        }
    }

    /// An `ssh` value (`[user@]host[:port]`) of `who` (`node `n1``), if it has one.
    pub(super) fn ssh(&mut self, n: Option<&Item>, who: &str) -> Option<At<SshAddr>> {
        let a = at_str(n)?;
        match parse_ssh(&a.value) {
            Ok(value) => Some(At {
                value,
                span: a.span,
            }),
            Err(e) => {
                self.push(
                    Problem::new(Code::BadValue, format!("`ssh` of {who}: {e}"))
                        .at(a.span)
                        .label("expected [user@]host[:port]")
                        .help("write where ssh logs in as user@host or user@host:port (a Host alias of ssh_config works too)"),
                );
                None
            }
        }
    }

    pub(super) fn claim_name(
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

    pub(super) fn node(
        &mut self,
        n: &Item,
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
        // The root as written (the node's own, else `defaults.root`); its placeholders are
        // filled once the node's vars and host are known.
        let root_src = match at_str(get(n, "root"))
            .filter(|a| !a.value.is_empty())
            .or_else(|| inherited.root.clone())
        {
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
            // The plan's `to` is there but invalid: that problem is reported already.
            (None, None) if inherited.to_written => return None,
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
        let ssh = self.ssh(get(n, "ssh"), &format!("node `{}`", name.value));
        let host = s(get(n, "host"))
            .map(str::to_owned)
            .or_else(|| ssh.as_ref().map(|a| a.value.host.clone()))
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let mut vars = inherited.vars.clone();
        vars.extend(self.vars(get(n, "vars")));
        let raw = self.fill_root(&root_src, &name.value, &host, &vars)?;
        // A remote root is a path on its host: taken as written, never against the plan.
        let root = match &ssh {
            Some(_) => {
                if !raw.starts_with('/') {
                    self.push(
                        Problem::new(
                            Code::Path,
                            format!(
                                "node `{}` is remote: its `root` `{raw}` is a path on its host and must be absolute",
                                name.value
                            ),
                        )
                        .at(root_src.span)
                        .label("not an absolute path")
                        .help("write the absolute path of the node's directory on its host, such as /opt/emqx"),
                    );
                }
                At {
                    value: PathBuf::from(raw),
                    span: root_src.span,
                }
            }
            None => self.relative_to_plan(&At {
                value: raw,
                span: root_src.span,
            }),
        };
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
        let mut labels = inherited.labels.clone();
        labels.extend(Self::labels(get(n, "labels")));
        let platform = self
            .platform(get(n, "platform"))
            .or_else(|| inherited.platform.clone());
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
            labels,
            platform,
        })
    }
}
