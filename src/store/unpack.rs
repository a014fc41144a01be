//! Unpacking a release package (a zip, or a `.tar.gz` as EMQX 5.x publishes them) safely:
//! nothing is written outside the staging directory, and the release tree appears under its
//! final name only when complete.
//!
//! Every entry is vetted before the first byte is written (a zip from its central
//! directory, a tarball in a first pass over its headers): names that escape (`..`,
//! absolute), duplicates, compression methods other than stored and deflate, declared
//! sizes over the limit, symlinks that point out of the tree, and in tarballs hard links
//! and device files. While extracting, sizes are counted for real (a header can lie),
//! files are created with `create_new` (nothing is overwritten), and symlinks are made
//! last, so no write ever goes through a link.

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
/// The checks every entry of a package passes before anything is written, whatever
/// the archive's format: a name inside the release tree, each path once, at most
/// `max_entries` entries and `max_bytes` declared, symlinks that stay inside (alone and
/// followed through one another). Each format reads its own headers and hands them here.
struct Vetting<'a> {
    package: &'a Path,
    limits: Limits,
    entries: Vec<Entry>,
    seen: HashSet<PathBuf>,
    declared: u64,
}

impl<'a> Vetting<'a> {
    fn new(package: &'a Path, limits: Limits) -> Self {
        Vetting {
            package,
            limits,
            entries: Vec::new(),
            seen: HashSet::new(),
            declared: 0,
        }
    }

    fn refuse(&self, code: Code, why: String) -> Problem {
        refuse(code, self.package, why)
    }

    /// The entry named `raw`, at `path` as its format reads it (`None`: a name that
    /// cannot stay inside): its key in the tree, or `None` for the tree's root itself.
    fn key(&mut self, raw: &str, path: Option<PathBuf>) -> Result<Option<PathBuf>, Problem> {
        if self.entries.len() >= self.limits.max_entries {
            return Err(self.refuse(
                Code::PackageTooLarge,
                format!("more entries than the limit of {}", self.limits.max_entries),
            ));
        }
        let escapes = |p: &Path| {
            p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        };
        let Some(path) = path.filter(|p| !escapes(p)) else {
            return Err(self.refuse(
                Code::PackageUnsafe,
                format!("entry `{raw}` would be written outside the release tree"),
            ));
        };
        let key: PathBuf = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if key.as_os_str().is_empty() {
            return Ok(None);
        }
        if !self.seen.insert(key.clone()) {
            return Err(self.refuse(
                Code::PackageDuplicate,
                format!("entry `{raw}` appears twice"),
            ));
        }
        Ok(Some(key))
    }

    fn dir(&mut self, key: PathBuf) {
        self.entries.push(Entry::Dir(key));
    }

    /// A file of `size` bytes (as its header declares) with Unix mode bits `mode`;
    /// `index` is its place in a zip's directory.
    fn file(
        &mut self,
        key: PathBuf,
        size: u64,
        mode: Option<u32>,
        index: usize,
    ) -> Result<(), Problem> {
        self.declared = self.declared.saturating_add(size);
        if self.declared > self.limits.max_bytes {
            return Err(self.refuse(
                Code::PackageTooLarge,
                format!(
                    "it unpacks to more than the limit of {} bytes",
                    self.limits.max_bytes
                ),
            ));
        }
        let mode = mode.map_or(0o644, |m| if m & 0o111 != 0 { 0o755 } else { 0o644 });
        self.entries.push(Entry::File {
            index,
            path: key,
            size,
            mode,
        });
        Ok(())
    }

    fn symlink(&mut self, key: PathBuf, raw: &str, target: PathBuf) -> Result<(), Problem> {
        if !link_stays_inside(&key, &target) {
            return Err(self.refuse(
                Code::PackageUnsafe,
                format!(
                    "symlink `{raw}` points outside the release tree (to {})",
                    target.display()
                ),
            ));
        }
        self.entries.push(Entry::Symlink { path: key, target });
        Ok(())
    }

    /// Every entry, once the links are checked followed through one another.
    fn done(self) -> Result<Vec<Entry>, Problem> {
        check_links(
            self.package,
            self.entries.iter().filter_map(|e| match e {
                Entry::Symlink { path, target } => Some((path.clone(), target.clone())),
                _ => None,
            }),
        )?;
        Ok(self.entries)
    }
}

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

