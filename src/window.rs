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
            && let Ok(at) = opening_on(w, day)
            && at.timestamp() > now
        {
            return Some(at);
        }
        day = day.tomorrow().ok()?;
    }
    None
}

/// When the window opens on `day`: at `from`, or, when the clocks skip over `from` that
/// day (a daylight-saving gap), at the moment they jump, the first moment whose wall-clock
/// time is past `from` (which is when `is_open` first holds).
fn opening_on(w: &Window, day: Date) -> Result<ZonedDateTime, jiff::Error> {
    let at = day.to_datetime(w.from).to_zoned_datetime(w.tz.clone())?;
    if at.time() == w.from {
        return Ok(at);
    }
    // In a gap jiff moves the time forward past the jump; the jump is the last transition
    // before that.
    match w.tz.preceding(at.timestamp()).next() {
        Some(jump) => Ok(jump.timestamp().to_zoned_datetime(w.tz.clone())),
        None => Ok(at),
    }
}

/// A window as people write it: its days (unless it opens every day), `from`–`to` and
/// time zone, as in `Sat, Sun 02:00–05:00 UTC`.
pub fn describe(w: &Window) -> String {
    let t = |t: Time| match t.second() {
        0 => format!("{:02}:{:02}", t.hour(), t.minute()),
        s => format!("{:02}:{:02}:{s:02}", t.hour(), t.minute()),
    };
    let days = if w.days.len() >= 7 {
        String::new()
    } else {
        let name = |d: &jiff::civil::Weekday| match d {
            jiff::civil::Weekday::Monday => "Mon",
            jiff::civil::Weekday::Tuesday => "Tue",
            jiff::civil::Weekday::Wednesday => "Wed",
            jiff::civil::Weekday::Thursday => "Thu",
            jiff::civil::Weekday::Friday => "Fri",
            jiff::civil::Weekday::Saturday => "Sat",
            jiff::civil::Weekday::Sunday => "Sun",
        };
        format!(
            "{} ",
            w.days.iter().map(name).collect::<Vec<_>>().join(", ")
        )
    };
    format!("{days}{}–{} {}", t(w.from), t(w.to), w.tz_name)
}

/// Where the window stands at `now`, in words: `open now`, or `closed now; next opens
/// Sat 2026-11-28 02:00 UTC`.
pub fn standing(w: &Window, now: Timestamp) -> String {
    if is_open(w, now) {
        return "open now".into();
    }
    match next_opening(w, now) {
        Some(z) => format!(
            "closed now; next opens {}",
            z.strftime("%a %Y-%m-%d %H:%M %Z")
        ),
        None => "closed now; it never opens (no day is listed)".into(),
    }
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
    fn a_window_is_described_with_its_days_and_next_opening() {
        use Weekday::*;
        let w = window(&[Saturday, Sunday], (2, 0), (5, 0));
        assert_eq!(describe(&w), "Sat, Sun 02:00–05:00 UTC");
        assert_eq!(
            standing(&w, at("2026-11-23T12:00:00Z")),
            "closed now; next opens Sat 2026-11-28 02:00 UTC"
        );
        assert_eq!(standing(&w, at("2026-11-28T03:00:00Z")), "open now");
        let every = window(
            &[
                Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
            ],
            (2, 0),
            (5, 0),
        );
        assert_eq!(describe(&every), "02:00–05:00 UTC");
    }

    #[test]
    fn a_window_whose_opening_the_clocks_skip_opens_when_they_jump() {
        // 2026-03-29, a Sunday: Berlin goes from 02:00 CET straight to 03:00 CEST
        // (01:00 UTC). A 02:30–03:30 window is open 03:00–03:30 CEST that day.
        let w = Window {
            days: vec![Weekday::Sunday],
            from: Time::new(2, 30, 0, 0).unwrap(),
            to: Time::new(3, 30, 0, 0).unwrap(),
            tz: jiff::tz::TimeZone::get("Europe/Berlin").unwrap(),
            tz_name: "Europe/Berlin".into(),
        };
        assert!(!is_open(&w, at("2026-03-29T00:59:59Z")));
        assert!(is_open(&w, at("2026-03-29T01:00:00Z")));
        assert!(!is_open(&w, at("2026-03-29T01:30:00Z")));
        let next = next_opening(&w, at("2026-03-29T00:30:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-03-29T01:00:00Z"));
        assert!(is_open(&w, next.timestamp()));
        assert_eq!(
            standing(&w, at("2026-03-29T00:30:00Z")),
            "closed now; next opens Sun 2026-03-29 03:00 CEST"
        );
        // A week later, summer time: 02:30 CEST is 00:30 UTC.
        let next = next_opening(&w, at("2026-03-29T01:30:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-04-05T00:30:00Z"));
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
