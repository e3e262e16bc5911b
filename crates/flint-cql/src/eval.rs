//! The evaluator: CQL semantics for the System types and operators.

use crate::ast::*;
use crate::error::{Error, err};
use crate::temporal::{Kind, Tm, unit_index};
use crate::value::{Code, Value};
use flint_fhirpath::ucum;
use rust_decimal::prelude::*;
use std::cmp::Ordering;

type R<T> = Result<T, Error>;

/// Evaluation state: variables in scope, the step budget and the default timezone offset.
#[derive(Debug, Clone)]
pub struct Context {
    /// Steps left before evaluation stops with [`Error::Budget`].
    pub budget: u64,
    /// Timezone offset (minutes) of the evaluation request.
    pub tz: i32,
    /// The evaluation instant (`Now()`), fixed for one evaluation.
    pub now: Tm,
    /// Deepest nesting of evaluation allowed (guards the stack against runaway recursion).
    pub max_depth: usize,
    depth: usize,
    /// Values of the library's parameters given by the caller (e.g. `Measurement Period`);
    /// a parameter not here takes its default.
    pub parameters: std::collections::HashMap<String, Value>,
    /// Set by the caller to stop the evaluation (a cancelled request): checked every few
    /// thousand steps, the evaluation then ends with [`Error::Stopped`].
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Values of Unfiltered-context defines shared by every context of one evaluation (the
    /// subjects of a measure): with [`Engine::with_contexts`], such a define is evaluated
    /// once, by the first context that needs it, and the others wait for and reuse its value.
    pub shared: Option<std::sync::Arc<SharedDefines>>,
    /// Results of defines already evaluated (a define has one value per evaluation).
    defines: std::collections::HashMap<String, Value>,
    scopes: Vec<(String, Value)>,
    /// The position of the current element in the innermost iteration (`$index`, ELM
    /// `Iteration`): a query's row, a `Repeat`'s element.
    index: Option<i32>,
}

impl Default for Context {
    fn default() -> Self {
        let n = flint_fhirpath::temporal::now_utc();
        let t = n.time.unwrap_or(flint_fhirpath::temporal::Time {
            hour: 0,
            minute: None,
            second: None,
            millis: None,
        });
        let now = Tm::new(
            [
                n.date.year,
                i32::from(n.date.month.unwrap_or(1)),
                i32::from(n.date.day.unwrap_or(1)),
                i32::from(t.hour),
                i32::from(t.minute.unwrap_or(0)),
                i32::from(t.second.unwrap_or(0)),
                i32::from(t.millis.unwrap_or(0)),
            ],
            7,
            Some(0),
        );
        Context {
            budget: 10_000_000,
            tz: 0,
            now,
            max_depth: 400,
            depth: 0,
            parameters: std::collections::HashMap::new(),
            stop: None,
            shared: None,
            defines: std::collections::HashMap::new(),
            scopes: Vec::new(),
            index: None,
        }
    }
}

impl Context {
    /// [`Error::Stopped`] once the caller set [`Context::stop`].
    fn check_stop(&self) -> R<()> {
        match &self.stop {
            Some(s) if s.load(std::sync::atomic::Ordering::Relaxed) => Err(Error::Stopped),
            _ => Ok(()),
        }
    }

    fn lookup(&self, n: &str) -> Option<&Value> {
        self.scopes
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v)
    }
}

/// The values of Unfiltered-context defines one evaluation shares across its contexts (see
/// [`Context::shared`]): each evaluated at most once, errors included.
#[derive(Debug, Default)]
pub struct SharedDefines(
    std::sync::Mutex<std::collections::HashMap<String, Option<std::sync::Arc<SharedValue>>>>,
);

/// One shared define's value, set by the context that evaluated it (`None` in the map: the
/// define depends on the subject and is not shared).
type SharedValue = std::sync::OnceLock<Result<Value, Error>>;

impl SharedDefines {
    /// The cell of the define known by `key`, made empty on first use when `shareable()`
    /// says so; `None` for a define that is not shared.
    fn cell(
        &self,
        key: &str,
        shareable: impl FnOnce() -> bool,
    ) -> Option<std::sync::Arc<SharedValue>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(key) {
            return c.clone();
        }
        let c = shareable().then(std::sync::Arc::default);
        map.insert(key.to_string(), c.clone());
        c
    }

    /// How many Unfiltered defines have been asked for (shared or not).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no shared define has been asked for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Evaluates expressions against one library's definitions.
pub struct Engine<'a> {
    lib: &'a Library,
    data: Option<&'a dyn DataProvider>,
    /// The providers of the Patient and the Unfiltered context (see
    /// [`Engine::with_contexts`]).
    contexts: Option<(&'a dyn DataProvider, &'a dyn DataProvider)>,
    /// Included libraries by their local alias (`include Lib called Alias`).
    includes: Vec<(std::borrow::Cow<'a, str>, Included<'a>)>,
}

/// A library with its includes resolved, and theirs, to any depth (what [`Engine::resolved`]
/// evaluates).
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The library.
    pub library: std::sync::Arc<Library>,
    /// Its included libraries by their local alias, each resolved in turn.
    pub includes: Vec<(String, std::sync::Arc<Resolved>)>,
}

/// An included library as the engine holds it.
#[derive(Clone, Copy)]
enum Included<'a> {
    /// Handed over by [`Engine::with_include`]: it sees no includes itself.
    Flat(&'a Library),
    /// A resolved library with its own includes.
    Tree(&'a Resolved),
}

/// The source of retrieves (`[Observation: code in "VS"]`): a database or a test fixture.
pub trait DataProvider {
    /// The values of data type `data_type` in the current context whose `code_path` (if any)
    /// matches `codes` (a Code, Concept, list of codes, or a value set url as a String).
    fn retrieve(
        &self,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, Error>;

    /// Whether [`DataProvider::retrieve`] with the same arguments would return anything
    /// (`exists [T: codes]`); a provider answers it without reading the resources when it
    /// can. The default retrieves.
    fn retrieve_exists(
        &self,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<bool, Error> {
        Ok(!self.retrieve(data_type, code_path, codes)?.is_empty())
    }

    /// Whether `code` (a Code, Concept or String) is in the value set or code system
    /// `vocabulary` (a [`Value::Vocabulary`]); `None` when unknown. The default knows none.
    fn in_vocabulary(&self, code: &Value, vocabulary: &Value) -> Result<Option<bool>, Error> {
        let _ = (code, vocabulary);
        err("value set and code system membership needs a terminology provider")
    }

    /// The codes of the value set `vocabulary` (a [`Value::Vocabulary`]), for
    /// `ExpandValueSet`. The default knows none.
    fn expand_vocabulary(&self, vocabulary: &Value) -> Result<Vec<Code>, Error> {
        let _ = vocabulary;
        err("expanding a value set needs a terminology provider")
    }

    /// Whether code `ancestor` subsumes code `code` of the same code system (`code` is
    /// `ancestor` or below it in the system's hierarchy); `None` when the code system is not
    /// known. The default knows none.
    fn subsumes(&self, ancestor: &Code, code: &Code) -> Result<Option<bool>, Error> {
        let _ = (ancestor, code);
        err("subsumption needs a terminology provider")
    }

    /// A retrieve in a related context (`[Pat -> Observation]`, ELM `Retrieve.context`): the
    /// values of `data_type` in the context of `context` (e.g. a Patient resource), not the
    /// evaluation's. The default refuses.
    fn retrieve_related(
        &self,
        context: &Value,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, Error> {
        let _ = (context, code_path, codes);
        err(format!(
            "a retrieve of {data_type} in a related context is not supported by this data source"
        ))
    }
}

/// Deepest nesting of lists, tuples and intervals a selector may build (deeper values would
/// overflow the stack when dropped or compared).
const MAX_VALUE_DEPTH: usize = 1000;

/// Refuses a selector element nested deeper than [`MAX_VALUE_DEPTH`]; the walk is charged to
/// the budget (so repeatedly wrapping a value cannot run unpaid).
fn check_nesting(v: &Value, ctx: &mut Context) -> R<()> {
    fn depth(v: &Value, left: usize, seen: &mut usize) -> Option<usize> {
        *seen += 1;
        let kids: Vec<&Value> = match v {
            Value::List(xs) => xs.iter().collect(),
            Value::Tuple(es) => es.iter().map(|(_, x)| x).collect(),
            Value::Interval(l, _, h, _) => vec![&**l, &**h],
            Value::Ratio(a, b) => vec![&**a, &**b],
            _ => return Some(0),
        };
        if left == 0 {
            return None;
        }
        let mut d = 0;
        for k in kids {
            d = d.max(depth(k, left - 1, seen)? + 1);
        }
        Some(d)
    }
    if !matches!(v, Value::List(_) | Value::Tuple(_) | Value::Interval(..)) {
        return Ok(());
    }
    let mut seen = 0;
    let r = depth(v, MAX_VALUE_DEPTH, &mut seen);
    charge(ctx, seen)?;
    match r {
        Some(_) => Ok(()),
        None => err("value nested too deeply"),
    }
}

/// Takes `n` steps from the budget (work done inside one operator: expansions, query rows).
fn charge(ctx: &mut Context, n: usize) -> R<()> {
    let n = n as u64;
    if ctx.budget < n {
        ctx.budget = 0;
        return Err(Error::Budget);
    }
    ctx.budget -= n;
    ctx.check_stop()
}

fn b(v: Option<bool>) -> Value {
    v.map(Value::Bool).unwrap_or(Value::Null)
}

fn tb(v: &Value) -> R<Option<bool>> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        o => err(format!("expected Boolean, got {}", o.type_name())),
    }
}

fn dec_of(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Long(i) => Some(Decimal::from(*i)),
        Value::Dec(d) => Some(*d),
        _ => None,
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(i64::from(*i)),
        Value::Long(i) => Some(*i),
        _ => None,
    }
}

/// Rounds to the 8 decimal places of CQL Decimal.
fn dround(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(8, RoundingStrategy::MidpointAwayFromZero)
}

fn kind_of(v: &Value) -> Option<(Kind, Tm)> {
    match v {
        Value::Date(t) => Some((Kind::Date, *t)),
        Value::DateTime(t) => Some((Kind::DateTime, *t)),
        Value::Time(t) => Some((Kind::Time, *t)),
        _ => None,
    }
}

fn mk(k: Kind, t: Tm) -> Value {
    match k {
        Kind::Date => Value::Date(t),
        Kind::DateTime => Value::DateTime(t),
        Kind::Time => Value::Time(t),
    }
}

/// Compares two values; `None` when unknown (null or uncertain precision).
pub fn compare(a: &Value, b: &Value, tz: i32) -> R<Option<Ordering>> {
    compare_p(a, b, None, tz)
}

/// Both values with FHIR elements converted to System values (FHIRHelpers), when either is
/// one; `None` when neither is.
fn fhir_pair(a: &Value, b: &Value) -> R<Option<(Value, Value)>> {
    if matches!(a, Value::Fhir(_)) || matches!(b, Value::Fhir(_)) {
        Ok(Some((
            crate::fhir::to_system(a.clone())?,
            crate::fhir::to_system(b.clone())?,
        )))
    } else {
        Ok(None)
    }
}

fn compare_p(a: &Value, b: &Value, p: Option<usize>, tz: i32) -> R<Option<Ordering>> {
    if let Some((x, y)) = fhir_pair(a, b)? {
        if matches!(x, Value::Fhir(_)) || matches!(y, Value::Fhir(_)) {
            return err("FHIR elements of this type have no order");
        }
        return compare_p(&x, &y, p, tz);
    }
    Ok(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Long(_) | Value::Int(_), Value::Long(_) | Value::Int(_)) => {
            Some(int_of(a).cmp(&int_of(b)))
        }
        (
            Value::Int(_) | Value::Long(_) | Value::Dec(_),
            Value::Int(_) | Value::Long(_) | Value::Dec(_),
        ) => dec_of(a).partial_cmp(&dec_of(b)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Quantity(x, u), Value::Quantity(y, v)) => {
            let cal = |u: &str| matches!(norm_unit(u), "year" | "month");
            if (cal(u) && (v == "a" || v == "mo")) || (cal(v) && (u == "a" || u == "mo")) {
                None
            } else if u == v || norm_unit(u) == norm_unit(v) {
                Some(x.cmp(y))
            } else {
                ucum::convert(*y, ucum::ucum_code(v), ucum::ucum_code(u)).map(|y| x.cmp(&dround(y)))
            }
        }
        _ => match (kind_of(a), kind_of(b)) {
            (Some((ka, ta)), Some((kb, tb))) => {
                let start = if ka == Kind::Time { 3 } else { 0 };
                if (ka == Kind::Time) != (kb == Kind::Time) {
                    return err("cannot compare Time with a date");
                }
                match p {
                    Some(p) => ta.compare_at(&tb, start, p, tz),
                    None => ta.compare(&tb, start, tz),
                }
            }
            _ => {
                return err(format!(
                    "cannot compare {} with {}",
                    a.type_name(),
                    b.type_name()
                ));
            }
        },
    })
}

fn norm_unit(u: &str) -> &str {
    match u {
        "year" | "years" => "year",
        "month" | "months" => "month",
        "week" | "weeks" => "week",
        "day" | "days" => "day",
        "hour" | "hours" => "hour",
        "minute" | "minutes" => "minute",
        "second" | "seconds" => "second",
        "millisecond" | "milliseconds" => "millisecond",
        u => u,
    }
}

/// CQL equality (`=`): `None` when unknown.
pub fn equal(a: &Value, b: &Value, tz: i32) -> R<Option<bool>> {
    if let Some((x, y)) = fhir_pair(a, b)? {
        return match (&x, &y) {
            (Value::Fhir(f), Value::Fhir(g)) => Ok(Some(f == g)),
            (Value::Fhir(_), _) | (_, Value::Fhir(_)) => Ok(Some(false)),
            _ => equal(&x, &y, tz),
        };
    }
    Ok(match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::List(x), Value::List(y)) => {
            if x.len() != y.len() {
                return Ok(Some(false));
            }
            let mut r = Some(true);
            for (p, q) in x.iter().zip(y) {
                if p.is_null() && q.is_null() {
                    continue;
                }
                match equal(p, q, tz)? {
                    Some(false) => return Ok(Some(false)),
                    None => r = None,
                    _ => {}
                }
            }
            r
        }
        (Value::Tuple(x), Value::Tuple(y)) => {
            if x.len() != y.len() {
                return Ok(Some(false));
            }
            for (k, v) in x {
                let Some((_, w)) = y.iter().find(|(l, _)| l == k) else {
                    return Ok(Some(false));
                };
                if v.is_null() && w.is_null() {
                    continue;
                }
                match equal(v, w, tz)? {
                    Some(true) => {}
                    o => return Ok(o),
                }
            }
            Some(true)
        }
        (Value::Interval(al, alc, ah, ahc), Value::Interval(bl, blc, bh, bhc)) => {
            let (s1, e1) = bounds(al, *alc, ah, *ahc)?;
            let (s2, e2) = bounds(bl, *blc, bh, *bhc)?;
            and3(equal(&s1, &s2, tz)?, equal(&e1, &e2, tz)?)
        }
        (Value::Code(x), Value::Code(y)) => Some(x == y),
        (Value::Vocabulary(..), Value::Vocabulary(..)) => Some(a == b),
        (Value::Concept(x, dx), Value::Concept(y, dy)) => Some(x == y && dx == dy),
        (Value::Ratio(a1, a2), Value::Ratio(b1, b2)) => {
            and3(equal(a1, b1, tz)?, equal(a2, b2, tz)?)
        }
        (Value::Quantity(..), Value::Quantity(..)) => {
            compare(a, b, tz)?.map(|o| o == Ordering::Equal)
        }
        (Value::Bool(_), Value::Bool(_)) | (Value::Str(_), Value::Str(_)) => Some(a == b),
        _ if kind_of(a).is_some() && kind_of(b).is_some() => {
            if std::mem::discriminant(a) != std::mem::discriminant(b) {
                let (Some((_, x)), Some((_, y))) = (kind_of(a), kind_of(b)) else {
                    return Ok(None);
                };
                return Ok(x.compare(&y, 0, tz).map(|o| o == Ordering::Equal));
            }
            compare(a, b, tz)?.map(|o| o == Ordering::Equal)
        }
        _ if dec_of(a).is_some() && dec_of(b).is_some() => Some(dec_of(a) == dec_of(b)),
        _ => Some(false),
    })
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn norm_str(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// CQL equivalence (`~`): never null.
pub fn equivalent(a: &Value, b: &Value, tz: i32) -> R<bool> {
    if let Some((x, y)) = fhir_pair(a, b)? {
        return match (&x, &y) {
            (Value::Fhir(f), Value::Fhir(g)) => Ok(f == g),
            (Value::Fhir(_), _) | (_, Value::Fhir(_)) => Ok(false),
            _ => equivalent(&x, &y, tz),
        };
    }
    Ok(match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Str(x), Value::Str(y)) => norm_str(x) == norm_str(y),
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .map(|(p, q)| equivalent(p, q, tz))
                    .collect::<R<Vec<_>>>()?
                    .into_iter()
                    .all(|v| v)
        }
        (Value::Tuple(x), Value::Tuple(y)) => {
            if x.len() != y.len() {
                return Ok(false);
            }
            for (k, v) in x {
                match y.iter().find(|(l, _)| l == k) {
                    Some((_, w)) if equivalent(v, w, tz)? => {}
                    _ => return Ok(false),
                }
            }
            true
        }
        (Value::Interval(..), Value::Interval(..)) => {
            let (Value::Interval(al, alc, ah, ahc), Value::Interval(bl, blc, bh, bhc)) = (a, b)
            else {
                unreachable!()
            };
            let (s1, e1) = bounds(al, *alc, ah, *ahc)?;
            let (s2, e2) = bounds(bl, *blc, bh, *bhc)?;
            equivalent(&s1, &s2, tz)? && equivalent(&e1, &e2, tz)?
        }
        (Value::Code(x), Value::Code(y)) => x.code == y.code && x.system == y.system,
        (Value::Concept(x, _), Value::Concept(y, _)) => x
            .iter()
            .any(|c| y.iter().any(|d| c.code == d.code && c.system == d.system)),
        (Value::Code(x), Value::Concept(y, _)) | (Value::Concept(y, _), Value::Code(x)) => {
            y.iter().any(|d| x.code == d.code && x.system == d.system)
        }
        (Value::Dec(_), _) | (_, Value::Dec(_)) if dec_of(a).is_some() && dec_of(b).is_some() => {
            let (x, y) = (dec_of(a).unwrap_or_default(), dec_of(b).unwrap_or_default());
            // Rounded to the precision of the less precise operand, trailing zeros not
            // counting (CQL `Equivalent`: `1.001 ~ 1.000` is true).
            let s = x.normalize().scale().min(y.normalize().scale());
            x.round_dp(s) == y.round_dp(s)
        }
        (Value::Quantity(x, u), Value::Quantity(y, v)) => {
            let days = |u: &str| -> Option<Decimal> {
                Some(Decimal::from(match norm_unit(u) {
                    "year" => 365,
                    "month" => 30,
                    "week" => 7,
                    "day" => 1,
                    _ => return None,
                }))
            };
            let same_cal = |u: &str, v: &str| {
                (norm_unit(u) == "year" && v == "a") || (norm_unit(u) == "month" && v == "mo")
            };
            if norm_unit(u) == norm_unit(v) || same_cal(u, v) || same_cal(v, u) {
                x == y
            } else if let (Some(f), Some(g)) = (days(u), days(v)) {
                x.checked_mul(f)
                    .is_some_and(|a| Some(a) == y.checked_mul(g))
            } else {
                compare(a, b, tz).ok().flatten() == Some(Ordering::Equal)
            }
        }
        _ => equal(a, b, tz).ok().flatten() == Some(true),
    })
}

