//! FHIRPath's strict mode: a static check of a compiled expression against the type of its
//! input (a resource type such as `Observation`), reporting the semantic errors the
//! specification lets an engine find before evaluation.
//!
//! Types follow the FHIR R4 element model through [`crate::types`] (the inference flint-cql's
//! type checker uses too). The check is conservative: a type it cannot know is
//! [`Ty::Any`], which has every element, and collections are typed by their items
//! (cardinality is not checked). It reports:
//!
//! * a path to an element the FHIR type does not have (`(Observation.value as Period).unit`:
//!   Period has no `unit`; on a choice, an element none of its types has);
//! * a path whose first name is neither the input's type nor one of its elements;
//! * a criterion of known non-Boolean type: of `iif`, `where`, `all`, `exists(criteria)`
//!   (outside strict mode a single non-Boolean item counts as true there). The operands of
//!   `and`, `or`, `xor`, `implies` and `not()` are not checked: the HL7 suite expects
//!   `(1).not()` to be valid.
//!
//! Each error is [`ErrorKind::Semantic`](crate::ErrorKind::Semantic) and names the byte
//! offset of the offending name in the expression text.

use crate::error::Error;
use crate::functions::Func;
use crate::parser::{BinOp, Call, Expr, SysType, TypeSpec};
use crate::types::{Ty, choice, fhir_member, fhir_named};
use crate::value::Item;

/// The checker's state: the type of `$this` in each enclosing scope (the input's first).
struct Checker {
    this: Vec<Ty>,
}

/// Checks `root_expr` for an input of FHIR type `root_type` (`None`: not known), returning
/// the expression's item type or the first semantic error.
pub(crate) fn check(root_expr: &Expr, root_type: Option<&str>) -> Result<Ty, Error> {
    let root = match root_type {
        Some(t) => match fhir_named(t) {
            Ty::Any => {
                return Err(Error::semantic(format!(
                    "strict mode: unknown input type {t}"
                )));
            }
            ty => ty,
        },
        None => Ty::Any,
    };
    let mut c = Checker { this: vec![root] };
    c.ty(root_expr)
}

/// The item type of a collection type (cardinality is not checked).
fn item(t: Ty) -> Ty {
    match t {
        Ty::List(x) => item(*x),
        t => t,
    }
}

/// Whether `t` is definitely not a Boolean (a known type other than Boolean).
fn not_boolean(t: &Ty) -> bool {
    match t {
        Ty::Any | Ty::Null | Ty::Bool => false,
        Ty::Choice(ts) => ts.iter().all(not_boolean),
        Ty::List(x) => not_boolean(x),
        _ => true,
    }
}

/// The type a type specifier denotes.
fn spec_ty(ts: &TypeSpec) -> Ty {
    let fhir = ts.fhir.as_deref().map(fhir_named);
    let system = ts.system.map(|s| match s {
        SysType::Boolean => Ty::Bool,
        SysType::Integer => Ty::Int,
        SysType::Decimal => Ty::Dec,
        SysType::String => Ty::Str,
        SysType::Date => Ty::Date,
        SysType::DateTime => Ty::DateTime,
        SysType::Time => Ty::Time,
        SysType::Quantity => Ty::Quantity,
    });
    match (fhir, system) {
        (Some(f), Some(s)) => choice(vec![f, s]),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => Ty::Any,
    }
}

/// The common type of two branches (`Any` when they differ).
fn unify(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Null, t) | (t, Ty::Null) => t,
        (a, b) if a == b => a,
        _ => Ty::Any,
    }
}

impl Checker {
    fn this(&self) -> Ty {
        self.this.last().cloned().unwrap_or(Ty::Any)
    }

    /// `f` with `$this` of type `t`.
    fn with_this<T>(&mut self, t: Ty, f: impl FnOnce(&mut Self) -> T) -> T {
        self.this.push(t);
        let r = f(self);
        self.this.pop();
        r
    }

