//! Extraction: evaluating every search parameter of a resource's type and turning the results
//! into [`IndexValue`]s per the FHIR R4 search specification.
//!
//! Per parameter type, the element types understood are:
//! - `string`: string-like primitives, HumanName (family, given, prefix, suffix, text),
//!   Address (line, city, district, state, postalCode, country, text). Blaze indexes only
//!   family/given and the address parts; prefix, suffix and text are added because the spec
//!   names them for `name`/`address`.
//! - `token`: Coding, CodeableConcept (one token per coding with its display, one text-only
//!   token for `text`), Identifier (with `type` for `:of-type` and `type.text` for `:text`),
//!   ContactPoint (system and value), code/string/id/uri and other primitives by value,
//!   boolean as `true`/`false`.
//! - `reference`: Reference (literal `Type/id[/_history/v]`, absolute URLs and URNs,
//!   `Reference.identifier`), canonical/uri elements as canonical URLs with `|version` split
//!   off (relative canonicals as written). References to contained resources (`#id`, also
//!   as canonicals) and conditional references are not indexed.
//! - `date`: date, dateTime, instant, Period, Timing (see [`crate::date`]).
//! - `number`: decimal (with precision range), integer types (exact), Range, Quantity values.
//! - `quantity`: Quantity and its profiles (Age, Duration, ...; a `comparator` turns the value
//!   into a one-sided range), Money (currency as code in `urn:iso:std:iso:4217`), Range.
//! - `uri`: uri, url, canonical, oid, uuid and string values.
//! - `composite`: for each value of the composite's expression, the component expressions
//!   evaluated from it; one tuple per combination of component values (at most 64 per value).
//! - `special` `near`: Location.position latitude/longitude.
//!
//! Extensions are indexed by their `value[x]`. Elements of other types are skipped. Decimals that do not fit a 96-bit decimal are skipped.
//! A FHIRPath evaluation error fails the extraction with [`Error::Evaluation`].

use crate::date::{self, DateRange, Zone};
use crate::error::Error;
use crate::normalize::normalize;
use crate::registry::{ParamRef, ParamType, Registry, SearchParam};
use crate::value::{
    GeoPoint, IndexValue, NumberValue, QuantityValue, ReferenceValue, StringValue, TokenValue,
    parse_decimal,
};
use flint_fhirpath::{EvalContext, Expression, Item, Node};
use flint_model::defs::definitions;
use rust_decimal::Decimal;
use serde_json::Value;

/// Most combinations kept per composite value when several components have several values.
const MAX_TUPLES: usize = 64;

impl Registry {
    /// Evaluates every parameter of the resource's type and returns its index values.
    pub fn extract(&self, resource: &Value) -> Result<Vec<(ParamRef, IndexValue)>, Error> {
        let ty = resource_type(resource)?;
        let mut out = Vec::new();
        let Some(tp) = self.bound(ty) else {
            return Ok(out);
        };
        let ctx = EvalContext::new(resource);
        let mut buf = Vec::new();
        for b in &tp.bound {
            let Some(expr) = &b.expr else { continue };
            buf.clear();
            values_of(&b.param, expr, resource, &ctx, self.zone(), &mut buf)?;
            out.extend(buf.drain(..).map(|v| (b.param.clone(), v)));
        }
        Ok(out)
    }

    /// The index values of one parameter of a resource (e.g. for sorting or re-indexing).
    pub fn extract_param(
        &self,
        param: &SearchParam,
        resource: &Value,
    ) -> Result<Vec<IndexValue>, Error> {
        let ty = resource_type(resource)?;
        let mut out = Vec::new();
        let Some(tp) = self.bound(ty) else {
            return Ok(out);
        };
        let Some(b) = tp.by_code.get(&param.code).map(|&i| &tp.bound[i]) else {
            return Ok(out);
        };
        if let Some(expr) = &b.expr {
            let ctx = EvalContext::new(resource);
            values_of(&b.param, expr, resource, &ctx, self.zone(), &mut out)?;
        }
        Ok(out)
    }
}

