//! Every kind of target a run knows, in one list: the one place a new kind is added.

use super::group::GroupUnit;
use super::node::NodeUnit;
use super::target::Target;
use crate::plan::Plan;

/// Every target of the plan, nodes then groups, in file order: the order of
/// [`crate::schedule::TargetId::index`].
pub fn of_plan(plan: &Plan) -> Vec<Box<dyn Target + '_>> {
    let nodes = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Box::new(NodeUnit::new(plan, i, n)) as Box<dyn Target>);
    let groups = plan
        .groups
        .iter()
        .map(|g| Box::new(GroupUnit::new(plan, g)) as Box<dyn Target>);
    nodes.chain(groups).collect()
}
