//! Index key encodings: the bytes each [`IndexValue`] is stored under in the database's
//! SearchParamValue index, and for each query value the scan (a key range) plus the exact
//! per-entry filter that answers it.
//!
//! Every entry starts with a kind byte, so one parameter can hold several lookups:
//!
//! | kind | value | answers |
//! |---|---|---|
//! | `n` | normalised text `0x1E` text as written | string: prefix (scan), `:exact`, `:contains` (filter) |
//! | `c` | code `0x1F` system (empty without) | token `code`, `\|code`, `system\|code` (exact scans), `system\|` (scan of all `c` entries, filtered by system) |
//! | `t` | normalised display/text | token `:text` (word-prefix filter) |
//! | `o` | type system `0x1F` type code `0x1F` value | token `:of-type` (exact) |
//! | `r` | `Type/id`, and `Type/id/_history/v` for versioned references | reference `Type/id` (exact) |
//! | `i` | id `0x1F` Type, only for a `Type` outside the parameter's targets | reference bare `id`: union of `r Target/id` (exact, per target) and `i id` (prefix) |
//! | `u` | URL `0x1F` version (empty without) | absolute and canonical references, uri (prefix/exact) |
//! | `y` | system `0x1F` value | reference `:identifier` |
//! | `d` | start (8) · end (8) · floating (1) | date: start-ordered range scan + exact filter |
//! | `#` | postcard([`crate::NumberValue`]) | number (filter) |
//! | `q` | postcard([`crate::QuantityValue`]) | quantity (filter) |
//! | `k` | first component's code `0x1E` postcard(values) | composite (prefix by first code + filter) |
//! | `g` | postcard([`crate::GeoPoint`]) | near (filter) |
//!
//! Integers are stored order-preserving (sign bit flipped, big-endian). Filters decode the
//! entry and apply [`crate::matching::value_matches`], so scans are exact: the database never
//! reads a resource to decide a parameter clause.

use crate::date::DateRange;
use crate::matching::value_matches;
use crate::normalize::word_prefix;
use crate::query::{Modifier, Prefix, QueryValue, ReferenceQuery, SystemMatch, TokenQuery};
use crate::value::{IndexValue, ReferenceValue};
use flint_db::ValueMatch;

const US: u8 = 0x1F;
const RS: u8 = 0x1E;
/// Slack around date scan bounds (none: every stored and query date is an interval of instants).
const DATE_SLACK: i64 = 0;

/// Which entries [`entries`] produces.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    /// The entries written for a value of a parameter with these reference targets.
    Written(&'a [String]),
    /// Every entry any version of the index layout wrote for the value (to delete them).
    Any,
}

/// Appends the index entries of `v` to `out`.
pub(crate) fn entries(v: &IndexValue, rows: Rows<'_>, out: &mut Vec<Vec<u8>>) {
    match v {
        IndexValue::String(s) => {
            let mut k = kind(b'n', &s.normalized);
            k.push(RS);
            k.extend_from_slice(s.exact.as_bytes());
            out.push(k);
        }
        IndexValue::Token(t) => {
            if let Some(code) = &t.code {
                let mut k = kind(b'c', code);
                k.push(US);
                if let Some(s) = &t.system {
                    k.extend_from_slice(s.as_bytes());
                    if matches!(rows, Rows::Any) {
                        // Written by earlier layouts for `system|` queries.
                        out.push(pair(b's', s, code));
                    }
                }
                out.push(k);
                for (ts, tc) in &t.types {
                    out.push(of_type_key(
                        ts.as_deref().unwrap_or(""),
                        tc.as_deref().unwrap_or(""),
                        code,
                    ));
                }
            }
            if let Some(text) = &t.text {
                out.push(kind(b't', text));
            }
        }
        IndexValue::Reference(r) => match r {
            ReferenceValue::Local {
                type_name,
                id,
                version,
            } => {
                out.push(local_key(type_name, id));
                if let Some(v) = version {
                    out.push(kind(b'r', &format!("{type_name}/{id}/_history/{v}")));
                }
                // A bare-id query scans `r Target/id` for each target type; only a
                // reference to another type needs the id-first entry.
                let other = match rows {
                    Rows::Written(targets) => !targets.iter().any(|t| t == type_name),
                    Rows::Any => true,
                };
                if other {
                    out.push(pair(b'i', id, type_name));
                }
            }
            ReferenceValue::Absolute(url) => out.push(url_key(url, None)),
            ReferenceValue::Canonical { url, version } => {
                out.push(url_key(url, version.as_deref()));
                // A relative canonical is found by `Type/id` as written, like a reference.
                if let Some((t, id)) = crate::matching::relative_canonical(url) {
                    out.push(local_key(t, id));
                } else if let Rows::Written(targets) = rows
                    && crate::matching::is_bare_canonical(url)
                {
                    // A bare one (`x`) by the id, as a reference to each target type.
                    out.extend(targets.iter().map(|t| local_key(t, url)));
                }
            }
            ReferenceValue::Identifier { system, value } => {
                let mut k = kind(b'y', system.as_deref().unwrap_or(""));
                k.push(US);
                k.extend_from_slice(value.as_deref().unwrap_or("").as_bytes());
                out.push(k);
            }
        },
        IndexValue::Uri(u) => {
            let (url, version) = match u.split_once('|') {
                Some((a, b)) => (a, Some(b)),
                None => (u.as_str(), None),
            };
            out.push(url_key(url, version));
        }
        IndexValue::Date(d) => out.push(date_key(d)),
        IndexValue::Number(n) => out.push(postcard_key(b'#', n)),
        IndexValue::Quantity(q) => out.push(postcard_key(b'q', q)),
        IndexValue::Composite(parts) => {
            let mut k = vec![b'k'];
            k.extend_from_slice(composite_lead(parts.first()).as_bytes());
            k.push(RS);
            if let Ok(b) = postcard::to_stdvec(parts) {
                k.extend_from_slice(&b);
                out.push(k);
            }
        }
        IndexValue::Near(p) => out.push(postcard_key(b'g', p)),
    }
}

