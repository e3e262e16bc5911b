//! Clinical Quality Language (CQL 1.5): lexer, parser (libraries and expressions) and an
//! evaluator of the CQL System types and operators with CQL semantics (three-valued logic,
//! null propagation, partial-precision temporals, UCUM quantities, intervals, lists, tuples,
//! queries).
//!
//! Entry points: [`parse_expression`] and [`parse_library`] give the syntax tree (every
//! [`SyntaxError`] has a line and column); [`Engine`] evaluates an [`Expr`] or a library's
//! define in a [`Context`] (step budget, nesting limit, evaluation timezone offset, `Now()`);
//! retrieves go to a [`DataProvider`]. Values are [`Value`]s; errors are [`Error`]s, never
//! panics.
//!
//! Included libraries resolve when the caller hands them over ([`Engine::with_include`]);
//! there is no library loader yet.
//!
//! Value set membership (`code in "VS"`) asks the [`DataProvider`] (`in_vocabulary`), and so
//! does code subsumption (`Subsumes`, `SubsumedBy`: `subsumes`).
//!
//! With [`Engine::with_contexts`], the contexts of one evaluation (a measure's subjects) can
//! share the values of Unfiltered-context defines through a [`SharedDefines`] in
//! [`Context::shared`]: each such define is then evaluated once, by the first context that
//! needs it.
//!
//! FHIR data (`using FHIR version '4.0.1'`): resources a [`DataProvider`] returns are
//! [`Value::Fhir`] elements with property access by the FHIR definitions and the FHIRHelpers
//! conversions done natively (see [`fhir`]); `context Patient` makes `Patient` the provider's
//! `[Patient]` and gives `AgeInYears()`, `AgeInYearsAt(d)` (and months, days) from its
//! `birthDate`. The provider over the database is `flint-cql-db`.
//!
//! ELM JSON (the reference translator's output) reads into the same tree: [`library_from_elm`]
//! (see [`elm`] for what is read).
//!
//! [`check`] type-checks a parsed library with its resolved includes (or a stand-alone
//! expression) before evaluation: unknown identifiers and functions, calls no overload
//! matches, unknown FHIR elements and type mismatches are [`SemanticError`]s with the line
//! and column of the offending name.
//!
//! ```
//! let v = flint_cql::evaluate_expression("1 + 2").unwrap();
//! assert_eq!(v.to_string(), "3");
//! ```

#![warn(missing_docs)]

pub mod ast;
pub mod check;
pub mod elm;
pub mod error;
pub mod eval;
pub mod fhir;
pub mod lexer;
pub mod parser;
pub mod temporal;
pub mod value;

pub use ast::{Expr, Library};
pub use elm::{library_from_elm, library_from_elm_bytes};
pub use error::{Error, SemanticError, SyntaxError};
pub use eval::{Context, DataProvider, Engine, Resolved, SharedDefines};
pub use parser::{parse_expression, parse_expression_with_positions, parse_library};
pub use value::Value;

/// Parses and evaluates one stand-alone CQL expression with a default context.
pub fn evaluate_expression(src: &str) -> Result<Value, Error> {
    let e = parse_expression(src)?;
    let lib = Library::default();
    let engine = Engine::new(&lib);
    let mut ctx = Context::default();
    engine.eval(&e, &mut ctx)
}

#[cfg(test)]
mod tests;
