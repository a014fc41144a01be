//! SIGINT and SIGTERM during a run: the first asks the run to stop (no new target starts,
//! targets in progress finish the step they are in, the journal gets its end line and
//! `fleetup resume` continues); a second one ends fleetup at once, as a kill would, which
//! the stores and the journal are built to survive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process; commands that run targets call it).
pub fn install() {
    let flag = STOP.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Order matters: the shutdown is armed first, so it sees the flag as it was before
        // this signal set it.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(flag));
    }
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    STOP.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Asks the run to stop between steps, as a first SIGINT would (its output was closed).
pub fn request() {
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .store(true, Ordering::SeqCst);
}

/// While a run writes its events, SIGPIPE is ignored: a reader that went away is a
/// write error the run turns into a stop between steps, never a signal that ends
/// fleetup in the middle of one (a drained node left drained). Dropped, SIGPIPE ends
/// fleetup quietly again, as `fleetup history | head` expects.
pub struct OutputGuard(());

pub fn guard_output() -> OutputGuard {
    // SAFETY: SIG_IGN is a valid disposition; changing it is process-wide and safe at
    // any time (no handler runs).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    OutputGuard(())
}

impl Drop for OutputGuard {
    fn drop(&mut self) {
        // An output already closed stays ignored: what is left in its buffer is dropped
        // at exit instead of ending fleetup by SIGPIPE before it returns its exit code.
        if CLOSED.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: as above, SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

/// Whether a write of the run's output failed: its reader is gone.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` and a line break to stdout (or stderr), flushed; a write that fails
/// (the reader is gone) asks the run to stop.
pub fn say_line(text: &str, to_stderr: bool) {
    use std::io::Write;
    let ok = if to_stderr {
        let mut e = std::io::stderr().lock();
        writeln!(e, "{text}").and_then(|()| e.flush())
    } else {
        let mut o = std::io::stdout().lock();
        writeln!(o, "{text}").and_then(|()| o.flush())
    };
    if ok.is_err() {
        CLOSED.store(true, Ordering::SeqCst);
        request();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SIGPIPE's disposition now (read, not changed).
    fn sigpipe() -> libc::sighandler_t {
        // SAFETY: sigaction with a null new action only reads the current one into `old`.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old);
            old.sa_sigaction
        }
    }

    /// The guard ignores SIGPIPE while a run writes, and lets it end fleetup quietly
    /// again once dropped (as `fleetup history | head` expects).
    #[test]
    fn the_output_guard_ignores_sigpipe_only_while_it_lives() {
        let guard = guard_output();
        assert_eq!(sigpipe(), libc::SIG_IGN);
        drop(guard);
        assert_eq!(sigpipe(), libc::SIG_DFL);
        // The test harness runs with SIGPIPE ignored: put that back.
        // SAFETY: SIG_IGN is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
}
