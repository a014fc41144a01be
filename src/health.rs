//! Health checks (SPEC §5.5): an HTTP GET answering the expected status, a TCP connect,
//! or a command exiting 0, polled until healthy or the deadline, then held healthy for
//! `healthy_for`. A deadline passing is always a failure.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use crate::span::At;
use crate::template::Template;

#[derive(Clone, Debug)]
/// What a health check asks, as a plan or group-hooks.toml writes it (placeholders
/// still open).
pub enum Check {
    Http(At<Template>),
    Tcp(At<Template>),
    Command(Vec<At<Template>>),
}

#[derive(Clone, Debug)]
/// A health check with its timing: polled every `interval` until healthy or `timeout`
/// (`rollback_timeout` after a rollback), then held healthy for `healthy_for`.
pub struct Health {
    pub check: Check,
    pub expect_status: u16,
    pub timeout: Duration,
    pub interval: Duration,
    pub healthy_for: Duration,
    pub rollback_timeout: Duration,
    /// Exit statuses of a `command` check, or HTTP statuses of an `http` check, that mean
    /// failed for good (the process is gone): the wait ends at once (`give_up_on`).
    pub give_up_on: Vec<u16>,
}

impl Check {
    /// Every template of the check: its URL or address, or each word of its command.
    pub fn templates(&self) -> Vec<&At<Template>> {
        match self {
            Check::Http(t) | Check::Tcp(t) => vec![t],
            Check::Command(c) => c.iter().collect(),
        }
    }
}

impl Health {
    /// The timing of a check after an upgrade, or (`rollback`) after a rollback.
    pub fn timing(&self, rollback: bool) -> Timing {
        Timing {
            timeout: if rollback {
                self.rollback_timeout
            } else {
                self.timeout
            },
            interval: self.interval,
            healthy_for: self.healthy_for,
        }
    }

    /// `message` (about `probe`) with the probe's filled text replaced by the check as
    /// `show` shows it: placeholders filled, `${…}` secrets as written.
    pub fn hide(&self, probe: &Probe, message: &str, show: impl Fn(&Template) -> String) -> String {
        let shown = match &self.check {
            Check::Http(t) | Check::Tcp(t) => show(&t.value),
            Check::Command(c) => c
                .iter()
                .map(|t| show(&t.value))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let filled = match probe {
            Probe::Http { url, .. } => url.clone(),
            Probe::Tcp { addr } => addr.clone(),
            Probe::Command { argv, .. } => argv.join(" "),
        };
        if filled.is_empty() || filled == shown {
            return message.to_owned();
        }
        message.replace(&filled, &shown)
    }

    /// The probe with its placeholders filled by `fill` (the only place a check becomes
    /// a probe).
    pub fn probe(
        &self,
        fill: impl Fn(&Template) -> Result<String, String>,
    ) -> Result<Probe, String> {
        Ok(match &self.check {
            Check::Http(t) => Probe::Http {
                url: fill(&t.value)?,
                expect: self.expect_status,
                give_up: self.give_up_on.clone(),
            },
            Check::Tcp(t) => Probe::Tcp {
                addr: fill(&t.value)?,
            },
            Check::Command(c) => Probe::Command {
                argv: c.iter().map(|t| fill(&t.value)).collect::<Result<_, _>>()?,
                give_up: self.give_up_on.clone(),
            },
        })
    }
}

/// A check with its placeholders already filled.
#[derive(Clone, Debug)]
pub enum Probe {
    Http {
        url: String,
        expect: u16,
        give_up: Vec<u16>,
    },
    Tcp {
        addr: String,
    },
    Command {
        argv: Vec<String>,
        give_up: Vec<u16>,
    },
}

/// A probe that did not find the target healthy: `for_good` when its answer means the
/// target will not become healthy (a status the plan's `give_up_on` lists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Miss {
    pub why: String,
    pub for_good: bool,
}

impl Miss {
    /// A failed probe worth asking again.
    pub fn again(why: impl Into<String>) -> Miss {
        Miss {
            why: why.into(),
            for_good: false,
        }
    }
}

impl From<&str> for Miss {
    fn from(why: &str) -> Miss {
        Miss::again(why)
    }
}

