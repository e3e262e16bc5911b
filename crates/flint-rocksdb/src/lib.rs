//! RocksDB storage adapter: key-value store, transaction log and resource store.
