//! The evaluator: walks the compiled expression tree over borrowed input, implementing paths,
//! operators (arithmetic, comparison, equality, boolean logic, membership, union, type tests)
//! and environment variables. Functions live in `functions.rs`.

use crate::EvalContext;
use crate::compare;
use crate::error::Error;
use crate::model::{self, Name};
use crate::parser::{BinOp, Expr, SysType, TypeSpec};
use crate::temporal::{self, CalendarUnit, DateTime};
use crate::ucum;
use crate::value::{Item, Quantity};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;

/// Evaluation state for one `evaluate` call.
pub(crate) struct Evaluator<'c, 'a> {
    pub(crate) ctx: &'c EvalContext<'a>,
    now: OnceCell<DateTime>,
}

/// The focus of an (sub)expression: `$this`, `$index`, `$total`.
pub(crate) struct Scope<'s, 'a> {
    pub(crate) this: &'s [Item<'a>],
    pub(crate) index: Option<usize>,
    pub(crate) total: Option<&'s [Item<'a>]>,
}

/// Result type of evaluation.
pub(crate) type Coll<'a> = Vec<Item<'a>>;

/// Requires at most one item.
pub(crate) fn single<'x, 'a>(c: &'x [Item<'a>], what: &str) -> Result<Option<&'x Item<'a>>, Error> {
    match c {
        [] => Ok(None),
        [x] => Ok(Some(x)),
        _ => Err(Error::execution(format!(
            "{what} requires a single item, got {}",
            c.len()
        ))),
    }
}

/// Singleton evaluation of a collection as Boolean: empty → None; a single Boolean → it;
/// any other single item → true; several items → error.
pub(crate) fn to_bool(c: &[Item<'_>], what: &str) -> Result<Option<bool>, Error> {
    match single(c, what)? {
        None => Ok(None),
        Some(i) => Ok(Some(match i.to_system() {
            Some(Item::Boolean(b)) => b,
            _ => true,
        })),
    }
}

/// Whether `item` is of the type `ts` denotes (FHIR types by the R4 hierarchy).
pub(crate) fn is_type(item: &Item<'_>, ts: &TypeSpec) -> bool {
    match item {
        Item::Node(n) => {
            ts.fhir
                .as_deref()
                .is_some_and(|t| model::fhir_type_is(n.ty, n.def, t))
                // A FHIR `string` or primitive derived from it (`code`, `id`, `markdown`) is
                // also a `System.String` (`Patient.gender.is(String)`).
                || (matches!(ts.system, Some(SysType::String))
                    && n.is_primitive()
                    && model::fhir_type_is(n.ty, n.def, "string"))
        }
        other => ts.system.is_some_and(|s| {
            matches!(
                (s, other),
                (SysType::Boolean, Item::Boolean(_))
                    | (SysType::Integer, Item::Integer(_))
                    | (SysType::Decimal, Item::Decimal(_))
                    | (SysType::String, Item::String(_))
                    | (SysType::Date, Item::Date(_))
                    | (SysType::DateTime, Item::DateTime(_))
                    | (SysType::Time, Item::Time(_))
                    | (SysType::Quantity, Item::Quantity(_))
            )
        }),
    }
}

/// Appends `items` to `out`, skipping items already present (by `=`).
pub(crate) fn union_into<'a>(out: &mut Coll<'a>, items: impl IntoIterator<Item = Item<'a>>) {
    for i in items {
        if !out.iter().any(|o| same_item(o, &i)) {
            out.push(i);
        }
    }
}

/// Identity for nodes that are the same JSON value, `=` otherwise.
pub(crate) fn same_item(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a, b) {
        (Item::Node(x), Item::Node(y)) => {
            if let (Some(p), Some(q)) = (x.value, y.value)
                && std::ptr::eq(p, q)
            {
                return true;
            }
        }
        (Item::Integer(x), Item::Integer(y)) => return x == y,
        (Item::String(x), Item::String(y)) => return x == y,
        (Item::Boolean(x), Item::Boolean(y)) => return x == y,
        _ => {}
    }
    compare::equals(a, b) == Some(true)
}

