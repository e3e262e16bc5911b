//! Patching resources: JSON Patch (RFC 6902) and FHIRPath Patch (FHIR R4).
//!
//! [`json_patch`] applies `add`, `remove`, `replace`, `move`, `copy` and `test` operations
//! addressed by JSON Pointers (RFC 6901, with `~0`/`~1` escapes), atomically: either every
//! operation applies or the document is left untouched and an error returned.
//!
//! [`fhirpath_patch`] applies a FHIRPath Patch `Parameters` resource (JSON form): operations
//! `add`, `insert`, `delete`, `replace` and `move`, with `path` a FHIRPath expression that must
//! select exactly one element (for `insert` and `move`: the list), except `delete`, which is a
//! no-op when nothing matches. Values come from `value[x]` (primitive extensions in
//! `_value[x]` are carried along) or, for complex and anonymous (backbone) types, from nested
//! `part`s named after the elements. Repeating elements become arrays, choice elements get their
//! type suffix (`name` may be `deceased` or `deceasedBoolean`), `_name` companion arrays of
//! primitives are kept aligned, new members are placed in definition order, and elements left
//! empty by a `delete` are removed, since FHIR has no empty elements.
//!
//! Not done here: validation of the patched resource (the REST layer runs
//! `flint_model::validate` on the result), and adding children to a primitive's extension
//! companion (`add` with a primitive as `path` is an error).

use crate::eval::{Evaluator, Scope};
use crate::parser::Expr;
use crate::value::{Item, PathSegment};
use crate::{EvalContext, Expression, compile};
use flint_model::defs::{ElementDef, TypeDef, definitions};
use serde_json::{Map, Value};
use std::fmt;

/// A failed patch: what went wrong and, for FHIRPath Patch, the path expression concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    /// Description of the failure.
    pub message: String,
    /// The FHIRPath (or JSON Pointer) the failing operation addressed, if any.
    pub expression: Option<String>,
}

impl PatchError {
    fn new(message: impl Into<String>) -> Self {
        PatchError {
            message: message.into(),
            expression: None,
        }
    }

    fn at(message: impl Into<String>, expression: &str) -> Self {
        PatchError {
            message: message.into(),
            expression: Some(expression.to_string()),
        }
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expression {
            Some(e) => write!(f, "{} (at {e})", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for PatchError {}

// ---------------------------------------------------------------------------------------------
// JSON Patch
// ---------------------------------------------------------------------------------------------

/// Applies a JSON Patch document (an array of operations) to `doc`.
pub fn json_patch(doc: &Value, ops: &Value) -> Result<Value, PatchError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| PatchError::new("a JSON Patch must be an array of operations"))?;
    let mut out = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_json_op(&mut out, op).map_err(|mut e| {
            e.message = format!("operation {i}: {}", e.message);
            e
        })?;
    }
    Ok(out)
}

fn member<'v>(op: &'v Value, name: &str) -> Result<&'v Value, PatchError> {
    op.get(name)
        .ok_or_else(|| PatchError::new(format!("missing '{name}'")))
}

fn pointer_member(op: &Value, name: &str) -> Result<(String, Vec<String>), PatchError> {
    let p = member(op, name)?
        .as_str()
        .ok_or_else(|| PatchError::new(format!("'{name}' must be a string")))?;
    Ok((p.to_string(), parse_pointer(p)?))
}

