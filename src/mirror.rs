//! Repositories over HTTP(S): `repository: https://mirror.example.com/emqx/`. The package
//! list comes from the mirror's `SHA256SUMS` (the `sha256sum` format: `DIGEST  FILE` per
//! line, as `sha256sum *.zip > SHA256SUMS` writes it); `check` and `plan` read only that.
//! A run downloads each package it needs once, before any node changes, into a cache
//! directory (`$FLEETUP_CACHE_DIR`, else `$XDG_CACHE_HOME/fleetup`, else
//! `~/.cache/fleetup`, then `mirrors/<id of the URL>`), verified against its digest,
//! with its digest written beside it as `<file>.sha256` so that every store checks it
//! again when it copies it. Downloads are bounded (connect and stall timeouts, a size
//! limit), retried with backoff, and resumed where the server allows ranges.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How big an index may be.
const INDEX_LIMIT: u64 = 4 << 20;
/// How big a signature file may be.
const SIG_LIMIT: u64 = 64 << 10;
/// Attempts of one download, with 1 s, 2 s, 4 s… between them.
const ATTEMPTS: u32 = 4;
/// The largest package a mirror may send: as much as fleetup unpacks.
const MAX_PACKAGE: u64 = 8 << 30;

/// A mirror and what its index lists.
#[derive(Debug)]
pub struct Mirror {
    /// The URL, ending with `/`.
    pub url: String,
    /// `(digest, file)` for every line of its SHA256SUMS.
    pub index: Vec<(String, String)>,
    /// Where its packages are kept on this machine (why none can be, otherwise).
    pub cache: Result<PathBuf, String>,
    /// The largest package it may send (bytes).
    pub limit: u64,
    /// How long one download may take before it is cut off (and resumed).
    pub timeout: Duration,
    /// The certificates alone trusted for HTTPS (`FLEETUP_CA_FILE`).
    pub ca: Option<String>,
}

/// The mirrors this process has read, by URL: one index read per run, shared by the
/// preflight and every node's turn.
static SHARED: std::sync::OnceLock<
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Mirror>>>,
> = std::sync::OnceLock::new();

/// Mirror `url`, its index read once per process.
pub fn shared(url: &str) -> Result<std::sync::Arc<Mirror>, String> {
    let map = SHARED.get_or_init(Default::default);
    if let Some(m) = map.lock().ok().and_then(|m| m.get(url).cloned()) {
        return Ok(m);
    }
    let m = std::sync::Arc::new(Mirror::open(url)?);
    if let Ok(mut map) = map.lock() {
        map.insert(url.to_owned(), m.clone());
    }
    Ok(m)
}

/// Whether a `repository` value is a URL rather than a directory.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The cache directory of mirror `url`: under `$FLEETUP_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/fleetup`, else `~/.cache/fleetup` with `~` from `$HOME` or, without
/// it (a systemd unit with no `User=`), from the password database. Never a shared
/// temporary directory: a package another user could swap there would be installed
/// (and its hooks run) as this user.
pub fn cache_dir(url: &str) -> Result<PathBuf, String> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = env("FLEETUP_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("fleetup")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("fleetup")))
        .or_else(|| crate::fsutil::home_of_user().map(|h| h.join(".cache").join("fleetup")))
        .ok_or_else(|| {
            "no cache directory for mirror packages: set $FLEETUP_CACHE_DIR (or $HOME) to a directory only this user can write".to_owned()
        })?;
    let id = hex(url.as_bytes());
    Ok(base.join("mirrors").join(&id[..16]))
}

