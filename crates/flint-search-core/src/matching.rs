//! Matching: the reference semantics of single-resource clauses against a resource's index
//! values for the clause's parameter.
//!
//! A [`ParamClause`] matches when some value of the resource matches some alternative of the
//! clause (`:not` inverts the whole clause; `:missing` looks at whether there are values).
//!
//! - string: the normalised value starts with the normalised query (default), contains it
//!   (`:contains`) or equals the query as written (`:exact`, case- and accent-sensitive).
//! - token: codes and systems compare exactly (case-sensitive); `:text` is a word-prefix match
//!   on the normalised display/text; `:of-type` compares identifier type and value.
//! - reference: `Type/id` matches local references to that resource in any version (a
//!   versioned query only that version); a bare id matches any target type unless the type
//!   is known; URLs match absolute and canonical references (a canonical query version must
//!   equal the target's; with `:below`, the target's version must be it or start with it and
//!   a dot: `|1.2` finds `1.2` and `1.2.3`, not `1.20`); a relative canonical (`Questionnaire/x`,
//!   on a canonical element) is matched as written, by `Type/id` or `Type/id|version` (a
//!   bare one, `x`, by the id `x`);
//!   `:identifier` matches `Reference.identifier`.
//! - date: intervals per R4 (the search value's range is `[qs, qe]`, the target's `[ts, te]`):
//!   `eq` qs ≤ ts ∧ te ≤ qe; `ne` not `eq`; `gt` te > qe; `lt` ts < qs; `ge` `gt` ∨ `eq`;
//!   `le` `lt` ∨ `eq`; `sa` ts > qe; `eb` te < qs; `ap` overlap with the `ap` interval.
//!   Values without a time zone were read in the configured zone (see [`crate::date`]).
//! - number and quantity: the target's exact value (or range, for Range and comparator
//!   values) against the query value and its precision range `[low, high)`: `eq` low ≤ v <
//!   high; `ne` not `eq`; `gt` v > q; `lt` v < q; `ge` v ≥ q; `le` v ≤ q; `sa` v ≥ high; `eb`
//!   v < low; `ap` within 10 % of q (at least the precision range). Quantities compare in UCUM
//!   canonical units when both sides are UCUM and commensurable, else by equal system and code
//!   (`value|system|code`) or by code or unit (`value||unit`), or by value alone.
//! - uri: exact; a query without `|version` also matches a canonical value with one;
//!   `:below` is a prefix match (on the version, as for references, when the query has a
//!   `|version`), `:above` the reverse.
//! - composite: every component matches the tuple's value (with its prefix).
//! - near: great-circle distance within the query's distance.
//!
//! Needing the database (returned as [`NeedsDatabase`]): chains, `_has`, `_list`, token
//! `:in`/`:not-in`/`:above`/`:below` (terminology) and reference `:above`/`:below`
//! (hierarchies).

use crate::date::DateRange;
use crate::normalize::word_prefix;
use crate::query::{
    Clause, DateQuery, Modifier, NumberQuery, ParamClause, Prefix, QuantityQuery, QueryValue,
    ReferenceQuery, SystemMatch, TokenQuery,
};
use crate::value::{IndexValue, NumberValue, QuantityValue, ReferenceValue, TokenValue};
use rust_decimal::Decimal;
use std::fmt;

/// Matching this clause needs the database (other resources or terminology).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsDatabase {
    /// What is needed.
    pub reason: &'static str,
}

impl fmt::Display for NeedsDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "needs the database: {}", self.reason)
    }
}

impl Clause {
    /// Whether a resource whose values of the clause's parameter are `values` matches.
    pub fn matches(&self, values: &[IndexValue]) -> Result<bool, NeedsDatabase> {
        match self {
            Clause::Param(p) => p.matches(values),
            Clause::Chain { .. } => Err(NeedsDatabase {
                reason: "chained parameters resolve references",
            }),
            Clause::Has { .. } => Err(NeedsDatabase {
                reason: "_has searches referencing resources",
            }),
            Clause::List(_) => Err(NeedsDatabase {
                reason: "_list reads List resources",
            }),
            Clause::Or(_) | Clause::Not(_) => Err(NeedsDatabase {
                reason: "_filter combines clauses on several parameters",
            }),
        }
    }
}

impl ParamClause {
    /// Whether a resource with these values of the parameter matches.
    pub fn matches(&self, values: &[IndexValue]) -> Result<bool, NeedsDatabase> {
        match &self.modifier {
            Some(Modifier::Missing) => Ok(self
                .values
                .iter()
                .any(|q| matches!(q, QueryValue::Missing(m) if *m == values.is_empty()))),
            Some(Modifier::In | Modifier::NotIn) => Err(NeedsDatabase {
                reason: "value set membership needs terminology",
            }),
            Some(Modifier::Above | Modifier::Below)
                if self.param.kind != crate::ParamType::Uri
                    && !self.is_canonical_version_below() =>
            {
                Err(NeedsDatabase {
                    reason: "subsumption needs terminology or resource hierarchies",
                })
            }
            Some(Modifier::Not) => Ok(!values
                .iter()
                .any(|v| self.values.iter().any(|q| value_matches(q, None, v)))),
            m => Ok(values
                .iter()
                .any(|v| self.values.iter().any(|q| value_matches(q, m.as_ref(), v)))),
        }
    }
}

