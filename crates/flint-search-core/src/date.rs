//! Date search values: every date, dateTime, instant, Period and Timing as an inclusive
//! interval of instants (epoch milliseconds) at the precision the value was written with.
//!
//! `2000` is `[2000-01-01T00:00:00.000, 2000-12-31T23:59:59.999]`, `2000-03-04T10:30Z` is
//! `[10:30:00.000Z, 10:30:59.999Z]`; fractional seconds beyond milliseconds are truncated. A
//! Period spans from its start's lower bound to its end's upper bound (an absent side is
//! open: [`DateRange::MIN`]/[`DateRange::MAX`]); a Timing spans the outer limits of its events
//! and `repeat.boundsPeriod` (scheduling details are ignored, as the spec asks).
//!
//! **Values without a time zone** (dates, and date-times without an offset, in resources and
//! in queries) are *floating*: the interval holds the wall-clock time as if it were UTC and
//! [`DateRange::floating`] is set. They are never silently taken as UTC:
//! - two floating values are compared by wall clock (a birth date against a date query: the
//!   same unknown zone is assumed on both sides, so `birthdate=2000` matches `2000-12-31` and
//!   not `2001-01-01`);
//! - a floating value compared with a zoned one is widened to every instant it can denote,
//!   `[start − 14h, end + 12h]` (UTC offsets range from −12:00 to +14:00), see
//!   [`DateRange::widened`]. So `eq2000` contains `2000-12-31T23:59:59Z` and also
//!   `2001-01-01T11:59:59Z` (still 2000 somewhere west), but not `2001-01-01T12:00:00Z`.
//!
//! A storage layer that keeps one interval per value should store the widened bounds together
//! with the floating flag (or both intervals) to reproduce these semantics.

use flint_fhirpath::temporal::{DateTime, days_from_civil};
use serde_json::Value;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// Largest eastward UTC offset (+14:00) in milliseconds.
pub const MAX_EAST: i64 = 14 * HOUR;
/// Largest westward UTC offset (−12:00) in milliseconds.
pub const MAX_WEST: i64 = 12 * HOUR;

/// An inclusive interval of instants in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DateRange {
    /// First instant (inclusive); [`DateRange::MIN`] when open.
    pub start: i64,
    /// Last instant (inclusive); [`DateRange::MAX`] when open.
    pub end: i64,
    /// Whether the value had no time zone (bounds are wall-clock time read as UTC).
    pub floating: bool,
}

impl DateRange {
    /// The open lower bound.
    pub const MIN: i64 = i64::MIN;
    /// The open upper bound.
    pub const MAX: i64 = i64::MAX;

    /// The interval of a date, dateTime or instant text at its precision; `None` if invalid.
    pub fn parse(s: &str) -> Option<DateRange> {
        DateTime::parse(s.trim()).and_then(|d| DateRange::of(&d))
    }

    /// The interval of a FHIRPath date-time value at its precision.
    pub fn of(d: &DateTime) -> Option<DateRange> {
        let date = d.date;
        let (start, next) = match (date.month, date.day, d.time) {
            (None, _, _) => (
                days_from_civil(date.year, 1, 1) * DAY,
                days_from_civil(date.year.checked_add(1)?, 1, 1) * DAY,
            ),
            (Some(m), None, _) => {
                let (ny, nm) = if m == 12 {
                    (date.year.checked_add(1)?, 1)
                } else {
                    (date.year, m + 1)
                };
                (
                    days_from_civil(date.year, m, 1) * DAY,
                    days_from_civil(ny, nm, 1) * DAY,
                )
            }
            (Some(m), Some(day), None) => {
                let s = days_from_civil(date.year, m, day) * DAY;
                (s, s + DAY)
            }
            (Some(m), Some(day), Some(t)) => {
                let mut s = days_from_civil(date.year, m, day) * DAY + i64::from(t.hour) * HOUR;
                let step = match (t.minute, t.second, t.millis) {
                    (None, _, _) => HOUR,
                    (Some(mi), None, _) => {
                        s += i64::from(mi) * 60_000;
                        60_000
                    }
                    (Some(mi), Some(sec), ms) => {
                        s += i64::from(mi) * 60_000 + i64::from(sec) * 1000;
                        match ms {
                            Some(ms) => {
                                s += i64::from(ms);
                                1
                            }
                            None => 1000,
                        }
                    }
                };
                (s, s + step)
            }
        };
        let (offset, floating) = match (d.time, d.offset) {
            (Some(_), Some(o)) => (i64::from(o) * 60_000, false),
            _ => (0, true),
        };
        Some(DateRange {
            start: start - offset,
            end: next - 1 - offset,
            floating,
        })
    }

