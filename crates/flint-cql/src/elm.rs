//! ELM input: a library in the JSON form of the reference translator (cqframework cql-to-elm,
//! npm `@cqframework/cql`) read into the same [`Library`]/[`Expr`] tree the CQL parser builds,
//! so the evaluator runs ELM unchanged.
//!
//! Read: the library header (`identifier`, `usings` without `System`, `includes`, `parameters`
//! with their defaults and type specifiers, `codeSystems`, `valueSets`, `codes`, `concepts`,
//! `contexts`, or the contexts named on the statements) and `statements` (`ExpressionDef`s and
//! `FunctionDef`s, `fluent` and `external` ones too). Expressions: `Literal` (Boolean,
//! Integer, Long, Decimal, String, and Date, DateTime, Time, Quantity text; the parser's range
//! checks), `Null`, `Quantity` and `Ratio` (decimals with their scale as written), `Interval`
//! (closedness given or computed), `List`, `Tuple`, `Instance`, `Code`, `Concept`, the
//! `Date`/`DateTime`/`Time` constructors (literal components fold to a literal, as the
//! parser's `@` literals; `Negate` of an Integer or Long literal is the negative literal), every
//! System operator the evaluator has (logical, nullological, comparison, arithmetic, string,
//! date/time with `precision`, interval and list operators, aggregates with a `path`,
//! `Message`), `If`, `Case`, `Is`/`As`/`Convert`/`CanConvert` with a type name or specifier,
//! the `To*` and `ConvertsTo*` conversions, `ConvertQuantity` to a literal unit,
//! `ExpressionRef`, `FunctionRef`, `ParameterRef`, `CodeSystemRef`, `ValueSetRef`, `CodeRef`,
//! `ConceptRef` (each with `libraryName`), `OperandRef`, `AliasRef`, `QueryLetRef`,
//! `IdentifierRef`, `Property` (`source`, `scope` or neither; dotted paths), `Query` (sources,
//! `let`, `With`/`Without` with `suchThat`, `where`, `return` (distinct unless
//! `"distinct": false`, as ELM defines it), `aggregate`, `sort` by direction, column or
//! expression), `Retrieve` (`dataType`, `codeProperty`, `codes`; `context`, a retrieve in the
//! context of another value such as a Patient, answered by
//! [`crate::DataProvider::retrieve_related`]; `id` on `idProperty` (default `id`), and
//! `dateRange` on `dateProperty` or on the interval from `dateLowProperty` to
//! `dateHighProperty`, as filters of the retrieve), `InValueSet`/`AnyInValueSet`/
//! `InCodeSystem`/`AnyInCodeSystem`, `ExpandValueSet` (through
//! [`crate::DataProvider::expand_vocabulary`]), `CalculateAge`/`CalculateAgeAt`, `Children`,
//! `Descendents`, `Repeat` (with its `scope`), `Filter`, `ForEach` and `Sort` as the
//! queries they abbreviate, `Aggregate` (FHIRPath's `aggregate`) as a query with an aggregate
//! clause whose accumulator is `$total`, `Current` (the `scope` named, else the innermost
//! enclosing one, else `$this`), `Iteration` (`$index`) and `Total` (`$total`), `Times`,
//! `Subsumes`/`SubsumedBy` (through [`crate::DataProvider::subsumes`]), `SplitOnMatches`,
//! `ToChars`, `GeometricMean`, `CanConvertQuantity`; code system references with a
//! `libraryName` (a code system of an included library).
//!
//! Operators without their own [`Expr`] become the forms the parser builds: `Indexer` is
//! [`Expr::Index`], `ProperIn`/`ProperContains` are `ProperIncludedIn`/`ProperIncludes`,
//! `DateFrom`/`TimeFrom`/`TimezoneOffsetFrom`/`DateTimeComponentFrom` are `ComponentFrom` with
//! a precision, `CalculateAge` is `CalculateAgeIn<Unit>s[At]`, `ToList` a null test, the
//! `ToList` around a retrieve's code is dropped (the provider takes the code), `SameOrBefore`/
//! `SameOrAfter` compare the facing boundaries (`EndOrPoint`/`StartOrPoint`) as the parser's
//! `on or before`, and `expand ... per` a Quantity of unit `'1'` expands by the number. A type
//! test or cast to a FHIR primitive (`Is FHIR.dateTime`, which the translator writes for choice
//! elements) also admits the System value Flint reads that primitive as.
//!
//! Not read (an [`Error::Elm`] naming the node `type` and its `locator`, the nearest enclosing
//! one when the node has none): nodes the evaluator has no operator for, retrieves with
//! `includedIn` or non-empty 1.5.3 filter lists,
//! a `dateRange` without a date property, and
//! `ConvertQuantity` to a computed unit. Ignored: annotations, `localId`, result types,
//! signatures, access levels, `templateId`, `codeComparator` (codes match as the parser's
//! retrieve does). A `DateTime` constructor with a computed component
//! and an offset loses the offset (the evaluator's constructor takes leading components).
//! Input nested deeper than 500 levels (a query counts 4) is refused, which keeps the reader
//! on a 2 MiB stack; `serde_json` itself stops at 128 JSON levels when
//! [`library_from_elm_bytes`] parses.

use crate::ast::*;
use crate::error::Error;
use crate::temporal::Tm;
use crate::value::Value;
use rust_decimal::Decimal;
use serde_json::{Map, Value as J};
use std::str::FromStr;

type R<T> = Result<T, Error>;
type Obj = Map<String, J>;

/// Deepest nesting of ELM expressions read (keeps the stack bounded on hostile input).
const MAX_DEPTH: usize = 500;

/// Reads an ELM library (`{"library": {...}}` or the library object itself).
pub fn library_from_elm(json: &J) -> Result<Library, Error> {
    let lib = json.get("library").unwrap_or(json);
    let Some(lib) = lib.as_object() else {
        return Err(Error::Elm("an ELM library must be a JSON object".into()));
    };
    Reader::default().library(lib)
}

/// Parses ELM JSON text and reads its library (see [`library_from_elm`]).
pub fn library_from_elm_bytes(bytes: &[u8]) -> Result<Library, Error> {
    let json: J = serde_json::from_slice(bytes)
        .map_err(|e| Error::Elm(format!("the ELM is not valid JSON: {e}")))?;
    library_from_elm(&json)
}

/// Reads one ELM expression node (as found under a define's `expression`).
pub fn expr_from_elm(json: &J) -> Result<Expr, Error> {
    Reader::default().expr(json)
}

/// The walk over the ELM tree: the locators of the enclosing nodes, for errors.
#[derive(Default)]
struct Reader {
    locs: Vec<Option<String>>,
    /// The scopes of the enclosing `ForEach`/`Filter`/`Sort`/`Repeat`/`Aggregate` nodes
    /// (what a `Current` without a `scope` names).
    scopes: Vec<String>,
    /// Nesting so far, in units of [`MAX_DEPTH`] (a query's frame costs several).
    depth: usize,
}

/// What one level of a node costs against [`MAX_DEPTH`] (about the reader's stack use).
fn weight(ty: &str) -> usize {
    match ty {
        "Query" => 4,
        _ => 1,
    }
}

/// The local name of a qualified type name (`{urn:hl7-org:elm-types:r1}Integer`,
/// `System.Integer`, `{http://hl7.org/fhir}Observation`).
fn local_name(q: &str) -> String {
    let q = q.rsplit('}').next().unwrap_or(q);
    q.rsplit('.').next().unwrap_or(q).to_string()
}

