//! One writer per store (or group) at a time.
//!
//! The lock is an OS file lock (`File::try_lock`) on `<dir>/.lock`: the kernel releases it
//! when its holder exits or dies, so a crashed run never blocks the next one. The holder
//! writes who it is into the file, so a refused writer can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::diagnostics::{Code, Problem};

/// Held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    pub path: PathBuf,
}

/// Who holds a lock, as its holder wrote it.
fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "another fleetup process".into()
    } else {
        s.to_owned()
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Takes the lock of `dir` (created if needed), waiting up to `wait` for a holder to let go.
/// `run` names the run holding it, when there is one.
pub fn acquire(dir: &Path, what: &str, run: Option<&str>, wait: Duration) -> Result<Lock, Problem> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Problem::new(Code::Io, format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(".lock");
    // Never through a link (a writer of the store could point it at any file this
    // process may write), and only a regular file.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| {
            Problem::new(
                Code::Io,
                format!("cannot open the lock {}: {e}", path.display()),
            )
            .help(
                "the lock must be a plain file fleetup created: remove a link or other file there",
            )
        })?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(Problem::new(
            Code::Io,
            format!("the lock {} is not a regular file", path.display()),
        )
        .help("remove what is there; fleetup creates the lock itself"));
    }
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(locked(what, &holder(&mut file), wait));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Problem::new(
                    Code::Io,
                    format!("cannot lock {}: {e}", path.display()),
                ));
            }
        }
    }
    let since = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    let me = format!(
        "held by pid {} on {}{} since {since}\n",
        std::process::id(),
        hostname(),
        run.map(|r| format!(", run {r}")).unwrap_or_default()
    );
    // Best effort: the lock itself is what protects the store; this only names us.
    let _ = file
        .set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(me.as_bytes()));
    Ok(Lock { _file: file, path })
}

/// `what` is locked by `who`: the problem a refused writer reports.
fn locked(what: &str, who: &str, wait: Duration) -> Problem {
    Problem::new(Code::Locked, format!("{what} is locked: {who}")).help(if wait.is_zero() {
        "wait for that run to finish, or pass --wait-for-lock DURATION to wait for it".to_owned()
    } else {
        format!(
            "still locked after waiting {}",
            crate::duration::human(wait)
        )
    })
}

/// Whether another holds the lock of `dir` now, as the problem `acquire` would report;
/// nothing is created, taken or written (a run checking before it asks, a dry run).
pub fn held(dir: &Path, what: &str) -> Option<Problem> {
    holder_of(dir).map(|who| locked(what, &who, Duration::ZERO))
}

/// Who holds the lock of `dir` right now, if anyone does (nothing is taken or changed).
pub fn holder_of(dir: &Path) -> Option<String> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(".lock"))
        .ok()?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(holder(&mut file)),
        Err(TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let first = acquire(d.path(), "the store", Some("r1"), Duration::ZERO).unwrap();
        let e = acquire(d.path(), "the store", None, Duration::ZERO).unwrap_err();
        assert_eq!(e.code, Code::Locked);
        assert!(
            e.message.contains(&format!("pid {}", std::process::id())),
            "{}",
            e.message
        );
        assert!(e.message.contains("run r1"), "{}", e.message);
        drop(first);
        acquire(d.path(), "the store", None, Duration::ZERO).unwrap();
    }

    #[test]
    fn waiting_gets_the_lock_once_it_is_released() {
        let d = tempfile::tempdir().unwrap();
        let first = acquire(d.path(), "the store", None, Duration::ZERO).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        acquire(d.path(), "the store", None, Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }
}
