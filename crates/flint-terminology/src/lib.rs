//! Terminology behind one trait: what codes a ValueSet stands for and which codes a code
//! subsumes (or is subsumed by) in a CodeSystem. Search (token `:in`, `:not-in`, `:above`,
//! `:below`), a future CQL engine and the future `$expand`/`$validate-code` operations share
//! one [`Terminology`] instead of each walking ValueSets and CodeSystems itself.
//!
//! [`DbTerminology`] answers from the ValueSets and CodeSystems stored in a database value,
//! found by canonical url through a [`CanonicalResolver`] (the search engine implements it
//! with its index). [`Hierarchy`] is the subsumption index of one CodeSystem, built once and
//! walked in linear time.
//!
//! The terminology operations (`$expand`, `$validate-code`, `$lookup`, `$subsumes`,
//! `$translate`) are answered by a [`TerminologyService`] ([`service`], [`ops`]) over the
//! stored resources, those a request brings along and the built-in R4 core CodeSystems and
//! ValueSets ([`builtin`]).
//!
//! This crate knows nothing of HTTP; storage faults are [`Error::Storage`], never an empty
//! answer.

#![warn(missing_docs)]

pub mod builtin;
pub mod codesystem;
mod error;
pub mod hierarchy;
pub mod ops;
pub mod service;
mod stored;

pub use codesystem::{CodeSystem, Concept, Designation};
pub use error::Error;
pub use hierarchy::Hierarchy;
pub use ops::{CodingInput, ExpandParams};
pub use service::{Member, Session, TerminologyService};
pub use stored::{CanonicalResolver, DbTerminology};

use flint_db::Db;

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One member of an expansion, as search matches it: a code of a system, every code of a
/// system (`code` is `None`: a whole-system include) or a code in any system (`system` is
/// `None`: the ValueSet names no system).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Coding {
    /// The code system's canonical url, if the ValueSet names one.
    pub system: Option<String>,
    /// The code, or `None` for every code of `system`.
    pub code: Option<String>,
}

impl Coding {
    /// The code `code` of `system`.
    pub fn new(system: impl Into<String>, code: impl Into<String>) -> Coding {
        Coding {
            system: Some(system.into()),
            code: Some(code.into()),
        }
    }
}

/// Which way a closure walks a CodeSystem's hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the children: the codes a code subsumes (search `:below`, filter `is-a`).
    Descendants,
    /// Towards the parents: the codes subsuming a code (search `:above`).
    Ancestors,
}

/// ValueSet expansion and CodeSystem subsumption at a database value.
///
/// Every method reads at `db`, the value the caller answers at (a search reads its ValueSets
/// at the `t` of its first page). Implementations that do not read the database ignore it.
#[async_trait::async_trait]
pub trait Terminology: Send + Sync {
    /// The members of the ValueSet with canonical `url` (a `url|version` picks the version);
    /// [`Error::UnknownValueSet`] when none is known.
    async fn expand(&self, db: &Db, url: &str) -> Result<Vec<Coding>>;

    /// `code` followed by every code below it ([`Direction::Descendants`]) or above it
    /// ([`Direction::Ancestors`]) in the CodeSystem with canonical url `system` (just `code`
    /// when the CodeSystem does not have it); `None` when no such CodeSystem is known.
    async fn closure(
        &self,
        db: &Db,
        system: &str,
        code: &str,
        direction: Direction,
    ) -> Result<Option<Vec<String>>>;
}
