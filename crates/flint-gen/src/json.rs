//! A small streaming JSON writer with helpers for the FHIR datatypes the generator uses.
//!
//! Resources are written straight into strings (no intermediate tree), keys in the order given,
//! numbers with a fixed number of decimals: fast, and byte-stable by construction.

use crate::codes::{Code, Measure, UCUM};
use crate::rng::Id;
use std::fmt::Write;

/// How references to resources of the same patient are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Transaction bundles: `urn:uuid:<id>` (the entries' fullUrls); resources carry no `id`.
    Bundle,
    /// NDJSON: `Type/<id>`; resources carry their `id`.
    Ndjson,
}

/// A reference target.
#[derive(Clone, Copy, Debug)]
pub enum Ref<'a> {
    /// A resource of the same patient record (written according to the [`Style`]).
    Local(&'static str, &'a Id),
    /// A shared resource with a fixed id (Organization, Practitioner): always `Type/id`.
    Shared(&'static str, &'a str),
}

/// Appends `s` as a JSON string literal.
pub fn push_string(buf: &mut String, s: &str) {
    buf.push('"');
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f)
    {
        buf.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => buf.push_str("\\\""),
                '\\' => buf.push_str("\\\\"),
                '\n' => buf.push_str("\\n"),
                '\r' => buf.push_str("\\r"),
                '\t' => buf.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(buf, "\\u{:04x}", c as u32);
                }
                c => buf.push(c),
            }
        }
    }
    buf.push('"');
}

fn push_reference(buf: &mut String, style: Style, r: Ref) {
    buf.push('"');
    match r {
        Ref::Local(ty, id) => {
            if style == Style::Bundle {
                buf.push_str("urn:uuid:");
            } else {
                buf.push_str(ty);
                buf.push('/');
            }
            buf.push_str(id.as_str());
        }
        Ref::Shared(ty, id) => {
            buf.push_str(ty);
            buf.push('/');
            buf.push_str(id);
        }
    }
    buf.push('"');
}

/// Writes one JSON object into `buf` through `f`.
pub fn object(buf: &mut String, style: Style, f: impl FnOnce(&mut Obj)) {
    buf.push('{');
    let mut o = Obj {
        buf: &mut *buf,
        first: true,
        style,
    };
    f(&mut o);
    buf.push('}');
}

/// An open JSON object.
pub struct Obj<'a> {
    buf: &'a mut String,
    first: bool,
    style: Style,
}

/// An open JSON array.
pub struct Arr<'a> {
    buf: &'a mut String,
    first: bool,
    style: Style,
}

