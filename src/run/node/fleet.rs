//! The plan's nodes read before a run, a dry run or `status`, as the node kind reads
//! them: remote stores by their hosts' agents (in parallel, one request per host),
//! their locks, the preflight over what was read, and the mirror's packages fetched
//! before any node changes.

use std::sync::Arc;

use super::preflight::{self, Preflight, RemoteState};
use crate::diagnostics::{Code, Problem, Severity};
use crate::plan::Plan;
use crate::remote::Hosts;
use crate::run::target::Refusal;

/// What was read of the plan's nodes.
#[derive(Default)]
pub struct Fleet {
    /// The preflight's findings, by node index (empty where it did not run).
    pub preflight: Preflight,
    /// By node index: each remote node's store as its host's agent read it; empty where
    /// none was read.
    pub remote: Vec<RemoteState>,
    /// The remote stores another fleetup holds.
    pub held: Vec<Held>,
}

impl Fleet {
    /// The remote stores of the nodes among `targets` (target numbers), read by their
    /// hosts' agents, with `locks` who holds them too; nothing is read without `hosts`.
    pub fn read(plan: &Plan, hosts: Option<&Arc<Hosts>>, targets: &[usize], locks: bool) -> Fleet {
        let mut f = Fleet::default();
        let nodes = remote_nodes(plan, targets);
        if let (Some(h), false) = (hosts, nodes.is_empty()) {
            (f.remote, f.held) = read_remote(plan, h, &nodes, locks);
        }
        f
    }

    /// The preflight over what was read: `here` where the run happens (a local root
    /// missing is a node with no release yet), else far from the nodes (`check`, whose
    /// missing root says nothing of the node).
    pub fn check(mut self, plan: &Plan, here: bool) -> Fleet {
        self.preflight = if here {
            preflight::run_with(plan, &self.remote)
        } else {
            preflight::run(plan)
        };
        self
    }

    /// What node `i` (of the plan's nodes) was found to be, when the preflight ran.
    pub fn finding(&self, i: usize) -> Option<&preflight::NodeFinding> {
        self.preflight.nodes.get(i)
    }

