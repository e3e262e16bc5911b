//! The type checker: static types for a parsed library (with its resolved includes) and
//! the semantic errors the CQL translator reports before anything runs.
//!
//! Every identifier is resolved the way evaluation resolves it (query aliases, `let`,
//! relationship aliases and function parameters, then the library's defines, parameters,
//! value sets, code systems, codes and concepts, `Patient` in `context Patient`;
//! `Alias.Name` and `Alias.Function(x)` in included libraries), every call to a function
//! (user-defined, fluent, of an included library, FHIRHelpers, or a System operator) is
//! matched against the functions of that name, FHIR properties are looked up in the model
//! definitions (choice elements are choice types, repeating elements lists, primitives the
//! System types FHIRHelpers converts them to), and the System types of operators are
//! inferred with CQL's implicit conversions (Integer to Long to Decimal to Quantity, Date to
//! DateTime, Code to Concept, the FHIRHelpers conversions of FHIR Quantity, Coding,
//! CodeableConcept, Period, Range and Ratio, list promotion and demotion, null to anything).
//!
//! The checker is conservative: a type it cannot know is `Any`, which matches everything,
//! and it reports only definite errors: an unknown identifier, an unknown function, a call
//! whose argument count or statically known argument types match no overload, a property
//! the FHIR type does not have, and operands of definitely wrong types (`1 + 'a'`, a `where`
//! or `if` condition that is an Integer). Each error carries the line and column of the
//! offending name (or of the nearest enclosing one) from [`crate::ast::Positions`].
//! Node kinds it does not know are `Any` with their operands checked.

use crate::ast::*;
use crate::error::SemanticError;
use crate::eval::Resolved;
use crate::value::Value;
use flint_model::defs::definitions;
use std::collections::HashMap;

pub use flint_fhirpath::types::Ty;
use flint_fhirpath::types::{choice, fhir_member, fhir_named};

/// The names the evaluator's System operators and functions answer to (`call_builtin` and
/// the forms `Engine::call` handles itself). A call of any other name that is not a
/// function of the library or of an include is an unknown function.
pub const BUILTINS: &[&str] = &[
    crate::eval::REPEAT,
    crate::eval::RETRIEVE_IN,
    "Abs",
    "Children",
    "children",
    "Descendents",
    "descendents",
    "ExpandValueSet",
    "Add",
    "After",
    "AllFalse",
    "AllTrue",
    "And",
    "AnyFalse",
    "AnyTrue",
    "Avg",
    "Before",
    "Ceiling",
    "Coalesce",
    "Collapse",
    "Combine",
    "ComponentFrom",
    "Concat",
    "Concatenate",
    "Contains",
    "ConvertsToBoolean",
    "ConvertsToDate",
    "ConvertsToDateTime",
    "ConvertsToDecimal",
    "ConvertsToInteger",
    "ConvertsToLong",
    "ConvertsToQuantity",
    "ConvertsToRatio",
    "ConvertsToString",
    "ConvertsToTime",
    "Count",
    "Date",
    "DateTime",
    "DifferenceBetween",
    "DifferenceOf",
    "Distinct",
    "Divide",
    "DurationBetween",
    "DurationOf",
    "End",
    "EndOrPoint",
    "Ends",
    "EndsWith",
    "Equal",
    "Equivalent",
    "Except",
    "Exists",
    "Exp",
    "Expand",
    "First",
    "Flatten",
    "Floor",
    "Greater",
    "GreaterOrEqual",
    "HighBoundary",
    "Implies",
    "In",
    "IncludedIn",
    "Includes",
    "IndexOf",
    "Indexer",
    "Intersect",
    "IsFalse",
    "IsNull",
    "IsTrue",
    "Last",
    "LastPositionOf",
    "Length",
    "Less",
    "LessOrEqual",
    "Ln",
    "Log",
    "LowBoundary",
    "Lower",
    "Matches",
    "Max",
    "MaxValue",
    "Median",
    "Meets",
    "MeetsAfter",
    "MeetsBefore",
    "Message",
    "Min",
    "MinValue",
    "Mode",
    "Modulo",
    "Multiply",
    "Negate",
    "Not",
    "NotEqual",
    "NotEquivalent",
    "Now",
    "OffsetRelation",
    "Or",
    "Overlaps",
    "OverlapsAfter",
    "OverlapsBefore",
    "PointFrom",
    "PopulationStdDev",
    "PopulationVariance",
    "PositionOf",
    "Power",
    "Precision",
    "Predecessor",
    "Product",
    "ProperIncludedIn",
    "ProperIncludes",
    "ProperWithin",
    "ReplaceMatches",
    "Round",
    "SameAs",
    "SameOrAfter",
    "SameOrBefore",
    "SingletonFrom",
    "Size",
    "Skip",
    "Slice",
    "Split",
    "Start",
    "StartOrPoint",
    "Starts",
    "StartsWith",
    "StdDev",
    "Substring",
    "Subtract",
    "Successor",
    "Sum",
    "Tail",
    "Take",
    "Time",
    "TimeOfDay",
    "ToBoolean",
    "ToConcept",
    "ToDate",
    "ToDateTime",
    "ToDecimal",
    "ToInteger",
    "ToList",
    "ToLong",
    "ToQuantity",
    "ToRatio",
    "ToString",
    "ToTime",
    "Today",
    "Truncate",
    "TruncatedDivide",
    "Union",
    "Upper",
    "Variance",
    "Width",
    "Within",
    "Xor",
    "Times",
    "Subsumes",
    "SubsumedBy",
    "SplitOnMatches",
    "ToChars",
    "GeometricMean",
    "CanConvertQuantity",
];

/// Checks a library and, to any depth, the libraries it includes (each once; the built-in
/// FHIRHelpers is known to be clean and skipped): all semantic errors, the first of each
/// library first, in source order. Libraries read from ELM need no check (the translator
/// that wrote the ELM checked them) and have no positions.
pub fn check_resolved(r: &Resolved) -> Vec<SemanticError> {
    let mut out = Vec::new();
    let mut seen: Vec<*const Library> = Vec::new();
    check_tree(r, &mut out, &mut seen);
    out
}

