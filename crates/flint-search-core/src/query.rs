//! Query parsing: search URL parameters into typed clauses and result parameters.
//!
//! Supported:
//! - AND across repeated parameters (one [`Clause`] each), OR across comma-separated values;
//!   `\,`, `\|`, `\$` and `\\` escape the separators; empty values are ignored (as the spec
//!   asks);
//! - modifiers `:missing` (all types), `:exact`/`:contains` (string), `:text`, `:not`,
//!   `:above`, `:below`, `:in`, `:not-in`, `:of-type` (token), `:identifier`, `:[Type]`,
//!   `:above`, `:below` (reference), `:above`/`:below` (uri); any other modifier, or one that
//!   does not apply to the parameter's type, is [`Error::UnknownModifier`];
//! - prefixes `eq ne gt lt ge le sa eb ap` on date, number and quantity values (also inside
//!   composite components);
//! - token forms `code`, `system|code`, `|code`, `system|`; `:of-type` as
//!   `typeSystem|typeCode|value`; quantity forms `value`, `value|system|code`, `value||unit`;
//!   reference forms `id`, `Type/id`, `Type/id/_history/v`, absolute URLs and canonical
//!   `url|version`; composite values `a$b`; `near` as `lat|long|distance|unit` (distance
//!   defaults to 1 km; units km, m, mi, or any UCUM length);
//! - chained parameters (`subject:Patient.name=x`, any number of hops up to 8): without a
//!   `:Type`, every target type of the reference having the chained parameter is searched (OR);
//!   reverse chains `_has:Type:ref:param=value`, nested; `_list`;
//! - result parameters `_sort` (several keys, `-` for descending), `_count`, `_include` and
//!   `_revinclude` (`:iterate`, `:recurse` as its R3 name, `*`), `_summary`, `_elements`,
//!   `_total`, `_contained`, `_containedType`; `_format` and `_pretty` are accepted and left to
//!   the REST layer.
//!
//! Errors: malformed values fail the parse ([`Error::InvalidValue`]). Unknown or unsupported
//! parameters and modifiers are collected in [`Query::ignored`] (see [`Error::is_ignorable`]):
//! a strict server turns the first into 400 ([`Query::strict`]), a lenient one drops them and
//! may report them.
//!
//! - `_filter` (the filter language: `and`, `or`, `not`, groups, every operator that has a
//!   plain-search equivalent, chains and bracket filters on references; see [`filter`]).
//!
//! Not supported: `_text`, `_content`, `_query`, `_type` (system search),
//! `_containedType` semantics beyond parsing, token `:code-text`/`:text-advanced` (R5).

use crate::date::DateRange;
use crate::error::Error;
use crate::normalize::normalize;
use crate::registry::{ParamRef, ParamType, Registry};
use crate::value::NumberValue;
use crate::value::{GeoPoint, UCUM, canonicalize, half_unit, parse_decimal};
use flint_fhirpath::ucum;
use flint_model::defs::definitions;
use rust_decimal::Decimal;
use std::time::{SystemTime, UNIX_EPOCH};

mod filter;

const MAX_DEPTH: usize = 8;

/// A comparison prefix of date, number and quantity values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    /// Equal (the default): the target lies within the search value's range.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Less than.
    Lt,
    /// Greater or equal.
    Ge,
    /// Less or equal.
    Le,
    /// Starts after the search value's range.
    Sa,
    /// Ends before the search value's range.
    Eb,
    /// Approximately (10 % of the value, for dates of the distance from now).
    Ap,
}

impl Prefix {
    /// Splits a leading prefix off `s` (`ge2000` → `Ge`, `2000`); `Eq` if none.
    pub fn split(s: &str) -> (Prefix, &str) {
        let p = match s.get(..2) {
            Some("eq") => Prefix::Eq,
            Some("ne") => Prefix::Ne,
            Some("gt") => Prefix::Gt,
            Some("lt") => Prefix::Lt,
            Some("ge") => Prefix::Ge,
            Some("le") => Prefix::Le,
            Some("sa") => Prefix::Sa,
            Some("eb") => Prefix::Eb,
            Some("ap") => Prefix::Ap,
            _ => return (Prefix::Eq, s),
        };
        (p, &s[2..])
    }
}

/// A search modifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// `:missing`.
    Missing,
    /// `:exact` (string).
    Exact,
    /// `:contains` (string).
    Contains,
    /// `:text` (token).
    Text,
    /// `:not` (token).
    Not,
    /// `:above` (token, reference, uri).
    Above,
    /// `:below` (token, reference, uri).
    Below,
    /// `:in` (token): in a value set.
    In,
    /// `:not-in` (token).
    NotIn,
    /// `:of-type` (token on Identifier).
    OfType,
    /// `:identifier` (reference).
    Identifier,
    /// `:[Type]` (reference): the target type.
    Type(String),
    /// Whole-value equality of the normalised string (string; `_filter`'s `eq`, no URL form).
    Equal,
    /// The normalised string ends with the value (string; `_filter`'s `ew`, no URL form).
    EndsWith,
}

