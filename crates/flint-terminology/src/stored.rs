//! [`DbTerminology`]: the [`Terminology`] of the ValueSets and CodeSystems stored in a
//! database value.
//!
//! A ValueSet stands for its `expansion.contains` (nested `contains` included, entries
//! without a code skipped) when it has one; otherwise for its `compose.include`s, each giving
//! - its listed `concept`s (in its `system`, or in any system without one);
//! - for each `filter` with an `op` and a `value` over a stored CodeSystem `system`: `is-a`
//!   the value and the codes below it, `descendent-of` only the codes below it; other
//!   operators are [`Error::UnsupportedFilter`], a filter over a CodeSystem that is not
//!   stored [`Error::UnknownFilterSystem`] (filters without a `system` are ignored);
//! - with neither concepts nor filters, every code of its `system`.
//!
//! Not applied (yet): `compose.include.valueSet` (includes of other ValueSets),
//! `compose.exclude`, `include.version`, and filters on properties other than the
//! hierarchy. A closure ([`Terminology::closure`]) walks the CodeSystem's [`Hierarchy`].

use crate::{Coding, Direction, Error, Hierarchy, Result, Terminology};
use flint_db::{Db, DbError, ResourceHandle};
use serde_json::Value;

/// Finds the current resource of a type by canonical url at a database value (the search
/// engine implements it with its `url` index).
pub trait CanonicalResolver: Send + Sync {
    /// The current resource of `type_name` whose `url` is `url` (a `url|version` picks the
    /// version); the first in id order when several are.
    fn resolve(&self, db: &Db, type_name: &str, url: &str) -> Result<Option<ResourceHandle>>;
}

/// The terminology of the ValueSets and CodeSystems stored in a database value, found by
/// canonical url through `R`.
#[derive(Debug, Clone)]
pub struct DbTerminology<R> {
    resolver: R,
}

impl<R: CanonicalResolver> DbTerminology<R> {
    /// The terminology of the resources `resolver` finds.
    pub fn new(resolver: R) -> Self {
        DbTerminology { resolver }
    }

    /// The resolver finding stored resources by canonical url.
    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// The stored resource of `type_name` with canonical `url`, parsed.
    pub async fn resource(&self, db: &Db, type_name: &str, url: &str) -> Result<Option<Value>> {
        let Some(h) = self.resolver.resolve(db, type_name, url)? else {
            return Ok(None);
        };
        let bytes = db.pull(&h).await?;
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| DbError::fault(format!("stored resource is not JSON: {e}")))?;
        Ok(Some(v))
    }

    /// The hierarchy of the stored CodeSystem with canonical `url`.
    pub async fn hierarchy(&self, db: &Db, url: &str) -> Result<Option<Hierarchy>> {
        Ok(self
            .resource(db, "CodeSystem", url)
            .await?
            .map(|cs| Hierarchy::of(&cs)))
    }
}

#[async_trait::async_trait]
impl<R: CanonicalResolver> Terminology for DbTerminology<R> {
    async fn expand(&self, db: &Db, url: &str) -> Result<Vec<Coding>> {
        let vs = self
            .resource(db, "ValueSet", url)
            .await?
            .ok_or_else(|| Error::UnknownValueSet(url.to_string()))?;
        let coding = |system: Option<&str>, code: Option<&str>| Coding {
            system: system.map(str::to_string),
            code: code.map(str::to_string),
        };
        let mut out = Vec::new();
        if let Some(contains) = vs["expansion"]["contains"].as_array() {
            let mut stack: Vec<&Value> = contains.iter().collect();
            while let Some(c) = stack.pop() {
                if let Some(code) = c["code"].as_str() {
                    out.push(coding(c["system"].as_str(), Some(code)));
                }
                stack.extend(c["contains"].as_array().into_iter().flatten());
            }
            return Ok(out);
        }
        for inc in vs["compose"]["include"].as_array().into_iter().flatten() {
            let system = inc["system"].as_str();
            let concepts = inc["concept"].as_array();
            let filters = inc["filter"].as_array();
            if let Some(cs) = concepts {
                for c in cs {
                    out.push(coding(system, c["code"].as_str()));
                }
            }
            if let (Some(fs), Some(sys)) = (filters, system) {
                let stored = self.resource(db, "CodeSystem", sys).await?;
                // Built on the first filter that needs it, once per include.
                let mut hierarchy: Option<Hierarchy> = None;
                for f in fs {
                    let (Some(op), Some(value)) = (f["op"].as_str(), f["value"].as_str()) else {
                        continue;
                    };
                    let Some(cs) = &stored else {
                        return Err(Error::UnknownFilterSystem {
                            value_set: url.to_string(),
                            system: sys.to_string(),
                        });
                    };
                    let h = hierarchy.get_or_insert_with(|| Hierarchy::of(cs));
                    let mut codes = h.descendants(value);
                    match op {
                        "is-a" => {}
                        "descendent-of" => codes.retain(|c| c != value),
                        other => {
                            return Err(Error::UnsupportedFilter {
                                value_set: url.to_string(),
                                op: other.to_string(),
                            });
                        }
                    }
                    out.extend(codes.iter().map(|c| coding(Some(sys), Some(c))));
                }
            }
            if concepts.is_none() && filters.is_none() && system.is_some() {
                out.push(coding(system, None));
            }
        }
        Ok(out)
    }

    async fn closure(
        &self,
        db: &Db,
        system: &str,
        code: &str,
        direction: Direction,
    ) -> Result<Option<Vec<String>>> {
        Ok(self
            .hierarchy(db, system)
            .await?
            .map(|h| h.closure(code, direction)))
    }
}