fn check_tree(r: &Resolved, out: &mut Vec<SemanticError>, seen: &mut Vec<*const Library>) {
    let p: *const Library = &*r.library;
    if seen.contains(&p) {
        return;
    }
    seen.push(p);
    for (_, inc) in &r.includes {
        if inc.library.name.as_ref().map(|(n, _)| n.as_str()) == Some("FHIRHelpers") {
            continue;
        }
        check_tree(inc, out, seen);
    }
    let lib = &r.library;
    let from_elm =
        lib.positions.is_empty() && !(lib.defines.is_empty() && lib.functions.is_empty());
    if !from_elm {
        out.extend(check_library(r));
    }
}

/// The semantic errors of `r`'s own library (not of its includes), in source order.
pub fn check_library(r: &Resolved) -> Vec<SemanticError> {
    let mut c = Checker::new(r, &r.library.positions);
    c.check_all();
    c.finish()
}

/// The semantic errors of a stand-alone expression evaluated against `r` (as `$cql` does),
/// with positions from [`crate::parser::parse_expression_with_positions`].
pub fn check_expression(r: &Resolved, e: &Expr, positions: &Positions) -> Vec<SemanticError> {
    let mut c = Checker::new(r, positions);
    c.here = None;
    c.ty(e);
    c.finish()
}