fn kind(k: u8, s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 16);
    v.push(k);
    v.extend_from_slice(s.as_bytes());
    v
}

/// `kind · a · 0x1F · b`.
fn pair(k: u8, a: &str, b: &str) -> Vec<u8> {
    let mut v = kind(k, a);
    v.push(US);
    v.extend_from_slice(b.as_bytes());
    v
}

fn local_key(type_name: &str, id: &str) -> Vec<u8> {
    let mut k = kind(b'r', type_name);
    k.push(b'/');
    k.extend_from_slice(id.as_bytes());
    k
}

/// The `r` entry of a local reference `Type/id`: what reverse lookups (`_revinclude`,
/// chains, compartments) scan for.
pub fn reference_key(type_name: &str, id: &str) -> Vec<u8> {
    local_key(type_name, id)
}

/// The `Type/id` target of an `r` entry (`None` for versioned ones and other kinds).
pub fn parse_reference_key(v: &[u8]) -> Option<(&str, &str)> {
    let rest = v.strip_prefix(b"r")?;
    let s = std::str::from_utf8(rest).ok()?;
    let (t, id) = s.split_once('/')?;
    (!id.contains('/')).then_some((t, id))
}

/// The key of a URL (absolute reference, canonical or uri) with an optional version.
pub(crate) fn url_key(url: &str, version: Option<&str>) -> Vec<u8> {
    let mut k = kind(b'u', url);
    k.push(US);
    if let Some(v) = version {
        k.extend_from_slice(v.as_bytes());
    }
    k
}

fn of_type_key(system: &str, code: &str, value: &str) -> Vec<u8> {
    let mut k = kind(b'o', system);
    k.push(US);
    k.extend_from_slice(code.as_bytes());
    k.push(US);
    k.extend_from_slice(value.as_bytes());
    k
}

fn postcard_key<T: serde::Serialize>(k: u8, v: &T) -> Vec<u8> {
    let mut out = vec![k];
    if let Ok(b) = postcard::to_stdvec(v) {
        out.extend_from_slice(&b);
    }
    out
}

fn composite_lead(first: Option<&IndexValue>) -> &str {
    match first {
        Some(IndexValue::Token(t)) => t.code.as_deref().unwrap_or(""),
        _ => "",
    }
}

/// Order-preserving bytes of an `i64`.
fn ord(x: i64) -> [u8; 8] {
    ((x as u64) ^ (1 << 63)).to_be_bytes()
}

fn unord(b: &[u8]) -> Option<i64> {
    let a: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

fn date_key(d: &DateRange) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.push(b'd');
    k.extend_from_slice(&ord(d.start));
    k.extend_from_slice(&ord(d.end));
    k.push(u8::from(d.floating));
    k
}

