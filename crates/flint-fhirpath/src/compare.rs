//! Equality (`=`), equivalence (`~`) and ordering (`<`, `>`, ...) of items and collections.

use crate::error::Error;
use crate::ucum;
use crate::value::{Item, Quantity};
use rust_decimal::Decimal;
use serde_json::Value;
use std::cmp::Ordering;

/// Both items as system values, with Integer widened to Decimal when the other is a Decimal
/// and Date widened to DateTime when the other is a DateTime.
fn system_pair<'a>(a: &Item<'a>, b: &Item<'a>) -> Option<(Item<'a>, Item<'a>)> {
    let a = a.to_system()?;
    let b = b.to_system()?;
    Some(match (a, b) {
        (Item::Integer(i), Item::Decimal(d)) => (Item::Decimal(Decimal::from(i)), Item::Decimal(d)),
        (Item::Decimal(d), Item::Integer(i)) => (Item::Decimal(d), Item::Decimal(Decimal::from(i))),
        (Item::Date(d), Item::DateTime(t)) => (Item::DateTime(d.to_datetime()), Item::DateTime(t)),
        (Item::DateTime(t), Item::Date(d)) => (Item::DateTime(t), Item::DateTime(d.to_datetime())),
        pair => pair,
    })
}

fn complex_json<'a>(i: &Item<'a>) -> Option<&'a Value> {
    match i {
        Item::Node(n) if !n.is_primitive() => n.value,
        _ => None,
    }
}

/// `=` on two single items: `None` when the result is unknown (different date precisions,
/// incomparable quantity units).
pub(crate) fn equals(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    if let (Some(x), Some(y)) = (complex_json(a), complex_json(b)) {
        return Some(x == y);
    }
    let Some((a, b)) = system_pair(a, b) else {
        return Some(false);
    };
    match (&a, &b) {
        (Item::Boolean(x), Item::Boolean(y)) => Some(x == y),
        (Item::Integer(x), Item::Integer(y)) => Some(x == y),
        (Item::Decimal(x), Item::Decimal(y)) => Some(x == y),
        (Item::String(x), Item::String(y)) => Some(x == y),
        (Item::Date(x), Item::Date(y)) => cmp_eq(x.to_datetime().compare(&y.to_datetime())),
        (Item::DateTime(x), Item::DateTime(y)) => cmp_eq(x.compare(y)),
        (Item::Time(x), Item::Time(y)) => cmp_eq(x.compare(y)),
        (Item::Quantity(x), Item::Quantity(y)) => quantity_cmp(x, y).map(|o| o == Ordering::Equal),
        (Item::Type(x), Item::Type(y)) => Some(x == y),
        _ => Some(false),
    }
}

fn cmp_eq(o: Option<Ordering>) -> Option<bool> {
    o.map(|o| o == Ordering::Equal)
}

/// Compares two quantities after unit conversion; `None` if the units are not comparable.
pub(crate) fn quantity_cmp(x: &Quantity, y: &Quantity) -> Option<Ordering> {
    if x.unit == y.unit || calendar_same(&x.unit, &y.unit) {
        return Some(x.value.cmp(&y.value));
    }
    let (cx, cy) = (ucum::canonical(&x.unit)?, ucum::canonical(&y.unit)?);
    if cx.dims != cy.dims {
        return None;
    }
    let a = x.value.checked_mul(cx.factor)?;
    let b = y.value.checked_mul(cy.factor)?;
    Some(a.cmp(&b))
}

fn calendar_same(a: &str, b: &str) -> bool {
    a.strip_suffix('s').unwrap_or(a) == b.strip_suffix('s').unwrap_or(b)
        && crate::temporal::CalendarUnit::from_keyword(a).is_some()
}

