//! `groups`: each app group, its market, apps, services, hooks and health.

use super::*;

impl Validator {
    pub(super) fn group(
        &mut self,
        g: &Item,
        names: &mut HashMap<String, Span>,
        timing: &HealthTiming,
    ) -> Option<GroupTarget> {
        if !matches!(g.kind, Kind::Map(_)) {
            return None;
        }
        let name = at_str(get(g, "name")).filter(|a| is_safe_name(&a.value))?;
        let line_of = self.line_fn();
        self.claim_name(names, &name, line_of);
        let mut apps = Vec::new();
        let mut seen_apps: HashMap<String, Span> = HashMap::new();
        for a in list(get(g, "apps")) {
            let (Some(app), Some(to)) = (at_str(get(a, "app")), version(get(a, "to"))) else {
                continue;
            };
            if seen_apps.insert(app.value.clone(), app.span).is_some() {
                self.push(
                    Problem::new(
                        Code::DuplicateTarget,
                        format!(
                            "app `{}` is listed twice in group `{}`",
                            app.value, name.value
                        ),
                    )
                    .at(app.span)
                    .label("second time")
                    .help("list each app of a group once: one entry says the version it goes to and which of its services"),
                );
            }
            let services = get(a, "services").map(|sv| {
                let mut out: Vec<At<String>> = Vec::new();
                for item in list(Some(sv)) {
                    if let Some(x) = at_str(Some(item)) {
                        if out.iter().any(|o| o.value == x.value) {
                            self.push(
                                Problem::new(
                                    Code::DuplicateKey,
                                    format!("service `{}` is listed twice", x.value),
                                )
                                .at(x.span)
                                .label("second time"),
                            );
                        } else {
                            out.push(x);
                        }
                    }
                }
                out
            });
            if let Some(sv) = get(a, "services")
                && list(Some(sv)).is_empty()
            {
                self.push(
                    Problem::new(
                        Code::BadValue,
                        "`services` is empty: the app would upgrade nothing",
                    )
                    .at(sv.span)
                    .label("empty")
                    .help("remove `services` to upgrade every changed service"),
                );
            }
            apps.push(AppTarget { app, to, services });
        }
        let health = self.health(
            get(g, "health"),
            &format!("the health check of group `{}`", name.value),
            timing,
            true,
        );
        // A volume's size is a Kubernetes quantity: `10Gi`, `500Mi`, `1.5G`.
        if let Some(Item {
            kind: Kind::Map(services),
            ..
        }) = get(g, "overrides")
        {
            for (_, sv) in services {
                for vol in list(get(sv, "volumes")) {
                    if let Some(size) = at_str(get(vol, "size"))
                        && !crate::group::is_quantity(&size.value)
                    {
                        self.push(
                            Problem::new(
                                Code::BadValue,
                                format!("`{}` is not a size Kubernetes reads", size.value),
                            )
                            .at(size.span)
                            .label("not a quantity")
                            .help("write a number and a unit as Kubernetes does: 10Gi, 500Mi, 2G"),
                        );
                    }
                }
            }
        }
        Some(GroupTarget {
            root: self.path(get(g, "root"), "root")?,
            market: self.path(get(g, "market"), "market")?,
            apps,
            hooks: Self::hooks(get(g, "hooks"), "deploy"),
            health,
            vars: self.vars(get(g, "vars")),
            tags: Self::tags(get(g, "tags")),
            labels: Self::labels(get(g, "labels")),
            render: s(get(g, "render"))
                .and_then(crate::plan::Render::parse)
                .unwrap_or_default(),
            overrides: overrides(get(g, "overrides")),
            name,
        })
    }
}

/// `overrides`, as far as its shape is right (pass 1 reported the rest).
fn overrides(n: Option<&Item>) -> BTreeMap<String, ServiceOverride> {
    let Some(Item {
        kind: Kind::Map(entries),
        ..
    }) = n
    else {
        return BTreeMap::new();
    };
    entries
        .iter()
        .map(|(k, v)| {
            let env = match get(v, "env") {
                Some(Item {
                    kind: Kind::Map(vars),
                    ..
                }) => vars
                    .iter()
                    .filter_map(|(k, v)| Some((k.name.clone(), scalar_text(v)?)))
                    .collect(),
                _ => BTreeMap::new(),
            };
            let ports = list(get(v, "ports"))
                .iter()
                .filter_map(|p| {
                    Some(OverridePort {
                        port: u16::try_from(int(get(p, "port"))?).ok()?,
                        protocol: s(get(p, "protocol")).unwrap_or("tcp").to_owned(),
                        host: int(get(p, "host")).and_then(|h| u16::try_from(h).ok()),
                    })
                })
                .collect();
            let volumes = list(get(v, "volumes"))
                .iter()
                .filter_map(|p| {
                    Some(OverrideVolume {
                        path: s(get(p, "path"))?.to_owned(),
                        size: s(get(p, "size")).map(str::to_owned),
                    })
                })
                .collect();
            (
                k.name.clone(),
                ServiceOverride {
                    env,
                    ports,
                    volumes,
                },
            )
        })
        .collect()
}