/// The static type of a stand-alone expression against `r`, or its first semantic error.
pub fn type_of(r: &Resolved, e: &Expr, positions: &Positions) -> Result<Ty, SemanticError> {
    let mut c = Checker::new(r, positions);
    let t = c.ty(e);
    match c.finish().into_iter().next() {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

/// The static type of define `name` of `r`'s library (`None` when there is no such define).
pub fn define_type(r: &Resolved, name: &str) -> Option<Ty> {
    let mut c = Checker::new(r, &r.library.positions);
    c.quiet = true;
    r.library
        .defines
        .iter()
        .any(|(n, _)| n == name)
        .then(|| c.define(name))
}

/// How deep the checker walks an expression tree (the evaluator's own nesting limit is
/// lower, so nothing deeper evaluates anyway).
const MAX_DEPTH: usize = 400;

/// A library's name for messages: `Name` or `Name version 'v'`.
fn library_label(lib: &Library) -> Option<String> {
    lib.name.as_ref().map(|(n, v)| match v {
        Some(v) => format!("{n} version '{v}'"),
        None => n.clone(),
    })
}

/// The state of checking one library.
struct Checker<'a> {
    r: &'a Resolved,
    lib: &'a Library,
    positions: &'a Positions,
    /// Aliases, lets and parameters in scope, innermost last.
    scopes: Vec<(String, Ty)>,
    /// Types of defines: `None` while being computed (a cycle is `Any`).
    defines: HashMap<String, Option<Ty>>,
    /// Return types of functions by index: `None` while being computed.
    functions: HashMap<usize, Option<Ty>>,
    /// Checkers of included libraries by alias (their errors are theirs, not reported here).
    included: HashMap<String, Checker<'a>>,
    errors: Vec<SemanticError>,
    /// Position of the enclosing define or function (the fallback of messages).
    here: Option<(usize, usize)>,
    /// Inside `sort by` keys, where a name may be a property of the sorted element.
    lax: usize,
    /// Types only, no errors (a checker asked about an included library).
    quiet: bool,
    /// How deep the walk is (beyond [`MAX_DEPTH`] everything is `Any`).
    depth: usize,
    fhir: bool,
}

impl<'a> Checker<'a> {
    fn new(r: &'a Resolved, positions: &'a Positions) -> Self {
        let lib = &*r.library;
        Checker {
            r,
            lib,
            positions,
            scopes: Vec::new(),
            defines: HashMap::new(),
            functions: HashMap::new(),
            included: HashMap::new(),
            errors: Vec::new(),
            here: None,
            lax: 0,
            quiet: false,
            depth: 0,
            fhir: lib.usings.iter().any(|(m, _)| m == "FHIR"),
        }
    }

    fn finish(mut self) -> Vec<SemanticError> {
        let label = library_label(self.lib);
        for e in &mut self.errors {
            e.library.clone_from(&label);
        }
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.dedup();
        self.errors
    }

    fn check_all(&mut self) {
        let lib = self.lib;
        for (_, _, d) in &lib.parameters {
            if let Some(d) = d {
                self.here = None;
                self.ty(d);
            }
        }
        for (_, c) in lib.codes.iter().chain(&lib.concepts) {
            self.ty(c);
        }
        for (n, _) in &lib.defines {
            self.define(n);
        }
        for i in 0..lib.functions.len() {
            self.function(i);
        }
    }

    fn error(&mut self, at: Option<(usize, usize)>, message: String) {
        if self.quiet {
            return;
        }
        let (line, column) = at.or(self.here).unwrap_or((0, 0));
        self.errors.push(SemanticError {
            library: None,
            line,
            column,
            message,
        });
    }

    /// The position of `e`: of its own name, else of the first name inside it.
    fn pos(&self, e: &Expr) -> Option<(usize, usize)> {
        self.pos_at(e, 0)
    }

    fn pos_at(&self, e: &Expr, depth: usize) -> Option<(usize, usize)> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let own = match e {
            Expr::Ident(n) | Expr::Call(n, ..) | Expr::Member(_, n) | Expr::Retrieve(n, ..) => {
                self.positions.of(n)
            }
            Expr::Code(c) => self.positions.of(&c.system),
            _ => None,
        };
        if own.is_some() {
            return own;
        }
        let mut found = None;
        children(e, &mut |c| {
            if found.is_none() {
                found = self.pos_at(c, depth + 1);
            }
        });
        found
    }

    /// The type of define `name` (checked once).
    fn define(&mut self, name: &str) -> Ty {
        match self.defines.get(name) {
            Some(Some(t)) => return t.clone(),
            Some(None) => return Ty::Any,
            None => {}
        }
        let lib = self.lib;
        let Some((n, body)) = lib.defines.iter().find(|(k, _)| k == name) else {
            return Ty::Any;
        };
        self.defines.insert(name.to_string(), None);
        let scopes = std::mem::take(&mut self.scopes);
        let (here, lax) = (self.here, self.lax);
        self.here = self.positions.of(n);
        self.lax = 0;
        let t = self.ty(body);
        self.here = here;
        self.lax = lax;
        self.scopes = scopes;
        self.defines.insert(name.to_string(), Some(t.clone()));
        t
    }

    /// The return type of function `i` (its body checked once, parameters at their declared
    /// types).
    fn function(&mut self, i: usize) -> Ty {
        match self.functions.get(&i) {
            Some(Some(t)) => return t.clone(),
            Some(None) => return Ty::Any,
            None => {}
        }
        let f = &self.lib.functions[i];
        let Some(body) = &f.body else {
            self.functions.insert(i, Some(Ty::Any));
            return Ty::Any;
        };
        self.functions.insert(i, None);
        let scopes = std::mem::take(&mut self.scopes);
        let (here, lax) = (self.here, self.lax);
        self.here = self.positions.of(&f.name);
        self.lax = 0;
        for (n, t) in &f.params {
            self.scopes.push((n.clone(), spec_ty(t)));
        }
        let t = self.ty(body);
        self.here = here;
        self.lax = lax;
        self.scopes = scopes;
        self.functions.insert(i, Some(t.clone()));
        t
    }

    fn lookup(&self, n: &str) -> Option<&Ty> {
        self.scopes
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t)
    }

    /// The checker of the library included as `alias` (when the caller resolved it).
    fn include(&mut self, alias: &str) -> Option<&mut Checker<'a>> {
        if !self.included.contains_key(alias) {
            let me: &'a Resolved = self.r;
            let r = me.includes.iter().find(|(a, _)| a == alias)?;
            let inc: &'a Resolved = &r.1;
            let mut c = Checker::new(inc, &inc.library.positions);
            c.quiet = true;
            self.included.insert(alias.to_string(), c);
        }
        self.included.get_mut(alias)
    }

    /// Whether `e` names an included library (an alias not shadowed by a scope).
    fn include_alias<'e>(&self, e: &'e Expr) -> Option<&'e str> {
        let Expr::Ident(a) = e else {
            return None;
        };
        if self.lookup(a).is_some() {
            return None;
        }
        self.lib
            .includes
            .iter()
            .any(|(_, _, x)| x == a)
            .then_some(a.as_str())
    }

    /// The library name of include `alias`.
    fn include_name(&self, alias: &str) -> Option<&str> {
        self.lib
            .includes
            .iter()
            .find(|(_, _, a)| a == alias)
            .map(|(n, _, _)| n.as_str())
    }

    /// The type of a library-level name (`None` when there is none).
    fn global(&mut self, n: &str) -> Option<Ty> {
        let lib = self.lib;
        if lib.defines.iter().any(|(k, _)| k == n) {
            return Some(self.define(n));
        }
        if let Some((_, t, d)) = lib.parameters.iter().find(|(k, _, _)| k == n) {
            return Some(match (t, d) {
                (Some(t), _) => spec_ty(t),
                (None, Some(d)) => {
                    let q = self.quiet;
                    self.quiet = true;
                    let t = self.ty(d);
                    self.quiet = q;
                    t
                }
                (None, None) => Ty::Any,
            });
        }
        if lib.valuesets.iter().any(|(k, _)| k == n) || lib.codesystems.iter().any(|c| c.0 == n) {
            return Some(Ty::Vocabulary);
        }
        if lib.codes.iter().any(|(k, _)| k == n) {
            return Some(Ty::Code);
        }
        if lib.concepts.iter().any(|(k, _)| k == n) {
            return Some(Ty::Concept);
        }
        if n == "Patient" && lib.contexts.iter().any(|c| c == "Patient") {
            return Some(Ty::Fhir("Patient".into()));
        }
        None
    }

    /// The type of `e`, with the errors inside it recorded (`Any` unchecked below
    /// [`MAX_DEPTH`] levels, which keeps the stack bounded; evaluation stops far sooner).
    fn ty(&mut self, e: &Expr) -> Ty {
        if self.depth >= MAX_DEPTH {
            return Ty::Any;
        }
        self.depth += 1;
        let t = self.ty_inner(e);
        self.depth -= 1;
        t
    }

    fn ty_inner(&mut self, e: &Expr) -> Ty {
        match e {
            Expr::Lit(v) => value_ty(v),
            Expr::Ident(n) => {
                if let Some(t) = self.lookup(n) {
                    return t.clone();
                }
                if let Some(t) = self.global(n) {
                    return t;
                }
                if self.lax == 0 {
                    let at = self.pos(e);
                    self.error(at, format!("could not resolve identifier `{n}`"));
                }
                Ty::Any
            }
            Expr::Member(t, n) => {
                if let Some(alias) = self.include_alias(t) {
                    let at = self.pos(e);
                    let lib = self.include_name(alias).unwrap_or(alias).to_string();
                    let Some(inc) = self.include(alias) else {
                        return Ty::Any;
                    };
                    return match inc.global(n) {
                        Some(t) => t,
                        None => {
                            self.error(
                                at,
                                format!("could not resolve identifier `{n}` in library `{lib}`"),
                            );
                            Ty::Any
                        }
                    };
                }
                let tt = self.ty(t);
                self.member(&tt, n, e)
            }
            Expr::Index(a, i) => {
                let at = self.ty(a);
                let it = self.ty(i);
                self.expect(&it, &Ty::Int, i, "an index");
                match at {
                    Ty::List(t) => *t,
                    Ty::Str => Ty::Str,
                    _ => Ty::Any,
                }
            }
            Expr::If(c, a, b) => {
                let ct = self.ty(c);
                self.condition(&ct, c, "an if condition");
                let at = self.ty(a);
                let bt = self.ty(b);
                unify(&at, &bt)
            }
            Expr::Case(op, items, el) => {
                let ot = op.as_ref().map(|o| self.ty(o));
                let mut t: Option<Ty> = None;
                for (w, th) in items {
                    let wt = self.ty(w);
                    match &ot {
                        Some(ot) => {
                            if !comparable(ot, &wt) {
                                let at = self.pos(w);
                                self.error(
                                    at,
                                    format!("a case of {ot} cannot be compared with {wt}"),
                                );
                            }
                        }
                        None => self.condition(&wt, w, "a when condition"),
                    }
                    let tt = self.ty(th);
                    t = Some(match t {
                        None => tt,
                        Some(t) => unify(&t, &tt),
                    });
                }
                let et = self.ty(el);
                match t {
                    None => et,
                    Some(t) => unify(&t, &et),
                }
            }
            Expr::Interval(l, _, h, _) => {
                let lt = self.ty(l);
                let ht = self.ty(h);
                if !comparable(&lt, &ht) {
                    let at = self.pos(e);
                    self.error(
                        at,
                        format!("an interval cannot have a low of {lt} and a high of {ht}"),
                    );
                    return Ty::Interval(Box::new(Ty::Any));
                }
                Ty::Interval(Box::new(unify(&lt, &ht)))
            }
            Expr::List(spec, items) => {
                let mut t: Option<Ty> = None;
                for i in items {
                    let it = self.ty(i);
                    t = Some(match t {
                        None => it,
                        Some(t) => unify(&t, &it),
                    });
                }
                match spec {
                    Some(s) => Ty::List(Box::new(spec_ty(s))),
                    None => Ty::List(Box::new(t.unwrap_or(Ty::Any))),
                }
            }
            Expr::Tuple(els) => {
                let mut es = Vec::new();
                for (n, v) in els {
                    let t = self.ty(v);
                    es.push((n.clone(), t));
                }
                Ty::Tuple(es)
            }
            Expr::Instance(t, els) => {
                for (_, v) in els {
                    self.ty(v);
                }
                match t.as_str() {
                    "Code" => Ty::Code,
                    "Concept" => Ty::Concept,
                    "Quantity" if !self.fhir => Ty::Quantity,
                    "Ratio" if !self.fhir => Ty::Ratio,
                    _ => Ty::Any,
                }
            }
            Expr::Code(c) if c.library.is_none() => {
                let sys = &c.system;
                if !self.lib.codesystems.iter().any(|c| &c.0 == sys) {
                    let at = self.pos(e);
                    self.error(at, format!("could not resolve code system `{sys}`"));
                }
                Ty::Code
            }
            Expr::Code(c) => {
                let (sys, alias) = (&c.system, c.library.as_deref().unwrap_or_default());
                let known = if self.lib.includes.iter().any(|(_, _, a)| a == alias) {
                    // Checked only when the caller resolved the include.
                    self.include(alias)
                        .is_none_or(|c| c.lib.codesystems.iter().any(|c| &c.0 == sys))
                } else {
                    false
                };
                if !known {
                    let at = self.pos(e);
                    self.error(at, format!("could not resolve code system `{alias}.{sys}`"));
                }
                Ty::Code
            }
            Expr::Concept(cs, _) => {
                for c in cs {
                    let t = self.ty(c);
                    if !assignable(&t, &Ty::Code) {
                        let at = self.pos(c);
                        self.error(at, format!("a Concept is made of Codes, not of {t}"));
                    }
                }
                Ty::Concept
            }
            Expr::Is(x, _) => {
                self.ty(x);
                Ty::Bool
            }
            Expr::As(x, t, _) | Expr::Convert(x, t) => {
                self.ty(x);
                self.spec_in_context(t)
            }
            Expr::ConvertUnit(x, _) => {
                let t = self.ty(x);
                self.expect(&t, &Ty::Quantity, x, "a unit conversion");
                Ty::Quantity
            }
            Expr::Query(q) => self.query(q),
            Expr::Retrieve(t, path, codes) => {
                let defs = definitions();
                let known = defs.is_resource_type(t);
                if self.fhir && !known && defs.type_def(t).is_none() {
                    let at = self.pos(e);
                    self.error(
                        at,
                        format!("could not resolve the FHIR resource type `{t}`"),
                    );
                }
                if let (Some(p), Some(td)) = (path, defs.type_def(t))
                    && td.element(p).is_none()
                    && td.resolve_property(p).is_none()
                {
                    let at = self.pos(e);
                    self.error(at, format!("FHIR type `{t}` has no element `{p}`"));
                }
                if let Some(c) = codes {
                    self.ty(c);
                }
                Ty::List(Box::new(if known { Ty::Fhir(t.clone()) } else { Ty::Any }))
            }
            Expr::Call(name, args, _) => self.call(name, args, e),
            // A node kind added after this checker: not known, so `Any`.
            #[allow(unreachable_patterns)]
            _ => Ty::Any,
        }
    }

    /// The type a type specifier names here (`Quantity` and `Ratio` are ambiguous between
    /// System and FHIR when the library uses FHIR).
    fn spec_in_context(&self, t: &TypeSpec) -> Ty {
        match t {
            TypeSpec::Named(n) if self.fhir && (n == "Quantity" || n == "Ratio") => Ty::Any,
            t => spec_ty(t),
        }
    }

    /// Reports `t` (of `e`) when it is definitely not a Boolean.
    fn condition(&mut self, t: &Ty, e: &Expr, what: &str) {
        if !assignable(t, &Ty::Bool) && !matches!(t, Ty::List(_)) {
            let at = self.pos(e);
            self.error(at, format!("{what} must be a Boolean, not {t}"));
        }
    }

    /// Reports `t` (of `e`) when it definitely does not convert to `want`.
    fn expect(&mut self, t: &Ty, want: &Ty, e: &Expr, what: &str) {
        if !assignable(t, want) {
            let at = self.pos(e);
            self.error(at, format!("{what} must be {want}, not {t}"));
        }
    }

    fn member(&mut self, t: &Ty, n: &str, e: &Expr) -> Ty {
        match t {
            Ty::List(x) => match self.member(x, n, e) {
                Ty::List(y) => Ty::List(y),
                y => Ty::List(Box::new(y)),
            },
            Ty::Tuple(es) => match es.iter().find(|(k, _)| k == n) {
                Some((_, t)) => t.clone(),
                None => {
                    let at = self.pos(e);
                    self.error(at, format!("{t} has no element `{n}`"));
                    Ty::Any
                }
            },
            Ty::Fhir(ty) => self.fhir_member(ty, n, e),
            Ty::Quantity => match n {
                "value" => Ty::Dec,
                "unit" => Ty::Str,
                _ => Ty::Any,
            },
            Ty::Code => match n {
                "code" | "system" | "version" | "display" => Ty::Str,
                _ => Ty::Any,
            },
            Ty::Concept => match n {
                "codes" => Ty::List(Box::new(Ty::Code)),
                "display" => Ty::Str,
                _ => Ty::Any,
            },
            Ty::Interval(p) => match n {
                "low" | "high" => (**p).clone(),
                "lowClosed" | "highClosed" => Ty::Bool,
                _ => Ty::Any,
            },
            Ty::Choice(ts) => {
                let mut out: Vec<Ty> = Vec::new();
                let q = self.quiet;
                self.quiet = true;
                for t in ts {
                    out.push(self.member(t, n, e));
                }
                self.quiet = q;
                choice(out)
            }
            // `.value` of a read primitive, and anything of what is not known.
            _ => Ty::Any,
        }
    }

    fn fhir_member(&mut self, ty: &str, n: &str, e: &Expr) -> Ty {
        match fhir_member(ty, n) {
            Some(t) => t,
            None => {
                let at = self.pos(e);
                self.error(at, format!("FHIR type `{ty}` has no element `{n}`"));
                Ty::Any
            }
        }
    }

    fn query(&mut self, q: &Query) -> Ty {
        let base = self.scopes.len();
        let mut single = true;
        let mut row = Vec::new();
        for (s, a) in &q.sources {
            let st = self.ty(s);
            let at = match st {
                Ty::List(t) => {
                    single = false;
                    *t
                }
                Ty::Any => {
                    single = false;
                    Ty::Any
                }
                t => t,
            };
            row.push((a.clone(), at.clone()));
            self.scopes.push((a.clone(), at));
        }
        if q.sources.len() > 1 {
            single = false;
        }
        // The row's position (`$index`, FHIRPath-style invocations).
        self.scopes.push((crate::eval::INDEX.into(), Ty::Int));
        for (n, e) in &q.lets {
            let t = self.ty(e);
            self.scopes.push((n.clone(), t));
        }
        for rel in &q.rels {
            let st = self.ty(&rel.source);
            let at = match st {
                Ty::List(t) => *t,
                t => t,
            };
            self.scopes.push((rel.alias.clone(), at));
            let ct = self.ty(&rel.cond);
            self.condition(&ct, &rel.cond, "a such that condition");
            self.scopes.pop();
        }
        if let Some(w) = &q.where_ {
            let wt = self.ty(w);
            self.condition(&wt, w, "a where condition");
        }
        let mut out = if q.sources.len() == 1 {
            row[0].1.clone()
        } else {
            Ty::Tuple(row)
        };
        if let Some((_, n, start, e)) = &q.aggregate {
            let st = start.as_ref().map_or(Ty::Any, |s| self.ty(s));
            self.scopes.push((n.clone(), st));
            let t = self.ty(e);
            self.scopes.truncate(base);
            return t;
        }
        if let Some((_, e)) = &q.ret {
            out = self.ty(e);
        }
        if let Some(items) = &q.sort {
            // Sort keys see the elements of the result (tuple elements, FHIR properties).
            self.lax += 1;
            if let Ty::Tuple(es) = &out {
                for (n, t) in es {
                    self.scopes.push((n.clone(), t.clone()));
                }
            }
            for it in items {
                if let Some(k) = &it.key {
                    self.ty(k);
                }
            }
            self.lax -= 1;
        }
        self.scopes.truncate(base);
        if single { out } else { Ty::List(Box::new(out)) }
    }

    fn call(&mut self, name: &str, args: &[Expr], e: &Expr) -> Ty {
        // `Repeat` (source, element, scope name): the element expression sees each element
        // under the scope name; the elements' types are not followed through the repetition.
        if name == crate::eval::REPEAT
            && let [src, el, Expr::Lit(crate::value::Value::Str(scope))] = args
        {
            self.ty(src);
            let base = self.scopes.len();
            self.scopes.push((scope.clone(), Ty::Any));
            self.scopes.push((crate::eval::INDEX.into(), Ty::Int));
            self.ty(el);
            self.scopes.truncate(base);
            return Ty::List(Box::new(Ty::Any));
        }
        // `Alias.Function(x)`: a function of an included library.
        if let Some(alias) = args.first().and_then(|a| self.include_alias(a)) {
            let rest: Vec<Ty> = args[1..].iter().map(|a| self.ty(a)).collect();
            let lib = self.include_name(alias).unwrap_or(alias).to_string();
            let at = self.pos(e);
            if lib == "FHIRHelpers" && helper_ty(name).is_some() && rest.len() == 1 {
                return helper_ty(name).unwrap_or(Ty::Any);
            }
            let Some(inc) = self.include(alias) else {
                return Ty::Any;
            };
            let res = inc.user_call(name, &rest);
            return match res {
                Resolution::Found(t) => t,
                Resolution::NoSuchName => {
                    self.error(
                        at,
                        format!("could not resolve function `{name}` in library `{lib}`"),
                    );
                    Ty::Any
                }
                Resolution::NoOverload(m) => {
                    self.error(at, format!("{m} (library `{lib}`)"));
                    Ty::Any
                }
            };
        }
        let tys: Vec<Ty> = args.iter().map(|a| self.ty(a)).collect();
        if let Some(t) = age_ty(name, args.len()) {
            return t;
        }
        match self.user_call(name, &tys) {
            Resolution::Found(t) => return t,
            Resolution::NoOverload(m) => {
                let at = self.pos(e);
                self.error(at, m);
                return Ty::Any;
            }
            Resolution::NoSuchName => {}
        }
        if !BUILTINS.contains(&name) {
            let at = self.pos(e);
            self.error(at, format!("could not resolve function `{name}`"));
            return Ty::Any;
        }
        match builtin(name, &tys) {
            Ok(t) => t,
            Err(m) => {
                let at = self.pos(e);
                self.error(at, m);
                Ty::Any
            }
        }
    }

    /// Overload resolution among the library's functions named `name`.
    fn user_call(&mut self, name: &str, tys: &[Ty]) -> Resolution {
        let lib = self.lib;
        let named: Vec<usize> = (0..lib.functions.len())
            .filter(|&i| lib.functions[i].name == name)
            .collect();
        if named.is_empty() {
            return Resolution::NoSuchName;
        }
        let arity: Vec<usize> = named
            .iter()
            .copied()
            .filter(|&i| lib.functions[i].params.len() == tys.len())
            .collect();
        if arity.is_empty() {
            return Resolution::NoOverload(format!(
                "no overload of function `{name}` takes {} argument{}",
                tys.len(),
                if tys.len() == 1 { "" } else { "s" }
            ));
        }
        let fits = |i: &usize| {
            lib.functions[*i]
                .params
                .iter()
                .zip(tys)
                .all(|((_, p), a)| assignable(a, &spec_ty(p)))
        };
        let exact = |i: &usize| {
            lib.functions[*i]
                .params
                .iter()
                .zip(tys)
                .all(|((_, p), a)| exact(a, &spec_ty(p)))
        };
        let fitting: Vec<usize> = arity.iter().copied().filter(fits).collect();
        if fitting.is_empty() {
            let args: Vec<String> = tys.iter().map(ToString::to_string).collect();
            return Resolution::NoOverload(format!(
                "no overload of function `{name}` matches the arguments ({})",
                args.join(", ")
            ));
        }
        let chosen = fitting
            .iter()
            .copied()
            .find(exact)
            .or_else(|| (fitting.len() == 1).then(|| fitting[0]));
        Resolution::Found(match chosen {
            Some(i) => self.function(i),
            None => Ty::Any,
        })
    }
}

