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
//! in queries) are read in one configured [`Zone`] (`FHIR_DEFAULT_TIME_ZONE`, default UTC, as
//! Blaze; the spec says "the server's local time zone should be assumed"): each bound of the
//! interval is the instant at which that wall-clock time occurs in the zone. Every value is
//! then a plain interval of instants, so day, month and year searches partition the timeline
//! (the twelve months of a year are disjoint and cover it; `sa`/`eb` around a year find the
//! same set as the year), and zone-less stored values compare with zoned ones by instant.
//! [`DateRange::floating`] only records that the value was written without a zone.
//!
//! Wall-clock times that a zone skips (a daylight-saving gap) or repeats (a fold) are read
//! as RFC 5545 does (jiff's `compatible`): a skipped time with the offset before the gap, a
//! repeated time at its earlier instant.

use flint_fhirpath::temporal::{DateTime, civil_from_days, days_from_civil};
use serde_json::Value;
use std::fmt;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// The time zone in which date values without one are read (see the module documentation).
#[derive(Clone)]
pub struct Zone {
    name: String,
    kind: ZoneKind,
}

#[derive(Clone)]
enum ZoneKind {
    /// A constant offset from UTC in milliseconds (`UTC`, `+05:30`).
    Fixed(i64),
    /// A zone of the IANA database (bundled with the binary, so every node reads it alike).
    Iana(jiff::tz::TimeZone),
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

impl PartialEq for Zone {
    fn eq(&self, o: &Zone) -> bool {
        self.name == o.name
    }
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::utc()
    }
}

impl Zone {
    /// UTC (the default).
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            kind: ZoneKind::Fixed(0),
        }
    }

    /// A zone by name: `UTC`/`Z`, a fixed offset `±hh:mm` (`+05:30`, `-08:00`, at most 14
    /// hours), or an IANA name (`Europe/Berlin`, `America/New_York`).
    pub fn parse(s: &str) -> Result<Zone, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(Zone::utc());
        }
        if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
            let b = s.as_bytes();
            let digits = |r: std::ops::Range<usize>| {
                s.get(r)
                    .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
                    .and_then(|x| x.parse::<i64>().ok())
            };
            let (h, m) = match (b.len(), digits(1..3), b.get(3), digits(4..6)) {
                (6, Some(h), Some(b':'), Some(m)) if m < 60 && h * 60 + m <= 14 * 60 => (h, m),
                _ => {
                    return Err(format!(
                        "`{s}` is not an offset of the form ±hh:mm up to ±14:00"
                    ));
                }
            };
            let ms = (h * 60 + m) * 60_000;
            return Ok(Zone {
                name: s.to_string(),
                kind: ZoneKind::Fixed(if sign == '-' { -ms } else { ms }),
            });
        }
        let tz = jiff::tz::TimeZone::get(s)
            .map_err(|e| format!("`{s}` is not a known IANA time zone ({e})"))?;
        Ok(Zone {
            name: tz.iana_name().unwrap_or(s).to_string(),
            kind: ZoneKind::Iana(tz),
        })
    }

    /// The name as configured (`UTC`, `+05:30`, `Europe/Berlin`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instant (epoch ms) at which the wall-clock time `local` (milliseconds since
    /// 1970-01-01T00:00 on the wall clock) occurs in this zone.
    pub fn instant(&self, local: i64) -> i64 {
        match &self.kind {
            ZoneKind::Fixed(o) => local.saturating_sub(*o),
            ZoneKind::Iana(tz) => local.saturating_sub(iana_offset(tz, local)),
        }
    }
}