/// The System type a FHIR primitive reads as (`FHIR.dateTime` elements are System DateTimes
/// once read), for a qualified name in the FHIR namespace.
fn fhir_primitive_system(q: &str) -> Option<&'static str> {
    let local = q
        .strip_prefix("{http://hl7.org/fhir}")
        .or_else(|| q.strip_prefix("FHIR."))?;
    Some(match local {
        "boolean" => "Boolean",
        "integer" | "positiveInt" | "unsignedInt" => "Integer",
        "integer64" => "Long",
        "decimal" => "Decimal",
        "date" => "Date",
        "dateTime" | "instant" => "DateTime",
        "time" => "Time",
        "string" | "code" | "id" | "markdown" | "uri" | "url" | "canonical" | "oid" | "uuid"
        | "base64Binary" | "xhtml" => "String",
        _ => return None,
    })
}

/// A named type; a FHIR primitive also admits the System value it reads as (the translator
/// resolves choice elements with `Is`/`As` of FHIR primitives).
fn named_type(q: &str) -> TypeSpec {
    let named = TypeSpec::Named(local_name(q));
    match fhir_primitive_system(q) {
        Some(sys) => TypeSpec::Choice(vec![named, TypeSpec::Named(sys.into())]),
        None => named,
    }
}

/// The location of a node: its `locator` (`12:3-12:20`) or first trackback.
fn locator(o: &Obj) -> Option<String> {
    if let Some(l) = o.get("locator").and_then(J::as_str) {
        return Some(l.to_string());
    }
    let t = o.get("trackbacks")?.as_array()?.first()?.as_object()?;
    let n = |k: &str| t.get(k).and_then(J::as_i64);
    Some(format!(
        "{}:{}-{}:{}",
        n("startLine")?,
        n("startChar")?,
        n("endLine")?,
        n("endChar")?
    ))
}

fn str_of<'j>(o: &'j Obj, k: &str) -> Option<&'j str> {
    o.get(k).and_then(J::as_str)
}

fn bool_of(o: &Obj, k: &str) -> Option<bool> {
    match o.get(k) {
        Some(J::Bool(b)) => Some(*b),
        Some(J::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// The entries of a `{"def": [...]}` section (absent: none).
fn defs<'j>(lib: &'j Obj, k: &str) -> Vec<&'j Obj> {
    lib.get(k)
        .and_then(|s| s.get("def"))
        .and_then(J::as_array)
        .map(|a| a.iter().filter_map(J::as_object).collect())
        .unwrap_or_default()
}

/// A JSON value that is present and not null.
fn present<'j>(o: &'j Obj, k: &str) -> Option<&'j J> {
    o.get(k).filter(|v| !v.is_null())
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Call(name.into(), args, None)
}

/// A reference by name, through an included library's alias when `libraryName` is set.
fn reference(o: &Obj, name: &str) -> Expr {
    match str_of(o, "libraryName") {
        Some(lib) => Expr::Member(Box::new(Expr::Ident(lib.into())), name.into()),
        None => Expr::Ident(name.into()),
    }
}

