//! Statistics and manual compaction of the RocksDB adapters (`StoreAdmin`), on real databases.

use bytes::Bytes;
use flint_rocksdb::{RocksConfig, RocksKv, RocksLog, RocksStore};
use flint_storage::admin::StoreAdmin;
use flint_storage::kv::{Cf, KvStore, WriteBatch};
use flint_storage::store::ResourceStore;
use flint_storage::{ContentHash, TxLog};

const KEYS: usize = 20_000;

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn cf_stats(kv: &RocksKv, name: &str) -> flint_storage::ColumnFamilyStats {
    kv.column_families()
        .unwrap()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column family {name}"))
}

#[test]
fn index_statistics_follow_writes_flushes_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let cache = 16 << 20;
    let kv = RocksKv::open(dir.path(), &RocksConfig::new(cache)).unwrap();
    let names: Vec<String> = kv
        .column_families()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let all: Vec<String> = Cf::ALL.iter().map(|c| c.name().to_string()).collect();
    assert_eq!(names, all, "every column family, in order");

    let value = vec![7u8; 100];
    let mut b = WriteBatch::default();
    for i in 0..KEYS {
        b.put(Cf::TxError, key(i), value.clone());
    }
    kv.write(b, false).unwrap();
    let before_flush = cf_stats(&kv, "tx-error-index");
    assert!(
        before_flush.size_all_mem_tables > (KEYS * 100) as u64,
        "{before_flush:?}"
    );
    assert_eq!(before_flush.live_sst_files_size, 0, "{before_flush:?}");
    kv.flush().unwrap();
    let flushed = cf_stats(&kv, "tx-error-index");
    assert!(flushed.live_sst_files_size > 0, "{flushed:?}");
    // RocksDB's estimate after a flush of distinct keys is the number of entries written.
    assert_eq!(flushed.estimate_num_keys, KEYS as u64, "{flushed:?}");
    assert_eq!(cf_stats(&kv, "tx-success-index").estimate_num_keys, 0);

    let stats = kv.stats().unwrap();
    let bc = stats.block_cache.expect("a block cache");
    assert_eq!(bc.capacity, cache as u64);
    assert!(bc.usage <= bc.capacity);
    assert!(stats.usable_space.is_some_and(|s| s > 0), "{stats:?}");
    assert!(
        stats.estimate_live_data_size.is_some_and(|s| s > 0),
        "{stats:?}"
    );
    assert_eq!(stats.compactions.map(|c| c.running), Some(0));

    // Delete every key (a second file of tombstones), then compact: nothing is left.
    let mut b = WriteBatch::default();
    for i in 0..KEYS {
        b.delete(Cf::TxError, key(i));
    }
    kv.write(b, false).unwrap();
    kv.flush().unwrap();
    let with_tombstones = cf_stats(&kv, "tx-error-index").live_sst_files_size;
    assert!(with_tombstones >= flushed.live_sst_files_size);
    assert!(kv.compact("tx-error-index").unwrap());
    let compacted = cf_stats(&kv, "tx-error-index");
    assert_eq!(compacted.live_sst_files_size, 0, "{compacted:?}");
    assert_eq!(compacted.estimate_num_keys, 0, "{compacted:?}");
    assert!(!kv.compact("no-such-family").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_store_have_one_column_family_each() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RocksConfig::new(8 << 20);
    let store = RocksStore::open(&dir.path().join("resource"), &cfg).unwrap();
    let log = RocksLog::open_syncing(&dir.path().join("transaction"), &cfg, &store).unwrap();
    let mut entries = Vec::new();
    for i in 0..100 {
        let body = Bytes::from(format!("{{\"n\":{i}}}"));
        entries.push((ContentHash::of(&body), body));
    }
    store.put(entries).await.unwrap();
    for _ in 0..10 {
        log.submit(vec![]).await.unwrap();
    }
    ResourceStore::flush(&store).unwrap();
    TxLog::flush(&log).unwrap();
    let s = store.column_families().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].name.as_str(), s[0].estimate_num_keys),
        ("default", 100)
    );
    let l = log.column_families().unwrap();
    assert_eq!(
        (l[0].name.as_str(), l[0].estimate_num_keys),
        ("default", 10)
    );
    assert!(store.compact("default").unwrap() && !store.compact("index").unwrap());
    assert!(log.compact("default").unwrap());
    assert_eq!(store.column_families().unwrap()[0].estimate_num_keys, 100);
    assert!(log.stats().unwrap().usable_space.is_some());
}

