//! The syntax tree of CQL libraries and expressions.

use crate::value::Value;

/// A type specifier (`Integer`, `List<Code>`, `Interval<DateTime>`, `Tuple { a Integer }`).
#[derive(Debug, Clone, PartialEq)]
pub enum TypeSpec {
    /// A named type, possibly qualified (`System.Integer`, `FHIR.Patient`): the last part.
    Named(String),
    /// `List<T>`.
    List(Box<TypeSpec>),
    /// `Interval<T>`.
    Interval(Box<TypeSpec>),
    /// `Tuple { name T, ... }`.
    Tuple(Vec<(String, TypeSpec)>),
    /// `Choice<A, B>`.
    Choice(Vec<TypeSpec>),
}

/// One sort item of `sort by`.
#[derive(Debug, Clone, PartialEq)]
pub struct SortItem {
    /// The key (`None`: sort by the element itself).
    pub key: Option<Expr>,
    /// Descending order.
    pub desc: bool,
}

/// A `with`/`without` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    /// `true` for `with`, `false` for `without`.
    pub with: bool,
    /// The related source.
    pub source: Expr,
    /// Its alias.
    pub alias: String,
    /// The `such that` condition.
    pub cond: Expr,
}

/// A query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Sources and their aliases.
    pub sources: Vec<(Expr, String)>,
    /// `let` clauses.
    pub lets: Vec<(String, Expr)>,
    /// `with`/`without` clauses.
    pub rels: Vec<Relationship>,
    /// The `where` condition.
    pub where_: Option<Expr>,
    /// `return [distinct|all] e`: (distinct, e).
    pub ret: Option<(bool, Expr)>,
    /// `aggregate [distinct] name [starting e]: e`.
    pub aggregate: Option<(bool, String, Option<Expr>, Expr)>,
    /// `sort ...`.
    pub sort: Option<Vec<SortItem>>,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value.
    Lit(Value),
    /// A reference to an alias, let, define, parameter or code.
    Ident(String),
    /// An operator or function call by name (operators use their ELM names), with an optional
    /// precision (`same day as`).
    Call(String, Vec<Expr>, Option<String>),
    /// Member access `a.b`.
    Member(Box<Expr>, String),
    /// Indexer `a[i]`.
    Index(Box<Expr>, Box<Expr>),
    /// `if c then a else b`.
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `case [operand] when .. then .. else .. end`.
    Case(Option<Box<Expr>>, Vec<(Expr, Expr)>, Box<Expr>),
    /// `Interval[low, high]` with closedness.
    Interval(Box<Expr>, bool, Box<Expr>, bool),
    /// `{...}` or `List<T>{...}`.
    List(Option<TypeSpec>, Vec<Expr>),
    /// `Tuple { a: 1 }`.
    Tuple(Vec<(String, Expr)>),
    /// `Type { element: value }`.
    Instance(String, Vec<(String, Expr)>),
    /// `Code 'c' from "System" display 'd'` (boxed: the tree's nodes stay small).
    Code(Box<CodeSelector>),
    /// `Concept { codes } display 'd'`.
    Concept(Vec<Expr>, Option<String>),
    /// `e is T`.
    Is(Box<Expr>, TypeSpec),
    /// `e as T` / `cast e as T` (strict).
    As(Box<Expr>, TypeSpec, bool),
    /// `convert e to T`.
    Convert(Box<Expr>, TypeSpec),
    /// `convert e to 'unit'`.
    ConvertUnit(Box<Expr>, String),
    /// A query.
    Query(Box<Query>),
    /// A retrieve `[Type: path in "VS"]` (type, code path, codes).
    Retrieve(String, Option<String>, Option<Box<Expr>>),
}

/// A Code selector or code declaration: `'c' from Lib."System" display 'd'`.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeSelector {
    /// The code.
    pub code: String,
    /// The name of the code system (a `codesystem` declaration).
    pub system: String,
    /// The alias of the included library declaring the code system (`from Lib."System"`).
    pub library: Option<String>,
    /// The display.
    pub display: Option<String>,
}

impl CodeSelector {
    /// The selector as an expression.
    pub fn expr(
        code: String,
        system: String,
        library: Option<String>,
        display: Option<String>,
    ) -> Expr {
        Expr::Code(Box::new(CodeSelector {
            code,
            system,
            library,
            display,
        }))
    }
}

/// A function definition.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    /// Name.
    pub name: String,
    /// Parameters and their types.
    pub params: Vec<(String, TypeSpec)>,
    /// The body (`None` for `external`).
    pub body: Option<Expr>,
    /// Declared `fluent`.
    pub fluent: bool,
}

/// A parsed library.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Library {
    /// `library Name version 'v'`.
    pub name: Option<(String, Option<String>)>,
    /// `using Model version 'v'`.
    pub usings: Vec<(String, Option<String>)>,
    /// `include Lib version 'v' called Alias`: (lib, version, alias).
    pub includes: Vec<(String, Option<String>, String)>,
    /// `codesystem "name": 'id' version 'v'`.
    pub codesystems: Vec<(String, String, Option<String>)>,
    /// `valueset "name": 'id'`.
    pub valuesets: Vec<(String, String)>,
    /// `code "name": 'code' from "cs" display 'd'`.
    pub codes: Vec<(String, Expr)>,
    /// `concept "name": { codes } display 'd'`.
    pub concepts: Vec<(String, Expr)>,
    /// `parameter Name Type default e`.
    pub parameters: Vec<(String, Option<TypeSpec>, Option<Expr>)>,
    /// `context X` statements.
    pub contexts: Vec<String>,
    /// The context each define follows (`context Patient` ... `define X`), by define name; a
    /// define before any `context` statement is not listed.
    pub define_contexts: Vec<(String, String)>,
    /// `define Name: e`.
    pub defines: Vec<(String, Expr)>,
    /// `define function`s.
    pub functions: Vec<FunctionDef>,
    /// Where the names of this tree stand in the source (for the type checker's messages).
    pub positions: Positions,
}

/// Source positions (line, column, 1-based) of the names in a parsed tree: identifiers,
/// function and operator names, member names, retrieved types, define and function names.
///
/// A name is known by the address of its text, which stays put while the tree lives
/// unchanged (moving a `String` does not move its text); a clone of the tree has new texts
/// and so no positions, and then messages fall back to an enclosing name's position.
/// Positions take no part in comparing trees.
#[derive(Clone, Default)]
pub struct Positions(std::collections::HashMap<usize, (u32, u32)>);

impl Positions {
    /// Records that `name` stands at `line`:`column`.
    pub fn record(&mut self, name: &str, line: usize, column: usize) {
        if !name.is_empty() {
            self.0.insert(
                name.as_ptr() as usize,
                (
                    u32::try_from(line).unwrap_or(u32::MAX),
                    u32::try_from(column).unwrap_or(u32::MAX),
                ),
            );
        }
    }

    /// Whether no position is recorded (a tree not parsed from CQL text, e.g. read from ELM).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The position of `name` (this very text of the tree), if recorded.
    pub fn of(&self, name: &str) -> Option<(usize, usize)> {
        if name.is_empty() {
            return None;
        }
        self.0
            .get(&(name.as_ptr() as usize))
            .map(|&(l, c)| (l as usize, c as usize))
    }
}

impl PartialEq for Positions {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Positions({})", self.0.len())
    }
}
