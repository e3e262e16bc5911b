//! FHIRPath functions: existence, filtering and projection, subsetting, combining,
//! conversion, string, math, tree navigation, utility (including the FHIRPath 2.x additions
//! `sort`, `lowBoundary`/`highBoundary`, `precision`, `comparable`, `trim`, `split`, `join`,
//! `encode`/`decode`, `escape`/`unescape`, `matchesFull`, `$index`) and the FHIR-specific
//! `extension`, `hasExtension`, `hasValue`, `getValue`, `resolve`, `conformsTo`, `htmlChecks`.
//!
//! Unsupported (they return an `Unsupported` error): `memberOf`, `subsumes`, `subsumedBy` (need
//! a terminology server), `conformsTo` with a profile other than a core type's base definition,
//! `elementDefinition`, `slice`, `checkModifiers`, `defineVariable`. Regular expressions use the
//! `regex` crate's syntax (no look-around or back-references), in single-line mode.
//! Transcendental math (`exp`, `ln`, `log`, `power` with a fractional result, `sqrt`) is
//! computed in binary floating point and converted back to a decimal.

use crate::compare;
use crate::error::Error;
use crate::eval::{Coll, Evaluator, Scope, is_type, same_item, single, to_bool, union_into};
use crate::model::{self, Name};
use crate::parser::{Call, Expr};
use crate::temporal::{Date, DateTime, Precision, Time};
use crate::ucum;
use crate::value::{Item, Node, Quantity, TypeInfo};
use flint_model::defs::{Kind, definitions};
use regex::{Regex, RegexBuilder};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::LazyLock;

/// A known function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub(crate) enum Func {
    Empty,
    Exists,
    All,
    AllTrue,
    AnyTrue,
    AllFalse,
    AnyFalse,
    SubsetOf,
    SupersetOf,
    Count,
    Distinct,
    IsDistinct,
    Where,
    Select,
    Repeat,
    OfType,
    Single,
    First,
    Last,
    Tail,
    Skip,
    Take,
    Intersect,
    Exclude,
    Union,
    Combine,
    Iif,
    ToBoolean,
    ConvertsToBoolean,
    ToInteger,
    ConvertsToInteger,
    ToDecimal,
    ConvertsToDecimal,
    ToDate,
    ConvertsToDate,
    ToDateTime,
    ConvertsToDateTime,
    ToTime,
    ConvertsToTime,
    ToQuantity,
    ConvertsToQuantity,
    ToString,
    ConvertsToString,
    IndexOf,
    LastIndexOf,
    Substring,
    StartsWith,
    EndsWith,
    Contains,
    Upper,
    Lower,
    Replace,
    Matches,
    MatchesFull,
    ReplaceMatches,
    Length,
    ToChars,
    Trim,
    Split,
    Join,
    Encode,
    Decode,
    Escape,
    Unescape,
    Abs,
    Ceiling,
    Exp,
    Floor,
    Ln,
    Log,
    Power,
    Round,
    Sqrt,
    Truncate,
    Children,
    Descendants,
    Trace,
    Now,
    Today,
    TimeOfDay,
    Type,
    Not,
    LowBoundary,
    HighBoundary,
    Precision,
    Comparable,
    Sort,
    Aggregate,
    Is,
    As,
    Extension,
    HasExtension,
    HasValue,
    GetValue,
    Resolve,
    ConformsTo,
    HtmlChecks,
    Unsupported,
}

