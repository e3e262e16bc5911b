//! Parser from tokens to the expression tree the evaluator runs, following the FHIRPath
//! grammar and operator precedence (from loosest: `implies`; `or`/`xor`; `and`;
//! `in`/`contains`; equality; comparison; `|`; `is`/`as`; additive; multiplicative; unary sign;
//! `.` invocation and `[]` indexing). Function names, argument counts and type specifiers are
//! resolved here, and literal regular expressions are compiled once.

use crate::error::Error;
use crate::functions::{Func, lookup};
use crate::lexer::{Tok, Token, tokenize};
use crate::model::Name;
use crate::temporal::CalendarUnit;
use crate::value::{Item, Quantity};
use flint_model::defs::definitions;
use regex::Regex;
use rust_decimal::Decimal;
use std::borrow::Cow;
use std::str::FromStr;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// A system type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SysType {
    Boolean,
    Integer,
    Decimal,
    String,
    Date,
    DateTime,
    Time,
    Quantity,
}

impl SysType {
    fn from_name(s: &str) -> Option<SysType> {
        Some(match s {
            "Boolean" => SysType::Boolean,
            "Integer" => SysType::Integer,
            "Decimal" => SysType::Decimal,
            "String" => SysType::String,
            "Date" => SysType::Date,
            "DateTime" => SysType::DateTime,
            "Time" => SysType::Time,
            "Quantity" => SysType::Quantity,
            _ => return None,
        })
    }
}

/// A resolved type specifier.
#[derive(Debug, Clone)]
pub(crate) struct TypeSpec {
    /// FHIR type name to match, if the specifier can denote a FHIR type.
    pub(crate) fhir: Option<String>,
    /// System type to match, if the specifier can denote a system type.
    pub(crate) system: Option<SysType>,
}

/// A function call with its resolved extras.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) name: &'static str,
    pub(crate) func: Func,
    pub(crate) args: Vec<Expr>,
    /// The type argument of `is`/`as`/`ofType`.
    pub(crate) ty: Option<TypeSpec>,
    /// A precompiled literal regex (`matches`, `matchesFull`, `replaceMatches`).
    pub(crate) regex: Option<Regex>,
    /// For `sort`: whether each key sorts descending.
    pub(crate) descending: Vec<bool>,
    /// Byte offset of the function name in the expression text.
    pub(crate) pos: usize,
}

