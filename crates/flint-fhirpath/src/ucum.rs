//! A small UCUM unit engine: enough of the Unified Code for Units of Measure to compare and
//! convert the quantities FHIR data carries (SI base and derived units with prefixes, time,
//! volume, pressure, common customary units such as `[lb_av]` and `[in_i]`, percent, `10*n`,
//! annotations `{...}`, products, quotients, exponents and parentheses).
//!
//! Units are reduced to a canonical form: a decimal factor and a vector of dimension exponents.
//! Two quantities are comparable when their dimension vectors are equal. FHIRPath calendar
//! durations (`year`, `month`, `week`, `day`, ...) are included: weeks, days and smaller are the
//! definite durations (`7 days = 1 'wk'`), while calendar years and months have their own
//! dimension, so `1 year` and `1 'a'` are not comparable, as the FHIRPath specification states.
//!
//! Unsupported: units with offsets or non-linear scales (`Cel`, `[degF]`, `[pH]`, decibels) and
//! the rarer atoms of the full UCUM table; such units are only comparable to the identical code.
//! `mol` is treated as a base dimension rather than the dimensionless Avogadro number.

use rust_decimal::Decimal;
use std::str::FromStr;

/// Number of dimensions: m, s, g, rad, K, C, cd, mol, calendar month.
const DIMS: usize = 9;

/// A unit reduced to a factor times a product of base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canonical {
    /// Magnitude of one unit in base units.
    pub factor: Decimal,
    /// Exponent of each base dimension.
    pub dims: [i8; DIMS],
}

impl Canonical {
    fn one() -> Self {
        Canonical {
            factor: Decimal::ONE,
            dims: [0; DIMS],
        }
    }

    fn base(i: usize) -> Self {
        let mut c = Self::one();
        if let Some(d) = c.dims.get_mut(i) {
            *d = 1;
        }
        c
    }

    fn mul(self, o: Canonical) -> Option<Canonical> {
        let mut dims = [0i8; DIMS];
        for (i, d) in dims.iter_mut().enumerate() {
            *d = self.dims[i].checked_add(o.dims[i])?;
        }
        Some(Canonical {
            factor: self.factor.checked_mul(o.factor)?,
            dims,
        })
    }

    fn pow(self, e: i32) -> Option<Canonical> {
        let mut r = Canonical::one();
        let base = if e < 0 { self.inv()? } else { self };
        for _ in 0..e.unsigned_abs() {
            r = r.mul(base)?;
        }
        Some(r)
    }

    fn inv(self) -> Option<Canonical> {
        let mut dims = self.dims;
        for d in dims.iter_mut() {
            *d = d.checked_neg()?;
        }
        Some(Canonical {
            factor: Decimal::ONE.checked_div(self.factor)?,
            dims,
        })
    }
}

