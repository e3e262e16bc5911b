//! FHIRPath engine over Flint's FHIR resource model.