// ---- interval helpers ----

/// Closed start and end of an interval; a closed null bound is the extreme of the point type.
fn bounds(l: &Value, lc: bool, h: &Value, hc: bool) -> R<(Value, Value)> {
    let proto = if l.is_null() { h } else { l };
    let s = if l.is_null() {
        if lc {
            min_of(proto).unwrap_or(Value::Null)
        } else {
            Value::Null
        }
    } else if lc {
        l.clone()
    } else {
        successor(l)?
    };
    let e = if h.is_null() {
        if hc {
            max_of(proto).unwrap_or(Value::Null)
        } else {
            Value::Null
        }
    } else if hc {
        h.clone()
    } else {
        predecessor(h)?
    };
    Ok((s, e))
}

/// An interval whose null closed bounds take the point type of `other` (an interval).
fn typed_nulls(x: Value, other: &Value) -> Value {
    match (&x, other) {
        (Value::Interval(l, lc, h, hc), Value::Interval(ol, _, oh, _))
            if l.is_null() || h.is_null() =>
        {
            let proto = if ol.is_null() { oh } else { ol };
            let l2 = if l.is_null() && *lc {
                min_of(proto).unwrap_or(Value::Null)
            } else {
                (**l).clone()
            };
            let h2 = if h.is_null() && *hc {
                max_of(proto).unwrap_or(Value::Null)
            } else {
                (**h).clone()
            };
            Value::Interval(Box::new(l2), *lc, Box::new(h2), *hc)
        }
        _ => x,
    }
}

fn min_of(v: &Value) -> Option<Value> {
    min_max(v.type_name(), true, v)
}

fn max_of(v: &Value) -> Option<Value> {
    min_max(v.type_name(), false, v)
}

fn min_max(t: &str, min: bool, proto: &Value) -> Option<Value> {
    Some(match (t, min) {
        ("Integer", true) => Value::Int(i32::MIN),
        ("Integer", false) => Value::Int(i32::MAX),
        ("Long", true) => Value::Long(i64::MIN),
        ("Long", false) => Value::Long(i64::MAX),
        ("Decimal", true) => Value::Dec(Decimal::from_str("-99999999999999999999.99999999").ok()?),
        ("Decimal", false) => Value::Dec(Decimal::from_str("99999999999999999999.99999999").ok()?),
        ("Date", true) => Value::Date(Tm::new([1, 1, 1, 0, 0, 0, 0], 3, None)),
        ("Date", false) => Value::Date(Tm::new([9999, 12, 31, 0, 0, 0, 0], 3, None)),
        ("DateTime", true) => Value::DateTime(Tm::new([1, 1, 1, 0, 0, 0, 0], 7, Some(0))),
        ("DateTime", false) => {
            Value::DateTime(Tm::new([9999, 12, 31, 23, 59, 59, 999], 7, Some(0)))
        }
        ("Time", true) => Value::Time(Tm::new([1, 1, 1, 0, 0, 0, 0], 7, None)),
        ("Time", false) => Value::Time(Tm::new([1, 1, 1, 23, 59, 59, 999], 7, None)),
        ("Quantity", true) => match proto {
            Value::Quantity(_, u) => Value::Quantity(
                Decimal::from_str("-99999999999999999999.99999999").ok()?,
                u.clone(),
            ),
            _ => return None,
        },
        ("Quantity", false) => match proto {
            Value::Quantity(_, u) => Value::Quantity(
                Decimal::from_str("99999999999999999999.99999999").ok()?,
                u.clone(),
            ),
            _ => return None,
        },
        _ => return None,
    })
}

fn step(v: &Value, up: bool) -> R<Value> {
    let d: i64 = if up { 1 } else { -1 };
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int(i) => match i.checked_add(d as i32) {
            Some(x) => Value::Int(x),
            None => return err("Integer overflow in successor/predecessor"),
        },
        Value::Long(i) => match i.checked_add(d) {
            Some(x) => Value::Long(x),
            None => return err("Long overflow in successor/predecessor"),
        },
        Value::Dec(x) => {
            let r = *x + Decimal::new(d, 8);
            if r.abs() > Decimal::from_str("99999999999999999999.99999999").unwrap_or(Decimal::MAX)
            {
                return err("Decimal overflow");
            }
            Value::Dec(r)
        }
        Value::Quantity(x, u) => Value::Quantity(*x + Decimal::new(d, 8), u.clone()),
        _ => match kind_of(v) {
            Some((k, t)) => match t.add(d, t.prec - 1, false) {
                Some(r) if k != Kind::Time || r.v[0..3] == t.v[0..3] => mk(k, r),
                _ => return err("date/time out of range in successor/predecessor"),
            },
            None => return err(format!("no successor for {}", v.type_name())),
        },
    })
}

fn successor(v: &Value) -> R<Value> {
    step(v, true)
}

fn predecessor(v: &Value) -> R<Value> {
    step(v, false)
}

fn lt(a: &Value, b: &Value, p: Option<usize>, tz: i32) -> R<Option<bool>> {
    Ok(compare_p(a, b, p, tz)?.map(|o| o == Ordering::Less))
}

fn le(a: &Value, b: &Value, p: Option<usize>, tz: i32) -> R<Option<bool>> {
    Ok(compare_p(a, b, p, tz)?.map(|o| o != Ordering::Greater))
}

fn eqp(a: &Value, b: &Value, p: Option<usize>, tz: i32) -> R<Option<bool>> {
    if p.is_none() {
        return equal(a, b, tz);
    }
    Ok(compare_p(a, b, p, tz)?.map(|o| o == Ordering::Equal))
}

fn iv(v: &Value) -> Option<(Value, Value)> {
    match v {
        Value::Interval(l, lc, h, hc) => bounds(l, *lc, h, *hc).ok(),
        _ => None,
    }
}

fn interval(s: Value, e: Value) -> Value {
    let (lc, hc) = (!s.is_null(), !e.is_null());
    Value::Interval(Box::new(s), lc, Box::new(e), hc)
}

/// The unit intervals of `expand`: from `s` by `per` while a whole step fits before `e`.
fn expand_one(s: &Value, e: &Value, per: &Value, tz: i32) -> R<Vec<(Value, Value)>> {
    let mut out = Vec::new();
    if let (Some(sd), Some(ed)) = (dec_of(s), dec_of(e)) {
        let (step, scale) = match per {
            Value::Null => (Decimal::ONE, 0),
            Value::Quantity(d, _) => (*d, d.scale()),
            v => (
                dec_of(v).unwrap_or(Decimal::ONE),
                dec_of(v).map(|d| d.scale()).unwrap_or(0),
            ),
        };
        if step <= Decimal::ZERO {
            return Ok(out);
        }
        let ulp = Decimal::new(1, scale);
        let ed = if matches!(e, Value::Int(_) | Value::Long(_)) && scale > 0 {
            ed + Decimal::ONE - ulp
        } else {
            ed
        };
        let ints = scale == 0 && !matches!(per, Value::Quantity(..));
        let mut x = sd.trunc_with_scale(scale);
        let mut n = 0;
        while x + step - ulp <= ed {
            n += 1;
            if n > 100_000 {
                return err("expand produced too many points");
            }
            let hi = x + step - ulp;
            let conv = |d: Decimal| {
                if ints {
                    Value::Int(d.to_i32().unwrap_or(0))
                } else {
                    let mut d = d;
                    d.rescale(scale.max(1));
                    Value::Dec(d)
                }
            };
            out.push((conv(x), conv(hi)));
            x += step;
        }
        return Ok(out);
    }
    if let (Some((k, ts)), Some((_, te))) = (kind_of(s), kind_of(e)) {
        let (amount, u) = match per {
            Value::Quantity(d, u) => (
                d.to_i64().unwrap_or(1),
                unit_index(norm_unit(u)).unwrap_or(ts.prec - 1),
            ),
            _ => (1, ts.prec - 1),
        };
        let amount = if matches!(per, Value::Quantity(_, u) if norm_unit(u) == "week") {
            amount * 7
        } else {
            amount
        };
        let p = u + 1;
        if ts.prec < p || te.prec < p || amount <= 0 {
            return Ok(out);
        }
        let mut x = Tm::new(ts.v, p, ts.offset);
        let end = Tm::new(te.v, p, te.offset);
        let mut n = 0;
        loop {
            n += 1;
            if n > 100_000 {
                return err("expand produced too many points");
            }
            let Some(next) = x.add(amount, u, k == Kind::Time) else {
                break;
            };
            let Some(hi) = next.add(-1, u, k == Kind::Time) else {
                break;
            };
            if compare(&mk(k, hi), &mk(k, end), tz)? == Some(Ordering::Greater) {
                break;
            }
            out.push((mk(k, x), mk(k, hi)));
            if k == Kind::Time && next.millis() <= x.millis() {
                break;
            }
            x = next;
        }
    }
    Ok(out)
}

fn prec_idx(p: &Option<String>) -> Option<usize> {
    p.as_deref().and_then(unit_index)
}

fn min_v(a: &Value, b: &Value, tz: i32) -> R<Value> {
    Ok(match compare(a, b, tz)? {
        Some(Ordering::Greater) => b.clone(),
        Some(_) => a.clone(),
        None => Value::Null,
    })
}

fn max_v(a: &Value, b: &Value, tz: i32) -> R<Value> {
    Ok(match compare(a, b, tz)? {
        Some(Ordering::Less) => b.clone(),
        Some(_) => a.clone(),
        None => Value::Null,
    })
}

// ---- arithmetic ----

fn int_result(v: i64, long: bool) -> Value {
    if long {
        Value::Long(v)
    } else {
        i32::try_from(v).map(Value::Int).unwrap_or(Value::Null)
    }
}

fn dec_result(d: Option<Decimal>) -> Value {
    match d {
        Some(d)
            if d.abs()
                <= Decimal::from_str("99999999999999999999.99999999").unwrap_or(Decimal::MAX) =>
        {
            Value::Dec(dround(d))
        }
        _ => Value::Null,
    }
}

fn arith(op: &str, a: &Value, b: &Value) -> R<Value> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let long = matches!(a, Value::Long(_)) || matches!(b, Value::Long(_));
    if let (Some(x), Some(y)) = (int_of(a), int_of(b))
        && op != "Divide"
    {
        let r = match op {
            "Add" => x.checked_add(y),
            "Subtract" => x.checked_sub(y),
            "Multiply" => x.checked_mul(y),
            "TruncatedDivide" => {
                if y == 0 {
                    return Ok(Value::Null);
                }
                x.checked_div(y)
            }
            "Modulo" => {
                if y == 0 {
                    return Ok(Value::Null);
                }
                x.checked_rem(y)
            }
            "Power" => {
                if y < 0 {
                    return Ok(dec_result(
                        Decimal::from(x)
                            .checked_powi(y)
                            .or_else(|| Decimal::from(x).checked_powd(Decimal::from(y))),
                    ));
                }
                u32::try_from(y).ok().and_then(|y| x.checked_pow(y))
            }
            _ => None,
        };
        return Ok(r.map(|r| int_result(r, long)).unwrap_or(Value::Null));
    }
    if let (Some(x), Some(y)) = (dec_of(a), dec_of(b)) {
        let r = match op {
            "Add" => x.checked_add(y),
            "Subtract" => x.checked_sub(y),
            "Multiply" => x.checked_mul(y),
            "Divide" => {
                if y.is_zero() {
                    return Ok(Value::Null);
                }
                x.checked_div(y)
            }
            "TruncatedDivide" => {
                if y.is_zero() {
                    return Ok(Value::Null);
                }
                x.checked_div(y).map(|d| d.trunc())
            }
            "Modulo" => {
                if y.is_zero() {
                    return Ok(Value::Null);
                }
                x.checked_rem(y)
            }
            "Power" => {
                if y.fract().is_zero() {
                    y.to_i64().and_then(|e| x.checked_powi(e))
                } else {
                    x.checked_powd(y)
                }
            }
            _ => None,
        };
        return Ok(dec_result(r));
    }
    // Quantities.
    let q = |v: &Value| -> Option<(Decimal, String)> {
        match v {
            Value::Quantity(d, u) => Some((*d, u.clone())),
            _ => dec_of(v).map(|d| (d, "1".to_string())),
        }
    };
    if matches!(a, Value::Quantity(..)) || matches!(b, Value::Quantity(..)) {
        if kind_of(a).is_none() && kind_of(b).is_none() {
            let (Some((x, u)), Some((y, v))) = (q(a), q(b)) else {
                return err("bad quantity arithmetic");
            };
            return Ok(match op {
                "Add" | "Subtract" => {
                    let y = if norm_unit(&u) == norm_unit(&v) {
                        Some(y)
                    } else {
                        ucum::convert(y, ucum::ucum_code(&v), ucum::ucum_code(&u))
                    };
                    match y {
                        None => Value::Null,
                        Some(y) => {
                            let r = if op == "Add" {
                                x.checked_add(y)
                            } else {
                                x.checked_sub(y)
                            };
                            r.map(|r| Value::Quantity(dround(r), u))
                                .unwrap_or(Value::Null)
                        }
                    }
                }
                "Multiply" => {
                    let unit = mul_unit(&u, &v, false);
                    x.checked_mul(y)
                        .map(|r| Value::Quantity(dround(r), unit))
                        .unwrap_or(Value::Null)
                }
                "Divide" => {
                    if y.is_zero() {
                        Value::Null
                    } else if norm_unit(&u) == norm_unit(&v) {
                        x.checked_div(y)
                            .map(|r| Value::Quantity(dround(r), "1".into()))
                            .unwrap_or(Value::Null)
                    } else {
                        x.checked_div(y)
                            .map(|r| Value::Quantity(dround(r), mul_unit(&u, &v, true)))
                            .unwrap_or(Value::Null)
                    }
                }
                "TruncatedDivide" | "Modulo" => {
                    if y.is_zero() || norm_unit(&u) != norm_unit(&v) {
                        Value::Null
                    } else if op == "Modulo" {
                        Value::Quantity(x % y, u)
                    } else {
                        x.checked_div(y)
                            .map(|r| Value::Quantity(r.trunc(), u))
                            .unwrap_or(Value::Null)
                    }
                }
                _ => Value::Null,
            });
        }
        // Date/time arithmetic.
        if let (Some((k, t)), Value::Quantity(d, u)) = (kind_of(a), b) {
            let Some(ui) = unit_index(norm_unit(u)).or(match u.as_str() {
                "a" => Some(0),
                "mo" => Some(1),
                "wk" => Some(2),
                "d" => Some(2),
                "h" => Some(3),
                "min" => Some(4),
                "s" => Some(5),
                "ms" => Some(6),
                _ => None,
            }) else {
                return err(format!("unit '{u}' is not a time unit"));
            };
            let mut n = d.trunc().to_i64().unwrap_or(0);
            if norm_unit(u) == "week" || u == "wk" {
                n *= 7;
            }
            if op == "Subtract" {
                n = -n;
            } else if op != "Add" {
                return err("bad date/time arithmetic");
            }
            if k == Kind::Time && ui < 3 {
                return err("cannot add date units to a Time");
            }
            return match t.add(n, ui, k == Kind::Time) {
                Some(r) => Ok(mk(k, r)),
                None => err("date/time arithmetic out of range"),
            };
        }
    }
    err(format!(
        "cannot apply {op} to {} and {}",
        a.type_name(),
        b.type_name()
    ))
}