/// An expression tree node.
#[derive(Debug)]
pub(crate) enum Expr {
    Empty,
    Literal(Item<'static>),
    This,
    Index,
    Total,
    Var(String),
    Member(Option<Box<Expr>>, Name),
    Call(Option<Box<Expr>>, Box<Call>),
    Indexer(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Is(Box<Expr>, TypeSpec),
    As(Box<Expr>, TypeSpec),
}

/// Parses a whole expression.
pub(crate) fn parse(src: &str) -> Result<Expr, Error> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.expr(0)?;
    match &p.peek().tok {
        Tok::Eof => Ok(e),
        t => Err(Error::syntax(p.peek().pos, format!("unexpected {t:?}"))),
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

/// Maximum nesting of sub-expressions (guards the recursive parser's stack).
const MAX_DEPTH: usize = 200;

const EOF: Token = Token {
    tok: Tok::Eof,
    pos: 0,
};

fn keyword_op(name: &str) -> Option<(BinOp, u8)> {
    Some(match name {
        "implies" => (BinOp::Implies, 1),
        "or" => (BinOp::Or, 2),
        "xor" => (BinOp::Xor, 2),
        "and" => (BinOp::And, 3),
        "in" => (BinOp::In, 4),
        "contains" => (BinOp::Contains, 4),
        "div" => (BinOp::IntDiv, 10),
        "mod" => (BinOp::Mod, 10),
        _ => return None,
    })
}

const PREC_TYPE: u8 = 8;

impl Parser {
    fn peek(&self) -> &Token {
        self.toks.get(self.i).unwrap_or(&EOF)
    }

    fn peek_at(&self, n: usize) -> &Token {
        self.toks.get(self.i + n).unwrap_or(&EOF)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        self.i += 1;
        t
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(&self.peek().tok, Tok::Sym(x) if *x == s)
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), Error> {
        if self.is_sym(s) {
            self.i += 1;
            Ok(())
        } else {
            Err(Error::syntax(
                self.peek().pos,
                format!("expected '{s}', found {:?}", self.peek().tok),
            ))
        }
    }

    /// The binary operator at the cursor: (operator or None for is/as, precedence, is `as`).
    fn peek_op(&self) -> Option<(Option<BinOp>, u8, bool)> {
        match &self.peek().tok {
            Tok::Sym(s) => {
                let (op, p) = match *s {
                    "*" => (BinOp::Mul, 10),
                    "/" => (BinOp::Div, 10),
                    "+" => (BinOp::Add, 9),
                    "-" => (BinOp::Sub, 9),
                    "&" => (BinOp::Concat, 9),
                    "|" => (BinOp::Union, 7),
                    "<" => (BinOp::Lt, 6),
                    "<=" => (BinOp::Le, 6),
                    ">" => (BinOp::Gt, 6),
                    ">=" => (BinOp::Ge, 6),
                    "=" => (BinOp::Eq, 5),
                    "!=" => (BinOp::Ne, 5),
                    "~" => (BinOp::Equiv, 5),
                    "!~" => (BinOp::NotEquiv, 5),
                    _ => return None,
                };
                Some((Some(op), p, false))
            }
            Tok::Ident {
                name,
                quoted: false,
            } => match name.as_str() {
                "is" => Some((None, PREC_TYPE, false)),
                "as" => Some((None, PREC_TYPE, true)),
                n => keyword_op(n).map(|(op, p)| (Some(op), p, false)),
            },
            _ => None,
        }
    }

    fn expr(&mut self, min: u8) -> Result<Expr, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::syntax(
                self.peek().pos,
                "expression nested too deeply",
            ));
        }
        let r = self.expr_inner(min);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, min: u8) -> Result<Expr, Error> {
        let mut lhs = self.unary()?;
        while let Some((op, prec, is_as)) = self.peek_op() {
            if prec < min {
                break;
            }
            self.i += 1;
            match op {
                None => {
                    let ts = self.type_spec()?;
                    lhs = if is_as {
                        Expr::As(Box::new(lhs), ts)
                    } else {
                        Expr::Is(Box::new(lhs), ts)
                    };
                }
                Some(op) => {
                    let rhs = self.expr(prec + 1)?;
                    lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
                }
            }
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        if self.is_sym("-") {
            self.i += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(Error::syntax(
                    self.peek().pos,
                    "expression nested too deeply",
                ));
            }
            let e = self.unary();
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(e?)));
        }
        if self.is_sym("+") {
            self.i += 1;
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, Error> {
        let mut e = self.term()?;
        let start_depth = self.depth;
        let r = self.postfix_steps(&mut e);
        self.depth = start_depth;
        r.map(|()| e)
    }

    /// Applies `.invocation` and `[index]` steps; each counts as one level of nesting.
    fn postfix_steps(&mut self, e: &mut Expr) -> Result<(), Error> {
        loop {
            if self.is_sym(".") || self.is_sym("[") {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(Error::syntax(
                        self.peek().pos,
                        "expression nested too deeply",
                    ));
                }
            }
            let base = std::mem::replace(e, Expr::Empty);
            if self.is_sym(".") {
                self.i += 1;
                *e = self.invocation(Some(base))?;
            } else if self.is_sym("[") {
                self.i += 1;
                let idx = self.expr(0)?;
                self.expect_sym("]")?;
                *e = Expr::Indexer(Box::new(base), Box::new(idx));
            } else {
                *e = base;
                return Ok(());
            }
        }
    }

    fn invocation(&mut self, base: Option<Expr>) -> Result<Expr, Error> {
        let t = self.bump();
        match t.tok {
            Tok::Ident { name, .. } => {
                if self.is_sym("(") {
                    self.i += 1;
                    let mut args = Vec::new();
                    if !self.is_sym(")") {
                        loop {
                            args.push(self.expr(0)?);
                            if self.is_sym(",") {
                                self.i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect_sym(")")?;
                    make_call(base, &name, args, t.pos)
                } else {
                    Ok(Expr::Member(base.map(Box::new), Name::at(&name, t.pos)))
                }
            }
            Tok::Special(s) if base.is_some() => special(&s, t.pos),
            other => Err(Error::syntax(
                t.pos,
                format!("expected a name after '.', found {other:?}"),
            )),
        }
    }

    fn term(&mut self) -> Result<Expr, Error> {
        let pos = self.peek().pos;
        match self.peek().tok.clone() {
            Tok::Number(n) => {
                self.i += 1;
                // A quantity: number followed by a unit string or a calendar keyword.
                match &self.peek().tok {
                    Tok::Str(unit) => {
                        let unit = unit.clone();
                        self.i += 1;
                        let value = Decimal::from_str(&n)
                            .map_err(|_| Error::syntax(pos, "invalid number"))?;
                        return Ok(Expr::Literal(Item::Quantity(Quantity { value, unit })));
                    }
                    Tok::Ident {
                        name,
                        quoted: false,
                    } if CalendarUnit::from_keyword(name).is_some() => {
                        let unit = name.clone();
                        self.i += 1;
                        let value = Decimal::from_str(&n)
                            .map_err(|_| Error::syntax(pos, "invalid number"))?;
                        return Ok(Expr::Literal(Item::Quantity(Quantity { value, unit })));
                    }
                    _ => {}
                }
                if n.contains('.') {
                    Decimal::from_str(&n)
                        .map(|d| Expr::Literal(Item::Decimal(d)))
                        .map_err(|_| Error::syntax(pos, "invalid decimal"))
                } else {
                    n.parse::<i64>()
                        .map(|i| Expr::Literal(Item::Integer(i)))
                        .map_err(|_| Error::syntax(pos, "integer literal out of range"))
                }
            }
            Tok::Str(s) => {
                self.i += 1;
                Ok(Expr::Literal(Item::String(Cow::Owned(s))))
            }
            Tok::Date(d) => {
                self.i += 1;
                Ok(Expr::Literal(Item::Date(d)))
            }
            Tok::DateTime(d) => {
                self.i += 1;
                Ok(Expr::Literal(Item::DateTime(d)))
            }
            Tok::Time(t) => {
                self.i += 1;
                Ok(Expr::Literal(Item::Time(t)))
            }
            Tok::Ident {
                name,
                quoted: false,
            } if (name == "true" || name == "false")
                && !matches!(self.peek_at(1).tok, Tok::Sym("(")) =>
            {
                self.i += 1;
                Ok(Expr::Literal(Item::Boolean(name == "true")))
            }
            Tok::Ident { .. } => self.invocation(None),
            Tok::Sym("(") => {
                self.i += 1;
                let e = self.expr(0)?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Sym("{") => {
                self.i += 1;
                self.expect_sym("}")?;
                Ok(Expr::Empty)
            }
            Tok::Var(v) => {
                self.i += 1;
                Ok(Expr::Var(v))
            }
            Tok::Special(s) => {
                self.i += 1;
                special(&s, pos)
            }
            Tok::Eof => Err(Error::syntax(pos, "unexpected end of expression")),
            other => Err(Error::syntax(pos, format!("unexpected {other:?}"))),
        }
    }

    fn type_spec(&mut self) -> Result<TypeSpec, Error> {
        let t = self.bump();
        let Tok::Ident { name: first, .. } = t.tok else {
            return Err(Error::syntax(t.pos, "expected a type name"));
        };
        if self.is_sym(".")
            && let Tok::Ident { name: second, .. } = &self.peek_at(1).tok
        {
            let second = second.clone();
            self.i += 2;
            return resolve_type(Some(&first), &second);
        }
        resolve_type(None, &first)
    }
}

fn special(s: &str, pos: usize) -> Result<Expr, Error> {
    match s {
        "this" => Ok(Expr::This),
        "index" => Ok(Expr::Index),
        "total" => Ok(Expr::Total),
        _ => Err(Error::syntax(pos, format!("unknown special variable ${s}"))),
    }
}

/// Resolves a (possibly namespace-qualified) type name.
pub(crate) fn resolve_type(ns: Option<&str>, name: &str) -> Result<TypeSpec, Error> {
    let defs = definitions();
    let fhir_known = defs.type_def(name).is_some() && !name.contains('.');
    match ns {
        Some("System") => Ok(TypeSpec {
            fhir: None,
            system: SysType::from_name(name),
        }),
        Some("FHIR") => {
            if fhir_known {
                Ok(TypeSpec {
                    fhir: Some(name.to_string()),
                    system: None,
                })
            } else {
                Err(Error::semantic(format!("unknown type FHIR.{name}")))
            }
        }
        Some(other) => Err(Error::semantic(format!("unknown type {other}.{name}"))),
        None => {
            let system = SysType::from_name(name);
            if !fhir_known && system.is_none() {
                return Err(Error::semantic(format!("unknown type {name}")));
            }
            Ok(TypeSpec {
                fhir: fhir_known.then(|| name.to_string()),
                system,
            })
        }
    }
}

/// Reads a type specifier from a parsed argument (`Patient`, `FHIR.Patient`).
fn type_from_expr(e: &Expr) -> Result<TypeSpec, Error> {
    match e {
        Expr::Member(None, n) => resolve_type(None, &n.name),
        Expr::Member(Some(base), n) => match base.as_ref() {
            Expr::Member(None, ns) => resolve_type(Some(&ns.name), &n.name),
            _ => Err(Error::semantic("invalid type specifier")),
        },
        _ => Err(Error::semantic("expected a type specifier")),
    }
}

fn make_call(
    base: Option<Expr>,
    name: &str,
    mut args: Vec<Expr>,
    pos: usize,
) -> Result<Expr, Error> {
    let Some((fname, func, min, max)) = lookup(name) else {
        return Err(Error::semantic(format!(
            "unknown function '{name}' (at offset {pos})"
        )));
    };
    if args.len() < min || args.len() > max {
        return Err(Error::semantic(format!(
            "function '{name}' takes {min}..{max} arguments, {} given",
            args.len()
        )));
    }
    let mut call = Call {
        name: fname,
        func,
        args: Vec::new(),
        ty: None,
        regex: None,
        descending: Vec::new(),
        pos,
    };
    match func {
        Func::Is | Func::As | Func::OfType => {
            let first = args
                .first()
                .ok_or_else(|| Error::semantic(format!("{name} needs a type")))?;
            call.ty = Some(type_from_expr(first)?);
            args.clear();
        }
        Func::Sort => {
            args = args
                .into_iter()
                .map(|a| match a {
                    Expr::Neg(inner) => {
                        call.descending.push(true);
                        *inner
                    }
                    other => {
                        call.descending.push(false);
                        other
                    }
                })
                .collect();
        }
        Func::Matches | Func::MatchesFull | Func::ReplaceMatches => {
            if let Some(Expr::Literal(Item::String(pat))) = args.first() {
                call.regex = Some(crate::functions::compile_regex(
                    pat,
                    func == Func::MatchesFull,
                )?);
            }
        }
        _ => {}
    }
    call.args = args;
    Ok(Expr::Call(base.map(Box::new), Box::new(call)))
}
