//! The search parameter registry: every FHIR R4 search parameter by resource type and code,
//! with compiled FHIRPath expressions, resolved composite components, custom parameters from
//! SearchParameter bundles and compartment membership.
//!
//! Supported: all parameter types of R4 (`string`, `token`, `reference`, `date`, `number`,
//! `quantity`, `uri`, `composite` with any number of components) and the `special` parameter
//! `near` (Location). The `Resource`/`DomainResource` parameters (`_id`, `_lastUpdated`,
//! `_tag`, `_profile`, `_security`, `_source`) apply to every resource type. Expressions of
//! parameters shared by several types (`Patient.name | Practitioner.name`) are specialised per
//! type at build time by dropping the union branches that start with another resource type, so
//! extraction evaluates only what can match.
//!
//! Not supported, listed by [`Registry::unsupported`] with a reason instead of being dropped
//! silently: `_text`, `_content` (full-text search), `_query`, `_filter`, the other `special`
//! parameters, parameters without an expression (`Patient-age`, ...), `Bundle-composition`
//! and `Bundle-message` (their values are whole resources, as in Blaze), parameters whose
//! expression does not compile, and composites whose components cannot be resolved. The
//! SearchParameter *examples* shipped in the core package (ids `example*`: a duplicate `_id`,
//! a duplicate Condition `subject`) are not part of the R4 parameter set and are listed too.

use crate::date::Zone;
use crate::error::Error;
use flint_fhirpath::{Expression, compile};
use flint_model::defs::{Kind, SearchParamDef, definitions};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// `string`: normalised prefix match.
    String,
    /// `token`: system and code.
    Token,
    /// `reference`: references to other resources.
    Reference,
    /// `date`: date/time intervals.
    Date,
    /// `number`: decimals.
    Number,
    /// `quantity`: decimals with units.
    Quantity,
    /// `uri`: URIs, exact or by prefix.
    Uri,
    /// `composite`: tuples of other parameters' values.
    Composite,
    /// `special`: only `near` (Location) is supported.
    Special,
}

impl ParamType {
    /// Parses the FHIR code of a parameter type.
    pub fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "string" => ParamType::String,
            "token" => ParamType::Token,
            "reference" => ParamType::Reference,
            "date" => ParamType::Date,
            "number" => ParamType::Number,
            "quantity" => ParamType::Quantity,
            "uri" => ParamType::Uri,
            "composite" => ParamType::Composite,
            "special" => ParamType::Special,
            _ => return None,
        })
    }

    /// The FHIR code of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Token => "token",
            ParamType::Reference => "reference",
            ParamType::Date => "date",
            ParamType::Number => "number",
            ParamType::Quantity => "quantity",
            ParamType::Uri => "uri",
            ParamType::Composite => "composite",
            ParamType::Special => "special",
        }
    }

    /// Whether values of this type take the prefixes `eq ne gt lt ge le sa eb ap`.
    pub fn is_ordered(self) -> bool {
        matches!(
            self,
            ParamType::Date | ParamType::Number | ParamType::Quantity
        )
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One component of a composite parameter, resolved to its parameter.
#[derive(Debug)]
pub struct Component {
    /// Canonical URL of the component's parameter.
    pub definition: String,
    /// The component's parameter (gives the value type).
    pub param: Arc<SearchParam>,
    /// FHIRPath expression relative to each value of the composite's expression.
    pub expression: String,
    pub(crate) compiled: Expression,
}

/// A search parameter with its compiled expression.
#[derive(Debug)]
pub struct SearchParam {
    /// Canonical URL.
    pub url: String,
    /// The code used in query strings.
    pub code: String,
    /// Resource types the parameter applies to (`Resource` for all).
    pub base: Vec<String>,
    /// The parameter type.
    pub kind: ParamType,
    /// The FHIRPath expression as defined.
    pub expression: String,
    /// Target resource types of reference parameters.
    pub target: Vec<String>,
    /// Modifiers the definition lists (informational; R4 core definitions list almost none).
    pub modifiers: Vec<String>,
    /// Comparators the definition lists (informational).
    pub comparators: Vec<String>,
    /// Resolved components of a composite parameter.
    pub components: Vec<Component>,
    /// Whether the parameter came from a custom bundle rather than the core package.
    pub custom: bool,
    pub(crate) compiled: Arc<Expression>,
}

/// A shared handle to a registered parameter.
pub type ParamRef = Arc<SearchParam>;

/// A parameter that is known but not supported, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Canonical URL.
    pub url: String,
    /// The code.
    pub code: String,
    /// Resource types it would apply to.
    pub base: Vec<String>,
    /// Why it is not supported.
    pub reason: String,
}

