//! Package signatures: with `trust: { minisign: [KEY…] }` every package needs a valid
//! `<file>.minisig` from one of the keys, checked before anything is unpacked (and by
//! `check`), failing closed. Keys are minisign public keys, as `minisign -G` writes them
//! (the base64 line of `minisign.pub`, with or without its comment line).

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use minisign_verify::{PublicKey, Signature};

use crate::diagnostics::{Code, Problem};

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
    /// (not prehashed) mode is refused, as current minisign never makes one. What is
    /// signed is bound to its name: the signature's trusted comment must say
    /// `file:<package's file name>` (minisign writes it so), so that a genuine signed
    /// package served under another release's name is refused (`signature::name`).
    pub fn verify(&self, package: &Path, sig: Option<&Path>) -> Result<String, Problem> {
        let refuse = |why: String| Problem::new(Code::PackageSignature, why);
        let sig_file = sig.map_or_else(|| sig_path(package), Path::to_owned);
        let name = package.file_name().map_or_else(
            || package.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text = match std::fs::read_to_string(&sig_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "{name} has no signature: {} is missing",
                    sig_file.display()
                )));
            }
            Err(e) => return Err(refuse(format!("cannot read {}: {e}", sig_file.display()))),
        };
        let signature = Signature::decode(&text).map_err(|e| {
            refuse(format!(
                "{} is not a minisign signature ({e})",
                sig_file.display()
            ))
        })?;
        let mut last = String::new();
        for (written, key) in &self.keys {
            let mut v = match key.verify_stream(&signature) {
                Ok(v) => v,
                Err(minisign_verify::Error::UnexpectedKeyId) => {
                    last = format!("{name} is signed by a key the plan does not trust");
                    continue;
                }
                Err(minisign_verify::Error::UnsupportedLegacyMode) => {
                    return Err(refuse(format!(
                        "{} is a legacy (not prehashed) minisign signature: sign {name} again with a current minisign",
                        sig_file.display()
                    )));
                }
                Err(e) => {
                    last = format!("{name}: {e}");
                    continue;
                }
            };
            let mut f = std::fs::File::open(package)
                .map_err(|e| refuse(format!("cannot read {}: {e}", package.display())))?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| refuse(format!("cannot read {}: {e}", package.display())))?;
                if n == 0 {
                    break;
                }
                v.update(&buf[..n]);
            }
            if v.finalize().is_err() {
                return Err(refuse(if comment_is_genuine(written, &text) {
                    format!(
                        "{name} does not match its signature {}: it was changed after it was signed",
                        sig_file.display()
                    )
                } else {
                    format!(
                        "the trusted comment of {} was altered after it was signed: the signature cannot be relied on",
                        sig_file.display()
                    )
                }));
            }
            // Genuine: the comment too is the signer's. Now, is it this file?
            return match signed_file(signature.trusted_comment()) {
                Some(signed) if signed == name => Ok(written.clone()),
                Some(signed) => Err(Problem::new(
                    Code::SignatureName,
                    format!(
                        "{} is a genuine signature of `{}`, not of `{name}`: the package was served under another file's name",
                        sig_file.display(),
                        crate::names::printable(signed)
                    ),
                )),
                None => Err(Problem::new(
                    Code::SignatureName,
                    format!(
                        "the trusted comment of {} names no file (`{}`), so it cannot show that it signs `{name}`",
                        sig_file.display(),
                        crate::names::printable(signature.trusted_comment())
                    ),
                )),
            };
        }
        Err(refuse(last))
    }
}

/// The file a trusted comment names: minisign writes `timestamp:N\tfile:NAME` (and
/// `\thashed` since 0.10); `file:` is the file's name without its directory.
fn signed_file(comment: &str) -> Option<&str> {
    comment
        .split('\t')
        .find_map(|f| f.strip_prefix("file:"))
        .map(|f| f.rsplit('/').next().unwrap_or(f))
}

/// Whether the global signature of signature `text` (over the file's signature and the
/// trusted comment) verifies with `key`: told apart so that an altered comment is not
/// blamed on the package.
fn comment_is_genuine(key: &str, text: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_line = key.lines().map(str::trim).rfind(|l| !l.is_empty());
    let Some(Ok(pk)) = key_line.map(|l| b64.decode(l)) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let (Some(sig_line), Some(comment_line), Some(global_line)) =
        (lines.get(1), lines.get(2), lines.get(3))
    else {
        return false;
    };
    let (Ok(sig), Some(comment), Ok(global)) = (
        b64.decode(sig_line.trim()),
        comment_line.strip_prefix("trusted comment: "),
        b64.decode(global_line.trim()),
    ) else {
        return false;
    };
    if pk.len() != 42 || sig.len() != 74 {
        return false;
    }
    let mut signed = sig[10..].to_vec();
    signed.extend_from_slice(comment.as_bytes());
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &pk[10..])
        .verify(&signed, &global)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_file_is_the_trusted_comments_file_field() {
        assert_eq!(
            signed_file("timestamp:1555779966\tfile:emqx-4.4.1.zip\thashed"),
            Some("emqx-4.4.1.zip")
        );
        assert_eq!(
            signed_file("timestamp:1\tfile:/tmp/x/emqx-4.4.1.zip"),
            Some("emqx-4.4.1.zip")
        );
        assert_eq!(signed_file("release 4.4.1"), None);
    }

    /// The public key of minisign's own documentation (a real Ed25519 key).
    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    #[test]
    fn keys_are_kept_and_shown_as_written() {
        let t = Trust::new(&[format!("  {KEY}\n")]).unwrap();
        assert_eq!(t.written(), [KEY]);
        assert_eq!(format!("{t:?}"), format!("[{KEY:?}]"));
        assert_eq!(Trust::new(&[KEY.into(), "nope".into()]).unwrap_err().0, 1);
    }

    #[test]
    fn a_signature_that_cannot_be_read_is_not_called_missing() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("emqx-4.4.1.zip");
        std::fs::write(&pkg, b"x").unwrap();
        let t = Trust::new(&[KEY.into()]).unwrap();
        let missing = t.verify(&pkg, None).unwrap_err().message;
        assert!(missing.contains("has no signature"), "{missing}");
        // A directory where the signature should be: unreadable, not missing.
        std::fs::create_dir(sig_path(&pkg)).unwrap();
        let unreadable = t.verify(&pkg, None).unwrap_err().message;
        assert!(unreadable.starts_with("cannot read"), "{unreadable}");
    }

    #[test]
    fn a_global_signature_of_the_wrong_length_is_not_genuine() {
        // The key is 42 bytes; a signature line of 3 bytes is no signature (and must
        // not be sliced as one).
        let text = "untrusted comment: x\nAAAA\ntrusted comment: y\nAAAA\n";
        assert!(!comment_is_genuine(KEY, text));
        assert!(!comment_is_genuine("not base64 !", text));
    }
}