/// The UTC offset (ms) of wall-clock time `local` in `tz`; outside the years jiff represents
/// (±9999), the offset at the nearest representable time.
fn iana_offset(tz: &jiff::tz::TimeZone, local: i64) -> i64 {
    // jiff's range is years -9999..=9999; stay a day inside it.
    const LO: i64 = -(9998 - 1970) * 365 * DAY;
    const HI: i64 = (9998 - 1970) * 365 * DAY;
    let l = local.clamp(LO, HI);
    let (y, m, d) = civil_from_days(l.div_euclid(DAY));
    let ms = l.rem_euclid(DAY);
    let dt = jiff::civil::DateTime::new(
        y as i16,
        m as i8,
        d as i8,
        (ms / HOUR) as i8,
        (ms / 60_000 % 60) as i8,
        (ms / 1000 % 60) as i8,
        (ms % 1000) as i32 * 1_000_000,
    );
    match dt.and_then(|dt| tz.to_ambiguous_timestamp(dt).compatible()) {
        Ok(ts) => l - ts.as_millisecond(),
        Err(_) => 0,
    }
}

/// An inclusive interval of instants in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DateRange {
    /// First instant (inclusive); [`DateRange::MIN`] when open.
    pub start: i64,
    /// Last instant (inclusive); [`DateRange::MAX`] when open.
    pub end: i64,
    /// Whether the value was written without a time zone (its bounds were read in the
    /// configured [`Zone`]); matching does not look at it.
    pub floating: bool,
}

impl DateRange {
    /// The open lower bound.
    pub const MIN: i64 = i64::MIN;
    /// The open upper bound.
    pub const MAX: i64 = i64::MAX;

    /// The interval of a date, dateTime or instant text at its precision, a value without a
    /// time zone read in `zone`; `None` if invalid.
    pub fn parse(s: &str, zone: &Zone) -> Option<DateRange> {
        DateTime::parse(s.trim()).and_then(|d| DateRange::of(&d, zone))
    }

    /// The interval of a FHIRPath date-time value at its precision, a value without a time
    /// zone read in `zone`.
    pub fn of(d: &DateTime, zone: &Zone) -> Option<DateRange> {
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
        if let (Some(_), Some(o)) = (d.time, d.offset) {
            let offset = i64::from(o) * 60_000;
            return Some(DateRange {
                start: start - offset,
                end: next - 1 - offset,
                floating: false,
            });
        }
        Some(DateRange {
            start: zone.instant(start),
            end: zone.instant(next) - 1,
            floating: true,
        })
    }

    /// A Period: from its start's lower to its end's upper bound (an end before the start
    /// is taken as the start); `None` if both are absent or unparsable.
    pub fn period(start: Option<&str>, end: Option<&str>, zone: &Zone) -> Option<DateRange> {
        let s = start.and_then(|x| DateRange::parse(x, zone));
        let e = end.and_then(|x| DateRange::parse(x, zone));
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
            (Some(s), Some(e)) => DateRange {
                start: s.start,
                end: e.end.max(s.start),
                floating: s.floating && e.floating,
            },
        })
    }

    /// The smallest range covering `self` and `o`.
    pub fn hull(&self, o: &DateRange) -> DateRange {
        DateRange {
            start: self.start.min(o.start),
            end: self.end.max(o.end),
            floating: self.floating && o.floating,
        }
    }
}

/// The outer limits of a Timing: its events and `repeat.boundsPeriod`.
pub(crate) fn timing(v: &Value, zone: &Zone) -> Option<DateRange> {
    let mut acc: Option<DateRange> = None;
    let mut add = |r: DateRange| {
        acc = Some(match acc {
            Some(a) => a.hull(&r),
            None => r,
        })
    };
    if let Some(events) = v.get("event").and_then(Value::as_array) {
        for e in events.iter().filter_map(Value::as_str) {
            if let Some(r) = DateRange::parse(e, zone) {
                add(r);
            }
        }
    }
    if let Some(p) = v.get("repeat").and_then(|r| r.get("boundsPeriod"))
        && let Some(r) = period_of(p, zone)
    {
        add(r);
    }
    acc
}