/// How a call resolved among user-defined functions.
enum Resolution {
    /// To a function returning this type (Any when several fit equally).
    Found(Ty),
    /// There is no function of that name.
    NoSuchName,
    /// Functions of that name exist, but none takes these arguments.
    NoOverload(String),
}

/// Calls `f` on each direct sub-expression of `e`.
pub(crate) fn children(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    match e {
        Expr::Lit(_) | Expr::Ident(_) | Expr::Code(..) => {}
        Expr::Member(t, _) => f(t),
        Expr::Index(a, i) => {
            f(a);
            f(i)
        }
        Expr::If(c, a, b) => {
            f(c);
            f(a);
            f(b)
        }
        Expr::Case(o, items, el) => {
            if let Some(o) = o {
                f(o)
            }
            for (w, t) in items {
                f(w);
                f(t)
            }
            f(el)
        }
        Expr::Interval(l, _, h, _) => {
            f(l);
            f(h)
        }
        Expr::List(_, xs) | Expr::Concept(xs, _) | Expr::Call(_, xs, _) => xs.iter().for_each(f),
        Expr::Tuple(es) | Expr::Instance(_, es) => es.iter().for_each(|(_, x)| f(x)),
        Expr::Is(x, _) | Expr::As(x, _, _) | Expr::Convert(x, _) | Expr::ConvertUnit(x, _) => f(x),
        Expr::Query(q) => {
            for (s, _) in &q.sources {
                f(s)
            }
            for (_, x) in &q.lets {
                f(x)
            }
            for r in &q.rels {
                f(&r.source);
                f(&r.cond)
            }
            if let Some(w) = &q.where_ {
                f(w)
            }
            if let Some((_, r)) = &q.ret {
                f(r)
            }
            if let Some((_, _, start, e)) = &q.aggregate {
                if let Some(s) = start {
                    f(s)
                }
                f(e)
            }
            for it in q.sort.iter().flatten() {
                if let Some(k) = &it.key {
                    f(k)
                }
            }
        }
        Expr::Retrieve(_, _, Some(c)) => f(c),
        Expr::Retrieve(_, _, None) => {}
        // A node kind added after this checker.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// The type of a literal value.
fn value_ty(v: &Value) -> Ty {
    match v {
        Value::Null => Ty::Null,
        Value::Bool(_) => Ty::Bool,
        Value::Int(_) => Ty::Int,
        Value::Long(_) => Ty::Long,
        Value::Dec(_) => Ty::Dec,
        Value::Str(_) => Ty::Str,
        Value::Date(_) => Ty::Date,
        Value::DateTime(_) => Ty::DateTime,
        Value::Time(_) => Ty::Time,
        Value::Quantity(..) => Ty::Quantity,
        Value::Ratio(..) => Ty::Ratio,
        Value::Code(_) => Ty::Code,
        Value::Concept(..) => Ty::Concept,
        _ => Ty::Any,
    }
}

/// The type a type specifier names (FHIR primitives are the System types they are read
/// as; `Quantity` and `Ratio` may be System or FHIR).
pub fn spec_ty(t: &TypeSpec) -> Ty {
    match t {
        TypeSpec::Named(n) => named_ty(n),
        TypeSpec::List(x) => Ty::List(Box::new(spec_ty(x))),
        TypeSpec::Interval(x) => Ty::Interval(Box::new(spec_ty(x))),
        TypeSpec::Tuple(_) => Ty::Any,
        TypeSpec::Choice(ts) => choice(ts.iter().map(spec_ty).collect()),
    }
}

fn named_ty(n: &str) -> Ty {
    match n {
        "Boolean" => Ty::Bool,
        "Integer" => Ty::Int,
        "Long" => Ty::Long,
        "Decimal" => Ty::Dec,
        "String" => Ty::Str,
        "Date" => Ty::Date,
        "DateTime" => Ty::DateTime,
        "Time" => Ty::Time,
        "Quantity" => Ty::Choice(vec![Ty::Quantity, Ty::Fhir("Quantity".into())]),
        "Ratio" => Ty::Choice(vec![Ty::Ratio, Ty::Fhir("Ratio".into())]),
        "Code" => Ty::Code,
        "Concept" => Ty::Concept,
        "ValueSet" | "CodeSystem" | "Vocabulary" => Ty::Vocabulary,
        n => fhir_named(n),
    }
}

/// The System type a FHIR type converts to (FHIRHelpers), if it converts.
fn fhir_system(n: &str) -> Option<Ty> {
    let q = |t: &str| crate::fhir::is_a(n, t);
    Some(if q("Quantity") {
        Ty::Quantity
    } else if n == "Ratio" {
        Ty::Ratio
    } else if n == "Coding" {
        Ty::Code
    } else if n == "CodeableConcept" {
        Ty::Concept
    } else if n == "Period" {
        Ty::Interval(Box::new(Ty::DateTime))
    } else if n == "Range" {
        Ty::Interval(Box::new(Ty::Quantity))
    } else {
        return None;
    })
}

/// `t` with FHIR types FHIRHelpers converts replaced by their System types.
fn system(t: &Ty) -> Ty {
    match t {
        Ty::Fhir(n) => fhir_system(n).unwrap_or_else(|| t.clone()),
        t => t.clone(),
    }
}

/// The numeric rank of a System type (Integer < Long < Decimal < Quantity).
fn rank(t: &Ty) -> Option<u8> {
    match t {
        Ty::Int => Some(0),
        Ty::Long => Some(1),
        Ty::Dec => Some(2),
        Ty::Quantity => Some(3),
        _ => None,
    }
}

/// Whether `t` is statically unknown (matches everything).
fn open(t: &Ty) -> bool {
    matches!(t, Ty::Any | Ty::Null)
}

/// Whether a value of type `a` passes for `b` without conversion.
fn exact(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Null, _) => true,
        (Ty::List(x), Ty::List(y)) | (Ty::Interval(x), Ty::Interval(y)) => exact(x, y),
        (Ty::Fhir(x), Ty::Fhir(y)) => crate::fhir::is_a(x, y),
        (_, Ty::Choice(ys)) => ys.iter().any(|y| exact(a, y)),
        (a, b) => a == b,
    }
}

