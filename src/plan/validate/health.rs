//! `health` (one check: http, tcp or command, with its timing) and `hooks`, of the plan
//! and of each group.

use super::*;

/// The timing keys of a health block, and what they default to.
#[derive(Clone, Debug)]
pub(super) struct HealthTiming {
    expect_status: u16,
    timeout: Duration,
    interval: Duration,
    healthy_for: Duration,
    rollback_timeout: Option<Duration>,
}

impl Default for HealthTiming {
    fn default() -> Self {
        HealthTiming {
            expect_status: 200,
            timeout: Duration::from_secs(60),
            interval: Duration::from_secs(1),
            healthy_for: Duration::ZERO,
            rollback_timeout: None,
        }
    }
}

impl Validator {
    /// The timing a health block sets, each key defaulting to `base`'s.
    pub(super) fn health_timing(&mut self, n: Option<&Item>, base: &HealthTiming) -> HealthTiming {
        let Some(n) = n else { return base.clone() };
        HealthTiming {
            expect_status: int(get(n, "expect_status"))
                .and_then(|i| u16::try_from(i).ok())
                .unwrap_or(base.expect_status),
            timeout: duration(get(n, "timeout"), base.timeout),
            interval: duration(get(n, "interval"), base.interval),
            healthy_for: duration(get(n, "healthy_for"), base.healthy_for),
            rollback_timeout: get(n, "rollback_timeout")
                .map(|_| duration(get(n, "rollback_timeout"), base.timeout))
                .or(base.rollback_timeout),
        }
    }

    /// A health block: one check (http, tcp or command) with its timing, whose keys
    /// default to `inherited`'s. With `needs_check` false, a block of timing only is no
    /// check and no error (plan-level defaults for the groups' own checks).
    pub(super) fn health(
        &mut self,
        n: Option<&Item>,
        what: &str,
        inherited: &HealthTiming,
        needs_check: bool,
    ) -> Option<Health> {
        let n = n?;
        // Not a table: its type problem is reported already, and nothing in it to check.
        if !matches!(n.kind, Kind::Map(_)) {
            return None;
        }
        let tpl = |key| {
            let a = at_str(get(n, key))?;
            Template::parse(&a.value).ok().map(|value| At {
                value,
                span: a.span,
            })
        };
        let kinds: Vec<&str> = ["http", "tcp", "command"]
            .into_iter()
            .filter(|k| get(n, k).is_some())
            .collect();
        if kinds.is_empty() && !needs_check {
            return None;
        }
        if kinds.len() != 1 {
            let msg = if kinds.is_empty() {
                format!("{what} names no check: give one of http, tcp or command")
            } else {
                format!(
                    "{what} gives {}: give exactly one check",
                    kinds.join(" and ")
                )
            };
            self.push(
                Problem::new(Code::BadValue, msg)
                    .at(Span::new(n.span.start, 0))
                    .label("here")
                    .help(if kinds.is_empty() {
                        "add one check: `http: \"http://{host}:18083/status\"`, `tcp: \"{host}:1883\"` or `command: [...]`"
                    } else {
                        "keep one of them: a target is healthy by one check"
                    }),
            );
            return None;
        }
        let check = match kinds[0] {
            "http" => Check::Http(tpl("http")?),
            "tcp" => Check::Tcp(tpl("tcp")?),
            _ => Check::Command(Self::templates(get(n, "command"))?),
        };
        if let Check::Http(t) = &check {
            let raw = t.value.raw();
            if !(raw.starts_with("http://") || raw.starts_with("https://")) {
                self.push(
                    Problem::new(
                        Code::BadValue,
                        format!("the health URL `{raw}` must start with http:// or https://"),
                    )
                    .at(t.span)
                    .label("not an http URL")
                    .help("write the full URL, e.g. \"http://{host}:18083/status\"; for another protocol use `tcp` or `command`"),
                );
            }
        }
        let t = self.health_timing(Some(n), inherited);
        let (timeout, interval) = (t.timeout, t.interval);
        if interval.is_zero()
            && let Some(i) = get(n, "interval")
        {
            self.push(
                Problem::new(
                    Code::BadDuration,
                    "the health `interval` must be above zero",
                )
                .at(i.span)
                .label("zero")
                .help("give the time between two probes, above zero: e.g. 1s or 500ms"),
            );
        }
        // A hold that does not fit in its deadline can never pass: every upgrade (or every
        // rollback) would fail its check.
        let rollback_timeout = t.rollback_timeout.unwrap_or(timeout);
        for (deadline, key) in [(timeout, "timeout"), (rollback_timeout, "rollback_timeout")] {
            if !t.healthy_for.is_zero() && t.healthy_for >= deadline {
                let at = get(n, "healthy_for").or(get(n, key)).map(|x| x.span);
                let mut p = Problem::new(
                    Code::BadDuration,
                    format!(
                        "`healthy_for` ({}) does not fit in `{key}` ({}): no check could pass",
                        crate::duration::human(t.healthy_for),
                        crate::duration::human(deadline)
                    ),
                )
                .label("longer than its deadline")
                .help(format!(
                    "make `{key}` longer than `healthy_for`, or hold for less"
                ));
                if let Some(s) = at {
                    p = p.at(s);
                }
                self.push(p);
                break;
            }
        }
        let give_up_on = self.give_up_on(get(n, "give_up_on"), &check, t.expect_status);
        Some(Health {
            check,
            expect_status: t.expect_status,
            timeout,
            interval,
            healthy_for: t.healthy_for,
            rollback_timeout,
            give_up_on,
        })
    }

    /// `give_up_on` of a check: exit statuses of a command (1-255), HTTP statuses of an
    /// http check other than the one that means healthy; a tcp check has no status.
    fn give_up_on(&mut self, n: Option<&Item>, check: &Check, expect: u16) -> Vec<u16> {
        let Some(n) = n else { return Vec::new() };
        let mut out = Vec::new();
        for item in list(Some(n)) {
            // Its type (a whole number from 1 to 599) is checked with the plan's shape.
            let Some(v) = int(Some(item)).and_then(|i| u16::try_from(i).ok()) else {
                continue;
            };
            let refused = match check {
                Check::Tcp(_) => Some((
                    "a tcp check has no status to give up on".to_owned(),
                    "leave `give_up_on` out, or use a command check that exits with a status of its own",
                )),
                Check::Command(_) if v > 255 => Some((
                    format!("{v} is no exit status (they go from 1 to 255)"),
                    "list the exit statuses the check's command uses for \"failed for good\"",
                )),
                Check::Http(_) if !(100..=599).contains(&v) || v == expect => Some((
                    format!("{v} is not an HTTP status that means failed for good"),
                    "list HTTP statuses other than `expect_status`, e.g. [410] for a service that is gone",
                )),
                _ => None,
            };
            match refused {
                Some((msg, help)) => self.push(
                    Problem::new(Code::BadValue, format!("`give_up_on`: {msg}"))
                        .at(item.span)
                        .label("not a status of this check")
                        .help(help),
                ),
                None => out.push(v),
            }
        }
        out
    }

    /// A `hooks` table: its command under `key` (`activate`, `deploy`), the lifecycle
    /// hooks and the timeout.
    pub(super) fn hooks(n: Option<&Item>, key: &str) -> Hooks {
        let argv = |k| n.and_then(|n| Self::templates(get(n, k)));
        Hooks {
            command: argv(key),
            before: argv("before"),
            after: argv("after"),
            on_rollback: argv("on_rollback"),
            remove: argv("remove"),
            timeout: duration(n.and_then(|n| get(n, "timeout")), Duration::from_secs(300)),
        }
    }
}