impl From<String> for Miss {
    fn from(why: String) -> Miss {
        Miss::again(why)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub timeout: Duration,
    pub interval: Duration,
    pub healthy_for: Duration,
}

/// How a health check in progress stands, after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Watch<'a> {
    /// The last probe failed, saying `why`; `left` until the deadline.
    Failing { why: &'a str, left: Duration },
    /// Healthy: `left` of `healthy_for` still to hold.
    Holding { left: Duration },
}

impl std::fmt::Display for Watch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watch::Failing { why, left } => {
                write!(f, "last probe: {why} ({:.0}s left)", left.as_secs_f64())
            }
            Watch::Holding { left } => {
                write!(f, "healthy, holding: {:.0}s to go", left.as_secs_f64())
            }
        }
    }
}

/// A `command` check run here, bounded by `limit`: failed for good when it exits with a
/// status `give_up` lists.
pub fn command_check(argv: &[String], limit: Duration, give_up: &[u16]) -> Result<(), Miss> {
    crate::hook::run(argv, &[], limit).map_err(|e| Miss {
        for_good: matches!(&e, crate::hook::HookError::Failed { code: Some(c), .. }
            if u16::try_from(*c).is_ok_and(|c| give_up.contains(&c))),
        why: format!("`{}`: {e}", argv.join(" ")),
    })
}

