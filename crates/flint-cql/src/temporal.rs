//! CQL Date, DateTime and Time values with partial precision and timezone offsets.
//!
//! One representation serves all three: seven components (year, month, day, hour, minute,
//! second, millisecond) of which the first `prec` are known. A Time keeps the date fixed at
//! 0001-01-01 and its precision counts from the year (so an hour-precision time has `prec` 4).

use flint_fhirpath::temporal::{civil_from_days, days_from_civil, days_in_month};
use std::cmp::Ordering;

/// Component names from coarsest to finest.
pub const UNITS: [&str; 7] = [
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "millisecond",
];

/// A partial date/time: components and the number of them known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tm {
    /// Year, month, day, hour, minute, second, millisecond.
    pub v: [i32; 7],
    /// How many components are known (1..=7).
    pub prec: usize,
    /// Offset from UTC in minutes (DateTime only).
    pub offset: Option<i32>,
}

/// The index of a precision name (singular or plural; `week` maps to day).
pub fn unit_index(s: &str) -> Option<usize> {
    let s = s.strip_suffix('s').unwrap_or(s);
    match s {
        "week" => Some(2),
        _ => UNITS.iter().position(|u| *u == s),
    }
}

fn two(s: &str) -> Option<i32> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl Tm {
    /// A value with the given components (`prec` of them known).
    pub fn new(v: [i32; 7], prec: usize, offset: Option<i32>) -> Tm {
        let mut t = Tm { v, prec, offset };
        for i in prec..7 {
            t.v[i] = if i == 1 || i == 2 { 1 } else { 0 };
        }
        t
    }

    /// Whether the known components are in range.
    pub fn valid(&self) -> bool {
        let v = &self.v;
        let lim = [
            (1, 9999),
            (1, 12),
            (1, 31),
            (0, 23),
            (0, 59),
            (0, 59),
            (0, 999),
        ];
        for i in 0..self.prec {
            if v[i] < lim[i].0 || v[i] > lim[i].1 {
                return false;
            }
        }
        !(self.prec >= 3 && v[2] > i32::from(days_in_month(v[0], v[1] as u8)))
    }

    /// Parses the text of a date or date-time literal after `@` (`2014-01-01T10:00:00.0Z`).
    pub fn parse_datetime(s: &str) -> Option<(Tm, bool)> {
        let (date, time) = match s.find('T') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mut v = [0, 1, 1, 0, 0, 0, 0];
        let dp: Vec<&str> = date.split('-').collect();
        if dp.len() > 3 || dp[0].len() != 4 {
            return None;
        }
        v[0] = dp[0].parse().ok()?;
        for (i, p) in dp.iter().enumerate().skip(1) {
            v[i] = two(p)?;
        }
        let mut prec = dp.len();
        let mut offset = None;
        if let Some(t) = time {
            if t.is_empty() {
                let tm = Tm::new(v, prec, None);
                return tm.valid().then_some((tm, true));
            }
            if prec != 3 {
                return None;
            }
            let (tp, off) = split_offset(t)?;
            let (tv, tprec) = parse_time_parts(tp)?;
            v[3..].copy_from_slice(&tv);
            prec = 3 + tprec;
            offset = off;
        }
        let tm = Tm::new(v, prec, offset);
        tm.valid().then_some((tm, time.is_some()))
    }

    /// Parses the text of a time literal after `@T`.
    pub fn parse_time(s: &str) -> Option<Tm> {
        let (tv, tprec) = parse_time_parts(s)?;
        let mut v = [1, 1, 1, 0, 0, 0, 0];
        v[3..].copy_from_slice(&tv);
        let t = Tm::new(v, 3 + tprec, None);
        t.valid().then_some(t)
    }

    /// Milliseconds since 1970 of the known components (missing ones at their minimum).
    pub fn millis(&self) -> i64 {
        let d = days_from_civil(self.v[0], self.v[1] as u8, self.v[2] as u8);
        d * 86_400_000
            + i64::from(self.v[3]) * 3_600_000
            + i64::from(self.v[4]) * 60_000
            + i64::from(self.v[5]) * 1000
            + i64::from(self.v[6])
    }

    /// Rebuilds components from epoch milliseconds, keeping precision and offset.
    pub fn from_millis(ms: i64, prec: usize, offset: Option<i32>) -> Tm {
        let days = ms.div_euclid(86_400_000);
        let r = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let v = [
            y,
            i32::from(m),
            i32::from(d),
            (r / 3_600_000) as i32,
            (r / 60_000 % 60) as i32,
            (r / 1000 % 60) as i32,
            (r % 1000) as i32,
        ];
        Tm::new(v, prec, offset)
    }

    /// The same instant at offset `to` (only when the value has a time part).
    pub fn shift_to(&self, to: i32) -> Tm {
        if self.prec <= 3 {
            return *self;
        }
        let from = self.offset.unwrap_or(to);
        let ms = self.millis() - i64::from(from - to) * 60_000;
        let mut t = Tm::from_millis(ms, self.prec, Some(to));
        // Keep unknown components unknown.
        t.prec = self.prec;
        t
    }

    /// Compares at the common precision; `None` when equal there but precisions differ.
    /// `start` is 0 for dates and date-times, 3 for times; `tz` the default offset.
    pub fn compare(&self, other: &Tm, start: usize, tz: i32) -> Option<Ordering> {
        let (a, b) = if self.prec > 3 && other.prec > 3 && start == 0 {
            (self.shift_to(0), other.shift_to(0))
        } else {
            let _ = tz;
            (*self, *other)
        };
        let (a, b) = if start == 0 && (self.offset.is_none() || other.offset.is_none()) {
            (
                if self.offset.is_none() && self.prec > 3 {
                    self.with_tz(tz).shift_to(0)
                } else {
                    a
                },
                if other.offset.is_none() && other.prec > 3 {
                    other.with_tz(tz).shift_to(0)
                } else {
                    b
                },
            )
        } else {
            (a, b)
        };
        // Seconds and milliseconds compare as one precision.
        let (pa, pb) = (a.prec, b.prec);
        let n = pa.min(pb);
        for i in start..n {
            match a.v[i].cmp(&b.v[i]) {
                Ordering::Equal => {}
                o => return Some(o),
            }
        }
        (pa == pb).then_some(Ordering::Equal)
    }

    /// Sets a missing offset.
    pub fn with_tz(&self, tz: i32) -> Tm {
        Tm {
            offset: Some(self.offset.unwrap_or(tz)),
            ..*self
        }
    }

    /// Compares at precision `p` (index of the finest component compared); `None` if either
    /// value stops before `p` and the known part is equal.
    pub fn compare_at(&self, other: &Tm, start: usize, p: usize, tz: i32) -> Option<Ordering> {
        let (a, b) = if start == 0 && self.prec > 3 && other.prec > 3 {
            (self.with_tz(tz).shift_to(0), other.with_tz(tz).shift_to(0))
        } else {
            (*self, *other)
        };
        for i in start..=p {
            if i >= a.prec || i >= b.prec {
                return None;
            }
            match a.v[i].cmp(&b.v[i]) {
                Ordering::Equal => {}
                o => return Some(o),
            }
        }
        Some(Ordering::Equal)
    }

    /// Adds `amount` of the unit with index `u` (see [`UNITS`]; `week` given as 7 days).
    pub fn add(&self, amount: i64, u: usize, is_time: bool) -> Option<Tm> {
        let p = self.prec - 1;
        // Convert the amount to the value's precision when the unit is finer.
        let (amount, u) = if u > p {
            let f: [i64; 7] = [0, 0, 86_400_000, 3_600_000, 60_000, 1000, 1];
            if p == 0 && u == 1 {
                (amount / 12, 0)
            } else if p <= 1 {
                // Year/month precision: days and finer become months (30 days) or years.
                let ms = amount.checked_mul(f[u.max(2)])?;
                let days = ms / 86_400_000;
                if p == 0 {
                    (days / 365, 0)
                } else {
                    (days / 30, 1)
                }
            } else {
                (amount.checked_mul(f[u])? / f[p], p)
            }
        } else {
            (amount, u)
        };
        let mut t = *self;
        if u <= 1 {
            let months = if u == 0 {
                amount.checked_mul(12)?
            } else {
                amount
            };
            let total = (i64::from(t.v[0]) * 12 + i64::from(t.v[1] - 1)).checked_add(months)?;
            let y = total.div_euclid(12);
            if !(1..=9999).contains(&y) {
                return None;
            }
            t.v[0] = y as i32;
            t.v[1] = (total.rem_euclid(12) + 1) as i32;
            t.v[2] = t.v[2].min(i32::from(days_in_month(t.v[0], t.v[1] as u8)));
            return Some(t);
        }
        let f: [i64; 7] = [0, 0, 86_400_000, 3_600_000, 60_000, 1000, 1];
        let delta = amount.checked_mul(f[u])?;
        let ms = t.millis().checked_add(delta)?;
        if is_time {
            let base = Tm::new([1, 1, 1, 0, 0, 0, 0], 3, None).millis();
            let r = (ms - base).rem_euclid(86_400_000) + base;
            return Some(Tm::from_millis(r, t.prec, t.offset));
        }
        let r = Tm::from_millis(ms, t.prec, t.offset);
        (1..=9999).contains(&r.v[0]).then_some(r)
    }

    /// Formats as a CQL literal body (without `@`); `time` for Time values, `dt` for DateTime.
    pub fn format(&self, kind: Kind) -> String {
        let v = &self.v;
        let mut s = String::new();
        if kind != Kind::Time {
            s.push_str(&format!("{:04}", v[0]));
            if self.prec > 1 {
                s.push_str(&format!("-{:02}", v[1]));
            }
            if self.prec > 2 {
                s.push_str(&format!("-{:02}", v[2]));
            }
            if kind == Kind::DateTime {
                s.push('T');
            }
        } else {
            s.push('T');
        }
        if self.prec > 3 {
            s.push_str(&format!("{:02}", v[3]));
        }
        if self.prec > 4 {
            s.push_str(&format!(":{:02}", v[4]));
        }
        if self.prec > 5 {
            s.push_str(&format!(":{:02}", v[5]));
        }
        if self.prec > 6 {
            s.push_str(&format!(".{:03}", v[6]));
        }
        if kind == Kind::DateTime && self.prec > 3 {
            match self.offset {
                Some(0) => s.push('Z'),
                Some(o) => s.push_str(&format!(
                    "{}{:02}:{:02}",
                    if o < 0 { '-' } else { '+' },
                    o.abs() / 60,
                    o.abs() % 60
                )),
                None => {}
            }
        }
        s
    }
}

/// Which temporal type a [`Tm`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// System.Date.
    Date,
    /// System.DateTime.
    DateTime,
    /// System.Time.
    Time,
}

fn split_offset(t: &str) -> Option<(&str, Option<i32>)> {
    if let Some(p) = t.strip_suffix('Z') {
        return Some((p, Some(0)));
    }
    if let Some(i) = t.find(['+', '-']) {
        let (p, o) = t.split_at(i);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (h, m) = o[1..].split_once(':')?;
        let (h, m) = (two(h)?, two(m)?);
        if h > 14 || m > 59 {
            return None;
        }
        return Some((p, Some(sign * (h * 60 + m))));
    }
    Some((t, None))
}

fn parse_time_parts(s: &str) -> Option<([i32; 4], usize)> {
    let mut v = [0; 4];
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() > 3 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        v[i] = two(p)?;
    }
    let mut n = parts.len();
    if let Some(f) = frac {
        if n != 3 || f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let f3: String = f.chars().chain("000".chars()).take(3).collect();
        v[3] = f3.parse().ok()?;
        n = 4;
    }
    if v[0] > 23 || v[1] > 59 || v[2] > 59 {
        return None;
    }
    Some((v, n))
}
