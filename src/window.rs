//! Maintenance windows (SPEC §5.4): whether a moment lies inside the plan's window, and
//! when the window next opens. A window whose `to` is before its `from` closes the next
//! day; `days` name the days on which it opens.

use jiff::civil::{Date, Time};
use jiff::{Timestamp, ZonedDateTime};

use crate::plan::Window;

fn opens_on(w: &Window, d: Date) -> bool {
    w.days.contains(&d.weekday())
}

/// Whether `now` is inside the window.
pub fn is_open(w: &Window, now: Timestamp) -> bool {
    let z = now.to_zoned_datetime(w.tz.clone());
    let (today, t) = (z.date(), z.time());
    if w.from < w.to {
        opens_on(w, today) && t >= w.from && t < w.to
    } else {
        (opens_on(w, today) && t >= w.from)
            || (today.yesterday().is_ok_and(|y| opens_on(w, y)) && t < w.to)
    }
}

/// The next moment the window opens after `now`.
pub fn next_opening(w: &Window, now: Timestamp) -> Option<ZonedDateTime> {
    let z = now.to_zoned_datetime(w.tz.clone());
    let mut day = z.date();
    for _ in 0..9 {
        if opens_on(w, day)
            && let Ok(at) = day.to_datetime(w.from).to_zoned_datetime(w.tz.clone())
            && at.timestamp() > now
        {
            return Some(at);
        }
        day = day.tomorrow().ok()?;
    }
    None
}

/// `from`–`to` of a window as people write it.
pub fn describe(w: &Window) -> String {
    let t = |t: Time| match t.second() {
        0 => format!("{:02}:{:02}", t.hour(), t.minute()),
        s => format!("{:02}:{:02}:{s:02}", t.hour(), t.minute()),
    };
    format!("{}–{} {}", t(w.from), t(w.to), w.tz_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::Weekday;

    fn window(days: &[Weekday], from: (i8, i8), to: (i8, i8)) -> Window {
        Window {
            days: days.to_vec(),
            from: Time::new(from.0, from.1, 0, 0).unwrap(),
            to: Time::new(to.0, to.1, 0, 0).unwrap(),
            tz: jiff::tz::TimeZone::UTC,
            tz_name: "UTC".into(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn inside_and_outside_a_weekend_night_window() {
        use Weekday::*;
        let w = window(&[Saturday, Sunday], (2, 0), (5, 0));
        // 2026-11-28 is a Saturday.
        assert!(is_open(&w, at("2026-11-28T02:00:00Z")));
        assert!(is_open(&w, at("2026-11-29T04:59:59Z")));
        assert!(!is_open(&w, at("2026-11-28T05:00:00Z")));
        assert!(!is_open(&w, at("2026-11-27T03:00:00Z")));
        let next = next_opening(&w, at("2026-11-23T12:00:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-11-28T02:00:00Z"));
        let next = next_opening(&w, at("2026-11-28T03:00:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-11-29T02:00:00Z"));
    }

    #[test]
    fn a_window_across_midnight() {
        use Weekday::*;
        let w = window(&[Friday], (22, 0), (4, 0));
        // 2026-11-27 is a Friday.
        assert!(is_open(&w, at("2026-11-27T23:00:00Z")));
        assert!(is_open(&w, at("2026-11-28T03:00:00Z")));
        assert!(!is_open(&w, at("2026-11-28T04:00:00Z")));
        assert!(!is_open(&w, at("2026-11-28T23:00:00Z")));
    }
}