impl ParamClause {
    /// Whether this is a reference clause `:below` on canonical URLs with versions
    /// (`url|1.2`), answered from the index like a uri (no hierarchy is involved).
    pub fn is_canonical_version_below(&self) -> bool {
        self.param.kind == crate::ParamType::Reference
            && self.modifier == Some(Modifier::Below)
            && !self.values.is_empty()
            && self.values.iter().all(|v| {
                matches!(
                    v,
                    QueryValue::Reference(ReferenceQuery::Url {
                        version: Some(_),
                        ..
                    })
                )
            })
    }
}

/// Whether canonical version `version` is `below` (equal to, or a dotted extension of) `v`.
pub fn version_below(version: &str, v: &str) -> bool {
    version
        .strip_prefix(v)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || v.ends_with('.'))
}

/// Whether one target value matches one query value under `modifier`.
pub fn value_matches(q: &QueryValue, modifier: Option<&Modifier>, v: &IndexValue) -> bool {
    match (q, v) {
        (QueryValue::String { exact, normalized }, IndexValue::String(t)) => match modifier {
            Some(Modifier::Exact) => t.exact == *exact,
            Some(Modifier::Contains) => t.normalized.contains(normalized.as_str()),
            Some(Modifier::Equal) => t.normalized == *normalized,
            Some(Modifier::EndsWith) => t.normalized.ends_with(normalized.as_str()),
            _ => t.normalized.starts_with(normalized.as_str()),
        },
        (QueryValue::Token(q), IndexValue::Token(t)) => token_matches(q, t),
        (QueryValue::Text(q), IndexValue::Token(t)) => {
            t.text.as_deref().is_some_and(|x| word_prefix(x, q))
        }
        (
            QueryValue::OfType {
                system,
                code,
                value,
            },
            IndexValue::Token(t),
        ) => {
            t.code.as_deref() == Some(value.as_str())
                && t.types.iter().any(|(s, c)| {
                    s.as_deref() == Some(system.as_str()) && c.as_deref() == Some(code.as_str())
                })
        }
        (
            QueryValue::Reference(ReferenceQuery::Url {
                url,
                version: Some(v),
            }),
            IndexValue::Reference(ReferenceValue::Canonical {
                url: tu,
                version: tv,
            }),
        ) if modifier == Some(&Modifier::Below) => {
            tu == url && tv.as_deref().is_some_and(|t| version_below(t, v))
        }
        (QueryValue::Reference(q), IndexValue::Reference(t)) => reference_matches(q, t),
        (QueryValue::Date(q), IndexValue::Date(t)) => date_matches(q, t),
        (QueryValue::Number(q), IndexValue::Number(t)) => number_matches(q, t),
        (QueryValue::Quantity(q), IndexValue::Quantity(t)) => quantity_matches(q, t),
        (QueryValue::Number(q), IndexValue::Quantity(t)) => number_matches(q, &t.number),
        (QueryValue::Uri(q), IndexValue::Uri(t)) => match modifier {
            Some(Modifier::Below) => match (q.split_once('|'), t.split_once('|')) {
                (Some((qu, qv)), Some((tu, tv))) => qu == tu && version_below(tv, qv),
                (Some(_), None) => false,
                (None, _) => t.starts_with(q.as_str()),
            },
            Some(Modifier::Above) => q.starts_with(t.as_str()),
            _ => t == q || (!q.contains('|') && t.split_once('|').is_some_and(|(u, _)| u == q)),
        },
        (QueryValue::Composite(qs), IndexValue::Composite(ts)) => {
            qs.len() == ts.len() && qs.iter().zip(ts).all(|(q, t)| value_matches(q, None, t))
        }
        (QueryValue::Near { point, distance_m }, IndexValue::Near(t)) => {
            point.distance_m(t) <= *distance_m
        }
        _ => false,
    }
}

fn token_matches(q: &TokenQuery, t: &TokenValue) -> bool {
    let system_ok = match &q.system {
        SystemMatch::Any => true,
        SystemMatch::None => t.system.is_none(),
        SystemMatch::Is(s) => t.system.as_deref() == Some(s.as_str()),
    };
    system_ok
        && match &q.code {
            Some(c) => t.code.as_deref() == Some(c.as_str()),
            None => t.code.is_some(),
        }
}