/// (symbol, metric (takes prefixes), value, definition). An empty definition with a numeric
/// value names a base dimension index instead (`"#0"`).
const ATOMS: &[(&str, bool, &str, &str)] = &[
    ("m", true, "1", "#0"),
    ("s", true, "1", "#1"),
    ("g", true, "1", "#2"),
    ("rad", true, "1", "#3"),
    ("K", true, "1", "#4"),
    ("C", true, "1", "#5"),
    ("cd", true, "1", "#6"),
    ("mol", true, "1", "#7"),
    ("10*", false, "10", "1"),
    ("10^", false, "10", "1"),
    ("%", false, "0.01", "1"),
    ("[ppth]", false, "0.001", "1"),
    ("[ppm]", false, "0.000001", "1"),
    ("[ppb]", false, "0.000000001", "1"),
    ("[pi]", false, "3.1415926535897932384626433833", "1"),
    ("sr", true, "1", "rad2"),
    ("Hz", true, "1", "s-1"),
    ("N", true, "1", "kg.m/s2"),
    ("Pa", true, "1", "N/m2"),
    ("J", true, "1", "N.m"),
    ("W", true, "1", "J/s"),
    ("A", true, "1", "C/s"),
    ("V", true, "1", "J/C"),
    ("F", true, "1", "C/V"),
    ("Ohm", true, "1", "V/A"),
    ("S", true, "1", "Ohm-1"),
    ("Wb", true, "1", "V.s"),
    ("T", true, "1", "Wb/m2"),
    ("H", true, "1", "Wb/A"),
    ("lm", true, "1", "cd.sr"),
    ("lx", true, "1", "lm/m2"),
    ("Bq", true, "1", "s-1"),
    ("Gy", true, "1", "J/kg"),
    ("Sv", true, "1", "J/kg"),
    ("kat", true, "1", "mol/s"),
    ("U", true, "1", "umol/min"),
    ("min", false, "60", "s"),
    ("h", false, "60", "min"),
    ("d", false, "24", "h"),
    ("wk", false, "7", "d"),
    ("a_j", false, "365.25", "d"),
    ("a_g", false, "365.2425", "d"),
    ("a_t", false, "365.24219", "d"),
    ("a", false, "1", "a_j"),
    ("mo_j", false, "1", "a_j/12"),
    ("mo_g", false, "1", "a_g/12"),
    ("mo_s", false, "29.53059", "d"),
    ("mo", false, "1", "mo_j"),
    ("l", true, "1", "dm3"),
    ("L", true, "1", "l"),
    ("t", true, "1000", "kg"),
    ("bar", true, "100000", "Pa"),
    ("atm", false, "101325", "Pa"),
    ("m[Hg]", true, "133.322", "kPa"),
    ("m[H2O]", true, "9.80665", "kPa"),
    ("eq", true, "1", "mol"),
    ("osm", true, "1", "mol"),
    ("[iU]", true, "1", "1"),
    ("[IU]", true, "1", "[iU]"),
    ("cal", true, "4.184", "J"),
    ("[Cal]", false, "1", "kcal"),
    ("deg", false, "0.0174532925199432957692369077", "rad"),
    ("[g]", false, "9.80665", "m/s2"),
    ("[in_i]", false, "2.54", "cm"),
    ("[ft_i]", false, "12", "[in_i]"),
    ("[yd_i]", false, "3", "[ft_i]"),
    ("[mi_i]", false, "5280", "[ft_i]"),
    ("[gr]", false, "64.79891", "mg"),
    ("[lb_av]", false, "7000", "[gr]"),
    ("[oz_av]", false, "0.0625", "[lb_av]"),
    ("[stone_av]", false, "14", "[lb_av]"),
    ("[lbf_av]", false, "1", "[lb_av].[g]"),
    ("[psi]", false, "1", "[lbf_av]/[in_i]2"),
    ("[gal_us]", false, "231", "[in_i]3"),
    ("[qt_us]", false, "0.25", "[gal_us]"),
    ("[pt_us]", false, "0.5", "[qt_us]"),
    ("[foz_us]", false, "0.0078125", "[gal_us]"),
    ("[cup_us]", false, "8", "[foz_us]"),
    ("[tbs_us]", false, "0.5", "[foz_us]"),
    (
        "[tsp_us]",
        false,
        "0.33333333333333333333333333",
        "[tbs_us]",
    ),
    ("[drp]", false, "0.05", "mL"),
    ("[mesh_i]", false, "1", "[in_i]-1"),
    ("[cal_IT]", true, "4.1868", "J"),
    ("[degR]", false, "0.55555555555555555555555556", "K"),
    ("[HPF]", false, "1", "1"),
    ("[LPF]", false, "100", "1"),
    ("[arb'U]", false, "1", "1"),
];

const PREFIXES: &[(&str, &str)] = &[
    ("da", "10"),
    ("Y", "1000000000000000000000000"),
    ("Z", "1000000000000000000000"),
    ("E", "1000000000000000000"),
    ("P", "1000000000000000"),
    ("T", "1000000000000"),
    ("G", "1000000000"),
    ("M", "1000000"),
    ("k", "1000"),
    ("h", "100"),
    ("d", "0.1"),
    ("c", "0.01"),
    ("m", "0.001"),
    ("u", "0.000001"),
    ("n", "0.000000001"),
    ("p", "0.000000000001"),
    ("f", "0.000000000000001"),
    ("a", "0.000000000000000001"),
    ("z", "0.000000000000000000001"),
    ("y", "0.000000000000000000000001"),
];