fn mul_unit(u: &str, v: &str, div: bool) -> String {
    match (u, v, div) {
        ("1", v, false) => v.into(),
        (u, "1", _) => u.into(),
        ("1", v, true) => format!("1/{v}"),
        (u, v, false) if u == v => format!("{u}2"),
        (u, v, false) => format!("{u}.{v}"),
        (u, v, true) => format!("{u}/{v}"),
    }
}

// ---- conversions ----

fn to_string(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Str(s) => Value::Str(s.clone()),
        Value::Bool(b) => Value::Str(b.to_string()),
        Value::Int(i) => Value::Str(i.to_string()),
        Value::Long(i) => Value::Str(i.to_string()),
        Value::Dec(d) => Value::Str(d.to_string()),
        Value::Quantity(d, u) => Value::Str(format!("{d} '{u}'")),
        Value::Date(t) => Value::Str(t.format(Kind::Date)),
        Value::DateTime(t) if t.prec <= 3 => Value::Str(t.format(Kind::Date)),
        Value::DateTime(t) => Value::Str(t.format(Kind::DateTime)),
        Value::Time(t) => Value::Str(t.format(Kind::Time)[1..].to_string()),
        Value::Ratio(a, b) => match (to_string(a), to_string(b)) {
            (Value::Str(x), Value::Str(y)) => Value::Str(format!("{x}:{y}")),
            _ => Value::Null,
        },
        o => Value::Str(o.to_string()),
    }
}

fn parse_quantity(s: &str) -> Option<Value> {
    let s = s.trim();
    let (num, unit) = match s.find([' ', '\'']) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    };
    let d = Decimal::from_str(num).ok()?;
    let unit = unit.trim_matches('\'');
    Some(Value::Quantity(
        d,
        if unit.is_empty() {
            "1".into()
        } else {
            unit.into()
        },
    ))
}

fn convert_to(v: &Value, t: &str) -> R<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (t, v) {
        ("String", _) => to_string(v),
        ("Integer", Value::Int(_))
        | ("Long", Value::Long(_))
        | ("Decimal", Value::Dec(_))
        | ("Boolean", Value::Bool(_)) => v.clone(),
        ("Integer", Value::Str(s)) => s
            .trim()
            .parse::<i32>()
            .map(Value::Int)
            .unwrap_or(Value::Null),
        ("Integer", Value::Long(l)) => i32::try_from(*l).map(Value::Int).unwrap_or(Value::Null),
        ("Integer", Value::Bool(b)) => Value::Int(i32::from(*b)),
        ("Long", Value::Int(i)) => Value::Long(i64::from(*i)),
        ("Long", Value::Str(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::Long)
            .unwrap_or(Value::Null),
        ("Long", Value::Bool(b)) => Value::Long(i64::from(*b)),
        ("Decimal", Value::Int(_) | Value::Long(_)) => Value::Dec(dec_of(v).unwrap_or_default()),
        ("Decimal", Value::Str(s)) => {
            let s = s.trim();
            if s.is_empty()
                || s.ends_with('.')
                || s.starts_with('.')
                || s.contains('e')
                || s.contains('E')
            {
                Value::Null
            } else {
                Decimal::from_str(s)
                    .map(|d| dec_result(Some(d)))
                    .unwrap_or(Value::Null)
            }
        }
        ("Decimal", Value::Bool(b)) => Value::Dec(if *b { Decimal::ONE } else { Decimal::ZERO }),
        ("Boolean", Value::Str(s)) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Value::Bool(true),
            "false" | "f" | "no" | "n" | "0" => Value::Bool(false),
            _ => Value::Null,
        },
        ("Boolean", Value::Int(_) | Value::Long(_)) => match int_of(v) {
            Some(1) => Value::Bool(true),
            Some(0) => Value::Bool(false),
            _ => Value::Null,
        },
        ("Boolean", Value::Dec(d)) => {
            if *d == Decimal::ONE {
                Value::Bool(true)
            } else if d.is_zero() {
                Value::Bool(false)
            } else {
                Value::Null
            }
        }
        ("Quantity", Value::Quantity(..)) => v.clone(),
        ("Quantity", Value::Int(_) | Value::Long(_) | Value::Dec(_)) => {
            Value::Quantity(dec_of(v).unwrap_or_default(), "1".into())
        }
        ("Quantity", Value::Str(s)) => parse_quantity(s).unwrap_or(Value::Null),
        ("Ratio", Value::Ratio(..)) => v.clone(),
        ("Ratio", Value::Str(s)) => match s.split_once(':') {
            Some((x, y)) => match (parse_quantity(x), parse_quantity(y)) {
                (Some(x), Some(y)) => Value::Ratio(Box::new(x), Box::new(y)),
                _ => Value::Null,
            },
            None => Value::Null,
        },
        ("Date", Value::Date(_)) | ("DateTime", Value::DateTime(_)) | ("Time", Value::Time(_)) => {
            v.clone()
        }
        ("Date", Value::DateTime(t)) => {
            let mut t = *t;
            let t2 = Tm::new(t.v, t.prec.min(3), None);
            t = t2;
            Value::Date(t)
        }
        ("DateTime", Value::Date(t)) => Value::DateTime(Tm::new(t.v, t.prec, None)),
        ("Date", Value::Str(s)) => match Tm::parse_datetime(s) {
            Some((t, _)) => Value::Date(Tm::new(t.v, t.prec.min(3), None)),
            None => Value::Null,
        },
        ("DateTime", Value::Str(s)) => match Tm::parse_datetime(s) {
            Some((t, _)) => Value::DateTime(t),
            None => Value::Null,
        },
        ("Time", Value::Str(s)) => Tm::parse_time({
            let s = s.strip_prefix('T').unwrap_or(s);
            let s = s.strip_suffix('Z').unwrap_or(s);
            let b = s.as_bytes();
            let n = b.len();
            if n > 6 && matches!(b[n - 6], b'+' | b'-') && b[n - 3] == b':' {
                &s[..n - 6]
            } else {
                s
            }
        })
        .map(Value::Time)
        .unwrap_or(Value::Null),
        ("Concept", Value::Code(c)) => Value::Concept(vec![c.clone()], None),
        ("Concept", Value::List(cs)) => Value::Concept(
            cs.iter()
                .filter_map(|c| match c {
                    Value::Code(c) => Some(c.clone()),
                    _ => None,
                })
                .collect(),
            None,
        ),
        _ => return err(format!("cannot convert {} to {t}", v.type_name())),
    })
}

fn is_type(v: &Value, t: &TypeSpec) -> bool {
    match t {
        TypeSpec::Named(n) => match n.as_str() {
            "Any" => !v.is_null(),
            "Vocabulary" => matches!(v, Value::Vocabulary(..)),
            n => match v {
                Value::Fhir(f) => crate::fhir::is_a(f.ty, n),
                v => v.type_name() == n,
            },
        },
        TypeSpec::List(inner) => match v {
            Value::List(xs) => xs.iter().all(|x| x.is_null() || is_type(x, inner)),
            _ => false,
        },
        TypeSpec::Interval(inner) => match v {
            Value::Interval(l, _, h, _) => {
                (l.is_null() || is_type(l, inner)) && (h.is_null() || is_type(h, inner))
            }
            _ => false,
        },
        TypeSpec::Tuple(_) => matches!(v, Value::Tuple(_)),
        TypeSpec::Choice(ts) => ts.iter().any(|t| is_type(v, t)),
    }
}

fn list_of(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::List(xs) => Some(xs),
        Value::Null => None,
        o => Some(vec![o]),
    }
}

impl<'a> Engine<'a> {
    /// An engine over `lib`'s definitions.
    pub fn new(lib: &'a Library) -> Self {
        Engine {
            lib,
            data: None,
            contexts: None,
            includes: Vec::new(),
        }
    }

    /// The same engine with `lib` resolving references through the local name `alias`
    /// (`Alias."Define"`, `Alias.Function(x)`); the included library sees no includes itself.
    pub fn with_include(mut self, alias: &str, lib: &'a Library) -> Self {
        self.includes
            .push((alias.to_string().into(), Included::Flat(lib)));
        self
    }

    /// An engine over a resolved library: its includes (and theirs) resolve references
    /// through their aliases.
    pub fn resolved(r: &'a Resolved) -> Self {
        Engine {
            lib: &r.library,
            data: None,
            contexts: None,
            includes: r
                .includes
                .iter()
                .map(|(a, x)| (a.as_str().into(), Included::Tree(x)))
                .collect(),
        }
    }

