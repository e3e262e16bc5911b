//! Database core: database values at time t, storage traits, indexer, in-memory adapters.
