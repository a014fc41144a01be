//! Scalars a plan writes: SSH addresses, percentages, times of day and weekdays.

use super::*;

/// A percentage such as `25%` or `12.5%`.
pub(super) fn parse_percent(s: &str) -> Option<f64> {
    let n = s.strip_suffix('%')?;
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    n.parse().ok()
}

pub fn parse_ssh(s: &str) -> Result<SshAddr, String> {
    let (user, hostport) = match s.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, s),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err("an IPv6 address needs its closing `]`".into());
        };
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("unexpected `{after}` after the address")),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let bad = |x: &str| {
        x.is_empty() || x.starts_with('-') || x.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    if let Some(u) = user
        && bad(u)
    {
        return Err(format!("`{u}` is not a user name"));
    }
    if bad(host) {
        return Err(format!("`{host}` is not a host name"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
    };
    Ok(SshAddr {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
    })
}

/// `HH:MM`, or `HH:MM:SS` for windows that must close to the second.
pub(super) fn parse_time(s: &str) -> Option<jiff::civil::Time> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next().unwrap_or("00"));
    if parts.next().is_some() || h.is_empty() || h.len() > 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let num = |x: &str| {
        x.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| x.parse::<i8>().ok())
            .flatten()
    };
    jiff::civil::Time::new(num(h)?, num(m)?, num(sec)?, 0).ok()
}

pub(super) fn weekday(s: &str) -> Option<jiff::civil::Weekday> {
    use jiff::civil::Weekday::*;
    Some(match s {
        "mon" => Monday,
        "tue" => Tuesday,
        "wed" => Wednesday,
        "thu" => Thursday,
        "fri" => Friday,
        "sat" => Saturday,
        "sun" => Sunday,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "30",
            "s",
            "5 m",
            "1.5s",
            "-1s",
            "3d",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn ssh_addresses() {
        let a = parse_ssh("deploy@10.0.0.2:2222").unwrap();
        assert_eq!(
            (a.user.as_deref(), a.host.as_str(), a.port),
            (Some("deploy"), "10.0.0.2", Some(2222))
        );
        assert_eq!(parse_ssh("[::1]:22").unwrap().host, "::1");
        assert_eq!(parse_ssh("host").unwrap().port, None);
        for bad in ["-oProxyCommand=x", "u@", "@h", "h:0", "h:x", "a b", "u@-h"] {
            assert!(parse_ssh(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn safe_names() {
        for ok in ["emqx-1", "a", "node_2.x", "0"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "../x",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_safe_name(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("reposiotry", ["repository", "runtime"]),
            Some("repository")
        );
        assert_eq!(
            did_you_mean("max_paralel", ["max_parallel", "waves"]),
            Some("max_parallel")
        );
        assert_eq!(did_you_mean("zzz", ["repository", "runtime"]), None);
    }
}