/// Follows every link of a package through the others, as the kernel will once they
/// exist: a chain whose links each stay inside on their own text (`l1 -> .`,
/// `up -> l1/..`) can still lead out, or loop. `Err` names the first such link and why.
fn links_resolve_inside(links: &[(PathBuf, PathBuf)]) -> Result<(), (PathBuf, &'static str)> {
    use std::collections::{HashMap, VecDeque};
    use std::ffi::OsString;
    let map: HashMap<&Path, &Path> = links
        .iter()
        .map(|(l, t)| (l.as_path(), t.as_path()))
        .collect();
    for (link, target) in links {
        let mut at: Vec<OsString> = link
            .parent()
            .map(|p| p.components().map(|c| c.as_os_str().to_owned()).collect())
            .unwrap_or_default();
        let mut pending: VecDeque<Component> = target.components().collect();
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    if at.pop().is_none() {
                        return Err((link.clone(), "leads out of the release tree"));
                    }
                }
                Component::Normal(n) => {
                    at.push(n.to_owned());
                    let here: PathBuf = at.iter().collect();
                    if let Some(t) = map.get(here.as_path()) {
                        hops += 1;
                        if hops > 40 {
                            return Err((link.clone(), "loops through other links"));
                        }
                        // The link is replaced by its target, read from its directory.
                        at.pop();
                        for c in t.components().rev() {
                            pending.push_front(c);
                        }
                    }
                }
                _ => return Err((link.clone(), "leads out of the release tree")),
            }
        }
    }
    Ok(())
}

/// Refuses `package` when its links, followed through each other, lead out or loop.
fn check_links(
    package: &Path,
    links: impl Iterator<Item = (PathBuf, PathBuf)>,
) -> Result<(), Problem> {
    let links: Vec<(PathBuf, PathBuf)> = links.collect();
    links_resolve_inside(&links).map_err(|(link, why)| {
        refuse(
            Code::PackageUnsafe,
            package,
            format!(
                "symlink `{}` {why}, followed through the others",
                link.display()
            ),
        )
    })
}

/// Unpacks `package` into `dest` (which must not exist) by way of `staging`.
pub fn unpack(
    package: &Path,
    staging: &Path,
    dest: &Path,
    limits: Limits,
) -> Result<Unpacked, Problem> {
    let name = package
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    if let Some((crate::package::Archive::TarGz, _)) =
        name.as_deref().and_then(crate::package::Archive::of)
    {
        return unpack_tar_gz(package, staging, dest, limits);
    }
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
    let mut vet = Vetting::new(package, limits);
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
        let path = f.enclosed_name().filter(|_| !absolute);
        let Some(key) = vet.key(&raw_name, path)? else {
            continue;
        };
        if f.is_dir() {
            vet.dir(key);
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
            vet.symlink(key, &raw_name, PathBuf::from(target))?;
        } else {
            let (size, mode) = (f.size(), f.unix_mode());
            vet.file(key, size, mode, i)?;
        }
    }
    let entries = vet.done()?;

    // 2. Extract into staging; on any failure, staging is removed and dest never appears.
    let _ = std::fs::remove_dir_all(staging);
    let result = extract(&mut zip, package, staging, &entries, limits);
    into_place(result, staging, dest)
}

/// Writes back everything written under `dir` (its whole file system, in one call).
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: syncfs takes a valid open descriptor, which `d` holds for the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The staging tree renamed to `dest` when extraction succeeded, else removed.
fn into_place(
    result: Result<Unpacked, Problem>,
    staging: &Path,
    dest: &Path,
) -> Result<Unpacked, Problem> {
    match result {
        Ok(stats) => {
            // Power loss: every file and directory of the tree reaches the disk before the
            // rename publishes it, so RELEASES never names a tree of empty files. One
            // syncfs(2) of the tree's file system instead of an fsync per file.
            if let Err(e) = sync_tree(staging) {
                let _ = std::fs::remove_dir_all(staging);
                return Err(Problem::new(
                    Code::Io,
                    format!("cannot sync the unpacked tree {}: {e}", staging.display()),
                ));
            }
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
                let mut f = zip.by_index(*index).map_err(|e| {
                    refuse(
                        Code::PackageCorrupt,
                        package,
                        format!("`{}` is unreadable ({e})", path.display()),
                    )
                })?;
                write_file(
                    &mut f, &at, path, *size, *mode, &mut stats, limits, package, &mut buf,
                )?;
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

/// Writes one vetted file of a package: created new (nothing is overwritten) with its
/// mode, its bytes counted for real against what its header declared and the limit.
#[allow(clippy::too_many_arguments)]
fn write_file(
    from: &mut impl Read,
    at: &Path,
    path: &Path,
    size: u64,
    mode: u32,
    stats: &mut Unpacked,
    limits: Limits,
    package: &Path,
    buf: &mut [u8],
) -> Result<(), Problem> {
    let io =
        |e: std::io::Error| Problem::new(Code::Io, format!("cannot write {}: {e}", at.display()));
    // The mode is set at creation (the umask applies, as for any installer).
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(at)
        .map_err(io)?;
    let mut written = 0u64;
    loop {
        let n = match from.read(buf) {
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
        if written > size || stats.bytes + written > limits.max_bytes {
            return Err(refuse(
                Code::PackageTooLarge,
                package,
                format!(
                    "`{}` unpacks to more than its declared {size} bytes",
                    path.display()
                ),
            ));
        }
        out.write_all(&buf[..n]).map_err(io)?;
    }
    stats.files += 1;
    stats.bytes += written;
    Ok(())
}

/// One vetted tarball entry.
fn open_tar_gz(
    package: &Path,
) -> Result<tar::Archive<flate2::read::GzDecoder<BufReader<File>>>, Problem> {
    let file = File::open(package)
        .map_err(|e| Problem::new(Code::Io, format!("cannot open {}: {e}", package.display())))?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        BufReader::new(file),
    )))
}

/// A `.tar.gz` package: vetted header by header, then extracted in a second pass.
fn unpack_tar_gz(
    package: &Path,
    staging: &Path,
    dest: &Path,
    limits: Limits,
) -> Result<Unpacked, Problem> {
    let corrupt = |why: String| refuse(Code::PackageCorrupt, package, why);
    // 1. Vet every header before writing anything.
    let mut vet = Vetting::new(package, limits);
    let mut archive = open_tar_gz(package)?;
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("not a readable .tar.gz archive ({e})")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| corrupt(format!("not a readable .tar.gz archive ({e})")))?;
        let raw = entry
            .path_bytes()
            .iter()
            .map(|b| *b as char)
            .collect::<String>();
        let path = entry
            .path()
            .map_err(|e| corrupt(format!("entry `{raw}` has an unreadable name ({e})")))?
            .into_owned();
        let Some(key) = vet.key(&raw, Some(path))? else {
            continue;
        };
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => vet.dir(key),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry
                    .header()
                    .size()
                    .map_err(|e| corrupt(format!("entry `{raw}` has an unreadable size ({e})")))?;
                let mode = entry.header().mode().ok();
                vet.file(key, size, mode, 0)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| corrupt(format!("symlink `{raw}` is unreadable ({e})")))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                vet.symlink(key, &raw, target)?;
            }
            tar::EntryType::Link => {
                return Err(refuse(
                    Code::PackageUnsafe,
                    package,
                    format!("entry `{raw}` is a hard link, which a release package never needs"),
                ));
            }
            other => {
                return Err(refuse(
                    Code::PackageUnsupported,
                    package,
                    format!(
                        "entry `{raw}` is a {other:?} entry; only files, directories and symlinks are unpacked"
                    ),
                ));
            }
        }
        // Reading the data through checks that the stream holds what the header says.
        std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| corrupt(format!("`{raw}` is damaged ({e})")))?;
    }
    let vetted = vet.done()?;

    // 2. Extract into staging, the same entries in the same order.
    let _ = std::fs::remove_dir_all(staging);
    let result = extract_tar(package, staging, &vetted, limits);
    into_place(result, staging, dest)
}

