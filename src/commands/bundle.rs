//! `fleetup bundle PLAN -o DIR`: everything an air-gapped controller needs to apply the
//! plan, in one directory: the packages the plan's nodes need (from its repository or
//! mirror, verified), their digests (`<file>.sha256` and a `SHA256SUMS`, so the
//! directory can be served as a mirror too), their signatures, fleetup's own binary as
//! the agent for hosts of this platform (and the plan's `agents`), and a copy of the
//! plan whose `repository` is the bundle itself. Written whole or not at all.

use std::path::{Path, PathBuf};

use crate::diagnostics::{Code, Exit, Failure, Problem};

fn io(p: &Path, e: std::io::Error) -> Problem {
    Problem::new(Code::Io, format!("{}: {e}", p.display()))
}

/// Copies `from` into `dir` under its own name.
fn copy_in(from: &Path, dir: &Path) -> Result<PathBuf, Problem> {
    let to = dir.join(from.file_name().unwrap_or_default());
    std::fs::copy(from, &to).map_err(|e| io(from, e))?;
    Ok(to)
}

pub fn run(plan_path: &Path, out: &Path) -> Result<Exit, Failure> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Problem::new(
            Code::Usage,
            format!("{} exists and is not empty", out.display()),
        )
        .help("give a new directory: a bundle is written whole, never over another")
        .into());
    }
    let p = crate::run::prepare(plan_path, None, false)?;
    let plan = &p.plan;
    if !plan.groups.is_empty() {
        return Err(Problem::new(
            Code::Unsupported,
            "bundles carry nodes' packages; app groups and their markets are not bundled yet",
        )
        .help("bundle a plan of nodes; copy a group's market by hand")
        .into());
    }
    if !plan.scripted.is_empty() {
        return Err(Problem::new(
            Code::Unsupported,
            "bundles carry nodes' packages; what scripted targets install comes from their own commands and is not bundled",
        )
        .help("bundle a plan of nodes; give scripted targets' hosts their packages as their package manager expects")
        .into());
    }
    let Some(repo) = &plan.repository else {
        return Err(Problem::new(Code::Usage, "the plan has no repository to bundle").into());
    };
    let files = p.world.packages_needed(plan);
    let parent = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".bundle-")
        .tempdir_in(parent)
        .map_err(|e| io(parent, e))?;
    let dir = tmp.path();
    let mut sums = String::new();
    for f in &files {
        // From the mirror (downloaded, verified) or the plan's directory.
        let src = match p.world.mirror() {
            Some(m) => m
                .fetch(f, plan.trust.is_some(), &|| false)
                .map_err(crate::mirror::FetchError::problem)?,
            None => repo.value.join(f),
        };
        let copy = copy_in(&src, dir)?;
        let digest = crate::package::sha256_file(&copy).map_err(|e| io(&copy, e))?;
        if let Some(want) = crate::package::sidecar_sha256(&src)
            .map_err(|e| Problem::new(Code::Checksum, e))?
            .filter(|w| *w != digest)
        {
            return Err(Problem::new(
                Code::Checksum,
                format!("{f} has SHA-256 {digest}, but its .sha256 says {want}"),
            )
            .into());
        }
        std::fs::write(dir.join(format!("{f}.sha256")), format!("{digest}  {f}\n"))
            .map_err(|e| io(dir, e))?;
        sums.push_str(&format!("{digest}  {f}\n"));
        let sig = crate::signature::sig_path(&src);
        if sig.exists() {
            copy_in(&sig, dir)?;
        }
        if let Some(t) = &plan.trust {
            t.value.verify(&copy, None)?;
        }
    }
    std::fs::write(dir.join("SHA256SUMS"), &sums).map_err(|e| io(dir, e))?;

    // Agents: this fleetup for hosts of its own platform, and the plan's others.
    let agents = dir.join("agents");
    std::fs::create_dir_all(&agents).map_err(|e| io(&agents, e))?;
    let me = std::env::current_exe().map_err(|e| io(Path::new("fleetup"), e))?;
    let own = format!(
        "fleetup-{}-{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    std::fs::copy(&me, agents.join(&own)).map_err(|e| io(&me, e))?;
    if let Some(a) = &plan.agents
        && let Ok(rd) = std::fs::read_dir(a)
    {
        for e in rd.flatten() {
            if e.path().is_file() {
                copy_in(&e.path(), &agents)?;
            }
        }
    }

    // The plan, its repository the bundle itself, and every store it names the same
    // store as the original names (relative paths made absolute).
    let _ = repo;
    let format = crate::plan::Format::from_path(plan_path).unwrap_or(crate::plan::Format::Yaml);
    let from = std::path::absolute(plan_path)
        .map_err(|e| io(plan_path, e))?
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    let agents_copy = plan.agents.as_ref().map(|_| "agents");
    let copy = crate::plan::relocated(&plan.file.text, format, &from, ".", agents_copy)
        .map_err(|why| Problem::new(Code::Io, format!("cannot write the bundle's plan: {why}")))?;
    let ext = plan_path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("yaml");
    let copy_path = dir.join(format!("plan.{ext}"));
    std::fs::write(&copy_path, &copy).map_err(|e| io(dir, e))?;
    same_plan(plan, &copy, format, dir, &from)?;

    let kept = tmp.keep();
    if out.exists() {
        std::fs::remove_dir(out).map_err(|e| io(out, e))?;
    }
    std::fs::rename(&kept, out).map_err(|e| io(out, e))?;
    println!(
        "Bundled {} package(s) of plan {} into {}: `fleetup apply {}` applies it with the network off, to the same stores and state directory as the plan (its relative paths made absolute). Agents for hosts of other platforms are in {} (FLEETUP_AGENTS or the plan's `agents`).",
        files.len(),
        plan.name,
        out.display(),
        out.join(format!("plan.{ext}")).display(),
        out.join("agents").display()
    );
    Ok(Exit::Ok)
}

