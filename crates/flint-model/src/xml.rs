//! FHIR XML: reading into the canonical JSON form and writing from it.
//!
//! Reading is driven by the type definitions: primitives are `value` attributes (converted to
//! JSON booleans and numbers by their type, decimals keeping their text), element ids and
//! `Extension.url` are attributes, `Resource.id` is an element, `contained`/`resource` wrap a
//! nested resource, and the narrative `div` is copied through verbatim as XHTML. The result is
//! then validated like JSON input. DOCTYPE declarations are refused, so no DTD or external
//! entity is ever resolved.

use crate::ModelError;
use crate::defs::{Definitions, TypeDef, definitions};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Number, Value};
use std::str::FromStr;

const FHIR_NS: &str = "http://hl7.org/fhir";
const MAX_DEPTH: usize = 64;

/// Parses, validates and canonicalises a FHIR XML resource.
pub fn parse_resource(bytes: &[u8]) -> Result<Value, ModelError> {
    let mut p = Parser {
        r: Reader::from_reader(bytes),
        input: bytes,
        defs: definitions(),
        pos: 0,
    };
    let v = p.document()?;
    crate::validate::resource(v)
}

struct Parser<'a> {
    r: Reader<&'a [u8]>,
    input: &'a [u8],
    defs: &'static Definitions,
    /// Byte offset where the last event started.
    pos: usize,
}

fn xml_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::new(format!("Invalid XML: {e}"))
}

