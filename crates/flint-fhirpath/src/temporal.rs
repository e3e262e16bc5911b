//! Partial-precision dates, date-times and times (FHIRPath `System.Date`, `System.DateTime`,
//! `System.Time`): parsing, formatting, comparison and calendar arithmetic.
//!
//! Values keep the precision they were written with (a date may be just a year). Seconds and
//! milliseconds form one precision for comparison (`@T10:30:00 = @T10:30:00.0`), as the FHIRPath
//! specification asks. Fractional seconds beyond milliseconds are truncated to milliseconds.
//!
//! Comparisons return `None` when the answer is not known: the values stop at different
//! precisions before a difference is found, or exactly one of two date-times with a time part
//! carries a timezone offset (the other one's offset is unknown). Leap seconds are not modelled.

use std::cmp::Ordering;
use std::fmt;

/// Precision of a temporal value, from coarsest to finest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    /// Year only.
    Year,
    /// Year and month.
    Month,
    /// Full date.
    Day,
    /// Hour.
    Hour,
    /// Hour and minute.
    Minute,
    /// Seconds, without a fractional part.
    Second,
    /// Seconds with milliseconds.
    Millisecond,
}

/// A date with year, month or day precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Year (1..=9999).
    pub year: i32,
    /// Month (1..=12), if known.
    pub month: Option<u8>,
    /// Day of month, if known (requires `month`).
    pub day: Option<u8>,
}

/// A time of day with hour, minute, second or millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Hour (0..=23).
    pub hour: u8,
    /// Minute, if known.
    pub minute: Option<u8>,
    /// Second, if known (requires `minute`).
    pub second: Option<u8>,
    /// Milliseconds, if written (requires `second`).
    pub millis: Option<u16>,
}

/// A date-time: a date, optionally a time (then the date is complete) and a timezone offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// The time part, if any.
    pub time: Option<Time>,
    /// Timezone offset in minutes east of UTC, if given.
    pub offset: Option<i16>,
}

/// Number of days in `month` of `year` (proleptic Gregorian).
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = if m <= 2 { y + 1 } else { y };
    (y as i32, m, d)
}

/// A small cursor over ASCII digits used by the parsers.
struct Cursor<'s> {
    s: &'s [u8],
    pos: usize,
}

impl<'s> Cursor<'s> {
    fn new(s: &'s str) -> Self {
        Cursor {
            s: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let c = self.peek()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
            self.pos += 1;
        }
        Some(v)
    }

    fn done(&self) -> bool {
        self.pos == self.s.len()
    }
}

fn parse_date_part(c: &mut Cursor<'_>) -> Option<Date> {
    let year = c.digits(4)? as i32;
    let mut date = Date {
        year,
        month: None,
        day: None,
    };
    if c.peek() == Some(b'-') {
        c.pos += 1;
        let m = c.digits(2)? as u8;
        if !(1..=12).contains(&m) {
            return None;
        }
        date.month = Some(m);
        if c.peek() == Some(b'-') {
            c.pos += 1;
            let d = c.digits(2)? as u8;
            if d == 0 || d > days_in_month(year, m) {
                return None;
            }
            date.day = Some(d);
        }
    }
    Some(date)
}

fn parse_time_part(c: &mut Cursor<'_>) -> Option<Time> {
    let hour = c.digits(2)? as u8;
    if hour > 23 {
        return None;
    }
    let mut t = Time {
        hour,
        minute: None,
        second: None,
        millis: None,
    };
    if c.eat(b':') {
        let m = c.digits(2)? as u8;
        if m > 59 {
            return None;
        }
        t.minute = Some(m);
        if c.eat(b':') {
            let s = c.digits(2)? as u8;
            if s > 59 {
                return None;
            }
            t.second = Some(s);
            if c.eat(b'.') {
                let mut ms = 0u32;
                let mut n = 0;
                while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
                    if n < 3 {
                        ms = ms * 10 + u32::from(d - b'0');
                    }
                    n += 1;
                    c.pos += 1;
                }
                if n == 0 {
                    return None;
                }
                for _ in n..3 {
                    ms *= 10;
                }
                t.millis = Some(ms as u16);
            }
        }
    }
    Some(t)
}

