//! The CQL parser: libraries and expressions, with CQL operator precedence.

use crate::ast::*;
use crate::error::SyntaxError;
use crate::lexer::{Tok, Token, lex};
use crate::temporal::Tm;
use crate::value::{Code, Value};
use rust_decimal::Decimal;
use std::str::FromStr;

/// Words that never start or name an alias.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "xor",
    "implies",
    "where",
    "return",
    "sort",
    "with",
    "without",
    "such",
    "that",
    "let",
    "aggregate",
    "starting",
    "all",
    "distinct",
    "is",
    "as",
    "in",
    "contains",
    "between",
    "union",
    "intersect",
    "except",
    "then",
    "else",
    "when",
    "end",
    "properly",
    "during",
    "included",
    "includes",
    "before",
    "after",
    "same",
    "meets",
    "overlaps",
    "starts",
    "ends",
    "occurs",
    "within",
    "on",
    "asc",
    "desc",
    "ascending",
    "descending",
    "by",
    "from",
    "to",
    "of",
    "div",
    "mod",
    "not",
    "define",
    "context",
    "parameter",
    "include",
    "using",
    "codesystem",
    "valueset",
    "code",
    "concept",
    "library",
    "private",
    "public",
    "display",
    "version",
    "called",
    "default",
    "per",
    "or",
    "if",
    "case",
    "null",
    "true",
    "false",
    "less",
    "more",
];

const PRECISIONS: &[&str] = &[
    "year",
    "month",
    "week",
    "day",
    "hour",
    "minute",
    "second",
    "millisecond",
    "years",
    "months",
    "weeks",
    "days",
    "hours",
    "minutes",
    "seconds",
    "milliseconds",
];

/// Parses a stand-alone expression.
pub fn parse_expression(src: &str) -> Result<Expr, SyntaxError> {
    parse_expression_with_positions(src).map(|(e, _)| e)
}

/// Parses a stand-alone expression, with the source positions of its names (for
/// [`crate::check::check_expression`]'s messages).
pub fn parse_expression_with_positions(src: &str) -> Result<(Expr, Positions), SyntaxError> {
    let mut p = Parser::new(src)?;
    let e = p.expr()?;
    if p.peek() != &Tok::Eof {
        return Err(p.error("unexpected input after expression"));
    }
    Ok((e, p.positions))
}

/// Parses a library.
pub fn parse_library(src: &str) -> Result<Library, SyntaxError> {
    Parser::new(src)?.library()
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    positions: Positions,
}

/// Deepest nesting the parser accepts (keeps the stack bounded on hostile input).
const MAX_DEPTH: usize = 1000;

type R<T> = Result<T, SyntaxError>;

impl Parser {
    fn new(src: &str) -> R<Parser> {
        Ok(Parser {
            toks: lex(src)?,
            pos: 0,
            depth: 0,
            positions: Positions::default(),
        })
    }

    /// Records that `name` (text of the tree) stands at the token at index `at`.
    fn mark(&mut self, name: &str, at: usize) {
        let t = self.at(at);
        let (line, column) = (t.line, t.column);
        self.positions.record(name, line, column);
    }

    /// Records the name of call `e` at the token at index `at`.
    fn mark_call(&mut self, e: &Expr, at: usize) {
        if let Expr::Call(n, ..) = e {
            self.mark(n, at);
        }
    }