fn utf8(b: &[u8]) -> Result<&str, ModelError> {
    std::str::from_utf8(b).map_err(|_| ModelError::new("Invalid XML: names must be UTF-8."))
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Result<Event<'a>, ModelError> {
        self.pos = self.r.buffer_position() as usize;
        let e = self.r.read_event().map_err(xml_err)?;
        if let Event::DocType(_) = e {
            return Err(ModelError::new(
                "Invalid XML: DOCTYPE declarations are not allowed (no DTDs or external entities).",
            ));
        }
        Ok(e)
    }

    fn document(&mut self) -> Result<Value, ModelError> {
        loop {
            match self.next()? {
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                Event::Start(e) => {
                    let v = self.resource(&e, false, None, 0)?;
                    self.trailer()?;
                    return Ok(v);
                }
                Event::Empty(e) => {
                    let v = self.resource(&e, true, None, 0)?;
                    self.trailer()?;
                    return Ok(v);
                }
                Event::Eof => return Err(ModelError::new("Invalid XML: the document is empty.")),
                _ => return Err(ModelError::new("Invalid XML: expected a resource element.")),
            }
        }
    }

    fn trailer(&mut self) -> Result<(), ModelError> {
        loop {
            match self.next()? {
                Event::Eof => return Ok(()),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                _ => {
                    return Err(ModelError::new(
                        "Invalid XML: content after the resource element.",
                    ));
                }
            }
        }
    }

    /// A resource element (its start tag already read).
    fn resource(
        &mut self,
        e: &BytesStart,
        empty: bool,
        path: Option<&str>,
        depth: usize,
    ) -> Result<Value, ModelError> {
        let rt = utf8(e.local_name().into_inner())?.to_string();
        for a in e.attributes() {
            let a = a.map_err(xml_err)?;
            if a.key.as_ref() == b"xmlns" && a.unescape_value().map_err(xml_err)? != FHIR_NS {
                return Err(ModelError::new(format!(
                    "Invalid XML: resources must be in the namespace {FHIR_NS}."
                )));
            }
        }
        let base = path.map_or_else(|| rt.clone(), str::to_string);
        let td = self
            .defs
            .type_def(&rt)
            .filter(|_| self.defs.is_resource_type(&rt))
            .ok_or_else(|| {
                ModelError::at(format!("Unknown resource type `{rt}`."), base.clone())
            })?;
        let mut map = Map::new();
        map.insert("resourceType".into(), Value::String(rt.clone()));
        if !empty {
            self.children(td, &mut map, &base, true, depth)?;
        }
        Ok(Value::Object(map))
    }

    /// Reads child elements of an element of type `td` until its end tag.
    fn children(
        &mut self,
        td: &TypeDef,
        map: &mut Map<String, Value>,
        path: &str,
        is_resource: bool,
        depth: usize,
    ) -> Result<(), ModelError> {
        if depth > MAX_DEPTH {
            return Err(ModelError::at("The resource is nested too deeply.", path));
        }
        loop {
            match self.next()? {
                Event::Start(e) => self.child(td, map, &e, false, path, is_resource, depth)?,
                Event::Empty(e) => self.child(td, map, &e, true, path, is_resource, depth)?,
                Event::End(_) => break,
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                Event::Eof => {
                    return Err(ModelError::new("Invalid XML: unexpected end of document."));
                }
                _ => {
                    return Err(ModelError::at(
                        "Unexpected text: FHIR XML carries values in `value` attributes.",
                        path,
                    ));
                }
            }
        }
        finish_arrays(map);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn child(
        &mut self,
        td: &TypeDef,
        map: &mut Map<String, Value>,
        e: &BytesStart,
        empty: bool,
        path: &str,
        is_resource: bool,
        depth: usize,
    ) -> Result<(), ModelError> {
        let name = utf8(e.local_name().into_inner())?.to_string();
        let p = format!("{path}.{name}");
        let Some((elem, ty)) = td.resolve_property(&name) else {
            return Err(ModelError::at(format!("Unknown element `{name}`."), p));
        };
        if name == "id" && !is_resource {
            return Err(ModelError::at("Element ids are attributes in XML.", p));
        }
        let ty = ty.to_string();
        let is_array = elem.is_array();
        if ty == "xhtml" {
            let start = self.pos;
            if !empty {
                self.r.read_to_end(e.name()).map_err(xml_err)?;
            }
            let end = self.r.buffer_position() as usize;
            let raw = self.input.get(start..end).unwrap_or(&[]);
            let s = String::from_utf8(raw.to_vec())
                .map_err(|_| ModelError::at("The narrative is not UTF-8.", p.clone()))?;
            // Copied verbatim (line ends included), so JSON -> XML -> JSON keeps the narrative's
            // exact text.
            push(map, &name, Value::String(s), is_array);
            return Ok(());
        }
        if ty == "Resource" {
            if empty {
                return Err(ModelError::at("Expected a nested resource.", p));
            }
            let inner = loop {
                match self.next()? {
                    Event::Start(inner) => {
                        break self.resource(&inner.into_owned(), false, Some(&p), depth + 1)?;
                    }
                    Event::Empty(inner) => {
                        break self.resource(&inner.into_owned(), true, Some(&p), depth + 1)?;
                    }
                    Event::Comment(_) => {}
                    Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                    _ => return Err(ModelError::at("Expected a nested resource.", p)),
                }
            };
            loop {
                match self.next()? {
                    Event::End(_) => break,
                    Event::Comment(_) => {}
                    Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                    _ => return Err(ModelError::at("Only one resource may be nested here.", p)),
                }
            }
            push(map, &name, inner, is_array);
            return Ok(());
        }
        let mut value = None;
        let mut obj = Map::new();
        for a in e.attributes() {
            let a = a.map_err(xml_err)?;
            let key = a.key.as_ref();
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                continue;
            }
            let v = a
                .unescape_value()
                .map_err(|e| ModelError::at(format!("Invalid XML: {e}"), p.clone()))?
                .into_owned();
            match key {
                b"value" if self.defs.is_primitive(&ty) => value = Some(v),
                b"id" => {
                    obj.insert("id".into(), Value::String(v));
                }
                b"url" if ty == "Extension" => {
                    obj.insert("url".into(), Value::String(v));
                }
                other => {
                    return Err(ModelError::at(
                        format!("Unknown attribute `{}`.", String::from_utf8_lossy(other)),
                        p,
                    ));
                }
            }
        }
        if self.defs.is_primitive(&ty) {
            let element_td = self
                .defs
                .type_def("Element")
                .ok_or_else(|| ModelError::new("definitions lack Element"))?;
            if !empty {
                self.children(element_td, &mut obj, &p, false, depth + 1)?;
            }
            let json_value = match value {
                Some(v) => Some(primitive_value(&ty, v, &p)?),
                None => None,
            };
            let companion = (!obj.is_empty()).then_some(Value::Object(obj));
            if is_array {
                push(map, &name, json_value.unwrap_or(Value::Null), true);
                push(
                    map,
                    &format!("_{name}"),
                    companion.unwrap_or(Value::Null),
                    true,
                );
            } else {
                if let Some(v) = json_value {
                    map.insert(name.clone(), v);
                }
                if let Some(c) = companion {
                    map.insert(format!("_{name}"), c);
                }
            }
            return Ok(());
        }
        let child_td = self
            .defs
            .type_def(&ty)
            .ok_or_else(|| ModelError::at(format!("Unknown type `{ty}`."), p.clone()))?;
        if !empty {
            self.children(child_td, &mut obj, &p, false, depth + 1)?;
        }
        push(map, &name, Value::Object(obj), is_array);
        Ok(())
    }
}

