//! `fleetup node …`: one node's release store by hand, with EMQX's messages.

use semver::Version;
use serde::Serialize;

use crate::cli::{NodeCommand, NodeOpts, OutputFormat};
use crate::diagnostics::{Code, Exit, Failure, Problem};
use crate::package::VersionPolicy;
use std::sync::Arc;

use crate::plan::HostKeys;
use crate::remote::agent::{StoreOp, WireConfig};
use crate::remote::{Hosts, SshSettings};
use crate::run::node::seam::{Location, NodeStore};
use crate::store::{Ctx, NodeConfig};

fn version(s: &str) -> Result<Version, Problem> {
    Version::parse(s).map_err(|e| {
        Problem::new(
            Code::BadVersion,
            format!("`{s}` is not a SemVer version: {e}"),
        )
    })
}

/// The node's store, here or (with `--ssh`) on its host.
fn open(opts: &NodeOpts, hosts: &mut Option<Arc<Hosts>>, ctx: &Ctx) -> Result<NodeStore, Problem> {
    let addr = match &opts.ssh {
        Some(s) => Some(crate::plan::validate::parse_ssh(s).map_err(|e| {
            Problem::new(Code::Usage, format!("--ssh {s}: {e}"))
                .help("write the address as [USER@]HOST[:PORT]")
        })?),
        None => None,
    };
    if addr.is_some() {
        *hosts = Some(Arc::new(Hosts::new(SshSettings::new(
            opts.ssh_config.clone(),
            if opts.accept_new_host_key {
                HostKeys::AcceptNew
            } else {
                HostKeys::Strict
            },
        ))?));
    }
    let at = Location {
        root: &opts.root,
        ssh: hosts.as_ref().zip(addr.as_ref()),
    };
    NodeStore::open(&at, ctx, false, true)
}

fn with_ctx<T>(
    opts: &NodeOpts,
    repo: Option<std::path::PathBuf>,
    policy: VersionPolicy,
    f: impl FnOnce(&mut NodeStore, &mut Ctx) -> Result<T, Problem>,
) -> Result<T, Problem> {
    let lock_wait = super::lock_wait(opts.wait_for_lock.as_deref())?;
    let platform = match &opts.platform {
        Some(p) => Some(crate::package::Platform::parse(p).map_err(|e| {
            Problem::new(Code::Usage, format!("--platform: {e}"))
                .help("write the platform as package names do: <os>-<arch>, e.g. el8-amd64")
        })?),
        None => None,
    };
    // A local node.toml is read first, so a bad one is reported before anything else.
    let local = match opts.ssh {
        None => Some(NodeConfig::read(&opts.root)?),
        Some(_) => None,
    };
    // A bad `[trust]` key, too; the store itself enforces the keys (here and on a host).
    if let Some(c) = &local {
        c.trust_keys(&opts.root)?;
    }
    let activation = match &local {
        Some(c) => c.activation(&opts.root)?,
        // A remote node's activate hook is read from its node.toml on the host.
        None => Default::default(),
    };
    // EMQX's lines go to stdout word for word; fleetup's warnings to stderr.
    let mut say = |line: String| {
        if line.starts_with(crate::store::WARNING) {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let mut ctx = Ctx::bare(&mut say);
    ctx.lock_wait = lock_wait;
    let mut hosts = None;
    let mut store = open(opts, &mut hosts, &ctx)?;
    let config = match local {
        Some(c) => WireConfig {
            product: c.product,
            runtime: c.runtime,
            edition: c.edition,
            runtime_compat: c.runtime_compat,
        },
        None => store.remote_config().cloned().unwrap_or_default(),
    };
    ctx.product = opts.product.clone().or(config.product);
    ctx.runtime = opts
        .runtime
        .clone()
        .or(config.runtime)
        .unwrap_or_else(|| "otp".into());
    ctx.edition = opts.edition.clone().or(config.edition);
    if let Some(r) = &config.runtime_compat {
        ctx.runtime_rule = crate::package::RuntimeRule::parse(r).ok_or_else(|| {
            Problem::new(
                Code::NodeConfig,
                format!("node.toml: `runtime_compat = \"{r}\"` is not major, minor or exact"),
            )
            .help("how alike two releases' runtimes must be: major (default), minor or exact")
        })?;
    }
    ctx.repo = repo;
    ctx.policy = policy;
    ctx.platform = platform;
    ctx.activation = activation;
    f(&mut store, &mut ctx)
}

#[derive(Serialize)]
struct JsonRelease<'a> {
    version: String,
    state: &'a str,
    package: &'a str,
}

#[derive(Serialize)]
struct JsonVersions<'a> {
    root: String,
    product: Option<&'a str>,
    current: Option<String>,
    permanent: Option<String>,
    interrupted: Option<String>,
    releases: Vec<JsonRelease<'a>>,
}