const TABLE: &[(&str, Func, usize, usize)] = &[
    ("empty", Func::Empty, 0, 0),
    ("exists", Func::Exists, 0, 1),
    ("all", Func::All, 1, 1),
    ("allTrue", Func::AllTrue, 0, 0),
    ("anyTrue", Func::AnyTrue, 0, 0),
    ("allFalse", Func::AllFalse, 0, 0),
    ("anyFalse", Func::AnyFalse, 0, 0),
    ("subsetOf", Func::SubsetOf, 1, 1),
    ("supersetOf", Func::SupersetOf, 1, 1),
    ("count", Func::Count, 0, 0),
    ("distinct", Func::Distinct, 0, 0),
    ("isDistinct", Func::IsDistinct, 0, 0),
    ("where", Func::Where, 1, 1),
    ("select", Func::Select, 1, 1),
    ("repeat", Func::Repeat, 1, 1),
    ("ofType", Func::OfType, 1, 1),
    ("single", Func::Single, 0, 0),
    ("first", Func::First, 0, 0),
    ("last", Func::Last, 0, 0),
    ("tail", Func::Tail, 0, 0),
    ("skip", Func::Skip, 1, 1),
    ("take", Func::Take, 1, 1),
    ("intersect", Func::Intersect, 1, 1),
    ("exclude", Func::Exclude, 1, 1),
    ("union", Func::Union, 1, 1),
    ("combine", Func::Combine, 1, 1),
    ("iif", Func::Iif, 2, 3),
    ("toBoolean", Func::ToBoolean, 0, 0),
    ("convertsToBoolean", Func::ConvertsToBoolean, 0, 0),
    ("toInteger", Func::ToInteger, 0, 0),
    ("convertsToInteger", Func::ConvertsToInteger, 0, 0),
    ("toDecimal", Func::ToDecimal, 0, 0),
    ("convertsToDecimal", Func::ConvertsToDecimal, 0, 0),
    ("toDate", Func::ToDate, 0, 0),
    ("convertsToDate", Func::ConvertsToDate, 0, 0),
    ("toDateTime", Func::ToDateTime, 0, 0),
    ("convertsToDateTime", Func::ConvertsToDateTime, 0, 0),
    ("toTime", Func::ToTime, 0, 0),
    ("convertsToTime", Func::ConvertsToTime, 0, 0),
    ("toQuantity", Func::ToQuantity, 0, 1),
    ("convertsToQuantity", Func::ConvertsToQuantity, 0, 1),
    ("toString", Func::ToString, 0, 0),
    ("convertsToString", Func::ConvertsToString, 0, 0),
    ("indexOf", Func::IndexOf, 1, 1),
    ("lastIndexOf", Func::LastIndexOf, 1, 1),
    ("substring", Func::Substring, 1, 2),
    ("startsWith", Func::StartsWith, 1, 1),
    ("endsWith", Func::EndsWith, 1, 1),
    ("contains", Func::Contains, 1, 1),
    ("upper", Func::Upper, 0, 0),
    ("lower", Func::Lower, 0, 0),
    ("replace", Func::Replace, 2, 2),
    ("matches", Func::Matches, 1, 1),
    ("matchesFull", Func::MatchesFull, 1, 1),
    ("replaceMatches", Func::ReplaceMatches, 2, 2),
    ("length", Func::Length, 0, 0),
    ("toChars", Func::ToChars, 0, 0),
    ("trim", Func::Trim, 0, 0),
    ("split", Func::Split, 1, 1),
    ("join", Func::Join, 0, 1),
    ("encode", Func::Encode, 1, 1),
    ("decode", Func::Decode, 1, 1),
    ("escape", Func::Escape, 1, 1),
    ("unescape", Func::Unescape, 1, 1),
    ("abs", Func::Abs, 0, 0),
    ("ceiling", Func::Ceiling, 0, 0),
    ("exp", Func::Exp, 0, 0),
    ("floor", Func::Floor, 0, 0),
    ("ln", Func::Ln, 0, 0),
    ("log", Func::Log, 1, 1),
    ("power", Func::Power, 1, 1),
    ("round", Func::Round, 0, 1),
    ("sqrt", Func::Sqrt, 0, 0),
    ("truncate", Func::Truncate, 0, 0),
    ("children", Func::Children, 0, 0),
    ("descendants", Func::Descendants, 0, 0),
    ("trace", Func::Trace, 1, 2),
    ("now", Func::Now, 0, 0),
    ("today", Func::Today, 0, 0),
    ("timeOfDay", Func::TimeOfDay, 0, 0),
    ("type", Func::Type, 0, 0),
    ("not", Func::Not, 0, 0),
    ("lowBoundary", Func::LowBoundary, 0, 1),
    ("highBoundary", Func::HighBoundary, 0, 1),
    ("precision", Func::Precision, 0, 0),
    ("comparable", Func::Comparable, 1, 1),
    ("sort", Func::Sort, 0, 16),
    ("aggregate", Func::Aggregate, 1, 2),
    ("is", Func::Is, 1, 1),
    ("as", Func::As, 1, 1),
    ("extension", Func::Extension, 1, 1),
    ("hasExtension", Func::HasExtension, 1, 1),
    ("hasValue", Func::HasValue, 0, 0),
    ("getValue", Func::GetValue, 0, 0),
    ("resolve", Func::Resolve, 0, 0),
    ("conformsTo", Func::ConformsTo, 1, 1),
    ("htmlChecks", Func::HtmlChecks, 0, 0),
    ("memberOf", Func::Unsupported, 1, 1),
    ("subsumes", Func::Unsupported, 1, 1),
    ("subsumedBy", Func::Unsupported, 1, 1),
    ("elementDefinition", Func::Unsupported, 0, 0),
    ("slice", Func::Unsupported, 2, 2),
    ("checkModifiers", Func::Unsupported, 1, 1),
    ("defineVariable", Func::Unsupported, 1, 2),
];

/// Looks up a function by name: (canonical name, function, min args, max args).
pub(crate) fn lookup(name: &str) -> Option<(&'static str, Func, usize, usize)> {
    TABLE
        .iter()
        .find(|t| t.0 == name)
        .map(|t| (t.0, t.1, t.2, t.3))
}

/// Compiles a FHIRPath regular expression (single-line mode; anchored when `full`).
pub(crate) fn compile_regex(pat: &str, full: bool) -> Result<Regex, Error> {
    let src = if full {
        format!("^(?:{pat})$")
    } else {
        pat.to_string()
    };
    RegexBuilder::new(&src)
        .dot_matches_new_line(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Error::execution(format!("invalid regular expression '{pat}': {e}")))
}

/// Upper bound on the items `repeat()` may produce (it could otherwise loop forever on
/// computed values such as `1.repeat($this + 1)`).
const REPEAT_LIMIT: usize = 10_000;

static EXTENSION: LazyLock<Name> = LazyLock::new(|| Name::new("extension"));
static EMPTY_OBJECT: LazyLock<Value> = LazyLock::new(|| Value::Object(serde_json::Map::new()));

fn boolean<'a>(b: bool) -> Coll<'a> {
    vec![Item::Boolean(b)]
}

fn opt<'a>(i: Option<Item<'a>>) -> Coll<'a> {
    i.into_iter().collect()
}

fn string<'a>(s: String) -> Item<'a> {
    Item::String(Cow::Owned(s))
}

/// The text of a string-like single item: a String or the text of a FHIR primitive.
fn text_of<'a>(i: &Item<'a>, what: &str) -> Result<Cow<'a, str>, Error> {
    match i {
        Item::String(s) => Ok(s.clone()),
        Item::Node(n) if n.is_primitive() => match n.value {
            Some(Value::String(s)) => Ok(Cow::Borrowed(s.as_str())),
            Some(Value::Number(x)) => Ok(Cow::Owned(x.as_str().to_string())),
            Some(Value::Bool(b)) => Ok(Cow::Owned(b.to_string())),
            _ => Err(Error::execution(format!("{what}: primitive has no value"))),
        },
        other => Err(Error::semantic(format!(
            "{what} expects a string, got {}",
            other.type_name()
        ))),
    }
}

fn char_index(s: &str, byte: usize) -> i64 {
    s.get(..byte).map_or(0, |p| p.chars().count() as i64)
}

fn f64_to_decimal(f: f64) -> Option<Decimal> {
    if !f.is_finite() {
        return None;
    }
    Decimal::from_str(&format!("{f}"))
        .ok()
        .or_else(|| Decimal::from_f64(f))
}

fn number_of(i: &Item<'_>) -> Option<Decimal> {
    match i.to_system()? {
        Item::Integer(n) => Some(Decimal::from(n)),
        Item::Decimal(d) => Some(d),
        _ => None,
    }
}

impl<'c, 'a> Evaluator<'c, 'a> {
    fn lambda(
        &self,
        e: &Expr,
        item: &Item<'a>,
        index: usize,
        total: Option<&[Item<'a>]>,
    ) -> Result<Coll<'a>, Error> {
        let scope = Scope {
            this: std::slice::from_ref(item),
            index: Some(index),
            total,
        };
        self.eval(e, &scope)
    }