/// Makes the cache directory `dir` (each new level 0700) and refuses it, or any level
/// from its cache base down, when another user owns it or others may write it: such a
/// directory lets them swap a verified package before a store takes it.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    // The mirror's directory, `mirrors/`, and the cache base above it.
    for level in dir.ancestors().take(3) {
        let m = std::fs::metadata(level)
            .map_err(|e| format!("cannot read {}: {e}", level.display()))?;
        if m.uid() != me {
            return Err(format!(
                "the cache directory {} belongs to uid {}, not to this user (uid {me}): refusing to keep packages where another user can replace them",
                level.display(),
                m.uid()
            ));
        }
        if m.mode() & 0o022 != 0 {
            return Err(format!(
                "the cache directory {} can be written by other users (mode {:o}): refusing to keep packages there; `chmod go-w` it or set $FLEETUP_CACHE_DIR",
                level.display(),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// Reads a `sha256sum` listing: `DIGEST  FILE` or `DIGEST *FILE`; only plain file names.
pub fn parse_index(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            format!(
                "line {} of SHA256SUMS is not `DIGEST  FILE`: {line:?}",
                i + 1
            )
        };
        let (digest, rest) = line.split_once(' ').ok_or_else(bad)?;
        let file = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(bad)?;
        if !crate::package::is_sha256(digest) {
            return Err(bad());
        }
        if !crate::package::is_plain_file_name(file) {
            return Err(format!(
                "line {} of SHA256SUMS names `{}`, which is no plain file name",
                i + 1,
                crate::names::printable(file)
            ));
        }
        out.push((digest.to_ascii_lowercase(), file.to_owned()));
    }
    Ok(out)
}

/// An HTTP(S) client bounded everywhere: connecting, the response head, and the body
/// (`body`: a download taking longer is cut off, then retried from where it broke).
/// HTTPS servers are trusted by Mozilla's roots, or, with `ca` (PEM), by those
/// certificates alone. For an `https://` URL (`https`), a redirect that leaves https is
/// refused, as curl's `--proto-redir =https` does.
fn agent(body: Duration, ca: Option<&str>, https: bool) -> Result<ureq::Agent, String> {
    let mut b = ureq::Agent::config_builder()
        .https_only(https)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(body))
        .http_status_as_error(false);
    if let Some(pem) = ca {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem.as_bytes())
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err("FLEETUP_CA_FILE holds no PEM certificate".into());
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
            .build();
        b = b.tls_config(tls);
    }
    Ok(b.build().into())
}

/// The certificates that alone are trusted for HTTPS mirrors (`FLEETUP_CA_FILE`, PEM),
/// for a mirror on a private CA.
pub fn ca_from_env() -> Result<Option<String>, String> {
    match std::env::var_os("FLEETUP_CA_FILE").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(p) => std::fs::read_to_string(&p).map(Some).map_err(|e| {
            format!(
                "FLEETUP_CA_FILE {}: {e}",
                std::path::Path::new(&p).display()
            )
        }),
    }
}

/// How long one download may take (`FLEETUP_DOWNLOAD_TIMEOUT`, e.g. `30m`; default 10m).
fn download_timeout() -> Duration {
    std::env::var("FLEETUP_DOWNLOAD_TIMEOUT")
        .ok()
        .and_then(|v| crate::duration::parse_duration(&v))
        .unwrap_or(Duration::from_secs(600))
}

/// Why a package could not be made present in the cache: what failed, as a caller
/// codes it, with the words for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// Not downloaded: not in the index, the server or the network failed, the cache
    /// could not hold it.
    Download(String),
    /// Downloaded whole, but not the bytes the index names (never retried).
    Digest(String),
    /// The package's signature could not be downloaded.
    Signature(String),
    /// SIGINT or SIGTERM ended the download.
    Stopped(String),
}

impl FetchError {
    /// The diagnostic code a refusal for this failure carries.
    pub fn code(&self) -> crate::diagnostics::Code {
        use crate::diagnostics::Code;
        match self {
            FetchError::Download(_) => Code::PackageDownload,
            FetchError::Digest(_) => Code::Checksum,
            FetchError::Signature(_) => Code::PackageSignature,
            FetchError::Stopped(_) => Code::RunStopped,
        }
    }

    /// What the operator is told.
    pub fn why(&self) -> &str {
        match self {
            FetchError::Download(w)
            | FetchError::Digest(w)
            | FetchError::Signature(w)
            | FetchError::Stopped(w) => w,
        }
    }

    /// A problem with this failure's code and words.
    pub fn problem(self) -> crate::diagnostics::Problem {
        let code = self.code();
        crate::diagnostics::Problem::new(code, self.why().to_owned())
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.why())
    }
}

/// Why a GET failed, and whether trying again may help.
#[derive(Debug)]
pub struct GetError {
    pub why: String,
    /// False for what the server will answer the same way again (a redirect off https).
    pub retry: bool,
}

impl From<String> for GetError {
    fn from(why: String) -> Self {
        GetError { why, retry: true }
    }
}

/// Where a GET writes its body: appended, and restarted from nothing when a server
/// answers a range request with the whole file (`200`).
pub trait Sink: Write {
    fn restart(&mut self) -> std::io::Result<()>;
}

impl Sink for Vec<u8> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl Sink for std::fs::File {
    fn restart(&mut self) -> std::io::Result<()> {
        // Opened for appending: the next write goes to the new end, byte 0.
        self.set_len(0)
    }
}

