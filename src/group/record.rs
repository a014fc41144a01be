//! Records: one per upgrade or rollback, kept under `records/<id>.json`, with each
//! service's change and result.

use super::*;

/// The status of an upgrade or rollback record (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    InProgress,
    Upgraded,
    PartialUpgraded,
    UpgradeFailed,
    RolledBack,
    PartialRollback,
    RollbackFailed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in-progress",
            Status::Upgraded => "upgraded",
            Status::PartialUpgraded => "partial-upgraded",
            Status::UpgradeFailed => "upgrade-failed",
            Status::RolledBack => "rolled-back",
            Status::PartialRollback => "partial-rollback",
            Status::RollbackFailed => "rollback-failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOutcome {
    pub service: String,
    pub change: Change,
    pub details: Vec<String>,
    pub result: ServiceResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub kind: RecordKind,
    pub app: String,
    pub from: Version,
    pub to: Version,
    pub status: Status,
    pub services: Vec<ServiceOutcome>,
    pub started: String,
    pub finished: Option<String>,
    /// The upgrade this rollback undid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// The rollback that undid this upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_by: Option<String>,
    /// The fleet run that made this record (none by hand, and in records of fleetup 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// An upgrade to the version the app was on, whose template the market republished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub republished: bool,
}

/// A record id as typed: `3` is record `0003`; anything else is taken as written.
pub fn record_id(typed: &str) -> String {
    match typed.parse::<u32>() {
        Ok(n) if typed.bytes().all(|b| b.is_ascii_digit()) => format!("{n:04}"),
        _ => typed.to_owned(),
    }
}

/// Whether a record is an upgrade or a rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Upgrade,
    Rollback,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Upgrade => "upgrade",
            RecordKind::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What happened to one service in an upgrade or rollback. Records keep it as text
/// (`done`, `failed: WHY`, `kept`, `unchanged`, `pending`, `not picked`), as they
/// always have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ServiceResult {
    /// Deployed and healthy (or, in a rollback, put back).
    Done,
    Failed(String),
    /// An added service a rollback leaves in place.
    Kept,
    /// Nothing to change in this service.
    Unchanged,
    /// Picked, not yet deployed: a record left so by a kill.
    Pending,
    /// Not among the services the operator picked.
    NotPicked,
}

impl ServiceResult {
    pub fn is_failed(&self) -> bool {
        matches!(self, ServiceResult::Failed(_))
    }
}

impl std::fmt::Display for ServiceResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceResult::Done => f.write_str("done"),
            ServiceResult::Failed(why) => write!(f, "failed: {why}"),
            ServiceResult::Kept => f.write_str("kept"),
            ServiceResult::Unchanged => f.write_str("unchanged"),
            ServiceResult::Pending => f.write_str("pending"),
            ServiceResult::NotPicked => f.write_str("not picked"),
        }
    }
}

impl From<ServiceResult> for String {
    fn from(r: ServiceResult) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for ServiceResult {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "done" => ServiceResult::Done,
            "kept" => ServiceResult::Kept,
            "unchanged" => ServiceResult::Unchanged,
            "pending" => ServiceResult::Pending,
            "not picked" => ServiceResult::NotPicked,
            _ => match s.strip_prefix("failed") {
                Some(why) => {
                    ServiceResult::Failed(why.trim_start_matches(':').trim_start().to_owned())
                }
                None => return Err(format!("`{s}` is not a service result")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_results_keep_the_words_records_always_had() {
        for (r, text) in [
            (ServiceResult::Done, "done"),
            (
                ServiceResult::Failed("health: 500".into()),
                "failed: health: 500",
            ),
            (ServiceResult::Kept, "kept"),
            (ServiceResult::Unchanged, "unchanged"),
            (ServiceResult::Pending, "pending"),
            (ServiceResult::NotPicked, "not picked"),
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<ServiceResult>(&json).unwrap(), r);
        }
        assert!(serde_json::from_str::<ServiceResult>("\"maybe\"").is_err());
        assert_eq!(
            serde_json::to_string(&RecordKind::Rollback).unwrap(),
            "\"rollback\""
        );
    }
}
