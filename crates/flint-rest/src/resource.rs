//! Helpers on resources as the REST layer handles them: server-assigned ids, version metadata,
//! canonical bytes and hashes, local references, instants.

use bytes::Bytes;
use flint_db::{ContentHash, T};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A new server-assigned id: 16 base32 characters (44-bit millisecond time, 36 random bits),
/// roughly ordered by creation time.
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        & ((1 << 44) - 1);
    let rnd: u64 = rand::random::<u64>() & ((1 << 36) - 1);
    let v: u128 = ((ms as u128) << 36) | rnd as u128;
    (0..16)
        .rev()
        .map(|i| ALPHABET[((v >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Formats an instant (ms since the epoch) as a FHIR `instant` (`2026-01-02T03:04:05.678Z`).
pub fn format_instant(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Formats an instant as an HTTP date (`Last-Modified`).
pub fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// Parses a FHIR instant/dateTime/date (as in `_since`) to ms since the epoch; partial dates
/// start at their first moment, values without a zone are taken as UTC.
pub fn parse_instant(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let (y, rest) = (s.get(0..4)?, s.get(4..).unwrap_or(""));
    let year: i32 = y.parse().ok()?;
    let (month, day) = match rest.len() {
        0 => (1, 1),
        3 => (rest.strip_prefix('-')?.parse().ok()?, 1),
        6 => (rest.get(1..3)?.parse().ok()?, rest.get(4..6)?.parse().ok()?),
        _ => {
            let with_zone = format!("{s}Z");
            return time::OffsetDateTime::parse(&with_zone, &Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        }
    };
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Removes `meta.versionId` and `meta.lastUpdated` (server-managed), dropping an empty meta.
pub fn strip_version_meta(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        let mut empty = false;
        if let Some(Value::Object(meta)) = obj.get_mut("meta") {
            for k in ["versionId", "_versionId", "lastUpdated", "_lastUpdated"] {
                meta.shift_remove(k);
            }
            empty = meta.is_empty();
        }
        if empty {
            obj.shift_remove("meta");
        }
    }
}

/// Sets the resource id, keeping the canonical element order (`id` right after `resourceType`).
pub fn set_id(v: &mut Value, id: &str) {
    if let Some(obj) = v.as_object_mut() {
        if let Some(slot) = obj.get_mut("id") {
            *slot = Value::String(id.to_string());
        } else {
            obj.shift_insert(
                1.min(obj.len()),
                "id".to_string(),
                Value::String(id.to_string()),
            );
        }
    }
}

/// The resource id, if present.
pub fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

/// The resource type.
pub fn type_of(v: &Value) -> &str {
    v.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

/// Adds `meta.versionId` and `meta.lastUpdated` in their canonical place.
pub fn set_version_meta(v: &mut Value, t: T, instant_ms: i64) {
    let Some(obj) = v.as_object_mut() else { return };
    let pos = obj
        .keys()
        .position(|k| k != "resourceType" && k != "id" && k != "_id")
        .unwrap_or(obj.len());
    if !obj.contains_key("meta") {
        obj.shift_insert(pos, "meta".to_string(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        let pos = meta
            .keys()
            .position(|k| k != "id" && k != "extension")
            .unwrap_or(meta.len());
        meta.shift_remove("versionId");
        meta.shift_remove("lastUpdated");
        meta.shift_insert(
            pos,
            "lastUpdated".to_string(),
            Value::String(format_instant(instant_ms)),
        );
        meta.shift_insert(pos, "versionId".to_string(), Value::String(t.to_string()));
    }
}

/// Canonical bytes and their hash of a resource without version metadata.
pub fn content_of(v: &Value) -> (ContentHash, Bytes) {
    let bytes = Bytes::from(flint_model::json::to_vec(v, false));
    (ContentHash::of(&bytes), bytes)
}

/// Parses a literal reference into `(type, id)` if it points at this server: `Type/id`,
/// `Type/id/_history/vid`, or an absolute URL starting with `base` followed by one of those.
pub fn local_ref<'a>(reference: &'a str, base: &str) -> Option<(&'a str, &'a str)> {
    let rel = if reference.contains("://") {
        reference.strip_prefix(base)?.strip_prefix('/')?
    } else {
        reference
    };
    let mut parts = rel.split('/');
    let ty = parts.next()?;
    let id = parts.next()?;
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) | (Some("_history"), Some(_), None) => {}
        _ => return None,
    }
    let defs = flint_model::defs::definitions();
    (defs.is_resource_type(ty) && flint_model::is_valid_id(id)).then_some((ty, id))
}

/// The local references `(type, id)` of a resource (deduplicated, sorted): its own, not
/// those of resources it carries (a stored Bundle's entries; see
/// `flint_model::refs::own_references`). References between contained resources (`#id`)
/// are not local references.
pub fn local_refs(v: &Value, base: &str) -> Vec<(String, String)> {
    local_refs_of(flint_model::refs::own_references(v), base)
}

/// [`local_refs`] also counting those of carried resources: what a version stored by an
/// earlier Flint (which counted them) may have written `referenced-by` rows for, so a purge
/// removes them all.
pub fn local_refs_with_carried(v: &Value, base: &str) -> Vec<(String, String)> {
    local_refs_of(flint_model::refs::references(v), base)
}

fn local_refs_of(refs: Vec<String>, base: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = refs
        .iter()
        .filter_map(|r| local_ref(r, base))
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_valid_and_unique() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(flint_model::is_valid_id(&a));
    }

    #[test]
    fn instants_format_and_parse() {
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_instant(1_234), "1970-01-01T00:00:01.234Z");
        assert_eq!(parse_instant("1970-01-01T00:00:01.234Z"), Some(1234));
        assert_eq!(parse_instant("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_instant("1970-02"), Some(31 * 86_400_000));
        assert_eq!(parse_instant("1970"), Some(0));
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn version_meta_goes_to_its_canonical_place() {
        let mut v = json!({"resourceType": "Patient", "id": "a", "meta": {"profile": ["x"]}, "active": true});
        set_version_meta(&mut v, 7, 0);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"7","lastUpdated":"1970-01-01T00:00:00.000Z","profile":["x"]},"active":true}"#
        );
        strip_version_meta(&mut v);
        assert_eq!(v["meta"], json!({"profile": ["x"]}));
        let mut w = json!({"resourceType": "Patient", "meta": {"versionId": "1"}, "active": true});
        strip_version_meta(&mut w);
        set_id(&mut w, "b");
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"resourceType":"Patient","id":"b","active":true}"#
        );
    }

    #[test]
    fn local_refs_recognise_relative_versioned_and_own_absolute_urls() {
        let base = "http://localhost:8080/fhir";
        assert_eq!(local_ref("Patient/1", base), Some(("Patient", "1")));
        assert_eq!(
            local_ref("Patient/1/_history/2", base),
            Some(("Patient", "1"))
        );
        assert_eq!(
            local_ref("http://localhost:8080/fhir/Patient/1", base),
            Some(("Patient", "1"))
        );
        assert_eq!(local_ref("http://other.org/fhir/Patient/1", base), None);
        assert_eq!(local_ref("#contained", base), None);
        assert_eq!(local_ref("Foo/1", base), None);
        assert_eq!(local_ref("Patient?identifier=x", base), None);
    }
}

/// Adds version metadata to stored canonical JSON bytes without parsing them: the canonical
/// form starts `{"resourceType":"T","id":"I"` followed by `,"meta":{` or the next element, so
/// the new members are spliced in. Returns `None` for shapes it does not handle (then the
/// caller parses); the output equals what [`set_version_meta`] and compact writing produce.
pub fn splice_version_meta(stored: &[u8], t: T, instant_ms: i64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stored.len() + 80);
    splice_version_meta_into(&mut out, stored, t, &format_instant(instant_ms)).then_some(out)
}

/// [`splice_version_meta`] appending to `out`, with the instant already formatted (a page of
/// results mostly shares a few transactions). Returns `false`, leaving `out` as it was, for
/// shapes it does not handle.
pub fn splice_version_meta_into(out: &mut Vec<u8>, stored: &[u8], t: T, instant: &str) -> bool {
    const HEAD: &[u8] = b"{\"resourceType\":\"";
    let Some(rest) = stored.strip_prefix(HEAD) else {
        return false;
    };
    let Some(type_end) = rest.iter().position(|&b| b == b'"') else {
        return false;
    };
    let mut pos = HEAD.len() + type_end + 1;
    let after_type = &stored[pos..];
    let id_head: &[u8] = b",\"id\":\"";
    if after_type.starts_with(id_head) {
        let id_start = pos + id_head.len();
        let Some(id_len) = stored[id_start..].iter().position(|&b| b == b'"') else {
            return false;
        };
        if stored[id_start..id_start + id_len].contains(&b'\\') {
            return false;
        }
        pos = id_start + id_len + 1;
    }
    let tail = &stored[pos..];
    if tail.starts_with(b",\"_id\"") {
        return false;
    }
    let meta_rest = tail.strip_prefix(b",\"meta\":{");
    if meta_rest.is_some_and(|m| {
        m.starts_with(b"}") || m.starts_with(b"\"id\"") || m.starts_with(b"\"extension\"")
    }) {
        return false;
    }
    out.reserve(stored.len() + instant.len() + 60);
    out.extend_from_slice(&stored[..pos]);
    out.extend_from_slice(b",\"meta\":{\"versionId\":\"");
    let mut buf = [0u8; 20];
    out.extend_from_slice(format_u64(t, &mut buf));
    out.extend_from_slice(b"\",\"lastUpdated\":\"");
    out.extend_from_slice(instant.as_bytes());
    out.push(b'"');
    match meta_rest {
        Some(m) => {
            out.push(b',');
            out.extend_from_slice(m);
        }
        None => {
            out.push(b'}');
            out.extend_from_slice(tail);
        }
    }
    true
}

/// The decimal digits of `n`, written into the end of `buf`.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod splice_tests {
    use super::*;
    use serde_json::json;

    fn slow(v: &Value, t: T, ms: i64) -> Vec<u8> {
        let mut v = v.clone();
        set_version_meta(&mut v, t, ms);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn splice_equals_parse_and_write() {
        for v in [
            json!({"resourceType": "Patient", "id": "a", "active": true}),
            json!({"resourceType": "Patient", "id": "a"}),
            json!({"resourceType": "Patient", "id": "a", "meta": {"profile": ["p"]}, "active": true}),
            json!({"resourceType": "Patient", "active": true}),
        ] {
            let stored = serde_json::to_vec(&v).unwrap();
            assert_eq!(
                splice_version_meta(&stored, 12, 1_000).as_deref(),
                Some(slow(&v, 12, 1_000).as_slice()),
                "{v}"
            );
        }
        for v in [
            json!({"resourceType": "Patient", "id": "a", "_id": {"extension": []}}),
            json!({"resourceType": "Patient", "id": "a", "meta": {"extension": [{"url": "u", "valueBoolean": true}]}}),
        ] {
            assert_eq!(
                splice_version_meta(&serde_json::to_vec(&v).unwrap(), 1, 1),
                None
            );
        }
        assert_eq!(splice_version_meta(b"[1]", 1, 1), None);
        assert_eq!(splice_version_meta(b"{\"resourceType\":\"Pat", 1, 1), None);
    }
}