fn push(map: &mut Map<String, Value>, name: &str, v: Value, is_array: bool) {
    if !is_array {
        map.insert(name.to_string(), v);
        return;
    }
    match map.get_mut(name) {
        Some(Value::Array(a)) => a.push(v),
        _ => {
            map.insert(name.to_string(), Value::Array(vec![v]));
        }
    }
}

/// Drops primitive arrays (and `_` companions) that hold only nulls.
fn finish_arrays(map: &mut Map<String, Value>) {
    map.retain(|_, v| match v {
        Value::Array(a) => a.iter().any(|x| !x.is_null()),
        _ => true,
    });
}

fn primitive_value(ty: &str, v: String, path: &str) -> Result<Value, ModelError> {
    let bad = || ModelError::at(format!("Invalid {ty} value `{v}`."), path);
    Ok(match ty {
        "boolean" => match v.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad()),
        },
        "integer" | "positiveInt" | "unsignedInt" => {
            Value::Number(v.parse::<i64>().map_err(|_| bad())?.into())
        }
        "decimal" => Value::Number(Number::from_str(&v).map_err(|_| bad())?),
        _ => Value::String(v),
    })
}

/// Writes a resource as FHIR XML.
pub fn to_vec(v: &Value, pretty: bool) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(1024),
        pretty,
        depth: 0,
    };
    w.out
        .extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.resource(v, true);
    if pretty {
        w.out.push(b'\n');
    }
    w.out
}

struct Writer {
    out: Vec<u8>,
    pretty: bool,
    depth: usize,
}

impl Writer {
    fn indent(&mut self) {
        if self.pretty {
            self.out.push(b'\n');
            for _ in 0..self.depth {
                self.out.extend_from_slice(b"  ");
            }
        }
    }

    fn resource(&mut self, v: &Value, root: bool) {
        let Some(obj) = v.as_object() else { return };
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Resource");
        self.indent();
        self.out.push(b'<');
        self.out.extend_from_slice(rt.as_bytes());
        if root {
            self.out
                .extend_from_slice(b" xmlns=\"http://hl7.org/fhir\"");
        }
        self.out.push(b'>');
        self.depth += 1;
        let defs = definitions();
        if let Some(td) = defs.type_def(rt) {
            self.props(defs, obj, td, true);
        }
        self.depth -= 1;
        self.indent();
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(rt.as_bytes());
        self.out.push(b'>');
    }

    /// Writes the child elements of an object of type `td` (attributes are the caller's).
    fn props(
        &mut self,
        defs: &Definitions,
        obj: &Map<String, Value>,
        td: &TypeDef,
        is_resource: bool,
    ) {
        let is_ext = defs
            .type_def("Extension")
            .is_some_and(|e| std::ptr::eq(e, td));
        for (k, val) in obj {
            if (is_resource && k == "resourceType")
                || (!is_resource && k == "id")
                || (is_ext && k == "url")
            {
                continue;
            }
            let (name, companion, value) = match k.strip_prefix('_') {
                Some(base) if obj.contains_key(base) => continue,
                Some(base) => (base, Some(val), &Value::Null),
                None => (k.as_str(), obj.get(&format!("_{k}")), val),
            };
            let Some((_, ty)) = td.resolve_property(name) else {
                continue;
            };
            match (value, companion) {
                (Value::Array(items), c) => {
                    for (i, item) in items.iter().enumerate() {
                        self.value(defs, name, ty, item, c.and_then(|c| c.get(i)));
                    }
                }
                (Value::Null, Some(Value::Array(cs))) => {
                    for c in cs {
                        self.value(defs, name, ty, &Value::Null, Some(c));
                    }
                }
                (v, c) => self.value(defs, name, ty, v, c),
            }
        }
    }