/// A parameter as bound to one resource type: the expression specialised to that type.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub(crate) param: ParamRef,
    /// `None` when no union branch of the expression can apply to the type.
    pub(crate) expr: Option<Arc<Expression>>,
}

/// The parameters of one resource type.
#[derive(Debug, Default, Clone)]
pub(crate) struct TypeParams {
    pub(crate) by_code: HashMap<String, usize>,
    pub(crate) bound: Vec<Bound>,
}

/// What [`Registry::add_bundle`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleReport {
    /// URLs of the parameters added.
    pub added: Vec<String>,
    /// URLs of earlier parameters the bundle replaced (same URL, or same code on a base).
    pub replaced: Vec<String>,
    /// Parameters of the bundle that are not supported (e.g. `special` ones).
    pub unsupported: Vec<Unsupported>,
}

/// All search parameters by resource type and code, plus compartment definitions.
#[derive(Debug, Clone)]
pub struct Registry {
    params: Vec<ParamRef>,
    by_url: HashMap<String, ParamRef>,
    types: HashMap<String, TypeParams>,
    unsupported: Vec<Unsupported>,
    /// compartment type → resource type → linking parameter codes.
    compartments: HashMap<String, HashMap<String, Vec<String>>>,
    /// The zone date values without one are read in.
    zone: Zone,
}

const ALL_TYPES: [&str; 2] = ["Resource", "DomainResource"];

impl Registry {
    /// The registry of all FHIR R4 (4.0.1) core search parameters and compartments.
    pub fn r4() -> Registry {
        let mut reg = Registry {
            params: Vec::new(),
            by_url: HashMap::new(),
            types: HashMap::new(),
            unsupported: Vec::new(),
            compartments: HashMap::new(),
            zone: Zone::utc(),
        };
        let defs = definitions().search_params();
        let mut deferred = Vec::new();
        for d in defs {
            if let Some(reason) = core_exclusion(d) {
                reg.unsupported.push(unsupported(d, reason));
                continue;
            }
            if d.kind == "composite" {
                deferred.push(d);
                continue;
            }
            match build_param(d, false, |_| None) {
                Ok(p) => reg.insert(Arc::new(p)),
                Err(reason) => reg.unsupported.push(unsupported(d, reason)),
            }
        }
        for d in deferred {
            let by_url = reg.by_url.clone();
            match build_param(d, false, |u| by_url.get(u).cloned()) {
                Ok(p) => reg.insert(Arc::new(p)),
                Err(reason) => reg.unsupported.push(unsupported(d, reason)),
            }
        }
        for c in definitions().compartments() {
            let mut members = HashMap::new();
            for r in &c.resource {
                if !r.param.is_empty() {
                    members.insert(r.code.clone(), r.param.clone());
                }
            }
            reg.compartments.insert(c.code.clone(), members);
        }
        reg
    }

    /// Adds (or replaces) a parameter; bases `Resource`/`DomainResource` bind to every type.
    fn insert(&mut self, p: ParamRef) {
        let types: Vec<String> = if p.base.iter().any(|b| ALL_TYPES.contains(&b.as_str())) {
            let mut t = definitions().resource_types().to_vec();
            for b in &p.base {
                if !t.contains(b) && !ALL_TYPES.contains(&b.as_str()) {
                    t.push(b.clone());
                }
            }
            t
        } else {
            p.base.clone()
        };
        for ty in types {
            let expr = specialise(&p, &ty);
            let tp = self.types.entry(ty).or_default();
            let bound = Bound {
                param: p.clone(),
                expr,
            };
            match tp.by_code.get(&p.code) {
                Some(&i) => tp.bound[i] = bound,
                None => {
                    tp.by_code.insert(p.code.clone(), tp.bound.len());
                    tp.bound.push(bound);
                }
            }
        }
        if let Some(old) = self.by_url.insert(p.url.clone(), p.clone()) {
            self.params.retain(|x| !Arc::ptr_eq(x, &old));
        }
        self.params.push(p);
    }

