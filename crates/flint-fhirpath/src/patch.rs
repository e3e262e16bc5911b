//! Patching: JSON Patch (RFC 6902) and FHIRPath Patch (FHIR R4).