    fn arg(&self, call: &Call, n: usize, scope: &Scope<'_, 'a>) -> Result<Coll<'a>, Error> {
        match call.args.get(n) {
            Some(e) => self.eval(e, scope),
            None => Ok(Vec::new()),
        }
    }

    fn str_arg(
        &self,
        call: &Call,
        n: usize,
        scope: &Scope<'_, 'a>,
    ) -> Result<Option<Cow<'a, str>>, Error> {
        let v = self.arg(call, n, scope)?;
        match single(&v, call.name)? {
            None => Ok(None),
            Some(i) => text_of(i, call.name).map(Some),
        }
    }

    fn int_arg(&self, call: &Call, n: usize, scope: &Scope<'_, 'a>) -> Result<Option<i64>, Error> {
        let v = self.arg(call, n, scope)?;
        match single(&v, call.name)?.map(Item::to_system) {
            None => Ok(None),
            Some(Some(Item::Integer(i))) => Ok(Some(i)),
            Some(_) => Err(Error::execution(format!(
                "{} expects an Integer argument",
                call.name
            ))),
        }
    }

    /// Calls a function on `input`; arguments are evaluated in `scope`.
    pub(crate) fn call(
        &self,
        call: &Call,
        input: &[Item<'a>],
        scope: &Scope<'_, 'a>,
    ) -> Result<Coll<'a>, Error> {
        let name = call.name;
        let lambda_arg = |n: usize| -> Result<&Expr, Error> {
            call.args
                .get(n)
                .ok_or_else(|| Error::semantic(format!("{name}: missing argument")))
        };
        match call.func {
            Func::Empty => Ok(boolean(input.is_empty())),
            Func::Exists => {
                if call.args.is_empty() {
                    return Ok(boolean(!input.is_empty()));
                }
                let e = lambda_arg(0)?;
                for (i, item) in input.iter().enumerate() {
                    if to_bool(&self.lambda(e, item, i, None)?, name)? == Some(true) {
                        return Ok(boolean(true));
                    }
                }
                Ok(boolean(false))
            }
            Func::All => {
                let e = lambda_arg(0)?;
                for (i, item) in input.iter().enumerate() {
                    if to_bool(&self.lambda(e, item, i, None)?, name)? != Some(true) {
                        return Ok(boolean(false));
                    }
                }
                Ok(boolean(true))
            }
            Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
                let mut bools = Vec::with_capacity(input.len());
                for i in input {
                    match i.to_system() {
                        Some(Item::Boolean(b)) => bools.push(b),
                        _ => {
                            return Err(Error::execution(format!(
                                "{name} requires Boolean items, got {}",
                                i.type_name()
                            )));
                        }
                    }
                }
                Ok(boolean(match call.func {
                    Func::AllTrue => bools.iter().all(|b| *b),
                    Func::AnyTrue => bools.iter().any(|b| *b),
                    Func::AllFalse => bools.iter().all(|b| !*b),
                    _ => bools.iter().any(|b| !*b),
                }))
            }
            Func::SubsetOf | Func::SupersetOf => {
                let other = self.arg(call, 0, scope)?;
                let (sub, sup) = if call.func == Func::SubsetOf {
                    (input, other.as_slice())
                } else {
                    (other.as_slice(), input)
                };
                Ok(boolean(
                    sub.iter().all(|a| sup.iter().any(|b| same_item(a, b))),
                ))
            }
            Func::Count => Ok(vec![Item::Integer(input.len() as i64)]),
            Func::Distinct => {
                let mut out = Vec::with_capacity(input.len());
                union_into(&mut out, input.iter().cloned());
                Ok(out)
            }
            Func::IsDistinct => {
                let mut out = Vec::with_capacity(input.len());
                union_into(&mut out, input.iter().cloned());
                Ok(boolean(out.len() == input.len()))
            }
            Func::Where => {
                let e = lambda_arg(0)?;
                let mut out = Vec::new();
                for (i, item) in input.iter().enumerate() {
                    if to_bool(&self.lambda(e, item, i, None)?, name)? == Some(true) {
                        out.push(item.clone());
                    }
                }
                Ok(out)
            }
            Func::Select => {
                let e = lambda_arg(0)?;
                let mut out = Vec::new();
                for (i, item) in input.iter().enumerate() {
                    out.extend(self.lambda(e, item, i, None)?);
                }
                Ok(out)
            }
            Func::Repeat => {
                let e = lambda_arg(0)?;
                let mut out: Coll<'a> = Vec::new();
                let mut frontier: Coll<'a> = input.to_vec();
                while !frontier.is_empty() {
                    if out.len() > REPEAT_LIMIT {
                        return Err(Error::execution(format!(
                            "repeat() produced more than {REPEAT_LIMIT} items"
                        )));
                    }
                    let mut next = Vec::new();
                    for (i, item) in frontier.iter().enumerate() {
                        for r in self.lambda(e, item, i, None)? {
                            if !out.iter().any(|o| same_item(o, &r)) {
                                out.push(r.clone());
                                next.push(r);
                            }
                        }
                    }
                    frontier = next;
                }
                Ok(out)
            }
            Func::OfType => {
                let ts = call
                    .ty
                    .as_ref()
                    .ok_or_else(|| Error::semantic("ofType needs a type"))?;
                Ok(input.iter().filter(|i| is_type(i, ts)).cloned().collect())
            }
            Func::Is => {
                let ts = call
                    .ty
                    .as_ref()
                    .ok_or_else(|| Error::semantic("is needs a type"))?;
                Ok(opt(
                    single(input, name)?.map(|i| Item::Boolean(is_type(i, ts)))
                ))
            }
            Func::As => {
                let ts = call
                    .ty
                    .as_ref()
                    .ok_or_else(|| Error::semantic("as needs a type"))?;
                Ok(opt(single(input, name)?
                    .filter(|i| is_type(i, ts))
                    .cloned()))
            }
            Func::Single => Ok(opt(single(input, name)?.cloned())),
            Func::First => Ok(opt(input.first().cloned())),
            Func::Last => Ok(opt(input.last().cloned())),
            Func::Tail => Ok(input.iter().skip(1).cloned().collect()),
            Func::Skip | Func::Take => {
                let Some(n) = self.int_arg(call, 0, scope)? else {
                    return Ok(Vec::new());
                };
                let n = usize::try_from(n.max(0)).unwrap_or(0);
                Ok(if call.func == Func::Skip {
                    input.iter().skip(n).cloned().collect()
                } else {
                    input.iter().take(n).cloned().collect()
                })
            }
            Func::Intersect => {
                let other = self.arg(call, 0, scope)?;
                let mut out = Vec::new();
                union_into(
                    &mut out,
                    input
                        .iter()
                        .filter(|a| other.iter().any(|b| same_item(a, b)))
                        .cloned(),
                );
                Ok(out)
            }
            Func::Exclude => {
                let other = self.arg(call, 0, scope)?;
                Ok(input
                    .iter()
                    .filter(|a| !other.iter().any(|b| same_item(a, b)))
                    .cloned()
                    .collect())
            }
            Func::Union => {
                let other = self.arg(call, 0, scope)?;
                let mut out = Vec::with_capacity(input.len() + other.len());
                union_into(&mut out, input.iter().cloned());
                union_into(&mut out, other);
                Ok(out)
            }
            Func::Combine => {
                let mut out = input.to_vec();
                out.extend(self.arg(call, 0, scope)?);
                Ok(out)
            }
            Func::Iif => {
                if input.len() > 1 {
                    return Err(Error::execution("iif requires at most one input item"));
                }
                let inner = Scope {
                    this: input,
                    index: scope.index,
                    total: scope.total,
                };
                let c = to_bool(&self.arg(call, 0, &inner)?, name)?;
                if c == Some(true) {
                    self.arg(call, 1, &inner)
                } else {
                    self.arg(call, 2, &inner)
                }
            }
            Func::ToBoolean
            | Func::ToInteger
            | Func::ToDecimal
            | Func::ToDate
            | Func::ToDateTime
            | Func::ToTime
            | Func::ToString
            | Func::ToQuantity => {
                let Some(i) = single(input, name)? else {
                    return Ok(Vec::new());
                };
                let unit = if call.func == Func::ToQuantity {
                    self.str_arg(call, 0, scope)?
                } else {
                    None
                };
                Ok(opt(convert(call.func, i, unit.as_deref())))
            }
            Func::ConvertsToBoolean
            | Func::ConvertsToInteger
            | Func::ConvertsToDecimal
            | Func::ConvertsToDate
            | Func::ConvertsToDateTime
            | Func::ConvertsToTime
            | Func::ConvertsToString
            | Func::ConvertsToQuantity => {
                let Some(i) = single(input, name)? else {
                    return Ok(Vec::new());
                };
                let target = match call.func {
                    Func::ConvertsToBoolean => Func::ToBoolean,
                    Func::ConvertsToInteger => Func::ToInteger,
                    Func::ConvertsToDecimal => Func::ToDecimal,
                    Func::ConvertsToDate => Func::ToDate,
                    Func::ConvertsToDateTime => Func::ToDateTime,
                    Func::ConvertsToTime => Func::ToTime,
                    Func::ConvertsToString => Func::ToString,
                    _ => Func::ToQuantity,
                };
                let unit = if target == Func::ToQuantity {
                    self.str_arg(call, 0, scope)?
                } else {
                    None
                };
                Ok(boolean(convert(target, i, unit.as_deref()).is_some()))
            }
            Func::IndexOf
            | Func::LastIndexOf
            | Func::StartsWith
            | Func::EndsWith
            | Func::Contains
            | Func::Split
            | Func::Encode
            | Func::Decode
            | Func::Escape
            | Func::Unescape => {
                let Some(s) = self.input_str(input, name)? else {
                    return Ok(Vec::new());
                };
                let Some(a) = self.str_arg(call, 0, scope)? else {
                    return Ok(Vec::new());
                };
                string_fn(call.func, &s, &a)
            }
            Func::Substring => {
                let Some(s) = self.input_str(input, name)? else {
                    return Ok(Vec::new());
                };
                let Some(start) = self.int_arg(call, 0, scope)? else {
                    return Ok(Vec::new());
                };
                let len = self.int_arg(call, 1, scope)?;
                let chars: Vec<char> = s.chars().collect();
                if start < 0 || start as usize >= chars.len() {
                    return Ok(Vec::new());
                }
                let start = start as usize;
                let end = match len {
                    Some(l) if l <= 0 => start,
                    Some(l) => start.saturating_add(l as usize).min(chars.len()),
                    None => chars.len(),
                };
                Ok(vec![string(chars[start..end].iter().collect())])
            }
            Func::Upper | Func::Lower | Func::Length | Func::ToChars | Func::Trim => {
                let Some(s) = self.input_str(input, name)? else {
                    return Ok(Vec::new());
                };
                Ok(match call.func {
                    Func::Upper => vec![string(s.to_uppercase())],
                    Func::Lower => vec![string(s.to_lowercase())],
                    Func::Length => vec![Item::Integer(s.chars().count() as i64)],
                    Func::Trim => vec![string(s.trim().to_string())],
                    _ => s.chars().map(|c| string(c.to_string())).collect(),
                })
            }
            Func::Replace => {
                let Some(s) = self.input_str(input, name)? else {
                    return Ok(Vec::new());
                };
                let (Some(p), Some(r)) =
                    (self.str_arg(call, 0, scope)?, self.str_arg(call, 1, scope)?)
                else {
                    return Ok(Vec::new());
                };
                Ok(vec![string(s.replace(p.as_ref(), &r))])
            }
            Func::Matches | Func::MatchesFull | Func::ReplaceMatches => {
                let Some(s) = self.input_str(input, name)? else {
                    return Ok(Vec::new());
                };
                let Some(p) = self.str_arg(call, 0, scope)? else {
                    return Ok(Vec::new());
                };
                let compiled;
                let re = match &call.regex {
                    Some(r) => r,
                    None => {
                        compiled = compile_regex(&p, call.func == Func::MatchesFull)?;
                        &compiled
                    }
                };
                if call.func == Func::ReplaceMatches {
                    let Some(r) = self.str_arg(call, 1, scope)? else {
                        return Ok(Vec::new());
                    };
                    if p.is_empty() {
                        return Ok(vec![Item::String(s)]);
                    }
                    return Ok(vec![string(re.replace_all(&s, r.as_ref()).into_owned())]);
                }
                Ok(boolean(re.is_match(&s)))
            }
            Func::Join => {
                let sep = self.str_arg(call, 0, scope)?.unwrap_or(Cow::Borrowed(""));
                let mut parts = Vec::with_capacity(input.len());
                for i in input {
                    parts.push(text_of(i, name)?);
                }
                Ok(vec![string(parts.join(&sep))])
            }
            Func::Abs
            | Func::Ceiling
            | Func::Floor
            | Func::Exp
            | Func::Ln
            | Func::Sqrt
            | Func::Truncate
            | Func::Round
            | Func::Log
            | Func::Power => self.math(call, input, scope),
            Func::Children | Func::Descendants => {
                let mut out = Vec::new();
                for i in input {
                    if let Item::Node(n) = i {
                        if call.func == Func::Children {
                            model::children(n, &mut out);
                        } else {
                            descendants(n, &mut out);
                        }
                    }
                }
                Ok(out)
            }
            Func::Trace => {
                let label = self.str_arg(call, 0, scope)?.unwrap_or(Cow::Borrowed(""));
                if let Some(t) = self.ctx.trace {
                    if let Some(e) = call.args.get(1) {
                        let mut projected = Vec::new();
                        for (i, item) in input.iter().enumerate() {
                            projected.extend(self.lambda(e, item, i, None)?);
                        }
                        t(&label, &projected);
                    } else {
                        t(&label, input);
                    }
                }
                Ok(input.to_vec())
            }
            Func::Now => Ok(vec![Item::DateTime(self.now())]),
            Func::Today => Ok(vec![Item::Date(self.now().date)]),
            Func::TimeOfDay => Ok(opt(self.now().time.map(Item::Time))),
            Func::Type => Ok(input.iter().filter_map(type_info).map(Item::Type).collect()),
            Func::Not => Ok(opt(to_bool(input, name)?.map(|b| Item::Boolean(!b)))),
            Func::LowBoundary | Func::HighBoundary => {
                let Some(i) = single(input, name)? else {
                    return Ok(Vec::new());
                };
                let p = self.int_arg(call, 0, scope)?;
                Ok(opt(boundary(i, p, call.func == Func::HighBoundary)))
            }
            Func::Precision => {
                let Some(i) = single(input, name)? else {
                    return Ok(Vec::new());
                };
                Ok(opt(precision_of(i).map(Item::Integer)))
            }
            Func::Comparable => {
                let other = self.arg(call, 0, scope)?;
                let (Some(a), Some(b)) = (single(input, name)?, single(&other, name)?) else {
                    return Ok(Vec::new());
                };
                match (a.to_system(), b.to_system()) {
                    (Some(Item::Quantity(x)), Some(Item::Quantity(y))) => {
                        Ok(boolean(ucum::comparable(&x.unit, &y.unit)))
                    }
                    _ => Err(Error::execution("comparable expects quantities")),
                }
            }
            Func::Sort => self.sort(call, input),
            Func::Aggregate => {
                let e = lambda_arg(0)?;
                let mut total = self.arg(call, 1, scope)?;
                for (i, item) in input.iter().enumerate() {
                    total = self.lambda(e, item, i, Some(&total))?;
                }
                Ok(total)
            }
            Func::Extension | Func::HasExtension => {
                let Some(url) = self.str_arg(call, 0, scope)? else {
                    return Ok(Vec::new());
                };
                let mut exts = Vec::new();
                for i in input {
                    if let Item::Node(n) = i {
                        model::navigate(n, &EXTENSION, &mut exts)?;
                    }
                }
                let matching = exts.into_iter().filter(|e| {
                    e.as_node()
                        .and_then(|n| n.value)
                        .and_then(|v| v.get("url"))
                        .and_then(Value::as_str)
                        == Some(url.as_ref())
                });
                if call.func == Func::HasExtension {
                    Ok(boolean(matching.count() > 0))
                } else {
                    Ok(matching.collect())
                }
            }
            Func::HasValue => Ok(boolean(match input {
                [Item::Node(n)] => n.is_primitive() && n.value.is_some_and(|v| !v.is_null()),
                [Item::Type(_)] => false,
                [_] => true,
                _ => false,
            })),
            Func::GetValue => Ok(match single(input, name)? {
                Some(Item::Node(n)) if n.is_primitive() => opt(n.to_system()),
                _ => Vec::new(),
            }),
            Func::Resolve => {
                let mut out = Vec::new();
                for i in input {
                    if let Some(r) = self.resolve(i) {
                        out.push(r);
                    }
                }
                Ok(out)
            }
            Func::ConformsTo => {
                let Some(url) = self.str_arg(call, 0, scope)? else {
                    return Ok(Vec::new());
                };
                let Some(i) = single(input, name)? else {
                    return Ok(Vec::new());
                };
                let ty = url
                    .strip_prefix("http://hl7.org/fhir/StructureDefinition/")
                    .filter(|t| definitions().type_def(t).is_some())
                    .ok_or_else(|| {
                        Error::unsupported(format!(
                            "conformsTo('{url}'): only core type definitions are supported"
                        ))
                    })?;
                Ok(boolean(match i {
                    Item::Node(n) => model::fhir_type_is(n.ty, n.def, ty),
                    _ => false,
                }))
            }
            Func::HtmlChecks => Ok(boolean(true)),
            Func::Unsupported => Err(Error::unsupported(format!(
                "function '{}' is not supported",
                call.name
            ))),
        }
    }

    fn input_str(&self, input: &[Item<'a>], name: &str) -> Result<Option<Cow<'a, str>>, Error> {
        match single(input, name)? {
            None => Ok(None),
            Some(i) => text_of(i, name).map(Some),
        }
    }

    fn math(
        &self,
        call: &Call,
        input: &[Item<'a>],
        scope: &Scope<'_, 'a>,
    ) -> Result<Coll<'a>, Error> {
        let name = call.name;
        let Some(i) = single(input, name)? else {
            return Ok(Vec::new());
        };
        let sys = i.to_system();
        if let (Func::Abs, Some(Item::Quantity(q))) = (call.func, &sys) {
            return Ok(vec![Item::Quantity(Quantity {
                value: q.value.abs(),
                unit: q.unit.clone(),
            })]);
        }
        let int = match &sys {
            Some(Item::Integer(n)) => Some(*n),
            _ => None,
        };
        let Some(x) = sys.as_ref().and_then(number_of) else {
            return Err(Error::execution(format!(
                "{name} expects a number, got {}",
                i.type_name()
            )));
        };
        let to_int = |d: Decimal| d.to_i64().map(Item::Integer);
        Ok(opt(match call.func {
            Func::Abs => match int {
                Some(n) => n.checked_abs().map(Item::Integer),
                None => Some(Item::Decimal(x.abs())),
            },
            Func::Ceiling => to_int(x.ceil()),
            Func::Floor => to_int(x.floor()),
            Func::Truncate => to_int(x.trunc()),
            Func::Round => {
                let p = self.int_arg(call, 0, scope)?.unwrap_or(0);
                if p < 0 {
                    return Err(Error::execution("round precision must be >= 0"));
                }
                Some(Item::Decimal(x.round_dp_with_strategy(
                    p.min(28) as u32,
                    RoundingStrategy::MidpointAwayFromZero,
                )))
            }
            Func::Exp => x
                .to_f64()
                .and_then(|f| f64_to_decimal(f.exp()))
                .map(Item::Decimal),
            Func::Ln => x
                .to_f64()
                .filter(|f| *f > 0.0)
                .and_then(|f| f64_to_decimal(f.ln()))
                .map(Item::Decimal),
            Func::Sqrt => x
                .to_f64()
                .filter(|f| *f >= 0.0)
                .and_then(|f| f64_to_decimal(f.sqrt()))
                .map(Item::Decimal),
            Func::Log => {
                let b = self.arg(call, 0, scope)?;
                let Some(base) = single(&b, name)?.and_then(number_of) else {
                    return Ok(Vec::new());
                };
                match (x.to_f64(), base.to_f64()) {
                    (Some(v), Some(b)) if v > 0.0 && b > 0.0 && b != 1.0 => {
                        f64_to_decimal(v.ln() / b.ln()).map(Item::Decimal)
                    }
                    _ => None,
                }
            }
            Func::Power => {
                let e = self.arg(call, 0, scope)?;
                let Some(ei) = single(&e, name)?.and_then(Item::to_system) else {
                    return Ok(Vec::new());
                };
                match (int, &ei) {
                    (Some(b), Item::Integer(p)) if *p >= 0 => u32::try_from(*p)
                        .ok()
                        .and_then(|p| b.checked_pow(p))
                        .map(Item::Integer),
                    _ => {
                        let Some(p) = number_of(&ei) else {
                            return Err(Error::execution("power expects a number"));
                        };
                        match (x.to_f64(), p.to_f64()) {
                            (Some(b), Some(p)) => f64_to_decimal(b.powf(p)).map(Item::Decimal),
                            _ => None,
                        }
                    }
                }
            }
            _ => None,
        }))
    }

    fn sort(&self, call: &Call, input: &[Item<'a>]) -> Result<Coll<'a>, Error> {
        if call.args.is_empty() {
            let mut v = input.to_vec();
            v.sort_by(compare::sort_order);
            return Ok(v);
        }
        let mut keyed = Vec::with_capacity(input.len());
        for (i, item) in input.iter().enumerate() {
            let mut keys = Vec::with_capacity(call.args.len());
            for e in &call.args {
                let k = self.lambda(e, item, i, None)?;
                keys.push(single(&k, "sort key")?.cloned());
            }
            keyed.push((keys, item.clone()));
        }
        keyed.sort_by(|(a, _), (b, _)| {
            for (idx, (x, y)) in a.iter().zip(b).enumerate() {
                // Items without a key come first in either direction.
                let o = match (x, y) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => {
                        let o = compare::sort_order(x, y);
                        if call.descending.get(idx).copied().unwrap_or(false) {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        Ok(keyed.into_iter().map(|(_, i)| i).collect())
    }

    /// Resolves a Reference node or a reference string.
    fn resolve(&self, item: &Item<'a>) -> Option<Item<'a>> {
        let reference: Cow<'a, str> = match item {
            Item::Node(n) if !n.is_primitive() => {
                Cow::Borrowed(n.value?.get("reference")?.as_str()?)
            }
            other => text_of(other, "resolve").ok()?,
        };
        let reference = reference.as_ref();
        let root = self
            .ctx
            .root_resource
            .as_ref()
            .or(self.ctx.resource.as_ref());
        let root_value = root.and_then(Item::as_node).and_then(|n| n.value);
        if let Some(id) = reference.strip_prefix('#') {
            let root_value = root_value?;
            if id.is_empty() {
                return Some(Item::Node(Node::resource(root_value)));
            }
            let found = root_value
                .get("contained")?
                .as_array()?
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(id))?;
            return Some(Item::Node(Node::resource(found)));
        }
        if let Some(r) = self.ctx.resolver
            && let Some(v) = r.resolve(reference)
        {
            return Some(Item::Node(Node::resource(v)));
        }
        for bundle in [self.ctx.resource.as_ref(), self.ctx.root_resource.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(found) = bundle
                .as_node()
                .and_then(|n| n.value)
                .and_then(|b| find_in_bundle(b, reference))
            {
                return Some(Item::Node(Node::resource(found)));
            }
        }
        if self.ctx.reference_stubs {
            return reference_stub(reference);
        }
        None
    }
}

/// Finds a bundle entry's resource by full URL or by `Type/id`.
fn find_in_bundle<'a>(bundle: &'a Value, reference: &str) -> Option<&'a Value> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return None;
    }
    let entries = bundle.get("entry")?.as_array()?;
    let by_url = entries
        .iter()
        .find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(reference));
    if let Some(e) = by_url {
        return e.get("resource");
    }
    let (ty, id) = type_and_id(reference)?;
    entries.iter().find_map(|e| {
        let r = e.get("resource")?;
        (r.get("resourceType").and_then(Value::as_str) == Some(ty)
            && r.get("id").and_then(Value::as_str) == Some(id))
        .then_some(r)
    })
}

/// The `Type` and `id` of a literal reference (`Patient/1`, `http://x/fhir/Patient/1/_history/2`).
fn type_and_id(reference: &str) -> Option<(&str, &str)> {
    let r = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut parts = r.rsplit('/');
    let id = parts.next()?;
    let ty = parts.next()?;
    (definitions().is_resource_type(ty) && !id.is_empty()).then_some((ty, id))
}

/// A typed, empty stand-in for a resource known only by its reference (`resolve() is Patient`).
fn reference_stub<'a>(reference: &str) -> Option<Item<'a>> {
    let (ty, _) = type_and_id(reference)?;
    let names = definitions().resource_types();
    let idx = names.binary_search_by(|n| n.as_str().cmp(ty)).ok()?;
    let name: &'static str = names.get(idx)?.as_str();
    Some(Item::Node(Node {
        value: Some(&EMPTY_OBJECT),
        ext: None,
        ty: name,
        def: definitions().type_def(name),
    }))
}

fn descendants<'a>(n: &Node<'a>, out: &mut Coll<'a>) {
    let mut kids = Vec::new();
    model::children(n, &mut kids);
    for k in kids {
        out.push(k.clone());
        if let Item::Node(c) = &k {
            descendants(c, out);
        }
    }
}

fn type_info(i: &Item<'_>) -> Option<TypeInfo> {
    Some(match i {
        Item::Node(n) => {
            if n.ty.is_empty() {
                return None;
            }
            let name = match n.def {
                Some(d) if d.kind == Kind::Backbone => {
                    d.base.clone().unwrap_or_else(|| "BackboneElement".into())
                }
                _ => n.ty.to_string(),
            };
            TypeInfo {
                namespace: "FHIR",
                name,
            }
        }
        Item::Type(_) => return None,
        other => TypeInfo {
            namespace: "System",
            name: other.type_name().to_string(),
        },
    })
}

fn string_fn<'a>(f: Func, s: &str, a: &str) -> Result<Coll<'a>, Error> {
    Ok(match f {
        Func::IndexOf => vec![Item::Integer(s.find(a).map_or(-1, |b| char_index(s, b)))],
        Func::LastIndexOf => vec![Item::Integer(s.rfind(a).map_or(-1, |b| char_index(s, b)))],
        Func::StartsWith => boolean(s.starts_with(a)),
        Func::EndsWith => boolean(s.ends_with(a)),
        Func::Contains => boolean(s.contains(a)),
        Func::Split => {
            if a.is_empty() {
                s.chars().map(|c| string(c.to_string())).collect()
            } else {
                s.split(a).map(|p| string(p.to_string())).collect()
            }
        }
        Func::Encode => opt(crate::codec::encode(s.as_bytes(), a).map(string)),
        Func::Decode => opt(crate::codec::decode(s, a)
            .and_then(|b| String::from_utf8(b).ok())
            .map(string)),
        Func::Escape => opt(crate::codec::escape(s, a).map(string)),
        Func::Unescape => opt(crate::codec::unescape(s, a).map(string)),
        _ => Vec::new(),
    })
}

/// The conversion functions (`toX`); `None` when the item does not convert.
fn convert<'a>(f: Func, i: &Item<'a>, unit: Option<&str>) -> Option<Item<'a>> {
    let v = i.to_system()?;
    match f {
        Func::ToBoolean => match v {
            Item::Boolean(b) => Some(Item::Boolean(b)),
            Item::Integer(1) => Some(Item::Boolean(true)),
            Item::Integer(0) => Some(Item::Boolean(false)),
            Item::Decimal(d) if d == Decimal::ONE => Some(Item::Boolean(true)),
            Item::Decimal(d) if d.is_zero() => Some(Item::Boolean(false)),
            Item::String(s) => match s.to_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(Item::Boolean(true)),
                "false" | "f" | "no" | "n" | "0" | "0.0" => Some(Item::Boolean(false)),
                _ => None,
            },
            _ => None,
        },
        Func::ToInteger => match v {
            Item::Integer(n) => Some(Item::Integer(n)),
            Item::Boolean(b) => Some(Item::Integer(i64::from(b))),
            Item::String(s) => {
                let t = s.strip_prefix(['+', '-']).unwrap_or(&s);
                if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse().ok().map(Item::Integer)
                } else {
                    None
                }
            }
            _ => None,
        },
        Func::ToDecimal => match v {
            Item::Decimal(d) => Some(Item::Decimal(d)),
            Item::Integer(n) => Some(Item::Decimal(Decimal::from(n))),
            Item::Boolean(b) => Some(Item::Decimal(if b { Decimal::ONE } else { Decimal::ZERO })),
            Item::String(s) => parse_decimal_text(&s).map(Item::Decimal),
            _ => None,
        },
        Func::ToDate => match v {
            Item::Date(d) => Some(Item::Date(d)),
            Item::DateTime(d) => Some(Item::Date(d.date)),
            Item::String(s) => Date::parse(&s)
                .or_else(|| DateTime::parse(&s).map(|d| d.date))
                .map(Item::Date),
            _ => None,
        },
        Func::ToDateTime => match v {
            Item::DateTime(d) => Some(Item::DateTime(d)),
            Item::Date(d) => Some(Item::DateTime(d.to_datetime())),
            Item::String(s) => DateTime::parse(&s).map(Item::DateTime),
            _ => None,
        },
        Func::ToTime => match v {
            Item::Time(t) => Some(Item::Time(t)),
            Item::String(s) => Time::parse(s.strip_prefix('T').unwrap_or(&s)).map(Item::Time),
            _ => None,
        },
        Func::ToString => i.to_fhirpath_string().map(string),
        Func::ToQuantity => {
            let q = match v {
                Item::Quantity(q) => q,
                Item::Integer(n) => Quantity {
                    value: Decimal::from(n),
                    unit: "1".into(),
                },
                Item::Decimal(d) => Quantity {
                    value: d,
                    unit: "1".into(),
                },
                Item::Boolean(b) => Quantity {
                    value: if b { Decimal::ONE } else { Decimal::ZERO },
                    unit: "1".into(),
                },
                Item::String(s) => parse_quantity_text(&s)?,
                _ => return None,
            };
            match unit {
                None => Some(Item::Quantity(q)),
                Some(u) => ucum::convert(q.value, &q.unit, u).map(|value| {
                    Item::Quantity(Quantity {
                        value,
                        unit: u.to_string(),
                    })
                }),
            }
        }
        _ => None,
    }
}