fn parse_offset(c: &mut Cursor<'_>) -> Option<Option<i16>> {
    match c.peek() {
        Some(b'Z') => {
            c.pos += 1;
            Some(Some(0))
        }
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let h = c.digits(2)? as i16;
            if !c.eat(b':') {
                return None;
            }
            let m = c.digits(2)? as i16;
            if h > 14 || m > 59 {
                return None;
            }
            let v = h * 60 + m;
            Some(Some(if sign == b'-' { -v } else { v }))
        }
        _ => Some(None),
    }
}

impl Date {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut c = Cursor::new(s);
        let d = parse_date_part(&mut c)?;
        c.done().then_some(d)
    }

    /// The precision of this date.
    pub fn precision(&self) -> Precision {
        if self.day.is_some() {
            Precision::Day
        } else if self.month.is_some() {
            Precision::Month
        } else {
            Precision::Year
        }
    }

    /// The date as a date-time with the same precision and no timezone.
    pub fn to_datetime(self) -> DateTime {
        DateTime {
            date: self,
            time: None,
            offset: None,
        }
    }
}

impl Time {
    /// Parses `hh`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`.
    pub fn parse(s: &str) -> Option<Time> {
        let mut c = Cursor::new(s);
        let t = parse_time_part(&mut c)?;
        c.done().then_some(t)
    }

    /// The precision of this time.
    pub fn precision(&self) -> Precision {
        if self.millis.is_some() {
            Precision::Millisecond
        } else if self.second.is_some() {
            Precision::Second
        } else if self.minute.is_some() {
            Precision::Minute
        } else {
            Precision::Hour
        }
    }

    /// Milliseconds since midnight, treating missing parts as zero.
    fn total_millis(&self) -> i64 {
        ((i64::from(self.hour) * 60 + i64::from(self.minute.unwrap_or(0))) * 60
            + i64::from(self.second.unwrap_or(0)))
            * 1000
            + i64::from(self.millis.unwrap_or(0))
    }

    /// Compares two times; `None` when precisions differ before a difference shows.
    pub fn compare(&self, other: &Time) -> Option<Ordering> {
        let a = [
            Some(u32::from(self.hour)),
            self.minute.map(u32::from),
            self.second
                .map(|s| u32::from(s) * 1000 + u32::from(self.millis.unwrap_or(0))),
        ];
        let b = [
            Some(u32::from(other.hour)),
            other.minute.map(u32::from),
            other
                .second
                .map(|s| u32::from(s) * 1000 + u32::from(other.millis.unwrap_or(0))),
        ];
        compare_parts(&a, &b)
    }
}

/// Compares component lists from coarsest to finest.
fn compare_parts(a: &[Option<u32>], b: &[Option<u32>]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => {}
                o => return Some(o),
            },
            (None, None) => return Some(Ordering::Equal),
            _ => return None,
        }
    }
    Some(Ordering::Equal)
}

impl DateTime {
    /// Parses a FHIR/FHIRPath date-time: a date, optionally `T` and a time, optionally an offset.
    /// A trailing `T` without time is accepted (`2015T`).
    pub fn parse(s: &str) -> Option<DateTime> {
        let mut c = Cursor::new(s);
        let date = parse_date_part(&mut c)?;
        let mut dt = DateTime {
            date,
            time: None,
            offset: None,
        };
        if c.eat(b'T') {
            if c.done() {
                return Some(dt);
            }
            date.day?;
            dt.time = Some(parse_time_part(&mut c)?);
            dt.offset = parse_offset(&mut c)?;
        }
        c.done().then_some(dt)
    }

    /// The precision of this date-time.
    pub fn precision(&self) -> Precision {
        match &self.time {
            Some(t) => t.precision(),
            None => self.date.precision(),
        }
    }

    /// Milliseconds since the epoch of the (complete-date) value as written, ignoring offset.
    fn local_millis(&self) -> Option<i64> {
        let t = self.time.as_ref()?;
        let days = days_from_civil(self.date.year, self.date.month?, self.date.day?);
        Some(days * 86_400_000 + t.total_millis())
    }

