//! Checks a valid plan's nodes against the world they point at, changing nothing: the
//! repository (one package per node's target, checksums) and each readable node store
//! (the rules of SPEC §1.1 and `from` pins).
//!
//! `check` reports these findings; `plan` and `apply` will run the same checks before
//! they touch anything, so a finding here is a finding there.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::diagnostics::{Code, Problem};
use crate::package::{self, Lookup, PackageName, Repository};
use crate::plan::{NodeTarget, Plan};
use crate::span::Span;
use crate::store;

/// What preflight learned about one node.
#[derive(Debug, Clone, Default)]
pub struct NodeFinding {
    /// The package the node would be upgraded to, when the repository has exactly one.
    pub package: Option<PackageName>,
    /// The node's permanent release, when its store was readable.
    pub running: Option<store::Release>,
    /// Whether the node's live state could be read at all (local, store present or absent).
    pub state_read: bool,
    /// Why a remote node's state could not be read (its host is unreachable, say).
    pub unreachable: Option<String>,
}

#[derive(Debug, Default)]
pub struct Preflight {
    pub problems: Vec<Problem>,
    pub nodes: Vec<NodeFinding>,
    /// The plan's mirror and its index, when its repository is a URL.
    pub mirror: Option<std::sync::Arc<crate::mirror::Mirror>>,
}

impl Preflight {
    pub fn states_read(&self) -> usize {
        self.nodes.iter().filter(|n| n.state_read).count()
    }
}

/// One finding and every node it applies to.
struct Shared {
    problem: Problem,
    nodes: Vec<String>,
}

/// Problems that many nodes share (one rule broken by a whole fleet) are reported once,
/// naming the nodes, instead of ten thousand times.
#[derive(Default)]
struct Collector {
    found: Vec<Shared>,
    index: HashMap<(Code, String, Option<Span>), usize>,
}

impl Collector {
    fn add(
        &mut self,
        node: &str,
        code: Code,
        msg: String,
        span: Option<Span>,
        label: Option<String>,
        help: Option<String>,
    ) {
        let key = (code, msg, span);
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let mut problem = Problem::new(code, key.1.clone());
                problem.span = span;
                problem.label = label;
                problem.help = help;
                self.found.push(Shared {
                    problem,
                    nodes: Vec::new(),
                });
                self.index.insert(key, self.found.len() - 1);
                self.found.len() - 1
            }
        };
        self.found[i].nodes.push(node.to_owned());
    }

    fn finish(self) -> Vec<Problem> {
        self.found
            .into_iter()
            .map(|Shared { mut problem, nodes }| {
                let who = match nodes.len() {
                    1 => format!("node `{}`", nodes[0]),
                    n if n <= 3 => format!(
                        "nodes {}",
                        nodes
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    n => format!(
                        "nodes `{}`, `{}`, `{}` and {} more",
                        nodes[0],
                        nodes[1],
                        nodes[2],
                        n - 3
                    ),
                };
                problem.message = format!("{who}: {}", problem.message);
                problem
            })
            .collect()
    }
}

/// A remote node's state as read over SSH, when it was read.
pub type RemoteState = Option<Result<Option<store::StoreState>, Problem>>;

/// Checks that read no remote host (`check`, and before `apply`).
/// `check` may run far from the nodes (a CI runner): a local root missing here says
/// nothing about the node, whose state is then unknown.
pub fn run(plan: &Plan) -> Preflight {
    check_all(plan, &[], false)
}

/// Checks where the run happens (`plan`, `apply`): a local root missing here is a node
/// with no release yet; `remote[i]` is the state of node `i` read over SSH.
pub fn run_with(plan: &Plan, remote: &[RemoteState]) -> Preflight {
    check_all(plan, remote, true)
}

