//! Typed index values: what one search parameter yields for one resource.
//!
//! One [`IndexValue`] per indexable element: a CodeableConcept gives one token per coding plus
//! one for its text, a HumanName one string per part. Values keep what every modifier needs
//! (exact and normalised strings, token display texts and identifier types, reference
//! versions and identifiers, decimal precision ranges, UCUM canonical quantities), so the
//! storage layer can encode any of them and [`crate::Clause::matches`] can decide any
//! single-resource clause from them.

use crate::date::DateRange;
use crate::normalize::normalize;
use flint_fhirpath::ucum;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The UCUM code system URI.
pub const UCUM: &str = "http://unitsofmeasure.org";

/// One search index value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IndexValue {
    /// A `string` parameter value.
    String(StringValue),
    /// A `token` parameter value.
    Token(TokenValue),
    /// A `reference` parameter value.
    Reference(ReferenceValue),
    /// A `date` parameter value.
    Date(DateRange),
    /// A `number` parameter value.
    Number(NumberValue),
    /// A `quantity` parameter value.
    Quantity(QuantityValue),
    /// A `uri` parameter value.
    Uri(String),
    /// A `composite` parameter value: one value per component, in component order.
    Composite(Vec<IndexValue>),
    /// A `near` (Location.position) value.
    Near(GeoPoint),
}

/// A string value, as written and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringValue {
    /// The text as written (for `:exact`).
    pub exact: String,
    /// The normalised text ([`crate::normalize::normalize`]).
    pub normalized: String,
}

impl StringValue {
    /// A string value of `s`.
    pub fn new(s: &str) -> StringValue {
        StringValue {
            exact: s.to_string(),
            normalized: normalize(s),
        }
    }
}

/// A token: an optional system and code, with the text `:text` searches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenValue {
    /// Coding.system, Identifier.system, ContactPoint.system; `None` for plain codes.
    pub system: Option<String>,
    /// Coding.code, Identifier.value, ContactPoint.value, a code/boolean/string/uri/id value;
    /// `None` for a text-only token (CodeableConcept.text).
    pub code: Option<String>,
    /// Normalised display text: Coding.display, CodeableConcept.text, Identifier.type.text.
    pub text: Option<String>,
    /// Identifier.type codings as (system, code), for `:of-type`.
    pub types: Vec<(Option<String>, Option<String>)>,
}

/// A reference value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferenceValue {
    /// A relative literal reference `Type/id` or `Type/id/_history/vid`.
    Local {
        /// The resource type.
        type_name: String,
        /// The resource id.
        id: String,
        /// The version, for versioned references.
        version: Option<String>,
    },
    /// An absolute URL (`http://other/fhir/Patient/1`, `urn:uuid:...`).
    Absolute(String),
    /// A canonical URL (canonical/uri element), with its `|version` split off.
    Canonical {
        /// The URL.
        url: String,
        /// The version after `|`, if any.
        version: Option<String>,
    },
    /// `Reference.identifier` (for `:identifier`).
    Identifier {
        /// Identifier.system.
        system: Option<String>,
        /// Identifier.value.
        value: Option<String>,
    },
}

impl ReferenceValue {
    /// Parses a literal reference string: `Type/id[/_history/v]` (type and id validated),
    /// absolute URLs and URNs; `None` for contained (`#id`), conditional or malformed ones.
    pub fn parse_literal(s: &str) -> Option<ReferenceValue> {
        let s = s.trim();
        if s.is_empty() || s.starts_with('#') {
            return None;
        }
        if s.contains("://") || s.starts_with("urn:") {
            return Some(ReferenceValue::Absolute(s.to_string()));
        }
        let (type_name, id, version) = split_local(s)?;
        Some(ReferenceValue::Local {
            type_name: type_name.to_string(),
            id: id.to_string(),
            version: version.map(str::to_string),
        })
    }

    /// For an absolute URL ending in `Type/id[/_history/v]`: (service base, type, id, version).
    pub fn absolute_parts(url: &str) -> Option<(&str, &str, &str, Option<&str>)> {
        let segs: Vec<&str> = url.rsplitn(5, '/').collect();
        // Try `.../Type/id/_history/v` first, then `.../Type/id`.
        if segs.len() == 5 && segs[1] == "_history" {
            let (base, ty, id, v) = (segs[4], segs[3], segs[2], segs[0]);
            if flint_model::defs::definitions().is_resource_type(ty) && flint_model::is_valid_id(id)
            {
                return Some((base, ty, id, Some(v)));
            }
        }
        let segs: Vec<&str> = url.rsplitn(3, '/').collect();
        if segs.len() == 3
            && flint_model::defs::definitions().is_resource_type(segs[1])
            && flint_model::is_valid_id(segs[0])
        {
            return Some((segs[2], segs[1], segs[0], None));
        }
        None
    }
}