fn parse_decimal_text(s: &str) -> Option<Decimal> {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match t.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (t, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    Decimal::from_str(s.strip_prefix('+').unwrap_or(s)).ok()
}

/// Parses `'<number> [<'unit'>|<calendar keyword>]'`.
fn parse_quantity_text(s: &str) -> Option<Quantity> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let value = parse_decimal_text(&s[..end])?;
    let rest = s[end..].trim();
    let unit = if rest.is_empty() {
        "1".to_string()
    } else if let Some(u) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        u.to_string()
    } else if crate::temporal::CalendarUnit::from_keyword(rest).is_some() {
        rest.to_string()
    } else {
        return None;
    };
    Some(Quantity { value, unit })
}

fn precision_of(i: &Item<'_>) -> Option<i64> {
    let digits = |p: Precision| match p {
        Precision::Year => 4,
        Precision::Month => 6,
        Precision::Day => 8,
        Precision::Hour => 10,
        Precision::Minute => 12,
        Precision::Second => 14,
        Precision::Millisecond => 17,
    };
    match i.to_system()? {
        Item::Decimal(d) => Some(i64::from(d.scale())),
        Item::Integer(_) => Some(0),
        Item::Date(d) => Some(digits(d.precision())),
        Item::DateTime(d) => Some(digits(d.precision())),
        Item::Time(t) => Some(match t.precision() {
            Precision::Hour => 2,
            Precision::Minute => 4,
            Precision::Second => 6,
            _ => 9,
        }),
        _ => None,
    }
}