    fn value(
        &mut self,
        defs: &Definitions,
        name: &str,
        ty: &str,
        v: &Value,
        companion: Option<&Value>,
    ) {
        if ty == "Resource" {
            self.indent();
            self.open(name, &[]);
            self.out.push(b'>');
            self.depth += 1;
            self.resource(v, false);
            self.depth -= 1;
            self.indent();
            self.close(name);
            return;
        }
        if ty == "xhtml" {
            if let Value::String(s) = v {
                self.indent();
                self.out.extend_from_slice(s.as_bytes());
            }
            return;
        }
        if let (Value::Object(o), Some(td)) = (v, defs.type_def(ty))
            && !defs.is_primitive(ty)
        {
            let mut attrs: Vec<(&str, &str)> = Vec::new();
            if let Some(id) = o.get("id").and_then(Value::as_str) {
                attrs.push(("id", id));
            }
            let is_ext = ty == "Extension";
            if is_ext && let Some(url) = o.get("url").and_then(Value::as_str) {
                attrs.push(("url", url));
            }
            self.indent();
            self.open(name, &attrs);
            if o.keys().any(|k| k != "id" && !(is_ext && k == "url")) {
                self.out.push(b'>');
                self.depth += 1;
                self.props(defs, o, td, false);
                self.depth -= 1;
                self.indent();
                self.close(name);
            } else {
                self.out.extend_from_slice(b"/>");
            }
            return;
        }
        let text = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let c = companion.and_then(Value::as_object);
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        if let Some(id) = c.and_then(|c| c.get("id")).and_then(Value::as_str) {
            attrs.push(("id", id));
        }
        if let Some(t) = &text {
            attrs.push(("value", t));
        }
        self.indent();
        self.open(name, &attrs);
        match (
            c.filter(|c| c.keys().any(|k| k != "id")),
            defs.type_def("Element"),
        ) {
            (Some(c), Some(element)) => {
                self.out.push(b'>');
                self.depth += 1;
                self.props(defs, c, element, false);
                self.depth -= 1;
                self.indent();
                self.close(name);
            }
            _ => self.out.extend_from_slice(b"/>"),
        }
    }

    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        for (k, v) in attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape_attr(&mut self.out, v);
            self.out.push(b'"');
        }
    }

    fn close(&mut self, name: &str) {
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }
}

fn escape_attr(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\n' => out.extend_from_slice(b"&#10;"),
            '\r' => out.extend_from_slice(b"&#13;"),
            '\t' => out.extend_from_slice(b"&#9;"),
            c if (c as u32) < 0x20 => out.push(b'?'),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_primitives_arrays_extensions_and_narrative() {
        let xml = br#"<?xml version="1.0"?>
<Patient xmlns="http://hl7.org/fhir">
  <id value="ex"/>
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Hi &amp; <b>bye</b></p></div></text>
  <extension url="http://x"><valueDecimal value="1.50"/></extension>
  <active value="true"/>
  <name><given value="A"/><given id="g2"><extension url="u"><valueString value="e"/></extension></given></name>
  <birthDate value="1970-01-01"/>
  <contained><Organization><id value="o"/><name value="Org"/></Organization></contained>
</Patient>"#;
        let v = parse_resource(xml).unwrap();
        assert_eq!(v["id"], "ex");
        assert_eq!(v["active"], json!(true));
        assert_eq!(v["extension"][0]["url"], "http://x");
        assert_eq!(
            serde_json::to_string(&v["extension"][0]["valueDecimal"]).unwrap(),
            "1.50"
        );
        assert_eq!(v["name"][0]["given"], json!(["A", null]));
        assert_eq!(v["name"][0]["_given"][1]["id"], "g2");
        assert_eq!(
            v["text"]["div"],
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Hi &amp; <b>bye</b></p></div>"
        );
        assert_eq!(v["contained"][0]["name"], "Org");
        let back = parse_resource(&to_vec(&v, true)).unwrap();
        assert_eq!(back, v);
        let back = parse_resource(&to_vec(&v, false)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn rejects_doctype_unknown_elements_and_text() {
        let e = parse_resource(br#"<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>"#).unwrap_err();
        assert!(e.message.contains("DOCTYPE"), "{e}");
        let e =
            parse_resource(br#"<Patient xmlns="http://hl7.org/fhir"><foo value="1"/></Patient>"#)
                .unwrap_err();
        assert_eq!(e.expression.as_deref(), Some("Patient.foo"));
        assert!(parse_resource(br#"<Patient xmlns="http://hl7.org/fhir">text</Patient>"#).is_err());
        assert!(
            parse_resource(
                br#"<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>"#
            )
            .is_err()
        );
        assert!(parse_resource(br#"<Foo xmlns="http://hl7.org/fhir"/>"#).is_err());
        assert!(parse_resource(br#"<Patient xmlns="http://other"/>"#).is_err());
        assert!(parse_resource(b"").is_err());
        assert!(parse_resource(b"<Patient").is_err());
    }

    #[test]
    fn writes_control_characters_as_question_marks() {
        let v = json!({"resourceType": "Patient", "name": [{"family": "a\u{1}b"}]});
        let x = String::from_utf8(to_vec(&v, false)).unwrap();
        assert!(x.contains("value=\"a?b\""), "{x}");
    }
}