impl Obj<'_> {
    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        self.buf.push('"');
        self.buf.push_str(k);
        self.buf.push_str("\":");
    }

    /// The reference style this object is written in.
    pub fn style(&self) -> Style {
        self.style
    }

    /// A string member.
    pub fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_string(self.buf, v);
    }

    /// A decimal member with `places` decimals.
    pub fn dec(&mut self, k: &str, v: f64, places: usize) {
        self.key(k);
        let _ = write!(self.buf, "{:.*}", places, v);
    }

    /// An integer member.
    pub fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(self.buf, "{v}");
    }

    /// A boolean member.
    pub fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
    }

    /// A member holding pre-rendered JSON.
    pub fn raw(&mut self, k: &str, json: &str) {
        self.key(k);
        self.buf.push_str(json);
    }

    /// A nested object.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj)) {
        self.key(k);
        object(self.buf, self.style, f);
    }

    /// A nested array.
    pub fn arr(&mut self, k: &str, f: impl FnOnce(&mut Arr)) {
        self.key(k);
        self.buf.push('[');
        let mut a = Arr {
            buf: &mut *self.buf,
            first: true,
            style: self.style,
        };
        f(&mut a);
        self.buf.push(']');
    }

    /// A `Coding`.
    pub fn coding(&mut self, k: &str, c: &Code) {
        self.obj(k, |o| o.coding_fields(c));
    }

    fn coding_fields(&mut self, c: &Code) {
        self.str("system", c.system);
        self.str("code", c.code);
        if !c.display.is_empty() {
            self.str("display", c.display);
        }
    }

    /// A `CodeableConcept` with one coding and the display as text.
    pub fn concept(&mut self, k: &str, c: &Code) {
        self.obj(k, |o| o.concept_fields(c));
    }

    fn concept_fields(&mut self, c: &Code) {
        self.arr("coding", |a| a.obj(|o| o.coding_fields(c)));
        if !c.display.is_empty() {
            self.str("text", c.display);
        }
    }

    /// An array of one `CodeableConcept` (e.g. `category`).
    pub fn concepts(&mut self, k: &str, c: &Code) {
        self.arr(k, |a| a.concept(c));
    }

    /// A `CodeableConcept` with codings only (no text), e.g. statuses.
    pub fn codings_only(&mut self, k: &str, c: &Code) {
        self.obj(k, |o| o.arr("coding", |a| a.obj(|o| o.coding_fields(c))));
    }

    /// A `Reference`.
    pub fn reference(&mut self, k: &str, r: Ref) {
        self.obj(k, |o| o.reference_fields(r, None));
    }

    /// A `Reference` with a display.
    pub fn reference_display(&mut self, k: &str, r: Ref, display: &str) {
        self.obj(k, |o| o.reference_fields(r, Some(display)));
    }

    fn reference_fields(&mut self, r: Ref, display: Option<&str>) {
        self.key("reference");
        push_reference(self.buf, self.style, r);
        if let Some(d) = display {
            self.str("display", d);
        }
    }

    /// An array of `Reference`s.
    pub fn references(&mut self, k: &str, rs: &[Ref]) {
        self.arr(k, |a| {
            for r in rs {
                a.reference(*r);
            }
        });
    }

    /// A UCUM `Quantity` for a measure.
    pub fn quantity(&mut self, k: &str, v: f64, m: &Measure) {
        self.obj(k, |o| {
            o.dec("value", v, m.places);
            o.str("unit", m.unit);
            o.str("system", UCUM);
            o.str("code", m.unit);
        });
    }

    /// A `Money` in US dollars.
    pub fn money(&mut self, k: &str, v: f64) {
        self.obj(k, |o| {
            o.dec("value", v, 2);
            o.str("currency", "USD");
        });
    }

    /// A `Period`.
    pub fn period(&mut self, k: &str, start: &str, end: &str) {
        self.obj(k, |o| {
            o.str("start", start);
            o.str("end", end);
        });
    }
}

impl Arr<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
    }

    /// An object element.
    pub fn obj(&mut self, f: impl FnOnce(&mut Obj)) {
        self.sep();
        object(self.buf, self.style, f);
    }

    /// A string element.
    pub fn str(&mut self, v: &str) {
        self.sep();
        push_string(self.buf, v);
    }

    /// An integer element.
    pub fn int(&mut self, v: i64) {
        self.sep();
        let _ = write!(self.buf, "{v}");
    }

    /// A `CodeableConcept` element.
    pub fn concept(&mut self, c: &Code) {
        self.obj(|o| o.concept_fields(c));
    }

    /// A `Reference` element.
    pub fn reference(&mut self, r: Ref) {
        self.obj(|o| o.reference_fields(r, None));
    }

    /// A `Reference` element with a display.
    pub fn reference_display(&mut self, r: Ref, display: &str) {
        self.obj(|o| o.reference_fields(r, Some(display)));
    }
}

/// Standard base64 (with padding) of `data`.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let mut s = String::new();
        let id = crate::rng::Rng::new(1, 1).uuid();
        object(&mut s, Style::Ndjson, |o| {
            o.str("a", "x\"y\\z\n");
            o.dec("b", 1.25, 1);
            o.arr("c", |a| {
                a.int(1);
                a.str("q");
            });
            o.reference("r", Ref::Local("Patient", &id));
        });
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "x\"y\\z\n");
        assert_eq!(v["r"]["reference"], format!("Patient/{}", id.as_str()));
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }
}
