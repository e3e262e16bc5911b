//! The `_filter` parameter (hl7.org/fhir/R4/search_filter.html): its expression language
//! parsed into a tree ([`Filter`]) and translated into the clauses plain search uses.
//!
//! Grammar (keywords and operators case-insensitive):
//!
//! ```text
//! filter    = or
//! or        = and ("or" and)*
//! and       = unary ("and" unary)*
//! unary     = "not" unary | "(" filter ")" | paramExp
//! paramExp  = paramPath SP op SP value
//! paramPath = name ("[" filter "]")? ("." paramPath)?
//! value     = JSON string | token (non-whitespace except `)` and `]`)
//! ```
//!
//! `not` binds tighter than `and`, `and` tighter than `or` (parentheses group). Each
//! comparison becomes the clause of the equivalent plain search parameter (`name co "pet"` is
//! `name:contains=pet`, `birthdate ge 2014` is `birthdate=ge2014`); `and` is the query's AND,
//! `or` a union ([`Clause::Or`]), `not` a set difference ([`Clause::Not`]); a path through a
//! reference parameter (`subject.name`) is a chain, and a bracket filter on a reference
//! (`subject[gender eq male].name sw "pe"`) restricts the chain's targets.

use super::{Clause, DateQuery, Modifier, ParamClause, QueryParser, QueryValue};
use crate::error::Error;
use crate::registry::ParamType;

/// Nesting deeper than this (parentheses, `not`, brackets) is refused, so no filter can
/// exhaust the stack.
const MAX_NESTING: usize = 32;

/// A comparison operator of the filter language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
    Ap,
    Sa,
    Eb,
    Pr,
    Po,
    Ss,
    Sb,
    In,
    Ni,
    Re,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "ge" => Op::Ge,
            "le" => Op::Le,
            "ap" => Op::Ap,
            "sa" => Op::Sa,
            "eb" => Op::Eb,
            "pr" => Op::Pr,
            "po" => Op::Po,
            "ss" => Op::Ss,
            "sb" => Op::Sb,
            "in" => Op::In,
            "ni" => Op::Ni,
            "re" => Op::Re,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Lt => "lt",
            Op::Ge => "ge",
            Op::Le => "le",
            Op::Ap => "ap",
            Op::Sa => "sa",
            Op::Eb => "eb",
            Op::Pr => "pr",
            Op::Po => "po",
            Op::Ss => "ss",
            Op::Sb => "sb",
            Op::In => "in",
            Op::Ni => "ni",
            Op::Re => "re",
        }
    }
}

/// One step of a parameter path: a parameter name with an optional bracket filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub name: String,
    pub filter: Option<Box<Filter>>,
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        path: Vec<Step>,
        op: Op,
        value: String,
        /// The comparison as written (for error messages).
        text: String,
    },
}