/// Splits a JSON Pointer into unescaped reference tokens.
fn parse_pointer(p: &str) -> Result<Vec<String>, PatchError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| PatchError::at("a JSON Pointer must start with '/'", p))?;
    rest.split('/')
        .map(|tok| {
            let mut out = String::with_capacity(tok.len());
            let mut chars = tok.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(PatchError::at("invalid '~' escape in JSON Pointer", p)),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: digits without leading zeros; `-` (one past the end) if allowed.
fn array_index(tok: &str, len: usize, allow_end: bool) -> Option<usize> {
    if tok == "-" {
        return allow_end.then_some(len);
    }
    if tok.is_empty()
        || (tok.len() > 1 && tok.starts_with('0'))
        || !tok.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let i: usize = tok.parse().ok()?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    (i <= max && (allow_end || len > 0)).then_some(i)
}

fn pointer_get<'v>(doc: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(array_index(t, a.len(), false)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn pointer_get_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Option<&'v mut Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => {
                let i = array_index(t, a.len(), false)?;
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn json_add(doc: &mut Value, tokens: &[String], value: Value, p: &str) -> Result<(), PatchError> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    let target = pointer_get_mut(doc, parent)
        .ok_or_else(|| PatchError::at("the parent of the target location does not exist", p))?;
    match target {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true)
                .ok_or_else(|| PatchError::at("invalid array index", p))?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(PatchError::at(
            "the target's parent is not an object or array",
            p,
        )),
    }
}

fn json_remove(doc: &mut Value, tokens: &[String], p: &str) -> Result<Value, PatchError> {
    let Some((last, parent)) = tokens.split_last() else {
        return Err(PatchError::at("cannot remove the whole document", p));
    };
    let missing = || PatchError::at("the target location does not exist", p);
    match pointer_get_mut(doc, parent).ok_or_else(missing)? {
        Value::Object(m) => m.shift_remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false).ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// JSON value equality with numbers compared by value.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (
                crate::value::decimal_from_text(x.as_str()),
                crate::value::decimal_from_text(y.as_str()),
            ) {
                (Some(p), Some(q)) => p == q,
                _ => x.as_str() == y.as_str(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn apply_json_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let kind = member(op, "op")?
        .as_str()
        .ok_or_else(|| PatchError::new("'op' must be a string"))?;
    let (p, path) = pointer_member(op, "path")?;
    match kind {
        "add" => json_add(doc, &path, member(op, "value")?.clone(), &p),
        "remove" => json_remove(doc, &path, &p).map(drop),
        "replace" => {
            let value = member(op, "value")?.clone();
            let target = pointer_get_mut(doc, &path)
                .ok_or_else(|| PatchError::at("the target location does not exist", &p))?;
            *target = value;
            Ok(())
        }
        "move" | "copy" => {
            let (f, from) = pointer_member(op, "from")?;
            if kind == "move" {
                if path.len() > from.len() && path.starts_with(&from) {
                    return Err(PatchError::at(
                        "cannot move a value into one of its children",
                        &p,
                    ));
                }
                let v = json_remove(doc, &from, &f)?;
                json_add(doc, &path, v, &p)
            } else {
                let v = pointer_get(doc, &from)
                    .cloned()
                    .ok_or_else(|| PatchError::at("the 'from' location does not exist", &f))?;
                json_add(doc, &path, v, &p)
            }
        }
        "test" => {
            let expected = member(op, "value")?;
            let actual = pointer_get(doc, &path)
                .ok_or_else(|| PatchError::at("the target location does not exist", &p))?;
            if json_equal(actual, expected) {
                Ok(())
            } else {
                Err(PatchError::at("test failed: the value differs", &p))
            }
        }
        other => Err(PatchError::new(format!("unknown operation '{other}'"))),
    }
}

// ---------------------------------------------------------------------------------------------
// FHIRPath Patch
// ---------------------------------------------------------------------------------------------

/// Applies a FHIRPath Patch (`Parameters` resource, JSON form) to `resource`.
pub fn fhirpath_patch(resource: &Value, parameters: &Value) -> Result<Value, PatchError> {
    if parameters.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(PatchError::new(
            "a FHIRPath Patch must be a Parameters resource",
        ));
    }
    let mut doc = resource.clone();
    let ops = match parameters.get("parameter") {
        None => return Ok(doc),
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(PatchError::new("Parameters.parameter must be an array")),
    };
    for op in ops {
        if op.get("name").and_then(Value::as_str) != Some("operation") {
            return Err(PatchError::new(
                "every parameter of a FHIRPath Patch must be named 'operation'",
            ));
        }
        apply_fhir_op(&mut doc, &Operation::read(op)?)?;
    }
    Ok(doc)
}

struct Operation<'p> {
    kind: &'p str,
    path: &'p str,
    name: Option<&'p str>,
    value: Option<&'p Value>,
    index: Option<i64>,
    source: Option<i64>,
    destination: Option<i64>,
}

