//! The storage trait contracts as executable checks, shared by every adapter's tests: the
//! in-memory and RocksDB index stores run [`kv_store`], every resource store runs
//! [`resource_store`], every transaction log runs [`tx_log`]. Each check panics with a message
//! naming the broken rule; it expects an empty store.
//!
//! Two parts of the contract are proven elsewhere: snapshots (the stores need none: a database
//! value reads as of its `t` by key order, which flint-db's node tests check over the in-memory
//! and RocksDB stores) and errors (a fault is an error of the call or a cursor's `status`,
//! never a shorter scan: `flint-db/tests/faults.rs` over [`crate::fault`]'s wrappers, whose
//! cursors fail the way a RocksDB iterator does).

use crate::kv::{Cf, KvStore, WriteBatch, scan_prefix};
use crate::log::{TxCmd, TxLog, TxOp};
use crate::store::ResourceStore;
use crate::{ContentHash, T};
use bytes::Bytes;
use std::time::Duration;

fn keys_from(kv: &dyn KvStore, cf: Cf, start: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    scan_prefix(kv, cf, &[], start, |k, _| {
        out.push(k.to_vec());
        true
    })
    .expect("a scan of a healthy store succeeds");
    out
}

/// The [`KvStore`] contract: byte-wise key order, seeks to the first key at or after the
/// target, column families kept apart, batches applied atomically and in order (a later write
/// of a key wins), deletes, multi-gets in key order, empty values, prefix cursors agreeing
/// with total-order cursors within a prefix, and healthy cursors reporting an `Ok` status.
pub fn kv_store(kv: &dyn KvStore) {
    let keys: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xff],
        vec![0x01],
        b"a".to_vec(),
        b"ab".to_vec(),
        b"abc".to_vec(),
        b"b".to_vec(),
        vec![0x7f],
        vec![0x80],
        vec![0xff],
        vec![0xff, 0xff, 0x00],
    ];
    // Written in reverse, with a value per key (empty for the empty key).
    let mut b = WriteBatch::default();
    for k in keys.iter().rev() {
        b.put(
            Cf::SearchParamValue,
            k.clone(),
            k.iter().rev().copied().collect(),
        );
    }
    kv.write(b, true).expect("write");
    assert_eq!(
        keys_from(kv, Cf::SearchParamValue, &[]),
        keys,
        "keys iterate in unsigned byte order"
    );
    for k in &keys {
        let v = kv.get(Cf::SearchParamValue, k).expect("get");
        assert_eq!(
            v,
            Some(k.iter().rev().copied().collect::<Vec<u8>>()),
            "get returns what was put (key {k:?})"
        );
    }
    // Seeks land on the first key >= the target.
    for (target, expected) in [
        (&b"aa"[..], Some(&b"ab"[..])),
        (b"ab", Some(b"ab")),
        (b"abd", Some(b"b")),
        (&[0x00, 0x01], Some(&[0x00, 0xff][..])),
        (&[0xff, 0xff, 0x01], None),
    ] {
        let mut c = kv.cursor(Cf::SearchParamValue);
        c.seek(target);
        let got = c.on_entry().expect("status").then(|| c.key().to_vec());
        assert_eq!(
            got.as_deref(),
            expected,
            "seek({target:?}) lands on the first key at or after it"
        );
    }
    // Column families are separate key spaces.
    assert!(
        keys_from(kv, Cf::ResourceValue, &[]).is_empty(),
        "another column family sees none of these keys"
    );
    assert_eq!(kv.get(Cf::ResourceValue, b"a").expect("get"), None);
    // A batch applies in order: put, delete and put again of one key leaves the last put;
    // a delete of an absent key is harmless.
    let mut b = WriteBatch::default();
    b.put(Cf::Superseded, b"k".to_vec(), b"1".to_vec());
    b.delete(Cf::Superseded, b"k".to_vec());
    b.put(Cf::Superseded, b"k".to_vec(), b"2".to_vec());
    b.put(Cf::Superseded, b"gone".to_vec(), b"x".to_vec());
    b.delete(Cf::Superseded, b"gone".to_vec());
    b.delete(Cf::Superseded, b"never".to_vec());
    b.put(Cf::TxError, b"k".to_vec(), Vec::new());
    kv.write(b, false).expect("write");
    assert_eq!(
        kv.get(Cf::Superseded, b"k").expect("get"),
        Some(b"2".to_vec())
    );
    assert_eq!(kv.get(Cf::Superseded, b"gone").expect("get"), None);
    assert_eq!(
        kv.get(Cf::TxError, b"k").expect("get"),
        Some(Vec::new()),
        "an empty value is a value, not an absent key"
    );
    assert_eq!(keys_from(kv, Cf::Superseded, &[]), vec![b"k".to_vec()]);
    // Multi-get answers in the order asked, absent keys as None.
    let asked = vec![b"a".to_vec(), b"aa".to_vec(), b"abc".to_vec(), vec![0xff]];
    assert_eq!(
        kv.multi_get(Cf::SearchParamValue, &asked)
            .expect("multi_get"),
        vec![
            Some(b"a".to_vec()),
            None,
            Some(b"cba".to_vec()),
            Some(vec![0xff])
        ],
        "multi_get answers each key in order"
    );
    // Prefix cursors agree with total-order ones while keys share the seek key's resource
    // prefix (ResourceAsOf: type id, id, 0x00).
    let mut b = WriteBatch::default();
    let rkey = |id: &str, t: T| crate::layout::resource_as_of_key(7, id, t);
    for id in ["p", "p1", "p10", "q"] {
        for t in [1, 5, 9] {
            b.put(Cf::ResourceAsOf, rkey(id, t), id.as_bytes().to_vec());
        }
    }
    kv.write(b, false).expect("write");
    for id in ["p", "p1", "p10", "q"] {
        let prefix = crate::layout::resource_prefix(7, id);
        let mut seen = Vec::new();
        let mut c = kv.prefix_cursor(Cf::ResourceAsOf);
        c.seek(&rkey(id, 6));
        while c.on_entry().expect("status") && c.key().starts_with(&prefix) {
            seen.push(crate::layout::read_desc_t(&c.key()[prefix.len()..]));
            c.next();
        }
        assert_eq!(
            seen,
            vec![5, 1],
            "versions of {id} at or before 6, newest first"
        );
    }
    // An exhausted healthy cursor is not on an entry and reports no error.
    let mut c = kv.cursor(Cf::SearchParamValue);
    c.seek(&[0xff, 0xff, 0xff]);
    assert!(!c.valid());
    assert!(c.status().is_ok(), "the end of the rows is not an error");
    assert!(!c.on_entry().expect("status"));
    kv.flush().expect("flush");
    assert_eq!(
        keys_from(kv, Cf::SearchParamValue, &[]),
        keys,
        "a flush keeps every row"
    );
}

