//! The node release store (SPEC §2). This module owns the on-disk format of
//! `releases/RELEASES`; everything that reads or writes a store goes through it.

pub mod state;

pub use state::{Release, ReleaseState, StoreState, read_state};