fn parts(v: &Value) -> &[Value] {
    v.get("part")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn part_named<'p>(op: &'p Value, name: &str) -> Option<&'p Value> {
    parts(op)
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
}

/// The `value[x]` member of a part: (JSON name, value).
fn value_member(part: &Value) -> Option<(&str, &Value)> {
    part.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("value") && k.len() > 5)
        .map(|(k, v)| (k.as_str(), v))
}

impl<'p> Operation<'p> {
    fn read(op: &'p Value) -> Result<Operation<'p>, PatchError> {
        let string = |n: &str| -> Option<&'p str> {
            part_named(op, n)
                .and_then(value_member)
                .and_then(|(_, v)| v.as_str())
        };
        let int = |n: &str| -> Result<Option<i64>, PatchError> {
            match part_named(op, n).and_then(value_member) {
                None => Ok(None),
                Some((_, v)) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .map(Some)
                    .ok_or_else(|| PatchError::new(format!("'{n}' must be an integer"))),
            }
        };
        let kind = string("type").ok_or_else(|| PatchError::new("operation without a 'type'"))?;
        let path = string("path").ok_or_else(|| PatchError::new("operation without a 'path'"))?;
        Ok(Operation {
            kind,
            path,
            name: string("name"),
            value: part_named(op, "value"),
            index: int("index")?,
            source: int("source")?,
            destination: int("destination")?,
        })
    }

    fn err(&self, msg: impl Into<String>) -> PatchError {
        PatchError::at(msg, self.path)
    }
}

/// A selected element: its location and type.
struct Selected {
    loc: Vec<PathSegment>,
    def: Option<&'static TypeDef>,
    primitive: bool,
}

fn compile_path(op: &Operation<'_>) -> Result<Expression, PatchError> {
    compile(op.path).map_err(|e| op.err(format!("invalid path: {e}")))
}

fn eval_expr<'a>(doc: &'a Value, e: &Expr) -> Result<Vec<Item<'a>>, crate::Error> {
    let ctx = EvalContext::new(doc);
    let ev = Evaluator::new(&ctx);
    let scope = Scope {
        this: &ctx.focus,
        index: None,
        total: None,
    };
    ev.eval(e, &scope)
}

fn select(doc: &Value, e: &Expr, op: &Operation<'_>) -> Result<Vec<Selected>, PatchError> {
    let items = eval_expr(doc, e).map_err(|e| op.err(format!("cannot evaluate path: {e}")))?;
    items
        .iter()
        .map(|i| match i {
            Item::Node(n) => Ok(Selected {
                loc: n
                    .location(doc)
                    .ok_or_else(|| op.err("the path selects something outside the resource"))?,
                def: n.type_def(),
                primitive: n.is_primitive(),
            }),
            _ => Err(op.err("the path does not select an element of the resource")),
        })
        .collect()
}

fn select_one(doc: &Value, op: &Operation<'_>, verb: &str) -> Result<Selected, PatchError> {
    let expr = compile_path(op)?;
    let mut sel = select(doc, &expr.root, op)?;
    match sel.len() {
        1 => Ok(sel.remove(0)),
        0 => Err(op.err(format!("No content found at {} when {verb}", op.path))),
        n => Err(op.err(format!(
            "the path selects {n} elements when {verb}; it must select exactly one"
        ))),
    }
}

/// A list addressed by a path: the location of the object holding it and the member name.
struct ListRef {
    owner: Vec<PathSegment>,
    key: String,
}

/// Splits an element location into (owner object location, member name, array index).
fn split_loc(loc: &[PathSegment]) -> Option<(&[PathSegment], &str, Option<usize>)> {
    match loc {
        [owner @ .., PathSegment::Key(k), PathSegment::Index(i)] => Some((owner, k, Some(*i))),
        [owner @ .., PathSegment::Key(k)] => Some((owner, k, None)),
        _ => None,
    }
}