    fn ty(&mut self, e: &Expr) -> Result<Ty, Error> {
        Ok(match e {
            Expr::Empty => Ty::Null,
            Expr::Literal(i) => match i {
                Item::Boolean(_) => Ty::Bool,
                Item::Integer(_) => Ty::Int,
                Item::Decimal(_) => Ty::Dec,
                Item::String(_) => Ty::Str,
                Item::Date(_) => Ty::Date,
                Item::DateTime(_) => Ty::DateTime,
                Item::Time(_) => Ty::Time,
                Item::Quantity(_) => Ty::Quantity,
                _ => Ty::Any,
            },
            Expr::This => self.this(),
            Expr::Index => Ty::Int,
            Expr::Total | Expr::Var(_) => Ty::Any,
            Expr::Member(None, n) => {
                let this = self.this();
                // `Observation.value`, `Resource.id`: the item's type (or a base type of it)
                // names the item itself.
                if let Ty::Fhir(t) = &this
                    && (*t == n.name || flint_model::defs::definitions().is_subtype(t, &n.name))
                {
                    return Ok(this);
                }
                if n.name.starts_with(|c: char| c.is_ascii_uppercase())
                    && matches!(fhir_named(&n.name), Ty::Fhir(_))
                    && matches!(this, Ty::Any)
                {
                    return Ok(fhir_named(&n.name));
                }
                self.member(&this, &n.name, n.pos)?
            }
            Expr::Member(Some(b), n) => {
                let t = self.ty(b)?;
                self.member(&t, &n.name, n.pos)?
            }
            Expr::Call(base, call) => {
                let bt = match base {
                    Some(b) => Some(self.ty(b)?),
                    None => None,
                };
                self.call(bt, call)?
            }
            Expr::Indexer(a, i) => {
                self.ty(i)?;
                item(self.ty(a)?)
            }
            Expr::Neg(x) => self.ty(x)?,
            Expr::Binary(op, a, b) => {
                let (at, bt) = (self.ty(a)?, self.ty(b)?);
                match op {
                    BinOp::And
                    | BinOp::Or
                    | BinOp::Xor
                    | BinOp::Implies
                    | BinOp::Lt
                    | BinOp::Le
                    | BinOp::Gt
                    | BinOp::Ge
                    | BinOp::Eq
                    | BinOp::Ne
                    | BinOp::Equiv
                    | BinOp::NotEquiv
                    | BinOp::In
                    | BinOp::Contains => Ty::Bool,
                    BinOp::Concat => Ty::Str,
                    BinOp::Union => unify(item(at), item(bt)),
                    BinOp::Div => Ty::Any,
                    _ => unify(item(at), item(bt)),
                }
            }
            Expr::Is(x, _) => {
                self.ty(x)?;
                Ty::Bool
            }
            Expr::As(x, ts) => {
                self.ty(x)?;
                spec_ty(ts)
            }
        })
    }

    /// Element `n` (at offset `pos`) of an item of type `t`.
    fn member(&mut self, t: &Ty, n: &str, pos: usize) -> Result<Ty, Error> {
        Ok(match t {
            Ty::List(x) => self.member(x, n, pos)?,
            Ty::Fhir(ty) => match fhir_member(ty, n) {
                Some(t) => item(t),
                None => {
                    return Err(Error::semantic_at(
                        pos,
                        format!("strict mode: FHIR type {ty} has no element '{n}'"),
                    ));
                }
            },
            Ty::Choice(ts) => {
                let mut found = Vec::new();
                for t in ts {
                    if let Ok(x) = self.member(t, n, pos) {
                        found.push(x);
                    }
                }
                if found.is_empty() {
                    return Err(Error::semantic_at(
                        pos,
                        format!("strict mode: none of the types {t} has an element '{n}'"),
                    ));
                }
                choice(found)
            }
            // FHIR primitives (typed as System values) have `id` and `extension`, Quantities
            // their parts.
            Ty::Bool
            | Ty::Int
            | Ty::Long
            | Ty::Dec
            | Ty::Str
            | Ty::Date
            | Ty::DateTime
            | Ty::Time
                if !matches!(n, "id" | "extension" | "value") =>
            {
                return Err(Error::semantic_at(
                    pos,
                    format!("strict mode: a {t} has no element '{n}'"),
                ));
            }
            Ty::Quantity
                if !matches!(
                    n,
                    "id" | "extension" | "value" | "unit" | "code" | "system" | "comparator"
                ) =>
            {
                return Err(Error::semantic_at(
                    pos,
                    format!("strict mode: a Quantity has no element '{n}'"),
                ));
            }
            _ => Ty::Any,
        })
    }