/// The decimal of a JSON number or string, with the scale as written (`5.0`).
fn decimal_of(v: &J) -> Option<Decimal> {
    let text = match v {
        J::Number(n) => n.to_string(),
        J::String(s) => s.clone(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

/// An Integer literal's value.
fn int_literal(e: &Expr) -> Option<i32> {
    match e {
        Expr::Lit(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// Operators whose ELM node (with `operand`) is the evaluator's operator of the same name.
const SAME_NAME: &[&str] = &[
    "Not",
    "IsNull",
    "IsTrue",
    "IsFalse",
    "Coalesce",
    "Xor",
    "Implies",
    "Equal",
    "NotEqual",
    "Equivalent",
    "NotEquivalent",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    "TruncatedDivide",
    "Modulo",
    "Power",
    "Abs",
    "Ceiling",
    "Floor",
    "Truncate",
    "Ln",
    "Exp",
    "Log",
    "Precision",
    "LowBoundary",
    "HighBoundary",
    "Successor",
    "Predecessor",
    "Concatenate",
    "Length",
    "Upper",
    "Lower",
    "StartsWith",
    "EndsWith",
    "Matches",
    "ReplaceMatches",
    "Now",
    "Today",
    "TimeOfDay",
    "DurationBetween",
    "DifferenceBetween",
    "Exists",
    "Start",
    "End",
    "Width",
    "Size",
    "PointFrom",
    "SingletonFrom",
    "In",
    "Contains",
    "Includes",
    "IncludedIn",
    "ProperIncludes",
    "ProperIncludedIn",
    "Before",
    "After",
    "SameAs",
    "SameOrBefore",
    "SameOrAfter",
    "Meets",
    "MeetsBefore",
    "MeetsAfter",
    "Overlaps",
    "OverlapsBefore",
    "OverlapsAfter",
    "Starts",
    "Ends",
    "Except",
    "Distinct",
    "Flatten",
    "Collapse",
    "Expand",
    "ToBoolean",
    "ToConcept",
    "ToDate",
    "ToDateTime",
    "ToDecimal",
    "ToInteger",
    "ToLong",
    "ToQuantity",
    "ToRatio",
    "ToString",
    "ToTime",
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
    "Times",
    "Subsumes",
    "SubsumedBy",
    "ToChars",
    "CanConvertQuantity",
];

/// How many operands an operator of [`SAME_NAME`] takes (at least, at most).
fn arity(ty: &str) -> (usize, usize) {
    match ty {
        "Now" | "Today" | "TimeOfDay" => (0, 0),
        "Coalesce" | "Concatenate" => (1, usize::MAX),
        "Collapse" | "Expand" => (1, 2),
        "ReplaceMatches" => (3, 3),
        "Xor" | "Implies" | "Equal" | "NotEqual" | "Equivalent" | "NotEquivalent" | "Less"
        | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Add" | "Subtract" | "Multiply"
        | "Divide" | "TruncatedDivide" | "Modulo" | "Power" | "Log" | "LowBoundary"
        | "HighBoundary" | "StartsWith" | "EndsWith" | "Matches" | "DurationBetween"
        | "DifferenceBetween" | "In" | "Contains" | "Includes" | "IncludedIn"
        | "ProperIncludes" | "ProperIncludedIn" | "Before" | "After" | "SameAs"
        | "SameOrBefore" | "SameOrAfter" | "Meets" | "MeetsBefore" | "MeetsAfter" | "Overlaps"
        | "OverlapsBefore" | "OverlapsAfter" | "Starts" | "Ends" | "Except" | "Times"
        | "Subsumes" | "SubsumedBy" | "CanConvertQuantity" => (2, 2),
        _ => (1, 1),
    }
}

/// Aggregate operators (`source`, optional `path`).
const AGGREGATES: &[&str] = &[
    "Count",
    "Sum",
    "Product",
    "Min",
    "Max",
    "Avg",
    "Median",
    "Mode",
    "Variance",
    "PopulationVariance",
    "StdDev",
    "PopulationStdDev",
    "AllTrue",
    "AnyTrue",
    "AllFalse",
    "AnyFalse",
    "GeometricMean",
];

impl Reader {
    /// An error at the innermost known location.
    fn error(&self, msg: impl Into<String>) -> Error {
        let msg = msg.into();
        match self.locs.iter().rev().flatten().next() {
            Some(l) => Error::Elm(format!("{msg} (at {l})")),
            None => Error::Elm(msg),
        }
    }

    // ---- the library ----

    fn library(&mut self, lib: &Obj) -> R<Library> {
        let mut out = Library::default();
        if let Some(id) = lib.get("identifier").and_then(J::as_object)
            && let Some(name) = str_of(id, "id")
        {
            out.name = Some((name.into(), str_of(id, "version").map(str::to_string)));
        }
        for u in defs(lib, "usings") {
            let name = str_of(u, "localIdentifier").unwrap_or_default();
            if name == "System" || str_of(u, "uri") == Some("urn:hl7-org:elm-types:r1") {
                continue;
            }
            out.usings
                .push((name.into(), str_of(u, "version").map(str::to_string)));
        }
        for i in defs(lib, "includes") {
            let path = str_of(i, "path").ok_or_else(|| self.error("ELM include without a path"))?;
            let alias = str_of(i, "localIdentifier").unwrap_or(path);
            out.includes.push((
                path.into(),
                str_of(i, "version").map(str::to_string),
                alias.into(),
            ));
        }
        for c in defs(lib, "codeSystems") {
            out.codesystems.push((
                self.name_of(c, "CodeSystemDef")?,
                self.id_of(c, "CodeSystemDef")?,
                str_of(c, "version").map(str::to_string),
            ));
        }
        for v in defs(lib, "valueSets") {
            out.valuesets.push((
                self.name_of(v, "ValueSetDef")?,
                self.id_of(v, "ValueSetDef")?,
            ));
        }
        for c in defs(lib, "codes") {
            let system = c.get("codeSystem").and_then(J::as_object);
            let name = system
                .and_then(|s| str_of(s, "name"))
                .ok_or_else(|| self.error("ELM CodeDef without a codeSystem"))?;
            let code = CodeSelector::expr(
                self.id_of(c, "CodeDef")?,
                name.into(),
                system
                    .and_then(|s| str_of(s, "libraryName"))
                    .map(str::to_string),
                str_of(c, "display").map(str::to_string),
            );
            out.codes.push((self.name_of(c, "CodeDef")?, code));
        }
        for c in defs(lib, "concepts") {
            let codes = c
                .get("code")
                .and_then(J::as_array)
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .filter_map(J::as_object)
                .map(|r| match str_of(r, "name") {
                    Some(n) => Ok(reference(r, n)),
                    None => Err(self.error("ELM ConceptDef code reference without a name")),
                })
                .collect::<R<Vec<_>>>()?;
            let concept = Expr::Concept(codes, str_of(c, "display").map(str::to_string));
            out.concepts.push((self.name_of(c, "ConceptDef")?, concept));
        }
        for p in defs(lib, "parameters") {
            self.locs.push(locator(p));
            let name = self.name_of(p, "ParameterDef")?;
            let ty = self.type_of(p, "parameterType", "parameterTypeSpecifier")?;
            let default = match present(p, "default") {
                Some(d) => Some(self.expr(d)?),
                None => None,
            };
            self.locs.pop();
            out.parameters.push((name, ty, default));
        }
        for c in defs(lib, "contexts") {
            if let Some(n) = str_of(c, "name") {
                out.contexts.push(n.into());
            }
        }
        for s in defs(lib, "statements") {
            self.locs.push(locator(s));
            let name = self.name_of(s, "ExpressionDef")?;
            // Libraries from before `contexts` existed name the context on each statement.
            if let Some(c) = str_of(s, "context")
                && c != "Unfiltered"
                && !out.contexts.iter().any(|x| x == c)
            {
                out.contexts.push(c.into());
            }
            if str_of(s, "type") == Some("FunctionDef") {
                let f = self.function(s, name)?;
                out.functions.push(f);
            } else {
                let e = present(s, "expression")
                    .ok_or_else(|| self.error(format!("ELM define '{name}' has no expression")))?;
                let e = self.expr(e)?;
                if let Some(c) = str_of(s, "context") {
                    out.define_contexts.push((name.clone(), c.into()));
                }
                out.defines.push((name, e));
            }
            self.locs.pop();
        }
        Ok(out)
    }

    fn name_of(&self, o: &Obj, what: &str) -> R<String> {
        str_of(o, "name")
            .map(str::to_string)
            .ok_or_else(|| self.error(format!("ELM {what} without a name")))
    }

    fn id_of(&self, o: &Obj, what: &str) -> R<String> {
        str_of(o, "id")
            .map(str::to_string)
            .ok_or_else(|| self.error(format!("ELM {what} without an id")))
    }

    fn function(&mut self, s: &Obj, name: String) -> R<FunctionDef> {
        let mut params = Vec::new();
        for op in s
            .get("operand")
            .and_then(J::as_array)
            .map(|a| a.as_slice())
            .unwrap_or_default()
        {
            let Some(op) = op.as_object() else {
                return Err(self.error(format!("ELM FunctionDef '{name}': bad operand")));
            };
            let pn = self.name_of(op, "OperandDef")?;
            let t = self
                .type_of(op, "operandType", "operandTypeSpecifier")?
                .unwrap_or_else(|| TypeSpec::Named("Any".into()));
            params.push((pn, t));
        }
        let external = bool_of(s, "external").unwrap_or(false);
        let body = match present(s, "expression") {
            Some(e) if !external => Some(self.expr(e)?),
            None if !external => {
                return Err(self.error(format!("ELM FunctionDef '{name}' has no expression")));
            }
            _ => None,
        };
        Ok(FunctionDef {
            name,
            params,
            body,
            fluent: bool_of(s, "fluent").unwrap_or(false),
        })
    }

    // ---- types ----

    /// A type given by a qualified name (`name_key`) or a specifier (`spec_key`).
    #[inline(never)]
    fn type_of(&mut self, o: &Obj, name_key: &str, spec_key: &str) -> R<Option<TypeSpec>> {
        if let Some(s) = present(o, spec_key) {
            return Ok(Some(self.type_spec(s)?));
        }
        Ok(str_of(o, name_key).map(named_type))
    }

    #[inline(never)]
    fn type_spec(&mut self, t: &J) -> R<TypeSpec> {
        if let Some(q) = t.as_str() {
            return Ok(named_type(q));
        }
        let Some(o) = t.as_object() else {
            return Err(self.error("ELM type specifier is not an object"));
        };
        let ty = str_of(o, "type").unwrap_or_default();
        Ok(match ty {
            "NamedTypeSpecifier" => named_type(
                str_of(o, "name").ok_or_else(|| self.error("NamedTypeSpecifier without a name"))?,
            ),
            "ListTypeSpecifier" => {
                let e = self.field(o, ty, "elementType")?;
                TypeSpec::List(Box::new(self.type_spec(e)?))
            }
            "IntervalTypeSpecifier" => {
                let p = self.field(o, ty, "pointType")?;
                TypeSpec::Interval(Box::new(self.type_spec(p)?))
            }
            "TupleTypeSpecifier" => {
                let mut els = Vec::new();
                for e in o
                    .get("element")
                    .and_then(J::as_array)
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                {
                    let Some(e) = e.as_object() else {
                        return Err(self.error("TupleTypeSpecifier: bad element"));
                    };
                    let n = self.name_of(e, "TupleElementDefinition")?;
                    // `elementType` (ELM 1.4+) or the older `type`.
                    let t = present(e, "elementType")
                        .or_else(|| e.get("type").filter(|t| t.is_object()))
                        .ok_or_else(|| self.error("TupleElementDefinition without a type"))?;
                    els.push((n, self.type_spec(t)?));
                }
                TypeSpec::Tuple(els)
            }
            "ChoiceTypeSpecifier" => {
                let items = present(o, "choice")
                    .or_else(|| o.get("type").filter(|t| t.is_array()))
                    .and_then(J::as_array)
                    .ok_or_else(|| self.error("ChoiceTypeSpecifier without choices"))?;
                TypeSpec::Choice(items.iter().map(|c| self.type_spec(c)).collect::<R<_>>()?)
            }
            t => return Err(self.error(format!("unsupported ELM type specifier '{t}'"))),
        })
    }

    // ---- fields ----

    fn field<'j>(&self, o: &'j Obj, ty: &str, k: &str) -> R<&'j J> {
        present(o, k).ok_or_else(|| self.error(format!("ELM {ty}: missing '{k}'")))
    }

    fn sub(&mut self, o: &Obj, ty: &str, k: &str) -> R<Expr> {
        let v = self.field(o, ty, k)?;
        self.expr(v)
    }

    fn opt_sub(&mut self, o: &Obj, k: &str) -> R<Option<Expr>> {
        match present(o, k) {
            Some(v) => Ok(Some(self.expr(v)?)),
            None => Ok(None),
        }
    }

    /// The `operand`s (an array, or one node for a unary operator).
    fn operands(&mut self, o: &Obj) -> R<Vec<Expr>> {
        match present(o, "operand") {
            None => Ok(vec![]),
            Some(J::Array(xs)) => xs.iter().map(|x| self.expr(x)).collect(),
            Some(x) => Ok(vec![self.expr(x)?]),
        }
    }

    /// The JSON of the single `operand` (an object, or an array of one).
    fn one_operand<'j>(&self, o: &'j Obj) -> Option<&'j J> {
        match present(o, "operand")? {
            J::Array(xs) if xs.len() == 1 => xs.first(),
            x @ J::Object(_) => Some(x),
            _ => None,
        }
    }

    /// Exactly `n` operands.
    fn operands_n(&mut self, o: &Obj, ty: &str, n: usize) -> R<Vec<Expr>> {
        let ops = self.operands(o)?;
        if ops.len() != n {
            return Err(self.error(format!("ELM {ty}: {} operand(s), expected {n}", ops.len())));
        }
        Ok(ops)
    }

    /// The `precision` attribute as the parser writes it (`Day` is `day`).
    fn precision(o: &Obj) -> Option<String> {
        str_of(o, "precision").map(str::to_lowercase)
    }

    // ---- expressions ----

    fn expr(&mut self, n: &J) -> R<Expr> {
        let Some(o) = n.as_object() else {
            return Err(self.error("ELM expression is not an object"));
        };
        let Some(ty) = str_of(o, "type") else {
            return Err(self.error("ELM expression without a type"));
        };
        let w = weight(ty);
        if self.depth + w > MAX_DEPTH {
            return Err(self.error("ELM nested too deeply"));
        }
        self.depth += w;
        self.locs.push(locator(o));
        let r = self.node(ty, o);
        self.locs.pop();
        self.depth -= w;
        r
    }

    fn node(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        if SAME_NAME.contains(&ty) {
            return self.same_name(ty, o);
        }
        if AGGREGATES.contains(&ty) {
            return self.aggregate(ty, o);
        }
        match ty {
            "Literal" | "Null" | "Quantity" | "Ratio" | "Interval" | "List" | "Tuple"
            | "Instance" | "Code" | "Concept" | "Date" | "DateTime" | "Time" => {
                self.selector(ty, o)
            }
            "ExpressionRef" | "ParameterRef" | "CodeSystemRef" | "ValueSetRef" | "CodeRef"
            | "ConceptRef" | "IdentifierRef" | "OperandRef" | "AliasRef" | "QueryLetRef"
            | "FunctionRef" | "Property" => self.refs(ty, o),
            "If" | "Case" | "Is" | "As" | "Convert" | "CanConvert" | "ConvertQuantity"
            | "InValueSet" | "AnyInValueSet" | "InCodeSystem" | "AnyInCodeSystem" | "Query"
            | "Retrieve" => self.control(ty, o),
            _ => self.operator(ty, o),
        }
    }

    /// An operator of [`SAME_NAME`]: its operands, checked against its arity.
    #[inline(never)]
    fn same_name(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        let mut args = self.operands(o)?;
        let (min, max) = arity(ty);
        if args.len() < min || args.len() > max {
            return Err(self.error(format!(
                "ELM {ty}: {} operand(s), expected {}",
                args.len(),
                if min == max {
                    min.to_string()
                } else {
                    format!("{min} to {max}")
                }
            )));
        }
        match ty {
            // ELM compares the facing boundaries of intervals (`A on or before B`: A ends on
            // or before B starts); the evaluator's operator takes the boundaries, as the
            // parser gives them.
            "SameOrBefore" | "SameOrAfter" => {
                let (l, r) = if ty == "SameOrBefore" {
                    ("EndOrPoint", "StartOrPoint")
                } else {
                    ("StartOrPoint", "EndOrPoint")
                };
                let b = args.pop().unwrap_or(Expr::Lit(Value::Null));
                let a = args.pop().unwrap_or(Expr::Lit(Value::Null));
                args = vec![call(l, vec![a]), call(r, vec![b])];
            }
            // `expand X per 2` on numbers: the per is the Quantity `2 '1'` in ELM, the
            // number the parser reads.
            "Expand" => {
                if let Some(Expr::Lit(Value::Quantity(d, u))) = args.get(1)
                    && u == "1"
                {
                    let n = if d.scale() == 0 {
                        i32::try_from(d.mantissa()).ok().map(Value::Int)
                    } else {
                        None
                    };
                    args[1] = Expr::Lit(n.unwrap_or(Value::Dec(*d)));
                }
            }
            _ => {}
        }
        Ok(Expr::Call(ty.into(), args, Self::precision(o)))
    }

    /// An aggregate over `source` (the `path` of each element when given).
    #[inline(never)]
    fn aggregate(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        let src = self.sub(o, ty, "source")?;
        let src = match str_of(o, "path") {
            Some(p) => Self::path_of(src, p),
            None => src,
        };
        Ok(call(ty, vec![src]))
    }

    /// Literals and selectors.
    #[inline(never)]
    fn selector(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        Ok(match ty {
            "Literal" => self.literal(o)?,
            "Null" => Expr::Lit(Value::Null),
            "Quantity" => Expr::Lit(self.quantity(o)?),
            "Ratio" => {
                let q = |r: &mut Self, k: &str| -> R<Value> {
                    let v = r.field(o, ty, k)?;
                    let Some(q) = v.as_object() else {
                        return Err(r.error(format!("ELM Ratio: '{k}' is not a Quantity")));
                    };
                    r.quantity(q)
                };
                let (a, b) = (q(self, "numerator")?, q(self, "denominator")?);
                Expr::Lit(Value::Ratio(Box::new(a), Box::new(b)))
            }
            "Interval" => {
                let low = self.opt_sub(o, "low")?.unwrap_or(Expr::Lit(Value::Null));
                let high = self.opt_sub(o, "high")?.unwrap_or(Expr::Lit(Value::Null));
                let lce = self.opt_sub(o, "lowClosedExpression")?;
                let hce = self.opt_sub(o, "highClosedExpression")?;
                let lc = bool_of(o, "lowClosed").unwrap_or(true);
                let hc = bool_of(o, "highClosed").unwrap_or(true);
                if lce.is_some() || hce.is_some() {
                    // Closedness computed at run time: the Interval instance selector.
                    let b = |e: Option<Expr>, v: bool| e.unwrap_or(Expr::Lit(Value::Bool(v)));
                    Expr::Instance(
                        "Interval".into(),
                        vec![
                            ("low".into(), low),
                            ("lowClosed".into(), b(lce, lc)),
                            ("high".into(), high),
                            ("highClosed".into(), b(hce, hc)),
                        ],
                    )
                } else {
                    Expr::Interval(Box::new(low), lc, Box::new(high), hc)
                }
            }
            "List" => {
                let t = match present(o, "typeSpecifier") {
                    Some(t) => match self.type_spec(t)? {
                        TypeSpec::List(e) => Some(*e),
                        t => Some(t),
                    },
                    None => None,
                };
                let items = self.array(o, "element", |r, e| r.expr(e))?;
                Expr::List(t, items)
            }
            "Tuple" => Expr::Tuple(self.elements(o)?),
            "Instance" => {
                let class = str_of(o, "classType")
                    .ok_or_else(|| self.error("ELM Instance without a classType"))?;
                Expr::Instance(local_name(class), self.elements(o)?)
            }
            "Code" => self.code(o)?,
            "Concept" => {
                let codes = self.array(o, "code", |r, c| match c.as_object() {
                    Some(c) => r.code(c),
                    None => Err(r.error("ELM Concept: bad code")),
                })?;
                Expr::Concept(codes, str_of(o, "display").map(str::to_string))
            }
            "Date" | "DateTime" | "Time" => self.temporal(ty, o)?,
            t => return Err(self.error(format!("unsupported ELM node type '{t}'"))),
        })
    }

    /// References and property access.
    #[inline(never)]
    fn refs(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        Ok(match ty {
            "ExpressionRef" | "ParameterRef" | "CodeSystemRef" | "ValueSetRef" | "CodeRef"
            | "ConceptRef" | "IdentifierRef" => reference(o, &self.name_of(o, ty)?),
            "OperandRef" | "AliasRef" | "QueryLetRef" => Expr::Ident(self.name_of(o, ty)?),
            "FunctionRef" => {
                let name = self.name_of(o, ty)?;
                let mut args = Vec::new();
                if let Some(lib) = str_of(o, "libraryName") {
                    args.push(Expr::Ident(lib.into()));
                }
                args.extend(self.operands(o)?);
                Expr::Call(name, args, None)
            }
            "Property" => {
                let path =
                    str_of(o, "path").ok_or_else(|| self.error("ELM Property without a path"))?;
                match (present(o, "source"), str_of(o, "scope")) {
                    (Some(s), _) => {
                        let s = self.expr(s)?;
                        Self::path_of(s, path)
                    }
                    (None, Some(scope)) => Self::path_of(Expr::Ident(scope.into()), path),
                    (None, None) => {
                        let mut parts = path.split('.');
                        let first = Expr::Ident(parts.next().unwrap_or_default().into());
                        parts.fold(first, |e, p| Expr::Member(Box::new(e), p.into()))
                    }
                }
            }
            t => return Err(self.error(format!("unsupported ELM node type '{t}'"))),
        })
    }

    /// Conditionals, type operators, membership, queries and retrieves.
    #[inline(never)]
    fn control(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        Ok(match ty {
            "If" => Expr::If(
                Box::new(self.sub(o, ty, "condition")?),
                Box::new(self.sub(o, ty, "then")?),
                Box::new(self.sub(o, ty, "else")?),
            ),
            "Case" => {
                let comparand = self.opt_sub(o, "comparand")?.map(Box::new);
                let items = self.array(o, "caseItem", |r, i| match i.as_object() {
                    Some(i) => Ok((r.sub(i, "CaseItem", "when")?, r.sub(i, "CaseItem", "then")?)),
                    None => Err(r.error("ELM Case: bad caseItem")),
                })?;
                let el = self.sub(o, ty, "else")?;
                Expr::Case(comparand, items, Box::new(el))
            }
            "Is" => {
                let x = self.sub(o, ty, "operand")?;
                let t = self
                    .type_of(o, "isType", "isTypeSpecifier")?
                    .ok_or_else(|| self.error("ELM Is without a type"))?;
                Expr::Is(Box::new(x), t)
            }
            "As" => {
                let x = self.sub(o, ty, "operand")?;
                let t = self
                    .type_of(o, "asType", "asTypeSpecifier")?
                    .ok_or_else(|| self.error("ELM As without a type"))?;
                Expr::As(Box::new(x), t, bool_of(o, "strict").unwrap_or(false))
            }
            "Convert" => {
                let x = self.sub(o, ty, "operand")?;
                let t = self
                    .type_of(o, "toType", "toTypeSpecifier")?
                    .ok_or_else(|| self.error("ELM Convert without a type"))?;
                Expr::Convert(Box::new(x), t)
            }
            "CanConvert" => {
                let x = self.sub(o, ty, "operand")?;
                let t = self
                    .type_of(o, "toType", "toTypeSpecifier")?
                    .ok_or_else(|| self.error("ELM CanConvert without a type"))?;
                let name = format!("ConvertsTo{}", crate::parser::type_name(&t));
                if !SAME_NAME.contains(&name.as_str()) {
                    return Err(self.error(format!("ELM CanConvert to {t:?} is not supported")));
                }
                call(&name, vec![x])
            }
            "ConvertQuantity" => {
                let mut ops = self.operands_n(o, ty, 2)?;
                match ops.pop() {
                    Some(Expr::Lit(Value::Str(u))) => Expr::ConvertUnit(Box::new(ops.remove(0)), u),
                    _ => {
                        return Err(
                            self.error("ELM ConvertQuantity to a computed unit is not supported")
                        );
                    }
                }
            }
            "InValueSet" | "AnyInValueSet" | "InCodeSystem" | "AnyInCodeSystem" => {
                let (what, voc) = match ty {
                    "InValueSet" => ("code", "valueset"),
                    "AnyInValueSet" => ("codes", "valueset"),
                    "InCodeSystem" => ("code", "codesystem"),
                    _ => ("codes", "codesystem"),
                };
                let x = self.sub(o, ty, what)?;
                let v = match present(o, voc) {
                    // The reference node itself, possibly without its `type`.
                    Some(J::Object(r)) if !r.contains_key("type") => {
                        reference(r, &self.name_of(r, ty)?)
                    }
                    Some(r) => self.expr(r)?,
                    None => self.sub(o, ty, &format!("{voc}Expression"))?,
                };
                call("In", vec![x, v])
            }
            "Query" => self.query(o)?,
            "Retrieve" => self.retrieve(o)?,

            t => return Err(self.error(format!("unsupported ELM node type '{t}'"))),
        })
    }

    /// Operators with their own ELM shape.
    #[allow(clippy::too_many_lines)]
    #[inline(never)]
    fn operator(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        Ok(match ty {
            "And" | "Or" | "Union" | "Intersect" => {
                // Binary in ELM, n-ary in some producers: folded to the left.
                let mut ops = self.operands(o)?.into_iter();
                let first = ops
                    .next()
                    .ok_or_else(|| self.error(format!("ELM {ty} without operands")))?;
                let e = ops.fold(first, |l, r| call(ty, vec![l, r]));
                if matches!(e, Expr::Call(..)) {
                    e
                } else {
                    return Err(self.error(format!("ELM {ty} with one operand")));
                }
            }
            "Negate" => {
                // A negative literal, as the parser reads `-1` (reaching the minimum Integer).
                let lit = self.one_operand(o).and_then(J::as_object).filter(|l| {
                    str_of(l, "type") == Some("Literal")
                        && matches!(
                            str_of(l, "valueType").map(local_name).as_deref(),
                            Some("Integer" | "Long")
                        )
                });
                if let Some(l) = lit {
                    let text = match l.get("value") {
                        Some(J::String(s)) => s.clone(),
                        Some(J::Number(n)) => n.to_string(),
                        _ => return Err(self.error("ELM Literal: bad value")),
                    };
                    let neg = format!("-{text}");
                    let long = str_of(l, "valueType").is_some_and(|t| t.ends_with("Long"));
                    return if long {
                        neg.parse()
                            .map(|i| Expr::Lit(Value::Long(i)))
                            .map_err(|_| self.error(format!("Long literal out of range: {neg}")))
                    } else {
                        neg.parse()
                            .map(|i| Expr::Lit(Value::Int(i)))
                            .map_err(|_| self.error(format!("Integer literal out of range: {neg}")))
                    };
                }
                call("Negate", self.operands_n(o, ty, 1)?)
            }
            "ProperIn" => Expr::Call(
                "ProperIncludedIn".into(),
                self.operands_n(o, ty, 2)?,
                Self::precision(o),
            ),
            "ProperContains" => Expr::Call(
                "ProperIncludes".into(),
                self.operands_n(o, ty, 2)?,
                Self::precision(o),
            ),
            "Indexer" => {
                let mut ops = self.operands_n(o, ty, 2)?;
                let i = ops.pop().unwrap_or(Expr::Lit(Value::Null));
                let a = ops.pop().unwrap_or(Expr::Lit(Value::Null));
                Expr::Index(Box::new(a), Box::new(i))
            }
            "ToList" => {
                // null is the empty list, anything else the list of it.
                let x = self.operands_n(o, ty, 1)?.remove(0);
                Expr::If(
                    Box::new(call("IsNull", vec![x.clone()])),
                    Box::new(Expr::List(None, vec![])),
                    Box::new(Expr::List(None, vec![x])),
                )
            }
            "DateTimeComponentFrom" => Expr::Call(
                "ComponentFrom".into(),
                self.operands_n(o, ty, 1)?,
                Some(
                    Self::precision(o)
                        .ok_or_else(|| self.error("DateTimeComponentFrom without precision"))?,
                ),
            ),
            "DateFrom" | "TimeFrom" | "TimezoneOffsetFrom" | "TimezoneFrom" => {
                let p = match ty {
                    "DateFrom" => "date",
                    "TimeFrom" => "time",
                    _ => "timezoneoffset",
                };
                Expr::Call(
                    "ComponentFrom".into(),
                    self.operands_n(o, ty, 1)?,
                    Some(p.into()),
                )
            }
            "CalculateAge" | "CalculateAgeAt" => {
                let unit = match str_of(o, "precision") {
                    Some("Year") => "Years",
                    Some("Month") => "Months",
                    Some("Week") => "Weeks",
                    Some("Day") => "Days",
                    Some("Hour") => "Hours",
                    Some("Minute") => "Minutes",
                    Some("Second") => "Seconds",
                    p => {
                        return Err(self.error(format!("ELM {ty}: unsupported precision {p:?}")));
                    }
                };
                let at = if ty == "CalculateAgeAt" { "At" } else { "" };
                let n = if at.is_empty() { 1 } else { 2 };
                call(
                    &format!("CalculateAgeIn{unit}{at}"),
                    self.operands_n(o, ty, n)?,
                )
            }
            "Round" => {
                let mut args = vec![self.sub(o, ty, "operand")?];
                args.extend(self.opt_sub(o, "precision")?);
                call("Round", args)
            }
            "Substring" => {
                let mut args = vec![
                    self.sub(o, ty, "stringToSub")?,
                    self.sub(o, ty, "startIndex")?,
                ];
                args.extend(self.opt_sub(o, "length")?);
                call("Substring", args)
            }
            "Combine" => {
                let mut args = vec![self.sub(o, ty, "source")?];
                args.extend(self.opt_sub(o, "separator")?);
                call("Combine", args)
            }
            "Split" => call(
                "Split",
                vec![
                    self.sub(o, ty, "stringToSplit")?,
                    self.opt_sub(o, "separator")?
                        .unwrap_or(Expr::Lit(Value::Null)),
                ],
            ),
            "PositionOf" | "LastPositionOf" => call(
                ty,
                vec![self.sub(o, ty, "pattern")?, self.sub(o, ty, "string")?],
            ),
            "First" | "Last" => call(ty, vec![self.sub(o, ty, "source")?]),
            "Slice" => call(
                "Slice",
                vec![
                    self.sub(o, ty, "source")?,
                    self.opt_sub(o, "startIndex")?
                        .unwrap_or(Expr::Lit(Value::Null)),
                    self.opt_sub(o, "endIndex")?
                        .unwrap_or(Expr::Lit(Value::Null)),
                ],
            ),
            "IndexOf" => call(
                "IndexOf",
                vec![self.sub(o, ty, "source")?, self.sub(o, ty, "element")?],
            ),
            "Children" | "Descendents" => call(ty, vec![self.sub(o, ty, "source")?]),
            "ExpandValueSet" => call(ty, self.operands_n(o, ty, 1)?),
            "Repeat" => {
                let src = self.sub(o, ty, "source")?;
                let scope = str_of(o, "scope").unwrap_or(crate::eval::THIS);
                self.scopes.push(scope.into());
                let el = self.sub(o, ty, "element");
                self.scopes.pop();
                let el = el?;
                Expr::Call(
                    crate::eval::REPEAT.into(),
                    vec![src, el, Expr::Lit(Value::Str(scope.into()))],
                    None,
                )
            }
            // `Filter`, `ForEach` and `Sort` are the queries they abbreviate.
            "Filter" | "ForEach" | "Sort" => {
                let src = self.sub(o, ty, "source")?;
                let scope = str_of(o, "scope").unwrap_or(crate::eval::THIS).to_string();
                let mut q = Query {
                    sources: vec![(src, scope.clone())],
                    lets: vec![],
                    rels: vec![],
                    where_: None,
                    ret: None,
                    aggregate: None,
                    sort: None,
                };
                self.scopes.push(scope);
                let r = match ty {
                    "Filter" => self.sub(o, ty, "condition").map(|c| q.where_ = Some(c)),
                    "ForEach" => self.sub(o, ty, "element").map(|e| q.ret = Some((false, e))),
                    _ => self.sort_items(o).map(|s| q.sort = Some(s)),
                };
                self.scopes.pop();
                r?;
                Expr::Query(Box::new(q))
            }
            // FHIRPath's `aggregate`: the source folded with `iteration`, the element as
            // `$this`, the accumulator `$total`.
            "Aggregate" => {
                let src = self.sub(o, ty, "source")?;
                let src = match str_of(o, "path") {
                    Some(p) => Self::path_of(src, p),
                    None => src,
                };
                let init = self.opt_sub(o, "initialValue")?;
                self.scopes.push(crate::eval::THIS.into());
                let it = self.sub(o, ty, "iteration");
                self.scopes.pop();
                Expr::Query(Box::new(Query {
                    sources: vec![(src, crate::eval::THIS.into())],
                    lets: vec![],
                    rels: vec![],
                    where_: None,
                    ret: None,
                    aggregate: Some((false, crate::eval::TOTAL.into(), init, it?)),
                    sort: None,
                }))
            }
            "Current" => Expr::Ident(match str_of(o, "scope") {
                Some(s) => s.into(),
                None => self
                    .scopes
                    .last()
                    .cloned()
                    .unwrap_or_else(|| crate::eval::THIS.into()),
            }),
            "Iteration" => Expr::Ident(crate::eval::INDEX.into()),
            "Total" => Expr::Ident(crate::eval::TOTAL.into()),
            "SplitOnMatches" => call(
                ty,
                vec![
                    self.sub(o, ty, "stringToSplit")?,
                    self.sub(o, ty, "separatorPattern")?,
                ],
            ),
            "MinValue" | "MaxValue" => {
                let t = str_of(o, "valueType")
                    .ok_or_else(|| self.error(format!("ELM {ty} without a valueType")))?;
                call(ty, vec![Expr::Lit(Value::Str(local_name(t)))])
            }
            "Message" => {
                let mut args = vec![self.sub(o, ty, "source")?];
                for k in ["condition", "code", "severity", "message"] {
                    args.push(self.opt_sub(o, k)?.unwrap_or(Expr::Lit(Value::Null)));
                }
                call("Message", args)
            }
            t => return Err(self.error(format!("unsupported ELM node type '{t}'"))),
        })
    }

    /// `e.a.b` for the dotted path `a.b`.
    fn path_of(e: Expr, path: &str) -> Expr {
        path.split('.')
            .fold(e, |e, p| Expr::Member(Box::new(e), p.into()))
    }

    fn array<T>(
        &mut self,
        o: &Obj,
        k: &str,
        mut f: impl FnMut(&mut Self, &J) -> R<T>,
    ) -> R<Vec<T>> {
        match present(o, k) {
            None => Ok(vec![]),
            Some(J::Array(xs)) => xs.iter().map(|x| f(self, x)).collect(),
            Some(x) => Ok(vec![f(self, x)?]),
        }
    }

    /// `element: [{name, value}]` of a tuple or instance.
    #[inline(never)]
    fn elements(&mut self, o: &Obj) -> R<Vec<(String, Expr)>> {
        self.array(o, "element", |r, e| {
            let Some(e) = e.as_object() else {
                return Err(r.error("ELM element is not an object"));
            };
            let n = r.name_of(e, "element")?;
            Ok((n, r.sub(e, "element", "value")?))
        })
    }

    #[inline(never)]
    fn literal(&mut self, o: &Obj) -> R<Expr> {
        let t = local_name(
            str_of(o, "valueType").ok_or_else(|| self.error("ELM Literal without a valueType"))?,
        );
        let text = match o.get("value") {
            Some(J::String(s)) => s.clone(),
            Some(J::Number(n)) => n.to_string(),
            Some(J::Bool(b)) => b.to_string(),
            None | Some(J::Null) => return Ok(Expr::Lit(Value::Null)),
            Some(_) => return Err(self.error("ELM Literal: bad value")),
        };
        let bad = || self.error(format!("ELM Literal: bad {t} '{text}'"));
        Ok(Expr::Lit(match t.as_str() {
            "Boolean" => Value::Bool(text.parse().map_err(|_| bad())?),
            "Integer" => Value::Int(
                text.parse()
                    .map_err(|_| self.error(format!("Integer literal out of range: {text}")))?,
            ),
            "Long" => Value::Long(
                text.parse()
                    .map_err(|_| self.error(format!("Long literal out of range: {text}")))?,
            ),
            "Decimal" => {
                if text.split('.').nth(1).is_some_and(|f| f.len() > 8)
                    || text
                        .split('.')
                        .next()
                        .is_some_and(|i| i.trim_start_matches(['-', '0']).len() > 28)
                {
                    return Err(self.error(format!(
                        "Decimal literal {text}: more than 28 digits or 8 decimal places"
                    )));
                }
                Value::Dec(Decimal::from_str(&text).map_err(|_| bad())?)
            }
            "String" => Value::Str(text),
            "Date" | "DateTime" => {
                let s = text.trim_start_matches('@');
                let (tm, _) = Tm::parse_datetime(s).ok_or_else(bad)?;
                if t == "Date" {
                    Value::Date(tm)
                } else {
                    Value::DateTime(tm)
                }
            }
            "Time" => {
                let s = text.trim_start_matches('@').trim_start_matches('T');
                Value::Time(Tm::parse_time(s).ok_or_else(bad)?)
            }
            "Quantity" => {
                let (n, u) = text.split_once(' ').unwrap_or((&text, "1"));
                Value::Quantity(
                    Decimal::from_str(n).map_err(|_| bad())?,
                    u.trim_matches('\'').into(),
                )
            }
            _ => return Err(self.error(format!("unsupported ELM Literal type '{t}'"))),
        }))
    }

    #[inline(never)]
    fn quantity(&self, o: &Obj) -> R<Value> {
        let Some(v) = present(o, "value") else {
            return Ok(Value::Null);
        };
        let d = decimal_of(v).ok_or_else(|| self.error("ELM Quantity: bad value"))?;
        Ok(Value::Quantity(
            d,
            str_of(o, "unit").unwrap_or("1").to_string(),
        ))
    }

    /// A `Code` selector (its `type` may be absent inside a Concept).
    #[inline(never)]
    fn code(&self, o: &Obj) -> R<Expr> {
        let code = str_of(o, "code").ok_or_else(|| self.error("ELM Code without a code"))?;
        let system = o.get("system").and_then(J::as_object);
        let name = system
            .and_then(|s| str_of(s, "name"))
            .ok_or_else(|| self.error("ELM Code without a system"))?;
        Ok(CodeSelector::expr(
            code.into(),
            name.into(),
            system
                .and_then(|s| str_of(s, "libraryName"))
                .map(str::to_string),
            str_of(o, "display").map(str::to_string),
        ))
    }

    /// A `Date`/`DateTime`/`Time` constructor: literal components fold to the literal value
    /// (as the parser reads `@2014-01-01T10:00Z`), others become the constructor call.
    #[inline(never)]
    fn temporal(&mut self, ty: &str, o: &Obj) -> R<Expr> {
        let (start, names): (usize, &[&str]) = match ty {
            "Date" => (0, &["year", "month", "day"]),
            "DateTime" => (
                0,
                &[
                    "year",
                    "month",
                    "day",
                    "hour",
                    "minute",
                    "second",
                    "millisecond",
                ],
            ),
            _ => (3, &["hour", "minute", "second", "millisecond"]),
        };
        let mut parts = Vec::new();
        for k in names {
            match self.opt_sub(o, k)? {
                Some(e) => parts.push(e),
                None => break,
            }
        }
        let tz = if ty == "DateTime" {
            self.opt_sub(o, "timezoneOffset")?
        } else {
            None
        };
        let tz_minutes = |e: &Expr| -> Option<i32> {
            let d = match e {
                Expr::Lit(Value::Dec(d)) => *d,
                Expr::Lit(Value::Int(i)) => Decimal::from(*i),
                Expr::Call(n, a, _) if n == "Negate" => match a.as_slice() {
                    [Expr::Lit(Value::Dec(d))] => -*d,
                    _ => return None,
                },
                _ => return None,
            };
            (d * Decimal::from(60)).round().try_into().ok()
        };
        let ints: Option<Vec<i32>> = parts.iter().map(int_literal).collect();
        let offset = tz.as_ref().map(tz_minutes);
        if let Some(ints) = ints
            && !ints.is_empty()
            && offset.is_none_or(|o| o.is_some())
        {
            let mut v = [1, 1, 1, 0, 0, 0, 0];
            if start == 0 {
                v[0] = 0;
            }
            for (i, x) in ints.iter().enumerate() {
                v[start + i] = *x;
            }
            let tm = Tm::new(v, start + ints.len(), offset.flatten());
            if tm.valid() {
                return Ok(Expr::Lit(match ty {
                    "Date" => Value::Date(tm),
                    "DateTime" => Value::DateTime(tm),
                    _ => Value::Time(tm),
                }));
            }
        }
        if let Some(tz) = tz {
            while parts.len() < 7 {
                parts.push(Expr::Lit(Value::Null));
            }
            parts.push(tz);
        }
        Ok(call(ty, parts))
    }

    #[inline(never)]
    fn query(&mut self, o: &Obj) -> R<Expr> {
        let sources = self.array(o, "source", |r, s| {
            let Some(s) = s.as_object() else {
                return Err(r.error("ELM Query: bad source"));
            };
            let alias = str_of(s, "alias")
                .ok_or_else(|| r.error("ELM query source without an alias"))?
                .to_string();
            Ok((r.sub(s, "AliasedQuerySource", "expression")?, alias))
        })?;
        if sources.is_empty() {
            return Err(self.error("ELM Query without a source"));
        }
        let lets = self.array(o, "let", |r, l| {
            let Some(l) = l.as_object() else {
                return Err(r.error("ELM Query: bad let"));
            };
            let n = str_of(l, "identifier")
                .ok_or_else(|| r.error("ELM let without an identifier"))?
                .to_string();
            Ok((n, r.sub(l, "LetClause", "expression")?))
        })?;
        let rels = self.array(o, "relationship", |r, x| {
            let Some(x) = x.as_object() else {
                return Err(r.error("ELM Query: bad relationship"));
            };
            let with = match str_of(x, "type") {
                Some("With") => true,
                Some("Without") => false,
                t => return Err(r.error(format!("unsupported ELM relationship {t:?}"))),
            };
            r.locs.push(locator(x));
            let rel = (|| {
                Ok(Relationship {
                    with,
                    source: r.sub(x, "relationship", "expression")?,
                    alias: str_of(x, "alias")
                        .ok_or_else(|| r.error("ELM relationship without an alias"))?
                        .into(),
                    cond: r.sub(x, "relationship", "suchThat")?,
                })
            })();
            r.locs.pop();
            rel
        })?;
        let where_ = self.opt_sub(o, "where")?;
        let ret = match present(o, "return").and_then(J::as_object) {
            Some(rc) => Some((
                bool_of(rc, "distinct").unwrap_or(true),
                self.sub(rc, "ReturnClause", "expression")?,
            )),
            None => None,
        };
        let aggregate = match present(o, "aggregate").and_then(J::as_object) {
            Some(a) => Some((
                bool_of(a, "distinct").unwrap_or(false),
                str_of(a, "identifier")
                    .ok_or_else(|| self.error("ELM aggregate without an identifier"))?
                    .to_string(),
                self.opt_sub(a, "starting")?,
                self.sub(a, "AggregateClause", "expression")?,
            )),
            None => None,
        };
        let sort = match present(o, "sort").and_then(J::as_object) {
            Some(s) => Some(self.sort_items(s)?),
            None => None,
        };
        Ok(Expr::Query(Box::new(Query {
            sources,
            lets,
            rels,
            where_,
            ret,
            aggregate,
            sort,
        })))
    }

    /// The `by` items of a sort clause or `Sort` operator.
    #[inline(never)]
    fn sort_items(&mut self, s: &Obj) -> R<Vec<SortItem>> {
        self.array(s, "by", |r, b| {
            let Some(b) = b.as_object() else {
                return Err(r.error("ELM sort: bad item"));
            };
            let desc = matches!(str_of(b, "direction"), Some("desc" | "descending"));
            let key = match str_of(b, "type") {
                Some("ByDirection") => None,
                Some("ByColumn") => match str_of(b, "path") {
                    Some("$this") | None => None,
                    Some(p) => {
                        let mut parts = p.split('.');
                        let first = Expr::Ident(parts.next().unwrap_or_default().into());
                        Some(parts.fold(first, |e, x| Expr::Member(Box::new(e), x.into())))
                    }
                },
                Some("ByExpression") => Some(r.sub(b, "ByExpression", "expression")?),
                t => return Err(r.error(format!("unsupported ELM sort item {t:?}"))),
            };
            Ok(SortItem { key, desc })
        })
    }

    #[inline(never)]
    fn retrieve(&mut self, o: &Obj) -> R<Expr> {
        let dt =
            str_of(o, "dataType").ok_or_else(|| self.error("ELM Retrieve without a dataType"))?;
        if present(o, "includedIn").is_some() {
            return Err(self.error("ELM Retrieve with 'includedIn' is not supported"));
        }
        for k in ["codeFilter", "dateFilter", "otherFilter", "include"] {
            if present(o, k)
                .and_then(J::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                return Err(self.error(format!("ELM Retrieve with '{k}' is not supported")));
            }
        }
        // `[Condition: "Code"]` is `ToList(CodeRef)` in ELM; the provider takes the code itself,
        // as the parser's retrieve gives it.
        let codes = match present(o, "codes") {
            Some(c) if c.get("type").and_then(J::as_str) == Some("ToList") => {
                let inner = c.as_object().and_then(|c| self.one_operand(c));
                match inner {
                    Some(x) => Some(self.expr(x)?),
                    None => Some(self.expr(c)?),
                }
            }
            Some(c) => Some(self.expr(c)?),
            None => None,
        };
        let ty = local_name(dt);
        let mut r = Expr::Retrieve(
            ty.clone(),
            str_of(o, "codeProperty").map(str::to_string),
            codes.map(Box::new),
        );
        // `[Pat -> Observation]`: the retrieve in the context of the value of `context`.
        if let Some(c) = self.opt_sub(o, "context")? {
            r = Expr::Call(crate::eval::RETRIEVE_IN.into(), vec![c, r], None);
        }
        // Filters of the retrieve, as a query over it: the id (of `idProperty`, else `id`),
        // and the date (`dateProperty`, or the interval from `dateLowProperty` to
        // `dateHighProperty`) included in `dateRange`.
        let alias = format!("$retrieve:{ty}");
        let at = |p: &str| Self::path_of(Expr::Ident(alias.clone()), p);
        let mut conds = Vec::new();
        if let Some(id) = self.opt_sub(o, "id")? {
            conds.push(call(
                "Equal",
                vec![at(str_of(o, "idProperty").unwrap_or("id")), id],
            ));
        }
        if let Some(range) = self.opt_sub(o, "dateRange")? {
            let date = match (
                str_of(o, "dateProperty"),
                str_of(o, "dateLowProperty"),
                str_of(o, "dateHighProperty"),
            ) {
                (Some(p), None, None) => at(p),
                (None, Some(l), Some(h)) => {
                    Expr::Interval(Box::new(at(l)), true, Box::new(at(h)), true)
                }
                (None, None, None) => {
                    return Err(self.error("ELM Retrieve with a dateRange but no date property"));
                }
                _ => {
                    return Err(self.error(
                        "ELM Retrieve: a dateProperty, or a dateLowProperty with a \
                         dateHighProperty",
                    ));
                }
            };
            conds.push(call("IncludedIn", vec![date, range]));
        }
        let Some(first) = conds.pop() else {
            return Ok(r);
        };
        let cond = conds
            .into_iter()
            .rev()
            .fold(first, |acc, c| call("And", vec![c, acc]));
        Ok(Expr::Query(Box::new(Query {
            sources: vec![(r, alias)],
            lets: vec![],
            rels: vec![],
            where_: Some(cond),
            ret: None,
            aggregate: None,
            sort: None,
        })))
    }
}

#[cfg(test)]
mod tests;
