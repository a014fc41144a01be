//! Every kind of target a run knows, in one list: the one place a new kind is added.

use super::group::GroupUnit;
use super::node::NodeUnit;
use super::scripted::ScriptedUnit;
use super::target::Target;
use crate::plan::{Plan, Section};

/// Every target of the plan, numbered as [`Plan::entry`] numbers them.
pub fn of_plan(plan: &Plan) -> Vec<Box<dyn Target + '_>> {
    plan.entries()
        .map(|e| match e.section {
            Section::Node(i, n) => Box::new(NodeUnit::new(plan, i, n)) as Box<dyn Target>,
            Section::Group(_, g) => Box::new(GroupUnit::new(plan, g)),
            Section::Scripted(_, t) => Box::new(ScriptedUnit::new(plan, t)),
        })
        .collect()
}