/// Whether a value of type `a` converts implicitly to `b` (or may, when not known):
/// numeric widening, Date to DateTime, Code to Concept, FHIRHelpers conversions, list
/// promotion and demotion.
pub fn assignable(a: &Ty, b: &Ty) -> bool {
    if open(a) || open(b) || a == b {
        return true;
    }
    match (a, b) {
        (Ty::Choice(xs), _) => xs.iter().any(|x| assignable(x, b)),
        (_, Ty::Choice(ys)) => ys.iter().any(|y| assignable(a, y)),
        (Ty::List(x), Ty::List(y)) | (Ty::Interval(x), Ty::Interval(y)) => assignable(x, y),
        // Promotion of one element to a list and demotion of a list to its one element.
        (Ty::List(x), y) | (y, Ty::List(x)) => assignable(x, y) || assignable(y, x),
        (Ty::Fhir(x), Ty::Fhir(y)) => {
            let defs = definitions();
            crate::fhir::is_a(x, y)
                || defs.type_def(y).is_none_or(|t| t.is_abstract)
                || defs.type_def(x).is_none_or(|t| t.is_abstract)
        }
        (Ty::Fhir(x), b) => fhir_system(x).is_none_or(|s| assignable(&s, b)),
        // System values where FHIR types are declared (evaluation reads FHIR as System).
        (a, Ty::Fhir(y)) => fhir_system(y).is_none_or(|s| assignable(a, &s)),
        (Ty::Tuple(_), Ty::Tuple(_)) => true,
        (Ty::Date, Ty::DateTime) | (Ty::Code, Ty::Concept) => true,
        (a, b) => matches!((rank(a), rank(b)), (Some(x), Some(y)) if x <= y),
    }
}

