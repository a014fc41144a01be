//! What a target's row in `fleetup status` holds, as each kind fills it in
//! (`Target::status`).

use serde::Serialize;

/// One target as it stands.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub kind: &'static str,
    /// A node's current release (what a restart leaves aside), a scripted target's
    /// running version; none for a group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// A node's permanent release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permanent: Option<String>,
    /// A group's apps: `mall 1.0.2`, with the services on another version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppStatus>,
    /// Who holds its lock now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<String>,
    /// Caught in the middle of a change (a killed install, an unfinished group upgrade).
    pub mid_change: bool,
    /// The last run that touched it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Why its state could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AppStatus {
    pub app: String,
    pub version: String,
    /// Services on another version than the app's, with theirs.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub running: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub run: String,
    /// The target's outcome in it (`upgraded`, `rolled-back`, …), or `interrupted` when
    /// the run began changing it and never said how that ended.
    pub outcome: String,
    /// How the run itself ended.
    pub status: String,
}

impl TargetStatus {
    /// A node whose current release is not its permanent one.
    pub fn current_not_permanent(&self) -> bool {
        self.current.is_some() && self.current != self.permanent
    }
}