/// The plan's repository, scanned once (a mirror: its index read), with what its scan
/// found wrong.
fn scan_repository(
    plan: &Plan,
) -> (
    Option<Repository>,
    Option<std::sync::Arc<crate::mirror::Mirror>>,
    Vec<Problem>,
) {
    if let Some(url) = &plan.mirror {
        if plan.nodes.is_empty() {
            return (None, None, Vec::new());
        }
        return match crate::mirror::shared(&url.value) {
            Ok(m) => {
                let repo = m.repository(&plan.product, &plan.runtime);
                let problems = repo
                    .unparsed
                    .iter()
                    .map(|e| {
                        Problem::new(
                            Code::PackageName,
                            format!("a package in the mirror's SHA256SUMS does not parse: {e}"),
                        )
                        .at(url.span)
                        .label("in this mirror")
                        .warning()
                    })
                    .collect();
                (Some(repo), Some(m), problems)
            }
            Err(e) => (
                None,
                None,
                vec![
                    Problem::new(Code::Path, format!("cannot read the mirror's index: {e}"))
                        .at(url.span)
                        .label("index not readable")
                        .help("the mirror must serve SHA256SUMS (`sha256sum *.zip *.tar.gz > SHA256SUMS`) at this URL"),
                ],
            ),
        };
    }
    let mut problems = Vec::new();
    let repo = match &plan.repository {
        Some(r) if !plan.nodes.is_empty() => {
            match Repository::scan(&r.value, &plan.product, &plan.runtime) {
                Ok(repo) => {
                    for e in &repo.unparsed {
                        problems.push(
                            Problem::new(
                                Code::PackageName,
                                format!("a package in the repository does not parse: {e}"),
                            )
                            .at(r.span)
                            .label("in this repository")
                            .warning(),
                        );
                    }
                    Some(repo)
                }
                Err(e) => {
                    problems.push(
                        Problem::new(
                            Code::Path,
                            format!("cannot read the repository {}: {e}", r.value.display()),
                        )
                        .at(r.span)
                        .label("not a readable directory"),
                    );
                    None
                }
            }
        }
        _ => None,
    };
    (repo, None, problems)
}

/// The checks of nodes `which` alone, where the run happens, each node with its own
/// problems: the preflight of one wave, its remote nodes just read (`remote`).
pub fn check_nodes(
    plan: &Plan,
    remote: &[RemoteState],
    which: &[usize],
) -> Vec<(usize, Vec<Problem>)> {
    let (repo, mirror, scan) = scan_repository(plan);
    let mut digests: HashMap<PathBuf, Digests> = HashMap::new();
    which
        .iter()
        .map(|&i| {
            let mut col = Collector::default();
            let live = remote.get(i).and_then(|r| r.as_ref());
            check_node(
                plan,
                &plan.nodes[i],
                live,
                true,
                (repo.as_ref(), mirror.as_deref()),
                &mut col,
                &mut digests,
            );
            let mut problems = scan.clone();
            problems.extend(col.finish());
            (i, problems)
        })
        .collect()
}

fn check_all(plan: &Plan, remote: &[RemoteState], here: bool) -> Preflight {
    let mut pf = Preflight::default();
    let mut col = Collector::default();
    let (repo, mirror, scan) = scan_repository(plan);
    pf.problems.extend(scan);

    // A checksum is computed once per package, however many nodes share it.
    let mut digests: HashMap<PathBuf, Digests> = HashMap::new();

    for (i, node) in plan.nodes.iter().enumerate() {
        let live = remote.get(i).and_then(|r| r.as_ref());
        let finding = check_node(
            plan,
            node,
            live,
            here,
            (repo.as_ref(), mirror.as_deref()),
            &mut col,
            &mut digests,
        );
        pf.nodes.push(finding);
    }
    pf.mirror = mirror;
    pf.problems.extend(col.finish());
    pf.problems.extend(shared_roots(plan));
    pf.problems
        .sort_by_key(|p| p.span.map_or(usize::MAX, |s| s.start));
    pf
}