/// Whether values of types `a` and `b` can be compared (one converts to the other).
pub fn comparable(a: &Ty, b: &Ty) -> bool {
    assignable(a, b) || assignable(b, a)
}

/// The common type of `a` and `b` (the wider of two convertible types, else `Any`).
fn unify(a: &Ty, b: &Ty) -> Ty {
    match (a, b) {
        (Ty::Null, t) | (t, Ty::Null) => t.clone(),
        (Ty::List(x), Ty::List(y)) => Ty::List(Box::new(unify(x, y))),
        (Ty::Interval(x), Ty::Interval(y)) => Ty::Interval(Box::new(unify(x, y))),
        (a, b) if a == b => a.clone(),
        (a, b)
            if matches!(a, Ty::Any | Ty::Choice(_) | Ty::Fhir(_) | Ty::Tuple(_))
                || matches!(b, Ty::Any | Ty::Choice(_) | Ty::Fhir(_) | Ty::Tuple(_)) =>
        {
            Ty::Any
        }
        (a, b) if assignable(a, b) => b.clone(),
        (a, b) if assignable(b, a) => a.clone(),
        _ => Ty::Any,
    }
}

/// The type FHIRHelpers function `name` returns, if it is one of its conversions.
fn helper_ty(name: &str) -> Option<Ty> {
    Some(match name {
        "ToQuantity" => Ty::Quantity,
        "ToRatio" => Ty::Ratio,
        "ToCode" => Ty::Code,
        "ToConcept" => Ty::Concept,
        "ToInterval" => Ty::Interval(Box::new(Ty::Any)),
        "ToString" => Ty::Str,
        "ToBoolean" => Ty::Bool,
        "ToInteger" => Ty::Int,
        "ToDecimal" => Ty::Dec,
        "ToDate" => Ty::Date,
        "ToDateTime" => Ty::DateTime,
        "ToTime" => Ty::Time,
        _ => return None,
    })
}