    /// The package files the plan's nodes need: each node's own, else (its store unread)
    /// every package of its target version.
    pub fn packages_needed(&self, plan: &Plan) -> Vec<String> {
        let p = self;
        let listing: Vec<crate::package::PackageName> = match &p.preflight.mirror {
            Some(m) => m.repository(&plan.product, &plan.runtime).packages,
            None => plan
                .repository
                .as_ref()
                .and_then(|r| {
                    crate::package::Repository::scan(&r.value, &plan.product, &plan.runtime).ok()
                })
                .map(|r| r.packages)
                .unwrap_or_default(),
        };
        let mut out: Vec<String> = Vec::new();
        for (i, n) in plan.nodes.iter().enumerate() {
            let files: Vec<String> = match p.preflight.nodes.get(i).and_then(|f| f.package.as_ref())
            {
                Some(pkg) => vec![pkg.file.clone()],
                None => listing
                    .iter()
                    .filter(|k| k.version == n.to.value)
                    .map(|k| k.file.clone())
                    .collect(),
            };
            for f in files {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }
}

/// Downloads from the plan's mirror, once each and before any node changes, the
/// packages `targets` need (with their signatures under `trust`): a node's own package
/// where the preflight found it, else every package of its version (its store decides).
pub fn fetch(
    plan: &Plan,
    mirror: &crate::mirror::Mirror,
    pf: &Preflight,
    targets: impl Iterator<Item = usize>,
) -> Result<(), Problem> {
    let mut files: Vec<String> = Vec::new();
    let repo = mirror.repository(&plan.product, &plan.runtime);
    for t in targets {
        let Some((i, node)) = plan.node_of(t) else {
            continue;
        };
        // A remote host downloads its own, unless the controller relays.
        if node.ssh.is_some() && !plan.via_controller {
            continue;
        }
        let found = pf.nodes.get(i).and_then(|f| f.package.as_ref());
        // Already there: nothing to download for it.
        if pf
            .nodes
            .get(i)
            .and_then(|f| f.running.as_ref())
            .is_some_and(|r| r.version == node.to.value)
        {
            continue;
        }
        let wanted: Vec<String> = match found {
            Some(p) => vec![p.file.clone()],
            None => repo
                .packages
                .iter()
                .filter(|p| p.version == node.to.value)
                .map(|p| p.file.clone())
                .collect(),
        };
        for f in wanted {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    for f in files {
        let at = |p: Problem| match &plan.mirror {
            Some(u) => p.at(u.span).label("from this mirror"),
            None => p,
        };
        let stop = crate::run::stop::requested;
        let path = mirror.fetch(&f, plan.trust.is_some(), &stop).map_err(|e| {
            // A stop asked for meanwhile is why, whatever the download said.
            let code = if stop() { Code::RunStopped } else { e.code() };
            at(Problem::new(code, e.why().to_owned()))
        })?;
        // Verified here too: a run whose package does not verify never starts.
        if let Some(t) = &plan.trust {
            t.value.verify(&path, None).map_err(at)?;
        }
    }
    Ok(())
}

/// The stores of remote nodes `nodes`, read by their hosts' agents, changing nothing:
/// each node's state (indexed like the plan's nodes) and, with `locks`, the holds other
/// fleetups have on them. One request per host reads all of its nodes; hosts are read
/// in parallel, at most `max(max_parallel, 10)` at once and never more than the
/// connection cap. The hosts the run reaches first are read last, so that with more hosts
/// than connections, theirs are the ones still open when the run starts.
/// A remote node's store that another fleetup holds, as its host's agent found it.
pub struct Held {
    /// The node, as an index into the plan's nodes.
    pub node: usize,
    /// Who holds the lock, as the lock file says (`run r1 of pid 42 on web-1`).
    pub holder: String,
    /// The refusal to start that says so.
    pub problem: Problem,
}

pub fn read_remote(
    plan: &Plan,
    hosts: &Arc<Hosts>,
    nodes: &[usize],
    locks: bool,
) -> (Vec<preflight::RemoteState>, Vec<Held>) {
    let mut order: Vec<String> = Vec::new();
    let mut by_host: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for &i in nodes {
        if let Some(a) = &plan.nodes[i].ssh {
            let key = crate::remote::ssh::describe(&a.value);
            let e = by_host.entry(key.clone()).or_default();
            if e.is_empty() {
                order.push(key);
            }
            e.push(i);
        }
    }
    order.reverse();
    let workers = plan
        .rollout
        .max_parallel
        .max(10)
        .min(plan.rollout.max_connections)
        .min(order.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let found: std::sync::Mutex<Vec<(usize, preflight::RemoteState, Option<Held>)>> =
        Default::default();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(key) = order.get(k) else { break };
                    let idx = &by_host[key];
                    let Some(addr) = plan.nodes[idx[0]].ssh.as_ref().map(|a| &a.value) else {
                        continue;
                    };
                    let roots: Vec<String> = idx
                        .iter()
                        .map(|&i| plan.nodes[i].root.value.display().to_string())
                        .collect();
                    let read = hosts.read(addr, &roots, locks);
                    let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
                    for (&i, (state, who)) in idx.iter().zip(read) {
                        let n = &plan.nodes[i];
                        let held = who.map(|who| Held {
                            node: i,
                            problem: Problem::new(
                                Code::Locked,
                                format!(
                                    "the store of node `{}` ({key}:{}) is locked: {who}",
                                    n.name.value,
                                    n.root.value.display()
                                ),
                            )
                            .help(
                                "wait for that run to finish, or pass --wait-for-lock DURATION \
                                 to wait for it",
                            ),
                            holder: who,
                        });
                        f.push((i, Some(state), held));
                    }
                }
            });
        }
    });
    let mut out: Vec<preflight::RemoteState> = plan.nodes.iter().map(|_| None).collect();
    let mut held = Vec::new();
    for (i, state, h) in found.into_inner().unwrap_or_else(|e| e.into_inner()) {
        out[i] = state;
        if let Some(h) = h {
            held.push(h);
        }
    }
    held.sort_by_key(|h| h.node);
    (out, held)
}

/// The remote nodes among `targets`, as indexes into the plan's nodes.
pub fn remote_nodes(plan: &Plan, targets: &[usize]) -> Vec<usize> {
    targets
        .iter()
        .filter_map(|&t| match plan.node_of(t) {
            Some((i, n)) if n.ssh.is_some() => Some(i),
            _ => None,
        })
        .collect()
}

/// The preflight of one wave (`rollout.preflight: wave`): its remote nodes read, with
/// their locks, by their hosts' agents, over the connections the wave then works on, and
/// checked as `apply` checks every node before a run with `preflight: all`.
pub fn wave_preflight(plan: &Plan, hosts: &Arc<Hosts>, wave: &[usize]) -> Vec<Refusal> {
    let nodes = remote_nodes(plan, wave);
    if nodes.is_empty() {
        return Vec::new();
    }
    let (live, held) = read_remote(plan, hosts, &nodes, true);
    let mut out: Vec<Refusal> = held
        .into_iter()
        .map(|h| Refusal {
            target: plan.target_of_node(h.node),
            problem: h.problem,
        })
        .collect();
    for (i, problems) in preflight::check_nodes(plan, &live, &nodes) {
        if out.iter().any(|r| r.target == plan.target_of_node(i)) {
            continue;
        }
        if let Some(p) = problems.into_iter().find(|p| p.severity == Severity::Error) {
            out.push(Refusal {
                target: plan.target_of_node(i),
                problem: p,
            });
        }
    }
    out
}
