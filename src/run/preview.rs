//! The dry run's view of one target (`fleetup plan`): where it is, where it goes, and
//! what the rules say. Each target kind fills it in `Target::preview`; `plan` renders it.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Preview {
    pub target: String,
    pub kind: &'static str,
    pub from: Option<String>,
    /// `live` (read from the target), `pinned` (the plan's `from`), `fresh` or `unknown`.
    pub from_source: &'static str,
    pub to: String,
    pub package: Option<String>,
    pub rules: String,
    /// The rules could not be checked here (the target could not be read): they are
    /// checked right before the target is touched.
    #[serde(skip)]
    pub open: bool,
    /// Per group service: marker, name, change and details (SPEC §3).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}
