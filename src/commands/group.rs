//! `fleetup group …`: app groups by hand, with the per-service markers of SPEC §3.

use std::path::Path;

use semver::Version;

use crate::cli::{GroupCommand, GroupOpts, OutputFormat};
use crate::diagnostics::{Code, Exit, Failure, Problem};
use crate::group::{Ctx, Group, HookConfig, Market, Record, ServiceDiff, Status};

/// A version as markets write them: SemVer, `v1.2.3` or `1.2`.
fn version(s: &str) -> Result<Version, Problem> {
    crate::group::market_version(s).ok_or_else(|| {
        Problem::new(Code::BadVersion, format!("`{s}` is not a version"))
            .help("write it as the market does: 1.2.3, v1.2.3 or 1.2 (read as 1.2.0)")
    })
}

fn json<T: serde::Serialize>(v: &T) {
    if let Ok(s) = serde_json::to_string_pretty(v) {
        println!("{s}");
    }
}

fn with_ctx<T>(
    opts: &GroupOpts,
    f: impl FnOnce(&Group, &mut Ctx) -> Result<T, Problem>,
) -> Result<T, Problem> {
    let hooks = HookConfig::read(&opts.root)?;
    let lock_wait = super::lock_wait(opts.wait_for_lock.as_deref())?;
    let mut say = |l: String| println!("{l}");
    let mut ctx = Ctx {
        say: &mut say,
        hooks,
        lock_wait,
        run: None,
    };
    f(&Group::new(&opts.root), &mut ctx)
}

/// The diff of an upgrade; `running` names the services on another version than `from`.
pub fn print_diff(
    app: &str,
    from: &Version,
    to: &Version,
    d: &[ServiceDiff],
    picked: &[String],
    running: &std::collections::BTreeMap<String, Version>,
) {
    println!("{app} {from} → {to}");
    let width = d.iter().map(|s| s.service.len()).max().unwrap_or(0);
    for s in d {
        let runs = running
            .get(&s.service)
            .map_or(String::new(), |v| format!(" (runs {v})"));
        println!(
            "{} {:<width$}  {:<9}{}{}{runs}",
            s.change.marker(),
            s.service,
            s.change.as_str(),
            s.details_after("  "),
            s.not_picked(picked)
        );
        // Every field it changes, removals included, and the local overrides it keeps.
        for l in &s.lines {
            println!("      {l}");
        }
    }
}

fn status(opts: &GroupOpts, market: &Path, format: OutputFormat) -> Result<(), Problem> {
    let st = Group::new(&opts.root).state()?;
    let market = Market::new(market);
    #[derive(serde::Serialize)]
    struct App {
        app: String,
        version: String,
        /// Newer versions as the market writes them.
        newer: Vec<String>,
        /// Of those, the ones the default patch policy refuses, with the `--policy` each
        /// needs.
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        needs_policy: std::collections::BTreeMap<String, &'static str>,
        /// The market republished the installed version with another template.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        republished: bool,
        services: Vec<String>,
        /// Services on another version than the app's, with theirs.
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        running: std::collections::BTreeMap<String, String>,
        #[serde(skip)]
        behind: Option<String>,
    }
    let apps: Vec<App> = st
        .apps
        .iter()
        .map(|a| {
            let newer: Vec<(Version, String)> = market
                .files(&a.app)
                .into_iter()
                .filter(|(v, _, _)| v > &a.version)
                .map(|(v, w, _)| (v, w))
                .collect();
            let needs = |v: &Version| {
                use crate::package::{VersionPolicy, check_versions};
                if check_versions(&a.version, v, VersionPolicy::Patch).is_empty() {
                    None
                } else if check_versions(&a.version, v, VersionPolicy::Minor).is_empty() {
                    Some("minor")
                } else {
                    Some("major")
                }
            };
            let republished = a.digest.as_ref().is_some_and(|d| {
                market
                    .template(&a.app, &a.version)
                    .is_ok_and(|t| t.digest != *d)
            });
            (a, newer, needs, republished)
        })
        .map(|(a, newer, needs, republished)| App {
            app: a.app.clone(),
            version: a.version.to_string(),
            needs_policy: newer
                .iter()
                .filter_map(|(v, w)| Some((w.clone(), needs(v)?)))
                .collect(),
            newer: newer.into_iter().map(|(_, w)| w).collect(),
            republished,
            services: a.services.keys().cloned().collect(),
            running: a
                .running
                .iter()
                .map(|(s, v)| (s.clone(), v.to_string()))
                .collect(),
            behind: a.behind(),
        })
        .collect();
    if format == OutputFormat::Json {
        json(&apps);
        return Ok(());
    }
    println!("Group {}", opts.root.display());
    if apps.is_empty() {
        println!("  no apps installed");
    }
    for a in &apps {
        let mut said = Vec::new();
        if let Some(b) = &a.behind {
            said.push(format!(
                "● not all on {}: {b} (`fleetup group upgrade {} --to {}` finishes it)",
                a.version, a.app, a.version
            ));
        }
        if a.republished {
            said.push(format!(
                "● {} was republished in the market with another template (`fleetup group upgrade {} --to {}` takes it)",
                a.version, a.app, a.version
            ));
        }
        if !a.newer.is_empty() {
            let shown: Vec<String> = a
                .newer
                .iter()
                .map(|w| match a.needs_policy.get(w) {
                    Some(p) => format!("{w} (needs --policy {p})"),
                    None => w.clone(),
                })
                .collect();
            said.push(format!("● newer in the market: {}", shown.join(", ")));
        }
        let newer = if said.is_empty() {
            "up to date".to_owned()
        } else {
            said.join("; ")
        };
        println!(
            "  {} {}  {}  (services: {})",
            a.app,
            a.version,
            newer,
            a.services.join(", ")
        );
    }
    let unowned = Group::new(&opts.root).unowned_services();
    if !unowned.is_empty() {
        println!(
            "  ● deployed, but no installed app has them: {} (an upgrade added them and failed, and no `remove` hook undeployed them: they may still run)",
            unowned.join(", ")
        );
    }
    Ok(())
}