/// Splits `Type/id[/_history/v]` with validation.
pub(crate) fn split_local(s: &str) -> Option<(&str, &str, Option<&str>)> {
    let mut it = s.split('/');
    let ty = it.next()?;
    let id = it.next()?;
    let version = match (it.next(), it.next()) {
        (None, _) => None,
        (Some("_history"), Some(v)) if !v.is_empty() => Some(v),
        _ => return None,
    };
    if it.next().is_some()
        || !flint_model::defs::definitions().is_resource_type(ty)
        || !flint_model::is_valid_id(id)
    {
        return None;
    }
    Some((ty, id, version))
}

/// A number: an exact decimal with its implicit precision range, or a range of values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberValue {
    /// The value as written, for point values; `None` for ranges (Range, `<5`).
    #[serde(with = "opt_decimal")]
    pub value: Option<Decimal>,
    /// Lower bound: `value − 0.5 × 10^-scale` for decimal points, the exact value for
    /// integers, the low end for ranges; `None` is unbounded.
    #[serde(with = "opt_decimal")]
    pub low: Option<Decimal>,
    /// Upper bound, likewise (`value + 0.5 × 10^-scale` for decimal points).
    #[serde(with = "opt_decimal")]
    pub high: Option<Decimal>,
}

impl NumberValue {
    /// A decimal point value with its implicit precision range.
    pub fn decimal(v: Decimal) -> NumberValue {
        let half = half_unit(v.scale());
        NumberValue {
            value: Some(v),
            low: v.checked_sub(half),
            high: v.checked_add(half),
        }
    }

    /// An exact (integer) point value.
    pub fn exact(v: Decimal) -> NumberValue {
        NumberValue {
            value: Some(v),
            low: Some(v),
            high: Some(v),
        }
    }

    /// A range with optional ends.
    pub fn range(low: Option<Decimal>, high: Option<Decimal>) -> NumberValue {
        NumberValue {
            value: None,
            low,
            high,
        }
    }

    /// The bounds used for matching: the exact value for points, else the range ends.
    pub fn bounds(&self) -> (Option<Decimal>, Option<Decimal>) {
        match self.value {
            Some(v) => (Some(v), Some(v)),
            None => (self.low, self.high),
        }
    }

    /// The value scaled by `factor` (for unit conversion); `None` on overflow.
    pub fn scaled(&self, factor: Decimal) -> Option<NumberValue> {
        let m = |d: Option<Decimal>| -> Option<Option<Decimal>> {
            match d {
                Some(d) => d.checked_mul(factor).map(Some),
                None => Some(None),
            }
        };
        Some(NumberValue {
            value: m(self.value)?,
            low: m(self.low)?,
            high: m(self.high)?,
        })
    }
}

/// Decimals in value blobs and keys: their exact 16-byte form (compact, and readable by
/// formats without self-description such as postcard).
mod opt_decimal {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| d.serialize()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<[u8; 16]>::deserialize(d)?.map(Decimal::deserialize))
    }
}

/// `0.5 × 10^-scale`.
pub(crate) fn half_unit(scale: u32) -> Decimal {
    Decimal::try_new(5, scale + 1).unwrap_or(Decimal::ZERO)
}

/// Parses a decimal from FHIR JSON number text or a query string.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

/// A quantity: a number with system, code and unit, plus its UCUM canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantityValue {
    /// The value (point or range).
    pub number: NumberValue,
    /// Quantity.system (`http://unitsofmeasure.org`, `urn:iso:std:iso:4217` for Money).
    pub system: Option<String>,
    /// Quantity.code.
    pub code: Option<String>,
    /// Quantity.unit (the human-readable unit).
    pub unit: Option<String>,
    /// For UCUM quantities with a convertible code: the value in canonical base units and the
    /// canonical unit (e.g. `0.005 g` for `5 mg`).
    pub canonical: Option<(NumberValue, String)>,
}

impl QuantityValue {
    /// A quantity, computing the canonical form when the system is UCUM.
    pub fn new(
        number: NumberValue,
        system: Option<&str>,
        code: Option<&str>,
        unit: Option<&str>,
    ) -> QuantityValue {
        let canonical = match (system, code) {
            (Some(UCUM), Some(c)) => canonicalize(&number, c),
            _ => None,
        };
        QuantityValue {
            number,
            system: system.map(str::to_string),
            code: code.map(str::to_string),
            unit: unit.map(str::to_string),
            canonical,
        }
    }
}