fn decode_date(v: &[u8]) -> Option<DateRange> {
    if v.len() != 18 || v[0] != b'd' {
        return None;
    }
    Some(DateRange {
        start: unord(&v[1..9])?,
        end: unord(&v[9..17])?,
        floating: v[17] == 1,
    })
}

/// Decodes a postcard-encoded entry of kind `k` back into an index value.
fn decode_value(v: &[u8]) -> Option<IndexValue> {
    let (&k, rest) = v.split_first()?;
    match k {
        b'#' => postcard::from_bytes(rest).ok().map(IndexValue::Number),
        b'q' => postcard::from_bytes(rest).ok().map(IndexValue::Quantity),
        b'g' => postcard::from_bytes(rest).ok().map(IndexValue::Near),
        b'k' => {
            let pos = rest.iter().position(|&b| b == RS)?;
            postcard::from_bytes(&rest[pos + 1..])
                .ok()
                .map(IndexValue::Composite)
        }
        b'd' => decode_date(v).map(IndexValue::Date),
        _ => None,
    }
}

/// An exact per-entry test on unescaped entry bytes.
pub type Filter = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// How to answer one query value: a scan and the filter its entries must pass.
pub struct Scan {
    /// The key range.
    pub range: ValueMatch,
    /// The exact test of each entry.
    pub filter: Filter,
    /// Whether the range narrows the parameter's entries (rather than reading all of one kind).
    pub selective: bool,
}

fn scan(range: ValueMatch, selective: bool, filter: Filter) -> Scan {
    Scan {
        range,
        filter,
        selective,
    }
}

fn all(_: &[u8]) -> bool {
    true
}

fn exact(k: Vec<u8>) -> Scan {
    scan(ValueMatch::Exact(k), true, Box::new(all))
}

fn prefix(k: Vec<u8>) -> Scan {
    scan(ValueMatch::Prefix(k), true, Box::new(all))
}

/// Every entry of the parameter (for `:missing`).
pub fn any_value() -> Scan {
    scan(ValueMatch::Prefix(Vec::new()), false, Box::new(all))
}

