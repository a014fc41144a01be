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
