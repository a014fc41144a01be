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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreState {
    pub format: u32,
    pub product: String,
    #[serde(default, rename = "release")]
    pub releases: Vec<Release>,
}

impl StoreState {
    /// The release that starts after a restart: what the node "runs" for the rules.
    pub fn permanent(&self) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.state == ReleaseState::Permanent)
    }
}

/// Reads a store's state. `Ok(None)`: there is no store yet (a fresh node).
pub fn read_state(root: &Path) -> Result<Option<StoreState>, String> {
    let path = root.join("releases").join("RELEASES");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let state: StoreState = toml::from_str(&text)
        .map_err(|e| format!("{} is damaged: {}", path.display(), e.message()))?;
    if state.format != FORMAT {
        return Err(format!(
            "{} has format {}, this fleetup reads format {FORMAT}",
            path.display(),
            state.format
        ));
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::write(
            dir.path().join("releases/RELEASES"),
            "format = 1\nproduct = 3\n",
        )
        .unwrap();
        assert!(read_state(dir.path()).unwrap_err().contains("damaged"));
    }
}
