//! `window`: the maintenance window (days, start, end, time zone).

use super::*;

impl Validator {
    pub(super) fn window(&mut self, n: Option<&Item>) -> Option<Window> {
        let n = n?;
        let mut ok = true;
        let mut time = |key: &str, this: &mut Self| {
            let a = at_str(get(n, key))?;
            let t = parse_time(&a.value);
            if t.is_none() {
                this.push(
                    Problem::new(
                        Code::BadValue,
                        format!("window `{key}` `{}` is not a time of day", a.value),
                    )
                    .at(a.span)
                    .label("expected HH:MM")
                    .help("write the time as 24-hour HH:MM, quoted: \"02:00\""),
                );
                ok = false;
            }
            t
        };
        let from = time("from", self);
        let to = time("to", self);
        let tz_name = at_str(get(n, "tz")).map_or_else(|| "UTC".to_owned(), |a| a.value);
        let tz = match jiff::tz::TimeZone::get(&tz_name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                if let Some(t) = get(n, "tz") {
                    self.push(
                        Problem::new(
                            Code::BadValue,
                            format!("`{tz_name}` is not a known time zone"),
                        )
                        .at(t.span)
                        .label("unknown time zone")
                        .help("use an IANA name such as UTC, Europe/Berlin or Asia/Shanghai"),
                    );
                }
                None
            }
        };
        let (from, to, tz) = (from?, to?, tz?);
        if from == to {
            if let Some(t) = get(n, "to") {
                self.push(
                    Problem::new(
                        Code::BadValue,
                        "the window opens and closes at the same time",
                    )
                    .at(t.span)
                    .label("same as `from`")
                    .help(
                        "give `to` another time; a window such as 22:00–04:00 runs across midnight",
                    ),
                );
            }
            return None;
        }
        let days = match get(n, "days") {
            None => schema::DAYS.iter().filter_map(|d| weekday(d)).collect(),
            Some(d) => list(Some(d))
                .iter()
                .filter_map(|d| weekday(s(Some(d))?))
                .collect(),
        };
        ok.then_some(Window {
            days,
            from,
            to,
            tz,
            tz_name,
        })
    }
}