    fn included(&self, e: &Expr, ctx: &Context) -> Option<Engine<'a>> {
        let Expr::Ident(alias) = e else {
            return None;
        };
        if ctx.lookup(alias).is_some() {
            return None;
        }
        self.includes
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(_, inc)| match inc {
                Included::Flat(lib) => Engine {
                    lib,
                    data: self.data,
                    contexts: self.contexts,
                    includes: Vec::new(),
                },
                Included::Tree(r) => Engine {
                    data: self.data,
                    contexts: self.contexts,
                    ..Engine::resolved(r)
                },
            })
    }

    /// The context patient (`Patient` in `context Patient`): the one resource of the
    /// provider's `[Patient]`, null when there is none.
    fn context_patient(&self, ctx: &mut Context) -> R<Value> {
        let key = format!("{:p}/@Patient", self.lib);
        if let Some(v) = ctx.defines.get(&key) {
            return Ok(v.clone());
        }
        let Some(data) = self.data else {
            return err("the Patient context needs a data provider");
        };
        let mut rows = data.retrieve("Patient", None, None)?;
        if rows.len() > 1 {
            return err("the Patient context has more than one Patient");
        }
        let v = rows.pop().unwrap_or(Value::Null);
        ctx.defines.insert(key, v.clone());
        Ok(v)
    }

    /// `AgeInYears()`, `AgeInYearsAt(d)` and the months/weeks/days/hours/minutes/seconds
    /// forms, and `CalculateAgeIn*[At]`: whole calendar units between a birth date (the
    /// context patient's `birthDate`) and `d` (`Today()`/`Now()` when absent); `None` for
    /// other names.
    fn age(&self, name: &str, args: &[Expr], ctx: &mut Context) -> R<Option<Value>> {
        let (calc, rest) = match name.strip_prefix("Calculate") {
            Some(r) => (true, r),
            None => (false, name),
        };
        let Some(rest) = rest.strip_prefix("AgeIn") else {
            return Ok(None);
        };
        let (unit, at) = match rest.strip_suffix("At") {
            Some(u) => (u, true),
            None => (rest, false),
        };
        let unit = match unit {
            "Years" => "year",
            "Months" => "month",
            "Weeks" => "week",
            "Days" => "day",
            "Hours" => "hour",
            "Minutes" => "minute",
            "Seconds" => "second",
            _ => return Ok(None),
        };
        if args.len() != usize::from(calc) + usize::from(at) {
            return Ok(None);
        }
        let birth = if calc {
            crate::fhir::to_system(self.eval(&args[0], ctx)?)?
        } else {
            let p = self.context_patient(ctx)?;
            member(&p, "birthDate")?
        };
        let as_of = if at {
            crate::fhir::to_system(self.eval(&args[args.len() - 1], ctx)?)?
        } else if matches!(unit, "year" | "month" | "week" | "day") {
            call_builtin("Today", vec![], &None, ctx)?
        } else {
            call_builtin("Now", vec![], &None, ctx)?
        };
        if birth.is_null() || as_of.is_null() {
            return Ok(Some(Value::Null));
        }
        // A Date birth date against a DateTime: the birth date as a DateTime.
        let birth = match (&birth, &as_of) {
            (Value::Date(_), Value::DateTime(_)) => convert_to(&birth, "DateTime")?,
            _ => birth,
        };
        Ok(Some(duration_between(&birth, &as_of, unit, false, ctx.tz)?))
    }

    /// The same engine answering retrieves from `data`.
    pub fn with_data(mut self, data: &'a dyn DataProvider) -> Self {
        self.data = Some(data);
        self
    }

    /// The same engine evaluating each define in its own context: a define that follows
    /// `context Unfiltered` retrieves from `unfiltered`, one that follows another `context`
    /// statement (`Patient`) from `patient`, the provider of expressions outside defines and of
    /// defines before any `context` statement. A Patient define referenced from an Unfiltered
    /// one is the context patient's value (not the list over every patient).
    pub fn with_contexts(
        mut self,
        patient: &'a dyn DataProvider,
        unfiltered: &'a dyn DataProvider,
    ) -> Self {
        self.data = Some(patient);
        self.contexts = Some((patient, unfiltered));
        self
    }

    /// The provider define `name` is evaluated with, when it is not the current one.
    fn define_provider(&self, name: &str) -> Option<&'a dyn DataProvider> {
        let (patient, unfiltered) = self.contexts?;
        let (_, c) = self.lib.define_contexts.iter().find(|(n, _)| n == name)?;
        let p = if c == "Unfiltered" {
            unfiltered
        } else {
            patient
        };
        match self.data {
            Some(d) if std::ptr::addr_eq(d, p) => None,
            _ => Some(p),
        }
    }

    /// Whether define `name` is evaluated in the Unfiltered context of [`Engine::with_contexts`]
    /// (and so has one value for every context of an evaluation).
    fn is_unfiltered(&self, name: &str) -> bool {
        self.contexts.is_some()
            && self
                .lib
                .define_contexts
                .iter()
                .any(|(n, c)| n == name && c == "Unfiltered")
    }

    /// Unfiltered define `name` (body `d`, cache key `key`) through [`Context::shared`]: the
    /// value another context evaluated, or evaluated here for all of them.
    #[inline(never)]
    fn shared_define(&self, name: &str, d: &Expr, key: String, ctx: &mut Context) -> R<Value> {
        let Some(shared) = ctx.shared.clone() else {
            return err("no shared defines");
        };
        let Some(cell) = shared.cell(&key, || self.subject_free(d, &mut Vec::new())) else {
            // Depends on the subject: evaluated in each context.
            let scopes = std::mem::take(&mut ctx.scopes);
            let r = match self.define_provider(name) {
                Some(p) => self.eval_with(p, d, ctx),
                None => self.eval(d, ctx),
            };
            ctx.scopes = scopes;
            let v = r?;
            ctx.defines.insert(key, v.clone());
            return Ok(v);
        };
        let r = cell
            .get_or_init(|| {
                let scopes = std::mem::take(&mut ctx.scopes);
                let index = ctx.index.take();
                let r = match self.define_provider(name) {
                    Some(p) => self.eval_with(p, d, ctx),
                    None => self.eval(d, ctx),
                };
                ctx.scopes = scopes;
                ctx.index = index;
                r
            })
            .clone();
        let v = r?;
        ctx.defines.insert(key, v.clone());
        Ok(v)
    }

    /// Whether `e` has one value for every subject: it reaches (through this library's
    /// defines and functions) no define of another context than Unfiltered, no `Patient`, no
    /// `AgeIn...` of the context patient, and nothing of an included library but
    /// FHIRHelpers' conversions. Conservative: `false` when unsure.
    fn subject_free(&self, e: &Expr, seen: &mut Vec<*const Expr>) -> bool {
        if seen.iter().any(|s| std::ptr::eq(*s, e)) {
            return true;
        }
        seen.push(e);
        let lib = self.lib;
        let include = |x: &Expr| match x {
            Expr::Ident(a) => lib.includes.iter().find(|(_, _, al)| al == a),
            _ => None,
        };
        let own = match e {
            Expr::Ident(n) => {
                if let Some((_, d)) = lib.defines.iter().find(|(k, _)| k == n) {
                    let unfiltered = lib
                        .define_contexts
                        .iter()
                        .any(|(k, c)| k == n && c == "Unfiltered");
                    return unfiltered && self.subject_free(d, seen);
                }
                n != "Patient"
            }
            Expr::Member(t, _) => match include(t) {
                Some((name, _, _)) => return name == "FHIRHelpers",
                None => true,
            },
            Expr::Call(name, args, _) => {
                if let Some((lib_name, _, _)) = args.first().and_then(include) {
                    if lib_name != "FHIRHelpers" {
                        return false;
                    }
                } else if name.starts_with("AgeIn") {
                    return false;
                }
                lib.functions
                    .iter()
                    .filter(|f| &f.name == name)
                    .filter_map(|f| f.body.as_ref())
                    .all(|b| self.subject_free(b, seen))
            }
            _ => true,
        };
        let mut all = own;
        crate::check::children(e, &mut |c| {
            all = all && self.subject_free(c, seen);
        });
        all
    }

    /// `e` evaluated by this engine with `data` as its provider.
    #[inline(never)]
    fn eval_with(&self, data: &'a dyn DataProvider, e: &Expr, ctx: &mut Context) -> R<Value> {
        let engine = Engine {
            lib: self.lib,
            data: Some(data),
            contexts: self.contexts,
            includes: self.includes.clone(),
        };
        engine.eval(e, ctx)
    }

    /// Evaluates the define named `name`.
    pub fn eval_define(&self, name: &str, ctx: &mut Context) -> R<Value> {
        if !self.lib.defines.iter().any(|(n, _)| n == name) {
            return err(format!("no define named '{name}'"));
        }
        self.eval(&Expr::Ident(name.to_string()), ctx)
    }

    /// The data provider and the evaluated codes of a retrieve of `t` (a value set
    /// reference retrieves by its url).
    fn retrieve_args(
        &self,
        t: &str,
        codes: Option<&Expr>,
        ctx: &mut Context,
    ) -> R<(&'a dyn DataProvider, Option<Value>)> {
        crate::fhir::check_model(self.lib)?;
        let Some(data) = self.data else {
            return err(format!("retrieve of {t} needs a data provider"));
        };
        let codes = match codes {
            Some(c) => match c {
                Expr::Ident(n) => match self.lib.valuesets.iter().find(|(k, _)| k == n) {
                    Some((_, url)) => Some(Value::Str(url.clone())),
                    None => Some(self.eval(c, ctx)?),
                },
                c => Some(self.eval(c, ctx)?),
            },
            None => None,
        };
        Ok((data, codes))
    }

    /// Evaluates an expression.
    pub fn eval(&self, e: &Expr, ctx: &mut Context) -> R<Value> {
        if ctx.budget == 0 {
            return Err(Error::Budget);
        }
        ctx.budget -= 1;
        if ctx.budget & 0xFFF == 0 {
            ctx.check_stop()?;
        }
        if ctx.depth >= ctx.max_depth {
            return Err(Error::Budget);
        }
        ctx.depth += 1;
        let r = self.eval_inner(e, ctx);
        ctx.depth -= 1;
        r
    }

    fn eval_inner(&self, e: &Expr, ctx: &mut Context) -> R<Value> {
        match e {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::Ident(n) => {
                if let Some(v) = ctx.lookup(n) {
                    return Ok(v.clone());
                }
                if let Some((_, d)) = self.lib.defines.iter().find(|(k, _)| k == n) {
                    let key = format!("{:p}/{n}", self.lib);
                    if let Some(v) = ctx.defines.get(&key) {
                        return Ok(v.clone());
                    }
                    if ctx.shared.is_some() && self.is_unfiltered(n) {
                        return self.shared_define(n, d, key, ctx);
                    }
                    // Defines see no aliases of the expression that refers to them.
                    let scopes = std::mem::take(&mut ctx.scopes);
                    let r = match self.define_provider(n) {
                        Some(p) => self.eval_with(p, d, ctx),
                        None => self.eval(d, ctx),
                    };
                    ctx.scopes = scopes;
                    let v = r?;
                    ctx.defines.insert(key, v.clone());
                    return Ok(v);
                }
                if let Some((_, _, d)) = self.lib.parameters.iter().find(|(k, _, _)| k == n) {
                    if let Some(v) = ctx.parameters.get(n) {
                        return Ok(v.clone());
                    }
                    return match d {
                        Some(d) => self.eval(d, ctx),
                        None => Ok(Value::Null),
                    };
                }
                if let Some((_, url)) = self.lib.valuesets.iter().find(|(k, _)| k == n) {
                    return Ok(Value::Vocabulary("ValueSet", url.clone(), None));
                }
                if let Some((_, url, v)) = self.lib.codesystems.iter().find(|(k, _, _)| k == n) {
                    return Ok(Value::Vocabulary("CodeSystem", url.clone(), v.clone()));
                }
                if let Some((_, c)) = self
                    .lib
                    .codes
                    .iter()
                    .chain(&self.lib.concepts)
                    .find(|(k, _)| k == n)
                {
                    return self.eval(c, ctx);
                }
                if n == "Patient" && self.lib.contexts.iter().any(|c| c == "Patient") {
                    return self.context_patient(ctx);
                }
                if n == INDEX
                    && let Some(i) = ctx.index
                {
                    return Ok(Value::Int(i));
                }
                err(format!("unknown identifier '{n}'"))
            }
            Expr::Member(t, n) => {
                if let Some(inc) = self.included(t, ctx) {
                    let scopes = std::mem::take(&mut ctx.scopes);
                    let r = inc.eval(&Expr::Ident(n.clone()), ctx);
                    ctx.scopes = scopes;
                    return r;
                }
                let v = self.eval(t, ctx)?;
                member(&v, n)
            }
            Expr::Index(a, i) => {
                let a = self.eval(a, ctx)?;
                let i = self.eval(i, ctx)?;
                index(&a, &i)
            }
            Expr::If(c, a, b2) => {
                if tb(&self.eval(c, ctx)?)? == Some(true) {
                    self.eval(a, ctx)
                } else {
                    self.eval(b2, ctx)
                }
            }
            Expr::Case(op, items, el) => {
                let o = match op {
                    Some(o) => Some(self.eval(o, ctx)?),
                    None => None,
                };
                for (w, t) in items {
                    let wv = self.eval(w, ctx)?;
                    let hit = match &o {
                        Some(o) => equal(o, &wv, ctx.tz)? == Some(true),
                        None => tb(&wv)? == Some(true),
                    };
                    if hit {
                        return self.eval(t, ctx);
                    }
                }
                self.eval(el, ctx)
            }
            Expr::Interval(l, lc, h, hc) => {
                let l = self.eval(l, ctx)?;
                let h = self.eval(h, ctx)?;
                if !l.is_null() && !h.is_null() {
                    let (s, e) = bounds(&l, *lc, &h, *hc)?;
                    if lt(&e, &s, None, ctx.tz)? == Some(true) {
                        return err("invalid interval: low greater than high");
                    }
                }
                Ok(Value::Interval(Box::new(l), *lc, Box::new(h), *hc))
            }
            Expr::List(_, items) => {
                let vals: Vec<Value> = items.iter().map(|i| self.eval(i, ctx)).collect::<R<_>>()?;
                for v in &vals {
                    check_nesting(v, ctx)?;
                }
                Ok(Value::List(vals))
            }
            Expr::Tuple(els) => {
                let vals: Vec<(String, Value)> = els
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.eval(v, ctx)?)))
                    .collect::<R<_>>()?;
                for (_, v) in &vals {
                    check_nesting(v, ctx)?;
                }
                Ok(Value::Tuple(vals))
            }
            Expr::Instance(t, els) => {
                let mut vals = Vec::new();
                for (k, v) in els {
                    let v = self.eval(v, ctx)?;
                    check_nesting(&v, ctx)?;
                    vals.push((k.clone(), v));
                }
                instance(t, vals)
            }
            Expr::Code(c) => self.code(c, ctx),
            Expr::Concept(cs, d) => {
                let mut codes = Vec::new();
                for c in cs {
                    if let Value::Code(c) = self.eval(c, ctx)? {
                        codes.push(c);
                    }
                }
                Ok(Value::Concept(codes, d.clone()))
            }
            Expr::Is(x, t) => {
                let v = self.eval(x, ctx)?;
                Ok(Value::Bool(is_type(&v, t)))
            }
            Expr::As(x, t, strict) => {
                let v = self.eval(x, ctx)?;
                if v.is_null() || is_type(&v, t) {
                    Ok(v)
                } else if *strict {
                    err(format!("cannot cast {} as {t:?}", v.type_name()))
                } else {
                    // Implicit conversions to wider types.
                    match (t, &v) {
                        (TypeSpec::Named(n), Value::Int(_)) if n == "Decimal" || n == "Long" => {
                            convert_to(&v, n)
                        }
                        _ => Ok(Value::Null),
                    }
                }
            }
            Expr::Convert(x, t) => {
                let v = self.eval(x, ctx)?;
                convert_to(&v, &crate::parser::type_name(t))
            }
            Expr::ConvertUnit(x, u) => {
                let v = self.eval(x, ctx)?;
                match v {
                    Value::Null => Ok(Value::Null),
                    Value::Quantity(d, from) => {
                        Ok(ucum::convert(d, ucum::ucum_code(&from), ucum::ucum_code(u))
                            .map(|d| Value::Quantity(dround(d), u.clone()))
                            .unwrap_or(Value::Null))
                    }
                    o => err(format!("cannot convert {} to a unit", o.type_name())),
                }
            }
            Expr::Query(q) => self.query(q, ctx),
            Expr::Retrieve(t, path, codes) => {
                let (data, codes) = self.retrieve_args(t, codes.as_deref(), ctx)?;
                let rows = data.retrieve(t, path.as_deref(), codes.as_ref())?;
                charge(ctx, rows.len())?;
                Ok(Value::List(rows))
            }
            // `exists [T: codes]` asks the provider, which need not read the resources.
            Expr::Call(name, args, None)
                if name == "Exists" && matches!(args.as_slice(), [Expr::Retrieve(..)]) =>
            {
                let [Expr::Retrieve(t, path, codes)] = args.as_slice() else {
                    return err("exists of a retrieve");
                };
                let (data, codes) = self.retrieve_args(t, codes.as_deref(), ctx)?;
                Ok(Value::Bool(data.retrieve_exists(
                    t,
                    path.as_deref(),
                    codes.as_ref(),
                )?))
            }
            // `exists (query)` stops at the first row that passes: a measure's
            // `exists [Observation: c] O where ...` need not test every observation.
            Expr::Call(name, args, None)
                if name == "Exists"
                    && matches!(args.as_slice(), [Expr::Query(q)] if q.aggregate.is_none()) =>
            {
                let [Expr::Query(q)] = args.as_slice() else {
                    return err("exists of a query");
                };
                match self.query_exists(q, ctx)? {
                    Some(b) => Ok(Value::Bool(b)),
                    None => self.call(name, args, &None, ctx),
                }
            }
            Expr::Call(name, args, p) => self.call(name, args, p, ctx),
        }
    }

    /// `exists` of a query without an aggregate clause, answered lazily: true at the first
    /// row whose result is not null (sorting and `distinct` cannot change whether one
    /// exists). `None` when a source is not a list, where the query's single-value rules
    /// apply and [`Engine::query`] answers.
    fn query_exists(&self, q: &Query, ctx: &mut Context) -> R<Option<bool>> {
        let mut lists = Vec::with_capacity(q.sources.len());
        for (s, _) in &q.sources {
            match self.eval(s, ctx)? {
                Value::List(xs) => lists.push(xs),
                _ => return Ok(None),
            }
        }
        if lists.iter().any(Vec::is_empty) {
            return Ok(Some(false));
        }
        let base = ctx.scopes.len();
        let (mut agg, mut seen) = (None, Vec::new());
        // The rows of the sources' cartesian product, in order, one index per source.
        let mut at = vec![0usize; lists.len()];
        let mut row = Vec::with_capacity(lists.len());
        let outer_index = ctx.index;
        let mut n = 0usize;
        loop {
            charge(ctx, 1)?;
            row.clear();
            for ((l, i), (_, a)) in lists.iter().zip(&at).zip(&q.sources) {
                row.push(l[*i].clone());
                ctx.scopes.push((a.clone(), l[*i].clone()));
            }
            ctx.index = i32::try_from(n).ok();
            n += 1;
            let r = self.query_row(q, &row, ctx, &mut agg, &mut seen);
            ctx.scopes.truncate(base);
            ctx.index = outer_index;
            if r?.is_some_and(|v| !v.is_null()) {
                return Ok(Some(true));
            }
            // Next row: the last source moves fastest.
            let mut k = lists.len();
            loop {
                if k == 0 {
                    return Ok(Some(false));
                }
                k -= 1;
                at[k] += 1;
                if at[k] < lists[k].len() {
                    break;
                }
                at[k] = 0;
            }
        }
    }

    fn query(&self, q: &Query, ctx: &mut Context) -> R<Value> {
        let mut lists = Vec::new();
        let mut single = true;
        for (s, _) in &q.sources {
            let v = self.eval(s, ctx)?;
            match v {
                Value::List(xs) => {
                    single = false;
                    lists.push(xs);
                }
                Value::Null if q.sources.len() == 1 => return Ok(Value::Null),
                o => lists.push(vec![o]),
            }
        }
        if q.sources.len() > 1 {
            single = false;
        }
        // Cartesian product of the sources.
        let mut rows: Vec<Vec<Value>> = vec![vec![]];
        for l in &lists {
            let mut next = Vec::new();
            for r in &rows {
                for x in l {
                    let mut r = r.clone();
                    r.push(x.clone());
                    next.push(r);
                }
            }
            rows = next;
        }
        let base = ctx.scopes.len();
        let mut out = Vec::new();
        let mut agg = None;
        if let Some((_, n, start, _)) = &q.aggregate {
            let s = match start {
                Some(s) => self.eval(s, ctx)?,
                None => Value::Null,
            };
            agg = Some((n.clone(), s));
        }
        let mut seen_agg: Vec<Value> = Vec::new();
        charge(ctx, rows.len())?;
        let outer_index = ctx.index;
        for (i, row) in rows.into_iter().enumerate() {
            for ((_, a), v) in q.sources.iter().zip(&row) {
                ctx.scopes.push((a.clone(), v.clone()));
            }
            ctx.index = i32::try_from(i).ok();
            let r = self.query_row(q, &row, ctx, &mut agg, &mut seen_agg);
            ctx.scopes.truncate(base);
            ctx.index = outer_index;
            if let Some(v) = r? {
                out.push(v);
            }
        }
        if let Some((_, v)) = agg {
            return Ok(v);
        }
        if q.ret.as_ref().is_none_or(|(d, _)| *d) && q.ret.is_some()
            || q.ret.is_none() && q.sources.len() > 1
        {
            out = distinct(out, ctx.tz)?;
        }
        if let Some(items) = &q.sort {
            let mut keyed = Vec::new();
            for v in out {
                let mut keys = Vec::new();
                for it in items {
                    let k = match &it.key {
                        None => v.clone(),
                        Some(k) => {
                            if let Value::Tuple(es) = &v {
                                for (n, x) in es {
                                    ctx.scopes.push((n.clone(), x.clone()));
                                }
                            }
                            // `sort by effective`: the properties of a FHIR element.
                            if let Value::Fhir(f) = &v {
                                ctx.scopes.extend(crate::fhir::properties(f)?);
                            }
                            let r = self.eval(k, ctx);
                            ctx.scopes.truncate(base);
                            r?
                        }
                    };
                    keys.push(k);
                }
                keyed.push((keys, v));
            }
            let tz = ctx.tz;
            keyed.sort_by(|(a, _), (b2, _)| {
                for (i, it) in items.iter().enumerate() {
                    let o = match (&a[i], &b2[i]) {
                        (Value::Null, Value::Null) => Ordering::Equal,
                        (Value::Null, _) => Ordering::Less,
                        (_, Value::Null) => Ordering::Greater,
                        (x, y) => compare(x, y, tz).ok().flatten().unwrap_or_else(|| {
                            match (kind_of(x), kind_of(y)) {
                                (Some((_, p)), Some((_, q))) => p.prec.cmp(&q.prec),
                                _ => Ordering::Equal,
                            }
                        }),
                    };
                    let o = if it.desc { o.reverse() } else { o };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            });
            out = keyed.into_iter().map(|(_, v)| v).collect();
        }
        if single {
            return Ok(out.into_iter().next().unwrap_or(Value::Null));
        }
        Ok(Value::List(out))
    }

    fn query_row(
        &self,
        q: &Query,
        row: &[Value],
        ctx: &mut Context,
        agg: &mut Option<(String, Value)>,
        seen: &mut Vec<Value>,
    ) -> R<Option<Value>> {
        for (n, e) in &q.lets {
            let v = self.eval(e, ctx)?;
            ctx.scopes.push((n.clone(), v));
        }
        for rel in &q.rels {
            let src = list_of(self.eval(&rel.source, ctx)?).unwrap_or_default();
            let mut any = false;
            for x in src {
                ctx.scopes.push((rel.alias.clone(), x));
                let c = self.eval(&rel.cond, ctx);
                ctx.scopes.pop();
                if tb(&c?)? == Some(true) {
                    any = true;
                    break;
                }
            }
            if any != rel.with {
                return Ok(None);
            }
        }
        if let Some(w) = &q.where_
            && tb(&self.eval(w, ctx)?)? != Some(true)
        {
            return Ok(None);
        }
        if let Some((d, n, _, e)) = &q.aggregate {
            let cur = row.to_vec();
            if *d {
                let key = Value::List(cur);
                for s in seen.iter() {
                    if equivalent(s, &key, ctx.tz)? {
                        return Ok(None);
                    }
                }
                seen.push(key);
            }
            let acc = agg.as_ref().map(|(_, v)| v.clone()).unwrap_or(Value::Null);
            ctx.scopes.push((n.clone(), acc));
            let v = self.eval(e, ctx)?;
            *agg = Some((n.clone(), v));
            return Ok(None);
        }
        if let Some((_, e)) = &q.ret {
            return Ok(Some(self.eval(e, ctx)?));
        }
        if q.sources.len() == 1 {
            Ok(Some(row[0].clone()))
        } else {
            Ok(Some(Value::Tuple(
                q.sources
                    .iter()
                    .zip(row)
                    .map(|((_, a), v)| (a.clone(), v.clone()))
                    .collect(),
            )))
        }
    }

    fn call(&self, name: &str, args: &[Expr], p: &Option<String>, ctx: &mut Context) -> R<Value> {
        // `Alias.Function(x)`: a function of an included library.
        if let Some(first) = args.first()
            && let Some(inc) = self.included(first, ctx)
        {
            let vals: Vec<Expr> = args[1..]
                .iter()
                .map(|a| self.eval(a, ctx).map(Expr::Lit))
                .collect::<R<_>>()?;
            return inc.call(name, &vals, p, ctx);
        }
        // `FHIRHelpers.ToQuantity(x)` without FHIRHelpers handed over: the native conversions.
        if let (Some(Expr::Ident(alias)), 2) = (args.first(), args.len())
            && ctx.lookup(alias).is_none()
            && self
                .lib
                .includes
                .iter()
                .any(|(lib, _, a)| a == alias && lib == "FHIRHelpers")
        {
            let v = self.eval(&args[1], ctx)?;
            return match crate::fhir::helper(name, v) {
                Some(r) => r,
                None => err(format!("FHIRHelpers.{name} is not supported")),
            };
        }
        if let Some(r) = self.age(name, args, ctx)? {
            return Ok(r);
        }
        // Lazily evaluated forms.
        {
            if name.starts_with('$')
                && let Some(r) = self.internal(name, args, ctx)?
            {
                return Ok(r);
            }
            if name == "Coalesce" {
                for a in args {
                    let v = self.eval(a, ctx)?;
                    match v {
                        Value::Null => {}
                        Value::List(xs) if args.len() == 1 => {
                            return Ok(xs
                                .into_iter()
                                .find(|x| !x.is_null())
                                .unwrap_or(Value::Null));
                        }
                        v => return Ok(v),
                    }
                }
                return Ok(Value::Null);
            }
        }
        let vals: Vec<Value> = args.iter().map(|a| self.eval(a, ctx)).collect::<R<_>>()?;
        let candidates: Vec<&FunctionDef> = self
            .lib
            .functions
            .iter()
            .filter(|f| f.name == name && f.params.len() == vals.len())
            .collect();
        // Overloads: an exact match of the argument types first, then implicit conversions
        // (Integer to Long or Decimal, Long to Decimal), then any of the same arity.
        let exact = |f: &&&FunctionDef| {
            f.params
                .iter()
                .zip(&vals)
                .all(|((_, t), v)| v.is_null() || is_type(v, t))
        };
        let widening = |f: &&&FunctionDef| {
            f.params.iter().zip(&vals).all(|((_, t), v)| {
                v.is_null()
                    || is_type(v, t)
                    || matches!(
                        (t, v),
                        (TypeSpec::Named(n), Value::Int(_)) if n == "Decimal" || n == "Long"
                    )
                    || matches!((t, v), (TypeSpec::Named(n), Value::Long(_)) if n == "Decimal")
            })
        };
        let chosen = candidates
            .iter()
            .find(exact)
            .or_else(|| candidates.iter().find(widening))
            .or(candidates.first())
            .copied();
        if let Some(f) = chosen {
            let vals: Vec<Value> = f
                .params
                .iter()
                .zip(vals)
                .map(|((_, t), v)| match (t, &v) {
                    (TypeSpec::Named(n), Value::Int(_) | Value::Long(_))
                        if n == "Decimal" || (n == "Long" && matches!(v, Value::Int(_))) =>
                    {
                        convert_to(&v, n).unwrap_or(v)
                    }
                    _ => v,
                })
                .collect();
            let Some(body) = &f.body else {
                return err(format!("external function {name}"));
            };
            let base = ctx.scopes.len();
            for ((n, _), v) in f.params.iter().zip(vals) {
                ctx.scopes.push((n.clone(), v));
            }
            let r = self.eval(body, ctx);
            ctx.scopes.truncate(base);
            return r;
        }
        self.system_call(name, vals, p, ctx)
    }
}