fn locate_list(doc: &Value, op: &Operation<'_>) -> Result<ListRef, PatchError> {
    let expr = compile_path(op)?;
    let sel = select(doc, &expr.root, op)?;
    if let Some(first) = sel.first() {
        let list_of = |s: &Selected| -> Option<(Vec<PathSegment>, String)> {
            match split_loc(&s.loc)? {
                (owner, key, Some(_)) => Some((owner.to_vec(), key.to_string())),
                _ => None,
            }
        };
        let (owner, key) =
            list_of(first).ok_or_else(|| op.err("the path does not select a list"))?;
        if sel
            .iter()
            .any(|s| list_of(s).is_none_or(|(o, k)| o != owner || k != key))
        {
            return Err(op.err("the path selects elements of more than one list"));
        }
        return Ok(ListRef { owner, key });
    }
    // An empty list: select its owner with the path minus its last step.
    let Expr::Member(Some(base), name) = &expr.root else {
        return Err(op.err(format!("No content found at {}", op.path)));
    };
    let owners = select(doc, base, op)?;
    match owners.as_slice() {
        [owner] if !owner.primitive => Ok(ListRef {
            owner: owner.loc.clone(),
            key: name.name.clone(),
        }),
        _ => Err(op.err(format!("No content found at {}", op.path))),
    }
}

/// The type of the element at `loc` (following `resourceType` for contained resources).
fn type_at(doc: &Value, loc: &[PathSegment]) -> Option<&'static TypeDef> {
    let defs = definitions();
    let resource_def = |v: &Value| {
        defs.type_def(v.get("resourceType")?.as_str()?)
            .filter(|_| true)
    };
    let mut cur = doc;
    let mut def = resource_def(doc)?;
    let mut pending_resource = false;
    for seg in loc {
        match seg {
            PathSegment::Index(i) => cur = cur.get(*i)?,
            PathSegment::Key(k) => {
                cur = cur.get(k)?;
                let (_, ty) = def.resolve_property(k)?;
                if ty == "Resource" {
                    pending_resource = true;
                } else {
                    def = defs.type_def(ty)?;
                }
            }
        }
        if pending_resource && cur.is_object() {
            def = resource_def(cur)?;
            pending_resource = false;
        }
    }
    Some(def)
}

fn get_mut_at<'v>(doc: &'v mut Value, loc: &[PathSegment]) -> Option<&'v mut Value> {
    let mut cur = doc;
    for seg in loc {
        cur = match seg {
            PathSegment::Key(k) => cur.get_mut(k.as_str())?,
            PathSegment::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

fn get_mut_obj<'v>(
    doc: &'v mut Value,
    loc: &[PathSegment],
    op: &Operation<'_>,
) -> Result<&'v mut Map<String, Value>, PatchError> {
    get_mut_at(doc, loc)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| op.err("the selected element is not a complex element"))
}

/// A value to write: JSON, the `_` companion of a primitive, and the `value[x]` type suffix.
struct NewValue {
    json: Value,
    companion: Option<Value>,
    suffix: Option<String>,
}

/// The element `name` of `def` and the type definition of its value.
fn resolve_child(
    def: Option<&'static TypeDef>,
    name: &str,
    op: &Operation<'_>,
) -> Result<(Option<&'static ElementDef>, Option<&'static TypeDef>), PatchError> {
    let Some(t) = def else {
        return Ok((None, None));
    };
    let defs = definitions();
    if let Some(el) = t.element(name) {
        let child = if el.choice {
            None
        } else {
            el.types.first().and_then(|ty| defs.type_def(ty))
        };
        return Ok((Some(el), child));
    }
    if let Some((el, ty)) = t.resolve_property(name) {
        return Ok((Some(el), defs.type_def(ty)));
    }
    Err(op.err(format!("'{name}' is not an element of this type")))
}

/// The JSON member name for element `el` given as `name` with value `nv` (choice suffixes).
fn member_name(
    el: Option<&ElementDef>,
    name: &str,
    nv: &NewValue,
    op: &Operation<'_>,
) -> Result<String, PatchError> {
    match el {
        Some(el) if el.choice && el.name == name => {
            let suffix = nv.suffix.as_deref().ok_or_else(|| {
                op.err(format!(
                    "'{name}' is a choice element: the value must be typed"
                ))
            })?;
            if el.choice_type(suffix).is_none() {
                return Err(op.err(format!("'{name}' cannot hold a value of type {suffix}")));
            }
            Ok(format!("{name}{suffix}"))
        }
        _ => Ok(name.to_string()),
    }
}

