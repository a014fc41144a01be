//! `health` (one check: http, tcp or command, with its timing) and `hooks`, of the plan
//! and of each group.

use super::*;

impl Validator {
    pub(super) fn health(&mut self, n: Option<&Node>, what: &str) -> Option<Health> {
        let n = n?;
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
                    .label("here"),
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
                    .label("not an http URL"),
                );
            }
        }
        let timeout = duration(get(n, "timeout"), Duration::from_secs(60));
        let interval = duration(get(n, "interval"), Duration::from_secs(1));
        if interval.is_zero()
            && let Some(i) = get(n, "interval")
        {
            self.push(
                Problem::new(
                    Code::BadDuration,
                    "the health `interval` must be above zero",
                )
                .at(i.span)
                .label("zero"),
            );
        }
        Some(Health {
            check,
            expect_status: int(get(n, "expect_status"))
                .and_then(|i| u16::try_from(i).ok())
                .unwrap_or(200),
            timeout,
            interval,
            healthy_for: duration(get(n, "healthy_for"), Duration::ZERO),
            rollback_timeout: duration(get(n, "rollback_timeout"), timeout),
        })
    }

    pub(super) fn hooks(n: Option<&Node>, key: &str) -> Hooks {
        Hooks {
            command: n.and_then(|n| Self::templates(get(n, key))),
            timeout: duration(n.and_then(|n| get(n, "timeout")), Duration::from_secs(300)),
        }
    }
}