impl Modifier {
    /// The modifier as written after the colon.
    pub fn as_str(&self) -> &str {
        match self {
            Modifier::Missing => "missing",
            Modifier::Exact => "exact",
            Modifier::Contains => "contains",
            Modifier::Text => "text",
            Modifier::Not => "not",
            Modifier::Above => "above",
            Modifier::Below => "below",
            Modifier::In => "in",
            Modifier::NotIn => "not-in",
            Modifier::OfType => "of-type",
            Modifier::Identifier => "identifier",
            Modifier::Type(t) => t,
            Modifier::Equal => "eq",
            Modifier::EndsWith => "ew",
        }
    }

    /// Parses a modifier valid for parameters of type `kind` (with reference `targets`).
    fn parse(s: &str, kind: ParamType, targets: &[String]) -> Option<Modifier> {
        use ParamType as T;
        let m = match s {
            "missing" => Modifier::Missing,
            "exact" => Modifier::Exact,
            "contains" => Modifier::Contains,
            "text" => Modifier::Text,
            "not" => Modifier::Not,
            "above" => Modifier::Above,
            "below" => Modifier::Below,
            "in" => Modifier::In,
            "not-in" => Modifier::NotIn,
            "of-type" => Modifier::OfType,
            "identifier" => Modifier::Identifier,
            t if kind == T::Reference && definitions().is_resource_type(t) => {
                if !targets.is_empty() && !targets.iter().any(|x| x == t) {
                    return None;
                }
                Modifier::Type(t.to_string())
            }
            _ => return None,
        };
        let ok = matches!(
            (&m, kind),
            (Modifier::Missing, _)
                | (Modifier::Exact | Modifier::Contains, T::String)
                | (
                    Modifier::Text
                        | Modifier::Not
                        | Modifier::Above
                        | Modifier::Below
                        | Modifier::In
                        | Modifier::NotIn
                        | Modifier::OfType,
                    T::Token,
                )
                | (
                    Modifier::Identifier | Modifier::Above | Modifier::Below | Modifier::Type(_),
                    T::Reference,
                )
                | (Modifier::Above | Modifier::Below, T::Uri)
        );
        ok.then_some(m)
    }
}

/// Which system a token query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

/// A token search value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenQuery {
    /// The system constraint.
    pub system: SystemMatch,
    /// The code; `None` for `system|` (any code of the system).
    pub code: Option<String>,
}

/// A reference search value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceQuery {
    /// `Type/id[/_history/v]`, or a bare `id` (type from `:Type` or the single target type;
    /// `None` when the parameter has several targets: any type matches).
    Local {
        /// The resource type, if known.
        type_name: Option<String>,
        /// The id.
        id: String,
        /// The version, for versioned references.
        version: Option<String>,
    },
    /// An absolute or canonical URL, with a canonical `|version`.
    Url {
        /// The URL.
        url: String,
        /// The canonical version, if given.
        version: Option<String>,
    },
    /// `:identifier` with `system|value`.
    Identifier(TokenQuery),
}

/// A number search value with the range its precision implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberQuery {
    /// The comparison prefix.
    pub prefix: Prefix,
    /// The value.
    pub value: Decimal,
    /// `value − 0.5 × 10^-precision` (inclusive).
    pub low: Decimal,
    /// `value + 0.5 × 10^-precision` (exclusive).
    pub high: Decimal,
}

impl NumberQuery {
    /// Scales the value and bounds (unit conversion); `None` on overflow.
    pub fn scaled(&self, f: Decimal) -> Option<NumberQuery> {
        Some(NumberQuery {
            prefix: self.prefix,
            value: self.value.checked_mul(f)?,
            low: self.low.checked_mul(f)?,
            high: self.high.checked_mul(f)?,
        })
    }
}

/// A quantity search value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityQuery {
    /// The number and prefix.
    pub number: NumberQuery,
    /// The system (`value|system|code`).
    pub system: Option<String>,
    /// The code (`value|system|code`) or unit (`value||unit`).
    pub code: Option<String>,
    /// For UCUM units: the number in canonical units and the canonical unit.
    pub canonical: Option<(NumberQuery, String)>,
}

/// A date search value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateQuery {
    /// The comparison prefix.
    pub prefix: Prefix,
    /// The value's interval at its precision.
    pub range: DateRange,
    /// For `ap`: the interval widened by 10 % of its distance from the parse time.
    pub approx: DateRange,
}