    /// Rebuilds a date-time from local epoch milliseconds, keeping the precision of `self`.
    fn with_local_millis(&self, ms: i64) -> DateTime {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let t = self.time.as_ref();
        DateTime {
            date: Date {
                year: y,
                month: Some(m),
                day: Some(d),
            },
            time: Some(Time {
                hour: (rem / 3_600_000) as u8,
                minute: t
                    .and_then(|t| t.minute)
                    .map(|_| ((rem / 60_000) % 60) as u8),
                second: t.and_then(|t| t.second).map(|_| ((rem / 1000) % 60) as u8),
                millis: t.and_then(|t| t.millis).map(|_| (rem % 1000) as u16),
            }),
            offset: self.offset,
        }
    }

    /// The same instant expressed in UTC (only meaningful with a time and an offset).
    fn to_utc(self) -> DateTime {
        match (self.offset, self.local_millis()) {
            (Some(off), Some(ms)) => {
                let mut d = self.with_local_millis(ms - i64::from(off) * 60_000);
                d.offset = Some(0);
                d
            }
            _ => self,
        }
    }

    fn parts(&self) -> [Option<u32>; 6] {
        let t = self.time.as_ref();
        [
            Some(self.date.year as u32),
            self.date.month.map(u32::from),
            self.date.day.map(u32::from),
            t.map(|t| u32::from(t.hour)),
            t.and_then(|t| t.minute.map(u32::from)),
            t.and_then(|t| {
                t.second
                    .map(|s| u32::from(s) * 1000 + u32::from(t.millis.unwrap_or(0)))
            }),
        ]
    }

    /// Compares two date-times; `None` when the result is unknown (see the module doc).
    pub fn compare(&self, other: &DateTime) -> Option<Ordering> {
        let (a, b) = match (self.offset, other.offset, &self.time, &other.time) {
            (Some(_), Some(_), Some(_), Some(_)) => (self.to_utc(), other.to_utc()),
            (Some(_), None, Some(_), Some(_)) | (None, Some(_), Some(_), Some(_)) => {
                // Date parts may still settle it when they differ by more than a day.
                let pa = self.parts();
                let pb = other.parts();
                return match compare_parts(&pa[..3], &pb[..3]) {
                    Some(Ordering::Equal) | None => None,
                    Some(o) => {
                        let da = self.local_millis().unwrap_or(0);
                        let db = other.local_millis().unwrap_or(0);
                        // A difference beyond the widest offset span (28h) is certain.
                        if (da - db).abs() > 28 * 3_600_000 {
                            Some(o)
                        } else {
                            None
                        }
                    }
                };
            }
            _ => (*self, *other),
        };
        compare_parts(&a.parts(), &b.parts())
    }

    /// Adds `amount` of calendar `unit`, at the precision of the value (see [`add_to_date`]).
    pub fn add(&self, amount: i64, unit: CalendarUnit) -> Option<DateTime> {
        let prec = self.precision();
        match unit {
            CalendarUnit::Year | CalendarUnit::Month => {
                let months = if unit == CalendarUnit::Year {
                    amount.checked_mul(12)?
                } else {
                    amount
                };
                let date = add_months(self.date, months)?;
                Some(DateTime { date, ..*self })
            }
            _ => {
                let ms = unit.millis().checked_mul(amount)?;
                if prec <= Precision::Day {
                    let days = ms / 86_400_000;
                    let date = add_days(self.date, days)?;
                    return Some(DateTime { date, ..*self });
                }
                let unit_ms = match prec {
                    Precision::Hour => 3_600_000,
                    Precision::Minute => 60_000,
                    Precision::Second => 1000,
                    _ => 1,
                };
                let ms = ms / unit_ms * unit_ms;
                let base = self.local_millis()?;
                let target = base.checked_add(ms)?;
                if target.abs() > 400_000_000_000_000 {
                    return None;
                }
                let r = self.with_local_millis(target);
                (1..=9999).contains(&r.date.year).then_some(r)
            }
        }
    }
}