/// The type of `AgeInYears()`, `AgeInYearsAt(d)`, `CalculateAgeInYears(b)`, ... with `n`
/// arguments (`None` for other names).
fn age_ty(name: &str, n: usize) -> Option<Ty> {
    let (calc, rest) = match name.strip_prefix("Calculate") {
        Some(r) => (true, r),
        None => (false, name),
    };
    let rest = rest.strip_prefix("AgeIn")?;
    let (unit, at) = match rest.strip_suffix("At") {
        Some(u) => (u, true),
        None => (rest, false),
    };
    let units = [
        "Years", "Months", "Weeks", "Days", "Hours", "Minutes", "Seconds",
    ];
    (units.contains(&unit) && n == usize::from(calc) + usize::from(at)).then_some(Ty::Int)
}

/// The element type of a list type (`Any` when not known to be a list).
fn elem(t: &Ty) -> Ty {
    match t {
        Ty::List(x) => (**x).clone(),
        _ => Ty::Any,
    }
}

/// The point type of an interval type.
fn point(t: &Ty) -> Ty {
    match system(t) {
        Ty::Interval(x) => *x,
        _ => Ty::Any,
    }
}

/// Whether `t` is a definitely known scalar System type of one of `fams`.
fn known_scalar(t: &Ty) -> bool {
    matches!(
        t,
        Ty::Bool
            | Ty::Int
            | Ty::Long
            | Ty::Dec
            | Ty::Str
            | Ty::Date
            | Ty::DateTime
            | Ty::Time
            | Ty::Quantity
            | Ty::Ratio
            | Ty::Code
            | Ty::Concept
            | Ty::Vocabulary
    )
}

fn arith_err(name: &str, a: &Ty, b: &Ty) -> String {
    format!("no overload of operator `{name}` matches the arguments ({a}, {b})")
}