    /// The instants the value can denote: widened by the maximum zone offsets when floating.
    pub fn widened(&self) -> DateRange {
        if !self.floating {
            return *self;
        }
        DateRange {
            start: if self.start == Self::MIN {
                Self::MIN
            } else {
                self.start.saturating_sub(MAX_EAST)
            },
            end: if self.end == Self::MAX {
                Self::MAX
            } else {
                self.end.saturating_add(MAX_WEST)
            },
            floating: false,
        }
    }

    /// Brings two ranges to a common footing: unchanged if both are floating or both zoned,
    /// otherwise the floating one widened (see the module documentation).
    pub fn align(a: &DateRange, b: &DateRange) -> (DateRange, DateRange) {
        if a.floating == b.floating {
            (*a, *b)
        } else {
            (a.widened(), b.widened())
        }
    }

    /// A Period: from its start's lower to its end's upper bound; `None` if both are absent
    /// or unparsable. Mixed floating/zoned ends are widened individually.
    pub fn period(start: Option<&str>, end: Option<&str>) -> Option<DateRange> {
        let s = start.and_then(DateRange::parse);
        let e = end.and_then(DateRange::parse);
        Some(match (s, e) {
            (None, None) => return None,
            (Some(s), None) => DateRange {
                end: Self::MAX,
                ..s
            },
            (None, Some(e)) => DateRange {
                start: Self::MIN,
                ..e
            },
            (Some(s), Some(e)) => {
                let (s, e) = DateRange::align(&s, &e);
                DateRange {
                    start: s.start,
                    end: e.end.max(s.start),
                    floating: s.floating,
                }
            }
        })
    }

    /// The smallest range covering `self` and `o` (aligning floating and zoned values).
    pub fn hull(&self, o: &DateRange) -> DateRange {
        let (a, b) = DateRange::align(self, o);
        DateRange {
            start: a.start.min(b.start),
            end: a.end.max(b.end),
            floating: a.floating,
        }
    }
}

/// The outer limits of a Timing: its events and `repeat.boundsPeriod`.
pub(crate) fn timing(v: &Value) -> Option<DateRange> {
    let mut acc: Option<DateRange> = None;
    let mut add = |r: DateRange| {
        acc = Some(match acc {
            Some(a) => a.hull(&r),
            None => r,
        })
    };
    if let Some(events) = v.get("event").and_then(Value::as_array) {
        for e in events.iter().filter_map(Value::as_str) {
            if let Some(r) = DateRange::parse(e) {
                add(r);
            }
        }
    }
    if let Some(p) = v.get("repeat").and_then(|r| r.get("boundsPeriod"))
        && let Some(r) = period_of(p)
    {
        add(r);
    }
    acc
}

