//! Unpacking a release zip safely: nothing is written outside the staging directory, and
//! the release tree appears under its final name only when complete.
//!
//! Every entry is vetted from the central directory before the first byte is written:
//! names that escape (`..`, absolute), duplicates, compression methods other than stored
//! and deflate, declared sizes over the limit, symlinks that point out of the tree. While
//! extracting, sizes are counted for real (a header can lie), files are created with
//! `create_new` (nothing is overwritten), and symlinks are made last, so no write ever
//! goes through a link.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use zip::CompressionMethod;

use crate::diagnostics::{Code, Problem};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Total uncompressed bytes of a package.
    pub max_bytes: u64,
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 8 << 30,
            max_entries: 200_000,
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: usize,
    pub bytes: u64,
}

enum Entry {
    Dir(PathBuf),
    File {
        index: usize,
        path: PathBuf,
        size: u64,
        mode: u32,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
}

fn refuse(code: Code, package: &Path, why: String) -> Problem {
    let name = package.file_name().map_or_else(
        || package.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Problem::new(code, format!("{name}: {why}"))
        .help(format!("{}; the store was not changed", code.help()))
}

/// Whether `target`, a symlink at `link` (both relative to the tree's root), stays inside.
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.parent().map_or(0, |p| p.components().count() as i64);
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Unpacks `package` into `dest` (which must not exist) by way of `staging`.
pub fn unpack(
    package: &Path,
    staging: &Path,
    dest: &Path,
    limits: Limits,
) -> Result<Unpacked, Problem> {
    let file = File::open(package)
        .map_err(|e| Problem::new(Code::Io, format!("cannot open {}: {e}", package.display())))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        refuse(
            Code::PackageCorrupt,
            package,
            format!("not a readable zip archive ({e})"),
        )
    })?;
    // The reader keeps one entry per name, so duplicates must be asked about.
    if zip.has_duplicate_names() {
        return Err(refuse(
            Code::PackageDuplicate,
            package,
            "the archive holds the same path more than once".into(),
        ));
    }
    if zip.len() > limits.max_entries {
        return Err(refuse(
            Code::PackageTooLarge,
            package,
            format!(
                "{} entries, more than the limit of {}",
                zip.len(),
                limits.max_entries
            ),
        ));
    }

    // 1. Vet every entry before writing anything.
    let mut entries = Vec::with_capacity(zip.len());
    let mut seen = HashSet::new();
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(|e| {
            refuse(
                Code::PackageCorrupt,
                package,
                format!("entry #{i} is unreadable ({e})"),
            )
        })?;
        let raw_name = f
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("#{i}"));
        // `enclosed_name` quietly makes an absolute name relative; such a package is
        // hostile or broken either way, so it is refused outright.
        let absolute = raw_name.starts_with('/')
            || raw_name.starts_with('\\')
            || raw_name.as_bytes().get(1) == Some(&b':');
        let Some(path) = f.enclosed_name().filter(|_| !absolute) else {
            return Err(refuse(
                Code::PackageUnsafe,
                package,
                format!("entry `{raw_name}` would be written outside the release tree"),
            ));
        };
        let key: PathBuf = path.components().collect();
        if key.as_os_str().is_empty() {
            continue;
        }
        if !seen.insert(key.clone()) {
            return Err(refuse(
                Code::PackageDuplicate,
                package,
                format!("entry `{raw_name}` appears twice"),
            ));
        }
        if f.is_dir() {
            entries.push(Entry::Dir(key));
            continue;
        }
        match f.compression() {
            CompressionMethod::Stored | CompressionMethod::Deflated => {}
            other => {
                return Err(refuse(
                    Code::PackageUnsupported,
                    package,
                    format!(
                        "entry `{raw_name}` is compressed with {other:?}; only stored and deflate are supported"
                    ),
                ));
            }
        }
        declared = declared.saturating_add(f.size());
        if declared > limits.max_bytes {
            return Err(refuse(
                Code::PackageTooLarge,
                package,
                format!(
                    "it unpacks to more than the limit of {} bytes",
                    limits.max_bytes
                ),
            ));
        }
        if f.is_symlink() {
            drop(f);
            let mut f = zip.by_index(i).map_err(|e| {
                refuse(
                    Code::PackageCorrupt,
                    package,
                    format!("entry `{raw_name}` is unreadable ({e})"),
                )
            })?;
            let mut target = String::new();
            f.by_ref()
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|e| {
                    refuse(
                        Code::PackageCorrupt,
                        package,
                        format!("symlink `{raw_name}` is unreadable ({e})"),
                    )
                })?;
            let target = PathBuf::from(target);
            if !link_stays_inside(&key, &target) {
                return Err(refuse(
                    Code::PackageUnsafe,
                    package,
                    format!(
                        "symlink `{raw_name}` points outside the release tree (to {})",
                        target.display()
                    ),
                ));
            }
            entries.push(Entry::Symlink { path: key, target });
        } else {
            let mode = f
                .unix_mode()
                .map_or(0o644, |m| if m & 0o111 != 0 { 0o755 } else { 0o644 });
            entries.push(Entry::File {
                index: i,
                path: key,
                size: f.size(),
                mode,
            });
        }
    }

    // 2. Extract into staging; on any failure, staging is removed and dest never appears.
    let _ = std::fs::remove_dir_all(staging);
    let result = extract(&mut zip, package, staging, &entries, limits);
    match result {
        Ok(stats) => {
            std::fs::rename(staging, dest).map_err(|e| {
                let _ = std::fs::remove_dir_all(staging);
                Problem::new(
                    Code::Io,
                    format!("cannot move the unpacked tree into {}: {e}", dest.display()),
                )
            })?;
            if let Some(parent) = dest.parent() {
                let _ = crate::fsutil::sync_dir(parent);
            }
            Ok(stats)
        }
        Err(p) => {
            let _ = std::fs::remove_dir_all(staging);
            Err(p)
        }
    }
}

