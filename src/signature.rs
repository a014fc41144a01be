//! Package signatures: with `trust: { minisign: [KEY…] }` every package needs a valid
//! `<file>.minisig` from one of the keys, checked before anything is unpacked (and by
//! `check`), failing closed. Keys are minisign public keys, as `minisign -G` writes them
//! (the base64 line of `minisign.pub`, with or without its comment line).

use std::io::Read;
use std::path::{Path, PathBuf};

use minisign_verify::{PublicKey, Signature};

/// The keys a plan (or a node's `node.toml`) trusts.
#[derive(Clone)]
pub struct Trust {
    keys: Vec<(String, PublicKey)>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(k, _)| k))
            .finish()
    }
}

/// One key as written: the base64 line alone, or `minisign.pub`'s two lines.
pub fn parse_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    let parsed = if text.contains('\n') {
        PublicKey::decode(text)
    } else {
        PublicKey::from_base64(text)
    };
    parsed.map_err(|e| format!("not a minisign public key ({e})"))
}

/// The signature file of a package: `<file>.minisig` beside it.
pub fn sig_path(package: &Path) -> PathBuf {
    let mut s = package.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

impl Trust {
    /// The keys, each as written; the first that is no key is the error.
    pub fn new(keys: &[String]) -> Result<Trust, (usize, String)> {
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                parse_key(k)
                    .map(|p| (k.trim().to_owned(), p))
                    .map_err(|e| (i, e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Trust { keys })
    }

    /// The keys as written (for a remote agent, or a bundle).
    pub fn written(&self) -> Vec<String> {
        self.keys.iter().map(|(k, _)| k.clone()).collect()
    }

    /// Checks `package` against its `<file>.minisig` (or `sig` when given): `Ok` names
    /// the key's line that signed it. Read in chunks; a signature in minisign's legacy
    /// (not prehashed) mode is refused, as current minisign never makes one.
    pub fn verify(&self, package: &Path, sig: Option<&Path>) -> Result<String, String> {
        let sig_file = sig.map_or_else(|| sig_path(package), Path::to_owned);
        let name = package.file_name().map_or_else(
            || package.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text = match std::fs::read_to_string(&sig_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "{name} has no signature: {} is missing",
                    sig_file.display()
                ));
            }
            Err(e) => return Err(format!("cannot read {}: {e}", sig_file.display())),
        };
        let signature = Signature::decode(&text)
            .map_err(|e| format!("{} is not a minisign signature ({e})", sig_file.display()))?;
        let mut last = String::new();
        for (written, key) in &self.keys {
            let mut v = match key.verify_stream(&signature) {
                Ok(v) => v,
                Err(minisign_verify::Error::UnexpectedKeyId) => {
                    last = format!("{name} is signed by a key the plan does not trust");
                    continue;
                }
                Err(minisign_verify::Error::UnsupportedLegacyMode) => {
                    return Err(format!(
                        "{} is a legacy (not prehashed) minisign signature: sign {name} again with a current minisign",
                        sig_file.display()
                    ));
                }
                Err(e) => {
                    last = format!("{name}: {e}");
                    continue;
                }
            };
            let mut f = std::fs::File::open(package)
                .map_err(|e| format!("cannot read {}: {e}", package.display()))?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| format!("cannot read {}: {e}", package.display()))?;
                if n == 0 {
                    break;
                }
                v.update(&buf[..n]);
            }
            return match v.finalize() {
                Ok(()) => Ok(written.clone()),
                Err(_) => Err(format!(
                    "{name} does not match its signature {}: it was changed after it was signed",
                    sig_file.display()
                )),
            };
        }
        Err(last)
    }
}