/// `lowBoundary` / `highBoundary` of a decimal, date, date-time, time or quantity.
fn boundary<'a>(i: &Item<'a>, precision: Option<i64>, high: bool) -> Option<Item<'a>> {
    match i.to_system()? {
        Item::Integer(n) => decimal_boundary(Decimal::from(n), precision, high).map(Item::Decimal),
        Item::Decimal(d) => decimal_boundary(d, precision, high).map(Item::Decimal),
        Item::Quantity(q) => decimal_boundary(q.value, precision, high).map(|value| {
            Item::Quantity(Quantity {
                value,
                unit: q.unit,
            })
        }),
        Item::Date(d) => {
            let p = precision.unwrap_or(8);
            let mut r = d;
            if p < 4 {
                return None;
            }
            if p >= 6 {
                r.month = Some(d.month.unwrap_or(if high { 12 } else { 1 }));
            } else {
                r.month = None;
            }
            if p >= 8 {
                let m = r.month.unwrap_or(1);
                r.day = Some(d.day.unwrap_or(if high {
                    crate::temporal::days_in_month(r.year, m)
                } else {
                    1
                }));
            } else {
                r.day = None;
            }
            (p <= 8).then_some(Item::Date(r))
        }
        Item::DateTime(d) => {
            let p = precision.unwrap_or(17);
            if !matches!(p, 4 | 6 | 8 | 10 | 12 | 14 | 17) {
                return None;
            }
            let date = match boundary(&Item::Date(d.date), Some(p.min(8)), high)? {
                Item::Date(x) => x,
                _ => return None,
            };
            if p <= 8 {
                return Some(Item::DateTime(DateTime {
                    date,
                    time: None,
                    offset: None,
                }));
            }
            let t = d.time.unwrap_or(Time {
                hour: if high { 23 } else { 0 },
                minute: None,
                second: None,
                millis: None,
            });
            let fill = |v: Option<u8>, max: u8| Some(v.unwrap_or(if high { max } else { 0 }));
            let time = Time {
                hour: t.hour,
                minute: if p >= 12 { fill(t.minute, 59) } else { None },
                second: if p >= 14 { fill(t.second, 59) } else { None },
                millis: if p >= 17 {
                    Some(t.millis.unwrap_or(if high { 999 } else { 0 }))
                } else {
                    None
                },
            };
            let offset = d.offset.or(Some(if high { -12 * 60 } else { 14 * 60 }));
            Some(Item::DateTime(DateTime {
                date,
                time: Some(time),
                offset,
            }))
        }
        Item::Time(t) => {
            let p = precision.unwrap_or(9);
            if !matches!(p, 2 | 4 | 6 | 9) {
                return None;
            }
            let fill = |v: Option<u8>, max: u8| Some(v.unwrap_or(if high { max } else { 0 }));
            Some(Item::Time(Time {
                hour: t.hour,
                minute: if p >= 4 { fill(t.minute, 59) } else { None },
                second: if p >= 6 { fill(t.second, 59) } else { None },
                millis: if p >= 9 {
                    Some(t.millis.unwrap_or(if high { 999 } else { 0 }))
                } else {
                    None
                },
            }))
        }
        _ => None,
    }
}