/// `number` in the canonical units of UCUM code `code`, with the canonical unit text.
pub fn canonicalize(number: &NumberValue, code: &str) -> Option<(NumberValue, String)> {
    let c = ucum::canonical(code)?;
    Some((number.scaled(c.factor)?, canonical_unit(&c.dims)))
}

/// The text of a canonical dimension vector, e.g. `g.m-3`; `1` when dimensionless.
fn canonical_unit(dims: &[i8]) -> String {
    const NAMES: [&str; 9] = ["m", "s", "g", "rad", "K", "C", "cd", "mol", "mo"];
    let parts: Vec<String> = NAMES
        .iter()
        .zip(dims)
        .filter(|(_, e)| **e != 0)
        .map(|(n, e)| {
            if *e == 1 {
                n.to_string()
            } else {
                format!("{n}{e}")
            }
        })
        .collect();
    if parts.is_empty() {
        "1".into()
    } else {
        parts.join(".")
    }
}

/// A geographic position (WGS84 degrees).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
}

impl GeoPoint {
    /// Great-circle distance to `o` in metres (haversine, mean Earth radius).
    pub fn distance_m(&self, o: &GeoPoint) -> f64 {
        const R: f64 = 6_371_008.8;
        let (p1, p2) = (self.latitude.to_radians(), o.latitude.to_radians());
        let dp = p2 - p1;
        let dl = (o.longitude - self.longitude).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * R * a.sqrt().min(1.0).asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn number_precision() {
        let n = NumberValue::decimal(d("100"));
        assert_eq!((n.low, n.high), (Some(d("99.5")), Some(d("100.5"))));
        let n = NumberValue::decimal(d("0.125"));
        assert_eq!((n.low, n.high), (Some(d("0.1245")), Some(d("0.1255"))));
        assert_eq!(half_unit(28), Decimal::ZERO);
        assert_eq!(parse_decimal("1e3"), Some(d("1000")));
        assert_eq!(parse_decimal("x"), None);
    }

    #[test]
    fn quantities() {
        let q = QuantityValue::new(
            NumberValue::decimal(d("5")),
            Some(UCUM),
            Some("mg"),
            Some("mg"),
        );
        let (n, u) = q.canonical.unwrap();
        assert_eq!(u, "g");
        assert_eq!(n.value.unwrap().normalize(), d("0.005"));
        let q = QuantityValue::new(
            NumberValue::decimal(d("5")),
            Some(UCUM),
            Some("mg/dL"),
            None,
        );
        assert_eq!(q.canonical.unwrap().1, "m-3.g");
        let q = QuantityValue::new(
            NumberValue::decimal(d("5")),
            Some("http://x"),
            Some("mg"),
            None,
        );
        assert!(q.canonical.is_none());
        let q = QuantityValue::new(NumberValue::decimal(d("37")), Some(UCUM), Some("Cel"), None);
        assert!(q.canonical.is_none());
    }

    #[test]
    fn references() {
        assert_eq!(
            ReferenceValue::parse_literal("Patient/123/_history/2"),
            Some(ReferenceValue::Local {
                type_name: "Patient".into(),
                id: "123".into(),
                version: Some("2".into())
            })
        );
        assert_eq!(ReferenceValue::parse_literal("#p1"), None);
        assert_eq!(ReferenceValue::parse_literal("Patient?identifier=x"), None);
        assert_eq!(ReferenceValue::parse_literal("Foo/1"), None);
        assert_eq!(
            ReferenceValue::parse_literal("urn:uuid:1234"),
            Some(ReferenceValue::Absolute("urn:uuid:1234".into()))
        );
        assert_eq!(
            ReferenceValue::absolute_parts("http://x.org/fhir/Patient/1/_history/3"),
            Some(("http://x.org/fhir", "Patient", "1", Some("3")))
        );
        assert_eq!(
            ReferenceValue::absolute_parts("http://x.org/fhir/Patient/1"),
            Some(("http://x.org/fhir", "Patient", "1", None))
        );
        assert_eq!(ReferenceValue::absolute_parts("http://x.org/a"), None);
    }

    #[test]
    fn distances() {
        let a = GeoPoint {
            latitude: 52.52,
            longitude: 13.405,
        };
        let b = GeoPoint {
            latitude: 48.8566,
            longitude: 2.3522,
        };
        let km = a.distance_m(&b) / 1000.0;
        assert!((875.0..882.0).contains(&km), "{km}");
        assert_eq!(a.distance_m(&a), 0.0);
    }
}