/// Calendar duration units usable in date arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarUnit {
    /// Years.
    Year,
    /// Months.
    Month,
    /// Weeks.
    Week,
    /// Days.
    Day,
    /// Hours.
    Hour,
    /// Minutes.
    Minute,
    /// Seconds.
    Second,
    /// Milliseconds.
    Millisecond,
}

impl CalendarUnit {
    /// Parses a FHIRPath calendar keyword (singular or plural).
    pub fn from_keyword(s: &str) -> Option<CalendarUnit> {
        Some(match s {
            "year" | "years" => CalendarUnit::Year,
            "month" | "months" => CalendarUnit::Month,
            "week" | "weeks" => CalendarUnit::Week,
            "day" | "days" => CalendarUnit::Day,
            "hour" | "hours" => CalendarUnit::Hour,
            "minute" | "minutes" => CalendarUnit::Minute,
            "second" | "seconds" => CalendarUnit::Second,
            "millisecond" | "milliseconds" => CalendarUnit::Millisecond,
            _ => return None,
        })
    }

    /// The unit for date arithmetic: a calendar keyword or a definite-duration UCUM code
    /// (`wk`, `d`, `h`, `min`, `s`, `ms`); `a` and `mo` are not calendar units and give `None`.
    pub fn for_arithmetic(unit: &str) -> Option<CalendarUnit> {
        Self::from_keyword(unit).or(match unit {
            "wk" => Some(CalendarUnit::Week),
            "d" => Some(CalendarUnit::Day),
            "h" => Some(CalendarUnit::Hour),
            "min" => Some(CalendarUnit::Minute),
            "s" => Some(CalendarUnit::Second),
            "ms" => Some(CalendarUnit::Millisecond),
            _ => None,
        })
    }

    fn millis(self) -> i64 {
        match self {
            CalendarUnit::Week => 7 * 86_400_000,
            CalendarUnit::Day => 86_400_000,
            CalendarUnit::Hour => 3_600_000,
            CalendarUnit::Minute => 60_000,
            CalendarUnit::Second => 1000,
            CalendarUnit::Millisecond => 1,
            // Years and months are not definite; handled separately.
            CalendarUnit::Year | CalendarUnit::Month => 0,
        }
    }
}

fn add_months(d: Date, months: i64) -> Option<Date> {
    let Some(m) = d.month else {
        let year = i64::from(d.year) + months / 12;
        return (1..=9999).contains(&year).then_some(Date {
            year: year as i32,
            ..d
        });
    };
    let total = i64::from(d.year)
        .checked_mul(12)?
        .checked_add(i64::from(m) - 1)?
        .checked_add(months)?;
    let year = total.div_euclid(12);
    if !(1..=9999).contains(&year) {
        return None;
    }
    let month = (total.rem_euclid(12) + 1) as u8;
    let year = year as i32;
    let day = d.day.map(|day| day.min(days_in_month(year, month)));
    Some(Date {
        year,
        month: Some(month),
        day,
    })
}

fn add_days(d: Date, days: i64) -> Option<Date> {
    match (d.month, d.day) {
        (Some(m), Some(day)) => {
            let n = days_from_civil(d.year, m, day).checked_add(days)?;
            if n.abs() > 4_000_000 {
                return None;
            }
            let (y, m, day) = civil_from_days(n);
            (1..=9999).contains(&y).then_some(Date {
                year: y,
                month: Some(m),
                day: Some(day),
            })
        }
        // Coarser precision: convert days to months/years, truncating.
        (Some(_), None) => add_months(d, days / 30),
        _ => add_months(d, days / 365 * 12),
    }
}

/// Adds `amount` of `unit` to a date, at the date's precision (smaller units are converted to
/// the date's precision and truncated: adding 25 hours to a date adds one day).
pub fn add_to_date(d: Date, amount: i64, unit: CalendarUnit) -> Option<Date> {
    match unit {
        CalendarUnit::Year => add_months(d, amount.checked_mul(12)?),
        CalendarUnit::Month => add_months(d, amount),
        _ => add_days(d, unit.millis().checked_mul(amount)? / 86_400_000),
    }
}