fn extract<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    package: &Path,
    staging: &Path,
    entries: &[Entry],
    limits: Limits,
) -> Result<Unpacked, Problem> {
    let io = |what: &Path, e: std::io::Error| {
        Problem::new(Code::Io, format!("cannot write {}: {e}", what.display()))
    };
    std::fs::create_dir_all(staging).map_err(|e| io(staging, e))?;
    let mut stats = Unpacked::default();
    let mut buf = vec![0u8; 256 << 10];
    // Directories already made: one create_dir_all per directory, not one per file.
    let mut made: HashSet<PathBuf> = HashSet::new();
    let mut ensure = |dir: &Path| -> Result<(), Problem> {
        if !made.contains(dir) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            made.insert(dir.to_owned());
        }
        Ok(())
    };
    for e in entries {
        match e {
            Entry::Dir(p) => ensure(&staging.join(p))?,
            Entry::File {
                index,
                path,
                size,
                mode,
            } => {
                let at = staging.join(path);
                if let Some(parent) = at.parent() {
                    ensure(parent)?;
                }
                // The mode is set at creation (the umask applies, as for any installer).
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(*mode)
                    .open(&at)
                    .map_err(|e| io(&at, e))?;
                let mut f = zip.by_index(*index).map_err(|e| {
                    refuse(
                        Code::PackageCorrupt,
                        package,
                        format!("`{}` is unreadable ({e})", path.display()),
                    )
                })?;
                let mut written = 0u64;
                loop {
                    let n = match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(refuse(
                                Code::PackageCorrupt,
                                package,
                                format!("`{}` is damaged ({e})", path.display()),
                            ));
                        }
                    };
                    written += n as u64;
                    if written > *size || stats.bytes + written > limits.max_bytes {
                        return Err(refuse(
                            Code::PackageTooLarge,
                            package,
                            format!(
                                "`{}` unpacks to more than its declared {size} bytes",
                                path.display()
                            ),
                        ));
                    }
                    out.write_all(&buf[..n]).map_err(|e| io(&at, e))?;
                }
                stats.files += 1;
                stats.bytes += written;
            }
            Entry::Symlink { .. } => {}
        }
    }
    // Links last: no file above was written through one.
    for e in entries {
        if let Entry::Symlink { path, target } = e {
            let at = staging.join(path);
            if let Some(parent) = at.parent() {
                ensure(parent)?;
            }
            std::os::unix::fs::symlink(target, &at).map_err(|e| io(&at, e))?;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_containment() {
        assert!(link_stays_inside(
            Path::new("bin/ctl"),
            Path::new("../lib/ctl")
        ));
        assert!(link_stays_inside(Path::new("a"), Path::new("b/c")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("../x")));
        assert!(!link_stays_inside(
            Path::new("bin/ctl"),
            Path::new("../../etc/passwd")
        ));
        assert!(!link_stays_inside(Path::new("a"), Path::new("/etc/passwd")));
        assert!(!link_stays_inside(
            Path::new("a/b"),
            Path::new("c/../../../x")
        ));
    }
}