/// The call name of the lazily evaluated `Repeat` (source, element, scope name): not a name
/// CQL text can call.
pub const REPEAT: &str = "$Repeat";

/// The call name of a retrieve in a related context (context, retrieve).
pub const RETRIEVE_IN: &str = "$RetrieveIn";

/// The element of the innermost iteration (`$this`, ELM `Current` without a scope): the alias
/// of the queries FHIRPath-style invocations (`X.where(c)`, `X.select(e)`) and ELM
/// `ForEach`/`Filter`/`Repeat`/`Aggregate` without a scope stand for.
pub const THIS: &str = "$this";

/// The position of the current element in the innermost iteration (`$index`, ELM
/// `Iteration`), from 0.
pub const INDEX: &str = "$index";

/// The accumulator of a FHIRPath-style `aggregate` (`$total`, ELM `Total`): the query's
/// `aggregate` clause name.
pub const TOTAL: &str = "$total";

impl Engine<'_> {
    /// A System operator or function applied to evaluated arguments (kept out of
    /// [`Engine::call`], whose frame every nested call pays).
    #[inline(never)]
    fn system_call(
        &self,
        name: &str,
        vals: Vec<Value>,
        p: &Option<String>,
        ctx: &mut Context,
    ) -> R<Value> {
        // FHIRHelpers conversions for the System operators; operators that only pick or
        // count list elements keep FHIR elements as they are (`First(C.coding).userSelected`).
        let vals: Vec<Value> = if matches!(
            name,
            "First"
                | "Last"
                | "Exists"
                | "Count"
                | "Flatten"
                | "SingletonFrom"
                | "Take"
                | "Skip"
                | "Tail"
                | "ToList"
                | "IsNull"
                | "IsTrue"
                | "IsFalse"
        ) {
            vals
        } else {
            vals.into_iter()
                .map(crate::fhir::to_system)
                .collect::<R<_>>()?
        };
        if name == "ExpandValueSet"
            && let [v] = vals.as_slice()
        {
            return self.expand_value_set(v, ctx);
        }
        if matches!(name, "In" | "Contains") {
            let (x, y) = if name == "In" {
                (vals.first(), vals.get(1))
            } else {
                (vals.get(1), vals.first())
            };
            if let (Some(code), Some(voc @ Value::Vocabulary(..))) = (x, y) {
                if code.is_null() {
                    return Ok(Value::Null);
                }
                return match self.data {
                    Some(d) => Ok(b(d.in_vocabulary(code, voc)?)),
                    None => {
                        err("value set and code system membership needs a terminology provider")
                    }
                };
            }
        }
        if matches!(name, "Subsumes" | "SubsumedBy")
            && let [x, y] = vals.as_slice()
        {
            return if name == "Subsumes" {
                self.subsumes(x, y)
            } else {
                self.subsumes(y, x)
            };
        }
        call_builtin(name, vals, p, ctx)
    }

    /// The lazily evaluated internal forms ([`REPEAT`], [`RETRIEVE_IN`]); `None` for another
    /// name (kept out of [`Engine::call`], whose frame every nested call pays).
    #[inline(never)]
    fn internal(&self, name: &str, args: &[Expr], ctx: &mut Context) -> R<Option<Value>> {
        // ELM `Repeat` (and the parser's `x.repeat(e)`): `e` for each element, then for
        // each new result, until nothing new comes.
        if name == REPEAT
            && let [src, el, Expr::Lit(Value::Str(scope))] = args
        {
            return self.repeat(src, el, scope, ctx).map(Some);
        }
        // A retrieve in the context of another value (`[Pat -> Observation]`).
        if name == RETRIEVE_IN
            && let [c, Expr::Retrieve(t, path, codes)] = args
        {
            let c = self.eval(c, ctx)?;
            if c.is_null() {
                return Ok(Some(Value::List(vec![])));
            }
            let (data, codes) = self.retrieve_args(t, codes.as_deref(), ctx)?;
            let rows = data.retrieve_related(&c, t, path.as_deref(), codes.as_ref())?;
            charge(ctx, rows.len())?;
            return Ok(Some(Value::List(rows)));
        }
        Ok(None)
    }

    /// `Subsumes(a, b)`: whether a code of `a` (a Code or Concept) is a code of `b` or an
    /// ancestor of one in their code system; equal codes subsume without asking, codes of
    /// different systems never do, others ask the data provider's terminology (null when it
    /// does not know the code system). Null when either is null.
    #[inline(never)]
    fn subsumes(&self, a: &Value, b: &Value) -> R<Value> {
        fn codes(v: &Value) -> R<Option<Vec<&Code>>> {
            match v {
                Value::Null => Ok(None),
                Value::Code(c) => Ok(Some(vec![c])),
                Value::Concept(cs, _) => Ok(Some(cs.iter().collect())),
                o => err(format!("subsumption of a {}", o.type_name())),
            }
        }
        let (Some(xs), Some(ys)) = (codes(a)?, codes(b)?) else {
            return Ok(Value::Null);
        };
        let same_system = |x: &Code, y: &Code| x.system == y.system;
        if xs
            .iter()
            .any(|x| ys.iter().any(|y| same_system(x, y) && x.code == y.code))
        {
            return Ok(Value::Bool(true));
        }
        let mut known = Some(false);
        for x in &xs {
            for y in ys.iter().filter(|y| same_system(x, y)) {
                let Some(data) = self.data else {
                    return err("subsumption needs a terminology provider");
                };
                match data.subsumes(x, y)? {
                    Some(true) => return Ok(Value::Bool(true)),
                    Some(false) => {}
                    None => known = None,
                }
            }
        }
        Ok(self::b(known))
    }

    /// A Code selector: `code` of the code system named `sys`, declared in this library or
    /// (`from Lib."System"`) in the included library `lib`.
    #[inline(never)]
    fn code(&self, c: &CodeSelector, ctx: &Context) -> R<Value> {
        let sys = &c.system;
        let declared = match c.library.as_deref() {
            None => self.lib,
            Some(alias) => match self.included(&Expr::Ident(alias.to_string()), ctx) {
                Some(inc) => inc.lib,
                None => return err(format!("unknown library '{alias}'")),
            },
        };
        let system = declared
            .codesystems
            .iter()
            .find(|(n, _, _)| n == sys)
            .map_or_else(|| sys.clone(), |(_, id, _)| id.clone());
        Ok(Value::Code(Code {
            code: c.code.clone(),
            system: Some(system),
            version: None,
            display: c.display.clone(),
        }))
    }

    /// `ExpandValueSet`: the codes of a value set, from the data provider.
    #[inline(never)]
    fn expand_value_set(&self, v: &Value, ctx: &mut Context) -> R<Value> {
        match v {
            Value::Null => Ok(Value::Null),
            voc @ Value::Vocabulary("ValueSet", ..) => match self.data {
                Some(d) => {
                    let codes = d.expand_vocabulary(voc)?;
                    charge(ctx, codes.len())?;
                    Ok(Value::List(codes.into_iter().map(Value::Code).collect()))
                }
                None => err("expanding a value set needs a terminology provider"),
            },
            o => err(format!("ExpandValueSet of a {}", o.type_name())),
        }
    }

    /// `Repeat`: `el` (with the element as `scope`) for each element of `src`, then for each new result, until none is new; the
    /// distinct results in the order found (the source elements themselves are not included).
    fn repeat(&self, src: &Expr, el: &Expr, scope: &str, ctx: &mut Context) -> R<Value> {
        let items = match self.eval(src, ctx)? {
            Value::Null => return Ok(Value::Null),
            Value::List(xs) => xs,
            o => vec![o],
        };
        let mut out: Vec<Value> = Vec::new();
        let mut frontier = items;
        let base = ctx.scopes.len();
        let outer_index = ctx.index;
        let mut n = 0usize;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for x in frontier {
                charge(ctx, 1)?;
                ctx.scopes.push((scope.to_string(), x));
                ctx.index = i32::try_from(n).ok();
                n += 1;
                let r = self.eval(el, ctx);
                ctx.scopes.truncate(base);
                ctx.index = outer_index;
                let ys = match r? {
                    Value::Null => vec![],
                    Value::List(ys) => ys,
                    y => vec![y],
                };
                for y in ys {
                    if y.is_null() {
                        continue;
                    }
                    let mut seen = false;
                    for o in &out {
                        if *o == y || equal(o, &y, ctx.tz).ok().flatten() == Some(true) {
                            seen = true;
                            break;
                        }
                    }
                    charge(ctx, out.len())?;
                    if !seen {
                        out.push(y.clone());
                        next.push(y);
                    }
                }
            }
            frontier = next;
        }
        Ok(Value::List(out))
    }
}

/// The values of the elements of `v` (CQL `Children`): a list's elements' children, a tuple's
/// or FHIR value's element values (list-valued ones element by element), the parts of a
/// Quantity, Ratio, Interval, Code or Concept; nothing for a simple value.
fn children(v: &Value, out: &mut Vec<Value>) -> R<()> {
    let mut add = |x: Value| match x {
        Value::Null => {}
        Value::List(xs) => out.extend(xs.into_iter().filter(|x| !x.is_null())),
        x => out.push(x),
    };
    match v {
        Value::List(xs) => {
            for x in xs {
                children(x, out)?;
            }
        }
        Value::Tuple(es) => es.iter().for_each(|(_, x)| add(x.clone())),
        Value::Fhir(f) => crate::fhir::properties(f)?
            .into_iter()
            .for_each(|(_, x)| add(x)),
        Value::Quantity(d, u) => {
            add(Value::Dec(*d));
            add(Value::Str(u.clone()));
        }
        Value::Ratio(a, b2) => {
            add((**a).clone());
            add((**b2).clone());
        }
        Value::Interval(l, lc, h, hc) => {
            add((**l).clone());
            add(Value::Bool(*lc));
            add((**h).clone());
            add(Value::Bool(*hc));
        }
        Value::Code(c) => {
            add(Value::Str(c.code.clone()));
            add(c.system.clone().map(Value::Str).unwrap_or(Value::Null));
            add(c.version.clone().map(Value::Str).unwrap_or(Value::Null));
            add(c.display.clone().map(Value::Str).unwrap_or(Value::Null));
        }
        Value::Concept(cs, d) => {
            cs.iter().for_each(|c| add(Value::Code(c.clone())));
            add(d.clone().map(Value::Str).unwrap_or(Value::Null));
        }
        _ => {}
    }
    Ok(())
}

/// CQL `Children` (`Descendents` when `all`): null for null, else the list of the children
/// (and theirs, depth first, for `Descendents`), charged to the budget.
fn children_of(v: &Value, all: bool, ctx: &mut Context) -> R<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let mut out = Vec::new();
    children(v, &mut out)?;
    charge(ctx, out.len())?;
    if !all {
        return Ok(Value::List(out));
    }
    let mut result = Vec::new();
    let mut stack: Vec<Value> = out.into_iter().rev().collect();
    while let Some(x) = stack.pop() {
        let mut kids = Vec::new();
        children(&x, &mut kids)?;
        charge(ctx, kids.len() + 1)?;
        result.push(x);
        stack.extend(kids.into_iter().rev());
    }
    Ok(Value::List(result))
}

fn member(v: &Value, n: &str) -> R<Value> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Tuple(es) => es
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null),
        Value::List(xs) => {
            let mut out = Vec::new();
            for x in xs {
                match member(x, n)? {
                    Value::Null => {}
                    // A path through FHIR elements flattens (`Patient.name.given`).
                    Value::List(ys) if matches!(x, Value::Fhir(_)) => out.extend(ys),
                    y => out.push(y),
                }
            }
            Value::List(out)
        }
        Value::Quantity(d, u) => match n {
            "value" => Value::Dec(*d),
            "unit" => Value::Str(u.clone()),
            _ => Value::Null,
        },
        Value::Ratio(a, b2) => match n {
            "numerator" => (**a).clone(),
            "denominator" => (**b2).clone(),
            _ => Value::Null,
        },
        Value::Code(c) => match n {
            "code" => Value::Str(c.code.clone()),
            "system" => c.system.clone().map(Value::Str).unwrap_or(Value::Null),
            "version" => c.version.clone().map(Value::Str).unwrap_or(Value::Null),
            "display" => c.display.clone().map(Value::Str).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Value::Concept(cs, d) => match n {
            "codes" => Value::List(cs.iter().cloned().map(Value::Code).collect()),
            "display" => d.clone().map(Value::Str).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Value::Interval(l, lc, h, hc) => match n {
            "low" => (**l).clone(),
            "high" => (**h).clone(),
            "lowClosed" => Value::Bool(*lc),
            "highClosed" => Value::Bool(*hc),
            _ => Value::Null,
        },
        Value::Fhir(f) => crate::fhir::member(f, n)?,
        // `.value` of a FHIR primitive, which reading it already made a System value.
        Value::Bool(_)
        | Value::Int(_)
        | Value::Long(_)
        | Value::Dec(_)
        | Value::Str(_)
        | Value::Date(_)
        | Value::DateTime(_)
        | Value::Time(_)
            if n == "value" =>
        {
            v.clone()
        }
        o => return err(format!("no member {n} on {}", o.type_name())),
    })
}