/// Adds `amount` of `unit` to a time, wrapping around midnight.
pub fn add_to_time(t: Time, amount: i64, unit: CalendarUnit) -> Option<Time> {
    if matches!(
        unit,
        CalendarUnit::Year | CalendarUnit::Month | CalendarUnit::Week | CalendarUnit::Day
    ) {
        return None;
    }
    let unit_ms = match t.precision() {
        Precision::Hour => 3_600_000,
        Precision::Minute => 60_000,
        Precision::Second => 1000,
        _ => 1,
    };
    let ms = unit.millis().checked_mul(amount)? / unit_ms * unit_ms;
    let total = t.total_millis().checked_add(ms)?.rem_euclid(86_400_000);
    Some(Time {
        hour: (total / 3_600_000) as u8,
        minute: t.minute.map(|_| ((total / 60_000) % 60) as u8),
        second: t.second.map(|_| ((total / 1000) % 60) as u8),
        millis: t.millis.map(|_| (total % 1000) as u16),
    })
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
            if let Some(d) = self.day {
                write!(f, "-{d:02}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.hour)?;
        if let Some(m) = self.minute {
            write!(f, ":{m:02}")?;
            if let Some(s) = self.second {
                write!(f, ":{s:02}")?;
                if let Some(ms) = self.millis {
                    write!(f, ".{ms:03}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date)?;
        if let Some(t) = &self.time {
            write!(f, "T{t}")?;
            match self.offset {
                Some(0) => write!(f, "Z")?,
                Some(o) => {
                    let sign = if o < 0 { '-' } else { '+' };
                    let o = o.unsigned_abs();
                    write!(f, "{sign}{:02}:{:02}", o / 60, o % 60)?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// The current UTC date-time with millisecond precision.
pub fn now_utc() -> DateTime {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let proto = DateTime {
        date: Date {
            year: 1970,
            month: Some(1),
            day: Some(1),
        },
        time: Some(Time {
            hour: 0,
            minute: Some(0),
            second: Some(0),
            millis: Some(0),
        }),
        offset: Some(0),
    };
    proto.with_local_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        for s in [
            "2015",
            "2015-02",
            "2015-02-04",
            "2015-02-04T14",
            "2015-02-04T14:34:28.123+10:00",
            "2015-02-04T14:34:28Z",
        ] {
            assert_eq!(
                DateTime::parse(s).map(|d| d.to_string()).as_deref(),
                Some(s)
            );
        }
        assert!(DateTime::parse("2015-13").is_none());
        assert!(DateTime::parse("2015-02-30").is_none());
        assert_eq!(Time::parse("14:34:28.5").map(|t| t.millis), Some(Some(500)));
    }

    #[test]
    fn civil_roundtrip() {
        for days in [-800_000i64, -1, 0, 1, 11_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn compare_with_offsets() {
        let a = DateTime::parse("2017-11-05T01:30:00.0-04:00").unwrap();
        let b = DateTime::parse("2017-11-05T01:15:00.0-05:00").unwrap();
        assert_eq!(a.compare(&b), Some(Ordering::Less));
        let c = DateTime::parse("2012-04-15T15:00:00Z").unwrap();
        let d = DateTime::parse("2012-04-15T10:00:00").unwrap();
        assert_eq!(c.compare(&d), None);
    }

    #[test]
    fn arithmetic() {
        let d = Date::parse("1973-12-25").unwrap();
        assert_eq!(
            add_to_date(d, 1, CalendarUnit::Month).unwrap().to_string(),
            "1974-01-25"
        );
        assert_eq!(
            add_to_date(d, 7, CalendarUnit::Day).unwrap().to_string(),
            "1974-01-01"
        );
        let dt = DateTime::parse("1973-12-25T00:00:00.000+10:00").unwrap();
        assert_eq!(
            dt.add(10, CalendarUnit::Millisecond).unwrap().to_string(),
            "1973-12-25T00:00:00.010+10:00"
        );
        let jan31 = Date::parse("2021-01-31").unwrap();
        assert_eq!(
            add_to_date(jan31, 1, CalendarUnit::Month)
                .unwrap()
                .to_string(),
            "2021-02-28"
        );
    }
}
