//! Running a hook: an argv (never a shell string) with extra environment, a deadline,
//! and its output kept for the error message.
//!
//! The hook runs in its own process group so a timeout can stop everything it started.
//! Its output goes to an anonymous temporary file rather than a pipe: a hook that leaves
//! a daemon behind (a restart hook usually does) must not keep us waiting on a pipe the
//! daemon inherited.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Where hooks run: during a run, the plan's directory.
static DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Runs every hook started from now on in `dir`, with a relative program (`./note.sh`)
/// taken from there: a plan's relative paths are relative to the plan file, its hooks'
/// as much as its stores', whichever directory a run is started or resumed from. Set
/// once a plan is loaded for a run, a dry run or `status`; a command without a plan
/// (`fleetup node …`) keeps the current directory.
pub fn run_in(dir: &Path) {
    let mut held = DIR.write().unwrap_or_else(|e| e.into_inner());
    *held = Some(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
}

#[derive(Debug)]
pub enum HookError {
    Spawn(String, std::io::Error),
    /// It ended unsuccessfully: with exit status `code`, or (`None`) by a signal.
    Failed {
        code: Option<i32>,
        output: String,
    },
    TimedOut {
        after: Duration,
        output: String,
    },
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = |o: &str| {
            if o.trim().is_empty() {
                String::new()
            } else {
                format!("; its output ended with:\n{}", o.trim_end())
            }
        };
        match self {
            HookError::Spawn(prog, e) => write!(f, "cannot start `{prog}`: {e}"),
            HookError::Failed { code, output } => match code {
                Some(c) => write!(f, "it exited with status {c}{}", tail(output)),
                None => write!(f, "it was killed by a signal{}", tail(output)),
            },
            HookError::TimedOut { after, output } => {
                write!(
                    f,
                    "it did not finish within {} and was stopped{}",
                    crate::duration::human(*after),
                    tail(output)
                )
            }
        }
    }
}

/// Removes the tracking file when the hook is done, however it ended.
struct Untrack<'a>(&'a Path);

impl Drop for Untrack<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// How much of a hook's output an error message quotes.
const OUTPUT_TAIL: u64 = 2048;

pub fn run(argv: &[String], env: &[(&str, String)], timeout: Duration) -> Result<(), HookError> {
    run_tracked(argv, env, timeout, None)
}

/// [`run`], returning what the command printed (stdout and stderr as they came, its
/// last 2 KiB): for a command whose answer is its output (a version).
pub fn output(
    argv: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<String, HookError> {
    run_inner(argv, env, timeout, None)
}

/// The start time of a process (clock ticks since boot, /proc/PID/stat field 22): with
/// the pid, it names one process even after the pid is reused.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether a process of group `pgid` runs (a zombie waiting to be reaped does not).
fn group_runs(pgid: u32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|e| {
        let is_pid = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        is_pid
            && std::fs::read_to_string(e.path().join("stat")).is_ok_and(|stat| {
                // After the command's closing parenthesis: state, ppid, pgrp, …
                let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
                let state = fields.next();
                let pgrp = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
                state != Some("Z") && pgrp == Some(pgid)
            })
    })
}

/// Stops a hook that `track` says is running, with its whole process group: a hook a
/// killed fleetup left behind must not run on beside the repair. Returns its pid.
pub fn stop_tracked(track: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(track).ok()?;
    let _ = std::fs::remove_file(track);
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    let (Some(Some(pid)), Some(Some(started))) = (it.next(), it.next()) else {
        return None;
    };
    let pid = u32::try_from(pid).ok()?;
    // Only the very process that was recorded, never a later one with its pid.
    let alive = || start_time(pid) == Some(started);
    if !alive() {
        return None;
    }
    // SAFETY: kill(2) of the recorded process group; no memory is involved.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGTERM);
    }
    // The grace lasts while anything of the group runs: the hook's shell often ends at
    // SIGTERM at once while a child it started is still cleaning up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_runs(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
    Some(pid)
}

/// [`run`], with the hook's pid and start time written to `track` while it runs (and
/// the file removed when it ends), so [`stop_tracked`] can find it after a kill.
pub fn run_tracked(
    argv: &[String],
    env: &[(&str, String)],
    timeout: Duration,
    track: Option<&Path>,
) -> Result<(), HookError> {
    run_inner(argv, env, timeout, track).map(|_| ())
}