    /// The time zone date values without one are read in, in resources and queries
    /// (`FHIR_DEFAULT_TIME_ZONE`; UTC unless set, see [`crate::date`]).
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Reads date values without a time zone in `zone` from now on (part of the
    /// fingerprint: an index built in another zone is re-indexed).
    pub fn set_zone(&mut self, zone: Zone) {
        self.zone = zone;
    }

    /// The supported parameter `code` of `resource_type`.
    pub fn param(&self, resource_type: &str, code: &str) -> Option<&ParamRef> {
        let tp = self.types.get(resource_type)?;
        tp.by_code.get(code).map(|&i| &tp.bound[i].param)
    }

    /// The supported parameter with canonical URL `url`.
    pub fn by_url(&self, url: &str) -> Option<&ParamRef> {
        self.by_url.get(url)
    }

    /// All supported parameters of `resource_type`, in definition order.
    pub fn params_of(&self, resource_type: &str) -> impl Iterator<Item = &ParamRef> {
        self.types
            .get(resource_type)
            .into_iter()
            .flat_map(|tp| tp.bound.iter().map(|b| &b.param))
    }

    /// All supported parameters.
    pub fn all(&self) -> &[ParamRef] {
        &self.params
    }

    /// A digest of every parameter's URL, code, type, bases and expression and of the zone
    /// of zone-less dates: an index built for another fingerprint needs re-indexing.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint_with(&[])
    }

    /// [`Registry::fingerprint`] also covering `layout`: lines naming what else decides the
    /// index's entries (e.g. which parameters a derived index holds), so changing them
    /// re-indexes too.
    pub fn fingerprint_with(&self, layout: &[&str]) -> [u8; 32] {
        use sha2::Digest;
        let mut lines: Vec<String> = self
            .params
            .iter()
            .map(|p| {
                format!(
                    "{}\t{}\t{}\t{}\t{}",
                    p.url,
                    p.code,
                    p.kind.as_str(),
                    p.base.join(","),
                    p.expression
                )
            })
            .collect();
        lines.sort();
        lines.push(format!("dates v2 zone\t{}", self.zone.name()));
        lines.extend(layout.iter().map(|l| format!("layout\t{l}")));
        let mut h = sha2::Sha256::new();
        for l in lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        h.finalize().into()
    }

    /// The known but unsupported parameters, with reasons.
    pub fn unsupported(&self) -> &[Unsupported] {
        &self.unsupported
    }

    /// The unsupported parameter `code` applying to `resource_type`, if any (for errors that
    /// say *why* a parameter cannot be used).
    pub fn unsupported_param(&self, resource_type: &str, code: &str) -> Option<&Unsupported> {
        self.unsupported.iter().find(|u| {
            u.code == code
                && u.base.iter().any(|b| {
                    b == resource_type
                        || (ALL_TYPES.contains(&b.as_str())
                            && definitions().is_resource_type(resource_type))
                })
        })
    }

    pub(crate) fn bound(&self, resource_type: &str) -> Option<&TypeParams> {
        self.types.get(resource_type)
    }