/// The scan answering query value `q` under `modifier` (`:not` and `:missing` are the
/// caller's: it passes the positive value). `None` when the value cannot match any entry or
/// needs the database (terminology).
pub fn plan(q: &QueryValue, modifier: Option<&Modifier>) -> Option<Scan> {
    Some(match q {
        QueryValue::Missing(_) | QueryValue::ValueSet(_) => return None,
        QueryValue::String { exact, normalized } => match modifier {
            Some(Modifier::Exact) => {
                let mut k = kind(b'n', &crate::normalize::normalize(exact));
                k.push(RS);
                let want = exact.clone();
                let n = k.len();
                scan(
                    ValueMatch::Prefix(k),
                    true,
                    Box::new(move |v| v.get(n..) == Some(want.as_bytes())),
                )
            }
            Some(Modifier::Contains) => {
                let want = normalized.clone();
                scan(
                    ValueMatch::Prefix(vec![b'n']),
                    false,
                    Box::new(move |v| {
                        let norm = string_part(v);
                        contains(norm, want.as_bytes())
                    }),
                )
            }
            Some(Modifier::Equal) => {
                let mut k = kind(b'n', normalized);
                k.push(RS);
                scan(ValueMatch::Prefix(k), true, Box::new(all))
            }
            Some(Modifier::EndsWith) => {
                let want = normalized.clone();
                scan(
                    ValueMatch::Prefix(vec![b'n']),
                    false,
                    Box::new(move |v| string_part(v).ends_with(want.as_bytes())),
                )
            }
            _ => {
                let want = normalized.clone();
                scan(
                    ValueMatch::Prefix(kind(b'n', normalized)),
                    !normalized.is_empty(),
                    Box::new(move |v| string_part(v).starts_with(want.as_bytes())),
                )
            }
        },
        QueryValue::Token(t) => token_scan(t)?,
        QueryValue::Text(text) => {
            let want = text.clone();
            scan(
                ValueMatch::Prefix(vec![b't']),
                false,
                Box::new(move |v| {
                    std::str::from_utf8(&v[1..]).is_ok_and(|s| word_prefix(s, &want))
                }),
            )
        }
        QueryValue::OfType {
            system,
            code,
            value,
        } => exact(of_type_key(system, code, value)),
        QueryValue::Reference(r) => match r {
            ReferenceQuery::Local {
                type_name: Some(t),
                id,
                version: None,
            } => exact(local_key(t, id)),
            ReferenceQuery::Local {
                type_name: Some(t),
                id,
                version: Some(v),
            } => exact(kind(b'r', &format!("{t}/{id}/_history/{v}"))),
            ReferenceQuery::Local {
                type_name: None,
                id,
                version,
            } => {
                if version.is_some() {
                    return None;
                }
                prefix(pair(b'i', id, ""))
            }
            ReferenceQuery::Url {
                url,
                version: Some(v),
            } if modifier == Some(&Modifier::Below) => version_below_scan(url, v),
            ReferenceQuery::Url { url, version } => match version {
                Some(v) => exact(url_key(url, Some(v))),
                None => prefix(pair(b'u', url, "")),
            },
            ReferenceQuery::Identifier(t) => match (&t.system, &t.code) {
                (SystemMatch::Is(s), Some(c)) => exact(pair(b'y', s, c)),
                (SystemMatch::Is(s), None) => prefix(pair(b'y', s, "")),
                (SystemMatch::None, code) => {
                    let mut k = vec![b'y', US];
                    match code {
                        Some(c) => {
                            k.extend_from_slice(c.as_bytes());
                            exact(k)
                        }
                        None => prefix(k),
                    }
                }
                (SystemMatch::Any, code) => {
                    let code = code.clone();
                    scan(
                        ValueMatch::Prefix(vec![b'y']),
                        false,
                        Box::new(move |v| {
                            let value = v.iter().position(|&b| b == US).map(|i| &v[i + 1..]);
                            match (&code, value) {
                                (Some(c), Some(val)) => val == c.as_bytes(),
                                (None, Some(val)) => !val.is_empty(),
                                _ => false,
                            }
                        }),
                    )
                }
            },
        },
        QueryValue::Uri(u) => match modifier {
            Some(Modifier::Below) if u.contains('|') => {
                let (url, v) = u.split_once('|').unwrap_or_default();
                version_below_scan(url, v)
            }
            Some(Modifier::Below) => {
                let want = u.clone();
                scan(
                    ValueMatch::Prefix(kind(b'u', u)),
                    true,
                    Box::new(move |v| uri_text(v).starts_with(&want)),
                )
            }
            Some(Modifier::Above) => {
                let want = u.clone();
                scan(
                    ValueMatch::Prefix(vec![b'u']),
                    false,
                    Box::new(move |v| want.starts_with(&uri_text(v))),
                )
            }
            _ => match u.split_once('|') {
                Some((url, v)) => exact(url_key(url, Some(v))),
                None => prefix(pair(b'u', u, "")),
            },
        },
        QueryValue::Date(d) => {
            let (lo, hi) = date_bounds(d.prefix, &d.range, &d.approx);
            let from = lo.map(|x| {
                let mut k = vec![b'd'];
                k.extend_from_slice(&ord(x));
                k
            });
            let to = hi.map(|x| {
                let mut k = vec![b'd'];
                k.extend_from_slice(&ord(x));
                k
            });
            let selective = lo.is_some() && hi.is_some();
            let q = q.clone();
            let range = match (from, to) {
                (None, None) => ValueMatch::Prefix(vec![b'd']),
                (f, t) => ValueMatch::Range(
                    Some(f.unwrap_or_else(|| vec![b'd'])),
                    Some(t.unwrap_or_else(|| vec![b'e'])),
                ),
            };
            scan(
                range,
                selective,
                Box::new(move |v| decode_matches(&q, None, v)),
            )
        }
        QueryValue::Number(_) => decoded(b'#', q, modifier),
        QueryValue::Quantity(_) => decoded(b'q', q, modifier),
        QueryValue::Near { .. } => decoded(b'g', q, modifier),
        QueryValue::Composite(parts) => {
            let mut k = vec![b'k'];
            let lead = match parts.first() {
                Some(QueryValue::Token(TokenQuery { code: Some(c), .. })) => Some(c.as_str()),
                _ => None,
            };
            if let Some(c) = lead {
                k.extend_from_slice(c.as_bytes());
                k.push(RS);
            }
            let q = q.clone();
            scan(
                ValueMatch::Prefix(k),
                lead.is_some(),
                Box::new(move |v| decode_matches(&q, None, v)),
            )
        }
    })
}