/// The range of a Period JSON object.
pub(crate) fn period_of(v: &Value) -> Option<DateRange> {
    DateRange::period(
        v.get("start").and_then(Value::as_str),
        v.get("end").and_then(Value::as_str),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        let r = DateRange::parse(s).unwrap();
        assert_eq!(r.start, r.end, "{s}");
        r.start
    }

    #[test]
    fn precision_intervals() {
        let y = DateRange::parse("2000").unwrap();
        assert!(y.floating);
        assert_eq!(y.start, ms("2000-01-01T00:00:00.000Z"));
        assert_eq!(y.end, ms("2000-12-31T23:59:59.999Z"));
        let m = DateRange::parse("2000-02").unwrap();
        assert_eq!(m.end, ms("2000-02-29T23:59:59.999Z"));
        let m = DateRange::parse("1999-12").unwrap();
        assert_eq!(m.end, ms("1999-12-31T23:59:59.999Z"));
        let d = DateRange::parse("2000-03-01").unwrap();
        assert_eq!(
            (d.start, d.end),
            (
                ms("2000-03-01T00:00:00.000Z"),
                ms("2000-03-01T23:59:59.999Z")
            )
        );
        let s = DateRange::parse("2000-03-01T10:30:15+02:00").unwrap();
        assert!(!s.floating);
        assert_eq!(
            (s.start, s.end),
            (
                ms("2000-03-01T08:30:15.000Z"),
                ms("2000-03-01T08:30:15.999Z")
            )
        );
        let mi = DateRange::parse("2000-03-01T10:30Z").unwrap();
        assert_eq!(mi.end - mi.start, 59_999);
        let f = DateRange::parse("2000-03-01T10:30:15.123456Z").unwrap();
        assert_eq!(f.start, f.end);
        let nz = DateRange::parse("2000-03-01T10:30:15").unwrap();
        assert!(nz.floating);
        assert!(DateRange::parse("2000-13").is_none());
        assert!(DateRange::parse("2000-02-30").is_none());
        assert!(DateRange::parse("garbage").is_none());
        assert!(DateRange::parse("9999").is_some());
        assert!(DateRange::parse("0001-01-01").is_some());
    }

    #[test]
    fn widening() {
        let d = DateRange::parse("2000-01-01").unwrap();
        let w = d.widened();
        assert_eq!(w.start, ms("1999-12-31T10:00:00.000Z"));
        assert_eq!(w.end, ms("2000-01-02T11:59:59.999Z"));
        assert!(!w.floating);
        let z = DateRange::parse("2000-01-01T00:00:00Z").unwrap();
        assert_eq!(z.widened(), z);
        let (a, b) = DateRange::align(&d, &z);
        assert_eq!((a, b), (w, z));
    }

    #[test]
    fn periods_and_timings() {
        let p = DateRange::period(Some("2000-01-01"), Some("2000-01-31")).unwrap();
        assert_eq!(p.end, ms("2000-01-31T23:59:59.999Z"));
        assert!(p.floating);
        let open = DateRange::period(Some("2000-01-01T00:00:00Z"), None).unwrap();
        assert_eq!(open.end, DateRange::MAX);
        let mixed = DateRange::period(Some("2000-01-01"), Some("2000-01-02T00:00:00Z")).unwrap();
        assert!(!mixed.floating);
        assert_eq!(mixed.start, ms("1999-12-31T10:00:00.000Z"));
        let t: Value = serde_json::from_str(
            r#"{"event":["2013-02-01","2013-01-31"],"repeat":{"boundsPeriod":{"end":"2013-03-24"}}}"#,
        )
        .unwrap();
        let r = timing(&t).unwrap();
        assert_eq!(r.start, DateRange::MIN);
        assert_eq!(r.end, ms("2013-03-24T23:59:59.999Z"));
        let t: Value = serde_json::from_str(r#"{"event":["2013-02-01","2013-01-31"]}"#).unwrap();
        let r = timing(&t).unwrap();
        assert_eq!(
            (r.start, r.end),
            (
                ms("2013-01-31T00:00:00.000Z"),
                ms("2013-02-01T23:59:59.999Z")
            )
        );
        assert!(timing(&serde_json::json!({"code": {}})).is_none());
    }
}