impl<'c, 'a> Evaluator<'c, 'a> {
    pub(crate) fn new(ctx: &'c EvalContext<'a>) -> Self {
        Evaluator {
            ctx,
            now: OnceCell::new(),
        }
    }

    /// The evaluation's fixed notion of now.
    pub(crate) fn now(&self) -> DateTime {
        *self
            .now
            .get_or_init(|| self.ctx.now.unwrap_or_else(temporal::now_utc))
    }

    pub(crate) fn eval(&self, e: &Expr, scope: &Scope<'_, 'a>) -> Result<Coll<'a>, Error> {
        match e {
            Expr::Empty => Ok(Vec::new()),
            Expr::Literal(i) => Ok(vec![i.clone()]),
            Expr::This => Ok(scope.this.to_vec()),
            Expr::Index => Ok(scope
                .index
                .map(|i| vec![Item::Integer(i as i64)])
                .unwrap_or_default()),
            Expr::Total => Ok(scope.total.map(<[_]>::to_vec).unwrap_or_default()),
            Expr::Var(name) => self.variable(name),
            Expr::Member(base, name) => match base {
                Some(b) => {
                    let input = self.eval(b, scope)?;
                    members(&input, name, false)
                }
                None => members(scope.this, name, true),
            },
            Expr::Call(base, call) => match base {
                Some(b) => {
                    let input = self.eval(b, scope)?;
                    self.call(call, &input, scope)
                }
                None => self.call(call, scope.this, scope),
            },
            Expr::Indexer(b, i) => {
                let input = self.eval(b, scope)?;
                let idx = self.eval(i, scope)?;
                match single(&idx, "indexer")?.and_then(Item::to_system) {
                    None => Ok(Vec::new()),
                    Some(Item::Integer(n)) => Ok(usize::try_from(n)
                        .ok()
                        .and_then(|n| input.into_iter().nth(n))
                        .into_iter()
                        .collect()),
                    Some(_) => Err(Error::execution("index must be an Integer")),
                }
            }
            Expr::Neg(x) => {
                let v = self.eval(x, scope)?;
                let Some(i) = single(&v, "unary minus")? else {
                    return Ok(Vec::new());
                };
                Ok(vec![match i.to_system() {
                    Some(Item::Integer(n)) => Item::Integer(
                        n.checked_neg()
                            .ok_or_else(|| Error::execution("integer overflow"))?,
                    ),
                    Some(Item::Decimal(d)) => Item::Decimal(negate(d)),
                    Some(Item::Quantity(q)) => Item::Quantity(Quantity {
                        value: negate(q.value),
                        unit: q.unit,
                    }),
                    _ => {
                        return Err(Error::execution(format!("cannot negate {}", i.type_name())));
                    }
                }])
            }
            Expr::Binary(op, l, r) => self.binary(*op, l, r, scope),
            Expr::Is(x, ts) => {
                let v = self.eval(x, scope)?;
                Ok(single(&v, "'is'")?
                    .map(|i| Item::Boolean(is_type(i, ts)))
                    .into_iter()
                    .collect())
            }
            Expr::As(x, ts) => {
                // Lenient: filters like ofType(), as the R4 search parameters need
                // (`(Observation.component.value as Quantity)`).
                let v = self.eval(x, scope)?;
                Ok(v.into_iter().filter(|i| is_type(i, ts)).collect())
            }
        }
    }

    fn variable(&self, name: &str) -> Result<Coll<'a>, Error> {
        let s = |v: &'static str| Ok(vec![Item::String(Cow::Borrowed(v))]);
        if let Some(v) = self.ctx.variables.get(name) {
            return Ok(v.clone());
        }
        match name {
            "context" => Ok(self.ctx.focus.clone()),
            "resource" => Ok(self.ctx.resource.iter().cloned().collect()),
            "rootResource" => Ok(self
                .ctx
                .root_resource
                .as_ref()
                .or(self.ctx.resource.as_ref())
                .into_iter()
                .cloned()
                .collect()),
            "ucum" => s("http://unitsofmeasure.org"),
            "sct" => s("http://snomed.info/sct"),
            "loinc" => s("http://loinc.org"),
            _ => {
                if let Some(vs) = name.strip_prefix("vs-") {
                    return Ok(vec![Item::String(Cow::Owned(format!(
                        "http://hl7.org/fhir/ValueSet/{vs}"
                    )))]);
                }
                if let Some(ext) = name.strip_prefix("ext-") {
                    return Ok(vec![Item::String(Cow::Owned(format!(
                        "http://hl7.org/fhir/StructureDefinition/{ext}"
                    )))]);
                }
                Err(Error::execution(format!("unknown variable %{name}")))
            }
        }
    }

    fn binary(
        &self,
        op: BinOp,
        l: &Expr,
        r: &Expr,
        scope: &Scope<'_, 'a>,
    ) -> Result<Coll<'a>, Error> {
        let boolean = |b: Option<bool>| Ok(b.map(Item::Boolean).into_iter().collect());
        match op {
            BinOp::And => {
                let a = to_bool(&self.eval(l, scope)?, "and")?;
                if a == Some(false) {
                    return boolean(Some(false));
                }
                let b = to_bool(&self.eval(r, scope)?, "and")?;
                boolean(match (a, b) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                })
            }
            BinOp::Or => {
                let a = to_bool(&self.eval(l, scope)?, "or")?;
                if a == Some(true) {
                    return boolean(Some(true));
                }
                let b = to_bool(&self.eval(r, scope)?, "or")?;
                boolean(match (a, b) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                })
            }
            BinOp::Implies => {
                let a = to_bool(&self.eval(l, scope)?, "implies")?;
                if a == Some(false) {
                    return boolean(Some(true));
                }
                let b = to_bool(&self.eval(r, scope)?, "implies")?;
                boolean(match (a, b) {
                    (_, Some(true)) => Some(true),
                    (Some(true), Some(false)) => Some(false),
                    _ => None,
                })
            }
            BinOp::Xor => {
                let a = to_bool(&self.eval(l, scope)?, "xor")?;
                let b = to_bool(&self.eval(r, scope)?, "xor")?;
                boolean(match (a, b) {
                    (Some(x), Some(y)) => Some(x != y),
                    _ => None,
                })
            }
            _ => {
                let a = self.eval(l, scope)?;
                let b = self.eval(r, scope)?;
                self.binary_values(op, a, b)
            }
        }
    }

    fn binary_values(&self, op: BinOp, a: Coll<'a>, b: Coll<'a>) -> Result<Coll<'a>, Error> {
        let boolean = |b: Option<bool>| Ok(b.map(Item::Boolean).into_iter().collect());
        match op {
            BinOp::Union => {
                let mut out = Vec::with_capacity(a.len() + b.len());
                union_into(&mut out, a);
                union_into(&mut out, b);
                Ok(out)
            }
            BinOp::Eq => boolean(compare::collections_equal(&a, &b)),
            BinOp::Ne => boolean(compare::collections_equal(&a, &b).map(|x| !x)),
            BinOp::Equiv => boolean(Some(compare::collections_equivalent(&a, &b))),
            BinOp::NotEquiv => boolean(Some(!compare::collections_equivalent(&a, &b))),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let (Some(x), Some(y)) = (single(&a, "comparison")?, single(&b, "comparison")?)
                else {
                    return Ok(Vec::new());
                };
                let o = compare::order(x, y)?;
                boolean(o.map(|o| match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Le => o != Ordering::Greater,
                    BinOp::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                }))
            }
            BinOp::In | BinOp::Contains => {
                let (elem, coll) = if op == BinOp::In { (&a, &b) } else { (&b, &a) };
                let Some(x) = single(elem, "membership")? else {
                    return Ok(Vec::new());
                };
                boolean(Some(
                    coll.iter().any(|c| compare::equals(x, c) == Some(true)),
                ))
            }
            BinOp::Concat => {
                let s = |c: &Coll<'a>| -> Result<String, Error> {
                    match single(c, "&")? {
                        None => Ok(String::new()),
                        Some(i) => match i.to_system() {
                            Some(Item::String(s)) => Ok(s.into_owned()),
                            _ => Err(Error::execution("'&' requires strings")),
                        },
                    }
                };
                let mut x = s(&a)?;
                x.push_str(&s(&b)?);
                Ok(vec![Item::String(Cow::Owned(x))])
            }
            _ => {
                let (Some(x), Some(y)) = (single(&a, "arithmetic")?, single(&b, "arithmetic")?)
                else {
                    return Ok(Vec::new());
                };
                Ok(arith(op, x, y)?.into_iter().collect())
            }
        }
    }
}

