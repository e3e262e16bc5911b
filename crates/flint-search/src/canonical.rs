//! The engine as the [`CanonicalResolver`] of [`flint_terminology::DbTerminology`]: a stored
//! ValueSet or CodeSystem is the first (in id order) current resource that the strict search
//! `[type]?url=[url]` finds, or `[type]?url=[url]&version=[version]` for a canonical
//! `url|version` (an empty version is none). Both values are escaped, so commas, `$`, `|` and backslashes in them are
//! literal, never search syntax.

use crate::{Engine, Error, QueryParser};
use flint_db::{Db, ResourceHandle};
use flint_terminology::{CanonicalResolver, Error as TerminologyError};

impl CanonicalResolver for Engine {
    fn resolve(
        &self,
        db: &Db,
        type_name: &str,
        url: &str,
    ) -> flint_terminology::Result<Option<ResourceHandle>> {
        let mut params = Vec::with_capacity(2);
        match url.split_once('|') {
            Some((url, version)) if !version.is_empty() => {
                params.push(("url".to_string(), escape(url)));
                params.push(("version".to_string(), escape(version)));
            }
            _ => params.push((
                "url".to_string(),
                escape(url.strip_suffix('|').unwrap_or(url)),
            )),
        }
        let query = QueryParser::new(self.registry())
            .parse(type_name, &params)
            .and_then(|q| q.strict())
            .map_err(|e| TerminologyError::InvalidUrl(e.to_string()))?;
        let first = self
            .matches(db, &query)
            .and_then(|m| m.page(db, 0, 1))
            .map_err(|e| match e {
                Error::Storage(e) => TerminologyError::Storage(e),
                Error::Search(e) => TerminologyError::InvalidUrl(e.to_string()),
            })?;
        Ok(first.into_iter().next())
    }
}

/// `s` as a search parameter value standing for itself: `\`, `,`, `$` and `|` escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '$' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