/// The result type of System operator `name` on arguments of types `tys`, or the error
/// when the known types fit none of its signatures.
fn builtin(name: &str, tys: &[Ty]) -> Result<Ty, String> {
    let sys: Vec<Ty> = tys.iter().map(system).collect();
    let a = sys.first().cloned().unwrap_or(Ty::Any);
    let b = sys.get(1).cloned().unwrap_or(Ty::Any);
    let both_scalar = known_scalar(&a) && known_scalar(&b);
    Ok(match name {
        "And" | "Or" | "Xor" | "Implies" | "Not" => {
            for t in &sys {
                if known_scalar(t) && *t != Ty::Bool {
                    return Err(format!(
                        "no overload of operator `{name}` matches an argument of type {t}"
                    ));
                }
            }
            Ty::Bool
        }
        "Equal" | "NotEqual" | "Equivalent" | "NotEquivalent" => {
            if both_scalar && !comparable(&a, &b) {
                return Err(arith_err(name, &a, &b));
            }
            Ty::Bool
        }
        "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => {
            if both_scalar
                && (!comparable(&a, &b)
                    || matches!(a, Ty::Bool | Ty::Code | Ty::Concept | Ty::Vocabulary))
            {
                return Err(arith_err(name, &a, &b));
            }
            Ty::Bool
        }
        "Add" | "Subtract" => {
            if both_scalar {
                let temporal = |t: &Ty| matches!(t, Ty::Date | Ty::DateTime | Ty::Time);
                if temporal(&a) && b == Ty::Quantity || temporal(&a) && rank(&b).is_some() {
                    if rank(&b) != Some(3) {
                        return Err(arith_err(name, &a, &b));
                    }
                    return Ok(a);
                }
                if name == "Add" && a == Ty::Str && b == Ty::Str {
                    return Ok(Ty::Str);
                }
                return match (rank(&a), rank(&b)) {
                    (Some(x), Some(y)) => Ok(if x >= y { a } else { b }),
                    _ => Err(arith_err(name, &a, &b)),
                };
            }
            Ty::Any
        }
        "Multiply" | "Divide" | "TruncatedDivide" | "Modulo" | "Power" => {
            if both_scalar {
                return match (rank(&a), rank(&b)) {
                    (Some(x), Some(y)) => {
                        let w = if x >= y { a } else { b };
                        Ok(if name == "Divide" && rank(&w) < Some(2) {
                            Ty::Dec
                        } else {
                            w
                        })
                    }
                    _ => Err(arith_err(name, &a, &b)),
                };
            }
            Ty::Any
        }
        "Negate" | "Abs" => {
            if known_scalar(&a) && rank(&a).is_none() {
                return Err(format!(
                    "no overload of `{name}` matches an argument of type {a}"
                ));
            }
            if known_scalar(&a) { a } else { Ty::Any }
        }
        "Concat" | "Concatenate" => {
            for t in &sys {
                if known_scalar(t) && *t != Ty::Str {
                    return Err(format!(
                        "no overload of `{name}` matches an argument of type {t}"
                    ));
                }
            }
            Ty::Str
        }
        "Width" => {
            let p = point(&a);
            if matches!(p, Ty::Date | Ty::DateTime | Ty::Time) {
                return Err(format!("`width of` is not defined for an interval of {p}"));
            }
            p
        }
        "Start" | "End" | "PointFrom" => point(&a),
        "Exists" | "IsNull" | "IsTrue" | "IsFalse" | "In" | "Contains" | "Includes"
        | "IncludedIn" | "ProperIncludes" | "ProperIncludedIn" | "Before" | "After" | "SameAs"
        | "SameOrBefore" | "SameOrAfter" | "Meets" | "MeetsBefore" | "MeetsAfter" | "Overlaps"
        | "OverlapsBefore" | "OverlapsAfter" | "Starts" | "Ends" | "Within" | "ProperWithin"
        | "StartsWith" | "EndsWith" | "Matches" | "AllTrue" | "AnyTrue" | "AllFalse"
        | "AnyFalse" | "OffsetRelation" => Ty::Bool,
        n if n.starts_with("ConvertsTo") => Ty::Bool,
        "Count" | "Length" | "PositionOf" | "LastPositionOf" | "IndexOf" => Ty::Int,
        "First" | "Last" | "SingletonFrom" | "Sum" | "Min" | "Max" => {
            elem(&tys.first().cloned().unwrap_or(Ty::Any))
        }
        "Upper" | "Lower" | "Substring" | "ToString" | "ReplaceMatches" => Ty::Str,
        "Today" | "ToDate" | "Date" => Ty::Date,
        "Now" | "ToDateTime" | "DateTime" => Ty::DateTime,
        "TimeOfDay" | "ToTime" | "Time" => Ty::Time,
        "ToInteger" => Ty::Int,
        "ToLong" => Ty::Long,
        "ToDecimal" => Ty::Dec,
        "ToBoolean" => Ty::Bool,
        "ToQuantity" => Ty::Quantity,
        "ToConcept" => Ty::Concept,
        "ToRatio" => Ty::Ratio,
        "Message" => tys.first().cloned().unwrap_or(Ty::Any),
        "Subsumes" | "SubsumedBy" => {
            for t in &sys {
                if known_scalar(t) && !matches!(t, Ty::Code | Ty::Concept) {
                    return Err(format!(
                        "no overload of `{name}` matches an argument of type {t}"
                    ));
                }
            }
            Ty::Bool
        }
        "SplitOnMatches" | "ToChars" => {
            for t in &sys {
                if known_scalar(t) && *t != Ty::Str {
                    return Err(format!(
                        "no overload of `{name}` matches an argument of type {t}"
                    ));
                }
            }
            Ty::List(Box::new(Ty::Str))
        }
        "CanConvertQuantity" => {
            if known_scalar(&a) && a != Ty::Quantity || known_scalar(&b) && b != Ty::Str {
                return Err(format!(
                    "no overload of `{name}` matches the arguments ({a}, {b})"
                ));
            }
            Ty::Bool
        }
        "GeometricMean" => Ty::Dec,
        "Times" => match (&a, &b) {
            (Ty::List(x), Ty::List(y)) => match (&**x, &**y) {
                (Ty::Tuple(l), Ty::Tuple(r)) => {
                    Ty::List(Box::new(Ty::Tuple(l.iter().chain(r).cloned().collect())))
                }
                _ => Ty::List(Box::new(Ty::Any)),
            },
            _ => Ty::List(Box::new(Ty::Any)),
        },
        _ => Ty::Any,
    })
}

#[cfg(test)]
mod tests;
