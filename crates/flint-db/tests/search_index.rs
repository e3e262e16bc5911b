//! The search index written by the indexer through a `ResourceIndexer` hook and scanned at a
//! database value's `t`: only versions current at `t` match.

use bytes::Bytes;
use flint_db::codec::{param_hash, tid};
use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::{
    CompartmentEntry, ContentHash, Indexed, Node, NodeConfig, ResourceIndexer, TxCmd, TxOp,
    ValueMatch,
};
use std::sync::Arc;

/// Indexes `"name"` and `"n"` (a number, big-endian) of JSON objects.
struct Toy;

impl ResourceIndexer for Toy {
    fn index(&self, _type_name: &str, content: &[u8]) -> flint_db::error::Result<Indexed> {
        let v: serde_json::Value =
            serde_json::from_slice(content).map_err(|e| flint_db::DbError::fault(e.to_string()))?;
        let mut out = Vec::new();
        if let Some(s) = v["name"].as_str() {
            out.push((param_hash("name"), s.as_bytes().to_vec()));
        }
        if let Some(n) = v["n"].as_u64() {
            out.push((param_hash("n"), n.to_be_bytes().to_vec()));
        }
        out.push((param_hash("via"), b"bytes".to_vec()));
        // `code` again under the Patient compartment of `subject`.
        let compartment_entries = match (v["subject"].as_str(), v["code"].as_str()) {
            (Some(s), Some(c)) => vec![CompartmentEntry {
                compartment_tid: tid("Patient"),
                compartment_id: s.to_string(),
                param: param_hash("code"),
                value: c.as_bytes().to_vec(),
            }],
            _ => Vec::new(),
        };
        Ok(Indexed {
            entries: out,
            values: content.to_vec(),
            compartment_entries,
        })
    }

    /// Conditions `[["name", "x"]]`: the current resources named `x`.
    fn condition_matches(
        &self,
        db: &flint_db::Db,
        type_name: &str,
        query: &str,
    ) -> flint_db::error::Result<Vec<String>> {
        let params: Vec<(String, String)> = serde_json::from_str(query).unwrap();
        let m = ValueMatch::Exact(params[0].1.as_bytes().to_vec());
        Ok(ids(db.search(type_name, param_hash("name"), &m)?))
    }

    /// Like `index`, marked as computed from the parsed form.
    fn index_json(
        &self,
        type_name: &str,
        resource: &serde_json::Value,
    ) -> flint_db::error::Result<Indexed> {
        let mut x = self.index(type_name, &serde_json::to_vec(resource).unwrap())?;
        x.entries.retain(|(p, _)| *p != param_hash("via"));
        x.entries.push((param_hash("via"), b"json".to_vec()));
        Ok(x)
    }
}

async fn node() -> Node {
    let config = NodeConfig {
        resource_indexer: Some(Arc::new(Toy)),
        ..NodeConfig::default()
    };
    Node::start(
        Arc::new(MemKv::new()),
        Arc::new(MemLog::new()),
        Arc::new(MemStore::new()),
        config,
    )
    .await
    .unwrap()
}

async fn put(node: &Node, id: &str, body: &str) -> u64 {
    let h = ContentHash::of(body.as_bytes());
    node.transact(
        vec![TxCmd::new(TxOp::Put, "Patient", id, Some(h))],
        vec![(h, Bytes::from(body.to_string()))],
    )
    .await
    .unwrap()
    .t
}

fn ids(hs: Vec<flint_db::ResourceHandle>) -> Vec<String> {
    hs.into_iter().map(|h| h.id).collect()
}