/// The canonical form of a FHIRPath quantity unit: a UCUM code, `1`, or a calendar keyword.
pub fn canonical(unit: &str) -> Option<Canonical> {
    if let Some(c) = calendar_canonical(unit) {
        return Some(c);
    }
    parse_term(unit, 0)
}

fn calendar_canonical(unit: &str) -> Option<Canonical> {
    let secs = match unit {
        "year" | "years" => {
            let mut c = Canonical::base(8);
            c.factor = Decimal::from(12);
            return Some(c);
        }
        "month" | "months" => return Some(Canonical::base(8)),
        "week" | "weeks" => 604_800,
        "day" | "days" => 86_400,
        "hour" | "hours" => 3600,
        "minute" | "minutes" => 60,
        "second" | "seconds" => 1,
        "millisecond" | "milliseconds" => {
            let mut c = Canonical::base(1);
            c.factor = Decimal::new(1, 3);
            return Some(c);
        }
        _ => return None,
    };
    let mut c = Canonical::base(1);
    c.factor = Decimal::from(secs);
    Some(c)
}

/// The UCUM code for a calendar keyword (`week` → `wk`), or the unit itself.
pub fn ucum_code(unit: &str) -> &str {
    match unit {
        "year" | "years" => "a",
        "month" | "months" => "mo",
        "week" | "weeks" => "wk",
        "day" | "days" => "d",
        "hour" | "hours" => "h",
        "minute" | "minutes" => "min",
        "second" | "seconds" => "s",
        "millisecond" | "milliseconds" => "ms",
        u => u,
    }
}

/// Whether two units can be converted into each other.
pub fn comparable(a: &str, b: &str) -> bool {
    a == b
        || match (canonical(a), canonical(b)) {
            (Some(x), Some(y)) => x.dims == y.dims,
            _ => false,
        }
}

/// Converts `value` from unit `from` to unit `to`; `None` when not comparable.
pub fn convert(value: Decimal, from: &str, to: &str) -> Option<Decimal> {
    if from == to {
        return Some(value);
    }
    let (f, t) = (canonical(from)?, canonical(to)?);
    if f.dims != t.dims {
        return None;
    }
    value.checked_mul(f.factor)?.checked_div(t.factor)
}

const MAX_DEPTH: usize = 12;