fn build_value(
    part: &Value,
    def: Option<&'static TypeDef>,
    op: &Operation<'_>,
) -> Result<NewValue, PatchError> {
    if let Some(r) = part.get("resource") {
        return Ok(NewValue {
            json: r.clone(),
            companion: None,
            suffix: None,
        });
    }
    if let Some((k, v)) = value_member(part) {
        return Ok(NewValue {
            json: v.clone(),
            companion: part.get(format!("_{k}").as_str()).cloned(),
            suffix: k.get(5..).map(str::to_string),
        });
    }
    if let Some((k, c)) = part.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.starts_with("_value") && k.len() > 6)
    }) {
        return Ok(NewValue {
            json: Value::Null,
            companion: Some(c.clone()),
            suffix: k.get(6..).map(str::to_string),
        });
    }
    let sub = parts(part);
    if sub.is_empty() {
        return Err(op.err("an operation value has neither value[x] nor parts"));
    }
    let mut obj = Map::new();
    for sp in sub {
        let name = sp
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| op.err("a value part has no name"))?;
        let (el, child) = resolve_child(def, name, op)?;
        let nv = build_value(sp, child, op)?;
        let key = member_name(el, name, &nv, op)?;
        let repeating =
            el.is_some_and(ElementDef::is_array) || obj.contains_key(&key) && el.is_none();
        put_member(&mut obj, def, &key, nv, repeating).map_err(|m| op.err(m))?;
    }
    Ok(NewValue {
        json: Value::Object(obj),
        companion: None,
        suffix: None,
    })
}

/// Definition-order rank of a member (`_x` right after `x`).
fn rank(def: Option<&TypeDef>, key: &str) -> Option<(usize, u8)> {
    if key == "resourceType" {
        return Some((0, 0));
    }
    let (base, sub) = match key.strip_prefix('_') {
        Some(b) => (b, 1),
        None => (key, 0),
    };
    let def = def?;
    let (el, _) = def.resolve_property(base)?;
    let idx = def.elements.iter().position(|e| std::ptr::eq(e, el))?;
    Some((idx + 1, sub))
}

/// Inserts a new member at its definition-order position (or replaces an existing one).
fn insert_ordered(obj: &mut Map<String, Value>, def: Option<&TypeDef>, key: &str, v: Value) {
    if let Some(slot) = obj.get_mut(key) {
        *slot = v;
        return;
    }
    let pos = match rank(def, key) {
        Some(r) => obj
            .keys()
            .position(|k| rank(def, k).is_some_and(|kr| kr > r))
            .unwrap_or(obj.len()),
        None => obj.len(),
    };
    obj.shift_insert(pos, key.to_string(), v);
}

/// Drops a `_x` companion array that holds nothing but nulls.
fn tidy_companion(obj: &mut Map<String, Value>, ckey: &str) {
    let drop_it = match obj.get(ckey) {
        Some(Value::Array(a)) => a.iter().all(Value::is_null),
        Some(Value::Null) => true,
        _ => false,
    };
    if drop_it {
        obj.shift_remove(ckey);
    }
}

/// Adds `nv` as member `key` of `obj`: appended if repeating, else set if absent.
fn put_member(
    obj: &mut Map<String, Value>,
    def: Option<&TypeDef>,
    key: &str,
    nv: NewValue,
    repeating: bool,
) -> Result<(), String> {
    let ckey = format!("_{key}");
    if repeating {
        let len = match obj.get(key) {
            Some(Value::Array(a)) => a.len(),
            Some(_) => return Err(format!("'{key}' is not a list")),
            None => 0,
        };
        insert_into_list(obj, def, key, len, nv)
    } else {
        if obj.get(key).is_some_and(|v| !v.is_null()) || obj.contains_key(&ckey) {
            return Err(format!("'{key}' already has a value"));
        }
        if !nv.json.is_null() {
            insert_ordered(obj, def, key, nv.json);
        }
        if let Some(c) = nv.companion {
            insert_ordered(obj, def, &ckey, c);
        }
        Ok(())
    }
}