/// GET `url` (from byte `from`), the body read into `out` up to `limit` bytes: the bytes
/// written, and whether the server honoured the range. A server that ignores the range
/// sends the whole file: `out` is restarted and takes it, rather than growing by it.
fn get(
    agent: &ureq::Agent,
    url: &str,
    from: u64,
    limit: u64,
    out: &mut dyn Sink,
    stop: &dyn Fn() -> bool,
) -> Result<(u64, bool), GetError> {
    let mut req = agent.get(url);
    if from > 0 {
        req = req.header("Range", format!("bytes={from}-"));
    }
    let mut resp = req.call().map_err(|e| match e {
        ureq::Error::RequireHttpsOnly(to) => GetError {
            why: format!(
                "GET {url} was redirected to {}, which leaves https: refused",
                crate::names::printable(&to)
            ),
            retry: false,
        },
        e => GetError::from(format!("GET {url}: {e}")),
    })?;
    let status = resp.status().as_u16();
    let ranged = status == 206;
    if !(status == 200 || ranged) {
        return Err(format!("GET {url} answered HTTP {status}").into());
    }
    if from > 0 && !ranged {
        out.restart()
            .map_err(|e| format!("cannot restart the download of {url}: {e}"))?;
    }
    let start = if ranged { from } else { 0 };
    if let Some(len) = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && start + len > limit
    {
        // What the server has: asking again gets the same answer.
        return Err(GetError {
            why: format!(
                "GET {url}: the server announces {} bytes, more than the {limit} allowed",
                start + len
            ),
            retry: false,
        });
    }
    let mut body = resp
        .body_mut()
        .with_config()
        .limit(limit.saturating_sub(start).saturating_add(1))
        .reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let got = body.read(&mut buf).map_err(|e| {
            format!(
                "GET {url}: the download broke off after {} bytes: {e}",
                start + n
            )
        })?;
        if got == 0 {
            break;
        }
        if stop() {
            return Err(GetError {
                why: format!("GET {url} was stopped (SIGINT/SIGTERM)"),
                retry: false,
            });
        }
        n += got as u64;
        if start + n > limit {
            return Err(format!("GET {url}: more than the {limit} bytes allowed").into());
        }
        out.write_all(&buf[..got])
            .map_err(|e| format!("cannot write the download of {url}: {e}"))?;
    }
    Ok((n, ranged))
}

impl Mirror {
    /// Reads the mirror's index.
    pub fn open(url: &str) -> Result<Mirror, String> {
        let url = if url.ends_with('/') {
            url.to_owned()
        } else {
            format!("{url}/")
        };
        let timeout = download_timeout();
        let ca = ca_from_env()?;
        let a = agent(
            timeout.min(Duration::from_secs(60)),
            ca.as_deref(),
            url.starts_with("https://"),
        )?;
        let index_url = format!("{url}SHA256SUMS");
        let mut text = Vec::new();
        get(&a, &index_url, 0, INDEX_LIMIT, &mut text, &|| false).map_err(|e| e.why)?;
        let text = String::from_utf8(text).map_err(|_| format!("{index_url} is not text"))?;
        let index = parse_index(&text).map_err(|e| format!("{index_url}: {e}"))?;
        Ok(Mirror {
            cache: cache_dir(&url),
            url,
            index,
            limit: MAX_PACKAGE,
            timeout,
            ca,
        })
    }

    /// The digest the index gives `file`.
    pub fn digest(&self, file: &str) -> Option<&str> {
        self.index
            .iter()
            .find(|(_, f)| f == file)
            .map(|(d, _)| d.as_str())
    }

    /// The index's packages of `product`, as a repository in the cache directory.
    pub fn repository(&self, product: &str, runtime: &str) -> crate::package::Repository {
        let mut repo = crate::package::Repository {
            dir: self.cache.clone().unwrap_or_default(),
            ..Default::default()
        };
        let prefix = format!("{product}-");
        for (_, file) in &self.index {
            if crate::package::Archive::of(file).is_none() || !file.starts_with(&prefix) {
                continue;
            }
            match crate::package::PackageName::parse(file, product, runtime) {
                Ok(p) => repo.packages.push(p),
                Err(e) => repo.unparsed.push(e),
            }
        }
        repo.packages.sort_by(|a, b| a.file.cmp(&b.file));
        repo
    }