fn reference_matches(q: &ReferenceQuery, t: &ReferenceValue) -> bool {
    match (q, t) {
        (
            ReferenceQuery::Local {
                type_name,
                id,
                version,
            },
            ReferenceValue::Local {
                type_name: tt,
                id: tid,
                version: tv,
            },
        ) => {
            tid == id
                && type_name.as_ref().is_none_or(|x| x == tt)
                && version.as_ref().is_none_or(|v| tv.as_ref() == Some(v))
        }
        (
            ReferenceQuery::Local {
                type_name,
                id,
                version: None,
            },
            ReferenceValue::Canonical { url, .. },
        ) => {
            url == id
                || relative_canonical(url)
                    .is_some_and(|(t, i)| i == id && type_name.as_ref().is_none_or(|x| x == t))
        }
        (ReferenceQuery::Url { url, version }, ReferenceValue::Absolute(t)) => {
            version.is_none() && t == url
        }
        (
            ReferenceQuery::Url { url, version },
            ReferenceValue::Canonical {
                url: tu,
                version: tv,
            },
        ) => tu == url && version.as_ref().is_none_or(|v| tv.as_ref() == Some(v)),
        (ReferenceQuery::Identifier(q), ReferenceValue::Identifier { system, value }) => {
            token_matches(
                q,
                &TokenValue {
                    system: system.clone(),
                    code: value.clone(),
                    ..TokenValue::default()
                },
            )
        }
        _ => false,
    }
}

/// The `Type/id` a relative canonical URL names as written (`Questionnaire/gcs`), if any.
pub fn relative_canonical(url: &str) -> Option<(&str, &str)> {
    if url.contains("://") || url.starts_with("urn:") {
        return None;
    }
    match crate::value::split_local(url)? {
        (t, id, None) => Some((t, id)),
        _ => None,
    }
}

/// Whether a canonical URL is a bare id as written (`x`, no type, path or scheme).
pub fn is_bare_canonical(url: &str) -> bool {
    flint_model::is_valid_id(url)
}

fn date_matches(q: &DateQuery, t: &DateRange) -> bool {
    if q.prefix == Prefix::Ap {
        let a = &q.approx;
        return t.start <= a.end && a.start <= t.end;
    }
    let (qs, qe, ts, te) = (q.range.start, q.range.end, t.start, t.end);
    let eq = qs <= ts && te <= qe;
    match q.prefix {
        Prefix::Eq => eq,
        Prefix::Ne => !eq,
        Prefix::Gt => te > qe,
        Prefix::Lt => ts < qs,
        Prefix::Ge => te > qe || eq,
        Prefix::Le => ts < qs || eq,
        Prefix::Sa => ts > qe,
        Prefix::Eb => te < qs,
        Prefix::Ap => ts <= qe && qs <= te,
    }
}

fn number_matches(q: &NumberQuery, t: &NumberValue) -> bool {
    let (lo, hi) = t.bounds();
    let point = t.value.is_some();
    let eq = match (lo, hi) {
        (Some(lo), Some(hi)) => q.low <= lo && if point { hi < q.high } else { hi <= q.high },
        _ => false,
    };
    match q.prefix {
        Prefix::Eq => eq,
        Prefix::Ne => !eq,
        Prefix::Gt => hi.is_none_or(|h| h > q.value),
        Prefix::Lt => lo.is_none_or(|l| l < q.value),
        Prefix::Ge => hi.is_none_or(|h| h >= q.value),
        Prefix::Le => lo.is_none_or(|l| l <= q.value),
        Prefix::Sa => lo.is_some_and(|l| l >= q.high),
        Prefix::Eb => hi.is_some_and(|h| h < q.low),
        Prefix::Ap => {
            let tenth = (q.value / Decimal::TEN).abs();
            let a_lo = (q.value - tenth).min(q.low);
            let a_hi = (q.value + tenth).max(q.high);
            lo.is_none_or(|l| l <= a_hi) && hi.is_none_or(|h| h >= a_lo)
        }
    }
}

fn quantity_matches(q: &QuantityQuery, t: &QuantityValue) -> bool {
    if let (Some((qn, qu)), Some((tn, tu))) = (&q.canonical, &t.canonical)
        && qu == tu
    {
        return number_matches(qn, tn);
    }
    let unit_ok = match (&q.system, &q.code) {
        (Some(s), Some(c)) => {
            t.system.as_deref() == Some(s.as_str()) && t.code.as_deref() == Some(c.as_str())
        }
        (Some(s), None) => t.system.as_deref() == Some(s.as_str()),
        (None, Some(c)) => {
            t.code.as_deref() == Some(c.as_str()) || t.unit.as_deref() == Some(c.as_str())
        }
        (None, None) => true,
    };
    unit_ok && number_matches(&q.number, &t.number)
}