/// Decimal boundaries: the value ± half a unit in its last digit, expressed with `precision`
/// decimal places. Moving away from zero rounds half-up; moving toward zero truncates.
fn decimal_boundary(d: Decimal, precision: Option<i64>, high: bool) -> Option<Decimal> {
    let p = precision.unwrap_or(8);
    if !(0..=28).contains(&p) {
        return None;
    }
    let p = p as u32;
    let half = Decimal::try_new(5, d.scale().checked_add(1)?).ok()?;
    let away = |m: Decimal| -> Option<Decimal> {
        let v = m.checked_add(half)?;
        let mut r = v.round_dp_with_strategy(p, RoundingStrategy::MidpointAwayFromZero);
        r.rescale(p);
        Some(r)
    };
    let toward = |m: Decimal| -> Option<Decimal> {
        let v = m.checked_sub(half)?;
        let mut r = v.trunc_with_scale(p);
        r.rescale(p);
        Some(r)
    };
    let negative = d.is_sign_negative() && !d.is_zero();
    let m = d.abs();
    Some(match (high, negative) {
        (true, false) => away(m)?,
        (false, false) if d.is_zero() => {
            let mut r = away(m)?;
            r.set_sign_negative(true);
            r
        }
        (false, false) => toward(m)?,
        (false, true) => {
            let mut r = away(m)?;
            r.set_sign_negative(true);
            r
        }
        (true, true) => {
            let mut r = toward(m)?;
            r.set_sign_negative(true);
            r
        }
    })
}