    /// The codes of the parameters of `resource_type` linking it to a compartment of type
    /// `compartment` (`Patient`, `Encounter`, `RelatedPerson`, `Practitioner`, `Device`);
    /// empty when the type is not a member.
    pub fn compartment_params(&self, compartment: &str, resource_type: &str) -> &[String] {
        self.compartments
            .get(compartment)
            .and_then(|m| m.get(resource_type))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The compartment types (`Patient`, ...) that `resource_type` can be a member of.
    pub fn compartments_of_type(&self, resource_type: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .compartments
            .iter()
            .filter(|(_, m)| m.contains_key(resource_type))
            .map(|(c, _)| c.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// Adds the SearchParameter resources of a Bundle (JSON bytes, as the
    /// `DB_SEARCH_PARAM_BUNDLE` file holds). A parameter replaces an earlier one with the same
    /// URL or with the same code on one of its bases. Malformed entries and expressions that do
    /// not compile fail the whole bundle (nothing is added); parameters of unsupported types
    /// are reported, not added.
    pub fn add_bundle(&mut self, bytes: &[u8]) -> Result<BundleReport, Error> {
        let bundle: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidBundle(format!("not JSON: {e}")))?;
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(Error::InvalidBundle("not a Bundle resource".into()));
        }
        let entries = match bundle.get("entry") {
            None => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return Err(Error::InvalidBundle("Bundle.entry is not an array".into())),
        };
        let mut defs = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let at = |m: String| Error::InvalidBundle(format!("Bundle.entry[{i}]: {m}"));
            let r = e
                .get("resource")
                .ok_or_else(|| at("entry without a resource".into()))?;
            let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
            if rt != "SearchParameter" {
                return Err(at(format!("expected a SearchParameter, found `{rt}`")));
            }
            defs.push((i, parse_definition(r).map_err(at)?));
        }
        let mut staged = self.clone();
        let mut report = BundleReport::default();
        let mut composites = Vec::new();
        for (i, d) in defs {
            if d.kind == "composite" {
                composites.push((i, d));
                continue;
            }
            staged.add_custom(i, &d, &mut report)?;
        }
        for (i, d) in composites {
            staged.add_custom(i, &d, &mut report)?;
        }
        *self = staged;
        Ok(report)
    }

    fn add_custom(
        &mut self,
        i: usize,
        d: &SearchParamDef,
        report: &mut BundleReport,
    ) -> Result<(), Error> {
        let kind = ParamType::parse(&d.kind).ok_or_else(|| {
            Error::InvalidBundle(format!(
                "Bundle.entry[{i}] ({}): unknown type `{}`",
                d.url, d.kind
            ))
        })?;
        if kind == ParamType::Special && d.code != "near" {
            report.unsupported.push(unsupported(
                d,
                "special parameters other than `near` are not supported".into(),
            ));
            return Ok(());
        }
        for b in &d.base {
            if !ALL_TYPES.contains(&b.as_str()) && !definitions().is_resource_type(b) {
                return Err(Error::InvalidBundle(format!(
                    "Bundle.entry[{i}] ({}): unknown base resource type `{b}`",
                    d.url
                )));
            }
        }
        let by_url = self.by_url.clone();
        let p = build_param(d, true, |u| by_url.get(u).cloned()).map_err(|reason| {
            Error::InvalidBundle(format!("Bundle.entry[{i}] ({}): {reason}", d.url))
        })?;
        let mut replaced: Vec<String> = Vec::new();
        if self.by_url.contains_key(&p.url) {
            replaced.push(p.url.clone());
        }
        for b in &p.base {
            if let Some(old) = self.param(b, &p.code)
                && old.url != p.url
                && !replaced.contains(&old.url)
            {
                replaced.push(old.url.clone());
            }
        }
        report.added.push(p.url.clone());
        report.replaced.extend(replaced);
        self.insert(Arc::new(p));
        Ok(())
    }
}

/// Why a core definition is left out, if it is.
fn core_exclusion(d: &SearchParamDef) -> Option<String> {
    if d.id.starts_with("example") {
        return Some(
            "an example SearchParameter of the specification, not part of the R4 parameter set"
                .into(),
        );
    }
    if d.code == "_text" || d.code == "_content" {
        return Some("full-text search is not supported".into());
    }
    if d.id == "Bundle-composition" || d.id == "Bundle-message" {
        return Some(
            "its values are resources inside the Bundle, not references (not supported, as in Blaze)"
                .into(),
        );
    }
    None
}