/// One (OR-ed) value of a parameter clause, typed by parameter type and modifier.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// `:missing=true|false`.
    Missing(bool),
    /// A string: as given (unescaped, for `:exact`) and normalised.
    String {
        /// The text as given.
        exact: String,
        /// The normalised text.
        normalized: String,
    },
    /// A token (also for `:not`, `:above`, `:below`).
    Token(TokenQuery),
    /// `:text` on a token: normalised text.
    Text(String),
    /// `:of-type`: identifier type coding and value.
    OfType {
        /// Type coding system.
        system: String,
        /// Type coding code.
        code: String,
        /// Identifier value.
        value: String,
    },
    /// `:in`/`:not-in`: a value set URL.
    ValueSet(String),
    /// A reference.
    Reference(ReferenceQuery),
    /// A date.
    Date(DateQuery),
    /// A number.
    Number(NumberQuery),
    /// A quantity.
    Quantity(QuantityQuery),
    /// A URI.
    Uri(String),
    /// A composite: one value per component.
    Composite(Vec<QueryValue>),
    /// `near`: a point and a distance in metres.
    Near {
        /// The centre.
        point: GeoPoint,
        /// Maximum distance in metres.
        distance_m: f64,
    },
}

/// A clause on one parameter of the searched resource: OR across `values`.
#[derive(Debug, Clone)]
pub struct ParamClause {
    /// The parameter.
    pub param: ParamRef,
    /// The modifier, if any.
    pub modifier: Option<Modifier>,
    /// The alternatives (at least one).
    pub values: Vec<QueryValue>,
}

/// One AND-ed clause of a query.
#[derive(Debug, Clone)]
pub enum Clause {
    /// A parameter of the searched resource itself.
    Param(ParamClause),
    /// A chained parameter: the reference `param` points to a resource of one of `targets`
    /// matching that target's clause.
    Chain {
        /// The reference parameter.
        param: ParamRef,
        /// Per candidate target type, the clause its resources must match (OR).
        targets: Vec<(String, Box<Clause>)>,
    },
    /// Reverse chaining (`_has`): some `source_type` resource whose `reference` parameter
    /// points to the searched resource matches `inner`.
    Has {
        /// The referencing resource type.
        source_type: String,
        /// Its reference parameter.
        reference: ParamRef,
        /// The clause on the referencing resource.
        inner: Box<Clause>,
    },
    /// `_list`: members of one of these List ids.
    List(Vec<String>),
    /// `_filter`'s `or`: the resources matching all clauses of at least one alternative.
    Or(Vec<Vec<Clause>>),
    /// `_filter`'s `not`: the resources not matching all of these clauses.
    Not(Vec<Clause>),
}

/// A sort key of `_sort`.
#[derive(Debug, Clone)]
pub struct SortKey {
    /// The parameter sorted by.
    pub param: ParamRef,
    /// Whether `-` asked for descending order.
    pub descending: bool,
}

/// An `_include` or `_revinclude` directive.
#[derive(Debug, Clone)]
pub struct Include {
    /// The resource type holding the reference.
    pub source_type: String,
    /// The reference parameter; `None` for `*` (all reference parameters).
    pub param: Option<ParamRef>,
    /// The target type restriction, if given.
    pub target_type: Option<String>,
    /// Whether `:iterate` (or `:recurse`) was given.
    pub iterate: bool,
}

/// `_summary` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// `true`.
    True,
    /// `text`.
    Text,
    /// `data`.
    Data,
    /// `count`.
    Count,
    /// `false`.
    False,
}

/// `_total` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// `none`.
    None,
    /// `estimate`.
    Estimate,
    /// `accurate`.
    Accurate,
}

/// `_contained` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contained {
    /// `false` (default): only top-level resources.
    False,
    /// `true`: only contained resources.
    True,
    /// `both`.
    Both,
}

/// `_containedType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainedType {
    /// `container` (default).
    Container,
    /// `contained`.
    Contained,
}

/// The result parameters of a search.
#[derive(Debug, Clone, Default)]
pub struct ResultParams {
    /// `_sort` keys in order.
    pub sort: Vec<SortKey>,
    /// `_count`.
    pub count: Option<u32>,
    /// `_include` directives.
    pub include: Vec<Include>,
    /// `_revinclude` directives.
    pub revinclude: Vec<Include>,
    /// `_summary`.
    pub summary: Option<Summary>,
    /// `_elements`.
    pub elements: Vec<String>,
    /// `_total`.
    pub total: Option<Total>,
    /// `_contained`.
    pub contained: Option<Contained>,
    /// `_containedType`.
    pub contained_type: Option<ContainedType>,
}

/// A parsed search.
#[derive(Debug, Clone)]
pub struct Query {
    /// The searched resource type.
    pub resource_type: String,
    /// The clauses, all of which must match.
    pub clauses: Vec<Clause>,
    /// The result parameters.
    pub result: ResultParams,
    /// Ignorable problems: unknown or unsupported parameters and modifiers, dropped from the
    /// clauses.
    pub ignored: Vec<Error>,
}

