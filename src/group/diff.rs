//! What an upgrade does to each service of an app: the per-service diff (SPEC §3).

use super::*;
use crate::plan::ServiceOverride;

/// What an upgrade does to one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Upgrade,
    Add,
    Unchanged,
    Kept,
}

impl Change {
    pub fn marker(self) -> &'static str {
        match self {
            Change::Upgrade => "▲",
            Change::Add => "+",
            Change::Unchanged | Change::Kept => " ",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Upgrade => "upgrade",
            Change::Add => "add",
            Change::Unchanged => "unchanged",
            Change::Kept => "kept",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDiff {
    pub service: String,
    pub change: Change,
    /// Each changed field, in words: `image a → b`, `env API_URL added`, …
    pub details: Vec<String>,
    /// Every field the upgrade changes, as `- old` and `+ new` lines, and `= …` for a
    /// local override that stays as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

impl ServiceDiff {
    /// ` (not picked)` for an upgrade or addition the operator's pick leaves out.
    pub fn not_picked(&self, picked: &[String]) -> &'static str {
        match self.change {
            Change::Upgrade | Change::Add if !picked.contains(&self.service) => " (not picked)",
            _ => "",
        }
    }

    /// The changed fields in one line, after `sep` (empty when nothing changed).
    pub fn details_after(&self, sep: &str) -> String {
        if self.details.is_empty() {
            String::new()
        } else {
            format!("{sep}{}", self.details.join("; "))
        }
    }
}

fn port(p: &Port) -> String {
    match p.host {
        Some(h) => format!("port {}/{} (published on {h})", p.port, p.protocol),
        None => format!("port {}/{}", p.port, p.protocol),
    }
}

fn env(k: &str, v: &str) -> String {
    format!("env {k}={v}")
}

/// The per-service diff of SPEC §3 between what is installed and a target template:
/// every field that changes, removals included; the group's local `overrides` are
/// listed as kept (they are merged into whatever version is rendered).
pub fn diff(
    installed: &BTreeMap<String, ServiceSpec>,
    target: &AppTemplate,
    overrides: &BTreeMap<String, ServiceOverride>,
) -> Vec<ServiceDiff> {
    let mut out = Vec::new();
    let empty = ServiceSpec::default();
    for (name, new) in &target.services {
        let (old, added) = match installed.get(name) {
            Some(o) => (o, false),
            None => (&empty, true),
        };
        let mut d = Vec::new();
        let mut lines = Vec::new();
        if old.image != new.image {
            if !added {
                d.push(format!("image {} → {}", old.image, new.image));
                lines.push(format!("- image {}", old.image));
            } else {
                d.push(format!("image {}", new.image));
            }
            lines.push(format!("+ image {}", new.image));
        }
        for p in &new.ports {
            match old.ports.iter().find(|o| o.port == p.port) {
                None => {
                    d.push(if added {
                        port(p)
                    } else {
                        format!("{} added", port(p))
                    });
                    lines.push(format!("+ {}", port(p)));
                }
                Some(o) if o.protocol != p.protocol => {
                    d.push(format!(
                        "port {} changed: {} → {}",
                        p.port, o.protocol, p.protocol
                    ));
                    lines.push(format!("- {}", port(o)));
                    lines.push(format!("+ {}", port(p)));
                }
                Some(o) if o.host != p.host => {
                    let published = |h: Option<u16>| {
                        h.map_or("not published".into(), |h| format!("published on {h}"))
                    };
                    d.push(format!(
                        "port {} changed: {} → {}",
                        p.port,
                        published(o.host),
                        published(p.host)
                    ));
                    lines.push(format!("- {}", port(o)));
                    lines.push(format!("+ {}", port(p)));
                }
                _ => {}
            }
        }
        for o in old
            .ports
            .iter()
            .filter(|o| !new.ports.iter().any(|p| p.port == o.port))
        {
            d.push(format!("{} removed", port(o)));
            lines.push(format!("- {}", port(o)));
        }
        for (k, v) in &new.env {
            match old.env.get(k) {
                None => {
                    if !added {
                        d.push(format!("env {k} added"));
                    }
                    lines.push(format!("+ {}", env(k, v)));
                }
                Some(o) if o != v => {
                    d.push(format!("env {k} changed"));
                    lines.push(format!("- {}", env(k, o)));
                    lines.push(format!("+ {}", env(k, v)));
                }
                _ => {}
            }
        }
        for (k, o) in old.env.iter().filter(|(k, _)| !new.env.contains_key(*k)) {
            d.push(format!("env {k} removed"));
            lines.push(format!("- {}", env(k, o)));
        }
        for v in new.volumes.iter().filter(|v| !old.volumes.contains(v)) {
            if !added {
                d.push(format!("volume {} added", v.path));
            }
            lines.push(format!("+ volume {}", v.path));
        }
        for v in old.volumes.iter().filter(|v| !new.volumes.contains(v)) {
            d.push(format!("volume {} removed", v.path));
            lines.push(format!("- volume {}", v.path));
        }
        let change = match (added, d.is_empty()) {
            (true, _) => Change::Add,
            (false, true) => Change::Unchanged,
            (false, false) => Change::Upgrade,
        };
        if let Some(ov) = overrides.get(name) {
            lines.extend(kept(ov));
        }
        out.push(ServiceDiff {
            service: name.clone(),
            change,
            details: d,
            lines,
        });
    }
    for name in installed
        .keys()
        .filter(|n| !target.services.contains_key(*n))
    {
        out.push(ServiceDiff {
            service: name.clone(),
            change: Change::Kept,
            details: vec![format!(
                "not in {} {}; kept as it is",
                target.app, target.version
            )],
            lines: Vec::new(),
        });
    }
    out
}

/// The `= …` lines of a service's local overrides.
fn kept(ov: &ServiceOverride) -> Vec<String> {
    let mut v: Vec<String> = ov
        .env
        .iter()
        .map(|(k, x)| format!("= {} (local override, kept)", env(k, x)))
        .collect();
    v.extend(
        ov.ports
            .iter()
            .map(|p| format!("= port {}/{} (local override, kept)", p.port, p.protocol)),
    );
    v.extend(
        ov.volumes
            .iter()
            .map(|x| format!("= volume {} (local override, kept)", x.path)),
    );
    v
}

/// `spec` with the service's local overrides merged in: their env wins over the
/// template's, their ports and volumes are added to the template's.
pub fn with_overrides(spec: &ServiceSpec, ov: Option<&ServiceOverride>) -> ServiceSpec {
    let mut s = spec.clone();
    let Some(ov) = ov else { return s };
    for (k, v) in &ov.env {
        s.env.insert(k.clone(), v.clone());
    }
    for p in &ov.ports {
        s.ports.retain(|x| x.port != p.port);
        s.ports.push(Port {
            port: p.port,
            protocol: p.protocol.clone(),
            host: p.host,
        });
    }
    for v in &ov.volumes {
        match s.volumes.iter_mut().find(|x| x.path == v.path) {
            // The template's volume, sized by the override when it says.
            Some(x) => {
                if v.size.is_some() {
                    x.size = v.size.clone();
                }
            }
            None => s.volumes.push(Volume {
                path: v.path.clone(),
                size: v.size.clone(),
            }),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(image: &str) -> ServiceSpec {
        ServiceSpec {
            image: image.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_diff_lists_every_changed_field() {
        let mut old = BTreeMap::new();
        let mut web = spec("mall/web:1.0.0");
        web.ports.push(Port {
            port: 80,
            protocol: "http".into(),
            host: None,
        });
        web.env.insert("A".into(), "1".into());
        web.env.insert("GONE".into(), "x".into());
        old.insert("web".into(), web);
        old.insert("db".into(), spec("pg:14"));
        old.insert("same".into(), spec("same:1"));
        let mut new = BTreeMap::new();
        let mut web2 = spec("mall/web:1.1.0");
        web2.ports.push(Port {
            port: 80,
            protocol: "tcp".into(),
            host: None,
        });
        web2.ports.push(Port {
            port: 443,
            protocol: "https".into(),
            host: None,
        });
        web2.env.insert("A".into(), "2".into());
        web2.env.insert("B".into(), "3".into());
        web2.volumes.push(Volume {
            path: "/data".into(),
            size: None,
        });
        new.insert("web".into(), web2);
        new.insert("worker".into(), spec("mall/worker:1.1.0"));
        new.insert("same".into(), spec("same:1"));
        let t = AppTemplate {
            app: "mall".into(),
            version: Version::new(1, 1, 0),
            services: new,
            digest: String::new(),
        };
        let d = diff(&old, &t, &BTreeMap::new());
        let by = |n: &str| d.iter().find(|x| x.service == n).unwrap();
        assert_eq!(by("web").change, Change::Upgrade);
        assert_eq!(
            by("web").details,
            vec![
                "image mall/web:1.0.0 → mall/web:1.1.0",
                "port 80 changed: http → tcp",
                "port 443/https added",
                "env A changed",
                "env B added",
                "env GONE removed",
                "volume /data added"
            ]
        );
        assert_eq!(by("worker").change, Change::Add);
        assert_eq!(by("same").change, Change::Unchanged);
        assert_eq!(by("db").change, Change::Kept);
    }

    /// A port an override publishes on the host is published in the merged spec, and
    /// the diff says when publishing changes.
    #[test]
    fn an_override_publishes_a_port_and_the_diff_says_so() {
        let mut web = spec("mall/web:1.0.0");
        web.ports.push(Port {
            port: 1883,
            protocol: "tcp".into(),
            host: None,
        });
        let ov = ServiceOverride {
            env: BTreeMap::new(),
            ports: vec![crate::plan::OverridePort {
                port: 1883,
                protocol: "tcp".into(),
                host: Some(11883),
            }],
            volumes: Vec::new(),
        };
        let merged = with_overrides(&web, Some(&ov));
        assert_eq!(merged.ports.len(), 1);
        assert_eq!(merged.ports[0].host, Some(11883));
        let old = BTreeMap::from([("web".to_owned(), web)]);
        let t = AppTemplate {
            app: "mall".into(),
            version: Version::new(1, 0, 1),
            services: BTreeMap::from([("web".to_owned(), merged)]),
            digest: String::new(),
        };
        let d = diff(&old, &t, &BTreeMap::new());
        let said = format!("{d:?}");
        assert!(
            said.contains("port 1883 changed: not published → published on 11883"),
            "{said}"
        );
    }
}
