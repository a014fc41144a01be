//! What a target's row in `fleetup status` holds, as each kind fills it in
//! (`Target::status`).

use serde::Serialize;

/// One target as it stands.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub kind: &'static str,
    /// What the plan says it should run: a version, or a group's apps (`mall 1.0.2`), as
    /// the target's `to` says it (filled in by `fleet_status`).
    pub wanted: String,
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
    /// How it differs from what the plan says (`status --drift`): empty when it runs the
    /// plan's version, as permanent, and nothing is mid-change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
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

/// What differs between running `current` (and booting `permanent`, when the plan
/// makes releases permanent) and the plan's `to`, in words.
pub fn version_drift(
    current: Option<&str>,
    permanent: Option<&str>,
    to: &str,
    want_permanent: bool,
) -> Option<String> {
    match (current, permanent) {
        (None, _) => Some(format!("nothing installed; the plan says {to}")),
        (Some(c), _) if c != to => Some(format!("runs {c}; the plan says {to}")),
        (_, Some(p)) if want_permanent && p != to => Some(format!(
            "runs {to}, but {p} is permanent: a restart goes back"
        )),
        (_, None) if want_permanent => Some(format!("runs {to}, but nothing is permanent")),
        _ => None,
    }
}

impl TargetStatus {
    /// A node whose current release is not its permanent one.
    pub fn current_not_permanent(&self) -> bool {
        self.current.is_some() && self.current != self.permanent
    }
}

#[cfg(test)]
mod tests {
    use super::version_drift;

    #[test]
    fn a_version_drifts_when_it_runs_or_boots_another_release_than_the_plans() {
        assert_eq!(
            version_drift(Some("1.0.1"), Some("1.0.1"), "1.0.1", true),
            None
        );
        assert_eq!(
            version_drift(Some("1.0.0"), Some("1.0.0"), "1.0.1", true).as_deref(),
            Some("runs 1.0.0; the plan says 1.0.1")
        );
        assert_eq!(
            version_drift(Some("1.0.1"), Some("1.0.0"), "1.0.1", true).as_deref(),
            Some("runs 1.0.1, but 1.0.0 is permanent: a restart goes back")
        );
        assert_eq!(
            version_drift(Some("1.0.1"), None, "1.0.1", true).as_deref(),
            Some("runs 1.0.1, but nothing is permanent")
        );
        // A plan that does not make releases permanent asks only what runs.
        assert_eq!(
            version_drift(Some("1.0.1"), Some("1.0.0"), "1.0.1", false),
            None
        );
        assert_eq!(
            version_drift(None, None, "1.0.1", true).as_deref(),
            Some("nothing installed; the plan says 1.0.1")
        );
    }
}