/// Inserts `nv` at `index` of the list `key` (created if absent), keeping `_key` aligned.
fn insert_into_list(
    obj: &mut Map<String, Value>,
    def: Option<&TypeDef>,
    key: &str,
    index: usize,
    nv: NewValue,
) -> Result<(), String> {
    let ckey = format!("_{key}");
    let old_len = match obj.get(key) {
        Some(Value::Array(a)) => a.len(),
        Some(_) => return Err(format!("'{key}' is not a list")),
        None => 0,
    };
    if index > old_len {
        return Err(format!(
            "index {index} is out of range for a list of {old_len}"
        ));
    }
    if old_len == 0 {
        insert_ordered(obj, def, key, Value::Array(Vec::new()));
    }
    if let Some(Value::Array(a)) = obj.get_mut(key) {
        a.insert(index, nv.json);
    }
    if nv.companion.is_some() || obj.contains_key(&ckey) {
        if !matches!(obj.get(&ckey), Some(Value::Array(_))) {
            insert_ordered(obj, def, &ckey, Value::Array(Vec::new()));
        }
        if let Some(Value::Array(c)) = obj.get_mut(&ckey) {
            c.resize(old_len.max(c.len()), Value::Null);
            c.insert(index, nv.companion.unwrap_or(Value::Null));
        }
        tidy_companion(obj, &ckey);
    }
    Ok(())
}

/// Removes the element at `loc` and then any element left empty above it.
fn remove_at(doc: &mut Value, loc: &[PathSegment]) {
    let Some((owner, key, index)) = split_loc(loc) else {
        return;
    };
    let ckey = format!("_{key}");
    let Some(obj) = get_mut_at(doc, owner).and_then(Value::as_object_mut) else {
        return;
    };
    match index {
        Some(i) => {
            let mut now_empty = false;
            if let Some(Value::Array(a)) = obj.get_mut(key)
                && i < a.len()
            {
                a.remove(i);
                now_empty = a.is_empty();
            }
            if let Some(Value::Array(c)) = obj.get_mut(&ckey)
                && i < c.len()
            {
                c.remove(i);
            }
            if now_empty {
                obj.shift_remove(key);
            }
            tidy_companion(obj, &ckey);
            if obj
                .get(&ckey)
                .is_some_and(|c| c.as_array().is_some_and(Vec::is_empty))
            {
                obj.shift_remove(&ckey);
            }
        }
        None => {
            obj.shift_remove(key);
            obj.shift_remove(&ckey);
        }
    }
    if obj.is_empty() && !owner.is_empty() {
        let owner = owner.to_vec();
        remove_at(doc, &owner);
    }
}

