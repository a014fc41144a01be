//! How a group deploys a service and checks it: from a plan's `groups[]` in runs, or
//! from `<root>/group-hooks.toml` for `fleetup group` by hand.

use super::*;

/// The deploy hook and health check of a group, with what fills their placeholders.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    pub deploy: Option<Vec<Template>>,
    /// Undeploys a service (`deploy`'s counterpart): run for a service an upgrade added
    /// whose deploy or health check failed, which has no earlier version to go back to.
    pub remove: Option<Vec<Template>>,
    pub timeout: Duration,
    pub health: Option<crate::health::Health>,
    pub vars: BTreeMap<String, String>,
    pub group: String,
    /// The format of the specs the deploy hook is given.
    pub render: Render,
    /// Local settings per service, merged into every spec rendered.
    pub overrides: BTreeMap<String, crate::plan::ServiceOverride>,
    /// The values of the `${VAR}`s the hooks (or, in a run, the plan) read: taken out of
    /// whatever a hook printed before it reaches a record or an output.
    pub secrets: crate::template::Secrets,
}

impl Hooks {
    /// The secrets of the deploy hook and the health check themselves.
    pub fn own_secrets(
        deploy: Option<&Vec<Template>>,
        remove: Option<&Vec<Template>>,
        health: Option<&crate::health::Health>,
    ) -> crate::template::Secrets {
        let checks: Vec<&Template> = match health.map(|h| &h.check) {
            Some(crate::health::Check::Command(c)) => c.iter().map(|t| &t.value).collect(),
            Some(crate::health::Check::Http(t) | crate::health::Check::Tcp(t)) => vec![&t.value],
            None => Vec::new(),
        };
        crate::template::Secrets::read(
            deploy
                .into_iter()
                .flatten()
                .chain(remove.into_iter().flatten())
                .chain(checks),
        )
    }
}

pub struct Ctx<'a> {
    pub say: &'a mut dyn FnMut(String),
    pub hooks: Hooks,
    pub lock_wait: Duration,
    pub run: Option<String>,
}

/// `<root>/group-hooks.toml`: how a manual `fleetup group` command deploys a service and
/// checks its health (a plan's `groups[].hooks` and `health` do the same in runs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    pub name: Option<String>,
    pub deploy: Option<DeployConfig>,
    /// `[remove]`: undeploys a service an upgrade added and whose deploy failed.
    pub remove: Option<DeployConfig>,
    pub health: Option<HealthConfig>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// `spec` (default), `kubernetes` or `compose`.
    pub render: Option<String>,
    /// `[overrides.<service>]`: env, ports, volumes kept across upgrades.
    #[serde(default)]
    pub overrides: BTreeMap<String, crate::plan::ServiceOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    pub command: Vec<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub command: Option<Vec<String>>,
    pub http: Option<String>,
    pub tcp: Option<String>,
    pub expect_status: Option<u16>,
    /// Statuses that mean failed for good (as a plan's `health.give_up_on`).
    pub give_up_on: Option<Vec<u16>>,
    pub timeout: Option<String>,
    pub interval: Option<String>,
    /// How long a service must then stay healthy (as a plan's `health.healthy_for`).
    pub healthy_for: Option<String>,
    /// The deadline of the check after a rollback (default: `timeout`).
    pub rollback_timeout: Option<String>,
}

impl HookConfig {
    pub fn read(root: &Path) -> Result<Hooks, Problem> {
        let path = root.join("group-hooks.toml");
        let bad = |m: String| Problem::new(Code::NodeConfig, format!("{}: {m}", path.display()));
        let cfg: HookConfig = match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| bad(e.message().to_owned()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HookConfig::default(),
            Err(e) => return Err(io(&path, e)),
        };
        let dur = |d: &Option<String>, default: u64| match d {
            Some(s) => crate::duration::parse_duration(s)
                .ok_or_else(|| bad(format!("`{s}` is not a duration"))),
            None => Ok(Duration::from_secs(default)),
        };
        let tpl = |s: &str| Template::parse(s).map_err(|e| bad(format!("`{s}`: {e}")));
        let at = |t| crate::span::At {
            value: t,
            span: Default::default(),
        };
        // A `[deploy]` or `[remove]` table's command, parsed.
        let command = |d: &Option<DeployConfig>, key: &str| match d {
            Some(d) if d.command.is_empty() => Err(bad(format!("`{key}.command` is empty"))),
            Some(d) => d
                .command
                .iter()
                .map(|c| tpl(c))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            None => Ok(None),
        };
        let deploy = command(&cfg.deploy, "deploy")?;
        let health = match &cfg.health {
            None => None,
            Some(h) => {
                let check = match (&h.command, &h.http, &h.tcp) {
                    (Some(c), None, None) if !c.is_empty() => crate::health::Check::Command(
                        c.iter().map(|x| tpl(x).map(at)).collect::<Result<_, _>>()?,
                    ),
                    (None, Some(u), None) => crate::health::Check::Http(at(tpl(u)?)),
                    (None, None, Some(a)) => crate::health::Check::Tcp(at(tpl(a)?)),
                    _ => {
                        return Err(bad(
                            "`health` needs exactly one of command, http, tcp".into()
                        ));
                    }
                };
                let give_up_on = h.give_up_on.clone().unwrap_or_default();
                let fits = |v: &u16| match &check {
                    crate::health::Check::Tcp(_) => false,
                    crate::health::Check::Command(_) => (1..=255).contains(v),
                    crate::health::Check::Http(_) => {
                        (100..=599).contains(v) && *v != h.expect_status.unwrap_or(200)
                    }
                };
                if let Some(v) = give_up_on.iter().find(|v| !fits(v)) {
                    return Err(bad(format!(
                        "`health.give_up_on`: {v} is not a status this check can fail with \
                         (exit statuses 1-255 for a command, HTTP statuses other than \
                         expect_status for http; none for tcp)"
                    )));
                }
                let timeout = dur(&h.timeout, 60)?;
                Some(crate::health::Health {
                    give_up_on,
                    check,
                    expect_status: h.expect_status.unwrap_or(200),
                    timeout,
                    interval: dur(&h.interval, 1)?,
                    healthy_for: dur(&h.healthy_for, 0)?,
                    rollback_timeout: match &h.rollback_timeout {
                        Some(_) => dur(&h.rollback_timeout, 60)?,
                        None => timeout,
                    },
                })
            }
        };
        let name = cfg.name.unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let render = match cfg.render.as_deref() {
            None => Render::Spec,
            Some(r) => Render::parse(r).ok_or_else(|| {
                bad(format!(
                    "`render = \"{r}\"` is not one of spec, kubernetes, compose"
                ))
            })?,
        };
        let remove = command(&cfg.remove, "remove")?;
        Ok(Hooks {
            secrets: Hooks::own_secrets(deploy.as_ref(), remove.as_ref(), health.as_ref()),
            deploy,
            remove,
            timeout: dur(&cfg.deploy.as_ref().and_then(|d| d.timeout.clone()), 300)?,
            health,
            vars: cfg.vars,
            group: name,
            render,
            overrides: cfg.overrides,
        })
    }
}
