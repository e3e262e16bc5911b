//! FHIRPath engine over Flint's FHIR resource model.
//!
//! An expression is compiled once with [`compile`] into an [`Expression`] (a resolved
//! expression tree: functions, argument counts and type names are checked, literal regular
//! expressions compiled) and then evaluated any number of times against resources given as
//! `serde_json::Value` in FHIR JSON form. Evaluation borrows the input: results that are part
//! of the input are [`Node`]s pointing into it, carrying their FHIR type (from
//! `flint_model::defs`) and able to report their location ([`Node::location`]); computed
//! results are system values ([`Item::Boolean`], [`Item::Integer`], [`Item::Decimal`],
//! [`Item::String`], [`Item::Date`], [`Item::DateTime`], [`Item::Time`], [`Item::Quantity`]).
//!
//! The engine implements FHIRPath N1 (normative R4) plus the FHIRPath 2.x functions the HL7
//! R4 test suite uses and the FHIR additions (`extension`, `hasValue`, `getValue`, `resolve`,
//! `%resource`, `%rootResource`, `%ucum`, `%sct`, `%loinc`, `` %`vs-...` ``, `` %`ext-...` ``).
//!
//! Deliberate deviations, chosen for FHIR servers:
//! - the `as` *operator* filters a collection (like `ofType`) instead of requiring a single
//!   item, because R4 search parameters apply it to repeating elements
//!   (`(Observation.component.value as Quantity)`); the `as()` *function* follows the spec;
//! - `resolve()` looks up contained resources (`#id`), then a caller-supplied [`Resolver`],
//!   then entries of a Bundle being evaluated; a literal reference that is still unresolved
//!   (`Patient/123`) yields an empty stand-in resource of the referenced type so that
//!   `where(resolve() is Patient)` works without fetching (see
//!   [`EvalContext::with_reference_stubs`]);
//! - navigating to the JSON name of a choice element (`Observation.valueQuantity`) is a
//!   semantic error, as in FHIRPath on FHIR; other unknown names yield an empty collection;
//! - type tests follow the R4 type hierarchy (`uuid` is a `uri`), except that `code` is not a
//!   `string`, as the HL7 test suite expects;
//! - a date-time with a time part compared to one without a timezone while the other has one
//!   gives an empty (unknown) result, as the HL7 test suite expects;
//! - expressions are not statically type-checked unless asked: [`Expression::check_strict`]
//!   is FHIRPath's strict mode (unknown elements of FHIR types, non-Boolean criteria, each
//!   a semantic error with its offset), over the shared type model of [`types`].
//!
//! Unsupported: terminology functions (`memberOf`, `subsumes`, `subsumedBy`), `conformsTo`
//! with profiles other than core base definitions, `elementDefinition`, `slice`,
//! `checkModifiers`, `defineVariable`; these return [`ErrorKind::Unsupported`]. The `patch`
//! module implements JSON Patch and FHIRPath Patch on top of the engine.

#![warn(missing_docs)]

mod codec;
mod compare;
mod error;
mod eval;
mod functions;
mod lexer;
mod model;
mod parser;
pub mod patch;
mod strict;
pub mod temporal;
pub mod types;
pub mod ucum;
mod value;

pub use error::{Error, ErrorKind};
pub use temporal::{Date, DateTime, Time};
pub use value::{Item, Node, PathSegment, Quantity, TypeInfo};

use eval::{Evaluator, Scope};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// Looks up resources by reference for `resolve()`.
pub trait Resolver {
    /// The resource a reference string (`Patient/1`, an absolute URL, `urn:uuid:...`) names,
    /// if known. The returned value must outlive the evaluation's results.
    fn resolve(&self, reference: &str) -> Option<&Value>;
}

/// A callback receiving `trace(name)` output.
pub type TraceFn<'a> = dyn Fn(&str, &[Item<'a>]) + 'a;

/// Everything an evaluation may draw on besides the expression: the focus, the resource and
/// root resource, user variables, a reference resolver, a fixed clock and a trace sink.
pub struct EvalContext<'a> {
    pub(crate) focus: Vec<Item<'a>>,
    pub(crate) resource: Option<Item<'a>>,
    pub(crate) root_resource: Option<Item<'a>>,
    pub(crate) variables: HashMap<String, Vec<Item<'a>>>,
    pub(crate) resolver: Option<&'a dyn Resolver>,
    pub(crate) now: Option<DateTime>,
    pub(crate) trace: Option<&'a TraceFn<'a>>,
    pub(crate) reference_stubs: bool,
}