fn normalize_ws_lower(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn round_to(d: Decimal, scale: u32) -> Decimal {
    d.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// `~` on two single items.
pub(crate) fn equivalent(a: &Item<'_>, b: &Item<'_>) -> bool {
    if let (Some(x), Some(y)) = (complex_json(a), complex_json(b)) {
        return json_equivalent(x, y);
    }
    let Some((a, b)) = system_pair(a, b) else {
        return false;
    };
    match (&a, &b) {
        (Item::String(x), Item::String(y)) => normalize_ws_lower(x) == normalize_ws_lower(y),
        (Item::Decimal(x), Item::Decimal(y)) => {
            let s = x.scale().min(y.scale());
            round_to(*x, s) == round_to(*y, s)
        }
        (Item::Date(x), Item::Date(y)) => {
            x.precision() == y.precision() && equals(&a, &b) == Some(true)
        }
        (Item::DateTime(x), Item::DateTime(y)) => {
            x.precision().min(crate::temporal::Precision::Second)
                == y.precision().min(crate::temporal::Precision::Second)
                && x.compare(y) == Some(Ordering::Equal)
        }
        (Item::Time(x), Item::Time(y)) => {
            x.precision().min(crate::temporal::Precision::Second)
                == y.precision().min(crate::temporal::Precision::Second)
                && x.compare(y) == Some(Ordering::Equal)
        }
        (Item::Quantity(x), Item::Quantity(y)) => {
            if x.unit == y.unit || calendar_same(&x.unit, &y.unit) {
                let s = x.value.scale().min(y.value.scale());
                return round_to(x.value, s) == round_to(y.value, s);
            }
            quantity_equivalent(x, y)
        }
        _ => equals(&a, &b) == Some(true),
    }
}

/// `~` on quantities of different units (FHIRPath §6.1.4, Quantity equivalence): both in a
/// common unit, the less precise one's (the larger step of its last digit), compared at
/// that one's precision: `4 'g' ~ 4040 'mg'` (4.040 g rounds to 4 g), not `4.0 'g' ~ 4040 'mg'`.
fn quantity_equivalent(x: &Quantity, y: &Quantity) -> bool {
    let (Some(cx), Some(cy)) = (ucum::canonical(&x.unit), ucum::canonical(&y.unit)) else {
        return false;
    };
    if cx.dims != cy.dims {
        return false;
    }
    // The step of each value's last digit, in base units.
    let step = |q: &Quantity, factor: Decimal| Decimal::new(1, q.value.scale()).checked_mul(factor);
    let (Some(sx), Some(sy)) = (step(x, cx.factor), step(y, cy.factor)) else {
        return false;
    };
    // Express the more precise value in the other's unit and round it to that precision.
    let (coarse, c_factor, fine, f_factor) = if sx >= sy {
        (x, cx.factor, y, cy.factor)
    } else {
        (y, cy.factor, x, cx.factor)
    };
    let Some(converted) = fine
        .value
        .checked_mul(f_factor)
        .and_then(|v| v.checked_div(c_factor))
    else {
        return false;
    };
    round_to(converted, coarse.value.scale()) == coarse.value
}

fn json_equivalent(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::String(a), Value::String(b)) => normalize_ws_lower(a) == normalize_ws_lower(b),
        (Value::Object(a), Value::Object(b)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| *k != "id").count();
            keys(a) == keys(b)
                && a.iter()
                    .filter(|(k, _)| *k != "id")
                    .all(|(k, v)| b.get(k).is_some_and(|w| json_equivalent(v, w)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| json_equivalent(v, w))
        }
        (a, b) => a == b,
    }
}

/// `=` on collections.
pub(crate) fn collections_equal(l: &[Item<'_>], r: &[Item<'_>]) -> Option<bool> {
    if l.is_empty() || r.is_empty() {
        return None;
    }
    if l.len() != r.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (a, b) in l.iter().zip(r) {
        match equals(a, b) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown { None } else { Some(true) }
}

/// `~` on collections (order-independent).
pub(crate) fn collections_equivalent(l: &[Item<'_>], r: &[Item<'_>]) -> bool {
    if l.len() != r.len() {
        return false;
    }
    let mut used = vec![false; r.len()];
    'outer: for a in l {
        for (j, b) in r.iter().enumerate() {
            if !used[j] && equivalent(a, b) {
                used[j] = true;
                continue 'outer;
            }
        }
        return false;
    }
    true
}

/// Ordering for `<`, `<=`, `>`, `>=`: `Ok(None)` when unknown, an error for incomparable types.
pub(crate) fn order(a: &Item<'_>, b: &Item<'_>) -> Result<Option<Ordering>, Error> {
    let err = || {
        Error::execution(format!(
            "cannot compare {} with {}",
            a.type_name(),
            b.type_name()
        ))
    };
    let (x, y) = system_pair(a, b).ok_or_else(err)?;
    Ok(match (&x, &y) {
        (Item::Integer(p), Item::Integer(q)) => Some(p.cmp(q)),
        (Item::Decimal(p), Item::Decimal(q)) => Some(p.cmp(q)),
        (Item::String(p), Item::String(q)) => Some(p.as_ref().cmp(q.as_ref())),
        (Item::Date(p), Item::Date(q)) => p.to_datetime().compare(&q.to_datetime()),
        (Item::DateTime(p), Item::DateTime(q)) => p.compare(q),
        (Item::Time(p), Item::Time(q)) => p.compare(q),
        (Item::Quantity(p), Item::Quantity(q)) => quantity_cmp(p, q),
        _ => return Err(err()),
    })
}

/// Ordering used by `sort()`: like [`order`], with unknown and incomparable treated as equal.
pub(crate) fn sort_order(a: &Item<'_>, b: &Item<'_>) -> Ordering {
    order(a, b).ok().flatten().unwrap_or(Ordering::Equal)
}