fn unsupported(d: &SearchParamDef, reason: String) -> Unsupported {
    Unsupported {
        url: d.url.clone(),
        code: d.code.clone(),
        base: d.base.clone(),
        reason,
    }
}

/// Builds a parameter from its definition; `resolve` finds component parameters by URL.
fn build_param(
    d: &SearchParamDef,
    custom: bool,
    resolve: impl Fn(&str) -> Option<ParamRef>,
) -> Result<SearchParam, String> {
    let kind = ParamType::parse(&d.kind).ok_or_else(|| format!("unknown type `{}`", d.kind))?;
    if kind == ParamType::Special && d.code != "near" {
        return Err("special parameters other than `near` are not supported".into());
    }
    let expression = d
        .expression
        .clone()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| "the definition has no FHIRPath expression".to_string())?;
    let compiled = compile(&expression).map_err(|e| format!("expression does not compile: {e}"))?;
    let mut components = Vec::new();
    if kind == ParamType::Composite {
        if d.component.len() < 2 {
            return Err("a composite parameter needs at least two components".into());
        }
        for c in &d.component {
            let param = resolve(&c.definition).ok_or_else(|| {
                format!(
                    "component parameter `{}` is not a supported parameter",
                    c.definition
                )
            })?;
            if param.kind == ParamType::Composite || param.kind == ParamType::Special {
                return Err(format!(
                    "component parameter `{}` has type {}, which cannot be a component",
                    c.definition, param.kind
                ));
            }
            let compiled = compile(&c.expression).map_err(|e| {
                format!(
                    "component expression `{}` does not compile: {e}",
                    c.expression
                )
            })?;
            components.push(Component {
                definition: c.definition.clone(),
                param,
                expression: c.expression.clone(),
                compiled,
            });
        }
    }
    Ok(SearchParam {
        url: d.url.clone(),
        code: d.code.clone(),
        base: d.base.clone(),
        kind,
        expression,
        target: d.target.clone(),
        modifiers: d.modifier.clone(),
        comparators: d.comparator.clone(),
        components,
        custom,
        compiled: Arc::new(compiled),
    })
}

