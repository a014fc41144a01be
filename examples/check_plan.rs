//! Using fleetup as a library: load a plan, validate it, check it against the world,
//! and print what a program could act on.
//!
//! `cargo run --example check_plan -- plans/patch-rollout.yaml`

use std::path::Path;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "plans/patch-rollout.yaml".into());
    let loaded = fleetup::plan::load(Path::new(&path));
    for p in &loaded.problems {
        println!("{}: {}", p.code.as_str(), p.message);
    }
    let Some(plan) = loaded.plan else {
        println!("{path}: no plan could be built");
        std::process::exit(1);
    };
    let world = fleetup::run::kinds::World::read(&plan, &[], fleetup::run::kinds::Reading::Check);
    for p in &world.problems() {
        println!("{}: {}", p.code.as_str(), p.message);
    }
    println!(
        "{}: {} ({} nodes, {} groups)",
        path,
        plan.name,
        plan.nodes.len(),
        plan.groups.len()
    );
    for (i, node) in plan.nodes.iter().enumerate() {
        let Some(found) = world.nodes().finding(i) else {
            continue;
        };
        let package = found
            .package
            .as_ref()
            .map_or("no package", |p| p.file.as_str());
        let from = found
            .running
            .as_ref()
            .map(|r| r.version.to_string())
            .or_else(|| node.from.as_ref().map(|f| format!("{} (pinned)", f.value)))
            .unwrap_or_else(|| "unknown".into());
        println!(
            "  {}: {from} → {} via {package}",
            node.name.value, node.to.value
        );
    }
}