impl Registry {
    /// The compartments (`(compartment type, owner id)`) a resource belongs to, given its
    /// extracted values: a compartment parameter of its type referencing `Type/id` locally,
    /// and the resource itself when it is a compartment owner (`Patient/p` is in
    /// `Patient/p`'s compartment). Sorted, without duplicates.
    pub fn compartments_of(
        &self,
        resource_type: &str,
        id: Option<&str>,
        values: &[(ParamRef, IndexValue)],
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for c in self.compartments_of_type(resource_type) {
            let params = self.compartment_params(c, resource_type);
            if c == resource_type
                && let Some(id) = id
            {
                out.push((c.to_string(), id.to_string()));
            }
            for (p, v) in values {
                if let IndexValue::Reference(ReferenceValue::Local { type_name, id, .. }) = v
                    && type_name == c
                    && params.iter().any(|x| *x == p.code)
                {
                    out.push((c.to_string(), id.clone()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn resource_type(resource: &Value) -> Result<&str, Error> {
    let ty = resource
        .as_object()
        .ok_or_else(|| Error::InvalidResource("not a JSON object".into()))?
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidResource("missing resourceType".into()))?;
    if !definitions().is_resource_type(ty) {
        return Err(Error::UnknownResourceType(ty.to_string()));
    }
    Ok(ty)
}

fn eval_err(p: &SearchParam, e: flint_fhirpath::Error) -> Error {
    Error::Evaluation {
        url: p.url.clone(),
        message: e.to_string(),
    }
}

fn values_of<'a>(
    p: &SearchParam,
    expr: &Expression,
    resource: &'a Value,
    ctx: &EvalContext<'a>,
    zone: &Zone,
    out: &mut Vec<IndexValue>,
) -> Result<(), Error> {
    let items = expr.evaluate_with(ctx).map_err(|e| eval_err(p, e))?;
    if p.kind != ParamType::Composite {
        for it in &items {
            convert(p.kind, it, zone, out);
        }
        return Ok(());
    }
    for it in items {
        let sub = EvalContext::new(resource).with_start(vec![it]);
        let mut per_component: Vec<Vec<IndexValue>> = Vec::with_capacity(p.components.len());
        for c in &p.components {
            let mut vals = Vec::new();
            for ci in c.compiled.evaluate_with(&sub).map_err(|e| eval_err(p, e))? {
                convert(c.param.kind, &ci, zone, &mut vals);
            }
            if vals.is_empty() {
                break;
            }
            per_component.push(vals);
        }
        if per_component.len() != p.components.len() {
            continue;
        }
        // Only a product of several multi-valued components is capped: with one, every
        // combination is kept (the engine relies on it to answer pairs of clauses with a
        // composite, see `PAIRED_COMPOSITES`).
        let cap = if per_component.iter().filter(|v| v.len() > 1).count() > 1 {
            MAX_TUPLES
        } else {
            usize::MAX
        };
        let mut tuples: Vec<Vec<IndexValue>> = vec![Vec::new()];
        for vals in per_component {
            let mut next = Vec::new();
            'outer: for t in &tuples {
                for v in &vals {
                    if next.len() >= cap {
                        break 'outer;
                    }
                    let mut t = t.clone();
                    t.push(v.clone());
                    next.push(t);
                }
            }
            tuples = next;
        }
        out.extend(tuples.into_iter().map(IndexValue::Composite));
    }
    Ok(())
}

/// Converts one FHIRPath result item into values of parameter type `kind`.
pub(crate) fn convert(kind: ParamType, item: &Item<'_>, zone: &Zone, out: &mut Vec<IndexValue>) {
    match item {
        Item::Node(n) => convert_node(kind, n, zone, out),
        Item::String(s) => convert_text(kind, s, zone, out),
        Item::Boolean(b) => {
            if kind == ParamType::Token {
                out.push(code_token(if *b { "true" } else { "false" }));
            }
        }
        Item::Integer(i) => match kind {
            ParamType::Number => {
                out.push(IndexValue::Number(NumberValue::exact(Decimal::from(*i))))
            }
            ParamType::Token => out.push(code_token(&i.to_string())),
            _ => {}
        },
        Item::Decimal(d) => {
            if kind == ParamType::Number {
                out.push(IndexValue::Number(NumberValue::decimal(*d)));
            }
        }
        Item::Date(d) => {
            if kind == ParamType::Date
                && let Some(r) = DateRange::of(&d.to_datetime(), zone)
            {
                out.push(IndexValue::Date(r));
            }
        }
        Item::DateTime(d) => {
            if kind == ParamType::Date
                && let Some(r) = DateRange::of(d, zone)
            {
                out.push(IndexValue::Date(r));
            }
        }
        Item::Quantity(q) => {
            if kind == ParamType::Quantity {
                let code = flint_fhirpath::ucum::ucum_code(&q.unit);
                out.push(IndexValue::Quantity(QuantityValue::new(
                    NumberValue::decimal(q.value),
                    Some(crate::value::UCUM),
                    Some(code),
                    Some(&q.unit),
                )));
            }
        }
        Item::Time(_) | Item::Type(_) => {}
    }
}

fn code_token(code: &str) -> IndexValue {
    IndexValue::Token(TokenValue {
        code: Some(code.to_string()),
        ..TokenValue::default()
    })
}

/// A computed string (or a primitive's text) as a value of `kind`.
fn convert_text(kind: ParamType, s: &str, zone: &Zone, out: &mut Vec<IndexValue>) {
    match kind {
        ParamType::String => out.push(IndexValue::String(StringValue::new(s))),
        ParamType::Token => out.push(code_token(s)),
        ParamType::Uri => out.push(IndexValue::Uri(s.to_string())),
        ParamType::Reference => {
            if let Some(r) = ReferenceValue::parse_literal(s) {
                out.push(IndexValue::Reference(r));
            }
        }
        ParamType::Date => {
            if let Some(r) = DateRange::parse(s, zone) {
                out.push(IndexValue::Date(r));
            }
        }
        ParamType::Number => {
            if let Some(d) = parse_decimal(s) {
                out.push(IndexValue::Number(NumberValue::decimal(d)));
            }
        }
        _ => {}
    }
}

fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn decimal_at(v: &Value, k: &str) -> Option<Decimal> {
    match v.get(k)? {
        Value::Number(n) => parse_decimal(n.as_str()),
        Value::String(s) => parse_decimal(s),
        _ => None,
    }
}

fn is_a(ty: &str, ancestor: &str) -> bool {
    ty == ancestor || definitions().is_subtype(ty, ancestor)
}

fn convert_node(kind: ParamType, n: &Node<'_>, zone: &Zone, out: &mut Vec<IndexValue>) {
    if let Some(v) = n.value() {
        convert_json(kind, n.type_name(), v, zone, out);
    }
}

/// The `value[x]` of an Extension with its type.
fn extension_value(v: &Value) -> Option<(&'static str, &Value)> {
    let def = definitions().type_def("Extension")?;
    v.as_object()?.iter().find_map(|(k, x)| {
        if !k.starts_with("value") {
            return None;
        }
        let (_, ty) = def.resolve_property(k)?;
        Some((ty, x))
    })
}

/// Converts a JSON element of FHIR type `ty` into values of parameter type `kind`.
fn convert_json(kind: ParamType, ty: &str, v: &Value, zone: &Zone, out: &mut Vec<IndexValue>) {
    if ty == "Extension" {
        if let Some((ty, x)) = extension_value(v) {
            convert_json(kind, ty, x, zone, out);
        }
        return;
    }
    // Primitives: take the JSON scalar.
    match v {
        Value::String(s) => {
            match (kind, ty) {
                // A canonical of a contained resource (`#x`) is not indexed, like a
                // reference to one.
                (ParamType::Reference, "canonical" | "uri" | "url") if s.starts_with('#') => {}
                (ParamType::Reference, "canonical" | "uri" | "url") => {
                    let (url, version) = match s.split_once('|') {
                        Some((u, ver)) => (u, Some(ver.to_string())),
                        None => (s.as_str(), None),
                    };
                    out.push(IndexValue::Reference(ReferenceValue::Canonical {
                        url: url.to_string(),
                        version,
                    }));
                }
                (ParamType::Number | ParamType::Quantity, _) => {
                    if let Some(d) = parse_decimal(s) {
                        push_number(kind, ty, d, out);
                    }
                }
                _ => convert_text(kind, s, zone, out),
            }
            return;
        }
        Value::Number(num) => {
            if let Some(d) = parse_decimal(num.as_str()) {
                match kind {
                    ParamType::Number | ParamType::Quantity => push_number(kind, ty, d, out),
                    ParamType::Token => out.push(code_token(num.as_str())),
                    _ => {}
                }
            }
            return;
        }
        Value::Bool(b) => {
            if kind == ParamType::Token {
                out.push(code_token(if *b { "true" } else { "false" }));
            }
            return;
        }
        Value::Object(_) => {}
        _ => return,
    }
    match kind {
        ParamType::String => string_values(ty, v, out),
        ParamType::Token => token_values(ty, v, out),
        ParamType::Reference => reference_values(ty, v, out),
        ParamType::Date => {
            let r = match ty {
                "Period" => date::period_of(v, zone),
                "Timing" => date::timing(v, zone),
                _ => None,
            };
            if let Some(r) = r {
                out.push(IndexValue::Date(r));
            }
        }
        ParamType::Number => {
            if ty == "Range" {
                let low = v.get("low").and_then(|q| decimal_at(q, "value"));
                let high = v.get("high").and_then(|q| decimal_at(q, "value"));
                if low.is_some() || high.is_some() {
                    out.push(IndexValue::Number(NumberValue::range(low, high)));
                }
            } else if is_a(ty, "Quantity")
                && let Some(d) = decimal_at(v, "value")
            {
                out.push(IndexValue::Number(NumberValue::decimal(d)));
            }
        }
        ParamType::Quantity => quantity_values(ty, v, out),
        ParamType::Uri => {}
        ParamType::Special => {
            if let (Some(lat), Some(long)) = (decimal_at(v, "latitude"), decimal_at(v, "longitude"))
            {
                let f = |d: Decimal| d.to_string().parse::<f64>().ok();
                if let (Some(latitude), Some(longitude)) = (f(lat), f(long))
                    && (-90.0..=90.0).contains(&latitude)
                    && (-180.0..=180.0).contains(&longitude)
                {
                    out.push(IndexValue::Near(GeoPoint {
                        latitude,
                        longitude,
                    }));
                }
            }
        }
        ParamType::Composite => {}
    }
}

fn push_number(kind: ParamType, ty: &str, d: Decimal, out: &mut Vec<IndexValue>) {
    let n = if ty == "decimal" || ty.is_empty() {
        NumberValue::decimal(d)
    } else {
        NumberValue::exact(d)
    };
    match kind {
        ParamType::Number => out.push(IndexValue::Number(n)),
        ParamType::Quantity => out.push(IndexValue::Quantity(QuantityValue::new(
            n, None, None, None,
        ))),
        _ => {}
    }
}

fn string_values(ty: &str, v: &Value, out: &mut Vec<IndexValue>) {
    let fields: &[&str] = match ty {
        "HumanName" => &["family", "given", "prefix", "suffix", "text"],
        "Address" => &[
            "line",
            "city",
            "district",
            "state",
            "postalCode",
            "country",
            "text",
        ],
        _ => return,
    };
    for f in fields {
        match v.get(*f) {
            Some(Value::String(s)) => out.push(IndexValue::String(StringValue::new(s))),
            Some(Value::Array(a)) => out.extend(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| IndexValue::String(StringValue::new(s))),
            ),
            _ => {}
        }
    }
}

fn coding_token(c: &Value) -> Option<TokenValue> {
    let system = str_at(c, "system");
    let code = str_at(c, "code");
    if system.is_none() && code.is_none() {
        return None;
    }
    Some(TokenValue {
        system: system.map(str::to_string),
        code: code.map(str::to_string),
        text: str_at(c, "display").map(normalize),
        types: Vec::new(),
    })
}

fn token_values(ty: &str, v: &Value, out: &mut Vec<IndexValue>) {
    match ty {
        "Coding" => {
            if let Some(t) = coding_token(v) {
                out.push(IndexValue::Token(t));
            }
        }
        "CodeableConcept" => {
            if let Some(cs) = v.get("coding").and_then(Value::as_array) {
                out.extend(cs.iter().filter_map(coding_token).map(IndexValue::Token));
            }
            if let Some(t) = str_at(v, "text") {
                out.push(IndexValue::Token(TokenValue {
                    text: Some(normalize(t)),
                    ..TokenValue::default()
                }));
            }
        }
        "Identifier" => {
            let system = str_at(v, "system");
            let value = str_at(v, "value");
            let ity = v.get("type");
            let types = ity
                .and_then(|t| t.get("coding"))
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            (
                                str_at(c, "system").map(str::to_string),
                                str_at(c, "code").map(str::to_string),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if system.is_some() || value.is_some() {
                out.push(IndexValue::Token(TokenValue {
                    system: system.map(str::to_string),
                    code: value.map(str::to_string),
                    text: ity.and_then(|t| str_at(t, "text")).map(normalize),
                    types,
                }));
            }
        }
        "ContactPoint" => {
            if let Some(value) = str_at(v, "value") {
                out.push(IndexValue::Token(TokenValue {
                    system: str_at(v, "system").map(str::to_string),
                    code: Some(value.to_string()),
                    ..TokenValue::default()
                }));
            }
        }
        "Reference" => {
            if let Some(id) = v.get("identifier") {
                token_values("Identifier", id, out);
            }
        }
        _ => {}
    }
}

fn reference_values(ty: &str, v: &Value, out: &mut Vec<IndexValue>) {
    if ty != "Reference" {
        return;
    }
    if let Some(r) = str_at(v, "reference").and_then(ReferenceValue::parse_literal) {
        out.push(IndexValue::Reference(r));
    }
    if let Some(id) = v.get("identifier") {
        let system = str_at(id, "system");
        let value = str_at(id, "value");
        if system.is_some() || value.is_some() {
            out.push(IndexValue::Reference(ReferenceValue::Identifier {
                system: system.map(str::to_string),
                value: value.map(str::to_string),
            }));
        }
    }
}

fn sys_code_unit(v: &Value) -> (Option<&str>, Option<&str>, Option<&str>) {
    (str_at(v, "system"), str_at(v, "code"), str_at(v, "unit"))
}

fn quantity_values(ty: &str, v: &Value, out: &mut Vec<IndexValue>) {
    if ty == "Range" {
        let low = v.get("low");
        let high = v.get("high");
        let lv = low.and_then(|x| decimal_at(x, "value"));
        let hv = high.and_then(|x| decimal_at(x, "value"));
        if lv.is_none() && hv.is_none() {
            return;
        }
        let (system, code, unit) = match (low, high) {
            (Some(l), _) if lv.is_some() => sys_code_unit(l),
            (_, Some(h)) => sys_code_unit(h),
            _ => (None, None, None),
        };
        out.push(IndexValue::Quantity(QuantityValue::new(
            NumberValue::range(lv, hv),
            system,
            code,
            unit,
        )));
        return;
    }
    if ty == "Money" {
        if let Some(d) = decimal_at(v, "value") {
            let cur = str_at(v, "currency");
            out.push(IndexValue::Quantity(QuantityValue::new(
                NumberValue::decimal(d),
                cur.map(|_| "urn:iso:std:iso:4217"),
                cur,
                cur,
            )));
        }
        return;
    }
    if !is_a(ty, "Quantity") {
        return;
    }
    let Some(d) = decimal_at(v, "value") else {
        return;
    };
    let number = match str_at(v, "comparator") {
        Some("<") | Some("<=") => NumberValue::range(None, Some(d)),
        Some(">") | Some(">=") => NumberValue::range(Some(d), None),
        _ => NumberValue::decimal(d),
    };
    let (system, code, unit) = sys_code_unit(v);
    out.push(IndexValue::Quantity(QuantityValue::new(
        number, system, code, unit,
    )));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn reg() -> Registry {
        Registry::r4()
    }

    fn vals(r: &Registry, res: &Value, code: &str) -> Vec<IndexValue> {
        r.extract(res)
            .unwrap()
            .into_iter()
            .filter(|(p, _)| p.code == code)
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn patient_values() {
        let r = reg();
        let p = json!({
            "resourceType": "Patient", "id": "p1",
            "meta": {"tag": [{"system": "http://t", "code": "a"}], "profile": ["http://p|1.0"]},
            "identifier": [{"system": "urn:oid:1.2", "value": "123",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical record"}}],
            "active": true,
            "name": [{"family": "Müller", "given": ["Hans", "Peter"], "prefix": ["Dr."]}],
            "telecom": [{"system": "phone", "value": "555-1234"}, {"system": "email", "value": "a@b.c"}],
            "gender": "male",
            "birthDate": "1970-02-03",
            "address": [{"line": ["Hauptstr. 1"], "city": "Köln", "postalCode": "50667"}],
            "generalPractitioner": [{"reference": "Practitioner/pr1"}, {"identifier": {"system": "s", "value": "v"}}],
            "managingOrganization": {"reference": "http://other.org/fhir/Organization/o1"}
        });
        let names: Vec<String> = vals(&r, &p, "name")
            .into_iter()
            .map(|v| match v {
                IndexValue::String(s) => s.normalized,
                _ => panic!(),
            })
            .collect();
        assert_eq!(names, vec!["muller", "hans", "peter", "dr"]);
        assert_eq!(
            vals(&r, &p, "address-city"),
            vec![IndexValue::String(StringValue::new("Köln"))]
        );
        assert_eq!(vals(&r, &p, "address").len(), 3);
        let ids = vals(&r, &p, "identifier");
        let IndexValue::Token(t) = &ids[0] else {
            panic!()
        };
        assert_eq!(t.system.as_deref(), Some("urn:oid:1.2"));
        assert_eq!(t.code.as_deref(), Some("123"));
        assert_eq!(t.text.as_deref(), Some("medical record"));
        assert_eq!(t.types[0].1.as_deref(), Some("MR"));
        assert_eq!(vals(&r, &p, "active"), vec![code_token("true")]);
        assert_eq!(vals(&r, &p, "gender"), vec![code_token("male")]);
        assert_eq!(vals(&r, &p, "_id"), vec![code_token("p1")]);
        assert_eq!(vals(&r, &p, "phone").len(), 1);
        assert_eq!(vals(&r, &p, "telecom").len(), 2);
        let IndexValue::Date(d) = vals(&r, &p, "birthdate")[0] else {
            panic!()
        };
        assert!(d.floating);
        assert_eq!(
            d,
            DateRange::parse("1970-02-03", &crate::Zone::utc()).unwrap()
        );
        let gp = vals(&r, &p, "general-practitioner");
        assert_eq!(
            gp,
            vec![
                IndexValue::Reference(ReferenceValue::Local {
                    type_name: "Practitioner".into(),
                    id: "pr1".into(),
                    version: None
                }),
                IndexValue::Reference(ReferenceValue::Identifier {
                    system: Some("s".into()),
                    value: Some("v".into())
                })
            ]
        );
        assert_eq!(
            vals(&r, &p, "organization"),
            vec![IndexValue::Reference(ReferenceValue::Absolute(
                "http://other.org/fhir/Organization/o1".into()
            ))]
        );
        assert_eq!(vals(&r, &p, "_tag").len(), 1);
        assert_eq!(
            vals(&r, &p, "_profile"),
            vec![IndexValue::Uri("http://p|1.0".into())]
        );
    }

    #[test]
    fn observation_values() {
        let r = reg();
        let o = json!({
            "resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}], "text": "Weight"},
            "subject": {"reference": "Patient/p1/_history/3"},
            "effectivePeriod": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"},
            "valueQuantity": {"value": 72.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
            "component": [
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
               "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
               "valueQuantity": {"value": 80, "comparator": "<", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
            ]
        });
        let code = vals(&r, &o, "code");
        assert_eq!(code.len(), 2);
        let IndexValue::Token(t) = &code[0] else {
            panic!()
        };
        assert_eq!(t.text.as_deref(), Some("body weight"));
        let IndexValue::Quantity(q) = &vals(&r, &o, "value-quantity")[0] else {
            panic!()
        };
        assert_eq!(q.number.value, Some(Decimal::from_str("72.5").unwrap()));
        assert_eq!(q.number.low, Some(Decimal::from_str("72.45").unwrap()));
        let (cn, cu) = q.canonical.clone().unwrap();
        assert_eq!(cu, "g");
        assert_eq!(cn.value.unwrap().normalize(), Decimal::from(72500));
        let IndexValue::Date(d) = vals(&r, &o, "date")[0] else {
            panic!()
        };
        assert_eq!(
            d.end,
            DateRange::parse("2020-01-01T11:00:00Z", &crate::Zone::utc())
                .unwrap()
                .end
        );
        assert_eq!(
            vals(&r, &o, "subject"),
            vec![IndexValue::Reference(ReferenceValue::Local {
                type_name: "Patient".into(),
                id: "p1".into(),
                version: Some("3".into())
            })]
        );
        let cvq = vals(&r, &o, "component-code-value-quantity");
        assert_eq!(cvq.len(), 2);
        let IndexValue::Composite(parts) = &cvq[1] else {
            panic!()
        };
        let IndexValue::Quantity(q) = &parts[1] else {
            panic!()
        };
        assert_eq!(q.number.value, None);
        assert_eq!(q.number.high, Some(Decimal::from(80)));
        // The combined code-value-quantity covers the top-level code and value.
        assert_eq!(vals(&r, &o, "combo-code-value-quantity").len(), 2 + 2);
    }

    #[test]
    fn other_types() {
        let r = reg();
        let loc = json!({"resourceType": "Location", "position": {"latitude": 52.52, "longitude": 13.405}});
        assert_eq!(
            vals(&r, &loc, "near"),
            vec![IndexValue::Near(GeoPoint {
                latitude: 52.52,
                longitude: 13.405
            })]
        );
        let ra = json!({"resourceType": "RiskAssessment", "prediction": [
            {"probabilityDecimal": 0.25}, {"probabilityRange": {"low": {"value": 1}, "high": {"value": 5}}}]});
        let probs = vals(&r, &ra, "probability");
        assert_eq!(probs.len(), 2);
        assert_eq!(
            probs[1],
            IndexValue::Number(NumberValue::range(
                Some(Decimal::ONE),
                Some(Decimal::from(5))
            ))
        );
        let q = json!({"resourceType": "QuestionnaireResponse", "questionnaire": "http://q.org/Questionnaire/q1|2.0"});
        assert_eq!(
            vals(&r, &q, "questionnaire"),
            vec![IndexValue::Reference(ReferenceValue::Canonical {
                url: "http://q.org/Questionnaire/q1".into(),
                version: Some("2.0".into())
            })]
        );
        let cl = json!({"resourceType": "Claim", "total": {"value": 10.5, "currency": "EUR"}});
        let _ = vals(&r, &cl, "total");
        // medications-date indexes the Timing's events one by one.
        let mr = json!({"resourceType": "MedicationRequest", "dosageInstruction": [{"timing": {"event": ["2020-01-01", "2020-03-01"]}}]});
        assert_eq!(vals(&r, &mr, "date").len(), 2);
        // Decimal text keeps its precision (JSON parsed from text, not the json! macro).
        let o: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","valueQuantity":{"value":72.50}}"#,
        )
        .unwrap();
        let IndexValue::Quantity(q) = &vals(&r, &o, "value-quantity")[0] else {
            panic!()
        };
        assert_eq!(q.number.low, Some(Decimal::from_str("72.495").unwrap()));
        // A Timing value (Timing-typed element) spans its outer limits.
        let cp = json!({"resourceType": "CarePlan", "activity": [{"detail": {"scheduledTiming": {"event": ["2020-01-01", "2020-03-01"]}}}]});
        let IndexValue::Date(d) = vals(&r, &cp, "activity-date")[0] else {
            panic!()
        };
        assert_eq!(
            d.start,
            DateRange::parse("2020-01-01", &crate::Zone::utc())
                .unwrap()
                .start
        );
        assert_eq!(
            d.end,
            DateRange::parse("2020-03-01", &crate::Zone::utc())
                .unwrap()
                .end
        );
    }

    #[test]
    fn extension_values() {
        let r = reg();
        let o = json!({"resourceType": "Observation", "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/observation-geneticsGene",
            "valueCodeableConcept": {"coding": [{"system": "http://www.genenames.org", "code": "3236"}]}}]});
        let v = vals(&r, &o, "gene-identifier");
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn compartments() {
        let r = reg();
        let o = json!({"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"},
            "performer": [{"reference": "Practitioner/d1"}, {"reference": "Patient/p2"}],
            "encounter": {"reference": "Encounter/e1"}, "device": {"reference": "Device/x"}});
        let v = r.extract(&o).unwrap();
        let c = r.compartments_of("Observation", Some("o1"), &v);
        let s: Vec<String> = c.iter().map(|(a, b)| format!("{a}/{b}")).collect();
        assert_eq!(
            s,
            vec![
                "Device/x",
                "Encounter/e1",
                "Patient/p1",
                "Patient/p2",
                "Practitioner/d1"
            ]
        );
        let p = json!({"resourceType": "Patient", "id": "p1", "link": [{"other": {"reference": "Patient/p9"}}]});
        let v = r.extract(&p).unwrap();
        let c = r.compartments_of("Patient", Some("p1"), &v);
        assert_eq!(
            c,
            vec![
                ("Patient".to_string(), "p1".to_string()),
                ("Patient".to_string(), "p9".to_string())
            ]
        );
    }

    #[test]
    fn errors() {
        let r = reg();
        assert!(matches!(
            r.extract(&json!([1])),
            Err(Error::InvalidResource(_))
        ));
        assert!(matches!(
            r.extract(&json!({"a": 1})),
            Err(Error::InvalidResource(_))
        ));
        assert!(matches!(
            r.extract(&json!({"resourceType": "Nope"})),
            Err(Error::UnknownResourceType(_))
        ));
        // Malformed element values are skipped, not errors.
        let p = json!({"resourceType": "Patient", "birthDate": "not a date", "name": "x", "telecom": [1, {"value": 2}]});
        r.extract(&p).unwrap();
    }
}
