//! Date searches partition the timeline (issue 19): for every year and month that the
//! Observation, DiagnosticReport and Encounter dates (and the zone-less Patient birth dates)
//! of the loaded Synthea data touch, the server's count equals one computed here from the raw
//! JSON (a value matches a year or month when its whole interval lies inside it, read in UTC,
//! the default `FHIR_DEFAULT_TIME_ZONE`); the month counts of a year add up to at most the
//! year's count (exactly, for instants); and `sa`/`eb` around a year find the year's set.

use super::{Data, Server, count, days_from_civil, instant, period};

const DAY: i64 = 86_400_000;

/// The first instant (UTC, ms) of a month (`m` 1..=13, 13 being January of the next year).
fn month_start(y: i64, m: i64) -> i64 {
    let (y, m) = if m == 13 { (y + 1, 1) } else { (y, m) };
    days_from_civil(y, m, 1) * DAY
}

/// The year (UTC) of an instant.
fn year_of(ms: i64) -> i64 {
    let mut y = 1970 + ms.div_euclid(365 * DAY);
    while month_start(y, 1) > ms {
        y -= 1;
    }
    while month_start(y + 1, 1) <= ms {
        y += 1;
    }
    y
}

/// How many of the half-open intervals lie inside `[lo, hi)`.
fn inside(intervals: &[(i64, i64)], lo: i64, hi: i64) -> usize {
    intervals
        .iter()
        .filter(|(a, b)| *a >= lo && *b <= hi)
        .count()
}

/// Checks the partition rule for one date parameter of one type; `instants` says every
/// value is shorter than a second, so the months of a year find exactly the year's values.
fn check(s: &Server, ty: &str, param: &str, intervals: &[(i64, i64)], instants: bool) {
    let years = intervals
        .iter()
        .flat_map(|(a, b)| [*a, b - 1])
        .filter(|x| *x != i64::MAX - 1)
        .map(year_of);
    let (first, last) = years.fold((i64::MAX, i64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    assert!(first <= last, "{ty}: no dates");
    let mut queries = 0;
    for y in first - 1..=last + 1 {
        let expected = inside(intervals, month_start(y, 1), month_start(y + 1, 1));
        let year = count(s, &format!("{ty}?{param}={y:04}"));
        assert_eq!(year, expected as u64, "{ty}?{param}={y:04}");
        let bounds = format!("{param}=sa{:04}&{param}=eb{:04}", y - 1, y + 1);
        assert_eq!(
            count(s, &format!("{ty}?{bounds}")),
            year,
            "{ty}?{bounds} against {param}={y:04}"
        );
        // Both clauses together find as many: the two sets are the same.
        assert_eq!(
            count(s, &format!("{ty}?{param}={y:04}&{bounds}")),
            year,
            "{ty}?{param}={y:04}&{bounds}"
        );
        let mut months = 0;
        for m in 1..=12 {
            let expected = inside(intervals, month_start(y, m), month_start(y, m + 1));
            let n = count(s, &format!("{ty}?{param}={y:04}-{m:02}"));
            assert_eq!(n, expected as u64, "{ty}?{param}={y:04}-{m:02}");
            months += n;
        }
        assert!(months <= year, "{ty} {y}: months {months} > year {year}");
        if instants {
            assert_eq!(months, year, "{ty} {y}: the months cover the year");
        }
        queries += 15;
    }
    println!(
        "{ty}?{param}: years {first}..={last} ({} values, {queries} queries) agree",
        intervals.len()
    );
}

/// Runs the checks over the loaded data.
pub fn run(s: &Server, data: &Data) {
    for ty in ["Observation", "DiagnosticReport"] {
        let v: Vec<(i64, i64)> = data
            .of_type(ty)
            .map(|r| instant(r["effectiveDateTime"].as_str().unwrap()))
            .collect();
        check(s, ty, "date", &v, true);
    }
    let v: Vec<(i64, i64)> = data
        .of_type("Encounter")
        .map(|e| period(&e["period"]))
        .collect();
    check(s, "Encounter", "date", &v, false);
    // Birth dates have no zone: read in UTC, a day is [midnight, next midnight).
    let v: Vec<(i64, i64)> = data
        .of_type("Patient")
        .map(|p| {
            let d = p["birthDate"].as_str().unwrap();
            let n = |a: usize, b: usize| d[a..b].parse::<i64>().unwrap();
            let start = days_from_civil(n(0, 4), n(5, 7), n(8, 10)) * DAY;
            (start, start + DAY)
        })
        .collect();
    check(s, "Patient", "birthdate", &v, true);
}
