//! Clinical Quality Language (CQL 1.5): lexer, parser (libraries and expressions) and an
//! evaluator of the CQL System types and operators with CQL semantics (three-valued logic,
//! null propagation, partial-precision temporals, UCUM quantities, intervals, lists, tuples,
//! queries).
//!
//! ```
//! let v = flint_cql::evaluate_expression("1 + 2").unwrap();
//! assert_eq!(v.to_string(), "3");
//! ```

#![warn(missing_docs)]

pub mod ast;
pub mod error;
pub mod eval;
pub mod lexer;
pub mod parser;
pub mod temporal;
pub mod value;

pub use ast::{Expr, Library};
pub use error::{Error, SyntaxError};
pub use eval::{Context, DataProvider, Engine};
pub use parser::{parse_expression, parse_library};
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
