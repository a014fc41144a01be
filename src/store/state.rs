//! `releases/RELEASES`: the state of every release of a node, as human-readable TOML.
//!
//! Only fleetup writes it (atomically: temporary file, fsync, rename). Reading is strict:
//! a file that does not parse is reported, never guessed at.

use std::path::Path;

use semver::Version;
use serde::{Deserialize, Serialize};

/// The format version written into every RELEASES file.
pub const FORMAT: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseState {
    Unpacked,
    Current,
    Permanent,
    Old,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: Version,
    /// The package file name under `releases/`; the compatibility rules read it.
    pub package: String,
    pub state: ReleaseState,
}

/// A change that was started and has not finished: written before a hook runs, so a
/// kill at any moment is found and repaired by the next command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// `install` or `downgrade`.
    pub action: String,
    pub version: Version,
    /// The release that was current before; `None` on a fresh store.
    pub previous: Option<Version>,
    pub since: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreState {
    pub format: u32,
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    #[serde(default, rename = "release")]
    pub releases: Vec<Release>,
}

impl ReleaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Unpacked => "unpacked",
            ReleaseState::Current => "current",
            ReleaseState::Permanent => "permanent",
            ReleaseState::Old => "old",
        }
    }
}

impl StoreState {
    pub fn new(product: &str) -> Self {
        StoreState {
            format: FORMAT,
            product: product.to_owned(),
            pending: None,
            releases: Vec::new(),
        }
    }

    /// The release that starts after a restart: what the node "runs" for the rules.
    pub fn permanent(&self) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.state == ReleaseState::Permanent)
    }

    /// What runs now: the current release, or the permanent one when none is current.
    pub fn running(&self) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.state == ReleaseState::Current)
            .or_else(|| self.permanent())
    }

    pub fn get(&self, v: &Version) -> Option<&Release> {
        self.releases.iter().find(|r| &r.version == v)
    }

    pub fn set(&mut self, v: &Version, state: ReleaseState) {
        for r in &mut self.releases {
            if &r.version == v {
                r.state = state;
            }
        }
    }

    /// Any release in `from` becomes `to` (e.g. the old permanent becomes old).
    pub fn demote(&mut self, from: ReleaseState, to: ReleaseState) {
        for r in &mut self.releases {
            if r.state == from {
                r.state = to;
            }
        }
    }

    /// Newest first.
    pub fn sorted(&self) -> Vec<&Release> {
        let mut v: Vec<&Release> = self.releases.iter().collect();
        v.sort_by(|a, b| b.version.cmp(&a.version));
        v
    }
}