/// The bundle's plan (`copy`, in `dir`) loads, takes its packages from the bundle, and
/// names the same stores and state directory as the original `plan` (whose directory
/// is `from`): or the bundle is not written.
fn same_plan(
    plan: &crate::plan::Plan,
    copy: &str,
    format: crate::plan::Format,
    dir: &Path,
    from: &Path,
) -> Result<(), Problem> {
    let refuse = |why: String| {
        Problem::new(
            Code::Io,
            format!("the bundle's copy of plan {} would not be the same plan: {why}", plan.name),
        )
        .help("write the plan's `repository`, `state` and `root` values as plain one-line strings, then bundle again")
    };
    let loaded = crate::plan::load_text(
        crate::diagnostics::SourceFile::new("plan", copy.to_owned()),
        format,
        dir,
    );
    let failed = loaded.has_errors();
    let Some(c) = loaded.plan.filter(|_| !failed) else {
        let first = loaded
            .problems
            .iter()
            .find(|p| p.severity == crate::diagnostics::Severity::Error)
            .map_or("it does not load".into(), |p| p.message.clone());
        return Err(refuse(format!("it does not load ({first})")));
    };
    let abs = |p: &Path| std::path::absolute(from.join(p)).unwrap_or_else(|_| p.to_owned());
    if c.repository.as_ref().map(|r| abs(&r.value)) != Some(abs(dir)) || c.mirror.is_some() {
        return Err(refuse("its repository is not the bundle".into()));
    }
    if c.state.as_ref().map(|s| abs(s)) != plan.state.as_ref().map(|s| abs(s)) {
        return Err(refuse("it names another state directory".into()));
    }
    for (a, b) in plan.nodes.iter().zip(&c.nodes) {
        if a.ssh.is_none() && abs(&a.root.value) != abs(&b.root.value) {
            return Err(refuse(format!(
                "node `{}` would have its store at {} instead of {}",
                a.name.value,
                b.root.value.display(),
                abs(&a.root.value).display()
            )));
        }
    }
    Ok(())
}