impl Query {
    /// The query for strict handling: the first ignored problem becomes the error.
    pub fn strict(self) -> Result<Query, Error> {
        match self.ignored.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(Query {
                ignored: Vec::new(),
                ..self
            }),
        }
    }
}

/// Parses search parameters for `resource_type` (see the module documentation).
pub fn parse_query(
    registry: &Registry,
    resource_type: &str,
    params: &[(String, String)],
) -> Result<Query, Error> {
    QueryParser::new(registry).parse(resource_type, params)
}

/// A query parser with options.
#[derive(Debug, Clone, Copy)]
pub struct QueryParser<'r> {
    registry: &'r Registry,
    now_ms: i64,
}

impl<'r> QueryParser<'r> {
    /// A parser using the system clock for `ap` on dates.
    pub fn new(registry: &'r Registry) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        QueryParser { registry, now_ms }
    }

    /// Uses `now_ms` (epoch milliseconds) as the current time for `ap` on dates.
    pub fn with_now(mut self, now_ms: i64) -> Self {
        self.now_ms = now_ms;
        self
    }

    /// Parses search parameters for `resource_type`.
    pub fn parse(&self, resource_type: &str, params: &[(String, String)]) -> Result<Query, Error> {
        if !definitions().is_resource_type(resource_type) {
            return Err(Error::UnknownResourceType(resource_type.to_string()));
        }
        let mut q = Query {
            resource_type: resource_type.to_string(),
            clauses: Vec::new(),
            result: ResultParams::default(),
            ignored: Vec::new(),
        };
        for (key, value) in params {
            let r = if is_result_param(key) {
                self.result_param(resource_type, key, value, &mut q.result)
            } else if value.trim().is_empty() || key == "_format" || key == "_pretty" {
                Ok(())
            } else if key == "_filter" {
                self.filter_clauses(resource_type, value)
                    .map(|c| q.clauses.extend(c))
            } else {
                self.clause(resource_type, key, value, 0)
                    .map(|c| q.clauses.push(c))
            };
            match r {
                Ok(()) => {}
                Err(e) if e.is_ignorable() => q.ignored.push(e),
                Err(e) => return Err(e),
            }
        }
        Ok(q)
    }