fn versions(opts: &NodeOpts, format: OutputFormat) -> Result<(), Problem> {
    let mut say = |_: String| {};
    let mut hosts = None;
    let store = open(opts, &mut hosts, &Ctx::bare(&mut say))?;
    let st = {
        let mut store = store;
        let st = store.state()?;
        // A local store's links are checked against RELEASES (a remote one's by its
        // own commands on the host).
        let problems = match (&store, &st) {
            (NodeStore::Local(s), Some(state)) => s.link_problems(state),
            _ => Vec::new(),
        };
        (st, problems)
    };
    let (st, link_problems) = st;
    match format {
        OutputFormat::Json => {
            let doc = JsonVersions {
                root: opts.root.display().to_string(),
                product: st.as_ref().map(|s| s.product.as_str()),
                current: st
                    .as_ref()
                    .and_then(|s| s.running())
                    .map(|r| r.version.to_string()),
                permanent: st
                    .as_ref()
                    .and_then(|s| s.permanent())
                    .map(|r| r.version.to_string()),
                interrupted: st
                    .as_ref()
                    .and_then(|s| s.pending.as_ref())
                    .map(|p| format!("{} of {}", p.action, p.version)),
                releases: st
                    .as_ref()
                    .map(|s| {
                        s.sorted()
                            .into_iter()
                            .map(|r| JsonRelease {
                                version: r.version.to_string(),
                                state: r.state.as_str(),
                                package: &r.package,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let text = serde_json::to_string_pretty(&doc)
                .map_err(|e| Problem::new(Code::Io, format!("cannot render JSON: {e}")))?;
            println!("{text}");
        }
        OutputFormat::Human => {
            println!("Installed versions:");
            if let Some(s) = &st {
                for r in s.sorted() {
                    println!("* {}\t{}", r.version, r.state.as_str());
                }
                if let Some(p) = &s.pending {
                    println!(
                        "(an interrupted {} of {} from {} is undone by the next change)",
                        p.action, p.version, p.since
                    );
                }
            }
        }
    }
    if !link_problems.is_empty() {
        return Err(Problem::new(
            Code::StoreState,
            format!(
                "the store {} was changed by hand: {}",
                opts.root.display(),
                link_problems.join("; ")
            ),
        )
        .help(
            "fleetup follows none of these; reinstall the releases concerned, or restore the links",
        ));
    }
    Ok(())
}

/// `fleetup node gc --ssh HOST`: prunes the host's cache, saying what went.
fn gc(
    ssh: &str,
    config: Option<std::path::PathBuf>,
    accept_new: bool,
    keep: usize,
) -> Result<(), Problem> {
    let addr = crate::plan::validate::parse_ssh(ssh).map_err(|e| {
        Problem::new(Code::Usage, format!("--ssh {ssh}: {e}"))
            .help("write the address as [USER@]HOST[:PORT]")
    })?;
    let keys = if accept_new {
        HostKeys::AcceptNew
    } else {
        HostKeys::Strict
    };
    let hosts = Arc::new(Hosts::new(SshSettings::new(config, keys))?);
    let (removed, kept) = hosts.gc(&addr, keep)?;
    for r in &removed {
        println!("Removed {r}");
    }
    println!(
        "Removed {} and kept {kept} in the cache of {}.",
        match removed.len() {
            1 => "1 entry".to_owned(),
            n => format!("{n} entries"),
        },
        crate::remote::ssh::describe(&addr)
    );
    Ok(())
}

pub fn run(cmd: NodeCommand) -> Result<Exit, Failure> {
    let result = match cmd {
        NodeCommand::Versions { opts, format } => versions(&opts, format),
        NodeCommand::Unpack { vsn: v, opts, repo } => version(&v).and_then(|v| {
            with_ctx(&opts, repo, VersionPolicy::Patch, |s, c| {
                s.op(StoreOp::Unpack, &v, false, None, c)
            })
            .map(|_| ())
        }),
        NodeCommand::Upgrade {
            vsn: v,
            opts,
            repo,
            no_permanent,
            policy,
        } => version(&v).and_then(|v| {
            with_ctx(&opts, repo, policy.into(), |s, c| {
                s.upgrade(&v, !no_permanent, c)
            })
            .map(|_| ())
        }),
        NodeCommand::Install {
            vsn: v,
            opts,
            no_permanent,
            policy,
        } => version(&v).and_then(|v| {
            with_ctx(&opts, None, policy.into(), |s, c| {
                s.op(StoreOp::Install, &v, !no_permanent, None, c)
            })
            .map(|_| ())
        }),
        NodeCommand::Downgrade { vsn: v, opts } => version(&v).and_then(|v| {
            with_ctx(&opts, None, VersionPolicy::Patch, |s, c| {
                s.op(StoreOp::Downgrade, &v, false, None, c)
            })
            .map(|_| ())
        }),
        NodeCommand::Uninstall { vsn: v, opts } => version(&v).and_then(|v| {
            with_ctx(&opts, None, VersionPolicy::Patch, |s, c| {
                s.op(StoreOp::Uninstall, &v, false, None, c)
            })
            .map(|_| ())
        }),
        NodeCommand::Gc {
            ssh,
            ssh_config,
            accept_new_host_key,
            keep,
        } => gc(&ssh, ssh_config, accept_new_host_key, keep),
    };
    result?;
    Ok(Exit::Ok)
}
