//! What an upgrade does to each service of an app: the per-service diff (SPEC §3).

use super::*;

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

/// The per-service diff of SPEC §3 between what is installed and a target template.
pub fn diff(installed: &BTreeMap<String, ServiceSpec>, target: &AppTemplate) -> Vec<ServiceDiff> {
    let mut out = Vec::new();
    for (name, new) in &target.services {
        let Some(old) = installed.get(name) else {
            let mut details = vec![format!("image {}", new.image)];
            details.extend(
                new.ports
                    .iter()
                    .map(|p| format!("port {}/{}", p.port, p.protocol)),
            );
            out.push(ServiceDiff {
                service: name.clone(),
                change: Change::Add,
                details,
            });
            continue;
        };
        let mut d = Vec::new();
        if old.image != new.image {
            d.push(format!("image {} → {}", old.image, new.image));
        }
        for p in &new.ports {
            match old.ports.iter().find(|o| o.port == p.port) {
                None => d.push(format!("port {}/{} added", p.port, p.protocol)),
                Some(o) if o.protocol != p.protocol => d.push(format!(
                    "port {} changed: {} → {}",
                    p.port, o.protocol, p.protocol
                )),
                _ => {}
            }
        }
        for (k, v) in &new.env {
            match old.env.get(k) {
                None => d.push(format!("env {k} added")),
                Some(o) if o != v => d.push(format!("env {k} changed")),
                _ => {}
            }
        }
        for k in old.env.keys().filter(|k| !new.env.contains_key(*k)) {
            d.push(format!("env {k} removed"));
        }
        for v in new.volumes.iter().filter(|v| !old.volumes.contains(v)) {
            d.push(format!("volume {} added", v.path));
        }
        let change = if d.is_empty() {
            Change::Unchanged
        } else {
            Change::Upgrade
        };
        out.push(ServiceDiff {
            service: name.clone(),
            change,
            details: d,
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
        });
    }
    out
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
        });
        web2.ports.push(Port {
            port: 443,
            protocol: "https".into(),
        });
        web2.env.insert("A".into(), "2".into());
        web2.env.insert("B".into(), "3".into());
        web2.volumes.push(Volume {
            path: "/data".into(),
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
        let d = diff(&old, &t);
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
}