#[tokio::test]
async fn search_sees_only_versions_current_at_t() {
    let node = node().await;
    put(&node, "a", r#"{"name":"alice","n":5}"#).await;
    put(&node, "b", r#"{"name":"alina","n":7}"#).await;
    let t_before = put(&node, "c", r#"{"name":"bob","n":9}"#).await;
    put(&node, "a", r#"{"name":"carol","n":5}"#).await;
    node.transact(vec![TxCmd::new(TxOp::Delete, "Patient", "b", None)], vec![])
        .await
        .unwrap();
    let db = node.db();
    let name = param_hash("name");
    assert_eq!(
        ids(db
            .search("Patient", name, &ValueMatch::Prefix(b"ali".to_vec()))
            .unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(db
            .search("Patient", name, &ValueMatch::Exact(b"carol".to_vec()))
            .unwrap()),
        vec!["a"]
    );
    assert_eq!(
        ids(db
            .search("Patient", name, &ValueMatch::Exact(b"caro".to_vec()))
            .unwrap()),
        Vec::<String>::new()
    );
    // The older database value still sees the older versions.
    let old = db.as_of(t_before);
    assert_eq!(
        ids(old
            .search("Patient", name, &ValueMatch::Prefix(b"ali".to_vec()))
            .unwrap()),
        vec!["a", "b"]
    );
    // Ranges over order-preserving encodings.
    let n = param_hash("n");
    let r = ValueMatch::Range(
        Some(6u64.to_be_bytes().to_vec()),
        Some(10u64.to_be_bytes().to_vec()),
    );
    assert_eq!(ids(db.search("Patient", n, &r).unwrap()), vec!["c"]);
    assert_eq!(ids(old.search("Patient", n, &r).unwrap()), vec!["b", "c"]);
    assert_eq!(
        ids(db.search("Observation", n, &r).unwrap()),
        Vec::<String>::new()
    );
    let h = db.resource("Patient", "a").unwrap().unwrap();
    assert_eq!(
        db.index_values(&h).unwrap().as_deref(),
        Some(&br#"{"name":"carol","n":5}"#[..])
    );
    // A filter sees unescaped values (zero bytes included) and decides each one.
    let all = ValueMatch::Prefix(Vec::new());
    assert_eq!(
        ids(db
            .search_filtered("Patient", n, &all, |v| v == 9u64.to_be_bytes())
            .unwrap()),
        vec!["c"]
    );
    assert_eq!(
        ids(old
            .search_filtered("Patient", name, &all, |v| v.ends_with(b"na"))
            .unwrap()),
        vec!["b"]
    );
}

#[tokio::test]
async fn rejected_transactions_leave_no_matches() {
    let node = node().await;
    put(&node, "a", r#"{"name":"x"}"#).await;
    let h = ContentHash::of(br#"{"name":"ghost"}"#);
    let mut c = TxCmd::new(TxOp::Put, "Patient", "a", Some(h));
    c.if_match = vec![999];
    assert!(
        node.transact(
            vec![c],
            vec![(h, Bytes::from_static(br#"{"name":"ghost"}"#))]
        )
        .await
        .is_err()
    );
    let db = node.db();
    assert!(
        db.search(
            "Patient",
            param_hash("name"),
            &ValueMatch::Exact(b"ghost".to_vec())
        )
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        ids(db
            .search(
                "Patient",
                param_hash("name"),
                &ValueMatch::Exact(b"x".to_vec())
            )
            .unwrap()),
        vec!["a"]
    );
}

#[tokio::test]
async fn content_missing_from_the_store_stalls_indexing_until_it_appears() {
    use flint_db::{ResourceStore, TxLog};
    let log = Arc::new(MemLog::new());
    let store = Arc::new(MemStore::new());
    let node = Node::start(
        Arc::new(MemKv::new()),
        log.clone(),
        store.clone(),
        NodeConfig {
            resource_indexer: Some(Arc::new(Toy)),
            sync_timeout: std::time::Duration::from_millis(300),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    // A transaction whose content the store cannot serve yet (a replica down, say).
    let body = r#"{"name":"late"}"#;
    let h = ContentHash::of(body.as_bytes());
    log.submit(vec![TxCmd::new(TxOp::Put, "Patient", "a", Some(h))])
        .await
        .unwrap();
    let Err(e) = node.sync().await else {
        panic!("synced past a transaction whose content is missing")
    };
    assert_eq!(e.kind, flint_db::ErrorKind::Unavailable, "{e}");
    let st = node.status();
    assert_eq!(
        (st.indexed_t, st.log_end_t, st.lag_transactions),
        (0, Some(1), 1)
    );
    assert!(st.indexer_error.is_some(), "{st:?}");

    // Once the content is there, the indexer catches up by itself, with the search entries.
    store
        .put(vec![(h, Bytes::from(body.to_string()))])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let db = loop {
        match node.sync().await {
            Ok(db) => break db,
            Err(_) if std::time::Instant::now() < deadline => {}
            Err(e) => panic!("{e}"),
        }
    };
    let found = db
        .search(
            "Patient",
            param_hash("name"),
            &ValueMatch::Exact(b"late".to_vec()),
        )
        .unwrap();
    assert_eq!(ids(found), vec!["a"]);
    let st = node.status();
    assert_eq!((st.indexed_t, st.lag_transactions), (1, 0));
    assert!(st.indexer_error.is_none(), "{st:?}");
}

/// `count_search` (the Superseded index, no look-up per hit) agrees with the length of
/// `search` (a version look-up per hit) at every `t`, through updates, deletions, and content
/// restored after a change or a deletion.
#[tokio::test]
async fn count_agrees_with_search_at_every_t() {
    let node = node().await;
    let names = ["ann", "anna", "bob", "bo", "cy"];
    let mut ts = vec![0];
    // A fixed pseudo-random walk (LCG) over 8 resources.
    let mut x: u64 = 12345;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    for _ in 0..200 {
        let id = format!("p{}", next(8));
        let t = if next(5) == 0 {
            match node
                .transact(vec![TxCmd::new(TxOp::Delete, "Patient", &id, None)], vec![])
                .await
            {
                Ok(o) => o.t,
                Err(_) => continue,
            }
        } else {
            let name = names[next(names.len() as u64) as usize];
            put(
                &node,
                &id,
                &format!(r#"{{"name":"{name}","n":{}}}"#, next(3)),
            )
            .await
        };
        ts.push(t);
    }
    let latest = node.db();
    let name = param_hash("name");
    let scans: Vec<ValueMatch> = names
        .iter()
        .map(|n| ValueMatch::Exact(n.as_bytes().to_vec()))
        .chain([
            ValueMatch::Prefix(b"an".to_vec()),
            ValueMatch::Range(Some(b"b".to_vec()), None),
        ])
        .collect();
    let yes = |_: &[u8]| true;
    let mut nonzero = 0;
    for &t in &ts {
        let db = latest.as_of(t);
        for m in &scans {
            let expected = db.search("Patient", name, m).unwrap().len();
            assert_eq!(
                db.count_search("Patient", name, &[(m, &yes)]).unwrap(),
                expected,
                "{m:?} at t={t}"
            );
            nonzero += usize::from(expected > 0);
        }
        // A union of values counts each resource once.
        let (a, b) = (&scans[0], &scans[1]);
        let mut union: Vec<String> = ids(db.search("Patient", name, a).unwrap());
        union.extend(ids(db.search("Patient", name, b).unwrap()));
        union.sort();
        union.dedup();
        assert_eq!(
            db.count_search("Patient", name, &[(a, &yes), (b, &yes)])
                .unwrap(),
            union.len()
        );
        // The same union as a list of ids, and bounded by the entries it may read.
        let both: [flint_db::search::ValueScan<'_>; 2] = [(a, &yes), (b, &yes)];
        let got = db.search_ids("Patient", name, &both).unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), union, "at t={t}");
        assert_eq!(
            db.search_ids_bounded("Patient", name, &both, usize::MAX)
                .unwrap(),
            Some(got)
        );
        if !union.is_empty() {
            // Every match has at least one entry: fewer entries than matches cannot suffice.
            assert_eq!(
                db.search_ids_bounded("Patient", name, &both, union.len() - 1)
                    .unwrap(),
                None
            );
        }
    }
    assert!(
        nonzero > 100,
        "the walk exercises non-empty counts: {nonzero}"
    );
}

#[tokio::test]
async fn pre_indexed_resources_are_not_indexed_again_and_not_kept() {
    let node = node().await;
    let via = param_hash("via");
    let by = |db: &flint_db::Db, how: &[u8]| {
        ids(db
            .search("Patient", via, &ValueMatch::Exact(how.to_vec()))
            .unwrap())
    };
    // Written with its parsed form: the indexer takes the entries computed from it.
    let body = r#"{"name":"alice"}"#;
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let h = ContentHash::of(body.as_bytes());
    node.transact_parsed(
        vec![TxCmd::new(TxOp::Put, "Patient", "a", Some(h))],
        vec![(h, Bytes::from(body))],
        [(h, "Patient", &v)],
    )
    .await
    .unwrap();
    let db = node.db();
    assert_eq!(by(&db, b"json"), vec!["a"]);
    assert_eq!(by(&db, b"bytes"), Vec::<String>::new());
    assert_eq!(node.pre_indexed_len(), 0);
    // A rejected transaction (create of an existing id) uses up its pre-indexed entries too:
    // the same content written again without them is indexed from its bytes.
    let body2 = r#"{"name":"bob"}"#;
    let v2: serde_json::Value = serde_json::from_str(body2).unwrap();
    let h2 = ContentHash::of(body2.as_bytes());
    let rejected = node
        .transact_parsed(
            vec![TxCmd::new(TxOp::Create, "Patient", "a", Some(h2))],
            vec![(h2, Bytes::from(body2))],
            [(h2, "Patient", &v2)],
        )
        .await;
    assert!(rejected.is_err());
    assert_eq!(node.pre_indexed_len(), 0);
    put(&node, "b", body2).await;
    let db = node.db();
    assert_eq!(by(&db, b"bytes"), vec!["b"]);
    assert_eq!(by(&db, b"json"), vec!["a"]);
    // A write whose future is dropped before it completes (a client gone) leaves nothing
    // behind either.
    let body3 = r#"{"name":"carol"}"#;
    let v3: serde_json::Value = serde_json::from_str(body3).unwrap();
    let h3 = ContentHash::of(body3.as_bytes());
    {
        let fut = node.transact_parsed(
            vec![TxCmd::new(TxOp::Put, "Patient", "c", Some(h3))],
            vec![(h3, Bytes::from(body3))],
            [(h3, "Patient", &v3)],
        );
        let mut fut = std::pin::pin!(fut);
        // Polled once: the entries are computed and registered, then the future is dropped.
        let polled = futures_poll_once(fut.as_mut()).await;
        assert!(polled.is_none(), "the write should still be pending");
    }
    assert_eq!(node.pre_indexed_len(), 0);
}

/// Polls `fut` once; `Some` with its output when it completed.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// Compartment searches build their hits' handles from the entries' stored versions when the
/// resource did not change after `t`: at every `t` of a random walk of updates (to other
/// content and back to earlier content, identical re-writes, deletions and re-creations) they
/// return exactly the versions a read at that `t` returns for the matching resources.
#[tokio::test]
async fn compartment_search_handles_are_the_versions_current_at_every_t() {
    let node = node().await;
    let (subjects, codes) = (["s1", "s2"], ["a", "b"]);
    let mut ts = vec![0];
    let mut x: u64 = 987;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    for _ in 0..300 {
        let id = format!("o{}", next(6));
        let cmd = if next(6) == 0 {
            (TxCmd::new(TxOp::Delete, "Observation", &id, None), None)
        } else {
            let body = format!(
                r#"{{"subject":"{}","code":"{}"}}"#,
                subjects[next(2) as usize],
                codes[next(2) as usize]
            );
            let h = ContentHash::of(body.as_bytes());
            (
                TxCmd::new(TxOp::Put, "Observation", &id, Some(h)),
                Some((h, Bytes::from(body))),
            )
        };
        if let Ok(o) = node
            .transact(vec![cmd.0], cmd.1.into_iter().collect())
            .await
        {
            ts.push(o.t);
        }
    }
    let latest = node.db();
    let yes = |_: &[u8]| true;
    let mut found = 0;
    for &t in &ts {
        let db = latest.as_of(t);
        for s in subjects {
            for c in codes {
                let m = ValueMatch::Exact(c.as_bytes().to_vec());
                let got = db
                    .compartment_search_handles(
                        ("Patient", s),
                        "Observation",
                        param_hash("code"),
                        &[(&m, &yes)],
                    )
                    .unwrap();
                let mut expected = Vec::new();
                for i in 0..6 {
                    let Some(h) = db.resource("Observation", &format!("o{i}")).unwrap() else {
                        continue;
                    };
                    if h.is_deleted() {
                        continue;
                    }
                    let body: serde_json::Value =
                        serde_json::from_slice(&db.pull(&h).await.unwrap()).unwrap();
                    if body["subject"] == s && body["code"] == c {
                        expected.push(h);
                    }
                }
                found += expected.len();
                assert_eq!(got, expected, "Patient/{s} code {c} at t={t}");
            }
        }
    }
    assert!(found > 300, "the walk exercises non-empty results: {found}");
}

/// Conditional writes carry their search to the indexer, which evaluates it at the database
/// before each transaction: of two creates decided against the same older database value
/// (both saw no match), only the first creates; the second is rejected with a conflict, and
/// an update of the matching resource itself passes its own condition.
#[tokio::test]
async fn conditional_writes_are_checked_again_in_log_order() {
    let node = node().await;
    let conditional = |id: &str, body: &str| {
        let h = ContentHash::of(body.as_bytes());
        let mut c = TxCmd::new(TxOp::Create, "Patient", id, Some(h));
        c.condition = Some(r#"[["name","ann"]]"#.to_string());
        (c, (h, Bytes::from(body.to_string())))
    };
    let (a, ca) = conditional("a", r#"{"name":"ann","n":1}"#);
    let (b, cb) = conditional("b", r#"{"name":"ann","n":2}"#);
    let (first, second) = tokio::join!(
        node.transact(vec![a], vec![ca]),
        node.transact(vec![b], vec![cb])
    );
    let outcomes = [first, second];
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    let rejected = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert_eq!(rejected.kind, flint_db::ErrorKind::Conflict, "{rejected}");
    let db = node.db();
    let anns = ids(db
        .search(
            "Patient",
            param_hash("name"),
            &ValueMatch::Exact(b"ann".to_vec()),
        )
        .unwrap());
    assert_eq!(anns.len(), 1, "exactly one ann: {anns:?}");
    // The match may be updated under the same condition (it matches only itself).
    let (mut u, cu) = conditional(&anns[0], r#"{"name":"ann","n":3}"#);
    u.op = TxOp::Put;
    node.transact(vec![u], vec![cu]).await.unwrap();
    // Another resource's conditional update is refused while `ann` exists.
    let (mut other, co) = conditional("c", r#"{"name":"ann","n":4}"#);
    other.op = TxOp::Put;
    let e = node.transact(vec![other], vec![co]).await.unwrap_err();
    assert_eq!(e.kind, flint_db::ErrorKind::Conflict);
    assert!(node.db().resource("Patient", "c").unwrap().is_none());
}

/// A conditional delete carries its search on one of its delete commands: the indexer lets
/// it through only when the transaction deletes every current match, so a match created
/// after the REST layer evaluated the condition rejects it (409) and nothing is deleted.
#[tokio::test]
async fn conditional_deletes_must_delete_every_match_in_log_order() {
    let node = node().await;
    for (id, n) in [("a", 1), ("b", 2)] {
        let body = format!(r#"{{"name":"bob","n":{n}}}"#);
        let h = ContentHash::of(body.as_bytes());
        node.transact(
            vec![TxCmd::new(TxOp::Put, "Patient", id, Some(h))],
            vec![(h, Bytes::from(body))],
        )
        .await
        .unwrap();
    }
    let delete = |ids: &[&str]| {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let mut c = TxCmd::new(TxOp::Delete, "Patient", id, None);
                if i == 0 {
                    c.condition = Some(r#"[["name","bob"]]"#.to_string());
                }
                c
            })
            .collect::<Vec<_>>()
    };
    // Decided when only `a` matched; `b` matches by now.
    let e = node.transact(delete(&["a"]), vec![]).await.unwrap_err();
    assert_eq!(e.kind, flint_db::ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("Patient/b"), "{e}");
    let live = |id: &str| {
        node.db()
            .resource("Patient", id)
            .unwrap()
            .is_some_and(|h| !h.is_deleted())
    };
    assert!(live("a") && live("b"), "nothing deleted");
    // Deleting every match passes (the condition on the first command covers the others).
    node.transact(delete(&["b", "a"]), vec![]).await.unwrap();
    assert!(!live("a") && !live("b"));
    // With no match left, a conditional delete of an unrelated id passes too.
    node.transact(delete(&["zzz"]), vec![]).await.unwrap();
}
