//! The market: app templates by app and version (`<market>/<app>/<version>.yaml`).

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_protocol() -> String {
    "tcp".into()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub path: String,
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
    pub version: Version,
    pub services: BTreeMap<String, ServiceSpec>,
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
        if !crate::names::is_safe_name(app) {
            return Vec::new();
        }
        let mut v: Vec<Version> = std::fs::read_dir(self.dir.join(app))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name
                    .strip_suffix(".yaml")
                    .or(name.strip_suffix(".yml"))
                    .or(name.strip_suffix(".toml"))?;
                Version::parse(stem).ok()
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn template(&self, app: &str, v: &Version) -> Result<AppTemplate, Problem> {
        check_app_name(app)?;
        let base = self.dir.join(app);
        let Some(path) = ["yaml", "yml", "toml"]
            .iter()
            .map(|e| base.join(format!("{v}.{e}")))
            .find(|p| p.is_file())
        else {
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
        let t: AppTemplate = if path.extension().is_some_and(|e| e == "toml") {
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
        Ok(t)
    }
}