fn print_record(r: &Record) {
    let link = match (&r.undoes, &r.undone_by) {
        (Some(u), _) => format!(", undoes {u}"),
        (_, Some(b)) => format!(", rolled back by {b}"),
        _ => String::new(),
    };
    println!(
        "Record {}: {} of {} {} → {}: {}{link}",
        r.id,
        r.kind,
        r.app,
        r.from,
        r.to,
        r.status.as_str()
    );
    println!(
        "  started {}, finished {}",
        r.started,
        r.finished.as_deref().unwrap_or("-")
    );
    for s in &r.services {
        println!(
            "  {} {:<12} {:<9} {}{}",
            s.change.marker(),
            s.service,
            s.change.as_str(),
            s.result,
            if s.details.is_empty() {
                String::new()
            } else {
                format!("  ({})", s.details.join("; "))
            }
        );
    }
}

pub fn run(cmd: GroupCommand) -> Result<Exit, Failure> {
    let result: Result<Exit, Problem> = match cmd {
        GroupCommand::Status { opts, market, format } => status(&opts, &market, format).map(|_| Exit::Ok),
        GroupCommand::Install { app, vsn, opts, market } => version(&vsn)
            .and_then(|v| with_ctx(&opts, |g, c| g.install(&Market::new(&market), &app, &v, c)))
            .map(|_| Exit::Ok),
        GroupCommand::Diff { app, to, opts, market, services, policy, format } => version(&to).and_then(|to| {
            let overrides = HookConfig::read(&opts.root)?.overrides;
            let (installed, _, d, picked) = Group::new(&opts.root).preview(&Market::new(&market), &app, &to, services.as_deref(), policy.into(), &overrides)?;
            if format == OutputFormat::Json {
                json(&serde_json::json!({ "app": app, "from": installed.version.to_string(), "to": to.to_string(), "services": d, "picked": picked, "running": installed.running }));
            } else {
                print_diff(&app, &installed.version, &to, &d, &picked, &installed.running);
            }
            Ok(Exit::Ok)
        }),
        GroupCommand::Upgrade { app, to, opts, market, services, policy } => version(&to).and_then(|to| {
            let rec = with_ctx(&opts, |g, c| g.upgrade(&Market::new(&market), &app, &to, services.as_deref(), policy.into(), c))?;
            Ok(if rec.status == Status::Upgraded { Exit::Ok } else { Exit::Failed })
        }),
        GroupCommand::Records { opts, format } => {
            let recs = Group::new(&opts.root).records();
            if format == OutputFormat::Json {
                json(&recs);
            } else if recs.is_empty() {
                println!("No records in {}.", opts.root.display());
            } else {
                for r in &recs {
                    let link = match (&r.undoes, &r.undone_by) {
                        (Some(u), _) => format!("  (undoes {u})"),
                        (_, Some(b)) => format!("  (rolled back by {b})"),
                        _ => String::new(),
                    };
                    println!("{}  {:<8}  {} {} → {}  {}  {}{link}", r.id, r.kind, r.app, r.from, r.to, r.status.as_str(), r.started);
                }
            }
            Ok(Exit::Ok)
        }
        GroupCommand::Record { id, opts, format } => match Group::new(&opts.root).records().into_iter().find(|r| r.id == crate::group::record_id(&id)) {
            None => Err(Problem::new(Code::GroupState, format!("no record `{id}` in {}", opts.root.display())).help("`fleetup group records` lists them")),
            Some(r) => {
                if format == OutputFormat::Json {
                    json(&r);
                } else {
                    print_record(&r);
                }
                Ok(Exit::Ok)
            }
        },
        GroupCommand::Rollback { opts, record, services, yes } => {
            if !yes && super::run::terminal() {
                let what = match &record {
                    Some(r) => format!("upgrade record {}", crate::group::record_id(r)),
                    None => "the last upgrade".to_owned(),
                };
                let which = services.as_ref().map_or("every service it changed".to_owned(), |s| s.join(", "));
                eprintln!("Roll back {what} of the group {} ({which}); services it added are kept.", opts.root.display());
                if !super::run::ask("Roll back?") {
                    println!("Nothing was changed.");
                    return Ok(Exit::Ok);
                }
            }
            with_ctx(&opts, |g, c| g.rollback(record.map(|r| crate::group::record_id(&r)).as_deref(), services.as_deref(), c))
            .map(|r| if r.status == Status::RolledBack || r.status == Status::PartialRollback && !r.services.iter().any(|s| s.result.is_failed()) { Exit::Ok } else { Exit::Failed })
        }
    };
    Ok(result?)
}