fn parse_term(s: &str, depth: usize) -> Option<Canonical> {
    if depth > MAX_DEPTH || s.is_empty() {
        return None;
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut acc = Canonical::one();
    let mut divide = false;
    if bytes.first() == Some(&b'/') {
        divide = true;
        pos = 1;
    }
    loop {
        let (comp, next) = parse_component(s, pos, depth)?;
        acc = if divide {
            acc.mul(comp.inv()?)?
        } else {
            acc.mul(comp)?
        };
        pos = next;
        match bytes.get(pos) {
            None => return Some(acc),
            Some(b'.') => divide = false,
            Some(b'/') => divide = true,
            _ => return None,
        }
        pos += 1;
    }
}

/// Parses one component starting at `pos`; returns it and the position after it.
fn parse_component(s: &str, pos: usize, depth: usize) -> Option<(Canonical, usize)> {
    let bytes = s.as_bytes();
    match bytes.get(pos)? {
        b'(' => {
            let mut level = 0;
            let mut end = None;
            for (i, &c) in bytes.iter().enumerate().skip(pos) {
                match c {
                    b'(' => level += 1,
                    b')' => {
                        level -= 1;
                        if level == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end?;
            let inner = parse_term(s.get(pos + 1..end)?, depth + 1)?;
            let (exp, after) = read_exponent(s, end + 1);
            Some((inner.pow(exp.unwrap_or(1))?, skip_annotation(s, after)?))
        }
        b'{' => Some((Canonical::one(), skip_annotation(s, pos)?)),
        _ => {
            let mut end = pos;
            let mut bracket = 0;
            while let Some(&c) = bytes.get(end) {
                match c {
                    b'[' => bracket += 1,
                    b']' => bracket -= 1,
                    b'.' | b'/' | b'(' | b')' | b'{' if bracket == 0 => break,
                    _ => {}
                }
                end += 1;
            }
            let text = s.get(pos..end)?;
            let after = skip_annotation(s, end)?;
            Some((parse_simple(text, depth)?, after))
        }
    }
}

fn skip_annotation(s: &str, pos: usize) -> Option<usize> {
    if s.as_bytes().get(pos) == Some(&b'{') {
        let close = s.get(pos..)?.find('}')?;
        Some(pos + close + 1)
    } else {
        Some(pos)
    }
}

fn read_exponent(s: &str, pos: usize) -> (Option<i32>, usize) {
    let bytes = s.as_bytes();
    let mut end = pos;
    if matches!(bytes.get(end), Some(b'+' | b'-')) {
        end += 1;
    }
    let digits_start = end;
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    if end == digits_start {
        return (None, pos);
    }
    (s.get(pos..end).and_then(|t| t.parse().ok()), end)
}

/// A unit symbol with an optional trailing exponent (`m2`, `s-1`, `10*3`), or an integer.
fn parse_simple(text: &str, depth: usize) -> Option<Canonical> {
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let mut c = Canonical::one();
        c.factor = Decimal::from_str(text).ok()?;
        return Some(c);
    }
    // Split off a trailing exponent unless the symbol ends in a bracket.
    let bytes = text.as_bytes();
    let mut split = bytes.len();
    while split > 0 && bytes[split - 1].is_ascii_digit() {
        split -= 1;
    }
    if split > 0 && split < bytes.len() && matches!(bytes[split - 1], b'+' | b'-') {
        split -= 1;
    }
    let (sym, exp) = if split == 0 || split == bytes.len() {
        (text, 1)
    } else {
        (text.get(..split)?, text.get(split..)?.parse::<i32>().ok()?)
    };
    atom(sym, depth)?.pow(exp)
}

fn atom(sym: &str, depth: usize) -> Option<Canonical> {
    if let Some(c) = lookup(sym, depth) {
        return Some(c.0);
    }
    for (p, v) in PREFIXES {
        if let Some(rest) = sym.strip_prefix(p)
            && let Some((c, true)) = lookup(rest, depth)
        {
            let mut c = c;
            c.factor = c.factor.checked_mul(Decimal::from_str(v).ok()?)?;
            return Some(c);
        }
    }
    None
}

fn lookup(sym: &str, depth: usize) -> Option<(Canonical, bool)> {
    let (_, metric, value, def) = ATOMS.iter().find(|a| a.0 == sym)?;
    let value = Decimal::from_str(value).ok()?;
    let mut c = if let Some(i) = def.strip_prefix('#') {
        Canonical::base(i.parse().ok()?)
    } else {
        parse_term(def, depth + 1)?
    };
    c.factor = c.factor.checked_mul(value)?;
    Some((c, *metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn conversions() {
        assert_eq!(convert(d("4"), "g", "mg"), Some(d("4000")));
        assert_eq!(convert(d("1"), "wk", "d"), Some(d("7")));
        assert_eq!(
            convert(d("7"), "days", "wk").map(|v| v.normalize()),
            Some(d("1"))
        );
        assert_eq!(convert(d("1"), "year", "a"), None);
        assert_eq!(convert(d("1"), "[lb_av]", "g"), Some(d("453.59237")));
        assert_eq!(
            convert(d("4.00"), "cm.m", "m2").map(|v| v.normalize()),
            Some(d("0.04"))
        );
        assert_eq!(convert(d("2"), "g/m", "g/m"), Some(d("2")));
        assert!(comparable("mm[Hg]", "kPa"));
        assert!(comparable("10*3/uL", "/L"));
        assert!(comparable("mg/dL", "g/L"));
        assert!(comparable("cm", "[in_i]"));
        assert!(!comparable("cm", "[s]"));
        assert!(comparable("kg/m2", "g.m-2"));
        assert!(comparable("mL/min/{1.73_m2}", "L/s"));
    }
}