fn extract_tar(
    package: &Path,
    staging: &Path,
    vetted: &[Entry],
    limits: Limits,
) -> Result<Unpacked, Problem> {
    let io = |what: &Path, e: std::io::Error| {
        Problem::new(Code::Io, format!("cannot write {}: {e}", what.display()))
    };
    let corrupt = |why: String| refuse(Code::PackageCorrupt, package, why);
    std::fs::create_dir_all(staging).map_err(|e| io(staging, e))?;
    let files: std::collections::HashMap<&Path, (u64, u32)> = vetted
        .iter()
        .filter_map(|e| match e {
            Entry::File {
                path, size, mode, ..
            } => Some((path.as_path(), (*size, *mode))),
            _ => None,
        })
        .collect();
    let mut stats = Unpacked::default();
    let mut buf = vec![0u8; 256 << 10];
    let mut archive = open_tar_gz(package)?;
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("not a readable .tar.gz archive ({e})")))?;
    for e in vetted {
        if let Entry::Dir(p) = e {
            let at = staging.join(p);
            std::fs::create_dir_all(&at).map_err(|e| io(&at, e))?;
        }
    }
    for entry in entries {
        let mut entry =
            entry.map_err(|e| corrupt(format!("not a readable .tar.gz archive ({e})")))?;
        let key: PathBuf = entry
            .path()
            .map_err(|e| corrupt(format!("an entry name became unreadable ({e})")))?
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let Some((size, mode)) = files.get(key.as_path()).copied() else {
            continue;
        };
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            return Err(corrupt(format!(
                "`{}` changed between two reads",
                key.display()
            )));
        }
        let at = staging.join(&key);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        write_file(
            &mut entry, &at, &key, size, mode, &mut stats, limits, package, &mut buf,
        )?;
    }
    // Links last: no file above was written through one.
    for e in vetted {
        if let Entry::Symlink { path, target } = e {
            let at = staging.join(path);
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
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
    fn link_chains_are_followed() {
        let l = |v: &[(&str, &str)]| -> Vec<(PathBuf, PathBuf)> {
            v.iter()
                .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
                .collect()
        };
        assert!(
            links_resolve_inside(&l(&[("bin/run", "../lib/run"), ("lib/run", "real")])).is_ok()
        );
        assert!(links_resolve_inside(&l(&[("l1", "."), ("up", "l1/..")])).is_err());
        assert!(links_resolve_inside(&l(&[("a", "b"), ("b", "a")])).is_err());
        assert!(links_resolve_inside(&l(&[("x/l", ".."), ("y", "x/l/x/l/../etc")])).is_err());
        assert!(links_resolve_inside(&l(&[("x/l", ".."), ("y", "x/l/x/l/etc")])).is_ok());
    }

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