    fn clause(&self, ty: &str, key: &str, value: &str, depth: usize) -> Result<Clause, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Unsupported {
                code: key.to_string(),
                reason: format!("chains deeper than {MAX_DEPTH} hops"),
            });
        }
        if let Some(rest) = key.strip_prefix("_has:") {
            return self.has(ty, key, rest, value, depth);
        }
        if key == "_list" {
            return Ok(Clause::List(
                split_escaped(value, b',')
                    .into_iter()
                    .map(|v| unescape(&v))
                    .filter(|v| !v.is_empty())
                    .collect(),
            ));
        }
        let (head, tail) = match key.split_once('.') {
            Some((h, t)) => (h, Some(t)),
            None => (key, None),
        };
        let (code, modifier) = match head.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (head, None),
        };
        let param = self.lookup(ty, code)?;
        if let Some(tail) = tail {
            return self.chain(ty, key, param, modifier, tail, value, depth);
        }
        let modifier =
            match modifier {
                None => None,
                Some(m) => Some(Modifier::parse(m, param.kind, &param.target).ok_or_else(
                    || Error::UnknownModifier {
                        code: code.to_string(),
                        modifier: m.to_string(),
                    },
                )?),
            };
        let mut values = Vec::new();
        for v in split_escaped(value, b',') {
            if v.is_empty() {
                continue;
            }
            values.push(self.value(&param, modifier.as_ref(), key, &v)?);
        }
        if values.is_empty() {
            return Err(Error::invalid(key, value, "no value"));
        }
        Ok(Clause::Param(ParamClause {
            param,
            modifier,
            values,
        }))
    }

    pub(crate) fn lookup(&self, ty: &str, code: &str) -> Result<ParamRef, Error> {
        if let Some(p) = self.registry.param(ty, code) {
            return Ok(p.clone());
        }
        if let Some(u) = self.registry.unsupported_param(ty, code) {
            return Err(Error::Unsupported {
                code: code.to_string(),
                reason: u.reason.clone(),
            });
        }
        if matches!(code, "_query" | "_type" | "_text" | "_content") {
            return Err(Error::Unsupported {
                code: code.to_string(),
                reason: "not supported by this server".into(),
            });
        }
        Err(Error::UnknownParameter {
            resource_type: ty.to_string(),
            code: code.to_string(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn chain(
        &self,
        ty: &str,
        key: &str,
        param: ParamRef,
        modifier: Option<&str>,
        tail: &str,
        value: &str,
        depth: usize,
    ) -> Result<Clause, Error> {
        if param.kind != ParamType::Reference {
            return Err(Error::invalid(
                key,
                value,
                format!(
                    "`{}` is a {} parameter and cannot be chained",
                    param.code, param.kind
                ),
            ));
        }
        let tail_code = tail.split(['.', ':']).next().unwrap_or(tail);
        let candidates: Vec<String> = match modifier {
            Some(m) => {
                if !definitions().is_resource_type(m)
                    || (!param.target.is_empty() && !param.target.iter().any(|t| t == m))
                {
                    return Err(Error::UnknownModifier {
                        code: param.code.clone(),
                        modifier: m.to_string(),
                    });
                }
                vec![m.to_string()]
            }
            None => {
                if param.target.is_empty() {
                    return Err(Error::invalid(
                        key,
                        value,
                        format!(
                            "`{}` has no declared target types; name one with `{}:[Type].{tail}`",
                            param.code, param.code
                        ),
                    ));
                }
                let with: Vec<String> = param
                    .target
                    .iter()
                    .filter(|t| {
                        tail_code.starts_with("_has") || self.registry.param(t, tail_code).is_some()
                    })
                    .cloned()
                    .collect();
                if with.is_empty() {
                    return Err(Error::UnknownParameter {
                        resource_type: param.target.join("|"),
                        code: tail_code.to_string(),
                    });
                }
                with
            }
        };
        let _ = ty;
        let mut targets = Vec::new();
        let mut first_err = None;
        for t in candidates {
            match self.clause(&t, tail, value, depth + 1) {
                Ok(c) => targets.push((t, Box::new(c))),
                Err(e) => {
                    if !e.is_ignorable() {
                        return Err(e);
                    }
                    first_err.get_or_insert(e);
                }
            }
        }
        if targets.is_empty() {
            return Err(first_err.unwrap_or_else(|| Error::invalid(key, value, "no target")));
        }
        Ok(Clause::Chain { param, targets })
    }

    fn has(
        &self,
        ty: &str,
        key: &str,
        rest: &str,
        value: &str,
        depth: usize,
    ) -> Result<Clause, Error> {
        let mut it = rest.splitn(3, ':');
        let (Some(src), Some(refp), Some(inner)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::invalid(
                key,
                value,
                "expected `_has:[Type]:[reference parameter]:[parameter]`",
            ));
        };
        if !definitions().is_resource_type(src) {
            return Err(Error::invalid(
                key,
                value,
                format!("unknown resource type `{src}`"),
            ));
        }
        let reference = self.lookup(src, refp)?;
        if reference.kind != ParamType::Reference {
            return Err(Error::invalid(
                key,
                value,
                format!("`{src}.{refp}` is not a reference parameter"),
            ));
        }
        if !reference.target.is_empty() && !reference.target.iter().any(|t| t == ty) {
            return Err(Error::invalid(
                key,
                value,
                format!("`{src}.{refp}` does not reference {ty}"),
            ));
        }
        let inner = self.clause(src, inner, value, depth + 1)?;
        Ok(Clause::Has {
            source_type: src.to_string(),
            reference,
            inner: Box::new(inner),
        })
    }

    /// Parses one alternative of a parameter value.
    fn value(
        &self,
        param: &ParamRef,
        modifier: Option<&Modifier>,
        key: &str,
        raw: &str,
    ) -> Result<QueryValue, Error> {
        let bad = |reason: &str| Error::invalid(key, &unescape(raw), reason);
        match modifier {
            Some(Modifier::Missing) => {
                return match raw {
                    "true" => Ok(QueryValue::Missing(true)),
                    "false" => Ok(QueryValue::Missing(false)),
                    _ => Err(bad("`:missing` takes `true` or `false`")),
                };
            }
            Some(Modifier::Text) => return Ok(QueryValue::Text(normalize(&unescape(raw)))),
            Some(Modifier::In | Modifier::NotIn) => return Ok(QueryValue::ValueSet(unescape(raw))),
            Some(Modifier::OfType) => {
                let parts = split_escaped(raw, b'|');
                let [s, c, v] = parts.as_slice() else {
                    return Err(bad("`:of-type` takes `system|code|value`"));
                };
                let (s, c, v) = (unescape(s), unescape(c), unescape(v));
                if s.is_empty() || c.is_empty() || v.is_empty() {
                    return Err(bad("`:of-type` takes `system|code|value`"));
                }
                return Ok(QueryValue::OfType {
                    system: s,
                    code: c,
                    value: v,
                });
            }
            Some(Modifier::Identifier) => {
                let t = token_query(raw).map_err(|_| bad("expected `system|value`"))?;
                return Ok(QueryValue::Reference(ReferenceQuery::Identifier(t)));
            }
            _ => {}
        }
        self.typed_value(param.kind, param, modifier, key, raw)
    }

    fn typed_value(
        &self,
        kind: ParamType,
        param: &ParamRef,
        modifier: Option<&Modifier>,
        key: &str,
        raw: &str,
    ) -> Result<QueryValue, Error> {
        let bad = |reason: String| Error::invalid(key, &unescape(raw), reason);
        Ok(match kind {
            ParamType::String => {
                let exact = unescape(raw);
                QueryValue::String {
                    normalized: normalize(&exact),
                    exact,
                }
            }
            ParamType::Token => {
                QueryValue::Token(token_query(raw).map_err(|_| bad("empty token".into()))?)
            }
            ParamType::Uri => QueryValue::Uri(unescape(raw)),
            ParamType::Reference => {
                let s = unescape(raw);
                let ty = match modifier {
                    Some(Modifier::Type(t)) => Some(t.clone()),
                    _ => None,
                };
                QueryValue::Reference(reference_query(&s, ty, &param.target).map_err(bad)?)
            }
            ParamType::Date => {
                let (prefix, rest) = Prefix::split(raw);
                let text = unescape(rest).replace(' ', "+");
                let range = DateRange::parse(&text, self.registry.zone())
                    .ok_or_else(|| bad("not a FHIR date or dateTime".into()))?;
                QueryValue::Date(DateQuery {
                    prefix,
                    range,
                    approx: approx_range(&range, self.now_ms),
                })
            }
            ParamType::Number => {
                let (prefix, rest) = Prefix::split(raw);
                QueryValue::Number(
                    number_query(prefix, &unescape(rest))
                        .ok_or_else(|| bad("not a number".into()))?,
                )
            }
            ParamType::Quantity => {
                let (prefix, rest) = Prefix::split(raw);
                let parts = split_escaped(rest, b'|');
                let number = parts
                    .first()
                    .and_then(|n| number_query(prefix, &unescape(n)))
                    .ok_or_else(|| bad("not a number".into()))?;
                let (system, code) = match parts.len() {
                    1 => (None, None),
                    3 => {
                        let s = unescape(&parts[1]);
                        let c = unescape(&parts[2]);
                        ((!s.is_empty()).then_some(s), (!c.is_empty()).then_some(c))
                    }
                    _ => {
                        return Err(bad(
                            "expected `value`, `value|system|code` or `value||unit`".into(),
                        ));
                    }
                };
                let canonical = match (system.as_deref(), code.as_deref()) {
                    (Some(UCUM), Some(c)) => ucum::canonical(c).and_then(|can| {
                        let n = number.scaled(can.factor)?;
                        let unit = canonicalize(&NumberValue::exact(Decimal::ONE), c)?.1;
                        Some((n, unit))
                    }),
                    _ => None,
                };
                QueryValue::Quantity(QuantityQuery {
                    number,
                    system,
                    code,
                    canonical,
                })
            }
            ParamType::Composite => {
                let parts = split_escaped(raw, b'$');
                if parts.len() != param.components.len() {
                    return Err(bad(format!(
                        "expected {} `$`-separated components",
                        param.components.len()
                    )));
                }
                let mut vals = Vec::new();
                for (c, p) in param.components.iter().zip(&parts) {
                    vals.push(self.typed_value(c.param.kind, &c.param, None, key, p)?);
                }
                QueryValue::Composite(vals)
            }
            ParamType::Special => {
                let parts: Vec<String> = split_escaped(raw, b'|')
                    .iter()
                    .map(|p| unescape(p))
                    .collect();
                let f = |i: usize| parts.get(i).and_then(|s| s.trim().parse::<f64>().ok());
                let (Some(latitude), Some(longitude)) = (f(0), f(1)) else {
                    return Err(bad("expected `latitude|longitude[|distance[|unit]]`".into()));
                };
                if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                    return Err(bad("latitude or longitude out of range".into()));
                }
                let distance = match parts.get(2).filter(|s| !s.is_empty()) {
                    None => 1.0,
                    Some(d) => d
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|d| *d >= 0.0 && d.is_finite())
                        .ok_or_else(|| bad("invalid distance".into()))?,
                };
                let unit = parts
                    .get(3)
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .unwrap_or("km");
                let unit = match unit {
                    "mi" | "mile" | "miles" => "[mi_i]",
                    "kms" => "km",
                    u => u,
                };
                let factor = ucum::convert(Decimal::ONE, unit, "m")
                    .and_then(|f| f.to_string().parse::<f64>().ok())
                    .ok_or_else(|| bad(format!("`{unit}` is not a length unit")))?;
                QueryValue::Near {
                    point: GeoPoint {
                        latitude,
                        longitude,
                    },
                    distance_m: distance * factor,
                }
            }
        })
    }

    fn result_param(
        &self,
        ty: &str,
        key: &str,
        value: &str,
        r: &mut ResultParams,
    ) -> Result<(), Error> {
        let bad = |reason: &str| Error::invalid(key, value, reason);
        let (name, modifier) = match key.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (key, None),
        };
        let no_modifier = || -> Result<(), Error> {
            match modifier {
                Some(m) => Err(Error::UnknownModifier {
                    code: name.to_string(),
                    modifier: m.to_string(),
                }),
                None => Ok(()),
            }
        };
        match name {
            "_sort" => {
                no_modifier()?;
                for k in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    let (descending, code) = match k.strip_prefix('-') {
                        Some(c) => (true, c),
                        None => (false, k),
                    };
                    let param = self.lookup(ty, code)?;
                    if matches!(param.kind, ParamType::Composite | ParamType::Special) {
                        return Err(Error::Unsupported {
                            code: code.to_string(),
                            reason: format!("sorting by a {} parameter", param.kind),
                        });
                    }
                    r.sort.push(SortKey { param, descending });
                }
            }
            "_count" => {
                no_modifier()?;
                r.count = Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| bad("expected a non-negative integer"))?,
                );
            }
            "_include" | "_revinclude" => {
                let iterate = match modifier {
                    None => false,
                    Some("iterate" | "recurse") => true,
                    Some(m) => {
                        return Err(Error::UnknownModifier {
                            code: name.to_string(),
                            modifier: m.to_string(),
                        });
                    }
                };
                for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                    let inc = self.include(ty, name, v, iterate)?;
                    if name == "_include" {
                        r.include.push(inc);
                    } else {
                        r.revinclude.push(inc);
                    }
                }
            }
            "_summary" => {
                no_modifier()?;
                r.summary = Some(match value.trim() {
                    "true" => Summary::True,
                    "text" => Summary::Text,
                    "data" => Summary::Data,
                    "count" => Summary::Count,
                    "false" => Summary::False,
                    _ => return Err(bad("expected true, text, data, count or false")),
                });
            }
            "_elements" => {
                no_modifier()?;
                r.elements.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(str::to_string),
                );
            }
            "_total" => {
                no_modifier()?;
                r.total = Some(match value.trim() {
                    "none" => Total::None,
                    "estimate" => Total::Estimate,
                    "accurate" => Total::Accurate,
                    _ => return Err(bad("expected none, estimate or accurate")),
                });
            }
            "_contained" => {
                no_modifier()?;
                r.contained = Some(match value.trim() {
                    // Contained resources are not indexed yet: searching them would silently
                    // answer with containers matched by their own values.
                    "true" | "both" => {
                        return Err(bad(
                            "searching contained resources is not supported yet (only `false`)",
                        ));
                    }
                    "false" => Contained::False,
                    _ => return Err(bad("expected true, false or both")),
                });
            }
            "_containedType" => {
                no_modifier()?;
                r.contained_type = Some(match value.trim() {
                    "container" => ContainedType::Container,
                    "contained" => {
                        return Err(bad(
                            "searching contained resources is not supported yet (only `container`)",
                        ));
                    }
                    _ => return Err(bad("expected container or contained")),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn include(&self, ty: &str, name: &str, v: &str, iterate: bool) -> Result<Include, Error> {
        if v == "*" {
            return Ok(Include {
                source_type: ty.to_string(),
                param: None,
                target_type: None,
                iterate,
            });
        }
        let parts: Vec<&str> = v.split(':').collect();
        let bad = |reason: &str| Error::invalid(name, v, reason);
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad("expected `Type:parameter[:targetType]` or `*`"));
        }
        let source_type = parts[0];
        if !definitions().is_resource_type(source_type) {
            return Err(bad("unknown source resource type"));
        }
        let target_type = match parts.get(2) {
            Some(t) if definitions().is_resource_type(t) => Some(t.to_string()),
            Some(_) => return Err(bad("unknown target resource type")),
            None => None,
        };
        let param = if parts[1] == "*" {
            None
        } else {
            let p = self.lookup(source_type, parts[1])?;
            if p.kind != ParamType::Reference {
                return Err(bad("not a reference parameter"));
            }
            if let Some(t) = &target_type
                && !p.target.is_empty()
                && !p.target.contains(t)
            {
                return Err(bad("the parameter does not reference the target type"));
            }
            Some(p)
        };
        Ok(Include {
            source_type: source_type.to_string(),
            param,
            target_type,
            iterate,
        })
    }
}