/// Appends the scans answering query value `q` of a parameter with reference targets
/// `targets`: [`plan`]'s, and for a bare id the exact `r Target/id` entry of each target.
pub fn plan_into(
    targets: &[String],
    q: &QueryValue,
    modifier: Option<&Modifier>,
    out: &mut Vec<Scan>,
) {
    if let QueryValue::Reference(ReferenceQuery::Local {
        type_name: None,
        id,
        version: None,
    }) = q
    {
        out.extend(targets.iter().map(|t| exact(local_key(t, id))));
    }
    out.extend(plan(q, modifier));
}

fn decoded(k: u8, q: &QueryValue, modifier: Option<&Modifier>) -> Scan {
    let q = q.clone();
    let m = modifier.cloned();
    scan(
        ValueMatch::Prefix(vec![k]),
        false,
        Box::new(move |v| decode_matches(&q, m.as_ref(), v)),
    )
}

fn decode_matches(q: &QueryValue, m: Option<&Modifier>, v: &[u8]) -> bool {
    decode_value(v).is_some_and(|iv| value_matches(q, m, &iv))
}

/// The `u` entries of `url` whose version is `v` or under it (`:below` on a version).
fn version_below_scan(url: &str, v: &str) -> Scan {
    let want = v.to_string();
    let k = url_key(url, Some(v));
    let n = k.len() - v.len();
    scan(
        ValueMatch::Prefix(k),
        true,
        Box::new(move |e| {
            std::str::from_utf8(&e[n.min(e.len())..])
                .is_ok_and(|ver| crate::matching::version_below(ver, &want))
        }),
    )
}

/// Start-of-interval bounds `[lo, hi)` a stored date must lie in to possibly match.
fn date_bounds(p: Prefix, r: &DateRange, approx: &DateRange) -> (Option<i64>, Option<i64>) {
    let up = |x: i64| x.checked_add(DATE_SLACK + 1);
    let down = |x: i64| x.checked_sub(DATE_SLACK);
    match p {
        Prefix::Eq => (down(r.start), up(r.end)),
        Prefix::Lt | Prefix::Le | Prefix::Eb => (None, up(r.end)),
        Prefix::Ap => (None, up(approx.end)),
        Prefix::Gt | Prefix::Ge | Prefix::Sa | Prefix::Ne => (None, None),
    }
}

fn token_scan(t: &TokenQuery) -> Option<Scan> {
    Some(match (&t.system, &t.code) {
        (SystemMatch::Any, Some(c)) => prefix(pair(b'c', c, "")),
        (SystemMatch::None, Some(c)) => exact(pair(b'c', c, "")),
        (SystemMatch::Is(s), Some(c)) => exact(pair(b'c', c, s)),
        (SystemMatch::Is(s), None) => {
            let want = s.clone();
            scan(
                ValueMatch::Prefix(vec![b'c']),
                false,
                Box::new(move |v| {
                    v.iter()
                        .position(|&b| b == US)
                        .is_some_and(|i| &v[i + 1..] == want.as_bytes())
                }),
            )
        }
        (_, None) => return None,
    })
}