    /// Makes `file` (with its signature when `sig`) present in the cache, verified
    /// against the index: downloaded unless a copy with that digest is there. Returns
    /// its path.
    /// `stop` ends a download at once when it says so (SIGINT/SIGTERM).
    pub fn fetch(
        &self,
        file: &str,
        sig: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<PathBuf, FetchError> {
        let want = self
            .digest(file)
            .ok_or_else(|| {
                FetchError::Download(format!("{file} is not in {}SHA256SUMS", self.url))
            })?
            .to_owned();
        let cache = self
            .cache
            .as_ref()
            .map_err(|e| FetchError::Download(e.clone()))?;
        private_dir(cache).map_err(FetchError::Download)?;
        let dest = cache.join(file);
        let have = crate::package::sha256_file(&dest).ok();
        if have.as_deref() != Some(want.as_str()) {
            download(
                &format!("{}{file}", self.url),
                &want,
                &dest,
                self.timeout,
                self.ca.as_deref(),
                stop,
            )?;
        }
        // The store checks the digest again when it copies the package.
        crate::fsutil::write_atomic(
            &cache.join(format!("{file}.sha256")),
            format!("{want}  {file}\n").as_bytes(),
        )
        .map_err(|e| FetchError::Download(format!("cannot write the digest of {file}: {e}")))?;
        if sig {
            let sig_name = format!("{file}.minisig");
            download_small(
                &format!("{}{sig_name}", self.url),
                &cache.join(&sig_name),
                self.timeout,
                self.ca.as_deref(),
            )
            .map_err(|e| {
                FetchError::Signature(format!("{file} has no signature on the mirror: {e}"))
            })?;
        }
        Ok(dest)
    }
}

/// Downloads `url` to `dest` through `dest.part.PID`, resuming after a break where the
/// server honours ranges, retrying with backoff; refuses what does not hash to `want`
/// (at once: a whole body that hashes wrong is what the server has).
pub fn download(
    url: &str,
    want: &str,
    dest: &Path,
    timeout: Duration,
    ca: Option<&str>,
    stop: &dyn Fn() -> bool,
) -> Result<(), FetchError> {
    let name = dest
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let part = dest.with_file_name(format!("{name}.part.{}", std::process::id()));
    let a = agent(timeout, ca, url.starts_with("https://")).map_err(FetchError::Download)?;
    let mut last = String::new();
    let _ = std::fs::remove_file(&part);
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            let until = std::time::Instant::now() + Duration::from_secs(1 << (attempt - 1));
            while std::time::Instant::now() < until && !stop() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if stop() {
            let _ = std::fs::remove_file(&part);
            return Err(FetchError::Stopped(format!(
                "the download of {name} was stopped"
            )));
        }
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let mut f = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
        {
            Ok(f) => f,
            Err(e) => {
                return Err(FetchError::Download(format!(
                    "cannot write {}: {e}",
                    part.display()
                )));
            }
        };
        match get(&a, url, have, MAX_PACKAGE, &mut f, stop) {
            Ok(_) => {
                let _ = f.sync_all();
                let got = crate::package::sha256_file(&part).map_err(|e| {
                    FetchError::Download(format!("cannot read {}: {e}", part.display()))
                })?;
                if got == want {
                    return std::fs::rename(&part, dest).map_err(|e| {
                        FetchError::Download(format!("cannot keep {}: {e}", dest.display()))
                    });
                }
                let _ = std::fs::remove_file(&part);
                return Err(FetchError::Digest(format!(
                    "{name} from {url} has SHA-256 {got}, but SHA256SUMS says {want}"
                )));
            }
            Err(e) if !e.retry => {
                let _ = std::fs::remove_file(&part);
                return Err(if stop() {
                    FetchError::Stopped(e.why)
                } else {
                    FetchError::Download(e.why)
                });
            }
            Err(e) => last = e.why,
        }
    }
    let _ = std::fs::remove_file(&part);
    Err(FetchError::Download(format!(
        "{last} (tried {ATTEMPTS} times)"
    )))
}

/// Downloads a small file (a signature) to `dest`, whole.
pub fn download_small(
    url: &str,
    dest: &Path,
    timeout: Duration,
    ca: Option<&str>,
) -> Result<(), String> {
    let mut body = Vec::new();
    let a = agent(timeout, ca, url.starts_with("https://"))?;
    get(&a, url, 0, SIG_LIMIT, &mut body, &|| false).map_err(|e| e.why)?;
    crate::fsutil::write_atomic(dest, &body)
        .map_err(|e| format!("cannot write {}: {e}", dest.display()))
}

/// The SHA-256 of `bytes`, in hex.
pub fn hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_sha256sum_output_and_nothing_else() {
        let d = "a".repeat(64);
        let ok = parse_index(&format!("{d}  emqx-1.zip\n{d} *emqx-2.zip\r\n\n# c\n")).unwrap();
        assert_eq!(
            ok,
            vec![
                (d.clone(), "emqx-1.zip".into()),
                (d.clone(), "emqx-2.zip".into())
            ]
        );
        assert!(
            parse_index(&format!("{d}  ../etc/passwd\n"))
                .unwrap_err()
                .contains("no plain file name")
        );
        assert!(parse_index(&format!("{d}  sub/x.zip\n")).is_err());
        assert!(parse_index("xyz  a.zip\n").unwrap_err().contains("line 1"));
        assert!(parse_index(&format!("{d}a.zip\n")).is_err());
        assert!(is_url("http://m/") && is_url("https://m/") && !is_url("./repo"));
        assert_eq!(hex(b"").len(), 64);
    }
}