impl<'a> EvalContext<'a> {
    /// A context evaluating against `resource`, which is also `%resource`, `%rootResource`
    /// and `%context`.
    pub fn new(resource: &'a Value) -> Self {
        let node = Item::Node(Node::resource(resource));
        EvalContext {
            focus: vec![node.clone()],
            resource: Some(node),
            root_resource: None,
            variables: HashMap::new(),
            resolver: None,
            now: None,
            trace: None,
            reference_stubs: true,
        }
    }

    /// A context without any input (expressions over literals only).
    pub fn empty() -> Self {
        EvalContext {
            focus: Vec::new(),
            resource: None,
            root_resource: None,
            variables: HashMap::new(),
            resolver: None,
            now: None,
            trace: None,
            reference_stubs: true,
        }
    }

    /// Starts evaluation at `items` (also `%context`) instead of the resource.
    pub fn with_start(mut self, items: Vec<Item<'a>>) -> Self {
        self.focus = items;
        self
    }

    /// Sets `%rootResource` (the resource containing `%resource`, for contained resources).
    pub fn with_root_resource(mut self, root: &'a Value) -> Self {
        self.root_resource = Some(Item::Node(Node::resource(root)));
        self
    }

    /// Defines the environment variable `%name`.
    pub fn with_variable(mut self, name: impl Into<String>, items: Vec<Item<'a>>) -> Self {
        self.variables.insert(name.into(), items);
        self
    }

    /// Uses `resolver` for `resolve()`.
    pub fn with_resolver(mut self, resolver: &'a dyn Resolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Fixes the value of `now()`, `today()` and `timeOfDay()`.
    pub fn with_now(mut self, now: DateTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Sends `trace()` output to `sink` (by default it is discarded).
    pub fn with_trace(mut self, sink: &'a TraceFn<'a>) -> Self {
        self.trace = Some(sink);
        self
    }

    /// Whether unresolvable literal references resolve to empty stand-ins of their type
    /// (default true).
    pub fn with_reference_stubs(mut self, on: bool) -> Self {
        self.reference_stubs = on;
        self
    }
}

/// A compiled FHIRPath expression, cheap to evaluate repeatedly and shareable across threads.
pub struct Expression {
    source: String,
    root: parser::Expr,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

/// Compiles `expr` and checks it in FHIRPath's strict mode for an input of FHIR type
/// `root_type` ([`Expression::check_strict`]): the compiled expression when it passes,
/// else the syntax or semantic error.
///
/// ```
/// let e = flint_fhirpath::check_strict("(Observation.value as Period).unit", Some("Observation"));
/// let err = e.unwrap_err();
/// assert_eq!(err.kind, flint_fhirpath::ErrorKind::Semantic);
/// assert!(err.message.contains("at offset 30"), "{}", err.message);
/// assert!(flint_fhirpath::check_strict("Observation.value.unit", Some("Observation")).is_ok());
/// ```
pub fn check_strict(expr: &str, root_type: Option<&str>) -> Result<Expression, Error> {
    let e = compile(expr)?;
    e.check_strict(root_type)?;
    Ok(e)
}

/// Compiles a FHIRPath expression.
pub fn compile(expr: &str) -> Result<Expression, Error> {
    Ok(Expression {
        source: expr.to_string(),
        root: parser::parse(expr)?,
    })
}

impl Expression {
    /// The expression text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against a resource (the focus, `%resource` and `%context`).
    pub fn evaluate<'a>(&self, resource: &'a Value) -> Result<Vec<Item<'a>>, Error> {
        self.evaluate_with(&EvalContext::new(resource))
    }

    /// Evaluates with a full context.
    pub fn evaluate_with<'a>(&self, ctx: &EvalContext<'a>) -> Result<Vec<Item<'a>>, Error> {
        let ev = Evaluator::new(ctx);
        let scope = Scope {
            this: &ctx.focus,
            index: None,
            total: None,
        };
        ev.eval(&self.root, &scope)
    }

    /// FHIRPath's strict mode: checks the expression statically for an input of FHIR type
    /// `root_type` (a resource or data type name; `None` when not known), returning the type
    /// of its result items, or the first semantic error (an element the FHIR type does not
    /// have, a non-Boolean criterion) with the byte offset of the offending name. See
    /// [`check_strict`].
    pub fn check_strict(&self, root_type: Option<&str>) -> Result<types::Ty, Error> {
        strict::check(&self.root, root_type)
    }

    /// Evaluates and reduces the result to a Boolean by FHIRPath's singleton rules
    /// (empty → `None`; several items → error).
    pub fn evaluate_bool(&self, ctx: &EvalContext<'_>) -> Result<Option<bool>, Error> {
        let r = self.evaluate_with(ctx)?;
        eval::to_bool(&r, "expression result")
    }
}

#[cfg(test)]
mod tests;