fn run_inner(
    argv: &[String],
    env: &[(&str, String)],
    timeout: Duration,
    track: Option<&Path>,
) -> Result<String, HookError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(HookError::Spawn(
            String::new(),
            std::io::Error::other("empty command"),
        ));
    };
    let mut log = tempfile::tempfile().map_err(|e| HookError::Spawn(prog.clone(), e))?;
    let out = log
        .try_clone()
        .map_err(|e| HookError::Spawn(prog.clone(), e))?;
    let err = log
        .try_clone()
        .map_err(|e| HookError::Spawn(prog.clone(), e))?;
    let dir = DIR.read().unwrap_or_else(|e| e.into_inner()).clone();
    // A relative program with a slash in it is the plan's; a bare name is looked up in
    // PATH as always.
    let mut command = match &dir {
        Some(d) if prog.contains('/') && Path::new(prog).is_relative() => {
            Command::new(d.join(prog))
        }
        _ => Command::new(prog),
    };
    if let Some(d) = &dir {
        command.current_dir(d);
    }
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // The hook dies with the fleetup that started it (if that one is killed): it never
    // runs on without the lock its step holds. Its own children (a server it starts) are
    // not affected.
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory.
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| HookError::Spawn(prog.clone(), e))?;
    let _tracked = track.map(|path| {
        let started = start_time(child.id()).unwrap_or(0);
        let _ = std::fs::write(path, format!("{} {started}\n", child.id()));
        Untrack(path)
    });
    let deadline = Instant::now() + timeout;
    // Polled, capped at 10 ms: a health check that finishes is noticed within 10 ms, and
    // a wave waits for its slowest member, so late noticing adds up.
    let mut pause = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => return Err(HookError::Spawn(prog.clone(), e)),
        }
    };
    let output = {
        let len = log.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = log.seek(SeekFrom::Start(len.saturating_sub(OUTPUT_TAIL)));
        let mut s = String::new();
        let _ = log.read_to_string(&mut s);
        s
    };
    match status {
        Some(s) if s.success() => Ok(output),
        Some(s) => Err(HookError::Failed {
            code: s.code(),
            output,
        }),
        None => {
            // SAFETY: kill(2) with a negative pid signals the hook's own process group,
            // which it leads (process_group(0)); no memory is involved.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            Err(HookError::TimedOut {
                after: timeout,
                output,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    /// A cut-off hook's deadline is said as a person writes one, never as 0.430152582s.
    #[test]
    fn a_timeout_is_said_as_a_person_writes_a_duration() {
        let e = HookError::TimedOut {
            after: Duration::from_nanos(430_152_582),
            output: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "it did not finish within 430ms and was stopped"
        );
        let e = HookError::TimedOut {
            after: Duration::from_secs(90),
            output: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "it did not finish within 1m30s and was stopped"
        );
    }

    #[test]
    fn success_failure_and_environment() {
        run(
            &sh("test \"$X\" = 'a b'"),
            &[("X", "a b".into())],
            Duration::from_secs(5),
        )
        .unwrap();
        let e = run(&sh("echo boom >&2; exit 3"), &[], Duration::from_secs(5)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("status 3") && msg.contains("boom"), "{msg}");
        assert!(matches!(
            run(&["/no/such/prog".into()], &[], Duration::from_secs(1)),
            Err(HookError::Spawn(..))
        ));
    }

    #[test]
    fn a_timeout_is_a_failure_and_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let t = Instant::now();
        let e = run(&sh(&script), &[], Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, HookError::TimedOut { .. }));
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            !marker.exists(),
            "the hook's background child survived the timeout"
        );
    }

    /// A tracked hook is recorded (pid and start time) while it runs and forgotten when
    /// it ends; `stop_tracked` stops the recorded process and only that one.
    #[test]
    fn a_tracked_hook_is_recorded_while_it_runs_and_stopped_only_if_it_is_that_process() {
        let dir = tempfile::tempdir().unwrap();
        let track = dir.path().join("hook.pid");
        let t2 = track.clone();
        let runner = std::thread::spawn(move || {
            run_tracked(&sh("sleep 30"), &[], Duration::from_secs(60), Some(&t2))
        });
        let mut recorded = String::new();
        for _ in 0..500 {
            recorded = std::fs::read_to_string(&track).unwrap_or_default();
            if !recorded.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut words = recorded.split_whitespace();
        let pid: u32 = words.next().unwrap().parse().unwrap();
        let started: u64 = words.next().unwrap().parse().unwrap();
        // The start time is the process's own, as /proc says it (field 22).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let field22: u64 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(started, field22);
        assert!(started > 1, "{recorded}");
        // Another start time with the same pid is another process: left alone.
        std::fs::write(&track, format!("{pid} {}\n", started + 1)).unwrap();
        assert_eq!(stop_tracked(&track), None);
        assert!(
            start_time(pid).is_some(),
            "a process not recorded was stopped"
        );
        // The recorded one is stopped; the hook fails, and its record is gone.
        std::fs::write(&track, recorded.as_bytes()).unwrap();
        assert_eq!(stop_tracked(&track), Some(pid));
        assert!(runner.join().unwrap().is_err());
        assert!(!track.exists());
        // A hook that ends by itself removes its record.
        run_tracked(&sh("true"), &[], Duration::from_secs(5), Some(&track)).unwrap();
        assert!(!track.exists());
    }

    /// A stopped hook's whole process group is asked to end first (SIGTERM), so a
    /// child the hook started can clean up, before anything left is killed.
    #[test]
    fn stopping_a_tracked_hook_asks_its_whole_group_to_end_first() {
        let dir = tempfile::tempdir().unwrap();
        let track = dir.path().join("hook.pid");
        let termed = dir.path().join("child-termed");
        // The hook's child traps SIGTERM (and says so); the hook itself only waits.
        let ready = dir.path().join("child-ready");
        let script = format!(
            "(trap 'touch {}; exit 0' TERM; touch {}; sleep 30 & wait) & wait",
            termed.display(),
            ready.display()
        );
        let t2 = track.clone();
        let runner = std::thread::spawn(move || {
            run_tracked(&sh(&script), &[], Duration::from_secs(60), Some(&t2))
        });
        let mut pid = None;
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(&track)
                && !text.is_empty()
            {
                pid = text.split_whitespace().next().map(str::to_owned);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(pid.is_some(), "the hook was never recorded");
        for _ in 0..1000 {
            if ready.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(ready.exists(), "the hook's child never set its trap");
        assert!(stop_tracked(&track).is_some());
        assert!(runner.join().unwrap().is_err());
        assert!(termed.exists(), "the hook's child was not asked to end");
    }

    /// A group runs while a live process is in it, and not once its last one has ended
    /// and been reaped; other groups' processes do not count.
    #[test]
    fn a_group_runs_while_a_process_of_it_lives() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        assert!(group_runs(pgid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!group_runs(pgid), "a group with no process left still runs");
    }

    /// The grace after SIGTERM lasts while anything of the hook's group runs, not only
    /// the hook itself: a hook's shell ends at once, its child's cleanup takes a while,
    /// and is not cut short by the SIGKILL meant for what ignores the request.
    #[test]
    fn a_child_cleaning_up_after_the_hook_ended_gets_its_grace() {
        let dir = tempfile::tempdir().unwrap();
        let track = dir.path().join("hook.pid");
        let cleaned = dir.path().join("child-cleaned");
        let ready = dir.path().join("child-ready");
        // The hook (sh) takes SIGTERM's default and ends; its child needs a moment.
        let script = format!(
            "(trap 'sleep 0.5; touch {}; exit 0' TERM; touch {}; sleep 30 & wait) & wait",
            cleaned.display(),
            ready.display()
        );
        let t2 = track.clone();
        let runner = std::thread::spawn(move || {
            run_tracked(&sh(&script), &[], Duration::from_secs(60), Some(&t2))
        });
        for _ in 0..1000 {
            if ready.exists() && track.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(ready.exists(), "the hook's child never set its trap");
        assert!(stop_tracked(&track).is_some());
        assert!(runner.join().unwrap().is_err());
        assert!(
            cleaned.exists(),
            "the hook's child was killed before it had cleaned up"
        );
    }

    /// What ignores the request to end is killed, the hook's whole group with it.
    #[test]
    fn a_child_that_ignores_the_request_to_end_is_killed_too() {
        let dir = tempfile::tempdir().unwrap();
        let track = dir.path().join("hook.pid");
        let child = dir.path().join("child.pid");
        let script = format!(
            "sh -c 'trap \"\" TERM; echo $$ > {}; sleep 30' & wait",
            child.display()
        );
        let t2 = track.clone();
        let runner = std::thread::spawn(move || {
            run_tracked(&sh(&script), &[], Duration::from_secs(60), Some(&t2))
        });
        let mut pid: Option<u32> = None;
        for _ in 0..1000 {
            pid = std::fs::read_to_string(&child)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            if pid.is_some() && track.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = pid.expect("the hook's child never started");
        assert!(stop_tracked(&track).is_some());
        assert!(runner.join().unwrap().is_err());
        // Gone, or a zombie waiting to be reaped: not running.
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .map(|r| r.trim_start().starts_with('Z'))
                })
                .is_some_and(|zombie| !zombie)
        };
        let mut waited = 0;
        while running() && waited < 200 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        assert!(!running(), "the child that ignored SIGTERM still runs");
    }

    #[test]
    fn output_is_what_the_command_printed_and_a_failure_keeps_it() {
        let said = output(
            &sh("echo 1.4.2; echo warn >&2"),
            &[],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(said, "1.4.2\nwarn\n");
        let e = output(&sh("echo half; exit 2"), &[], Duration::from_secs(5)).unwrap_err();
        assert!(
            e.to_string().contains("status 2") && e.to_string().contains("half"),
            "{e}"
        );
    }

    #[test]
    fn a_daemon_left_behind_does_not_block() {
        let t = Instant::now();
        run(&sh("sleep 5 & echo started"), &[], Duration::from_secs(3)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
