//! Sort keys for `_sort`: the value a resource is ordered by for one parameter.
//!
//! A resource with several values sorts by its lowest value ascending and by its highest
//! value descending. Per type: strings by normalised text, tokens by code then system, URIs by
//! text, references by `Type/id` (or URL), dates by interval start (ascending) or end
//! (descending), numbers by lower or upper bound (the exact value for points), quantities by
//! canonical UCUM value when available, else by value (dates without a zone by their instants
//! in the configured zone). Composite and `near` values give no sort key. Resources without a key sort last in
//! either direction (the caller's choice; FHIR leaves it open).

use crate::value::{IndexValue, NumberValue, ReferenceValue};
use rust_decimal::Decimal;

/// A comparable sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    /// An instant in epoch milliseconds (dates).
    Instant(i64),
    /// A decimal (numbers, quantities).
    Decimal(Decimal),
    /// Text (strings, tokens, URIs, references).
    Text(String),
}

/// The key a resource with `values` sorts by, ascending or descending.
pub fn sort_value(values: &[IndexValue], descending: bool) -> Option<SortValue> {
    let keys = values.iter().filter_map(|v| key(v, descending));
    if descending { keys.max() } else { keys.min() }
}

fn number_key(n: &NumberValue, descending: bool) -> Option<SortValue> {
    let (lo, hi) = n.bounds();
    if descending { hi.or(lo) } else { lo.or(hi) }.map(SortValue::Decimal)
}

fn key(v: &IndexValue, descending: bool) -> Option<SortValue> {
    Some(match v {
        IndexValue::String(s) => SortValue::Text(s.normalized.clone()),
        IndexValue::Token(t) => SortValue::Text(format!(
            "{}|{}",
            t.code.as_deref()?,
            t.system.as_deref().unwrap_or("")
        )),
        IndexValue::Uri(u) => SortValue::Text(u.clone()),
        IndexValue::Reference(r) => SortValue::Text(match r {
            ReferenceValue::Local { type_name, id, .. } => format!("{type_name}/{id}"),
            ReferenceValue::Absolute(u) => u.clone(),
            ReferenceValue::Canonical { url, .. } => url.clone(),
            ReferenceValue::Identifier { .. } => return None,
        }),
        IndexValue::Date(d) => SortValue::Instant(if descending { d.end } else { d.start }),
        IndexValue::Number(n) => return number_key(n, descending),
        IndexValue::Quantity(q) => match &q.canonical {
            Some((n, _)) => return number_key(n, descending),
            None => return number_key(&q.number, descending),
        },
        IndexValue::Composite(_) | IndexValue::Near(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::DateRange;
    use crate::value::StringValue;

    #[test]
    fn lowest_ascending_highest_descending() {
        let d = |s: &str| IndexValue::Date(DateRange::parse(s, &crate::Zone::utc()).unwrap());
        let vals = [d("2001"), d("2000-06")];
        assert_eq!(
            sort_value(&vals, false),
            Some(SortValue::Instant(
                DateRange::parse("2000-06", &crate::Zone::utc())
                    .unwrap()
                    .start
            ))
        );
        assert_eq!(
            sort_value(&vals, true),
            Some(SortValue::Instant(
                DateRange::parse("2001", &crate::Zone::utc()).unwrap().end
            ))
        );
        let s = [
            IndexValue::String(StringValue::new("Zoe")),
            IndexValue::String(StringValue::new("adam")),
        ];
        assert_eq!(sort_value(&s, false), Some(SortValue::Text("adam".into())));
        assert_eq!(sort_value(&s, true), Some(SortValue::Text("zoe".into())));
        let n = [IndexValue::Number(NumberValue::range(
            Some(Decimal::ONE),
            Some(Decimal::TEN),
        ))];
        assert_eq!(sort_value(&n, true), Some(SortValue::Decimal(Decimal::TEN)));
        assert_eq!(sort_value(&[], false), None);
    }
}