fn check_node(
    plan: &Plan,
    node: &NodeTarget,
    live: Option<&Result<Option<store::StoreState>, Problem>>,
    here: bool,
    // Where packages come from: the repository (a mirror's, listed by its index).
    (repo, mirror): (Option<&Repository>, Option<&crate::mirror::Mirror>),
    col: &mut Collector,
    digests: &mut HashMap<PathBuf, Digests>,
) -> NodeFinding {
    let name = node.name.value.as_str();
    let mut finding = NodeFinding {
        package: None,
        running: None,
        state_read: false,
        unreachable: None,
    };

    // A local root that exists must be a directory: a file there fails every install.
    let root = &node.root.value;
    if node.ssh.is_none() && root.exists() && !root.is_dir() {
        col.add(
            name,
            Code::Path,
            format!(
                "its `root` {} exists and is not a directory",
                root.display()
            ),
            Some(node.root.span),
            Some("not a directory".into()),
            Some(
                "point `root` at the node's directory (holding releases/, current, permanent)"
                    .into(),
            ),
        );
        return finding;
    }

    // Live state: local nodes whose root exists on this machine (a plan is often checked
    // on a CI runner far from its nodes), and remote nodes a dry run has read.
    let read = match live {
        Some(Ok(st)) => Some(Ok(st.clone())),
        Some(Err(p)) if p.code == Code::StoreUnreadable => Some(Err(p.message.clone())),
        Some(Err(p)) => {
            finding.unreachable = Some(p.message.clone());
            None
        }
        None if node.ssh.is_none() && node.root.value.is_dir() => {
            Some(store::read_state(&node.root.value))
        }
        // Where the run happens, a local root that does not exist yet is a fresh install.
        None if here && node.ssh.is_none() && !node.root.value.exists() => Some(Ok(None)),
        None => None,
    };
    let running_pkg = if let Some(read) = read {
        match read {
            Ok(state) => {
                finding.state_read = true;
                let perm = state.as_ref().and_then(|s| s.permanent()).cloned();
                // The rules compare with what runs: the current release, else the permanent.
                let rel = state.as_ref().and_then(|s| s.running()).cloned();
                // A node already on the target is done, whatever it was pinned from.
                if let (Some(pin), Some(r)) = (&node.from, &perm)
                    && pin.value != r.version
                    && r.version != node.to.value
                {
                    col.add(
                        name,
                        Code::FromMismatch,
                        format!(
                            "the plan pins `from: {}` but the node runs {}",
                            pin.value, r.version
                        ),
                        Some(pin.span),
                        Some(format!("runs {}", r.version)),
                        None,
                    );
                }
                // A pinned node with no release at all fails its pin at apply: say so now.
                if let (Some(pin), None) = (&node.from, &perm) {
                    col.add(
                        name,
                        Code::FromMismatch,
                        format!(
                            "the plan pins `from: {}` but the node has no release yet",
                            pin.value
                        ),
                        Some(pin.span),
                        Some("runs nothing".into()),
                        None,
                    );
                }
                let pkg = rel.as_ref().and_then(|r| {
                    match PackageName::parse(&r.package, &plan.product, &plan.runtime) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            col.add(
                                name,
                                Code::StoreUnreadable,
                                format!("its running release has an unreadable package name: {e}"),
                                Some(node.root.span),
                                None,
                                None,
                            );
                            None
                        }
                    }
                });
                finding.running = rel;
                pkg
            }
            Err(e) => {
                col.add(
                    name,
                    Code::StoreUnreadable,
                    e,
                    Some(node.root.span),
                    Some("this store".into()),
                    None,
                );
                None
            }
        }
    } else {
        None
    };

    let Some(repo) = repo else { return finding };
    let want = package::Wanted::of(
        running_pkg.as_ref(),
        plan.edition.as_ref().map(|e| e.value.as_str()),
        node.platform.as_ref().map(|p| &p.value),
    );
    let edition = &want.edition;
    let to = &node.to;
    match repo.find(&to.value, &want) {
        Lookup::Found(p) => finding.package = Some(p.clone()),
        // A remote node with no release yet takes its host's platform, read at apply. A
        // local node whose store is not readable here (a CI runner) is refused too: its
        // plan should then say `platform:`, so the check can tell.
        Lookup::Undecided(_) if node.ssh.is_some() => {}
        Lookup::Undecided(ps) => col.add(
            name,
            Code::PackagePlatform,
            format!(
                "it runs no release yet, and the repository holds {} {} for {} platforms: {}",
                plan.product,
                to.value,
                ps.len(),
                package::platform_list(&ps)
            ),
            Some(node.name.span),
            Some("which platform?".into()),
            Some(format!(
                "give the node `platform:` (or set `defaults.platform`), one of: {}",
                package::platform_list(&ps)
            )),
        ),
        // The only package is another build: the rules below say what is wrong.
        Lookup::OtherBuilds(ps) if ps.len() == 1 && running_pkg.is_some() => {
            finding.package = Some(ps[0].clone())
        }
        Lookup::OtherBuilds(ps) => {
            let wants = want.build();
            col.add(
                name,
                Code::PackageMissing,
                format!(
                    "the repository has no {edition} package of {} {} for {wants}, only for {}",
                    plan.product,
                    to.value,
                    package::build_list(ps)
                ),
                Some(to.span),
                Some(format!("no package for {wants}")),
                None,
            )
        }
        Lookup::Missing { other_editions } if !other_editions.is_empty() => {
            let others: Vec<&str> = other_editions.iter().map(|p| p.file.as_str()).collect();
            col.add(
                name,
                Code::RuleEdition,
                format!(
                    "no {edition} package of {} in the repository; only another edition: {}",
                    to.value,
                    others.join(", ")
                ),
                Some(to.span),
                Some(format!("wants {edition}")),
                None,
            );
        }
        Lookup::Missing { .. } => {
            // Each file of that version it passed over, and why.
            let seen = repo.passed_over(&to.value);
            col.add(
                name,
                Code::PackageMissing,
                format!(
                    "the repository {} has no {}package of {} {}{}",
                    repo.dir.display(),
                    repo.edition_words(edition),
                    plan.product,
                    to.value,
                    if seen.is_empty() {
                        String::new()
                    } else {
                        format!("; passed over: {}", seen.join("; "))
                    }
                ),
                Some(to.span),
                Some("no package".into()),
                (!seen.is_empty()).then(|| {
                    "names are <product>[-<edition>]-<version>[-<runtime>]-<os>-<arch>.zip (or .tar.gz); the plan's `runtime` is the prefix of the runtime part (default: otp)".into()
                }),
            )
        }
        Lookup::Ambiguous(ps) => col.add(
            name,
            Code::PackageAmbiguous,
            format!(
                "the repository has {} packages of {} {} {edition}: {}",
                ps.len(),
                plan.product,
                to.value,
                ps.iter()
                    .map(|p| p.file.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(to.span),
            Some("more than one package".into()),
            None,
        ),
    }

    if let Some(pkg) = &finding.package {
        let path = repo.path_of(pkg);
        if let Some(m) = mirror {
            // The index is all `check` reads of a mirror: a pin is held to its digest;
            // the package and its signature are verified when a run downloads them.
            let listed = m.digest(&pkg.file).unwrap_or_default();
            if let Some(pin) = node
                .sha256
                .as_ref()
                .filter(|s| package::is_sha256(&s.value))
                && !pin.value.eq_ignore_ascii_case(listed)
            {
                col.add(
                    name,
                    Code::Checksum,
                    format!(
                        "the mirror's SHA256SUMS gives {} the SHA-256 {listed}, but the plan's sha256 says {}",
                        pkg.file, pin.value
                    ),
                    Some(pin.span),
                    Some("checksum mismatch".into()),
                    Some("the mirror's package is not the one the plan pins: check the mirror, or update `sha256` if it was rebuilt on purpose".into()),
                );
            }
        } else {
            check_checksum(name, node, &path, col, digests);
        }
        if let Some(trust) = plan.trust.as_ref().filter(|_| mirror.is_none()) {
            let d = digests.entry(path.clone()).or_insert_with(|| Digests {
                sidecar: package::sidecar_sha256(&path),
                actual: None,
                signed: None,
            });
            let signed = d
                .signed
                .get_or_insert_with(|| trust.value.verify(&path, None).map(|_| ()))
                .clone();
            if let Err(why) = signed {
                col.add(
                    name,
                    why.code,
                    why.message,
                    Some(to.span),
                    Some("not signed by a trusted key".into()),
                    None,
                );
            }
        }
        if let Some(from) = &running_pkg {
            for v in package::check_upgrade(from, pkg, plan.policy, plan.runtime_compat) {
                col.add(
                    name,
                    v.code,
                    v.message,
                    Some(to.span),
                    Some(format!("runs {}", from.version)),
                    None,
                );
            }
        }
    }
    finding
}

/// Two nodes whose roots are one directory (written twice, or through a link) would
/// share one store: each would undo the other. The second is refused at its `root`.
fn shared_roots(plan: &Plan) -> Vec<Problem> {
    let mut seen: HashMap<(Option<String>, PathBuf), &str> = HashMap::new();
    let mut out = Vec::new();
    for n in &plan.nodes {
        let root = &n.root.value;
        // Locally, the directory itself (links resolved) when it exists; else the path.
        let key = match &n.ssh {
            Some(a) => (
                Some(crate::remote::ssh::describe(&a.value)),
                root.components().collect(),
            ),
            None => (
                None,
                std::fs::canonicalize(root)
                    .or_else(|_| std::path::absolute(root))
                    .unwrap_or_else(|_| root.clone())
                    .components()
                    .collect(),
            ),
        };
        match seen.get(&key) {
            Some(first) => out.push(
                Problem::new(
                    Code::Path,
                    format!(
                        "node `{}` has the same root as node `{first}`: two nodes cannot share one store",
                        n.name.value
                    ),
                )
                .at(n.root.span)
                .label(format!("the root of `{first}`"))
                .help("give every node its own directory (`defaults.root: /srv/emqx/{name}` does)"),
            ),
            None => {
                seen.insert(key, &n.name.value);
            }
        }
    }
    out
}

/// What a package's checksums say, worked out once per package however many nodes share it.
#[derive(Clone)]
struct Digests {
    sidecar: Result<Option<String>, String>,
    actual: Option<Result<String, String>>,
    /// Whether its signature verifies, with `trust`.
    signed: Option<Result<(), Problem>>,
}

fn check_checksum(
    name: &str,
    node: &NodeTarget,
    path: &std::path::Path,
    col: &mut Collector,
    cache: &mut HashMap<PathBuf, Digests>,
) {
    let d = cache.entry(path.to_owned()).or_insert_with(|| Digests {
        sidecar: package::sidecar_sha256(path),
        actual: None,
        signed: None,
    });
    let sidecar = match &d.sidecar {
        Ok(s) => s.clone(),
        Err(e) => {
            col.add(
                name,
                Code::Checksum,
                e.clone(),
                Some(node.to.span),
                None,
                None,
            );
            return;
        }
    };
    // A pin that is no digest is reported by the plan's checks; comparing it would only
    // add a second problem for the same value.
    let pinned = node
        .sha256
        .as_ref()
        .filter(|s| package::is_sha256(&s.value))
        .map(|s| (s.value.to_ascii_lowercase(), s.span));
    if sidecar.is_none() && pinned.is_none() {
        return;
    }
    let actual = d
        .actual
        .get_or_insert_with(|| {
            package::sha256_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
        .clone();
    let actual = match actual {
        Ok(a) => a,
        Err(e) => return col.add(name, Code::Io, e, Some(node.to.span), None, None),
    };
    let expected = [
        sidecar.map(|d| (d, "its .sha256 file", node.to.span, None)),
        pinned.map(|(d, span)| {
            let help = "the repository's package is not the one the plan pins: fetch the release again, or update `sha256` if it was rebuilt on purpose";
            (d, "the plan's sha256", span, Some(help.to_owned()))
        }),
    ];
    for (want, from, span, help) in expected.into_iter().flatten() {
        if want != actual {
            col.add(
                name,
                Code::Checksum,
                format!(
                    "{} has SHA-256 {actual}, but {from} says {want}",
                    path.display()
                ),
                Some(span),
                Some("checksum mismatch".into()),
                help,
            );
        }
    }
}