/// Negation that never yields a negative zero.
fn negate(d: Decimal) -> Decimal {
    if d.is_zero() { d.abs() } else { -d }
}

fn members<'a>(input: &[Item<'a>], name: &Name, term: bool) -> Result<Coll<'a>, Error> {
    let mut out = Vec::new();
    for item in input {
        match item {
            Item::Node(n) => {
                if term
                    && name
                        .name
                        .as_bytes()
                        .first()
                        .is_some_and(u8::is_ascii_uppercase)
                    && model::fhir_type_is(n.ty, n.def, &name.name)
                {
                    out.push(item.clone());
                    continue;
                }
                model::navigate(n, name, &mut out)?;
            }
            Item::Type(t) => match name.name.as_str() {
                "namespace" => out.push(Item::String(Cow::Borrowed(t.namespace))),
                "name" => out.push(Item::String(Cow::Owned(t.name.clone()))),
                _ => {}
            },
            _ => {}
        }
    }
    Ok(out)
}

fn dec(i: &Item<'_>) -> Option<Decimal> {
    match i {
        Item::Integer(n) => Some(Decimal::from(*n)),
        Item::Decimal(d) => Some(*d),
        _ => None,
    }
}

fn unit_product(a: &str, b: &str, divide: bool) -> String {
    let a = ucum::ucum_code(a);
    let b = ucum::ucum_code(b);
    let wrap = |s: &str| {
        if s.contains(['.', '/']) {
            format!("({s})")
        } else {
            s.to_string()
        }
    };
    match (a, b, divide) {
        (a, "1", _) => a.to_string(),
        ("1", b, false) => b.to_string(),
        ("1", b, true) => format!("/{}", wrap(b)),
        (a, b, false) => format!("{}.{}", wrap(a), wrap(b)),
        (a, b, true) => format!("{}/{}", wrap(a), wrap(b)),
    }
}