fn is_result_param(key: &str) -> bool {
    let name = key.split(':').next().unwrap_or(key);
    matches!(
        name,
        "_sort"
            | "_count"
            | "_include"
            | "_revinclude"
            | "_summary"
            | "_elements"
            | "_total"
            | "_contained"
            | "_containedType"
    )
}

/// The `ap` interval: `range` widened on both sides by 10 % of the distance between its
/// middle and `now` (at least its own width is kept).
fn approx_range(range: &DateRange, now: i64) -> DateRange {
    let mid = range.start / 2 + range.end / 2;
    let gap = (i128::from(now) - i128::from(mid)).unsigned_abs() / 10;
    let gap = i64::try_from(gap).unwrap_or(i64::MAX);
    DateRange {
        start: range.start.saturating_sub(gap),
        end: range.end.saturating_add(gap),
        floating: range.floating,
    }
}

/// Parses a number with its precision range (`100` → [99.5, 100.5); `1e2` → [95, 105)).
fn number_query(prefix: Prefix, s: &str) -> Option<NumberQuery> {
    let s = s.trim();
    let value = parse_decimal(s)?;
    let half = match s.split_once(['e', 'E']) {
        Some((mant, exp)) => {
            let exp: i32 = exp.parse().ok()?;
            let scale = mant
                .split_once('.')
                .map(|(_, f)| f.len() as i32)
                .unwrap_or(0);
            let e = scale - exp;
            if e >= 0 {
                half_unit(u32::try_from(e).ok()?)
            } else {
                Decimal::new(5, 0).checked_mul(Decimal::from(
                    10i64.checked_pow(u32::try_from(-e - 1).ok()?)?,
                ))?
            }
        }
        None => half_unit(value.scale()),
    };
    Some(NumberQuery {
        prefix,
        value,
        low: value.checked_sub(half)?,
        high: value.checked_add(half)?,
    })
}

