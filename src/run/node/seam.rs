//! The node's store seam: its store is either here ([`Store`]) or on another host
//! ([`RemoteStore`], served there by the same `Store` code). Callers — fleet runs and
//! `fleetup node` — use [`NodeStore`] and never ask which.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use semver::Version;

use crate::diagnostics::Problem;
use crate::plan::SshAddr;
use crate::remote::agent::WireConfig;
use crate::remote::{Hosts, RemoteStore};
use crate::store::{Ctx, Outcome, Store, StoreOp, StoreState};

/// A node's store, wherever it is.
pub enum NodeStore {
    Local(Store),
    Remote(Box<RemoteStore>),
}

/// Where a node's store is: a local root, or a root on a host.
pub struct Location<'a> {
    pub root: &'a Path,
    pub ssh: Option<(&'a Arc<Hosts>, &'a SshAddr)>,
}

impl NodeStore {
    /// Opens the store; with `lock`, holds its lock until the `NodeStore` is dropped.
    pub fn open(
        at: &Location,
        ctx: &Ctx,
        lock: bool,
        node_config: bool,
    ) -> Result<NodeStore, Problem> {
        Ok(match at.ssh {
            None if lock => NodeStore::Local(Store::locked(at.root, ctx)?),
            None => NodeStore::Local(Store::new(at.root)),
            Some((hosts, addr)) => NodeStore::Remote(Box::new(RemoteStore::open(
                hosts,
                addr,
                at.root,
                ctx,
                lock,
                node_config,
            )?)),
        })
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, NodeStore::Remote(_))
    }

    /// The values of the host's `<root>/node.toml` a controller needs (`None` for a
    /// local node, whose node.toml the caller reads itself).
    pub fn remote_config(&self) -> Option<&WireConfig> {
        match self {
            NodeStore::Local(_) => None,
            NodeStore::Remote(r) => Some(r.config()),
        }
    }

    pub fn state(&mut self) -> Result<Option<StoreState>, Problem> {
        match self {
            NodeStore::Local(s) => s.state(),
            NodeStore::Remote(r) => r.state(),
        }
    }

    /// One store operation: `other` is the release a `roll-back-to` leaves.
    pub fn op(
        &mut self,
        op: StoreOp,
        v: &Version,
        permanent: bool,
        other: Option<&Version>,
        ctx: &mut Ctx,
    ) -> Result<Outcome, Problem> {
        match self {
            NodeStore::Remote(r) => r.op(op, v, permanent, other, ctx),
            NodeStore::Local(s) => s.apply(op, v, permanent, other, ctx),
        }
    }

    pub fn upgrade(
        &mut self,
        v: &Version,
        permanent: bool,
        ctx: &mut Ctx,
    ) -> Result<Outcome, Problem> {
        self.op(StoreOp::Upgrade, v, permanent, None, ctx)
    }

    pub fn revert(&mut self, v: &Version, ctx: &mut Ctx) -> Result<(), Problem> {
        self.op(StoreOp::Revert, v, false, None, ctx).map(|_| ())
    }

    /// Back on `prev`, leaving `to` (see [`Store::roll_back_to`]).
    pub fn roll_back_to(
        &mut self,
        prev: &Version,
        to: &Version,
        ctx: &mut Ctx,
    ) -> Result<(), Problem> {
        self.op(StoreOp::RollBackTo, prev, false, Some(to), ctx)
            .map(|_| ())
    }

    /// A `command` health check where the node is: `None` for a local node, whose checks
    /// run here.
    pub fn check_on_node(
        &mut self,
        argv: &[String],
        limit: Duration,
        give_up: &[u16],
    ) -> Option<Result<(), crate::health::Miss>> {
        match self {
            NodeStore::Local(_) => None,
            NodeStore::Remote(r) => Some(r.check(argv, limit, give_up)),
        }
    }
}
