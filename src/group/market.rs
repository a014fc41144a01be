//! The market: app templates by app and version (`<market>/<app>/<version>.yaml`).

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Published on the host at this port (Compose `ports`), for clients outside the
    /// engine's network; without it the port is reached inside that network only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<u16>,
}

fn default_protocol() -> String {
    "tcp".into()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub path: String,
    /// The size of the claim a Kubernetes render asks for (`10Gi`), as an override sets
    /// it; a template says where data lives, not how much (default: 1Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// One version of an app in the market.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTemplate {
    pub app: String,
    /// As written: real markets carry `1.16` and `v1.17.1` (see [`market_version`]).
    #[serde(deserialize_with = "written_version")]
    pub version: Version,
    pub services: BTreeMap<String, ServiceSpec>,
    /// The SHA-256 of the template file: a version republished with another template is
    /// an upgrade too.
    #[serde(skip)]
    pub digest: String,
}

/// A market's version as written: SemVer, with a leading `v` allowed and a two-part
/// `MAJOR.MINOR` read as `MAJOR.MINOR.0` (`v1.17.1`, `1.16`).
pub fn market_version(s: &str) -> Option<Version> {
    let t = s.strip_prefix('v').unwrap_or(s);
    Version::parse(t).ok().or_else(|| {
        let (major, minor) = t.split_once('.')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
        };
        if !(ok(major) && ok(minor)) {
            return None;
        }
        Some(Version::new(major.parse().ok()?, minor.parse().ok()?, 0))
    })
}

fn written_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
    let s = String::deserialize(d)?;
    market_version(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{s}` is not a version (SemVer, `v1.2.3` or `1.2`)"
        ))
    })
}

/// An app name is a safe name, as a plan's are: never a path out of the market.
pub fn check_app_name(app: &str) -> Result<(), Problem> {
    if crate::names::is_safe_name(app) {
        Ok(())
    } else {
        Err(Problem::new(
            Code::UnsafeName,
            format!("`{app}` is not an app name"),
        ))
    }
}

pub struct Market {
    pub dir: PathBuf,
}

impl Market {
    pub fn new(dir: &Path) -> Market {
        Market {
            dir: dir.to_owned(),
        }
    }

    /// Versions of `app` the market has, oldest first (none for a name that is not a
    /// safe name: it is never looked up outside the market).
    pub fn versions(&self, app: &str) -> Vec<Version> {
        let mut v: Vec<Version> = self.files(app).into_iter().map(|(v, _, _)| v).collect();
        v.dedup();
        v
    }

    /// Each version of `app` with its name as written and its file, oldest first.
    pub fn files(&self, app: &str) -> Vec<(Version, String, PathBuf)> {
        if !crate::names::is_safe_name(app) {
            return Vec::new();
        }
        let mut v: Vec<(Version, String, PathBuf)> = std::fs::read_dir(self.dir.join(app))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name
                    .strip_suffix(".yaml")
                    .or(name.strip_suffix(".yml"))
                    .or(name.strip_suffix(".toml"))?;
                Some((market_version(stem)?, stem.to_owned(), e.path()))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        v
    }

    /// The name of version `v` of `app` as the market writes it (`v1.17.1`, `1.16`).
    pub fn written(&self, app: &str, v: &Version) -> String {
        self.files(app)
            .into_iter()
            .find(|(x, _, _)| x == v)
            .map_or_else(|| v.to_string(), |(_, w, _)| w)
    }

    pub fn template(&self, app: &str, v: &Version) -> Result<AppTemplate, Problem> {
        check_app_name(app)?;
        let of_v: Vec<PathBuf> = self
            .files(app)
            .into_iter()
            .filter(|(x, _, p)| x == v && p.is_file())
            .map(|(_, _, p)| p)
            .collect();
        // `1.16.yaml` and `v1.16.0.yaml` are one version: which to deploy is not guessed.
        if let [a, b, ..] = of_v.as_slice() {
            return Err(Problem::new(
                Code::MarketTemplate,
                format!(
                    "the market has {} templates of {app} {v}: {} and {}",
                    of_v.len(),
                    a.display(),
                    b.display()
                ),
            )
            .help("keep one template per version of an app: remove or rename the others"));
        }
        let Some(path) = of_v.into_iter().next() else {
            let have = self
                .versions(app)
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>();
            let help = if have.is_empty() {
                format!("the market has no app `{app}`")
            } else {
                format!("the market has {app} {}", have.join(", "))
            };
            return Err(Problem::new(
                Code::MarketMissing,
                format!("the market has no version {v} of app `{app}`"),
            )
            .help(help));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Problem::new(Code::Io, format!("cannot read {}: {e}", path.display())))?;
        let bad =
            |m: String| Problem::new(Code::MarketTemplate, format!("{}: {m}", path.display()));
        let mut t: AppTemplate = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| {
                bad(e
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .to_owned())
            })?
        };
        if t.app != app || &t.version != v {
            return Err(bad(format!(
                "it says {} {}, but its place in the market says {app} {v}",
                t.app, t.version
            )));
        }
        for name in t.services.keys() {
            if !crate::names::is_safe_name(name) {
                return Err(bad(format!(
                    "service name `{name}` is not safe as a file name"
                )));
            }
        }
        t.digest = crate::package::sha256_file(&path)
            .map_err(|e| Problem::new(Code::Io, format!("cannot read {}: {e}", path.display())))?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_versions_are_read_as_markets_write_them() {
        let v = |s: &str| market_version(s).map(|v| v.to_string());
        assert_eq!(v("1.16").as_deref(), Some("1.16.0"));
        assert_eq!(v("v1.17.1").as_deref(), Some("1.17.1"));
        assert_eq!(v("v2.0").as_deref(), Some("2.0.0"));
        assert_eq!(v("1.2.3-rc.1").as_deref(), Some("1.2.3-rc.1"));
        for bad in ["1", "01.2", "1.02", "1.2.3.4", "v", "1.x", "", "vv1.2"] {
            assert_eq!(v(bad), None, "{bad}");
        }
    }
}