/// Reads a SearchParameter resource into a definition.
fn parse_definition(r: &Value) -> Result<SearchParamDef, String> {
    let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let list = |k: &str| -> Result<Vec<String>, String> {
        match r.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{k}` must hold strings"))
                })
                .collect(),
            Some(_) => Err(format!("`{k}` must be an array")),
        }
    };
    let url = s("url").ok_or("missing `url`")?;
    let code = s("code").ok_or_else(|| format!("{url}: missing `code`"))?;
    if code.is_empty() || code.contains([':', '.', ',', '$', '|', '=', '&']) {
        return Err(format!("{url}: invalid code `{code}`"));
    }
    let kind = s("type").ok_or_else(|| format!("{url}: missing `type`"))?;
    let base = list("base").map_err(|e| format!("{url}: {e}"))?;
    if base.is_empty() {
        return Err(format!("{url}: missing `base`"));
    }
    let mut component = Vec::new();
    if let Some(cs) = r.get("component") {
        let cs = cs
            .as_array()
            .ok_or_else(|| format!("{url}: `component` must be an array"))?;
        for c in cs {
            let definition = c
                .get("definition")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{url}: component without `definition`"))?;
            let expression = c
                .get("expression")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{url}: component without `expression`"))?;
            component.push(flint_model::defs::SearchParamComponent {
                definition: definition.to_string(),
                expression: expression.to_string(),
            });
        }
    }
    Ok(SearchParamDef {
        id: s("id").unwrap_or_default(),
        url,
        code,
        base,
        kind,
        expression: s("expression"),
        target: list("target").unwrap_or_default(),
        modifier: list("modifier").unwrap_or_default(),
        comparator: list("comparator").unwrap_or_default(),
        component,
    })
}

/// The parameter's expression reduced to the union branches that can apply to `ty`.
fn specialise(p: &SearchParam, ty: &str) -> Option<Arc<Expression>> {
    let branches = split_union(&p.expression);
    if branches.len() < 2 {
        return Some(p.compiled.clone());
    }
    let kept: Vec<&str> = branches
        .iter()
        .copied()
        .filter(|b| match leading_identifier(b) {
            Some(id) => !is_other_resource_type(id, ty),
            None => true,
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    if kept.len() == branches.len() {
        return Some(p.compiled.clone());
    }
    match compile(&kept.join(" | ")) {
        Ok(e) => Some(Arc::new(e)),
        Err(_) => Some(p.compiled.clone()),
    }
}

/// Whether `id` names a resource type other than `ty` (and not one of its ancestors).
fn is_other_resource_type(id: &str, ty: &str) -> bool {
    let d = definitions();
    match d.type_def(id) {
        Some(t) if t.kind == Kind::Resource => !d.is_subtype(ty, id),
        _ => false,
    }
}

/// Splits a FHIRPath expression at its top-level `|` operators.
fn split_union(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) => {
                if c == b'\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'\'' | b'`' | b'"' => quote = Some(c),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'|' if depth == 0 => {
                    out.push(expr[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    out.push(expr[start..].trim());
    out
}

/// The first identifier of an expression branch, skipping opening parentheses.
fn leading_identifier(branch: &str) -> Option<&str> {
    let s = branch.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let id = &s[..end];
    (!id.is_empty() && id.starts_with(|c: char| c.is_ascii_uppercase())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_unions() {
        assert_eq!(
            split_union("Patient.name | Practitioner.name.where(a='|') | (X as Y)"),
            vec!["Patient.name", "Practitioner.name.where(a='|')", "(X as Y)"]
        );
        assert_eq!(
            leading_identifier("(Observation.value as Quantity)"),
            Some("Observation")
        );
        assert_eq!(leading_identifier("%resource.x"), None);
    }

    #[test]
    fn core_registry() {
        let r = Registry::r4();
        let p = r.param("Patient", "name").unwrap();
        assert_eq!(p.kind, ParamType::String);
        assert!(r.param("Patient", "_id").is_some());
        assert!(r.param("Observation", "_lastUpdated").is_some());
        assert!(r.param("Observation", "_tag").is_some());
        assert!(r.param("Patient", "_text").is_none());
        assert!(r.unsupported_param("Patient", "_text").is_some());
        assert!(r.unsupported_param("Patient", "_content").is_some());
        assert!(r.param("Patient", "foo").is_none());
        let cvq = r.param("Observation", "code-value-quantity").unwrap();
        assert_eq!(cvq.components.len(), 2);
        assert_eq!(cvq.components[0].param.kind, ParamType::Token);
        assert_eq!(cvq.components[1].param.kind, ParamType::Quantity);
        assert_eq!(
            r.param("Condition", "subject").unwrap().target,
            vec!["Group", "Patient"]
        );
        assert_eq!(
            r.param("Location", "near").unwrap().kind,
            ParamType::Special
        );
        // Every unsupported core parameter has a reason.
        for u in r.unsupported() {
            assert!(!u.reason.is_empty());
        }
        let mut reasons: Vec<_> = r
            .unsupported()
            .iter()
            .map(|u| format!("{} ({}): {}", u.code, u.url, u.reason))
            .collect();
        reasons.sort();
        println!(
            "{} supported, {} unsupported:\n{}",
            r.all().len(),
            reasons.len(),
            reasons.join("\n")
        );
    }

    #[test]
    fn shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Registry>();
        assert_send_sync::<crate::Query>();
        assert_send_sync::<crate::IndexValue>();
    }

    #[test]
    fn compartments() {
        let r = Registry::r4();
        assert_eq!(
            r.compartment_params("Patient", "Observation"),
            ["subject", "performer"]
        );
        assert!(r.compartment_params("Patient", "Library").is_empty());
        assert!(r.compartments_of_type("Encounter").contains(&"Patient"));
        // Every compartment parameter resolves to a reference parameter of the member type.
        for c in [
            "Patient",
            "Encounter",
            "RelatedPerson",
            "Practitioner",
            "Device",
        ] {
            for t in definitions().resource_types() {
                for code in r.compartment_params(c, t) {
                    if code == "{def}" {
                        continue;
                    }
                    let p = r.param(t, code);
                    assert!(
                        p.is_some_and(|p| p.kind == ParamType::Reference),
                        "{c}: {t}.{code}"
                    );
                }
            }
        }
    }

    #[test]
    fn specialises_shared_expressions() {
        let r = Registry::r4();
        let tp = r.bound("Patient").unwrap();
        let b = &tp.bound[tp.by_code["name"]];
        assert_eq!(b.expr.as_ref().unwrap().source(), "Patient.name");
        let tp = r.bound("Practitioner").unwrap();
        let b = &tp.bound[tp.by_code["family"]];
        assert_eq!(
            b.expr.as_ref().unwrap().source(),
            "Practitioner.name.family"
        );
    }

    #[test]
    fn custom_bundle() {
        let mut r = Registry::r4();
        let bundle = br#"{"resourceType":"Bundle","type":"collection","entry":[
          {"resource":{"resourceType":"SearchParameter","url":"http://example.org/sp/patient-nick",
            "code":"nick","base":["Patient"],"type":"string","status":"active",
            "expression":"Patient.name.where(use='nickname').given"}},
          {"resource":{"resourceType":"SearchParameter","url":"http://example.org/sp/combo",
            "code":"gender-nick","base":["Patient"],"type":"composite","status":"active",
            "expression":"Patient",
            "component":[{"definition":"http://hl7.org/fhir/SearchParameter/individual-gender","expression":"gender"},
                         {"definition":"http://example.org/sp/patient-nick","expression":"name.given"}]}},
          {"resource":{"resourceType":"SearchParameter","url":"http://example.org/sp/x",
            "code":"x","base":["Patient"],"type":"special","status":"active","expression":"Patient.id"}}
        ]}"#;
        let rep = r.add_bundle(bundle).unwrap();
        assert_eq!(rep.added.len(), 2);
        assert_eq!(rep.unsupported.len(), 1);
        assert!(r.param("Patient", "nick").unwrap().custom);
        assert_eq!(
            r.param("Patient", "gender-nick").unwrap().components.len(),
            2
        );

        let err = |b: &[u8]| r.clone().add_bundle(b).unwrap_err().to_string();
        assert!(err(b"{").contains("not JSON"));
        assert!(err(br#"{"resourceType":"Patient"}"#).contains("not a Bundle"));
        assert!(
            err(br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}}]}"#)
                .contains("entry[0]")
        );
        assert!(err(br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"SearchParameter","url":"u","code":"c","base":["Patient"],"type":"string","expression":"Patient.name.("}}]}"#).contains("does not compile"));
        assert!(err(br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"SearchParameter","url":"u","code":"c","base":["Nope"],"type":"string","expression":"name"}}]}"#).contains("unknown base"));
        assert!(err(br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"SearchParameter","url":"u","code":"c","base":["Patient"],"type":"composite","expression":"Patient","component":[{"definition":"nope","expression":"a"},{"definition":"nope","expression":"b"}]}}]}"#).contains("not a supported parameter"));
        // A failed bundle leaves the registry unchanged.
        let before = r.all().len();
        let _ = r.add_bundle(br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"SearchParameter","url":"ok","code":"ok","base":["Patient"],"type":"string","expression":"Patient.name"}},{"resource":{"resourceType":"SearchParameter","url":"u"}}]}"#);
        assert_eq!(r.all().len(), before);
        // Replacement by code.
        let rep = r.add_bundle(br#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"SearchParameter","url":"http://x/fam","code":"family","base":["Patient"],"type":"string","expression":"Patient.name.family"}}]}"#).unwrap();
        assert_eq!(
            rep.replaced,
            vec!["http://hl7.org/fhir/SearchParameter/individual-family"]
        );
        assert_eq!(r.param("Patient", "family").unwrap().url, "http://x/fam");
        assert_eq!(
            r.param("Practitioner", "family").unwrap().url,
            "http://hl7.org/fhir/SearchParameter/individual-family"
        );
    }
}
