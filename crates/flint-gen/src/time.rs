//! Calendar arithmetic (proleptic Gregorian, no dependencies), FHIR date/time formatting, and the
//! ten-year window the generated records fall into.

use crate::rng::splitmix64;
use std::fmt::Write;

/// Seconds per day.
pub const DAY: i64 = 86_400;
/// Seconds per (average Gregorian) year.
pub const YEAR: i64 = 31_556_952;

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date `(year, month, day)` of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Day of the week of a day number (0 = Sunday).
pub fn weekday(day: i64) -> i64 {
    (day + 4).rem_euclid(7)
}

/// The time span generated records fall into: `[start, end)` in Unix seconds (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First second of the window.
    pub start: i64,
    /// End of the window (exclusive); also "now" for ages and active statuses.
    pub end: i64,
}

impl Window {
    /// Ten years (3,652 days) ending at a reference date derived from the seed: 2025-01-01 minus
    /// 0 to 364 days. Never the wall clock, so output is reproducible.
    pub fn from_seed(seed: u64) -> Window {
        let mut s = seed ^ 0x5EED_DA7E_0F11_4E47;
        let back = (splitmix64(&mut s) % 365) as i64;
        let end = (days_from_civil(2025, 1, 1) - back) * DAY;
        Window {
            start: end - 3652 * DAY,
            end,
        }
    }

    /// January 1st of `year` to January 1st ten years later.
    pub fn from_start_year(year: i32) -> Window {
        Window {
            start: days_from_civil(year as i64, 1, 1) * DAY,
            end: days_from_civil(year as i64 + 10, 1, 1) * DAY,
        }
    }

    /// Whether `t` lies in the window.
    pub fn contains(&self, t: i64) -> bool {
        t >= self.start && t < self.end
    }
}

fn write_offset(out: &mut String, tz_min: i32) {
    let sign = if tz_min < 0 { '-' } else { '+' };
    let a = tz_min.unsigned_abs();
    let _ = write!(out, "{sign}{:02}:{:02}", a / 60, a % 60);
}

fn write_local(out: &mut String, t: i64, tz_min: i32) -> i64 {
    let local = t + tz_min as i64 * 60;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY));
    let s = local.rem_euclid(DAY);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    local
}

/// FHIR `dateTime` of Unix time `t` shown in the zone `tz_min` minutes east of UTC.
pub fn datetime(t: i64, tz_min: i32) -> String {
    let mut out = String::with_capacity(25);
    write_local(&mut out, t, tz_min);
    write_offset(&mut out, tz_min);
    out
}

/// FHIR `instant` (with milliseconds) of Unix time `t_ms` in milliseconds.
pub fn instant(t_ms: i64, tz_min: i32) -> String {
    let mut out = String::with_capacity(29);
    write_local(&mut out, t_ms.div_euclid(1000), tz_min);
    let _ = write!(out, ".{:03}", t_ms.rem_euclid(1000));
    write_offset(&mut out, tz_min);
    out
}

/// FHIR `date` (`YYYY-MM-DD`) of Unix time `t` in the zone `tz_min`.
pub fn date(t: i64, tz_min: i32) -> String {
    let (y, m, d) = civil_from_days((t + tz_min as i64 * 60).div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses a FHIR `date`/`dateTime`/`instant` to Unix seconds (dates: midnight UTC; a missing
/// zone counts as UTC). `None` if malformed.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let y = num(0..4)?;
    let (m, d) = match b.len() {
        4 => (1, 1),
        7 => (num(5..7)?, 1),
        _ => (num(5..7)?, num(8..10)?),
    };
    let day = days_from_civil(y, m as u32, d as u32);
    if b.len() <= 10 {
        return Some(day * DAY);
    }
    let secs = num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
    }
    let offset = match b.get(i) {
        None | Some(b'Z') => 0,
        Some(c @ (b'+' | b'-')) => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *c == b'-' { -o } else { o }
        }
        _ => return None,
    };
    Some(day * DAY + secs - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-25_000, -1, 0, 1, 11_016, 18_262, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(weekday(0), 4);
    }

    #[test]
    fn formats_and_parses() {
        let t = days_from_civil(2019, 5, 4) * DAY + 9 * 3600 + 31 * 60 + 12;
        assert_eq!(datetime(t, -300), "2019-05-04T04:31:12-05:00");
        assert_eq!(instant(t * 1000 + 7, 60), "2019-05-04T10:31:12.007+01:00");
        assert_eq!(parse_datetime("2019-05-04T04:31:12-05:00"), Some(t));
        assert_eq!(parse_datetime("2019-05-04T10:31:12.007+01:00"), Some(t));
        assert_eq!(date(t, -600), "2019-05-03");
        assert_eq!(
            parse_datetime("2019-05-04"),
            Some(days_from_civil(2019, 5, 4) * DAY)
        );
    }

    #[test]
    fn windows() {
        let w = Window::from_seed(1);
        assert_eq!(w.end - w.start, 3652 * DAY);
        assert!(w.end <= days_from_civil(2025, 1, 1) * DAY);
        // 2025-01-01 minus splitmix64(1 ^ salt) % 365 = 218 days; another seed moves it.
        assert_eq!(civil_from_days(w.end / DAY), (2024, 5, 28));
        assert_ne!(Window::from_seed(2), w);
        let w = Window::from_start_year(2010);
        assert_eq!(civil_from_days(w.end / DAY), (2020, 1, 1));
    }
}
