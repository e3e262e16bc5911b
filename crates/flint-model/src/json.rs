//! FHIR JSON: parsing (with validation into canonical form) and writing.

use crate::ModelError;
use serde_json::Value;

/// Parses, validates and canonicalises a FHIR JSON resource.
pub fn parse_resource(bytes: &[u8]) -> Result<Value, ModelError> {
    check_duplicates(bytes)?;
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| ModelError::new(format!("Invalid JSON: {e}")))?;
    crate::validate::resource(v)
}

/// Writes a resource as JSON: compact (the canonical bytes) or pretty (2-space indentation).
pub fn to_vec(v: &Value, pretty: bool) -> Vec<u8> {
    let r = if pretty {
        serde_json::to_vec_pretty(v)
    } else {
        serde_json::to_vec(v)
    };
    // Serialising a Value into memory cannot fail.
    r.unwrap_or_default()
}

/// Rejects objects with the same property twice (serde_json would silently keep the last).
/// A single pass over the bytes tracking the keys of each open object; invalid JSON is left
/// for the parser to report.
fn check_duplicates(bytes: &[u8]) -> Result<(), ModelError> {
    use std::collections::HashSet;
    // Stack of open containers: Some(keys) for objects, None for arrays.
    let mut stack: Vec<Option<HashSet<&[u8]>>> = Vec::new();
    let mut i = 0;
    let mut expect_key = false;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push(Some(HashSet::new()));
                expect_key = true;
            }
            b'[' => {
                stack.push(None);
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = matches!(stack.last(), Some(Some(_))),
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                if j >= bytes.len() {
                    return Ok(());
                }
                if expect_key {
                    let key = &bytes[start..j];
                    if let Some(Some(keys)) = stack.last_mut()
                        && !keys.insert(key)
                    {
                        return Err(ModelError::new(format!(
                            "Invalid JSON: duplicate property `{}`.",
                            String::from_utf8_lossy(key)
                        )));
                    }
                    expect_key = false;
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let v = parse_resource(br#"{"resourceType":"Patient","active":true}"#).unwrap();
        assert_eq!(
            to_vec(&v, false),
            br#"{"resourceType":"Patient","active":true}"#
        );
        assert!(parse_resource(b"{").is_err());
        assert!(parse_resource(b"[]").is_err());
        let e = parse_resource(br#"{"resourceType":"Patient","active":true,"active":false}"#)
            .unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
        assert!(parse_resource(br#"{"resourceType":"Patient","name":[{"family":"a\"b","given":["x"]}],"gender":"male"}"#).is_ok());
        assert!(
            parse_resource(br#"{"resourceType":"Patient","name":[{"family":"a"},{"family":"a"}]}"#)
                .is_ok()
        );
    }
}
