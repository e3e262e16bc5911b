//! FHIR RESTful API over HTTP (axum).