/// The normalised part of an `n` entry.
fn string_part(v: &[u8]) -> &[u8] {
    let body = &v[1.min(v.len())..];
    match body.iter().position(|&b| b == RS) {
        Some(i) => &body[..i],
        None => body,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The text of a `u` entry as the uri was written (`url` or `url|version`).
fn uri_text(v: &[u8]) -> String {
    let body = String::from_utf8_lossy(&v[1.min(v.len())..]);
    match body.split_once(US as char) {
        Some((u, "")) => u.to_string(),
        Some((u, ver)) => format!("{u}|{ver}"),
        None => body.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use crate::query::parse_query;

    fn keys_of(v: &IndexValue, targets: &[String]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        entries(v, Rows::Written(targets), &mut out);
        out
    }

    /// Whether the scan for `query` on `param` selects value `v`: range and filter.
    fn selects(ty: &str, query: &str, v: &IndexValue) -> bool {
        let (k, val) = query.split_once('=').unwrap();
        let reg = Registry::r4();
        let q = parse_query(&reg, ty, &[(k.into(), val.into())]).unwrap();
        let crate::Clause::Param(p) = &q.clauses[0] else {
            panic!()
        };
        let keys = keys_of(v, &p.param.target);
        p.values.iter().any(|qv| {
            let mut scans = Vec::new();
            plan_into(&p.param.target, qv, p.modifier.as_ref(), &mut scans);
            scans.iter().any(|s| {
                keys.iter().any(|key| {
                    let in_range = match &s.range {
                        ValueMatch::Exact(e) => key == e,
                        ValueMatch::Prefix(pre) => key.starts_with(pre),
                        ValueMatch::Range(a, b) => {
                            a.as_ref().is_none_or(|a| key >= a)
                                && b.as_ref().is_none_or(|b| key < b)
                        }
                    };
                    in_range && (s.filter)(key)
                })
            })
        })
    }

    /// The scans agree with the reference matching semantics on a grid of values and queries.
    #[test]
    fn scans_agree_with_matching() {
        let reg = Registry::r4();
        let resources = [
            serde_json::json!({"resourceType": "Patient", "id": "a", "birthDate": "2000-06-01",
                "name": [{"family": "Müller", "given": ["Hans"]}],
                "identifier": [{"system": "urn:s", "value": "1",
                    "type": {"coding": [{"system": "urn:t", "code": "MR"}]}}],
                "gender": "female", "managingOrganization": {"reference": "Organization/o1"}}),
            serde_json::json!({"resourceType": "Observation", "id": "o", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6",
                    "display": "Systolic blood pressure"}], "text": "BP sys"},
                "subject": {"reference": "Patient/a"},
                "effectiveDateTime": "2020-01-01T23:30:00-05:00",
                "valueQuantity": {"value": 5.4, "system": "http://unitsofmeasure.org", "code": "mg"}}),
        ];
        let queries: &[(&str, &[&str])] = &[
            (
                "Patient",
                &[
                    "name=mull",
                    "name=hans",
                    "name=xyz",
                    "family:exact=Müller",
                    "family:exact=muller",
                    "name:contains=ll",
                    "birthdate=2000",
                    "birthdate=2000-06",
                    "birthdate=gt2000",
                    "birthdate=ge2000-06-01",
                    "birthdate=lt2001",
                    "birthdate=sa1999",
                    "birthdate=eb2000-06-02",
                    "birthdate=ne2000-06-01",
                    "birthdate=ap2000-06-01",
                    "identifier=urn:s|1",
                    "identifier=1",
                    "identifier=|1",
                    "identifier=urn:s|",
                    "identifier:of-type=urn:t|MR|1",
                    "gender=female",
                    "gender=male",
                    "organization=Organization/o1",
                    "organization=o1",
                    "organization:Organization=o1",
                    "organization=o2",
                ],
            ),
            (
                "Observation",
                &[
                    "code=8480-6",
                    "code=http://loinc.org|8480-6",
                    "code:text=blood",
                    "code:text=bp",
                    "code:text=pressure",
                    "date=ge2020-01-02T00:00:00Z",
                    "date=lt2020-01-02T00:00:00Z",
                    "date=2020-01-02",
                    "value-quantity=5.4|http://unitsofmeasure.org|mg",
                    "value-quantity=5400|http://unitsofmeasure.org|ug",
                    "value-quantity=gt5",
                    "value-quantity=lt5",
                    "code-value-quantity=http://loinc.org|8480-6$gt5",
                    "code-value-quantity=http://loinc.org|8480-6$lt5",
                    "subject=Patient/a",
                    "subject=a",
                ],
            ),
        ];
        let mut checked = 0;
        for r in &resources {
            let ty = r["resourceType"].as_str().unwrap();
            let values = reg.extract(r).unwrap();
            for (qty, qs) in queries {
                if qty != &ty {
                    continue;
                }
                for query in *qs {
                    let (k, val) = query.split_once('=').unwrap();
                    let parsed = parse_query(&reg, ty, &[(k.into(), val.into())]).unwrap();
                    let crate::Clause::Param(p) = &parsed.clauses[0] else {
                        panic!()
                    };
                    let of_param: Vec<IndexValue> = values
                        .iter()
                        .filter(|(pr, _)| pr.code == p.param.code)
                        .map(|(_, v)| v.clone())
                        .collect();
                    let expected = p.matches(&of_param).unwrap();
                    let got = of_param.iter().any(|v| selects(ty, query, v));
                    assert_eq!(got, expected, "{ty}?{query}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 42);
    }

    #[test]
    fn reference_keys_round_trip() {
        let k = reference_key("Patient", "p1");
        assert_eq!(parse_reference_key(&k), Some(("Patient", "p1")));
        assert_eq!(parse_reference_key(b"rPatient/p1/_history/2"), None);
        assert_eq!(parse_reference_key(b"ufoo"), None);
        assert!(ord(-1) < ord(0) && ord(0) < ord(1) && ord(i64::MIN) < ord(i64::MAX));
        assert_eq!(unord(&ord(-42)), Some(-42));
    }
}