    /// The token at `pos`, clamped to the final `Eof` (the cursor may step past it).
    fn at(&self, pos: usize) -> &Token {
        &self.toks[pos.min(self.toks.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.at(self.pos).tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.at(self.pos + n).tok
    }

    fn error(&self, m: &str) -> SyntaxError {
        let t = self.at(self.pos);
        SyntaxError {
            line: t.line,
            column: t.column,
            message: format!("{m} (at {:?})", t.tok),
        }
    }

    fn next(&mut self) -> Tok {
        let t = self.at(self.pos).tok.clone();
        self.pos += 1;
        t
    }

    /// Counts one more operator of a left-deep chain against the nesting limit (the tree is
    /// as deep as the chain is long).
    /// A left-associative chain of the operators `ops` (symbol or keyword, CQL operator name)
    /// over operands parsed by `next`. Inlined into each level like [`Parser::level`].
    #[inline(always)]
    fn binary(&mut self, ops: &[(&str, &str)], next: fn(&mut Self) -> R<Expr>) -> R<Expr> {
        let mut l = next(self)?;
        loop {
            let Some(op) = ops
                .iter()
                .find(|(t, _)| {
                    matches!(self.peek(), Tok::Sym(s) if s == t)
                        || matches!(self.peek(), Tok::Ident(s) if s == t)
                })
                .map(|(_, op)| *op)
            else {
                return Ok(l);
            };
            let at = self.pos;
            self.next();
            let r = next(self)?;
            self.chain()?;
            l = call(op, vec![l, r]);
            self.mark_call(&l, at);
        }
    }

    /// Runs a level that itself counts as one step of nesting (prefix operators), refusing
    /// input nested deeper than `MAX_DEPTH`; inlined like [`Parser::level`].
    #[inline(always)]
    fn nested_level(&mut self, f: fn(&mut Self) -> R<Expr>) -> R<Expr> {
        let base = self.depth;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        let r = f(self);
        self.depth = base;
        r
    }

    /// Runs one precedence level, restoring the nesting depth its operator chains counted.
    /// Inlined, so that a level costs one stack frame as before (the depth limit assumes it).
    #[inline(always)]
    fn level(&mut self, f: fn(&mut Self) -> R<Expr>) -> R<Expr> {
        let base = self.depth;
        let r = f(self);
        self.depth = base;
        r
    }

    fn chain(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        Ok(())
    }

    fn is_kw(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == k)
    }

    fn is_kw_at(&self, n: usize, k: &str) -> bool {
        matches!(self.peek_at(n), Tok::Ident(s) if s == k)
    }

    fn eat_kw(&mut self, k: &str) -> bool {
        if self.is_kw(k) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, k: &str) -> R<()> {
        if self.eat_kw(k) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{k}'")))
        }
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, s: &str) -> R<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{s}'")))
        }
    }

    fn ident(&mut self) -> R<String> {
        match self.next() {
            Tok::Ident(s) | Tok::Quoted(s) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(self.error("expected an identifier"))
            }
        }
    }

    /// The code system of a code (`"LOINC"`, or `Lib."LOINC"` declared in an included
    /// library): its name and the library alias.
    #[inline(never)]
    fn code_system_ref(&mut self) -> R<(String, Option<String>)> {
        let first = self.ident()?;
        self.mark(&first, self.pos - 1);
        if self.is_sym(".") && matches!(self.peek_at(1), Tok::Ident(_) | Tok::Quoted(_)) {
            self.next();
            let sys = self.ident()?;
            self.mark(&sys, self.pos - 1);
            return Ok((sys, Some(first)));
        }
        Ok((first, None))
    }

    fn string(&mut self) -> R<String> {
        match self.next() {
            Tok::Str(s) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(self.error("expected a string"))
            }
        }
    }

    fn is_alias_start(&self) -> bool {
        match self.peek() {
            Tok::Quoted(_) => true,
            Tok::Ident(s) => !RESERVED.contains(&s.as_str()),
            _ => false,
        }
    }

    // ---- library ----

    fn library(&mut self) -> R<Library> {
        let mut lib = Library::default();
        loop {
            if self.peek() == &Tok::Eof {
                lib.positions = std::mem::take(&mut self.positions);
                return Ok(lib);
            }
            self.eat_kw("private");
            self.eat_kw("public");
            if self.eat_kw("library") {
                let n = self.qualified_name()?;
                let v = self.version()?;
                lib.name = Some((n, v));
            } else if self.eat_kw("using") {
                let n = self.ident()?;
                let v = self.version()?;
                lib.usings.push((n, v));
            } else if self.eat_kw("include") {
                let n = self.qualified_name()?;
                let v = self.version()?;
                let alias = if self.eat_kw("called") {
                    self.ident()?
                } else {
                    n.rsplit('.').next().unwrap_or(&n).to_string()
                };
                lib.includes.push((n, v, alias));
            } else if self.eat_kw("codesystem") {
                let n = self.ident()?;
                self.expect_sym(":")?;
                let id = self.string()?;
                let v = self.version()?;
                lib.codesystems.push((n, id, v));
            } else if self.eat_kw("valueset") {
                let n = self.ident()?;
                self.expect_sym(":")?;
                let id = self.string()?;
                self.version()?;
                if self.eat_kw("codesystems") {
                    self.expect_sym("{")?;
                    while !self.eat_sym("}") {
                        if self.peek() == &Tok::Eof {
                            return Err(self.error("expected '}'"));
                        }
                        self.next();
                    }
                }
                lib.valuesets.push((n, id));
            } else if self.eat_kw("code") {
                let n = self.ident()?;
                self.expect_sym(":")?;
                let c = self.string()?;
                self.expect_kw("from")?;
                let (sys, lib_alias) = self.code_system_ref()?;
                let d = if self.eat_kw("display") {
                    Some(self.string()?)
                } else {
                    None
                };
                lib.codes
                    .push((n, CodeSelector::expr(c, sys, lib_alias, d)));
            } else if self.eat_kw("concept") {
                let n = self.ident()?;
                self.expect_sym(":")?;
                let e = self.concept_body()?;
                lib.concepts.push((n, e));
            } else if self.eat_kw("parameter") {
                let n = self.ident()?;
                let t = if !self.is_kw("default")
                    && !matches!(self.peek(), Tok::Eof)
                    && !self.is_stmt_start()
                {
                    Some(self.type_spec()?)
                } else {
                    None
                };
                let d = if self.eat_kw("default") {
                    Some(self.expr()?)
                } else {
                    None
                };
                lib.parameters.push((n, t, d));
            } else if self.eat_kw("context") {
                let n = self.qualified_name()?;
                lib.contexts.push(n);
            } else if self.eat_kw("define") {
                self.eat_kw("private");
                self.eat_kw("public");
                let fluent = self.eat_kw("fluent");
                if self.eat_kw("function") {
                    let name = self.ident()?;
                    self.mark(&name, self.pos - 1);
                    self.expect_sym("(")?;
                    let mut params = Vec::new();
                    while !self.eat_sym(")") {
                        let pn = self.ident()?;
                        let t = self.type_spec()?;
                        params.push((pn, t));
                        self.eat_sym(",");
                    }
                    if self.eat_kw("returns") {
                        self.type_spec()?;
                    }
                    // `: external` (CQL 1.5) or `external` without the colon.
                    let body = if self.eat_kw("external")
                        || (self.is_sym(":") && self.is_kw_at(1, "external") && {
                            self.pos += 2;
                            true
                        }) {
                        None
                    } else {
                        self.expect_sym(":")?;
                        Some(self.expr()?)
                    };
                    lib.functions.push(FunctionDef {
                        name,
                        params,
                        body,
                        fluent,
                    });
                } else {
                    let n = self.ident()?;
                    self.mark(&n, self.pos - 1);
                    self.expect_sym(":")?;
                    let e = self.expr()?;
                    if let Some(c) = lib.contexts.last() {
                        lib.define_contexts.push((n.clone(), c.clone()));
                    }
                    lib.defines.push((n, e));
                }
            } else {
                return Err(self.error("expected a library statement"));
            }
        }
    }

    fn is_stmt_start(&self) -> bool {
        [
            "define",
            "context",
            "parameter",
            "include",
            "using",
            "codesystem",
            "valueset",
            "code",
            "concept",
        ]
        .iter()
        .any(|k| self.is_kw(k))
    }

    fn qualified_name(&mut self) -> R<String> {
        let mut n = self.ident()?;
        while self.eat_sym(".") {
            n.push('.');
            n.push_str(&self.ident()?);
        }
        Ok(n)
    }

    fn version(&mut self) -> R<Option<String>> {
        if self.eat_kw("version") {
            Ok(Some(self.string()?))
        } else {
            Ok(None)
        }
    }

    fn type_spec(&mut self) -> R<TypeSpec> {
        let n = self.ident()?;
        match n.as_str() {
            "List" | "Interval" if self.is_sym("<") => {
                self.next();
                let t = self.type_spec()?;
                self.expect_sym(">")?;
                Ok(if n == "List" {
                    TypeSpec::List(Box::new(t))
                } else {
                    TypeSpec::Interval(Box::new(t))
                })
            }
            "Choice" if self.is_sym("<") => {
                self.next();
                let mut ts = vec![self.type_spec()?];
                while self.eat_sym(",") {
                    ts.push(self.type_spec()?);
                }
                self.expect_sym(">")?;
                Ok(TypeSpec::Choice(ts))
            }
            "Tuple" if self.is_sym("{") => {
                self.next();
                let mut es = Vec::new();
                while !self.eat_sym("}") {
                    let en = self.ident()?;
                    let t = self.type_spec()?;
                    es.push((en, t));
                    self.eat_sym(",");
                }
                Ok(TypeSpec::Tuple(es))
            }
            _ => {
                let mut last = n;
                while self.eat_sym(".") {
                    last = self.ident()?;
                }
                Ok(TypeSpec::Named(last))
            }
        }
    }

    // ---- expressions ----

    /// Parses a full expression (lowest precedence: union/intersect/except).
    fn expr(&mut self) -> R<Expr> {
        self.nested_level(Self::expr_inner)
    }

    fn expr_inner(&mut self) -> R<Expr> {
        self.binary(
            &[
                ("|", "Union"),
                ("union", "Union"),
                ("intersect", "Intersect"),
                ("except", "Except"),
            ],
            Self::implies,
        )
    }

    fn implies(&mut self) -> R<Expr> {
        self.level(Self::implies_inner)
    }

    fn implies_inner(&mut self) -> R<Expr> {
        self.binary(&[("implies", "Implies")], Self::or)
    }

    fn or(&mut self) -> R<Expr> {
        self.level(Self::or_inner)
    }

    fn or_inner(&mut self) -> R<Expr> {
        self.binary(&[("or", "Or"), ("xor", "Xor")], Self::and)
    }

    fn and(&mut self) -> R<Expr> {
        self.level(Self::and_inner)
    }

    fn and_inner(&mut self) -> R<Expr> {
        self.binary(&[("and", "And")], Self::membership)
    }

    fn precision_of(&mut self) -> Option<String> {
        if let Tok::Ident(s) = self.peek().clone()
            && PRECISIONS.contains(&s.as_str())
            && self.is_kw_at(1, "of")
        {
            self.next();
            self.next();
            return Some(s);
        }
        None
    }

    fn membership(&mut self) -> R<Expr> {
        self.level(Self::membership_inner)
    }

    fn membership_inner(&mut self) -> R<Expr> {
        let mut l = self.equality()?;
        loop {
            let op = if self.is_kw("in") {
                "In"
            } else if self.is_kw("contains") {
                "Contains"
            } else {
                return Ok(l);
            };
            let at = self.pos;
            self.next();
            let p = self.precision_of();
            let r = self.equality()?;
            self.chain()?;
            l = Expr::Call(op.into(), vec![l, r], p);
            self.mark_call(&l, at);
        }
    }

    fn equality(&mut self) -> R<Expr> {
        self.level(Self::equality_inner)
    }

    fn equality_inner(&mut self) -> R<Expr> {
        self.binary(
            &[
                ("=", "Equal"),
                ("!=", "NotEqual"),
                ("~", "Equivalent"),
                ("!~", "NotEquivalent"),
            ],
            Self::timing,
        )
    }

    fn timing(&mut self) -> R<Expr> {
        self.level(Self::timing_inner)
    }

    fn timing_inner(&mut self) -> R<Expr> {
        let mut l = self.comparison()?;
        loop {
            let save = self.pos;
            match self.timing_phrase(l)? {
                Ok(e) => {
                    self.chain()?;
                    self.mark_call(&e, save);
                    l = e
                }
                Err(back) => {
                    self.pos = save;
                    return Ok(back);
                }
            }
        }
    }

    fn start_end(&mut self) -> Option<&'static str> {
        if self.is_kw("start") && !self.is_kw_at(1, "of") {
            self.next();
            Some("Start")
        } else if self.is_kw("end") && !self.is_kw_at(1, "of") {
            self.next();
            Some("End")
        } else {
            None
        }
    }

    /// One interval timing phrase and its right operand, or `l` back if there is none here.
    /// Never inlined: its large frame stays off the recursion of operands nested in
    /// parentheses.
    #[inline(never)]
    fn timing_phrase(&mut self, l: Expr) -> R<Result<Expr, Expr>> {
        let lq = if self.is_kw("starts") || self.is_kw("ends") || self.is_kw("occurs") {
            let k = match self.next() {
                Tok::Ident(s) => s,
                _ => unreachable!(),
            };
            match k.as_str() {
                "starts" => Some("Start"),
                "ends" => Some("End"),
                _ => None,
            }
        } else {
            None
        };
        let had_q = self.pos > 0
            && matches!(&self.at(self.pos.saturating_sub(1)).tok, Tok::Ident(s) if s == "starts" || s == "ends" || s == "occurs");
        let wrap = |e: Expr, q: Option<&str>| match q {
            Some(q) => call(q, vec![e]),
            None => e,
        };
        // `starts`/`ends` as operators of their own.
        if had_q
            && lq.is_some()
            && !self.is_kw("same")
            && !self.is_kw("properly")
            && !self.is_kw("during")
            && !self.is_kw("included")
            && !self.is_kw("before")
            && !self.is_kw("after")
            && !self.is_kw("within")
            && !self.is_kw("on")
            && !matches!(self.peek(), Tok::Number(_))
            && !self.is_kw("less")
            && !self.is_kw("more")
        {
            let p = self.precision_of();
            let r = self.comparison()?;
            return Ok(Ok(Expr::Call(
                if lq == Some("Start") {
                    "Starts".into()
                } else {
                    "Ends".into()
                },
                vec![l, r],
                p,
            )));
        }
        if self.eat_kw("same") {
            let p = if let Tok::Ident(s) = self.peek().clone()
                && PRECISIONS.contains(&s.as_str())
            {
                self.next();
                Some(s)
            } else {
                None
            };
            let op = if self.eat_kw("as") {
                "SameAs"
            } else if self.eat_kw("or") {
                if self.eat_kw("before") {
                    "SameOrBefore"
                } else {
                    self.expect_kw("after")?;
                    "SameOrAfter"
                }
            } else {
                return Err(self.error("expected 'as', 'or before' or 'or after'"));
            };
            let rq = self.start_end();
            let r = wrap(self.comparison()?, rq);
            return Ok(Ok(Expr::Call(op.into(), vec![wrap(l, lq), r], p)));
        }
        let properly = self.eat_kw("properly");
        if self.eat_kw("includes") {
            let p = self.precision_of();
            let rq = self.start_end();
            let r = wrap(self.comparison()?, rq);
            let op = if properly {
                "ProperIncludes"
            } else {
                "Includes"
            };
            return Ok(Ok(Expr::Call(op.into(), vec![wrap(l, lq), r], p)));
        }
        if self.is_kw("during") || (self.is_kw("included") && self.is_kw_at(1, "in")) {
            if self.eat_kw("included") {
                self.next();
            } else {
                self.eat_kw("during");
            }
            let p = self.precision_of();
            let r = self.comparison()?;
            let op = if properly {
                "ProperIncludedIn"
            } else {
                "IncludedIn"
            };
            return Ok(Ok(Expr::Call(op.into(), vec![wrap(l, lq), r], p)));
        }
        if self.eat_kw("within") {
            let q = self.quantity_term()?;
            self.expect_kw("of")?;
            let rq = self.start_end();
            let r = wrap(self.comparison()?, rq);
            let name = if properly { "ProperWithin" } else { "Within" };
            return Ok(Ok(Expr::Call(name.into(), vec![wrap(l, lq), r, q], None)));
        }
        if properly {
            return Ok(Err(l));
        }
        if self.eat_kw("meets") {
            let op = if self.eat_kw("before") {
                "MeetsBefore"
            } else if self.eat_kw("after") {
                "MeetsAfter"
            } else {
                "Meets"
            };
            let p = self.precision_of();
            let r = self.comparison()?;
            return Ok(Ok(Expr::Call(op.into(), vec![l, r], p)));
        }
        if self.eat_kw("overlaps") {
            let op = if self.eat_kw("before") {
                "OverlapsBefore"
            } else if self.eat_kw("after") {
                "OverlapsAfter"
            } else {
                "Overlaps"
            };
            let p = self.precision_of();
            let r = self.comparison()?;
            return Ok(Ok(Expr::Call(op.into(), vec![l, r], p)));
        }
        // quantity offset
        let mut offset: Option<(Expr, &str)> = None;
        if self.is_kw("less") || self.is_kw("more") {
            let less = self.is_kw("less");
            self.next();
            self.expect_kw("than")?;
            let q = self.quantity_term()?;
            offset = Some((q, if less { "lt" } else { "gt" }));
        } else if matches!(self.peek(), Tok::Number(_)) {
            let q = self.quantity_term()?;
            let k = if self.is_kw("or") && self.is_kw_at(1, "more") {
                self.next();
                self.next();
                "ge"
            } else if self.is_kw("or") && self.is_kw_at(1, "less") {
                self.next();
                self.next();
                "le"
            } else {
                "eq"
            };
            offset = Some((q, k));
        }
        let on_or = if self.is_kw("on") && self.is_kw_at(1, "or") {
            self.next();
            self.next();
            true
        } else {
            false
        };
        let before = if self.eat_kw("before") {
            true
        } else if self.eat_kw("after") {
            false
        } else {
            return Ok(Err(l));
        };
        let or_on = if self.is_kw("or") && self.is_kw_at(1, "on") {
            self.next();
            self.next();
            true
        } else {
            false
        };
        let p = self.precision_of();
        let rq = self.start_end();
        let r = wrap(self.comparison()?, rq);
        let inclusive = on_or || or_on;
        let left = wrap(l, lq);
        let e = match offset {
            None => {
                let op = match (before, inclusive) {
                    (true, false) => "Before",
                    (true, true) => "SameOrBefore",
                    (false, false) => "After",
                    (false, true) => "SameOrAfter",
                };
                let (left, r) = if inclusive {
                    // Inclusive phrases compare the facing boundaries of intervals.
                    if before {
                        (
                            call("EndOrPoint", vec![left]),
                            call("StartOrPoint", vec![r]),
                        )
                    } else {
                        (
                            call("StartOrPoint", vec![left]),
                            call("EndOrPoint", vec![r]),
                        )
                    }
                } else {
                    (left, r)
                };
                Expr::Call(op.into(), vec![left, r], p)
            }
            Some((q, k)) => Expr::Call(
                "OffsetRelation".into(),
                vec![
                    left,
                    r,
                    q,
                    Expr::Lit(Value::Str(k.into())),
                    Expr::Lit(Value::Bool(before)),
                ],
                p,
            ),
        };
        Ok(Ok(e))
    }

    fn quantity_term(&mut self) -> R<Expr> {
        let t = self.next();
        let Tok::Number(n) = t else {
            self.pos -= 1;
            return Err(self.error("expected a quantity"));
        };
        let v = Decimal::from_str(&n).map_err(|_| self.error("bad number"))?;
        let unit = match self.peek().clone() {
            Tok::Str(u) => {
                self.next();
                u
            }
            Tok::Ident(u) if PRECISIONS.contains(&u.as_str()) => {
                self.next();
                u
            }
            _ => "1".into(),
        };
        Ok(Expr::Lit(Value::Quantity(v, unit)))
    }

    fn comparison(&mut self) -> R<Expr> {
        self.level(Self::comparison_inner)
    }

    fn comparison_inner(&mut self) -> R<Expr> {
        self.binary(
            &[
                ("<", "Less"),
                ("<=", "LessOrEqual"),
                (">", "Greater"),
                (">=", "GreaterOrEqual"),
            ],
            Self::between,
        )
    }

    fn between(&mut self) -> R<Expr> {
        // duration in X between / difference in X between / X between
        if (self.is_kw("duration") || self.is_kw("difference")) && self.is_kw_at(1, "in") {
            let diff = self.is_kw("difference");
            let save = self.pos;
            self.next();
            self.next();
            if let Tok::Ident(p) = self.next()
                && PRECISIONS.contains(&p.as_str())
                && self.eat_kw("between")
            {
                {
                    let a = self.additive()?;
                    self.expect_kw("and")?;
                    let b = self.additive()?;
                    let op = if diff {
                        "DifferenceBetween"
                    } else {
                        "DurationBetween"
                    };
                    return Ok(Expr::Call(op.into(), vec![a, b], Some(p)));
                }
            }
            self.pos = save;
        }
        if let Tok::Ident(p) = self.peek().clone()
            && PRECISIONS.contains(&p.as_str())
            && self.is_kw_at(1, "between")
        {
            self.next();
            self.next();
            let a = self.additive()?;
            self.expect_kw("and")?;
            let b = self.additive()?;
            return Ok(Expr::Call("DurationBetween".into(), vec![a, b], Some(p)));
        }
        let e = self.unary_logical()?;
        let properly = if self.is_kw("properly") && self.is_kw_at(1, "between") {
            self.next();
            true
        } else {
            false
        };
        if self.eat_kw("between") {
            let a = self.additive()?;
            self.expect_kw("and")?;
            let b = self.additive()?;
            let iv = Expr::Interval(Box::new(a), !properly, Box::new(b), !properly);
            return Ok(call("In", vec![e, iv]));
        }
        Ok(e)
    }

    fn unary_logical(&mut self) -> R<Expr> {
        self.nested_level(Self::unary_logical_inner)
    }

    fn unary_logical_inner(&mut self) -> R<Expr> {
        if self.is_kw("not") || self.is_kw("exists") {
            let at = self.pos;
            let op = if self.is_kw("not") { "Not" } else { "Exists" };
            self.next();
            let e = self.unary_logical()?;
            let e = call(op, vec![e]);
            self.mark_call(&e, at);
            return Ok(e);
        }
        self.type_op()
    }

    fn type_op(&mut self) -> R<Expr> {
        self.level(Self::type_op_inner)
    }

    fn type_op_inner(&mut self) -> R<Expr> {
        if self.eat_kw("cast") {
            let e = self.list_unary()?;
            self.expect_kw("as")?;
            let t = self.type_spec()?;
            return Ok(Expr::As(Box::new(e), t, true));
        }
        let mut e = self.list_unary()?;
        loop {
            if self.eat_kw("is") {
                let neg = self.eat_kw("not");
                if self.eat_kw("null") {
                    e = call("IsNull", vec![e]);
                } else if self.eat_kw("true") {
                    e = call("IsTrue", vec![e]);
                } else if self.eat_kw("false") {
                    e = call("IsFalse", vec![e]);
                } else {
                    let t = self.type_spec()?;
                    self.chain()?;
                    e = Expr::Is(Box::new(e), t);
                }
                if neg {
                    e = call("Not", vec![e]);
                }
            } else if self.eat_kw("as") {
                let t = self.type_spec()?;
                self.chain()?;
                e = Expr::As(Box::new(e), t, false);
            } else {
                return Ok(e);
            }
        }
    }

    fn list_unary(&mut self) -> R<Expr> {
        self.nested_level(Self::list_unary_inner)
    }

    fn list_unary_inner(&mut self) -> R<Expr> {
        for (k, op) in [
            ("distinct", "Distinct"),
            ("flatten", "Flatten"),
            ("collapse", "Collapse"),
            ("expand", "Expand"),
        ] {
            if self.is_kw(k) && !matches!(self.peek_at(1), Tok::Sym("(")) {
                self.next();
                let e = self.list_unary()?;
                let mut args = vec![e];
                if (op == "Collapse" || op == "Expand") && self.eat_kw("per") {
                    if let Tok::Ident(p) = self.peek().clone()
                        && PRECISIONS.contains(&p.as_str())
                    {
                        self.next();
                        args.push(Expr::Lit(Value::Quantity(Decimal::ONE, p)));
                    } else {
                        args.push(self.additive()?);
                    }
                }
                return Ok(call(op, args));
            }
        }
        self.additive()
    }

    fn additive(&mut self) -> R<Expr> {
        self.level(Self::additive_inner)
    }

    fn additive_inner(&mut self) -> R<Expr> {
        self.binary(
            &[("+", "Add"), ("-", "Subtract"), ("&", "Concat")],
            Self::multiplicative,
        )
    }

    fn multiplicative(&mut self) -> R<Expr> {
        self.level(Self::multiplicative_inner)
    }

    fn multiplicative_inner(&mut self) -> R<Expr> {
        let mut l = self.power()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("*") => "Multiply",
                Tok::Sym("/") => "Divide",
                Tok::Ident(s) if s == "div" => "TruncatedDivide",
                Tok::Ident(s) if s == "mod" => "Modulo",
                _ => return Ok(l),
            };
            let at = self.pos;
            self.next();
            let r = self.power()?;
            self.chain()?;
            l = call(op, vec![l, r]);
            self.mark_call(&l, at);
        }
    }

    fn power(&mut self) -> R<Expr> {
        self.level(Self::power_inner)
    }

    fn power_inner(&mut self) -> R<Expr> {
        let mut l = self.extractor()?;
        while self.is_sym("^") {
            let at = self.pos;
            self.next();
            let r = self.extractor()?;
            self.chain()?;
            l = call("Power", vec![l, r]);
            self.mark_call(&l, at);
        }
        Ok(l)
    }

    fn extractor(&mut self) -> R<Expr> {
        self.nested_level(Self::extractor_inner)
    }

    fn extractor_inner(&mut self) -> R<Expr> {
        for (k, op) in [
            ("start", "Start"),
            ("end", "End"),
            ("width", "Width"),
            ("successor", "Successor"),
            ("predecessor", "Predecessor"),
        ] {
            if self.is_kw(k) && self.is_kw_at(1, "of") {
                let at = self.pos;
                self.next();
                self.next();
                let e = self.extractor()?;
                let e = call(op, vec![e]);
                self.mark_call(&e, at);
                return Ok(e);
            }
        }
        for (k, op) in [("singleton", "SingletonFrom"), ("point", "PointFrom")] {
            if self.is_kw(k) && self.is_kw_at(1, "from") {
                self.next();
                self.next();
                let e = self.extractor()?;
                return Ok(call(op, vec![e]));
            }
        }
        if (self.is_kw("duration") || self.is_kw("difference")) && self.is_kw_at(1, "in") {
            let diff = self.is_kw("difference");
            if let Tok::Ident(p) = self.peek_at(2).clone()
                && PRECISIONS.contains(&p.as_str())
                && self.is_kw_at(3, "of")
            {
                self.pos += 4;
                let e = self.extractor()?;
                let op = if diff { "DifferenceOf" } else { "DurationOf" };
                return Ok(Expr::Call(op.into(), vec![e], Some(p)));
            }
        }
        if let Tok::Ident(k) = self.peek().clone()
            && self.is_kw_at(1, "from")
            && [
                "year",
                "month",
                "week",
                "day",
                "hour",
                "minute",
                "second",
                "millisecond",
                "date",
                "time",
                "timezoneoffset",
            ]
            .contains(&k.as_str())
        {
            self.next();
            self.next();
            let e = self.extractor()?;
            return Ok(Expr::Call("ComponentFrom".into(), vec![e], Some(k)));
        }
        if (self.is_kw("minimum") || self.is_kw("maximum"))
            && matches!(self.peek_at(1), Tok::Ident(_) | Tok::Quoted(_))
        {
            let min = self.is_kw("minimum");
            self.next();
            let t = self.type_spec()?;
            return Ok(Expr::Call(
                if min { "MinValue" } else { "MaxValue" }.into(),
                vec![Expr::Lit(Value::Str(type_name(&t)))],
                None,
            ));
        }
        self.unary()
    }

    fn unary(&mut self) -> R<Expr> {
        self.nested_level(Self::unary_inner)
    }

    fn unary_inner(&mut self) -> R<Expr> {
        if self.is_sym("-") {
            self.next();
            // Negative literals may reach the minimum Integer/Long.
            match self.peek().clone() {
                Tok::Number(n) if !n.contains('.') && !self.unit_follows(1) => {
                    self.next();
                    let v: i64 = n.parse().map_err(|_| self.error("number out of range"))?;
                    let e = i32::try_from(-v)
                        .map(|i| Expr::Lit(Value::Int(i)))
                        .map_err(|_| self.error("Integer literal out of range"))?;
                    return self.postfix(e, false);
                }
                Tok::Long(n) => {
                    self.next();
                    let v: i128 = n.parse().map_err(|_| self.error("number out of range"))?;
                    let e = i64::try_from(-v)
                        .map(|i| Expr::Lit(Value::Long(i)))
                        .map_err(|_| self.error("Long literal out of range"))?;
                    return self.postfix(e, false);
                }
                _ => {}
            }
            let e = self.unary()?;
            return Ok(call("Negate", vec![e]));
        }
        if self.eat_sym("+") {
            return self.unary();
        }
        if self.is_kw("convert") {
            self.next();
            let e = self.expr()?;
            self.expect_kw("to")?;
            if let Tok::Str(u) = self.peek().clone() {
                self.next();
                return Ok(Expr::ConvertUnit(Box::new(e), u));
            }
            let t = self.type_spec()?;
            return Ok(Expr::Convert(Box::new(e), t));
        }
        let (e, src) = self.term()?;
        self.postfix(e, src)
    }

    fn unit_follows(&self, n: usize) -> bool {
        match self.peek_at(n) {
            Tok::Str(_) => true,
            Tok::Ident(s) => PRECISIONS.contains(&s.as_str()),
            _ => false,
        }
    }

    fn postfix(&mut self, mut e: Expr, mut query_src: bool) -> R<Expr> {
        loop {
            if self.is_sym(".") || self.is_sym("[") {
                self.chain()?;
            }
            if self.eat_sym(".") {
                let name = self.ident()?;
                self.mark(&name, self.pos - 1);
                if self.eat_sym("(") {
                    let mut args = vec![e];
                    args.extend(self.args()?);
                    e = match (name.as_str(), args.len()) {
                        // `x.repeat(path)`: the path of each element (`$this`), repeated.
                        ("repeat", 2) => {
                            let el = this_path(args.pop().unwrap_or(Expr::Lit(Value::Null)));
                            let src = args.pop().unwrap_or(Expr::Lit(Value::Null));
                            let this = Expr::Lit(Value::Str("$this".into()));
                            Expr::Call(crate::eval::REPEAT.into(), vec![src, el, this], None)
                        }
                        // FHIRPath-style invocations: queries over the source as `$this`.
                        ("where" | "select" | "all", 2) | ("aggregate", 2 | 3) => {
                            invocation(&name, args)
                        }
                        _ => Expr::Call(name, args, None),
                    };
                } else {
                    e = Expr::Member(Box::new(e), name);
                }
                query_src = matches!(e, Expr::Member(..));
            } else if self.is_sym("[") {
                self.next();
                let i = self.expr()?;
                self.expect_sym("]")?;
                e = Expr::Index(Box::new(e), Box::new(i));
                query_src = false;
            } else if query_src && self.is_alias_start() {
                return self.query(vec![], e);
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self) -> R<Vec<Expr>> {
        let mut args = Vec::new();
        if self.eat_sym(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat_sym(")") {
                return Ok(args);
            }
            self.expect_sym(",")?;
        }
    }

    fn query(&mut self, mut sources: Vec<(Expr, String)>, first: Expr) -> R<Expr> {
        let alias = self.ident()?;
        sources.push((first, alias));
        while self.eat_sym(",") {
            let (s, _) = self.source_term()?;
            let a = self.ident()?;
            sources.push((s, a));
        }
        self.query_body(sources)
    }

    fn source_term(&mut self) -> R<(Expr, bool)> {
        let (e, _) = self.term()?;
        let mut e = e;
        while self.eat_sym(".") {
            let n = self.ident()?;
            self.mark(&n, self.pos - 1);
            e = Expr::Member(Box::new(e), n);
        }
        Ok((e, true))
    }

    fn query_body(&mut self, sources: Vec<(Expr, String)>) -> R<Expr> {
        let mut q = Query {
            sources,
            lets: vec![],
            rels: vec![],
            where_: None,
            ret: None,
            aggregate: None,
            sort: None,
        };
        if self.eat_kw("let") {
            loop {
                let n = self.ident()?;
                self.expect_sym(":")?;
                let e = self.expr()?;
                q.lets.push((n, e));
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        while self.is_kw("with") || self.is_kw("without") {
            let with = self.is_kw("with");
            self.next();
            let (s, _) = self.source_term()?;
            let a = self.ident()?;
            self.expect_kw("such")?;
            self.expect_kw("that")?;
            let c = self.expr()?;
            q.rels.push(Relationship {
                with,
                source: s,
                alias: a,
                cond: c,
            });
        }
        if self.eat_kw("where") {
            q.where_ = Some(self.expr()?);
        }
        if self.eat_kw("return") {
            let d = if self.eat_kw("distinct") {
                true
            } else {
                self.eat_kw("all");
                false
            };
            q.ret = Some((d, self.expr()?));
        } else if self.eat_kw("aggregate") {
            let d = if self.eat_kw("distinct") {
                true
            } else {
                self.eat_kw("all");
                false
            };
            let n = self.ident()?;
            let start = if self.eat_kw("starting") {
                Some(self.additive()?)
            } else {
                None
            };
            self.expect_sym(":")?;
            let e = self.expr()?;
            q.aggregate = Some((d, n, start, e));
        }
        if self.eat_kw("sort") {
            let mut items = Vec::new();
            if self.eat_kw("by") {
                loop {
                    let key = self.expr()?;
                    let desc = self.sort_dir();
                    items.push(SortItem {
                        key: Some(key),
                        desc,
                    });
                    if !self.eat_sym(",") {
                        break;
                    }
                }
            } else {
                let desc = self.sort_dir();
                items.push(SortItem { key: None, desc });
            }
            q.sort = Some(items);
        }
        Ok(Expr::Query(Box::new(q)))
    }

    fn sort_dir(&mut self) -> bool {
        if self.eat_kw("desc") || self.eat_kw("descending") {
            true
        } else {
            let _ = self.eat_kw("asc") || self.eat_kw("ascending");
            false
        }
    }

    /// A term; the flag says whether it may be a query source (followed by an alias).
    fn term(&mut self) -> R<(Expr, bool)> {
        let at = self.pos;
        let t = self.next();
        let e = match t {
            Tok::Number(n) => {
                let e = self.number(&n)?;
                return Ok((e, false));
            }
            Tok::Long(n) => Expr::Lit(Value::Long(
                n.parse()
                    .map_err(|_| self.error("Long literal out of range"))?,
            )),
            Tok::Str(s) => Expr::Lit(Value::Str(s)),
            Tok::DateTime(s) => {
                let (tm, is_dt) = Tm::parse_datetime(&s)
                    .ok_or_else(|| self.error("invalid date/time literal"))?;
                Expr::Lit(if is_dt {
                    Value::DateTime(tm)
                } else {
                    Value::Date(tm)
                })
            }
            Tok::Time(s) => Expr::Lit(Value::Time(
                Tm::parse_time(&s).ok_or_else(|| self.error("invalid time literal"))?,
            )),
            Tok::Sym("(") => {
                let e = self.expr()?;
                self.expect_sym(")")?;
                return Ok((e, true));
            }
            Tok::Sym("[") => {
                // `[Pat -> Observation]`: the retrieve in the context of the value of `Pat`.
                let related = if self.is_sym_at(1, "->") {
                    let c = Expr::Ident(self.ident()?);
                    self.next();
                    Some(c)
                } else {
                    None
                };
                let ty = self.qualified_name()?;
                let ty = ty.rsplit('.').next().unwrap_or(&ty).to_string();
                let (mut path, mut codes) = (None, None);
                if self.eat_sym(":") {
                    if matches!(self.peek_at(1), Tok::Ident(s) if s == "in")
                        || self.is_sym_at(1, "=")
                        || self.is_sym_at(1, "~")
                    {
                        path = Some(self.ident()?);
                        self.next();
                    }
                    codes = Some(Box::new(self.expr()?));
                }
                self.expect_sym("]")?;
                self.mark(&ty, at);
                let r = Expr::Retrieve(ty, path, codes);
                let r = match related {
                    Some(c) => Expr::Call(crate::eval::RETRIEVE_IN.into(), vec![c, r], None),
                    None => r,
                };
                return Ok((r, true));
            }
            Tok::Sym("{") => return Ok((self.brace(None)?, false)),
            Tok::Quoted(s) => {
                self.mark(&s, at);
                if self.eat_sym("(") {
                    return Ok((Expr::Call(s, self.args()?, None), false));
                }
                return Ok((Expr::Ident(s), true));
            }
            Tok::Ident(s) => return self.ident_term(s),
            _ => {
                self.pos -= 1;
                return Err(self.error("expected an expression"));
            }
        };
        Ok((e, false))
    }

    fn is_sym_at(&self, n: usize, s: &str) -> bool {
        matches!(self.peek_at(n), Tok::Sym(x) if *x == s)
    }

    fn number(&mut self, n: &str) -> R<Expr> {
        let v = if n.contains('.') {
            None
        } else {
            Some(n.parse::<i64>().ok())
        };
        let unit = match self.peek().clone() {
            Tok::Str(u) => {
                self.next();
                Some(u)
            }
            Tok::Ident(u) if PRECISIONS.contains(&u.as_str()) => {
                self.next();
                Some(u)
            }
            _ => None,
        };
        let dec = || Decimal::from_str(n).ok();
        let e = if let Some(u) = unit {
            Expr::Lit(Value::Quantity(
                dec().ok_or_else(|| self.error("bad number"))?,
                u,
            ))
        } else {
            match v {
                Some(Some(i)) => Expr::Lit(Value::Int(
                    i32::try_from(i).map_err(|_| self.error("Integer literal out of range"))?,
                )),
                Some(None) => return Err(self.error("Integer literal out of range")),
                None => {
                    if n.split('.').nth(1).is_some_and(|f| f.len() > 8)
                        || n.split('.')
                            .next()
                            .is_some_and(|i| i.trim_start_matches('0').len() > 28)
                    {
                        return Err(self.error("Decimal literal with more than 8 decimal places"));
                    }
                    Expr::Lit(Value::Dec(dec().ok_or_else(|| self.error("bad number"))?))
                }
            }
        };
        // Ratio `a:b`.
        if self.is_sym(":") && matches!(self.peek_at(1), Tok::Number(_)) {
            self.next();
            let Tok::Number(m) = self.next() else {
                unreachable!()
            };
            let r = self.number(&m)?;
            let q = |e: Expr| match e {
                Expr::Lit(Value::Int(i)) => Value::Quantity(Decimal::from(i), "1".into()),
                Expr::Lit(Value::Dec(d)) => Value::Quantity(d, "1".into()),
                Expr::Lit(v) => v,
                _ => Value::Null,
            };
            return Ok(Expr::Lit(Value::Ratio(Box::new(q(e)), Box::new(q(r)))));
        }
        Ok(e)
    }

    fn ident_term(&mut self, s: String) -> R<(Expr, bool)> {
        // Names are marked only once they are in the tree: a marked text that is dropped
        // (a keyword) would leave its address to an unmarked one.
        let at = self.pos - 1;
        match s.as_str() {
            "null" => return Ok((Expr::Lit(Value::Null), false)),
            "true" => return Ok((Expr::Lit(Value::Bool(true)), false)),
            "false" => return Ok((Expr::Lit(Value::Bool(false)), false)),
            "from" => {
                let mut sources = Vec::new();
                loop {
                    let (e, _) = self.source_term()?;
                    let a = self.ident()?;
                    sources.push((e, a));
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                return Ok((self.query_body(sources)?, false));
            }
            "if" => {
                let c = self.expr()?;
                self.expect_kw("then")?;
                let a = self.expr()?;
                self.expect_kw("else")?;
                let b = self.expr()?;
                return Ok((Expr::If(Box::new(c), Box::new(a), Box::new(b)), false));
            }
            "case" => {
                let operand = if self.is_kw("when") {
                    None
                } else {
                    Some(Box::new(self.expr()?))
                };
                let mut items = Vec::new();
                while self.eat_kw("when") {
                    let w = self.expr()?;
                    self.expect_kw("then")?;
                    let t = self.expr()?;
                    items.push((w, t));
                }
                self.expect_kw("else")?;
                let e = self.expr()?;
                self.expect_kw("end")?;
                return Ok((Expr::Case(operand, items, Box::new(e)), false));
            }
            "Interval" if self.is_sym("[") || self.is_sym("(") => {
                let lc = self.is_sym("[");
                self.next();
                let a = self.expr()?;
                self.expect_sym(",")?;
                let b = self.expr()?;
                let hc = if self.eat_sym("]") {
                    true
                } else {
                    self.expect_sym(")")?;
                    false
                };
                return Ok((Expr::Interval(Box::new(a), lc, Box::new(b), hc), false));
            }
            "List" if self.is_sym("<") => {
                self.next();
                let t = self.type_spec()?;
                self.expect_sym(">")?;
                self.expect_sym("{")?;
                return Ok((self.brace(Some(t))?, false));
            }
            "Tuple" if self.is_sym("{") => {
                self.next();
                return Ok((self.brace(None)?, false));
            }
            "Code" if matches!(self.peek(), Tok::Str(_)) => {
                let c = self.string()?;
                self.expect_kw("from")?;
                let (sys, lib_alias) = self.code_system_ref()?;
                let d = if self.eat_kw("display") {
                    Some(self.string()?)
                } else {
                    None
                };
                return Ok((CodeSelector::expr(c, sys, lib_alias, d), false));
            }
            "Concept" if self.is_sym("{") && !self.is_sym_at(2, ":") => {
                return Ok((self.concept_body()?, false));
            }
            _ => {}
        }
        if self.is_sym("(") {
            self.next();
            self.mark(&s, at);
            return Ok((Expr::Call(s, self.args()?, None), false));
        }
        // A qualified instance selector: `System.ValueSet { id: '123' }`.
        let s = if (s == "System" || s == "FHIR")
            && self.is_sym(".")
            && matches!(self.peek_at(1), Tok::Ident(_))
            && self.is_sym_at(2, "{")
        {
            self.next();
            self.ident()?
        } else {
            s
        };
        // Lower-case names select only FHIR primitives (`string { value: x }`).
        if self.is_sym("{")
            && (s.chars().next().is_some_and(|c| c.is_uppercase())
                || flint_model::defs::definitions().is_primitive(&s))
        {
            self.next();
            let mut els = Vec::new();
            while !self.eat_sym("}") {
                let n = self.ident()?;
                self.expect_sym(":")?;
                els.push((n, self.expr()?));
                self.eat_sym(",");
            }
            return Ok((Expr::Instance(s, els), false));
        }
        self.mark(&s, at);
        Ok((Expr::Ident(s), true))
    }

    fn concept_body(&mut self) -> R<Expr> {
        if !self.is_kw("Concept") {
            // library-level `concept "x": { "code1", ... }`
        } else {
            self.next();
        }
        self.expect_sym("{")?;
        let mut codes = Vec::new();
        while !self.eat_sym("}") {
            let (e, _) = self.term()?;
            codes.push(e);
            self.eat_sym(",");
        }
        let d = if self.eat_kw("display") {
            Some(self.string()?)
        } else {
            None
        };
        Ok(Expr::Concept(codes, d))
    }

    /// After `{`: a list or a tuple (`{ a: 1 }`, `{ : }`).
    fn brace(&mut self, t: Option<TypeSpec>) -> R<Expr> {
        if t.is_none() && self.is_sym(":") && self.is_sym_at(1, "}") {
            self.next();
            self.next();
            return Ok(Expr::Tuple(vec![]));
        }
        let tuple = t.is_none()
            && matches!(self.peek(), Tok::Ident(_) | Tok::Quoted(_))
            && self.is_sym_at(1, ":");
        if tuple {
            let mut els = Vec::new();
            while !self.eat_sym("}") {
                let n = self.ident()?;
                self.expect_sym(":")?;
                els.push((n, self.expr()?));
                if !self.eat_sym(",") {
                    self.expect_sym("}")?;
                    break;
                }
            }
            return Ok(Expr::Tuple(els));
        }
        let mut items = Vec::new();
        if self.eat_sym("}") {
            return Ok(Expr::List(t, items));
        }
        loop {
            items.push(self.expr()?);
            if self.eat_sym("}") {
                return Ok(Expr::List(t, items));
            }
            self.expect_sym(",")?;
        }
    }
}

/// The query a FHIRPath-style invocation stands for, the source (`args[0]`) as `$this`
/// (each row's position `$index`): `X.where(c)` keeps the elements where `c` is true,
/// `X.select(e)` gives the non-null `e` of each, `X.all(c)` whether `c` is true of all (the
/// nulls ignored, as `AllTrue`), `X.aggregate(e[, init])` folds `e` with the accumulator
/// `$total` (starting at `init`, else null).
#[inline(never)]
fn invocation(name: &str, mut args: Vec<Expr>) -> Expr {
    use crate::eval::{THIS, TOTAL};
    let init = (args.len() == 3).then(|| args.pop()).flatten();
    let e = args.pop().unwrap_or(Expr::Lit(Value::Null));
    let src = args.pop().unwrap_or(Expr::Lit(Value::Null));
    let mut q = Query {
        sources: vec![(src, THIS.into())],
        lets: vec![],
        rels: vec![],
        where_: None,
        ret: None,
        aggregate: None,
        sort: None,
    };
    match name {
        "where" => q.where_ = Some(e),
        "select" => {
            let a = "$a".to_string();
            q.lets.push((a.clone(), this_path(e)));
            q.where_ = Some(call(
                "Not",
                vec![call("IsNull", vec![Expr::Ident(a.clone())])],
            ));
            q.ret = Some((false, Expr::Ident(a)));
        }
        "all" => {
            q.ret = Some((false, e));
            return call("AllTrue", vec![Expr::Query(Box::new(q))]);
        }
        _ => q.aggregate = Some((false, TOTAL.into(), init, e)),
    }
    Expr::Query(Box::new(q))
}

/// A path read from `$this` (`given` is `$this.given`, `a.b` is `$this.a.b`).
fn this_path(e: Expr) -> Expr {
    match e {
        Expr::Ident(n) if !n.starts_with('$') => {
            Expr::Member(Box::new(Expr::Ident("$this".into())), n)
        }
        Expr::Member(t, n) => Expr::Member(Box::new(this_path(*t)), n),
        e => e,
    }
}

fn call(op: &str, args: Vec<Expr>) -> Expr {
    Expr::Call(op.into(), args, None)
}

/// The name of a named type specifier (`Integer` for `System.Integer`).
pub fn type_name(t: &TypeSpec) -> String {
    match t {
        TypeSpec::Named(n) => n.clone(),
        TypeSpec::List(_) => "List".into(),
        TypeSpec::Interval(_) => "Interval".into(),
        TypeSpec::Tuple(_) => "Tuple".into(),
        TypeSpec::Choice(_) => "Choice".into(),
    }
}

/// A code selector's value.
pub fn code_value(code: &str, system: Option<String>, display: Option<String>) -> Value {
    Value::Code(Code {
        code: code.into(),
        system,
        version: None,
        display,
    })
}