/// Binary arithmetic on two single items; `Ok(None)` is an empty result.
fn arith<'a>(op: BinOp, a: &Item<'a>, b: &Item<'a>) -> Result<Option<Item<'a>>, Error> {
    let bad = || {
        Error::execution(format!(
            "operator {op:?} cannot be applied to {} and {}",
            a.type_name(),
            b.type_name()
        ))
    };
    let x = a.to_system().ok_or_else(bad)?;
    let y = b.to_system().ok_or_else(bad)?;
    use Item::*;
    Ok(match (op, &x, &y) {
        (BinOp::Add, Integer(p), Integer(q)) => p.checked_add(*q).map(Integer),
        (BinOp::Sub, Integer(p), Integer(q)) => p.checked_sub(*q).map(Integer),
        (BinOp::Mul, Integer(p), Integer(q)) => p.checked_mul(*q).map(Integer),
        (BinOp::Add, String(p), String(q)) => Some(String(Cow::Owned(format!("{p}{q}")))),
        (BinOp::Add | BinOp::Sub, Date(_) | DateTime(_) | Time(_), Quantity(q)) => {
            let amount = q
                .value
                .trunc()
                .to_i64()
                .ok_or_else(|| Error::execution("duration out of range"))?;
            let amount = if op == BinOp::Sub { -amount } else { amount };
            let unit = CalendarUnit::for_arithmetic(&q.unit).ok_or_else(|| {
                Error::execution(format!(
                    "'{}' is not a calendar duration usable with dates",
                    q.unit
                ))
            })?;
            match &x {
                Date(d) => temporal::add_to_date(*d, amount, unit).map(Date),
                DateTime(d) => d.add(amount, unit).map(DateTime),
                Time(t) => temporal::add_to_time(*t, amount, unit).map(Time),
                _ => None,
            }
        }
        (BinOp::Add | BinOp::Sub, Quantity(p), Quantity(q)) => {
            let Some(qv) = ucum::convert(q.value, &q.unit, &p.unit) else {
                return Ok(None);
            };
            let v = if op == BinOp::Add {
                p.value.checked_add(qv)
            } else {
                p.value.checked_sub(qv)
            };
            v.map(|value| {
                Quantity(crate::value::Quantity {
                    value,
                    unit: p.unit.clone(),
                })
            })
        }
        (BinOp::Mul, Quantity(p), Quantity(q)) => p.value.checked_mul(q.value).map(|value| {
            Quantity(crate::value::Quantity {
                value,
                unit: unit_product(&p.unit, &q.unit, false),
            })
        }),
        (BinOp::Div, Quantity(p), Quantity(q)) => {
            if q.value.is_zero() {
                return Ok(None);
            }
            p.value.checked_div(q.value).map(|value| {
                Quantity(crate::value::Quantity {
                    value,
                    unit: unit_product(&p.unit, &q.unit, true),
                })
            })
        }
        (BinOp::Mul, Quantity(p), n @ (Integer(_) | Decimal(_)))
        | (BinOp::Mul, n @ (Integer(_) | Decimal(_)), Quantity(p)) => {
            let n = dec(n).ok_or_else(bad)?;
            p.value.checked_mul(n).map(|value| {
                Quantity(crate::value::Quantity {
                    value,
                    unit: p.unit.clone(),
                })
            })
        }
        (BinOp::Div, Quantity(p), n @ (Integer(_) | Decimal(_))) => {
            let n = dec(n).ok_or_else(bad)?;
            if n.is_zero() {
                return Ok(None);
            }
            p.value.checked_div(n).map(|value| {
                Quantity(crate::value::Quantity {
                    value,
                    unit: p.unit.clone(),
                })
            })
        }
        (BinOp::IntDiv, Integer(p), Integer(q)) => {
            if *q == 0 {
                None
            } else {
                p.checked_div(*q).map(Integer)
            }
        }
        (BinOp::Mod, Integer(p), Integer(q)) => {
            if *q == 0 {
                None
            } else {
                p.checked_rem(*q).map(Integer)
            }
        }
        (_, Integer(_) | Decimal(_), Integer(_) | Decimal(_)) => {
            let (p, q) = (dec(&x).ok_or_else(bad)?, dec(&y).ok_or_else(bad)?);
            match op {
                BinOp::Add => p.checked_add(q).map(Decimal),
                BinOp::Sub => p.checked_sub(q).map(Decimal),
                BinOp::Mul => p.checked_mul(q).map(Decimal),
                BinOp::Div => {
                    if q.is_zero() {
                        None
                    } else {
                        p.checked_div(q).map(|r| Decimal(r.normalize()))
                    }
                }
                BinOp::IntDiv => {
                    if q.is_zero() {
                        None
                    } else {
                        p.checked_div(q)
                            .and_then(|r| r.trunc().to_i64())
                            .map(Integer)
                    }
                }
                BinOp::Mod => {
                    if q.is_zero() {
                        None
                    } else {
                        p.checked_rem(q).map(Decimal)
                    }
                }
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    })
}