    /// A function call on a base of type `bt` (`None`: a call without a base, on `$this`).
    fn call(&mut self, bt: Option<Ty>, call: &Call) -> Result<Ty, Error> {
        let input = item(bt.unwrap_or_else(|| self.this()));
        let condition = |t: &Ty, what: &str| -> Result<(), Error> {
            if not_boolean(t) {
                return Err(Error::semantic_at(
                    call.pos,
                    format!(
                        "strict mode: the {what} of {}() must be a Boolean, not {t}",
                        call.name
                    ),
                ));
            }
            Ok(())
        };
        Ok(match call.func {
            // Criteria and projections are evaluated on each input item.
            Func::Where => {
                let c = self.with_this(input.clone(), |c| c.ty(&call.args[0]))?;
                condition(&c, "criteria")?;
                input
            }
            Func::All | Func::Exists if !call.args.is_empty() => {
                let c = self.with_this(input, |c| c.ty(&call.args[0]))?;
                condition(&c, "criteria")?;
                Ty::Bool
            }
            Func::Select => item(self.with_this(input, |c| c.ty(&call.args[0]))?),
            Func::Repeat | Func::Aggregate | Func::Sort => {
                for a in &call.args {
                    self.with_this(input.clone(), |c| c.ty(a))?;
                }
                match call.func {
                    Func::Sort => input,
                    _ => Ty::Any,
                }
            }
            Func::Iif => {
                // The criterion and branches see the enclosing `$this`.
                let c = self.ty(&call.args[0])?;
                condition(&c, "criterion")?;
                let a = self.ty(&call.args[1])?;
                let b = match call.args.get(2) {
                    Some(x) => self.ty(x)?,
                    None => Ty::Null,
                };
                unify(item(a), item(b))
            }
            Func::OfType | Func::As => call.ty.as_ref().map_or(Ty::Any, spec_ty),
            Func::First
            | Func::Last
            | Func::Tail
            | Func::Single
            | Func::Distinct
            | Func::Skip
            | Func::Take
            | Func::Intersect
            | Func::Exclude
            | Func::Trace => {
                self.args_unknown(call)?;
                input
            }
            Func::Empty
            | Func::Exists
            | Func::All
            | Func::AllTrue
            | Func::AnyTrue
            | Func::AllFalse
            | Func::AnyFalse
            | Func::SubsetOf
            | Func::SupersetOf
            | Func::IsDistinct
            | Func::Is
            | Func::HasValue
            | Func::StartsWith
            | Func::EndsWith
            | Func::Contains
            | Func::Matches
            | Func::MatchesFull
            | Func::Comparable
            | Func::HasExtension
            | Func::ConformsTo
            | Func::HtmlChecks
            | Func::ConvertsToBoolean
            | Func::ConvertsToInteger
            | Func::ConvertsToDecimal
            | Func::ConvertsToDate
            | Func::ConvertsToDateTime
            | Func::ConvertsToTime
            | Func::ConvertsToQuantity
            | Func::ConvertsToString
            | Func::ToBoolean => {
                self.args_unknown(call)?;
                Ty::Bool
            }
            Func::Count | Func::IndexOf | Func::LastIndexOf | Func::Length | Func::ToInteger => {
                self.args_unknown(call)?;
                Ty::Int
            }
            Func::Substring
            | Func::Upper
            | Func::Lower
            | Func::Replace
            | Func::ReplaceMatches
            | Func::Trim
            | Func::Join
            | Func::Encode
            | Func::Decode
            | Func::Escape
            | Func::Unescape
            | Func::ToString
            | Func::Split
            | Func::ToChars => {
                self.args_unknown(call)?;
                Ty::Str
            }
            Func::ToDecimal => Ty::Dec,
            Func::ToDate | Func::Today => Ty::Date,
            Func::ToDateTime | Func::Now => Ty::DateTime,
            Func::ToTime | Func::TimeOfDay => Ty::Time,
            Func::ToQuantity => {
                self.args_unknown(call)?;
                Ty::Quantity
            }
            Func::Extension => {
                self.args_unknown(call)?;
                Ty::Fhir("Extension".into())
            }
            _ => {
                self.args_unknown(call)?;
                Ty::Any
            }
        })
    }

    /// Checks the arguments of a function that does not evaluate them on its input items:
    /// their focus is not known here, so only what they say by themselves is checked.
    fn args_unknown(&mut self, call: &Call) -> Result<(), Error> {
        for a in &call.args {
            self.with_this(Ty::Any, |c| c.ty(a))?;
        }
        Ok(())
    }
}
