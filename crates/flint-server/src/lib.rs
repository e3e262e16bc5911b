//! The flint binary: configuration, storage wiring, metrics, HTTP server.