/// The [`ResourceStore`] contract: what is put is got back byte for byte, absent hashes are
/// `None`, multi-gets answer in the order asked, putting the same content again is harmless,
/// and a delete erases exactly the hashes named (they read as empty, erased contents, also
/// after a flush; the others are untouched; a repeated or absent delete is harmless; a put
/// stores an erased content again).
pub async fn resource_store(store: &dyn ResourceStore) {
    let items: Vec<(ContentHash, Bytes)> = (0..20)
        .map(|i| {
            let b = Bytes::from(format!("{{\"resourceType\":\"Patient\",\"id\":\"c{i}\"}}"));
            (ContentHash::of(&b), b)
        })
        .collect();
    store.put(items.clone()).await.expect("put");
    store.put(items[..3].to_vec()).await.expect("put again");
    for (h, b) in &items {
        assert_eq!(
            store.get(h).await.expect("get").as_ref(),
            Some(b),
            "get {h:?}"
        );
    }
    let absent = ContentHash::of(b"never stored");
    assert_eq!(
        store.get(&absent).await.expect("get"),
        None,
        "an absent hash is None"
    );
    let mut asked: Vec<ContentHash> = items.iter().rev().map(|(h, _)| *h).collect();
    asked.insert(5, absent);
    let got = store.multi_get(&asked).await.expect("multi_get");
    assert_eq!(got.len(), asked.len(), "multi_get answers every hash");
    for (h, g) in asked.iter().zip(&got) {
        let want = items.iter().find(|(x, _)| x == h).map(|(_, b)| b);
        assert_eq!(g.as_ref(), want, "multi_get answers {h:?} in its place");
    }
    let erased: Vec<ContentHash> = items.iter().step_by(3).map(|(h, _)| *h).collect();
    store.delete(&erased).await.expect("delete");
    store.delete(&erased[..2]).await.expect("delete again");
    store
        .delete(&[ContentHash::of(b"never stored either")])
        .await
        .expect("delete of an absent hash");
    store.flush().expect("flush");
    let all: Vec<ContentHash> = items.iter().map(|(h, _)| *h).collect();
    let got = store.multi_get(&all).await.expect("multi_get");
    for ((h, b), g) in items.iter().zip(&got) {
        if erased.contains(h) {
            assert_eq!(
                g.as_deref(),
                Some(&b""[..]),
                "a deleted hash {h:?} reads as an erased (empty) content"
            );
            assert_eq!(
                store.get(h).await.expect("get").as_deref(),
                Some(&b""[..]),
                "get of deleted {h:?}"
            );
        } else {
            assert_eq!(g.as_ref(), Some(b), "delete leaves {h:?} alone");
        }
    }
    store
        .put(items[..1].to_vec())
        .await
        .expect("put after delete");
    assert_eq!(
        store.get(&items[0].0).await.expect("get").as_ref(),
        Some(&items[0].1),
        "a put after a delete stores the content again"
    );
    store.flush().expect("flush");
}