/// Writes a store's state atomically.
pub fn write_state(root: &Path, state: &StoreState) -> Result<(), String> {
    let path = root.join("releases").join("RELEASES");
    let body = toml::to_string(state).map_err(|e| format!("cannot encode the store state: {e}"))?;
    let text = format!(
        "# Release store state, written by fleetup. Do not edit: fleetup is its only writer.\n{body}"
    );
    crate::fsutil::write_atomic(&path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a store's state. `Ok(None)`: there is no store yet (a fresh node).
pub fn read_state(root: &Path) -> Result<Option<StoreState>, String> {
    let path = root.join("releases").join("RELEASES");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    parse_state(&text, &path.display().to_string()).map(Some)
}

/// A RELEASES file's text; `path` names it in messages.
pub fn parse_state(text: &str, path: &str) -> Result<StoreState, String> {
    let state: StoreState =
        toml::from_str(text).map_err(|e| format!("{path} is damaged: {}", e.message()))?;
    if state.format != FORMAT {
        return Err(format!(
            "{path} has format {}, this fleetup reads format {FORMAT}",
            state.format
        ));
    }
    // A release's package is a file in releases/, named as packages are: never a path
    // that would lead an uninstall anywhere else.
    for r in &state.releases {
        let p = &r.package;
        if p.is_empty()
            || p.contains('/')
            || p.starts_with('.')
            || crate::package::Archive::of(p).is_none()
        {
            return Err(format!(
                "{path} is damaged: release {} names `{p}` as its package, which is no package file name",
                r.version
            ));
        }
    }
    // One release runs at a time and one is kept for restarts: two of either and no
    // command could tell which one it acts on.
    for (which, name) in [
        (ReleaseState::Permanent, "permanent"),
        (ReleaseState::Current, "current"),
    ] {
        let marked: Vec<String> = state
            .releases
            .iter()
            .filter(|r| r.state == which)
            .map(|r| r.version.to_string())
            .collect();
        if marked.len() > 1 {
            return Err(format!(
                "{path} is damaged: {} releases are marked {name} ({})",
                marked.len(),
                marked.join(", ")
            ));
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(v: &str, state: ReleaseState) -> Release {
        Release {
            version: Version::parse(v).unwrap(),
            package: format!("emqx-{v}-el8-amd64.zip"),
            state,
        }
    }

    #[test]
    fn the_states_of_a_store_move_as_upgrades_make_them() {
        use ReleaseState::*;
        let mut s = StoreState::new("emqx");
        assert_eq!((s.permanent(), s.running()), (None, None));
        s.releases = vec![
            release("4.4.0", Old),
            release("4.4.16", Permanent),
            release("4.4.17", Unpacked),
        ];
        let v = |x: &str| Version::parse(x).unwrap();
        assert_eq!(s.running().unwrap().version, v("4.4.16"));
        // 4.4.17 made current: it runs, 4.4.16 stays permanent (a restart goes back).
        s.set(&v("4.4.17"), Current);
        assert_eq!(s.running().unwrap().version, v("4.4.17"));
        assert_eq!(s.permanent().unwrap().version, v("4.4.16"));
        assert_eq!(s.get(&v("4.4.17")).unwrap().state, Current);
        assert_eq!(s.get(&v("4.4.0")).unwrap().state, Old);
        assert!(s.get(&v("4.4.1")).is_none());
        // Made permanent: the old permanent becomes old, only the one set changes.
        s.demote(Permanent, Old);
        s.set(&v("4.4.17"), Permanent);
        let states: Vec<(String, &str)> = s
            .sorted()
            .iter()
            .map(|r| (r.version.to_string(), r.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("4.4.17".to_owned(), "permanent"),
                ("4.4.16".to_owned(), "old"),
                ("4.4.0".to_owned(), "old"),
            ]
        );
        assert_eq!(Unpacked.as_str(), "unpacked");
        assert_eq!(Current.as_str(), "current");
    }

    #[test]
    fn a_state_file_of_another_format_or_naming_a_path_is_refused() {
        let text = |format: u32, package: &str| {
            format!(
                "format = {format}\nproduct = \"emqx\"\n[[release]]\nversion = \"4.4.0\"\npackage = \"{package}\"\nstate = \"permanent\"\n"
            )
        };
        assert!(parse_state(&text(1, "emqx-4.4.0-el8-amd64.zip"), "R").is_ok());
        assert!(
            parse_state(&text(2, "emqx-4.4.0-el8-amd64.zip"), "R")
                .unwrap_err()
                .contains("R has format 2")
        );
        for bad in [
            "",
            "../emqx-4.4.0-el8-amd64.zip",
            ".hidden.zip",
            "emqx-4.4.0.txt",
        ] {
            assert!(
                parse_state(&text(1, bad), "R")
                    .unwrap_err()
                    .contains("no package file name"),
                "{bad}"
            );
        }
        // A RELEASES that cannot be read is an error, not a fresh store.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("releases/RELEASES")).unwrap();
        assert!(read_state(dir.path()).unwrap_err().contains("cannot read"));
    }

    /// Issue 26: two releases marked permanent (or current) are damage, not a choice.
    #[test]
    fn two_permanent_or_current_releases_are_damage() {
        for state in ["permanent", "current"] {
            let text = format!(
                "format = 1\nproduct = \"emqx\"\n[[release]]\nversion = \"4.4.15\"\npackage = \"emqx-4.4.15-el8-amd64.zip\"\nstate = \"{state}\"\n[[release]]\nversion = \"4.4.16\"\npackage = \"emqx-4.4.16-el8-amd64.zip\"\nstate = \"{state}\"\n"
            );
            let e = parse_state(&text, "RELEASES").unwrap_err();
            assert!(
                e.contains("damaged") && e.contains("4.4.15, 4.4.16") && e.contains(state),
                "{e}"
            );
        }
    }

    #[test]
    fn reads_a_store_and_finds_the_permanent_release() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_state(dir.path()).unwrap(), None);
        std::fs::create_dir_all(dir.path().join("releases")).unwrap();
        std::fs::write(
            dir.path().join("releases/RELEASES"),
            "format = 1\nproduct = \"emqx\"\n[[release]]\nversion = \"4.4.0\"\npackage = \"emqx-4.4.0-el8-amd64.zip\"\nstate = \"old\"\n[[release]]\nversion = \"4.4.16\"\npackage = \"emqx-4.4.16-el8-amd64.zip\"\nstate = \"permanent\"\n",
        )
        .unwrap();
        let s = read_state(dir.path()).unwrap().unwrap();
        assert_eq!(s.permanent().unwrap().version, Version::new(4, 4, 16));
        write_state(dir.path(), &s).unwrap();
        assert_eq!(read_state(dir.path()).unwrap().unwrap(), s);
        write_state(dir.path(), &s).unwrap();
        assert_eq!(read_state(dir.path()).unwrap().unwrap(), s);
        std::fs::write(
            dir.path().join("releases/RELEASES"),
            "format = 1\nproduct = 3\n",
        )
        .unwrap();
        assert!(read_state(dir.path()).unwrap_err().contains("damaged"));
    }
}