/// The range of a Period JSON object.
pub(crate) fn period_of(v: &Value, zone: &Zone) -> Option<DateRange> {
    DateRange::period(
        v.get("start").and_then(Value::as_str),
        v.get("end").and_then(Value::as_str),
        zone,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> Zone {
        Zone::utc()
    }

    /// The first instant of a zoned value.
    fn ms(s: &str) -> i64 {
        DateRange::parse(s, &utc()).unwrap().start
    }

    #[test]
    fn precision_intervals() {
        let z = utc();
        let y = DateRange::parse("2000", &z).unwrap();
        assert!(y.floating);
        assert_eq!(y.start, ms("2000-01-01T00:00:00.000Z"));
        assert_eq!(y.end, ms("2000-12-31T23:59:59.999Z"));
        let m = DateRange::parse("2000-02", &z).unwrap();
        assert_eq!(m.end, ms("2000-02-29T23:59:59.999Z"));
        let m = DateRange::parse("1999-12", &z).unwrap();
        assert_eq!(m.end, ms("1999-12-31T23:59:59.999Z"));
        let d = DateRange::parse("2000-03-01", &z).unwrap();
        assert_eq!(
            (d.start, d.end),
            (
                ms("2000-03-01T00:00:00.000Z"),
                ms("2000-03-01T23:59:59.999Z")
            )
        );
        let s = DateRange::parse("2000-03-01T10:30:15+02:00", &z).unwrap();
        assert!(!s.floating);
        assert_eq!(
            (s.start, s.end),
            (
                ms("2000-03-01T08:30:15.000Z"),
                ms("2000-03-01T08:30:15.999Z")
            )
        );
        let mi = DateRange::parse("2000-03-01T10:30Z", &z).unwrap();
        assert_eq!(mi.end - mi.start, 59_999);
        let f = DateRange::parse("2000-03-01T10:30:15.123456Z", &z).unwrap();
        assert_eq!(f.start, f.end);
        let nz = DateRange::parse("2000-03-01T10:30:15", &z).unwrap();
        assert!(nz.floating);
        assert_eq!(nz.start, ms("2000-03-01T10:30:15Z"));
        assert!(DateRange::parse("2000-13", &z).is_none());
        assert!(DateRange::parse("2000-02-30", &z).is_none());
        assert!(DateRange::parse("garbage", &z).is_none());
        assert!(DateRange::parse("9999", &z).is_some());
        assert!(DateRange::parse("0001-01-01", &z).is_some());
    }

    #[test]
    fn zone_names() {
        assert_eq!(Zone::parse("UTC").unwrap(), Zone::utc());
        assert_eq!(Zone::parse("Z").unwrap().instant(5), 5);
        assert_eq!(Zone::parse("+05:30").unwrap().instant(0), -330 * 60_000);
        assert_eq!(Zone::parse("-08:00").unwrap().instant(0), 8 * HOUR);
        assert_eq!(
            Zone::parse("Europe/Berlin").unwrap().name(),
            "Europe/Berlin"
        );
        for bad in [
            "+5:30",
            "+15:00",
            "-08:60",
            "+0800",
            "Mars/Olympus",
            "",
            "+",
        ] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zone_less_values_are_read_in_the_zone() {
        let ny = Zone::parse("America/New_York").unwrap();
        // Winter: UTC−5; summer: UTC−4.
        let jan = DateRange::parse("2021-01-15", &ny).unwrap();
        assert_eq!(jan.start, ms("2021-01-15T05:00:00Z"));
        assert_eq!(jan.end, ms("2021-01-16T04:59:59.999Z"));
        let jul = DateRange::parse("2021-07-15T12:00:00", &ny).unwrap();
        assert_eq!(jul.start, ms("2021-07-15T16:00:00Z"));
        // The day clocks went forward has 23 hours, the one they went back 25.
        let spring = DateRange::parse("2021-03-14", &ny).unwrap();
        assert_eq!(spring.end + 1 - spring.start, 23 * HOUR);
        let fall = DateRange::parse("2021-11-07", &ny).unwrap();
        assert_eq!(fall.end + 1 - fall.start, 25 * HOUR);
        // A skipped wall-clock time takes the offset before the gap; a repeated one its
        // earlier instant.
        let gap = DateRange::parse("2021-03-14T02:30:00", &ny).unwrap();
        assert_eq!(gap.start, ms("2021-03-14T07:30:00Z"));
        let fold = DateRange::parse("2021-11-07T01:30:00", &ny).unwrap();
        assert_eq!(fold.start, ms("2021-11-07T05:30:00Z"));
        // Zoned values ignore the zone.
        let z = DateRange::parse("2021-01-15T00:00:00Z", &ny).unwrap();
        assert_eq!(z.start, ms("2021-01-15T00:00:00Z"));
        // The extremes of the FHIR range convert.
        assert!(DateRange::parse("9999", &ny).unwrap().end > ms("9999-12-31T23:59:59Z"));
        assert!(DateRange::parse("0001", &ny).is_some());
    }

    #[test]
    fn months_and_days_partition_their_year_in_any_zone() {
        for name in [
            "UTC",
            "+05:30",
            "-03:00",
            "America/New_York",
            "Australia/Lord_Howe",
        ] {
            let z = Zone::parse(name).unwrap();
            for year in [1883, 1970, 1996, 2021, 2024] {
                let y = DateRange::parse(&year.to_string(), &z).unwrap();
                let mut next = y.start;
                for m in 1..=12 {
                    let r = DateRange::parse(&format!("{year}-{m:02}"), &z).unwrap();
                    assert_eq!(r.start, next, "{name} {year}-{m}");
                    assert!(r.end >= r.start);
                    let mut day_next = r.start;
                    let days = flint_fhirpath::temporal::days_in_month(year, m);
                    for d in 1..=days {
                        let dr = DateRange::parse(&format!("{year}-{m:02}-{d:02}"), &z).unwrap();
                        assert_eq!(dr.start, day_next, "{name} {year}-{m}-{d}");
                        day_next = dr.end + 1;
                    }
                    assert_eq!(day_next, r.end + 1, "{name} {year}-{m}");
                    next = r.end + 1;
                }
                assert_eq!(next, y.end + 1, "{name} {year}");
            }
        }
    }

    #[test]
    fn periods_and_timings() {
        let z = utc();
        let p = DateRange::period(Some("2000-01-01"), Some("2000-01-31"), &z).unwrap();
        assert_eq!(p.end, ms("2000-01-31T23:59:59.999Z"));
        assert!(p.floating);
        let open = DateRange::period(Some("2000-01-01T00:00:00Z"), None, &z).unwrap();
        assert_eq!(open.end, DateRange::MAX);
        let mixed =
            DateRange::period(Some("2000-01-01"), Some("2000-01-02T00:00:00+01:00"), &z).unwrap();
        assert!(!mixed.floating);
        assert_eq!(mixed.start, ms("2000-01-01T00:00:00.000Z"));
        assert_eq!(mixed.end, ms("2000-01-01T23:00:00.999Z"));
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let b = DateRange::period(Some("2000-01-01"), None, &berlin).unwrap();
        assert_eq!(b.start, ms("1999-12-31T23:00:00Z"));
        let t: Value = serde_json::from_str(
            r#"{"event":["2013-02-01","2013-01-31"],"repeat":{"boundsPeriod":{"end":"2013-03-24"}}}"#,
        )
        .unwrap();
        let r = timing(&t, &z).unwrap();
        assert_eq!(r.start, DateRange::MIN);
        assert_eq!(r.end, ms("2013-03-24T23:59:59.999Z"));
        let t: Value = serde_json::from_str(r#"{"event":["2013-02-01","2013-01-31"]}"#).unwrap();
        let r = timing(&t, &z).unwrap();
        assert_eq!(
            (r.start, r.end),
            (
                ms("2013-01-31T00:00:00.000Z"),
                ms("2013-02-01T23:59:59.999Z")
            )
        );
        assert!(timing(&serde_json::json!({"code": {}}), &z).is_none());
    }
}