impl Probe {
    /// One attempt, bounded by `limit`.
    pub fn once(&self, limit: Duration) -> Result<(), Miss> {
        let limit = limit.max(Duration::from_millis(50));
        match self {
            Probe::Http {
                url,
                expect,
                give_up,
            } => {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(limit))
                    .http_status_as_error(false)
                    .build()
                    .into();
                match agent.get(url).call() {
                    Ok(r) if r.status().as_u16() == *expect => Ok(()),
                    Ok(r) => Err(Miss {
                        why: format!(
                            "GET {url} answered {}, expected {expect}",
                            r.status().as_u16()
                        ),
                        for_good: give_up.contains(&r.status().as_u16()),
                    }),
                    Err(e) => Err(Miss::again(format!("GET {url} failed: {e}"))),
                }
            }
            Probe::Tcp { addr } => {
                let addrs: Vec<_> = addr
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve {addr}: {e}"))?
                    .collect();
                let mut last = format!("{addr} has no address");
                for a in addrs {
                    match std::net::TcpStream::connect_timeout(&a, limit) {
                        Ok(_) => return Ok(()),
                        Err(e) => last = format!("connecting to {addr} failed: {e}"),
                    }
                }
                Err(Miss::again(last))
            }
            Probe::Command { argv, give_up } => command_check(argv, limit, give_up),
        }
    }

    /// Polls until healthy and then healthy for `healthy_for` in a row, or the deadline.
    pub fn wait(&self, t: Timing) -> Result<Duration, String> {
        self.wait_with(t, |p, limit| p.once(limit))
    }

    /// [`Probe::wait`] with each attempt made by `once` (a remote node runs a command
    /// check on its host).
    pub fn wait_with(
        &self,
        t: Timing,
        once: impl FnMut(&Probe, Duration) -> Result<(), Miss>,
    ) -> Result<Duration, String> {
        self.wait_watched(t, once, &mut |_| {})
    }

    /// [`Probe::wait_with`], telling `watch` after each attempt how the check stands: the
    /// last probe's failure and the time left, or how long the hold of `healthy_for` has
    /// still to go.
    pub fn wait_watched(
        &self,
        t: Timing,
        mut once: impl FnMut(&Probe, Duration) -> Result<(), Miss>,
        watch: &mut dyn FnMut(Watch),
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let deadline = start + t.timeout;
        let mut healthy_since: Option<Instant> = None;
        let mut last_error = String::from("no check finished before the deadline");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(match healthy_since {
                    Some(_) => format!(
                        "healthy, but not for {} in a row before the {} deadline",
                        crate::duration::human(t.healthy_for),
                        crate::duration::human(t.timeout)
                    ),
                    None => format!(
                        "not healthy within {}: {last_error}",
                        crate::duration::human(t.timeout)
                    ),
                });
            }
            match once(self, deadline - now) {
                Ok(()) => {
                    let since = *healthy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= t.healthy_for {
                        return Ok(start.elapsed());
                    }
                    watch(Watch::Holding {
                        left: t.healthy_for.saturating_sub(since.elapsed()),
                    });
                }
                Err(m) if m.for_good => {
                    return Err(format!(
                        "gave up after {} of {}: {}, which `give_up_on` says means failed for good",
                        crate::duration::human(start.elapsed()),
                        crate::duration::human(t.timeout),
                        m.why
                    ));
                }
                Err(m) => {
                    // A relapse while holding healthy starts the hold again.
                    healthy_since = None;
                    watch(Watch::Failing {
                        why: &m.why,
                        left: deadline.saturating_duration_since(Instant::now()),
                    });
                    last_error = m.why;
                }
            }
            let pause = t
                .interval
                .min(deadline.saturating_duration_since(Instant::now()));
            std::thread::sleep(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn timing(ms: u64) -> Timing {
        Timing {
            timeout: Duration::from_millis(ms),
            interval: Duration::from_millis(20),
            healthy_for: Duration::ZERO,
        }
    }

    /// A tiny HTTP server on loopback answering `status` to every request, `n` times.
    fn serve(status: u16, n: usize) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(n) {
                let mut s = s.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        port
    }

    /// What a failed check says shows the check as written where a secret was filled
    /// in, and is left alone where nothing secret was.
    #[test]
    fn a_message_shows_the_check_as_written_never_the_filled_secret() {
        let at = |t: &str| At {
            value: Template::parse(t).unwrap(),
            span: crate::span::Span::default(),
        };
        let h = |check| Health {
            check,
            expect_status: 200,
            timeout: Duration::from_secs(1),
            interval: Duration::from_millis(10),
            healthy_for: Duration::ZERO,
            rollback_timeout: Duration::from_secs(1),
            give_up_on: Vec::new(),
        };
        let http = h(Check::Http(at("http://{host}/s?t=${TOKEN}")));
        let probe = Probe::Http {
            url: "http://h1/s?t=hunter2".into(),
            expect: 200,
            give_up: Vec::new(),
        };
        let shown = |t: &Template| t.shown(|k| (k == "host").then(|| "h1".to_owned()));
        let said = http.hide(&probe, "GET http://h1/s?t=hunter2: refused", shown);
        assert_eq!(said, "GET http://h1/s?t=${TOKEN}: refused");
        // Nothing secret: the message as it was.
        let plain = h(Check::Command(vec![at("check"), at("{host}")]));
        let probe = Probe::Command {
            argv: vec!["check".into(), "h1".into()],
            give_up: Vec::new(),
        };
        let shown = |t: &Template| t.shown(|k| (k == "host").then(|| "h1".to_owned()));
        assert_eq!(
            plain.hide(&probe, "`check h1`: exit 1", shown),
            "`check h1`: exit 1"
        );
        // A check filled to nothing (an empty secret): the message as it was, not the
        // check's words between each of its letters.
        let empty = h(Check::Tcp(at("${EMPTY_ADDR}")));
        let probe = Probe::Tcp {
            addr: String::new(),
        };
        let none = |t: &Template| t.shown(|_| None);
        assert_eq!(empty.hide(&probe, "no answer", none), "no answer");
    }

    /// A status `give_up_on` lists ends the wait at once, saying so; any other failure
    /// is asked again until the deadline.
    #[test]
    fn a_status_meaning_failed_for_good_ends_the_wait_at_once() {
        let t = Timing {
            timeout: Duration::from_secs(30),
            interval: Duration::from_millis(20),
            healthy_for: Duration::ZERO,
        };
        let dead = Probe::Command {
            argv: vec!["sh".into(), "-c".into(), "exit 3".into()],
            give_up: vec![3],
        };
        let e = dead.wait(t).unwrap_err();
        assert!(e.starts_with("gave up after "), "{e}");
        assert!(
            e.ends_with("of 30s: `sh -c exit 3`: it exited with status 3, which `give_up_on` says means failed for good"),
            "{e}"
        );
        // Another status is asked again, until the deadline.
        let other = Probe::Command {
            argv: vec!["sh".into(), "-c".into(), "exit 1".into()],
            give_up: vec![3],
        };
        let e = other.wait(timing(200)).unwrap_err();
        assert!(e.starts_with("not healthy within 200ms"), "{e}");
        // An HTTP status the list names.
        let port = serve(410, 1);
        let gone = Probe::Http {
            url: format!("http://127.0.0.1:{port}/status"),
            expect: 200,
            give_up: vec![410],
        };
        let e = gone.wait(t).unwrap_err();
        assert!(
            e.contains("answered 410, expected 200, which `give_up_on`"),
            "{e}"
        );
    }

    #[test]
    fn http_expects_the_status() {
        let port = serve(200, 1);
        let p = Probe::Http {
            url: format!("http://127.0.0.1:{port}/status"),
            expect: 200,
            give_up: Vec::new(),
        };
        p.wait(timing(2000)).unwrap();
        let port = serve(503, 100);
        let p = Probe::Http {
            url: format!("http://127.0.0.1:{port}/status"),
            expect: 200,
            give_up: Vec::new(),
        };
        let e = p.wait(timing(300)).unwrap_err();
        assert!(e.contains("answered 503"), "{e}");
    }

    #[test]
    fn tcp_and_command() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        Probe::Tcp { addr: addr.clone() }
            .wait(timing(1000))
            .unwrap();
        drop(l);
        // A child another test forks in the instant before its exec shares the socket
        // for that instant: wait until nothing listens there any more.
        let closed = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(&addr).is_err()
        });
        assert!(closed, "something still listens on {addr}");
        assert!(Probe::Tcp { addr }.wait(timing(200)).is_err());
        Probe::Command {
            argv: vec!["true".into()],
            give_up: Vec::new(),
        }
        .wait(timing(1000))
        .unwrap();
        assert!(
            Probe::Command {
                argv: vec!["false".into()],
                give_up: Vec::new(),
            }
            .wait(timing(200))
            .is_err()
        );
    }

    #[test]
    fn a_check_that_hangs_is_a_failure_at_the_deadline() {
        let p = Probe::Command {
            argv: vec!["sleep".into(), "30".into()],
            give_up: Vec::new(),
        };
        let start = Instant::now();
        assert!(p.wait(timing(300)).is_err());
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn healthy_for_needs_an_unbroken_run() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("up");
        std::fs::write(&flag, "").unwrap();
        let p = Probe::Command {
            argv: vec!["test".into(), "-e".into(), flag.display().to_string()],
            give_up: Vec::new(),
        };
        let t = Timing {
            timeout: Duration::from_secs(5),
            interval: Duration::from_millis(20),
            healthy_for: Duration::from_millis(200),
        };
        assert!(p.wait(t).unwrap() >= Duration::from_millis(200));
        std::fs::remove_file(&flag).unwrap();
        let t = Timing {
            timeout: Duration::from_millis(300),
            ..t
        };
        assert!(p.wait(t).is_err());
    }

    /// Issue 29: a check that goes ok → error → ok restarts the hold: success comes no
    /// sooner than `healthy_for` after the failing probe (a lower bound, which a loaded
    /// machine only lengthens).
    #[test]
    fn an_error_during_the_hold_restarts_it() {
        let p = Probe::Http {
            url: "http://127.0.0.1:9/status".into(),
            expect: 200,
            give_up: Vec::new(),
        };
        let t = Timing {
            timeout: Duration::from_secs(10),
            interval: Duration::from_millis(10),
            healthy_for: Duration::from_secs(2),
        };
        let mut n = 0;
        let mut failed_at = None;
        let r = p.wait_watched(
            t,
            |_, _| {
                n += 1;
                // Healthy for a moment (well inside the hold), then one failure.
                if n == 5 {
                    failed_at = Some(Instant::now());
                    Err("500 Internal Server Error".into())
                } else {
                    Ok(())
                }
            },
            &mut |_| {},
        );
        assert!(r.is_ok(), "{r:?}");
        let since_failure = failed_at.expect("the failing probe ran").elapsed();
        assert!(since_failure >= t.healthy_for, "{since_failure:?}");
    }

    #[test]
    fn a_watch_hears_each_failing_probe_and_then_the_hold_counting_down() {
        let p = Probe::Http {
            url: "http://127.0.0.1:9/status".into(),
            expect: 200,
            give_up: Vec::new(),
        };
        let mut n = 0;
        let mut heard: Vec<String> = Vec::new();
        let t = Timing {
            timeout: Duration::from_secs(5),
            interval: Duration::from_millis(10),
            healthy_for: Duration::from_millis(60),
        };
        // Two failures, then healthy until the hold is over.
        let r = p.wait_watched(
            t,
            |_, _| {
                n += 1;
                if n <= 2 {
                    Err("404 Not Found".into())
                } else {
                    Ok(())
                }
            },
            &mut |w| heard.push(w.to_string()),
        );
        assert!(r.is_ok(), "{r:?}");
        assert!(
            heard[0].starts_with("last probe: 404 Not Found ("),
            "{heard:?}"
        );
        assert!(heard[0].ends_with("s left)"), "{heard:?}");
        assert!(heard[2].starts_with("healthy, holding: "), "{heard:?}");
        assert!(heard.len() >= 3, "{heard:?}");
    }
}