/// Parses a filter expression; errors name the position and the problem.
pub(crate) fn parse(s: &str) -> Result<Filter, String> {
    let mut p = Parser {
        s,
        b: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    let f = p.or()?;
    p.ws();
    if p.i < p.b.len() {
        return Err(p.err("unexpected text"));
    }
    Ok(f)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        let rest: String = self
            .s
            .get(self.i..)
            .unwrap_or("")
            .chars()
            .take(20)
            .collect();
        if rest.is_empty() {
            format!("{what} at the end")
        } else {
            format!("{what} at position {} (`{rest}`)", self.i + 1)
        }
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    /// Whether the keyword `kw` follows (whole word), after whitespace; consumes it if so.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.i;
        self.ws();
        let end = self.i + kw.len();
        if end <= self.b.len()
            && self.b[self.i..end].eq_ignore_ascii_case(kw.as_bytes())
            && (end == self.b.len() || self.b[end].is_ascii_whitespace() || self.b[end] == b'(')
        {
            self.i = end;
            return true;
        }
        self.i = save;
        false
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err(&format!("nesting deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut parts = vec![self.unary()?];
        while self.keyword("and") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Filter, String> {
        self.enter()?;
        self.ws();
        let f = if self.keyword("not") {
            Filter::Not(Box::new(self.unary()?))
        } else if self.b.get(self.i) == Some(&b'(') {
            self.i += 1;
            let f = self.or()?;
            self.ws();
            if self.b.get(self.i) != Some(&b')') {
                return Err(self.err("expected `)`"));
            }
            self.i += 1;
            f
        } else {
            self.compare()?
        };
        self.depth -= 1;
        Ok(f)
    }

    fn compare(&mut self) -> Result<Filter, String> {
        let start = self.i;
        let path = self.path()?;
        if !self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            return Err(self.err("expected a space and an operator"));
        }
        self.ws();
        let op_start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_alphabetic() {
            self.i += 1;
        }
        let op = Op::parse(&self.s[op_start..self.i]).ok_or_else(|| {
            self.i = op_start;
            self.err(
                "expected an operator (eq ne co sw ew gt lt ge le ap sa eb pr po ss sb in ni re)",
            )
        })?;
        if !self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            return Err(self.err("expected a space and a value"));
        }
        self.ws();
        let value = self.value()?;
        Ok(Filter::Compare {
            path,
            op,
            value,
            text: self.s[start..self.i].to_string(),
        })
    }

    fn path(&mut self) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            let start = self.i;
            while self.i < self.b.len()
                && (self.b[self.i].is_ascii_alphanumeric() || matches!(self.b[self.i], b'_' | b'-'))
            {
                self.i += 1;
            }
            if self.i == start || self.b[start].is_ascii_digit() || self.b[start] == b'-' {
                self.i = start;
                return Err(self.err("expected a search parameter name"));
            }
            let name = self.s[start..self.i].to_string();
            let filter = if self.b.get(self.i) == Some(&b'[') {
                self.i += 1;
                self.enter()?;
                let f = self.or()?;
                self.depth -= 1;
                self.ws();
                if self.b.get(self.i) != Some(&b']') {
                    return Err(self.err("expected `]`"));
                }
                self.i += 1;
                Some(Box::new(f))
            } else {
                None
            };
            steps.push(Step { name, filter });
            if self.b.get(self.i) == Some(&b'.') {
                if steps.len() > super::MAX_DEPTH {
                    return Err(self.err(&format!(
                        "paths of more than {} references",
                        super::MAX_DEPTH
                    )));
                }
                self.i += 1;
                continue;
            }
            return Ok(steps);
        }
    }

    fn value(&mut self) -> Result<String, String> {
        if self.b.get(self.i) == Some(&b'"') {
            return self.string();
        }
        let start = self.i;
        while self.i < self.b.len()
            && !self.b[self.i].is_ascii_whitespace()
            && !matches!(self.b[self.i], b')' | b']')
        {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err("expected a value"));
        }
        Ok(self.s[start..self.i].to_string())
    }

    /// A JSON string literal (with its escapes).
    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    let lit = self.s.get(start..self.i).unwrap_or_default();
                    return serde_json::from_str::<String>(lit).map_err(|_| {
                        self.i = start;
                        self.err("invalid string literal")
                    });
                }
                _ => self.i += 1,
            }
        }
        self.i = start;
        Err(self.err("unterminated string"))
    }
}

/// The error of a problem with the filter part `part`: 400 naming `_filter`.
fn bad(part: &str, reason: impl Into<String>) -> Error {
    Error::invalid("_filter", part, reason)
}