#[test]
fn metadata_tables_and_state_show_the_sst_files_by_level() {
    let dir = tempfile::tempdir().unwrap();
    let kv = RocksKv::open(dir.path(), &RocksConfig::new(8 << 20)).unwrap();
    let cf = "tx-error-index";
    let empty = kv
        .column_family_metadata(cf)
        .unwrap()
        .expect("a RocksDB family");
    assert_eq!((empty.num_files, empty.file_size), (0, 0), "{empty:?}");
    assert_eq!(empty.levels.len(), 7, "every level: {empty:?}");
    assert_eq!(kv.tables(cf).unwrap(), Some(Vec::new()));

    // Two flushes of disjoint key ranges: two level-0 files.
    for (from, to) in [(0, KEYS / 2), (KEYS / 2, KEYS)] {
        let mut b = WriteBatch::default();
        for i in from..to {
            b.put(Cf::TxError, key(i), vec![1u8; 50]);
        }
        kv.write(b, false).unwrap();
        let state = kv.column_family_state(cf).unwrap().expect("a state");
        assert_eq!(
            state.num_entries_active_mem_table,
            (to - from) as u64,
            "{state:?}"
        );
        assert!(!state.write_stopped, "{state:?}");
        kv.flush().unwrap();
    }
    let tables = kv.tables(cf).unwrap().unwrap();
    assert_eq!(tables.len(), 2, "{tables:?}");
    assert!(
        tables
            .iter()
            .all(|t| t.level == 0 && t.name.ends_with(".sst")),
        "{tables:?}"
    );
    assert_eq!(
        tables.iter().map(|t| t.num_entries).sum::<u64>(),
        KEYS as u64
    );
    let hex = |k: &[u8]| flint_storage::admin::hex(k);
    let mut bounds: Vec<(String, String)> = tables
        .iter()
        .map(|t| (t.smallest_key.clone(), t.largest_key.clone()))
        .collect();
    bounds.sort();
    assert_eq!(
        bounds,
        [
            (hex(&key(0)), hex(&key(KEYS / 2 - 1))),
            (hex(&key(KEYS / 2)), hex(&key(KEYS - 1)))
        ]
    );
    let m = kv.column_family_metadata(cf).unwrap().unwrap();
    assert_eq!(m.num_files, 2);
    assert_eq!(m.file_size, tables.iter().map(|t| t.file_size).sum::<u64>());
    assert_eq!(m.file_size, cf_stats(&kv, cf).live_sst_files_size);
    assert_eq!(
        (m.levels[0].num_files, m.levels[0].file_size),
        (2, m.file_size)
    );

    // Compacted: one file in the last level, none in level 0.
    assert!(kv.compact(cf).unwrap());
    let m = kv.column_family_metadata(cf).unwrap().unwrap();
    assert_eq!(m.levels[0].num_files, 0, "{m:?}");
    let last = m
        .levels
        .iter()
        .rev()
        .find(|l| l.num_files > 0)
        .expect("a level with files");
    assert!(last.level > 0, "{m:?}");
    assert_eq!(last.num_files, m.num_files, "{m:?}");
    let state = kv.column_family_state(cf).unwrap().unwrap();
    assert_eq!(state.num_entries_active_mem_table, 0, "{state:?}");
    assert!(!state.mem_table_flush_pending, "{state:?}");

    // Another column family, or none: nothing.
    assert_eq!(kv.tables("no-such-family").unwrap(), None);
    assert_eq!(kv.column_family_metadata("no-such-family").unwrap(), None);
    assert_eq!(kv.column_family_state("no-such-family").unwrap(), None);

    // The log and the store have their `default` family.
    let cfg = RocksConfig::new(8 << 20);
    let store = RocksStore::open(&dir.path().join("resource"), &cfg).unwrap();
    assert!(store.column_family_metadata("default").unwrap().is_some());
    assert!(store.tables("index").unwrap().is_none());
}