/// The [`TxLog`] contract: `t` is dense from the log's current end, `poll` returns entries
/// from `from` in order with their commands, `max` bounds a poll, `last_t` is the newest `t`,
/// instants never decrease, and a poll past the end waits at most its timeout and returns
/// nothing.
pub async fn tx_log(log: &dyn TxLog) {
    let start = log.last_t().await.expect("last_t");
    let mut ts = Vec::new();
    for i in 0..5 {
        let cmds = vec![TxCmd::new(TxOp::Delete, "Patient", &format!("c{i}"), None)];
        ts.push(log.submit(cmds).await.expect("submit"));
    }
    let expected: Vec<T> = (start + 1..=start + 5).collect();
    assert_eq!(ts, expected, "t is dense and increasing");
    assert_eq!(
        log.last_t().await.expect("last_t"),
        start + 5,
        "last_t is the newest t"
    );
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 5 && std::time::Instant::now() < deadline {
        let from = start + 1 + got.len() as T;
        got.extend(
            log.poll(from, 5 - got.len(), Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    assert_eq!(
        got.iter().map(|e| e.t).collect::<Vec<_>>(),
        expected,
        "poll returns every t"
    );
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.cmds.len(), 1);
        assert_eq!(e.cmds[0].id, format!("c{i}"), "entries keep their commands");
    }
    assert!(
        got.windows(2).all(|w| w[0].instant_ms <= w[1].instant_ms),
        "instants never decrease"
    );
    let two = log
        .poll(start + 2, 2, Duration::from_secs(5))
        .await
        .expect("poll");
    assert!(
        !two.is_empty() && two.len() <= 2 && two[0].t == start + 2,
        "poll starts at from and returns at most max entries"
    );
    let waited = std::time::Instant::now();
    let none = log
        .poll(start + 6, 10, Duration::from_millis(300))
        .await
        .expect("poll");
    assert!(none.is_empty(), "nothing past the end");
    assert!(
        waited.elapsed() < Duration::from_secs(20),
        "a poll past the end returns after about its timeout"
    );
}