impl QueryParser<'_> {
    /// The clauses (AND-ed) of `_filter=value` on resources of type `ty`.
    pub(crate) fn filter_clauses(&self, ty: &str, value: &str) -> Result<Vec<Clause>, Error> {
        let f = parse(value).map_err(|e| bad(value, e))?;
        self.filter_conjunction(ty, &f)
    }

    fn filter_conjunction(&self, ty: &str, f: &Filter) -> Result<Vec<Clause>, Error> {
        Ok(match f {
            Filter::And(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    out.extend(self.filter_conjunction(ty, p)?);
                }
                out
            }
            Filter::Or(parts) => vec![Clause::Or(
                parts
                    .iter()
                    .map(|p| self.filter_conjunction(ty, p))
                    .collect::<Result<_, _>>()?,
            )],
            Filter::Not(inner) => vec![Clause::Not(self.filter_conjunction(ty, inner)?)],
            Filter::Compare {
                path,
                op,
                value,
                text,
            } => vec![self.filter_path(ty, path, *op, value, text)?],
        })
    }

    /// One clause of a conjunction (the conjunction itself when it has several clauses).
    fn filter_one(&self, mut clauses: Vec<Clause>) -> Clause {
        if clauses.len() == 1 {
            clauses.remove(0)
        } else {
            Clause::Or(vec![clauses])
        }
    }

    fn filter_path(
        &self,
        ty: &str,
        path: &[Step],
        op: Op,
        value: &str,
        text: &str,
    ) -> Result<Clause, Error> {
        let reword = |e: Error| match e {
            Error::InvalidValue { ref code, .. } if code == "_filter" => e,
            e => bad(text, e.to_string()),
        };
        let [step, rest @ ..] = path else {
            return Err(bad(text, "no search parameter"));
        };
        let param = self.lookup(ty, &step.name).map_err(reword)?;
        if rest.is_empty() && step.filter.is_none() {
            return self.filter_compare(&param, op, value, text);
        }
        if param.kind != ParamType::Reference {
            return Err(bad(
                text,
                format!(
                    "`{}` is a {} parameter: only reference parameters take `[filter]` or `.`",
                    param.code, param.kind
                ),
            ));
        }
        let candidates: Vec<&String> = param
            .target
            .iter()
            .filter(|t| match rest.first() {
                Some(next) => self.registry.param(t, &next.name).is_some(),
                None => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(bad(
                text,
                match rest.first() {
                    Some(next) => format!(
                        "no target type of `{}` has a search parameter `{}`",
                        param.code, next.name
                    ),
                    None => format!("`{}` has no declared target types", param.code),
                },
            ));
        }
        let mut targets = Vec::new();
        for t in candidates {
            let mut inner = Vec::new();
            if let Some(f) = &step.filter {
                inner.extend(self.filter_conjunction(t, f)?);
            }
            if !rest.is_empty() {
                inner.push(self.filter_path(t, rest, op, value, text)?);
            }
            targets.push((t.clone(), Box::new(self.filter_one(inner))));
        }
        if rest.is_empty() {
            // `subject[name eq x]` ends the path: the comparison applies to the reference.
            let chain = Clause::Chain {
                param: param.clone(),
                targets,
            };
            let own = self.filter_compare(&param, op, value, text)?;
            return Ok(Clause::Or(vec![vec![chain, own]]));
        }
        Ok(Clause::Chain { param, targets })
    }

    /// The clause of one comparison on a parameter of the searched type.
    fn filter_compare(
        &self,
        param: &super::ParamRef,
        op: Op,
        value: &str,
        text: &str,
    ) -> Result<Clause, Error> {
        use ParamType as T;
        let kind = param.kind;
        let refuse = || {
            bad(
                text,
                format!(
                    "the operator `{}` does not apply to the {kind} parameter `{}`",
                    op.as_str(),
                    param.code
                ),
            )
        };
        if op == Op::Pr {
            let missing = match value.to_ascii_lowercase().as_str() {
                "true" => false,
                "false" => true,
                _ => return Err(bad(text, "`pr` takes `true` or `false`")),
            };
            return Ok(Clause::Param(ParamClause {
                param: param.clone(),
                modifier: Some(Modifier::Missing),
                values: vec![QueryValue::Missing(missing)],
            }));
        }
        // The plain parser reads `\` escapes: keep the filter value's backslashes.
        let raw = value.replace('\\', "\\\\");
        let one = |modifier: Option<Modifier>, raw: &str| -> Result<Clause, Error> {
            let v = self
                .value(param, modifier.as_ref(), "_filter", raw)
                .map_err(|e| match e {
                    Error::InvalidValue { reason, .. } => bad(text, reason),
                    e => bad(text, e.to_string()),
                })?;
            Ok(Clause::Param(ParamClause {
                param: param.clone(),
                modifier,
                values: vec![v],
            }))
        };
        let prefix = match op {
            Op::Eq => Some("eq"),
            Op::Ne => Some("ne"),
            Op::Gt => Some("gt"),
            Op::Lt => Some("lt"),
            Op::Ge => Some("ge"),
            Op::Le => Some("le"),
            Op::Ap => Some("ap"),
            Op::Sa => Some("sa"),
            Op::Eb => Some("eb"),
            _ => None,
        };
        match (kind, op) {
            (T::Date | T::Number | T::Quantity, _) if prefix.is_some() => {
                one(None, &format!("{}{raw}", prefix.unwrap_or("eq")))
            }
            (T::Date, Op::Po) => {
                // Overlap: `ap` with the value's own interval (no 10 % widening).
                let mut c = one(None, &format!("ap{raw}"))?;
                if let Clause::Param(p) = &mut c {
                    for v in &mut p.values {
                        if let QueryValue::Date(DateQuery { range, approx, .. }) = v {
                            *approx = *range;
                        }
                    }
                }
                Ok(c)
            }
            (T::String, Op::Eq) => one(Some(Modifier::Equal), &raw),
            (T::String, Op::Sw) => one(None, &raw),
            (T::String, Op::Co) => one(Some(Modifier::Contains), &raw),
            (T::String, Op::Ew) => one(Some(Modifier::EndsWith), &raw),
            (T::String, Op::Ne) => Ok(Clause::Not(vec![one(Some(Modifier::Equal), &raw)?])),
            (T::Token, Op::Eq) => one(None, &raw),
            (T::Token, Op::Ne) => one(Some(Modifier::Not), &raw),
            (T::Token | T::Reference | T::Uri, Op::Ss) => one(Some(Modifier::Above), &raw),
            (T::Token | T::Reference | T::Uri, Op::Sb) => one(Some(Modifier::Below), &raw),
            (T::Token, Op::In) => one(Some(Modifier::In), &raw),
            (T::Token, Op::Ni) => one(Some(Modifier::NotIn), &raw),
            (T::Reference, Op::Eq | Op::Re) => one(None, &raw),
            (T::Uri, Op::Eq) => one(None, &raw),
            (T::Uri, Op::Sw) => one(Some(Modifier::Below), &raw),
            (T::Reference | T::Uri | T::Composite, Op::Ne) => {
                Ok(Clause::Not(vec![one(None, &raw)?]))
            }
            (T::Composite | T::Special, Op::Eq) => one(None, &raw),
            _ => Err(refuse()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Prefix, ReferenceQuery};
    use crate::registry::Registry;

    /// Whether `c` is a clause of one plain local reference value.
    fn is_reference(c: &Clause) -> bool {
        matches!(c, Clause::Param(p) if p.modifier.is_none()
            && matches!(p.values.as_slice(), [QueryValue::Reference(ReferenceQuery::Local { .. })]))
    }

    fn cmp(path: &str, op: Op, value: &str) -> Filter {
        Filter::Compare {
            path: path
                .split('.')
                .map(|n| Step {
                    name: n.to_string(),
                    filter: None,
                })
                .collect(),
            op,
            value: value.to_string(),
            text: String::new(),
        }
    }

    /// `Filter` without the `text` of comparisons, for comparing trees.
    fn bare(f: Filter) -> Filter {
        match f {
            Filter::And(v) => Filter::And(v.into_iter().map(bare).collect()),
            Filter::Or(v) => Filter::Or(v.into_iter().map(bare).collect()),
            Filter::Not(x) => Filter::Not(Box::new(bare(*x))),
            Filter::Compare {
                path, op, value, ..
            } => Filter::Compare {
                path: path
                    .into_iter()
                    .map(|s| Step {
                        name: s.name,
                        filter: s.filter.map(|f| Box::new(bare(*f))),
                    })
                    .collect(),
                op,
                value,
                text: String::new(),
            },
        }
    }

    fn p(s: &str) -> Filter {
        bare(parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn comparisons_and_values() {
        assert_eq!(p(r#"name co "pet""#), cmp("name", Op::Co, "pet"));
        assert_eq!(
            p("code eq http://loinc.org|1234-5"),
            cmp("code", Op::Eq, "http://loinc.org|1234-5")
        );
        assert_eq!(p("subject.name co x"), cmp("subject.name", Op::Co, "x"));
        assert_eq!(
            p(r#"name eq "a \"quoted\" \\ \u00e9 (x) and y""#),
            cmp("name", Op::Eq, "a \"quoted\" \\ é (x) and y")
        );
        // Operators and keywords in any case; surrounding whitespace.
        assert_eq!(
            p("  birthdate GE 2014-10-10  "),
            cmp("birthdate", Op::Ge, "2014-10-10")
        );
        for op in [
            "eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "ap", "sa", "eb", "pr", "po",
            "ss", "sb", "in", "ni", "re",
        ] {
            let f = p(&format!("x {op} 1"));
            let Filter::Compare { op: got, .. } = f else {
                panic!("{op}: {f:?}")
            };
            assert_eq!(got.as_str(), op);
        }
    }

    #[test]
    fn logic_precedence_and_groups() {
        let (a, b, c) = (
            cmp("a", Op::Eq, "1"),
            cmp("b", Op::Eq, "2"),
            cmp("c", Op::Eq, "3"),
        );
        // `and` binds tighter than `or`.
        assert_eq!(
            p("a eq 1 or b eq 2 and c eq 3"),
            Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])])
        );
        assert_eq!(
            p("(a eq 1 or b eq 2) and c eq 3"),
            Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()])
        );
        // `not` binds tighter than `and`, and takes a group or a comparison.
        assert_eq!(
            p("not (a eq 1) and b eq 2"),
            Filter::And(vec![Filter::Not(Box::new(a.clone())), b.clone()])
        );
        assert_eq!(
            p("not(a eq 1 or b eq 2)"),
            Filter::Not(Box::new(Filter::Or(vec![a.clone(), b.clone()])))
        );
        assert_eq!(p("((a eq 1))"), a.clone());
        // A value ends at `)`: `(a eq 1)`.
        assert_eq!(p("(a eq 1)or(b eq 2)"), Filter::Or(vec![a, b]));
        // Names that start like keywords are names.
        assert_eq!(p("notes eq x"), cmp("notes", Op::Eq, "x"));
        assert_eq!(p("order eq x"), cmp("order", Op::Eq, "x"));
    }

    #[test]
    fn bracket_filters_on_path_steps() {
        let f = p(r#"subject[gender eq male].name sw "pe""#);
        let Filter::Compare {
            path, op, value, ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!((op, value.as_str()), (Op::Sw, "pe"));
        assert_eq!(path.len(), 2);
        assert_eq!(path[0].name, "subject");
        assert_eq!(
            path[0].filter.as_deref(),
            Some(&cmp("gender", Op::Eq, "male"))
        );
        assert_eq!(path[1].name, "name");
    }

    #[test]
    fn malformed_filters_are_errors_with_positions() {
        for (s, want) in [
            ("", "expected a search parameter name"),
            ("name", "expected a space and an operator"),
            ("name xx y", "expected an operator"),
            ("name eq", "expected a space and a value"),
            ("name eq ", "expected a value"),
            ("(name eq x", "expected `)`"),
            ("name eq x)", "unexpected text"),
            ("name eq x and", "expected a search parameter name"),
            ("name eq \"x", "unterminated string"),
            ("name eq \"\\q\"", "invalid string literal"),
            ("a[b eq c.d eq e", "expected `]`"),
            ("1a eq b", "expected a search parameter name"),
            ("name eq x y", "unexpected text"),
        ] {
            let e = parse(s).expect_err(s);
            assert!(e.contains(want), "{s:?}: {e}");
        }
        let deep = format!("{}a eq 1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().contains("nesting deeper"));
        let nots = format!("{}a eq 1", "not ".repeat(10_000));
        assert!(parse(&nots).unwrap_err().contains("nesting deeper"));
        let long = format!("{}name eq x", "partof.".repeat(10_000));
        assert!(parse(&long).unwrap_err().contains("paths of more than"));
        assert!(parse(&format!("{}name eq x", "partof.".repeat(8))).is_ok());
    }

    fn clauses(ty: &str, f: &str) -> Result<Vec<Clause>, Error> {
        let r = Registry::r4();
        QueryParser::new(&r).filter_clauses(ty, f)
    }

    #[test]
    fn translation_to_clauses() {
        // Plain comparisons become one clause each; `and` is the query's AND.
        let c = clauses("Patient", r#"given eq "peter" and birthdate ge 2014-10-10"#).unwrap();
        assert_eq!(c.len(), 2);
        assert!(
            matches!(&c[0], Clause::Param(p) if p.param.code == "given" && p.modifier == Some(Modifier::Equal))
        );
        assert!(
            matches!(&c[1], Clause::Param(p) if matches!(p.values.as_slice(), [QueryValue::Date(d)] if d.prefix == Prefix::Ge))
        );
        let c = clauses("Patient", "gender eq male or not (gender eq female)").unwrap();
        assert!(
            matches!(c.as_slice(), [Clause::Or(g)] if g.len() == 2 && matches!(g[1].as_slice(), [Clause::Not(_)]))
        );
        // A path through a reference is a chain over the targets having the parameter.
        let c = clauses("Observation", "subject.name co pet").unwrap();
        let [Clause::Chain { param, targets }] = c.as_slice() else {
            panic!("{c:?}")
        };
        assert_eq!(param.code, "subject");
        let mut types: Vec<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
        types.sort();
        // Observation.subject targets Group, Device, Patient and Location; Group and Device
        // have no `name` parameter.
        assert_eq!(types, ["Location", "Patient"], "{types:?}");
        // `re` is a reference equality.
        let c = clauses("Observation", "subject re Patient/1").unwrap();
        assert!(is_reference(&c[0]));
        // `po` on dates is an overlap: `ap` without widening.
        let c = clauses("Patient", "birthdate po 2000").unwrap();
        let [Clause::Param(p)] = c.as_slice() else {
            panic!()
        };
        let [QueryValue::Date(d)] = p.values.as_slice() else {
            panic!()
        };
        assert_eq!((d.prefix, d.approx), (Prefix::Ap, d.range));
    }

    #[test]
    fn operators_that_do_not_apply_are_errors_naming_the_part() {
        for (ty, f, part) in [
            ("Patient", "gender co ma", "gender co ma"),
            ("Patient", "birthdate co 2000", "birthdate co 2000"),
            ("Patient", "name gt x", "name gt x"),
            ("Observation", "subject sw Patient", "subject sw Patient"),
            ("Patient", "name eq x and gender ew le", "gender ew le"),
            ("Patient", "birthdate eq notadate", "birthdate eq notadate"),
            ("Patient", "unknown eq x", "unknown eq x"),
            ("Patient", "gender.name eq x", "gender.name eq x"),
            ("Patient", "name pr maybe", "name pr maybe"),
        ] {
            match clauses(ty, f) {
                Err(Error::InvalidValue { code, value, .. }) => {
                    assert_eq!(code, "_filter", "{f}");
                    assert_eq!(value, part, "{f}");
                }
                other => panic!("{f}: {other:?}"),
            }
        }
    }
}