fn index(a: &Value, i: &Value) -> R<Value> {
    let Some(i) = int_of(i) else {
        return Ok(Value::Null);
    };
    Ok(match a {
        Value::List(xs) => usize::try_from(i)
            .ok()
            .and_then(|i| xs.get(i))
            .cloned()
            .unwrap_or(Value::Null),
        Value::Str(s) => usize::try_from(i)
            .ok()
            .and_then(|i| s.chars().nth(i))
            .map(|c| Value::Str(c.to_string()))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

fn instance(t: &str, vals: Vec<(String, Value)>) -> R<Value> {
    let get = |k: &str| {
        vals.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    let s = |k: &str| match get(k) {
        Value::Str(s) => Some(s),
        _ => None,
    };
    Ok(match t {
        "Quantity" => match get("value") {
            Value::Null => Value::Null,
            v => Value::Quantity(
                dec_of(&v).unwrap_or_default(),
                s("unit").unwrap_or("1".into()),
            ),
        },
        "Ratio" => Value::Ratio(Box::new(get("numerator")), Box::new(get("denominator"))),
        "Code" => Value::Code(Code {
            code: s("code").unwrap_or_default(),
            system: s("system"),
            version: s("version"),
            display: s("display"),
        }),
        "Concept" => Value::Concept(
            match get("codes") {
                Value::List(xs) => xs
                    .into_iter()
                    .filter_map(|c| match c {
                        Value::Code(c) => Some(c),
                        _ => None,
                    })
                    .collect(),
                Value::Code(c) => vec![c],
                _ => vec![],
            },
            s("display"),
        ),
        "Interval" => {
            let lc = !matches!(get("lowClosed"), Value::Bool(false));
            let hc = !matches!(get("highClosed"), Value::Bool(false));
            Value::Interval(Box::new(get("low")), lc, Box::new(get("high")), hc)
        }
        "ValueSet" | "CodeSystem" => Value::Vocabulary(
            if t == "ValueSet" {
                "ValueSet"
            } else {
                "CodeSystem"
            },
            s("id").unwrap_or_default(),
            s("version"),
        ),
        // A FHIR primitive is its System value (`string { value: 'x' }`).
        t if flint_model::defs::definitions().is_primitive(t) => get("value"),
        _ => Value::Tuple(vals),
    })
}

fn distinct(xs: Vec<Value>, tz: i32) -> R<Vec<Value>> {
    let mut out: Vec<Value> = Vec::new();
    for x in xs {
        let mut dup = false;
        for o in &out {
            if equivalent(o, &x, tz)? && (equal(o, &x, tz)? != Some(false)) {
                dup = true;
                break;
            }
        }
        if !dup {
            out.push(x);
        }
    }
    Ok(out)
}

fn list_contains(xs: &[Value], x: &Value, tz: i32) -> R<Option<bool>> {
    if x.is_null() {
        return Ok(Some(xs.iter().any(|v| v.is_null())));
    }
    let mut r = Some(false);
    for v in xs {
        match equal(v, x, tz)? {
            Some(true) => return Ok(Some(true)),
            None if !v.is_null() => r = None,
            _ => {}
        }
    }
    Ok(r)
}

fn in_interval(x: &Value, i: &Value, p: Option<usize>, tz: i32) -> R<Option<bool>> {
    if x.is_null() {
        return Ok(None);
    }
    let Some((s, e)) = iv(i) else {
        return Ok(None);
    };
    let a = if s.is_null() { None } else { le(&s, x, p, tz)? };
    let c = if e.is_null() { None } else { le(x, &e, p, tz)? };
    Ok(and3(a, c))
}

fn agg_nums(xs: &[Value]) -> Vec<Value> {
    xs.iter().filter(|x| !x.is_null()).cloned().collect()
}

fn sum(xs: &[Value]) -> R<Value> {
    let mut acc: Option<Value> = None;
    for x in agg_nums(xs) {
        acc = Some(match acc {
            None => x,
            Some(a) => arith("Add", &a, &x)?,
        });
    }
    Ok(acc.unwrap_or(Value::Null))
}

fn to_dec_val(v: &Value) -> Value {
    match v {
        Value::Int(_) | Value::Long(_) => Value::Dec(dec_of(v).unwrap_or_default()),
        o => o.clone(),
    }
}

fn variance(xs: &[Value], pop: bool) -> R<Value> {
    let xs: Vec<Decimal> = agg_nums(xs).iter().filter_map(dec_of).collect();
    if xs.len() < if pop { 1 } else { 2 } {
        return Ok(Value::Null);
    }
    let n = Decimal::from(xs.len());
    let mut total = Decimal::ZERO;
    for x in &xs {
        let Some(t) = total.checked_add(*x) else {
            return Ok(Value::Null);
        };
        total = t;
    }
    let mean = total / n;
    let mut ss = Decimal::ZERO;
    for x in &xs {
        let d = *x - mean;
        let Some(t) = d.checked_mul(d).and_then(|q| ss.checked_add(q)) else {
            return Ok(Value::Null);
        };
        ss = t;
    }
    Ok(dec_result(Some(
        ss / if pop { n } else { n - Decimal::ONE },
    )))
}

fn sqrt_val(v: Value) -> Value {
    match v {
        Value::Dec(d) => dec_result(d.sqrt()),
        o => o,
    }
}

fn str_arg(v: &Value) -> Option<&str> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

fn temporal_ctor(kind: Kind, vals: &[Value]) -> R<Value> {
    if vals.first().is_none_or(|v| v.is_null()) {
        return Ok(Value::Null);
    }
    let mut v = [1, 1, 1, 0, 0, 0, 0];
    let start = if kind == Kind::Time { 3 } else { 0 };
    let mut prec = start;
    let mut offset = None;
    for (i, x) in vals.iter().enumerate() {
        if kind == Kind::DateTime && i == 7 {
            offset = match x {
                Value::Dec(d) => (*d * Decimal::from(60)).to_i32(),
                Value::Int(i) => Some(i * 60),
                _ => None,
            };
            break;
        }
        match int_of(x) {
            Some(n) => {
                if start + i >= 7 {
                    return err("too many components");
                }
                v[start + i] = n as i32;
                prec = start + i + 1;
            }
            None => break,
        }
    }
    if prec == start {
        return err("the first component of a date/time must be an Integer");
    }
    let t = Tm::new(v, prec, if kind == Kind::DateTime { offset } else { None });
    if !t.valid() {
        return err("invalid date/time components");
    }
    Ok(mk(kind, t))
}

fn duration_between(a: &Value, b2: &Value, p: &str, diff: bool, tz: i32) -> R<Value> {
    let (Some((ka, ta)), Some((_, tb2))) = (kind_of(a), kind_of(b2)) else {
        return Ok(Value::Null);
    };
    let Some(u) = unit_index(p) else {
        return err("bad precision");
    };
    let week = p.starts_with("week");
    let (ta, tb2) = if ka == Kind::DateTime && ta.prec > 3 && tb2.prec > 3 {
        (ta.with_tz(tz).shift_to(0), tb2.with_tz(tz).shift_to(0))
    } else {
        (ta, tb2)
    };
    let needed = if week || ka != Kind::Time {
        (u + 1).max(3)
    } else {
        u + 1
    };
    if ta.prec < needed || tb2.prec < needed {
        // Uncertain: an interval of the possible answers.
        let lo_a = Tm {
            prec: 7,
            ..Tm::new(ta.v, ta.prec, ta.offset)
        };
        let lo_b = Tm {
            prec: 7,
            ..Tm::new(tb2.v, tb2.prec, tb2.offset)
        };
        let x = duration_between(&mk(ka, fill_max(ta)), &mk(ka, lo_b), p, diff, tz)?;
        let y = duration_between(&mk(ka, lo_a), &mk(ka, fill_max(tb2)), p, diff, tz)?;
        if let (Some(x), Some(y)) = (int_of(&x), int_of(&y)) {
            if x == y {
                return Ok(Value::Int(x as i32));
            }
            return Ok(interval(Value::Int(x as i32), Value::Int(y as i32)));
        }
        return Ok(Value::Null);
    }
    let r: i64 = if diff {
        let trunc = |t: &Tm| {
            let keep = if week { 3 } else { u + 1 };
            Tm::new(t.v, keep.min(t.prec), t.offset).millis()
        };
        if u <= 1 {
            let ma = i64::from(ta.v[0]) * 12 + i64::from(ta.v[1]);
            let mb = i64::from(tb2.v[0]) * 12 + i64::from(tb2.v[1]);
            if u == 0 {
                i64::from(tb2.v[0] - ta.v[0])
            } else {
                mb - ma
            }
        } else {
            let f = [0, 0, 86_400_000i64, 3_600_000, 60_000, 1000, 1][u] * if week { 7 } else { 1 };
            let (x, y) = (trunc(&ta), trunc(&tb2));
            if week {
                // Weeks start on Sunday for difference; approximate with whole-week spans.
                (y - x).div_euclid(86_400_000 * 7)
            } else {
                (y - x) / f
            }
        }
    } else if u <= 1 {
        let mut months = i64::from(tb2.v[0] - ta.v[0]) * 12 + i64::from(tb2.v[1] - ta.v[1]);
        let rest_a = ta.millis() - Tm::new(ta.v, 2, ta.offset).millis();
        let rest_b = tb2.millis() - Tm::new(tb2.v, 2, tb2.offset).millis();
        if months > 0 && rest_b < rest_a {
            months -= 1;
        } else if months < 0 && rest_b > rest_a {
            months += 1;
        }
        if u == 0 { months / 12 } else { months }
    } else {
        let f = [0, 0, 86_400_000i64, 3_600_000, 60_000, 1000, 1][u] * if week { 7 } else { 1 };
        (tb2.millis() - ta.millis()) / f
    };
    Ok(i32::try_from(r).map(Value::Int).unwrap_or(Value::Long(r)))
}

fn fill_max(t: Tm) -> Tm {
    let mut v = t.v;
    let maxes = [9999, 12, 31, 23, 59, 59, 999];
    for i in t.prec..7 {
        v[i] = maxes[i];
        if i == 2 {
            v[2] = i32::from(flint_fhirpath::temporal::days_in_month(v[0], v[1] as u8));
        }
    }
    Tm {
        v,
        prec: 7,
        offset: t.offset,
    }
}

#[allow(clippy::too_many_lines)]
fn call_builtin(name: &str, vals: Vec<Value>, p: &Option<String>, ctx: &mut Context) -> R<Value> {
    let tz = ctx.tz;
    let a = vals.first().cloned().unwrap_or(Value::Null);
    let b2 = vals.get(1).cloned().unwrap_or(Value::Null);
    let pi = prec_idx(p);
    let null2 = a.is_null() || b2.is_null();
    Ok(match name {
        "And" => b(and3(tb(&a)?, tb(&b2)?)),
        "Or" => b(or3(tb(&a)?, tb(&b2)?)),
        "Xor" => b(match (tb(&a)?, tb(&b2)?) {
            (Some(x), Some(y)) => Some(x != y),
            _ => None,
        }),
        "Implies" => b(or3(tb(&a)?.map(|x| !x), tb(&b2)?)),
        "Not" => b(tb(&a)?.map(|x| !x)),
        "IsNull" => Value::Bool(a.is_null()),
        "IsTrue" => Value::Bool(a == Value::Bool(true)),
        "IsFalse" => Value::Bool(a == Value::Bool(false)),
        "Equal" => b(equal(&a, &b2, tz)?),
        "NotEqual" => b(equal(&a, &b2, tz)?.map(|x| !x)),
        "Equivalent" => Value::Bool(equivalent(&a, &b2, tz)?),
        "NotEquivalent" => Value::Bool(!equivalent(&a, &b2, tz)?),
        "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual"
            if matches!(a, Value::Interval(..)) != matches!(b2, Value::Interval(..)) =>
        {
            // An uncertain value (an interval of possibilities) against a point.
            let ends = |v: &Value| match v {
                Value::Interval(l, _, h, _) => ((**l).clone(), (**h).clone()),
                o => (o.clone(), o.clone()),
            };
            let (al, ah) = ends(&a);
            let (bl, bh) = ends(&b2);
            let x = call_builtin(name, vec![al, bh], p, ctx)?;
            let y = call_builtin(name, vec![ah, bl], p, ctx)?;
            if x == y { x } else { Value::Null }
        }
        "Add" | "Subtract" | "Multiply"
            if matches!(a, Value::Interval(..)) || matches!(b2, Value::Interval(..)) =>
        {
            let ends = |v: &Value| match v {
                Value::Interval(l, _, h, _) => ((**l).clone(), (**h).clone()),
                o => (o.clone(), o.clone()),
            };
            let (al, ah) = ends(&a);
            let (bl, bh) = ends(&b2);
            match name {
                "Subtract" => interval(arith(name, &al, &bh)?, arith(name, &ah, &bl)?),
                _ => interval(arith(name, &al, &bl)?, arith(name, &ah, &bh)?),
            }
        }
        "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => {
            let o = compare(&a, &b2, tz)?;
            b(o.map(|o| match name {
                "Less" => o == Ordering::Less,
                "Greater" => o == Ordering::Greater,
                "LessOrEqual" => o != Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        "Add" | "Subtract" | "Multiply" | "Divide" | "TruncatedDivide" | "Modulo" | "Power" => {
            if name == "Divide" {
                let (x, y) = (to_dec_val(&a), to_dec_val(&b2));
                arith(name, &x, &y)?
            } else if name == "Add" && matches!((&a, &b2), (Value::Str(_), Value::Str(_))) {
                call_builtin("Concatenate", vals, p, ctx)?
            } else {
                arith(name, &a, &b2)?
            }
        }
        "Negate" => match &a {
            Value::Null => Value::Null,
            Value::Int(i) => i.checked_neg().map(Value::Int).unwrap_or(Value::Null),
            Value::Long(i) => i.checked_neg().map(Value::Long).unwrap_or(Value::Null),
            Value::Dec(d) => Value::Dec(-*d),
            Value::Quantity(d, u) => Value::Quantity(-*d, u.clone()),
            o => return err(format!("cannot negate {}", o.type_name())),
        },
        "Abs" => match &a {
            Value::Int(i) => i.checked_abs().map(Value::Int).unwrap_or(Value::Null),
            Value::Long(i) => i.checked_abs().map(Value::Long).unwrap_or(Value::Null),
            Value::Dec(d) => Value::Dec(d.abs()),
            Value::Quantity(d, u) => Value::Quantity(d.abs(), u.clone()),
            _ => Value::Null,
        },
        "Ceiling" | "Floor" | "Truncate" => match dec_of(&a) {
            None => Value::Null,
            Some(d) => {
                let r = match name {
                    "Ceiling" => d.ceil(),
                    "Floor" => d.floor(),
                    _ => d.trunc(),
                };
                r.to_i32().map(Value::Int).unwrap_or(Value::Null)
            }
        },
        "Round" => match dec_of(&a) {
            None => Value::Null,
            Some(d) => {
                let dp = int_of(&b2).unwrap_or(0).max(0) as u32;
                Value::Dec(d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero))
            }
        },
        "Ln" => match dec_of(&a) {
            None => Value::Null,
            Some(d) if d.is_zero() => return err("Ln of zero"),
            Some(d) if d < Decimal::ZERO => Value::Null,
            Some(d) => dec_result(d.checked_ln()),
        },
        "Exp" => match dec_of(&a) {
            None => Value::Null,
            Some(d) => match d.checked_exp() {
                Some(r) => dec_result(Some(r)),
                None => return err("Exp overflow"),
            },
        },
        "Log" => match (dec_of(&a), dec_of(&b2)) {
            (Some(x), Some(base)) => {
                if x <= Decimal::ZERO || base <= Decimal::ZERO || base == Decimal::ONE {
                    Value::Null
                } else {
                    let r = x.to_f64().unwrap_or(0.0).ln() / base.to_f64().unwrap_or(1.0).ln();
                    dec_result(Decimal::from_f64(r))
                }
            }
            _ => Value::Null,
        },
        "Precision" => match &a {
            Value::Dec(d) => Value::Int(d.scale() as i32),
            Value::Null => Value::Null,
            v => match kind_of(v) {
                Some((k, t)) => {
                    let digits = [4, 6, 8, 10, 12, 14, 17];
                    let d = digits[t.prec - 1] - if k == Kind::Time { 8 } else { 0 };
                    Value::Int(d)
                }
                None => Value::Null,
            },
        },
        "LowBoundary" | "HighBoundary" => {
            let high = name == "HighBoundary";
            let prec = int_of(&b2);
            match &a {
                Value::Dec(d) => {
                    let pr = prec.unwrap_or(8).clamp(0, 8) as u32;
                    if prec.is_some_and(|p| p > 8) {
                        Value::Null
                    } else {
                        let scale = d.scale();
                        let out = if scale < pr {
                            let step = Decimal::new(1, scale);
                            let lo = if d.is_sign_negative() {
                                *d - step + Decimal::new(1, pr)
                            } else {
                                *d
                            };
                            let hi = if d.is_sign_negative() {
                                *d
                            } else {
                                *d + step - Decimal::new(1, pr)
                            };
                            let v = if high { hi } else { lo };
                            let mut v = v;
                            v.rescale(pr);
                            v
                        } else {
                            *d
                        };
                        Value::Dec(out)
                    }
                }
                v => match kind_of(v) {
                    Some((k, t)) => {
                        let digits = [4, 6, 8, 10, 12, 14, 17];
                        let pr = prec.unwrap_or(17 - if k == Kind::Time { 8 } else { 0 }) as i32
                            + if k == Kind::Time { 8 } else { 0 };
                        let Some(np) = digits.iter().position(|d| *d == pr) else {
                            return Ok(Value::Null);
                        };
                        let np = np + 1;
                        let filled = if high {
                            fill_max(t)
                        } else {
                            Tm::new(t.v, t.prec, t.offset)
                        };
                        let mut r = Tm::new(filled.v, np, t.offset);
                        if !high {
                            for i in t.prec..np {
                                r.v[i] = if i == 1 || i == 2 { 1 } else { 0 };
                            }
                        }
                        if k == Kind::DateTime && r.prec > 3 && r.offset.is_none() {
                            r.offset = t.offset;
                        }
                        mk(k, r)
                    }
                    None => Value::Null,
                },
            }
        }
        "Successor" => successor(&a)?,
        "Predecessor" => predecessor(&a)?,
        "MinValue" | "MaxValue" => {
            match min_max(str_arg(&a).unwrap_or(""), name == "MinValue", &Value::Null) {
                Some(v) => v,
                None => return err("no minimum/maximum for this type"),
            }
        }
        "Concat" => {
            let s = |v: &Value| str_arg(v).unwrap_or("").to_string();
            Value::Str(s(&a) + &s(&b2))
        }
        "Concatenate" => {
            if vals.iter().any(|v| v.is_null()) {
                Value::Null
            } else {
                Value::Str(vals.iter().filter_map(str_arg).collect())
            }
        }
        "Combine" => match list_of(a) {
            None => Value::Null,
            Some(xs) if xs.iter().all(|x| x.is_null()) => Value::Null,
            Some(xs) => {
                let sep = str_arg(&b2).unwrap_or("");
                Value::Str(xs.iter().filter_map(str_arg).collect::<Vec<_>>().join(sep))
            }
        },
        "Split" => match (&a, str_arg(&b2)) {
            (Value::Null, _) => Value::Null,
            (Value::Str(s), Some(sep)) if !sep.is_empty() => {
                Value::List(s.split(sep).map(|x| Value::Str(x.into())).collect())
            }
            (Value::Str(s), _) => Value::List(vec![Value::Str(s.clone())]),
            _ => Value::Null,
        },
        "Length" => match &a {
            Value::Str(s) => Value::Int(s.chars().count() as i32),
            Value::List(xs) => Value::Int(xs.len() as i32),
            Value::Null => Value::Null,
            _ => Value::Null,
        },
        "Upper" => str_arg(&a)
            .map(|s| Value::Str(s.to_uppercase()))
            .unwrap_or(Value::Null),
        "Lower" => str_arg(&a)
            .map(|s| Value::Str(s.to_lowercase()))
            .unwrap_or(Value::Null),
        "StartsWith" => match (str_arg(&a), str_arg(&b2)) {
            (Some(x), Some(y)) => Value::Bool(x.starts_with(y)),
            _ => Value::Null,
        },
        "EndsWith" => match (str_arg(&a), str_arg(&b2)) {
            (Some(x), Some(y)) => Value::Bool(x.ends_with(y)),
            _ => Value::Null,
        },
        "Matches" => match (str_arg(&a), str_arg(&b2)) {
            (Some(x), Some(y)) => Value::Bool(simple_regex_match(x, y)?),
            _ => Value::Null,
        },
        "ReplaceMatches" => match (str_arg(&a), str_arg(&b2), vals.get(2).and_then(str_arg)) {
            (Some(x), Some(y), Some(z)) => Value::Str(replace_matches(x, y, z)?),
            _ => Value::Null,
        },
        "PositionOf" => match (str_arg(&a), str_arg(&b2)) {
            (Some(pat), Some(s)) => Value::Int(
                s.find(pat)
                    .map(|i| s[..i].chars().count() as i32)
                    .unwrap_or(-1),
            ),
            _ => Value::Null,
        },
        "LastPositionOf" => match (str_arg(&a), str_arg(&b2)) {
            (Some(pat), Some(s)) => Value::Int(
                s.rfind(pat)
                    .map(|i| s[..i].chars().count() as i32)
                    .unwrap_or(-1),
            ),
            _ => Value::Null,
        },
        "Substring" => match (str_arg(&a), int_of(&b2)) {
            (Some(s), Some(st)) => {
                let chars: Vec<char> = s.chars().collect();
                if st < 0 || (st as usize >= chars.len() && !(st == 0 && chars.is_empty())) {
                    Value::Null
                } else {
                    let len = vals
                        .get(2)
                        .and_then(int_of)
                        .map(|l| l.max(0) as usize)
                        .unwrap_or(chars.len());
                    Value::Str(chars[st as usize..].iter().take(len).collect())
                }
            }
            _ => Value::Null,
        },
        "Indexer" => index(&a, &b2)?,
        "ToString" => to_string(&a),
        "ToInteger" => convert_to(&a, "Integer").unwrap_or(Value::Null),
        "ToLong" => convert_to(&a, "Long").unwrap_or(Value::Null),
        "ToDecimal" => convert_to(&a, "Decimal").unwrap_or(Value::Null),
        "ToBoolean" => convert_to(&a, "Boolean").unwrap_or(Value::Null),
        "ToQuantity" => convert_to(&a, "Quantity").unwrap_or(Value::Null),
        "ToRatio" => convert_to(&a, "Ratio").unwrap_or(Value::Null),
        "ToDate" => convert_to(&a, "Date").unwrap_or(Value::Null),
        "ToDateTime" => convert_to(&a, "DateTime").unwrap_or(Value::Null),
        "ToTime" => convert_to(&a, "Time").unwrap_or(Value::Null),
        "ToConcept" => convert_to(&a, "Concept").unwrap_or(Value::Null),
        "ConvertsToInteger" | "ConvertsToLong" | "ConvertsToDecimal" | "ConvertsToBoolean"
        | "ConvertsToQuantity" | "ConvertsToDate" | "ConvertsToDateTime" | "ConvertsToTime"
        | "ConvertsToString" | "ConvertsToRatio" => {
            if a.is_null() {
                Value::Null
            } else {
                Value::Bool(!convert_to(&a, &name[10..]).unwrap_or(Value::Null).is_null())
            }
        }
        "Date" => temporal_ctor(Kind::Date, &vals)?,
        "DateTime" => temporal_ctor(Kind::DateTime, &vals)?,
        "Time" => temporal_ctor(Kind::Time, &vals)?,
        "Now" => Value::DateTime(ctx.now),
        "Today" => Value::Date(Tm::new(ctx.now.v, 3, None)),
        "TimeOfDay" => Value::Time(Tm::new(
            [
                1,
                1,
                1,
                ctx.now.v[3],
                ctx.now.v[4],
                ctx.now.v[5],
                ctx.now.v[6],
            ],
            7,
            None,
        )),
        "ComponentFrom" => {
            let comp = p.as_deref().unwrap_or("");
            match kind_of(&a) {
                None => Value::Null,
                Some((k, t)) => match comp {
                    "date" => Value::Date(Tm::new(t.v, t.prec.min(3), None)),
                    "time" => {
                        if t.prec <= 3 {
                            Value::Null
                        } else {
                            Value::Time(Tm::new(
                                [1, 1, 1, t.v[3], t.v[4], t.v[5], t.v[6]],
                                t.prec,
                                None,
                            ))
                        }
                    }
                    "timezoneoffset" if k == Kind::DateTime => {
                        Value::Dec(Decimal::from(t.offset.unwrap_or(tz)) / Decimal::from(60))
                    }
                    "timezoneoffset" => Value::Null,
                    c => match unit_index(c) {
                        Some(i) if i < t.prec && !(k == Kind::Time && i < 3) => Value::Int(t.v[i]),
                        _ => Value::Null,
                    },
                },
            }
        }
        "DurationBetween" | "DifferenceBetween" => {
            if null2 {
                Value::Null
            } else {
                duration_between(
                    &a,
                    &b2,
                    p.as_deref().unwrap_or("day"),
                    name == "DifferenceBetween",
                    tz,
                )?
            }
        }
        "DurationOf" | "DifferenceOf" => match iv(&a) {
            Some((s, e)) if !s.is_null() && !e.is_null() => duration_between(
                &s,
                &e,
                p.as_deref().unwrap_or("day"),
                name == "DifferenceOf",
                tz,
            )?,
            _ => Value::Null,
        },
        // ---- lists and intervals ----
        "Exists" => match a {
            Value::Null => Value::Bool(false),
            Value::List(xs) => Value::Bool(xs.iter().any(|x| !x.is_null())),
            _ => Value::Bool(true),
        },
        "Start" | "StartOrPoint" => match &a {
            Value::Interval(..) => iv(&a).map(|(s, _)| s).unwrap_or(Value::Null),
            _ if name == "StartOrPoint" => a.clone(),
            Value::Null => Value::Null,
            _ => return err("start of a non-interval"),
        },
        "End" | "EndOrPoint" => match &a {
            Value::Interval(..) => iv(&a).map(|(_, e)| e).unwrap_or(Value::Null),
            _ if name == "EndOrPoint" => a.clone(),
            Value::Null => Value::Null,
            _ => return err("end of a non-interval"),
        },
        "Width" => match iv(&a) {
            Some((s, e)) => arith("Subtract", &e, &s)?,
            None => Value::Null,
        },
        "Size" => match iv(&a) {
            Some((s, e)) => {
                let w = arith("Subtract", &e, &s)?;
                match &w {
                    Value::Int(_) | Value::Long(_) => arith("Add", &w, &Value::Int(1))?,
                    Value::Dec(_) => arith("Add", &w, &Value::Dec(Decimal::new(1, 8)))?,
                    _ => w,
                }
            }
            None => Value::Null,
        },
        "PointFrom" => match iv(&a) {
            Some((s, e)) => {
                if equal(&s, &e, tz)? == Some(true) {
                    s
                } else {
                    return err("point from an interval of more than one point");
                }
            }
            None => Value::Null,
        },
        "SingletonFrom" => match list_of(a) {
            None => Value::Null,
            Some(xs) => match xs.len() {
                0 => Value::Null,
                1 => xs[0].clone(),
                _ => return err("singleton from a list of more than one element"),
            },
        },
        "In" | "Contains"
            if matches!(a, Value::Vocabulary(..)) || matches!(b2, Value::Vocabulary(..)) =>
        {
            return err("value set and code system membership needs a terminology provider");
        }
        "In" => match &b2 {
            Value::Interval(..) => b(in_interval(&a, &b2, pi, tz)?),
            Value::List(xs) => b(list_contains(xs, &a, tz)?),
            Value::Null => {
                if a.is_null() {
                    Value::Null
                } else {
                    Value::Bool(false)
                }
            }
            _ => return err("in: right operand must be a list or an interval"),
        },
        "Contains" => match &a {
            Value::Interval(..) => b(in_interval(&b2, &a, pi, tz)?),
            Value::List(xs) => b(list_contains(xs, &b2, tz)?),
            Value::Null => Value::Bool(false),
            _ => return err("contains: left operand must be a list or an interval"),
        },
        "Includes" | "ProperIncludes" | "IncludedIn" | "ProperIncludedIn" => {
            let (x, y) = if name.contains("IncludedIn") {
                (b2, a)
            } else {
                (a, b2)
            };
            let proper = name.starts_with("Proper");
            let x = typed_nulls(x, &y);
            let y = typed_nulls(y, &x);
            match (&x, &y) {
                (Value::List(_), Value::Null) if proper => Value::Bool(false),
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (Value::List(xs), Value::List(ys)) => {
                    let mut all = true;
                    for e in ys {
                        if list_contains(xs, e, tz)? != Some(true) {
                            all = false;
                        }
                    }
                    let r = all
                        && (!proper
                            || distinct(xs.clone(), tz)?.len() > distinct(ys.clone(), tz)?.len());
                    Value::Bool(r)
                }
                (Value::List(xs), e) => {
                    let c = list_contains(xs, e, tz)?;
                    if proper {
                        let mut other = Some(false);
                        for y in xs {
                            other = or3(other, equal(y, e, tz)?.map(|v| !v));
                        }
                        b(and3(c, other))
                    } else {
                        b(c)
                    }
                }
                (Value::Interval(..), Value::Interval(..)) => {
                    let (Some((s1, e1)), Some((s2, e2))) = (iv(&x), iv(&y)) else {
                        return Ok(Value::Null);
                    };
                    let inc = and3(le(&s1, &s2, pi, tz)?, le(&e2, &e1, pi, tz)?);
                    if proper {
                        let ne = or3(
                            eqp(&s1, &s2, pi, tz)?.map(|v| !v),
                            eqp(&e1, &e2, pi, tz)?.map(|v| !v),
                        );
                        b(and3(inc, ne))
                    } else {
                        b(inc)
                    }
                }
                (Value::Interval(..), p2) => {
                    if proper {
                        let (s, e) = iv(&x).unwrap_or((Value::Null, Value::Null));
                        b(and3(lt(&s, p2, pi, tz)?, lt(p2, &e, pi, tz)?))
                    } else {
                        b(in_interval(p2, &x, pi, tz)?)
                    }
                }
                _ => return err("includes: bad operands"),
            }
        }
        "Before" | "After" | "SameOrBefore" | "SameOrAfter" | "SameAs" => {
            if null2 {
                return Ok(Value::Null);
            }
            let (l, r) = match name {
                "Before" => (
                    iv(&a).map(|x| x.1).unwrap_or(a.clone()),
                    iv(&b2).map(|x| x.0).unwrap_or(b2.clone()),
                ),
                "After" => (
                    iv(&a).map(|x| x.0).unwrap_or(a.clone()),
                    iv(&b2).map(|x| x.1).unwrap_or(b2.clone()),
                ),
                _ => (a.clone(), b2.clone()),
            };
            if matches!(l, Value::Interval(..)) || matches!(r, Value::Interval(..)) {
                return match name {
                    "SameAs" => Ok(b(match (iv(&l), iv(&r)) {
                        (Some((s1, e1)), Some((s2, e2))) => {
                            and3(eqp(&s1, &s2, pi, tz)?, eqp(&e1, &e2, pi, tz)?)
                        }
                        _ => None,
                    })),
                    _ => err("interval comparison"),
                };
            }
            let o = compare_p(&l, &r, pi, tz)?;
            b(o.map(|o| match name {
                "Before" => o == Ordering::Less,
                "After" => o == Ordering::Greater,
                "SameOrBefore" => o != Ordering::Greater,
                "SameOrAfter" => o != Ordering::Less,
                _ => o == Ordering::Equal,
            }))
        }
        "Meets" | "MeetsBefore" | "MeetsAfter" => {
            let (Some((s1, e1)), Some((s2, e2))) = (iv(&a), iv(&b2)) else {
                return Ok(Value::Null);
            };
            let before = || -> R<Option<bool>> {
                if e1.is_null() || s2.is_null() {
                    return Ok(None);
                }
                eqp(&successor(&e1)?, &s2, pi, tz)
            };
            let after = || -> R<Option<bool>> {
                if e2.is_null() || s1.is_null() {
                    return Ok(None);
                }
                eqp(&successor(&e2)?, &s1, pi, tz)
            };
            b(match name {
                "MeetsBefore" => before()?,
                "MeetsAfter" => after()?,
                _ => or3(before()?, after()?),
            })
        }
        "Overlaps" | "OverlapsBefore" | "OverlapsAfter" => {
            let (Some((s1, e1)), Some((s2, e2))) = (iv(&a), iv(&b2)) else {
                return Ok(Value::Null);
            };
            let ov = and3(le(&s1, &e2, pi, tz)?, le(&s2, &e1, pi, tz)?);
            b(match name {
                "OverlapsBefore" => and3(ov, lt(&s1, &s2, pi, tz)?),
                "OverlapsAfter" => and3(ov, lt(&e2, &e1, pi, tz)?),
                _ => ov,
            })
        }
        "Starts" => {
            let (Some((s1, e1)), Some((s2, e2))) = (iv(&a), iv(&b2)) else {
                return Ok(Value::Null);
            };
            b(and3(eqp(&s1, &s2, pi, tz)?, le(&e1, &e2, pi, tz)?))
        }
        "Ends" => {
            let (Some((s1, e1)), Some((s2, e2))) = (iv(&a), iv(&b2)) else {
                return Ok(Value::Null);
            };
            b(and3(le(&s2, &s1, pi, tz)?, eqp(&e1, &e2, pi, tz)?))
        }
        "Within" | "ProperWithin" => {
            let q = vals.get(2).cloned().unwrap_or(Value::Null);
            if null2 {
                return Ok(Value::Null);
            }
            let (s, e) = iv(&b2).unwrap_or((b2.clone(), b2.clone()));
            let lo = arith("Subtract", &s, &q)?;
            let hi = arith("Add", &e, &q)?;
            let proper = name == "ProperWithin";
            let range = Value::Interval(Box::new(lo), !proper, Box::new(hi), !proper);
            match iv(&a) {
                Some((x, y)) => b(and3(
                    in_interval(&x, &range, pi, tz)?,
                    in_interval(&y, &range, pi, tz)?,
                )),
                None => b(in_interval(&a, &range, pi, tz)?),
            }
        }
        "OffsetRelation" => {
            let q = vals.get(2).cloned().unwrap_or(Value::Null);
            let k = str_arg(vals.get(3).unwrap_or(&Value::Null))
                .unwrap_or("eq")
                .to_string();
            let before = vals.get(4) == Some(&Value::Bool(true));
            if null2 {
                return Ok(Value::Null);
            }
            let l = if before {
                iv(&a).map(|x| x.1).unwrap_or(a.clone())
            } else {
                iv(&a).map(|x| x.0).unwrap_or(a.clone())
            };
            let r = if before {
                iv(&b2).map(|x| x.0).unwrap_or(b2.clone())
            } else {
                iv(&b2).map(|x| x.1).unwrap_or(b2.clone())
            };
            let target = arith(if before { "Subtract" } else { "Add" }, &r, &q)?;
            let o = compare_p(&l, &target, pi, tz)?;
            let toward = if before {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            b(match k.as_str() {
                "eq" => o.map(|o| o == Ordering::Equal),
                "ge" => o.map(|o| o == Ordering::Equal || o == toward),
                "gt" => o.map(|o| o == toward),
                "le" | "lt" => {
                    let c = compare_p(&l, &r, pi, tz)?;
                    let within = o.map(|o| {
                        if k == "le" {
                            o == Ordering::Equal || o == toward.reverse()
                        } else {
                            o == toward.reverse()
                        }
                    });
                    and3(within, c.map(|c| c == toward))
                }
                _ => None,
            })
        }
        "Union" => match (&a, &b2) {
            (Value::Interval(..), _) | (_, Value::Interval(..)) => {
                let (Some((s1, e1)), Some((s2, e2))) = (iv(&a), iv(&b2)) else {
                    return Ok(Value::Null);
                };
                let touch = or3(
                    and3(le(&s1, &e2, None, tz)?, le(&s2, &e1, None, tz)?),
                    or3(
                        eqp(&successor(&e1)?, &s2, None, tz)?,
                        eqp(&successor(&e2)?, &s1, None, tz)?,
                    ),
                );
                if touch == Some(true) {
                    interval(min_v(&s1, &s2, tz)?, max_v(&e1, &e2, tz)?)
                } else {
                    Value::Null
                }
            }
            _ => {
                let mut xs = list_of(a).unwrap_or_default();
                xs.extend(list_of(b2).unwrap_or_default());
                Value::List(distinct(xs, tz)?)
            }
        },
        "Intersect" => match (&a, &b2) {
            (Value::Interval(..), _) | (_, Value::Interval(..)) => {
                let (Some((s1, e1)), Some((s2, e2))) = (iv(&a), iv(&b2)) else {
                    return Ok(Value::Null);
                };
                let ov = and3(le(&s1, &e2, None, tz)?, le(&s2, &e1, None, tz)?);
                if ov != Some(false) {
                    interval(max_v(&s1, &s2, tz)?, min_v(&e1, &e2, tz)?)
                } else {
                    Value::Null
                }
            }
            _ => {
                if null2 {
                    return Ok(Value::Null);
                }
                let ys = list_of(b2).unwrap_or_default();
                let mut out = Vec::new();
                for x in list_of(a).unwrap_or_default() {
                    if list_contains(&ys, &x, tz)? == Some(true) {
                        out.push(x);
                    }
                }
                Value::List(distinct(out, tz)?)
            }
        },
        "Except" => match (&a, &b2) {
            (Value::Interval(..), _) | (_, Value::Interval(..)) => {
                let (Some((s1, e1)), Some((s2, e2))) = (iv(&a), iv(&b2)) else {
                    return Ok(Value::Null);
                };
                let ov = and3(le(&s1, &e2, None, tz)?, le(&s2, &e1, None, tz)?);
                if ov == Some(false) {
                    return Ok(a);
                }
                let starts_before = lt(&s1, &s2, None, tz)? == Some(true);
                let ends_after = lt(&e2, &e1, None, tz)? == Some(true);
                match (starts_before, ends_after) {
                    (true, false) => interval(s1, predecessor(&s2)?),
                    (false, true) => interval(successor(&e2)?, e1),
                    _ => Value::Null,
                }
            }
            _ => {
                if a.is_null() {
                    return Ok(Value::Null);
                }
                let ys = list_of(b2).unwrap_or_default();
                let mut out = Vec::new();
                for x in list_of(a).unwrap_or_default() {
                    if list_contains(&ys, &x, tz)? != Some(true) {
                        out.push(x);
                    }
                }
                Value::List(distinct(out, tz)?)
            }
        },
        "Distinct" => match list_of(a) {
            None => Value::Null,
            Some(xs) => Value::List(distinct(xs, tz)?),
        },
        "Flatten" => match list_of(a) {
            None => Value::Null,
            Some(xs) => Value::List(
                xs.into_iter()
                    .flat_map(|x| match x {
                        Value::List(ys) => ys,
                        o => vec![o],
                    })
                    .collect(),
            ),
        },
        "First" => list_of(a)
            .and_then(|xs| xs.into_iter().next())
            .unwrap_or(Value::Null),
        "Last" => list_of(a)
            .and_then(|xs| xs.into_iter().last())
            .unwrap_or(Value::Null),
        "Tail" => match list_of(a) {
            None => Value::Null,
            Some(xs) => Value::List(xs.into_iter().skip(1).collect()),
        },
        "Skip" => match list_of(a) {
            None => Value::Null,
            Some(xs) => match int_of(&b2) {
                None => Value::List(xs),
                Some(n) => Value::List(xs.into_iter().skip(n.max(0) as usize).collect()),
            },
        },
        "Take" => match list_of(a) {
            None => Value::Null,
            Some(xs) => match int_of(&b2) {
                None => Value::List(vec![]),
                Some(n) => Value::List(xs.into_iter().take(n.max(0) as usize).collect()),
            },
        },
        "Slice" => match list_of(a) {
            None => Value::Null,
            Some(xs) => {
                let st = int_of(&b2).unwrap_or(0).max(0) as usize;
                let en = vals
                    .get(2)
                    .and_then(int_of)
                    .map(|e| {
                        if e < 0 {
                            (xs.len() as i64 + e).max(0) as usize
                        } else {
                            e as usize
                        }
                    })
                    .unwrap_or(xs.len());
                Value::List(
                    xs.into_iter()
                        .skip(st)
                        .take(en.saturating_sub(st))
                        .collect(),
                )
            }
        },
        "IndexOf" => match (list_of(a), &b2) {
            (Some(_), Value::Null) | (None, _) => Value::Null,
            (Some(xs), y) => {
                let mut r = -1;
                for (i, x) in xs.iter().enumerate() {
                    if equal(x, y, tz)? == Some(true) {
                        r = i as i32;
                        break;
                    }
                }
                Value::Int(r)
            }
        },
        "Count" => match list_of(a) {
            None => Value::Int(0),
            Some(xs) => Value::Int(xs.iter().filter(|x| !x.is_null()).count() as i32),
        },
        "Sum" => sum(&list_of(a).unwrap_or_default())?,
        "Product" => {
            let xs = agg_nums(&list_of(a).unwrap_or_default());
            let mut acc: Option<Value> = None;
            for x in xs {
                acc = Some(match acc {
                    None => x,
                    Some(a) => arith("Multiply", &a, &x)?,
                });
            }
            acc.unwrap_or(Value::Null)
        }
        "Min" | "Max" => {
            let xs = agg_nums(&list_of(a).unwrap_or_default());
            let mut acc: Option<Value> = None;
            for x in xs {
                acc = Some(match acc {
                    None => x,
                    Some(a) => {
                        if name == "Min" {
                            min_v(&a, &x, tz)?
                        } else {
                            max_v(&a, &x, tz)?
                        }
                    }
                });
            }
            acc.unwrap_or(Value::Null)
        }
        "Avg" => {
            let xs = agg_nums(&list_of(a).unwrap_or_default());
            if xs.is_empty() {
                Value::Null
            } else {
                let s = sum(&xs)?;
                arith(
                    "Divide",
                    &to_dec_val(&s),
                    &Value::Dec(Decimal::from(xs.len())),
                )?
            }
        }
        "Median" => {
            let mut xs = agg_nums(&list_of(a).unwrap_or_default());
            if xs.is_empty() {
                Value::Null
            } else {
                xs.sort_by(|x, y| compare(x, y, tz).ok().flatten().unwrap_or(Ordering::Equal));
                let n = xs.len();
                if n % 2 == 1 {
                    to_dec_val(&xs[n / 2])
                } else {
                    let s = arith("Add", &to_dec_val(&xs[n / 2 - 1]), &to_dec_val(&xs[n / 2]))?;
                    arith("Divide", &s, &Value::Dec(Decimal::TWO))?
                }
            }
        }
        "Mode" => {
            let xs = agg_nums(&list_of(a).unwrap_or_default());
            let mut best: Option<(Value, usize)> = None;
            for x in &xs {
                let mut n = 0;
                for y in &xs {
                    if equal(x, y, tz)? == Some(true) {
                        n += 1;
                    }
                }
                if best.as_ref().is_none_or(|(_, m)| n > *m) {
                    best = Some((x.clone(), n));
                }
            }
            best.map(|b| b.0).unwrap_or(Value::Null)
        }
        "Variance" => variance(&list_of(a).unwrap_or_default(), false)?,
        "PopulationVariance" => variance(&list_of(a).unwrap_or_default(), true)?,
        "StdDev" => sqrt_val(variance(&list_of(a).unwrap_or_default(), false)?),
        "PopulationStdDev" => sqrt_val(variance(&list_of(a).unwrap_or_default(), true)?),
        "AllTrue" => Value::Bool(
            list_of(a)
                .unwrap_or_default()
                .iter()
                .all(|x| *x != Value::Bool(false)),
        ),
        "AnyTrue" => Value::Bool(list_of(a).unwrap_or_default().contains(&Value::Bool(true))),
        "AllFalse" => Value::Bool(
            list_of(a)
                .unwrap_or_default()
                .iter()
                .all(|x| *x != Value::Bool(true)),
        ),
        "AnyFalse" => Value::Bool(list_of(a).unwrap_or_default().contains(&Value::Bool(false))),
        "Collapse" => match list_of(a) {
            None => Value::Null,
            Some(xs) => {
                let mut ivs: Vec<(Value, Value)> = xs
                    .iter()
                    .filter_map(iv)
                    .filter(|(s, e)| !(s.is_null() && e.is_null()))
                    .collect();
                ivs.sort_by(|x, y| {
                    compare(&x.0, &y.0, tz)
                        .ok()
                        .flatten()
                        .unwrap_or(Ordering::Equal)
                });
                let mut out: Vec<(Value, Value)> = Vec::new();
                for (s, e) in ivs {
                    if let Some(last) = out.last_mut() {
                        let adj = le(&s, &last.1, None, tz)? == Some(true)
                            || eqp(&successor(&last.1)?, &s, None, tz)? == Some(true);
                        if adj {
                            last.1 = max_v(&last.1, &e, tz)?;
                            continue;
                        }
                    }
                    out.push((s, e));
                }
                Value::List(out.into_iter().map(|(s, e)| interval(s, e)).collect())
            }
        },
        "Expand" => {
            let single = matches!(a, Value::Interval(..));
            match list_of(a) {
                None => Value::Null,
                Some(xs) => {
                    let mut out = Vec::new();
                    for i in xs {
                        if let Some((s0, e0)) = iv(&i) {
                            if s0.is_null() || e0.is_null() {
                                continue;
                            }
                            out.extend(expand_one(&s0, &e0, &b2, tz)?);
                            charge(ctx, out.len())?;
                        }
                    }
                    if single {
                        Value::List(out.into_iter().map(|(s, _)| s).collect())
                    } else {
                        Value::List(out.into_iter().map(|(s, e)| interval(s, e)).collect())
                    }
                }
            }
        }
        "Message" => {
            let cond = vals.get(1).cloned().unwrap_or(Value::Null);
            let sev = vals.get(3).and_then(str_arg).unwrap_or("");
            if cond == Value::Bool(true) && sev.eq_ignore_ascii_case("error") {
                return Err(Error::Message {
                    code: vals.get(2).and_then(str_arg).unwrap_or("").into(),
                    message: vals.get(4).and_then(str_arg).unwrap_or("").into(),
                });
            }
            a
        }
        "Children" | "children" => children_of(&a, false, ctx)?,
        "Descendents" | "descendents" => children_of(&a, true, ctx)?,
        "Times" => times(a, b2, ctx)?,
        "SplitOnMatches" => match (&a, str_arg(&b2)) {
            (Value::Str(s), Some(pat)) => {
                let re = regex::Regex::new(pat).map_err(|e| Error::Eval(e.to_string()))?;
                charge(ctx, s.len())?;
                Value::List(re.split(s).map(|x| Value::Str(x.into())).collect())
            }
            _ => Value::Null,
        },
        "ToChars" => match &a {
            Value::Str(s) => {
                charge(ctx, s.len())?;
                Value::List(s.chars().map(|c| Value::Str(c.to_string())).collect())
            }
            _ => Value::Null,
        },
        "GeometricMean" => geometric_mean(&list_of(a).unwrap_or_default()),
        "CanConvertQuantity" => match (&a, str_arg(&b2)) {
            (Value::Quantity(_, from), Some(to)) => Value::Bool(
                ucum::convert(Decimal::ONE, ucum::ucum_code(from), ucum::ucum_code(to)).is_some(),
            ),
            _ => Value::Null,
        },
        _ => return err(format!("unknown function {name}")),
    })
}

/// `Times`: the cartesian product of two lists of tuples, each result tuple the elements of
/// the left one followed by those of the right one (null when either list is null).
fn times(a: Value, b2: Value, ctx: &mut Context) -> R<Value> {
    let (Value::List(xs), Value::List(ys)) = (a, b2) else {
        return Ok(Value::Null);
    };
    charge(ctx, xs.len().saturating_mul(ys.len()))?;
    let elements = |v: &Value| -> R<Vec<(String, Value)>> {
        match v {
            Value::Tuple(es) => Ok(es.clone()),
            Value::Null => Ok(Vec::new()),
            o => err(format!(
                "Times of a list of {}, not of tuples",
                o.type_name()
            )),
        }
    };
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for x in &xs {
        let left = elements(x)?;
        for y in &ys {
            let mut t = left.clone();
            t.extend(elements(y)?);
            out.push(Value::Tuple(t));
        }
    }
    Ok(Value::List(out))
}

/// `GeometricMean`: the n-th root of the product of the non-null elements (null for none or
/// for a negative element, zero when one is zero).
fn geometric_mean(xs: &[Value]) -> Value {
    let ds: Vec<Decimal> = agg_nums(xs).iter().filter_map(dec_of).collect();
    if ds.is_empty() || ds.iter().any(|d| d.is_sign_negative() && !d.is_zero()) {
        return Value::Null;
    }
    if ds.iter().any(Decimal::is_zero) {
        return Value::Dec(Decimal::ZERO);
    }
    // exp(mean of the logarithms): no overflow of the product on the way.
    let mut logs = Decimal::ZERO;
    for d in &ds {
        match d.checked_ln().and_then(|l| logs.checked_add(l)) {
            Some(t) => logs = t,
            None => return Value::Null,
        }
    }
    dec_result((logs / Decimal::from(ds.len())).checked_exp())
}

fn simple_regex_match(s: &str, pat: &str) -> R<bool> {
    let re = regex::Regex::new(&format!("^(?s:{pat})$")).map_err(|e| Error::Eval(e.to_string()))?;
    Ok(re.is_match(s))
}

fn replace_matches(s: &str, pat: &str, rep: &str) -> R<String> {
    let re = regex::Regex::new(pat).map_err(|e| Error::Eval(e.to_string()))?;
    // Java replacement syntax: `\x` is a literal x, `$n` a group.
    let mut r = String::new();
    let mut it = rep.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('$') => r.push_str("$$"),
                Some(x) => r.push(x),
                None => {}
            },
            '$' if it.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut n = String::new();
                while let Some(d) = it.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    it.next();
                }
                r.push_str(&format!("${{{n}}}"));
            }
            c => r.push(c),
        }
    }
    Ok(re.replace_all(s, r.as_str()).into_owned())
}