fn apply_fhir_op(doc: &mut Value, op: &Operation<'_>) -> Result<(), PatchError> {
    match op.kind {
        "add" => {
            let target = select_one(doc, op, "adding")?;
            if target.primitive {
                return Err(op.err("cannot add an element to a primitive"));
            }
            let name = op.name.ok_or_else(|| op.err("'add' needs a 'name'"))?;
            let value = op.value.ok_or_else(|| op.err("'add' needs a 'value'"))?;
            let (el, child) = resolve_child(target.def, name, op)?;
            let nv = build_value(value, child, op)?;
            let key = member_name(el, name, &nv, op)?;
            let repeating = el.is_some_and(ElementDef::is_array);
            let obj = get_mut_obj(doc, &target.loc, op)?;
            put_member(obj, target.def, &key, nv, repeating).map_err(|m| op.err(m))
        }
        "insert" => {
            let list = locate_list(doc, op)?;
            let value = op.value.ok_or_else(|| op.err("'insert' needs a 'value'"))?;
            let index = op
                .index
                .ok_or_else(|| op.err("'insert' needs an 'index'"))?;
            let index = usize::try_from(index).map_err(|_| op.err("'index' must be >= 0"))?;
            let owner_def = type_at(doc, &list.owner);
            let (_, child) = resolve_child(owner_def, &list.key, op)?;
            let nv = build_value(value, child, op)?;
            let obj = get_mut_obj(doc, &list.owner, op)?;
            insert_into_list(obj, owner_def, &list.key, index, nv).map_err(|m| op.err(m))
        }
        "delete" => {
            let expr = compile_path(op)?;
            let sel = select(doc, &expr.root, op)?;
            match sel.as_slice() {
                [] => Ok(()),
                [one] => {
                    if one.loc.is_empty() {
                        return Err(op.err("cannot delete the resource itself"));
                    }
                    let loc = one.loc.clone();
                    remove_at(doc, &loc);
                    Ok(())
                }
                many => Err(op.err(format!(
                    "the path selects {} elements when deleting; it must select at most one",
                    many.len()
                ))),
            }
        }
        "replace" => {
            let target = select_one(doc, op, "replacing")?;
            let value = op
                .value
                .ok_or_else(|| op.err("'replace' needs a 'value'"))?;
            let (owner, key, index) = split_loc(&target.loc)
                .ok_or_else(|| op.err("cannot replace the resource itself"))?;
            let owner_def = type_at(doc, owner);
            let child = if target.primitive { None } else { target.def };
            let nv = build_value(value, child, op)?;
            let el = owner_def
                .and_then(|d| d.resolve_property(key))
                .map(|(el, _)| el);
            let new_key = match (el, &nv.suffix) {
                (Some(el), Some(sfx)) if el.choice => {
                    if el.choice_type(sfx).is_none() {
                        return Err(op.err(format!("'{}' cannot hold a {sfx}", el.name)));
                    }
                    format!("{}{sfx}", el.name)
                }
                _ => key.to_string(),
            };
            let (owner, key) = (owner.to_vec(), key.to_string());
            let obj = get_mut_obj(doc, &owner, op)?;
            let ckey = format!("_{key}");
            match index {
                None => {
                    obj.shift_remove(&key);
                    obj.shift_remove(&ckey);
                    put_member(obj, owner_def, &new_key, nv, false).map_err(|m| op.err(m))
                }
                Some(i) => {
                    if let Some(slot) = obj.get_mut(&key).and_then(|a| a.get_mut(i)) {
                        *slot = nv.json;
                    }
                    if nv.companion.is_some() || obj.contains_key(&ckey) {
                        if !matches!(obj.get(&ckey), Some(Value::Array(_))) {
                            insert_ordered(obj, owner_def, &ckey, Value::Array(Vec::new()));
                        }
                        if let Some(Value::Array(c)) = obj.get_mut(&ckey) {
                            if c.len() <= i {
                                c.resize(i + 1, Value::Null);
                            }
                            if let Some(slot) = c.get_mut(i) {
                                *slot = nv.companion.unwrap_or(Value::Null);
                            }
                        }
                        tidy_companion(obj, &ckey);
                    }
                    Ok(())
                }
            }
        }
        "move" => {
            let list = locate_list(doc, op)?;
            let src = op.source.ok_or_else(|| op.err("'move' needs a 'source'"))?;
            let dst = op
                .destination
                .ok_or_else(|| op.err("'move' needs a 'destination'"))?;
            let obj = get_mut_obj(doc, &list.owner, op)?;
            let len = obj
                .get(&list.key)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let (src, dst) = match (usize::try_from(src), usize::try_from(dst)) {
                (Ok(s), Ok(d)) if s < len && d < len => (s, d),
                _ => {
                    return Err(op.err(format!(
                        "source and destination must be within the list of {len}"
                    )));
                }
            };
            if let Some(Value::Array(a)) = obj.get_mut(&list.key) {
                let v = a.remove(src);
                a.insert(dst, v);
            }
            let ckey = format!("_{}", list.key);
            if let Some(Value::Array(c)) = obj.get_mut(&ckey) {
                c.resize(len.max(c.len()), Value::Null);
                let v = c.remove(src);
                c.insert(dst, v);
            }
            tidy_companion(obj, &ckey);
            Ok(())
        }
        other => Err(op.err(format!("unknown operation type '{other}'"))),
    }
}