/// Parses a token value (`code`, `system|code`, `|code`, `system|`).
fn token_query(raw: &str) -> Result<TokenQuery, ()> {
    let parts = split_escaped(raw, b'|');
    match parts.as_slice() {
        [code] => {
            let code = unescape(code);
            if code.is_empty() {
                return Err(());
            }
            Ok(TokenQuery {
                system: SystemMatch::Any,
                code: Some(code),
            })
        }
        [system, code] => {
            let (system, code) = (unescape(system), unescape(code));
            match (system.is_empty(), code.is_empty()) {
                (true, true) => Err(()),
                (true, false) => Ok(TokenQuery {
                    system: SystemMatch::None,
                    code: Some(code),
                }),
                (false, true) => Ok(TokenQuery {
                    system: SystemMatch::Is(system),
                    code: None,
                }),
                (false, false) => Ok(TokenQuery {
                    system: SystemMatch::Is(system),
                    code: Some(code),
                }),
            }
        }
        _ => Err(()),
    }
}

/// Parses a reference value.
fn reference_query(
    s: &str,
    ty: Option<String>,
    targets: &[String],
) -> Result<ReferenceQuery, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty reference".into());
    }
    // A URL, or a canonical with `|version` (relative ones as written: `Questionnaire/x|1`).
    if s.contains("://") || s.starts_with("urn:") || s.contains('|') {
        let (url, version) = match s.split_once('|') {
            Some((u, v)) => (u.to_string(), Some(v.to_string())),
            None => (s.to_string(), None),
        };
        return Ok(ReferenceQuery::Url { url, version });
    }
    if s.contains('/') {
        let (t, id, version) = crate::value::split_local(s).ok_or_else(|| {
            "expected `id`, `Type/id`, `Type/id/_history/version` or a URL".to_string()
        })?;
        if let Some(ty) = &ty
            && ty != t
        {
            return Err(format!(
                "the reference type `{t}` contradicts the modifier `:{ty}`"
            ));
        }
        // A type outside the declared targets is accepted: stored data may hold such
        // references (three of the official examples do), and the search is then answered.
        return Ok(ReferenceQuery::Local {
            type_name: Some(t.to_string()),
            id: id.to_string(),
            version: version.map(str::to_string),
        });
    }
    if !flint_model::is_valid_id(s) {
        return Err("not a valid resource id".into());
    }
    let type_name = ty.or_else(|| targets.first().filter(|_| targets.len() == 1).cloned());
    Ok(ReferenceQuery::Local {
        type_name,
        id: s.to_string(),
        version: None,
    })
}

/// Splits at unescaped `sep`, keeping escapes in the parts (for later levels).
pub(crate) fn split_escaped(s: &str, sep: u8) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                cur.push(b[i]);
                cur.push(b[i + 1]);
                i += 2;
                continue;
            }
            c if c == sep => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
        i += 1;
    }
    out.push(cur);
    // Splitting only at ASCII bytes keeps UTF-8 boundaries intact.
    out.into_iter()
        .map(|v| String::from_utf8(v).unwrap_or_default())
        .collect()
}

/// Removes the backslash of `\,`, `\|`, `\$` and `\\`.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\'
            && let Some(&n) = it.peek()
            && matches!(n, ',' | '|' | '$' | '\\')
        {
            out.push(n);
            it.next();
            continue;
        }
        out.push(c);
    }
    out
}
