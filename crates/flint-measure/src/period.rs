//! The measurement period: `periodStart`/`periodEnd` of a year (`2020`), a month
//! (`2020-02`), a date (`2020-02-29`) or a dateTime, as an interval of DateTimes.

use crate::MeasureError;
use flint_db::ErrorKind;

/// An interval of DateTimes, both ends included, each a FHIR dateTime of millisecond
/// precision (with the offset only when the input had one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// The first instant.
    pub start: String,
    /// The last instant.
    pub end: String,
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Which end of the period a value gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `periodStart`: the first instant of the value's precision.
    Start,
    /// `periodEnd`: the last instant of the value's precision.
    End,
}

/// The instant a `periodStart` (`End::Start`) or `periodEnd` value stands for; the error
/// names `param`.
pub fn parse_bound(s: &str, end: End, param: &str) -> Result<String, MeasureError> {
    let bad = || {
        MeasureError::new(
            ErrorKind::Invalid,
            format!(
                "Invalid parameter `{param}`: `{s}` is not a year, year-month, date or dateTime."
            ),
        )
        .at(param)
    };
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let y = parts.first().and_then(|p| digits(p, 4)).ok_or_else(bad)?;
    let m = match parts.get(1) {
        Some(p) => Some(
            digits(p, 2)
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(bad)?,
        ),
        None => None,
    };
    let d = match (parts.get(2), m) {
        (Some(p), Some(m)) => Some(
            digits(p, 2)
                .filter(|d| (1..=days_in_month(y, m)).contains(d))
                .ok_or_else(bad)?,
        ),
        _ => None,
    };
    if parts.len() > 3 {
        return Err(bad());
    }
    if let Some(t) = time {
        if d.is_none() || !valid_time(t) {
            return Err(bad());
        }
        return Ok(s.to_string());
    }
    let (m, d) = match (m, d, end) {
        (Some(m), Some(d), _) => (m, d),
        (Some(m), None, End::Start) => (m, 1),
        (Some(m), None, End::End) => (m, days_in_month(y, m)),
        (None, _, End::Start) => (1, 1),
        (None, _, End::End) => (12, 31),
    };
    let clock = match end {
        End::Start => "00:00:00.000",
        End::End => "23:59:59.999",
    };
    Ok(format!("{y:04}-{m:02}-{d:02}T{clock}"))
}

/// `hh:mm:ss(.fff)` with an optional `Z` or `±hh:mm`.
fn valid_time(t: &str) -> bool {
    let (clock, zone) = if let Some(c) = t.strip_suffix('Z') {
        (c, None)
    } else if t.len() > 6
        && (t.as_bytes()[t.len() - 6] == b'+' || t.as_bytes()[t.len() - 6] == b'-')
    {
        (&t[..t.len() - 6], Some(&t[t.len() - 5..]))
    } else {
        (t, None)
    };
    if let Some(z) = zone {
        let Some((h, m)) = z.split_once(':') else {
            return false;
        };
        if digits(h, 2).is_none_or(|h| h > 14) || digits(m, 2).is_none_or(|m| m > 59) {
            return false;
        }
    }
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let p: Vec<&str> = hms.split(':').collect();
    p.len() == 3
        && digits(p[0], 2).is_some_and(|h| h < 24)
        && digits(p[1], 2).is_some_and(|m| m < 60)
        && digits(p[2], 2).is_some_and(|s| s < 60)
}

/// The measurement period of `periodStart` and `periodEnd`; the end must not lie before the
/// start (compared as text, which orders dateTimes of one form).
pub fn interval(start: &str, end: &str) -> Result<Interval, MeasureError> {
    let start_i = parse_bound(start, End::Start, "periodStart")?;
    let end_i = parse_bound(end, End::End, "periodEnd")?;
    if end_i[..end_i.len().min(23)] < start_i[..start_i.len().min(23)] {
        return Err(MeasureError::new(
            ErrorKind::Invalid,
            format!("Invalid parameter `periodEnd`: `{end}` lies before periodStart `{start}`."),
        )
        .at("periodEnd"));
    }
    Ok(Interval {
        start: start_i,
        end: end_i,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_months_dates_and_date_times() {
        let i = interval("2020", "2020").unwrap();
        assert_eq!(i.start, "2020-01-01T00:00:00.000");
        assert_eq!(i.end, "2020-12-31T23:59:59.999");
        let i = interval("2020-02", "2021-02").unwrap();
        assert_eq!(i.start, "2020-02-01T00:00:00.000");
        assert_eq!(i.end, "2021-02-28T23:59:59.999");
        assert_eq!(
            parse_bound("2020-02", End::End, "p").unwrap(),
            "2020-02-29T23:59:59.999"
        );
        let i = interval("2020-03-04", "2020-03-04").unwrap();
        assert_eq!(i.end, "2020-03-04T23:59:59.999");
        let i = interval("2020-03-04T10:00:00Z", "2020-03-05T10:00:00.5+02:00").unwrap();
        assert_eq!(i.start, "2020-03-04T10:00:00Z");
        assert_eq!(i.end, "2020-03-05T10:00:00.5+02:00");
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for bad in [
            "20",
            "2020-13",
            "2020-02-30",
            "2020-1",
            "x",
            "2020-01-01T25:00:00",
            "2020T10:00:00",
            "2020-01-01T10:00",
            "2020-01-01-01",
        ] {
            let e = parse_bound(bad, End::Start, "periodStart").unwrap_err();
            assert_eq!(e.kind, ErrorKind::Invalid, "{bad}");
            assert_eq!(e.expression.as_deref(), Some("periodStart"), "{bad}");
        }
        let e = interval("2021", "2020").unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("periodEnd"));
    }
}
