//! Durations as plans, node.toml files and flags write them: `500ms`, `30s`, `5m`, `1h`,
//! and sums like `1m30s`. Shared vocabulary: the plan layer, the stores and the command
//! line parse them with this one function.

use std::time::Duration;

/// The longest any wait may be: 30 days. Every duration a plan, a node.toml, a
/// group-hooks.toml or a flag gives stays at or below it, so no deadline computed from one
/// can overflow.
pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses `500ms`, `30s`, `5m`, `1h`, and sums like `1m30s`, up to [`MAX`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    parse_any(s).filter(|d| *d <= MAX)
}

/// Whether `s` is a duration, but longer than [`MAX`].
pub fn too_long(s: &str) -> bool {
    parse_any(s).is_some_and(|d| d > MAX)
}

fn parse_any(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// `d` as a person writes it: `430ms`, `3s`, `17.9s`, `2m`, `1h30m`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_stop_at_thirty_days() {
        assert_eq!(parse_duration("720h"), Some(MAX));
        assert_eq!(parse_duration("721h"), None);
        assert!(too_long("721h") && too_long("5000000000000000h"));
        assert!(!too_long("30s") && !too_long("five minutes"));
    }

    #[test]
    fn durations_are_shown_as_a_person_writes_them() {
        let ms = Duration::from_millis;
        assert_eq!(human(ms(430)), "430ms");
        assert_eq!(human(ms(3000)), "3s");
        assert_eq!(human(ms(17_900)), "17.9s");
        assert_eq!(human(ms(120_000)), "2m");
        assert_eq!(human(ms(5_400_000)), "1h30m");
        assert_eq!(human(ms(61_000)), "1m1s");
    }
}
