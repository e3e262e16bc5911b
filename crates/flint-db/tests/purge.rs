//! Purges and history deletions: log commands every node's indexer applies in log order. After
//! one, no read path of the database shows the removed versions (at the new `t` nor at older
//! ones), the statistics follow, the contents leave the resource store once no older database
//! value is alive, an index rebuilt from the log reaches the same rows, and storage faults are
//! retried, never half-applied.

use bytes::Bytes;
use flint_db::codec::{param_hash, tid};
use flint_db::fault::{Faults, FaultyKv, FaultyStore, Op};
use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::search::ValueScan;
use flint_db::{
    Cf, CompartmentEntry, ContentHash, Db, ErrorKind, Indexed, KvStore, Node, NodeConfig,
    ResourceIndexer, ResourceStore, TxCmd, TxLog, TxOp, ValueMatch,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// Indexes `code` and `subject` of JSON objects (the value blob is the content itself) and
/// the `code` again under the Patient compartment of `subject`.
struct Toy;

fn entries_of(v: &Value) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    for p in ["code", "subject"] {
        if let Some(s) = v[p].as_str() {
            out.push((param_hash(p), s.as_bytes().to_vec()));
        }
    }
    out
}

fn compartment_of(v: &Value) -> Vec<CompartmentEntry> {
    match (v["subject"].as_str(), v["code"].as_str()) {
        (Some(s), Some(c)) => vec![CompartmentEntry {
            compartment_tid: tid("Patient"),
            compartment_id: s.to_string(),
            param: param_hash("code"),
            value: c.as_bytes().to_vec(),
        }],
        _ => Vec::new(),
    }
}

impl ResourceIndexer for Toy {
    fn index(&self, _type_name: &str, content: &[u8]) -> flint_db::error::Result<Indexed> {
        let v: Value =
            serde_json::from_slice(content).map_err(|e| flint_db::DbError::fault(e.to_string()))?;
        Ok(Indexed {
            entries: entries_of(&v),
            values: content.to_vec(),
            compartment_entries: compartment_of(&v),
        })
    }

    fn entries_of_values(&self, values: &[u8]) -> Vec<flint_db::IndexEntry> {
        serde_json::from_slice(values)
            .map(|v: Value| entries_of(&v))
            .unwrap_or_default()
    }

    fn compartment_entries_of_values(&self, _ty: &str, values: &[u8]) -> Vec<CompartmentEntry> {
        serde_json::from_slice(values)
            .map(|v: Value| compartment_of(&v))
            .unwrap_or_default()
    }
}

struct Fixture {
    node: Node,
    kv: Arc<MemKv>,
    log: Arc<MemLog>,
    store: Arc<MemStore>,
}

async fn start(kv: Arc<dyn KvStore>, log: Arc<MemLog>, store: Arc<dyn ResourceStore>) -> Node {
    Node::start(
        kv,
        log,
        store,
        NodeConfig {
            resource_indexer: Some(Arc::new(Toy)),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap()
}

async fn fixture() -> Fixture {
    let (kv, log, store) = (
        Arc::new(MemKv::new()),
        Arc::new(MemLog::new()),
        Arc::new(MemStore::new()),
    );
    let node = start(kv.clone(), log.clone(), store.clone()).await;
    Fixture {
        node,
        kv,
        log,
        store,
    }
}

fn content(v: &Value) -> (ContentHash, Bytes) {
    let b = Bytes::from(serde_json::to_vec(v).unwrap());
    (ContentHash::of(&b), b)
}

/// Writes `v` (with `resourceType` and `id`) as a put recording `refs`; its content hash.
async fn put(node: &Node, v: &Value, refs: &[(&str, &str)]) -> ContentHash {
    let (h, b) = content(v);
    let mut cmd = TxCmd::new(
        TxOp::Put,
        v["resourceType"].as_str().unwrap(),
        v["id"].as_str().unwrap(),
        Some(h),
    );
    cmd.refs = refs
        .iter()
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .collect();
    node.transact(vec![cmd], vec![(h, b)]).await.unwrap();
    h
}

async fn delete(node: &Node, ty: &str, id: &str) {
    node.transact(vec![TxCmd::new(TxOp::Delete, ty, id, None)], vec![])
        .await
        .unwrap();
}

fn purge_cmd(ty: &str, id: &str, refs: &[(&str, &str)]) -> TxCmd {
    let mut c = TxCmd::new(TxOp::Purge, ty, id, None);
    c.refs = refs
        .iter()
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .collect();
    c
}

fn exact(v: &str) -> ValueMatch {
    ValueMatch::Exact(v.as_bytes().to_vec())
}

fn accept_all(_: &[u8]) -> bool {
    true
}

/// Every way the database shows resources of `ty`: `(id, t)` of each, sorted.
fn everything_of(db: &Db, ty: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = db
        .type_history(ty, None, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|h| (h.id, h.t))
        .collect();
    out.extend(
        db.system_history(None, 0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|h| h.type_name == ty)
            .map(|h| (h.id, h.t)),
    );
    out.extend(
        db.type_list(ty, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|h| (h.id, h.t)),
    );
    out.sort();
    out.dedup();
    out
}

/// The ids a search for `param=value` on `ty` finds, with the count agreeing.
fn search(db: &Db, ty: &str, param: &str, value: &str) -> Vec<String> {
    let m = exact(value);
    let scans: [ValueScan<'_>; 1] = [(&m, &accept_all)];
    let ids: Vec<String> = db
        .search_ids(ty, param_hash(param), &scans)
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        db.count_search(ty, param_hash(param), &scans).unwrap(),
        ids.len(),
        "the count of {ty}?{param}={value} agrees with the search at t = {}",
        db.t()
    );
    ids
}

fn compartment_search(db: &Db, patient: &str, code: &str) -> Vec<String> {
    let m = exact(code);
    let scans: [ValueScan<'_>; 1] = [(&m, &accept_all)];
    db.compartment_search_ids(
        ("Patient", patient),
        "Observation",
        param_hash("code"),
        &scans,
    )
    .unwrap()
    .iter()
    .map(str::to_string)
    .collect()
}

/// Every row of every column family but the transaction markers' neighbours, for comparing
/// two indexes.
fn rows(kv: &dyn KvStore) -> Vec<(usize, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, cf) in Cf::ALL.iter().enumerate() {
        flint_db::kv::scan_prefix(kv, *cf, &[], &[], |k, v| {
            out.push((i, k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    }
    out
}

fn referenced_by(kv: &dyn KvStore, ty: &str, id: &str) -> usize {
    let prefix = flint_db::codec::resource_prefix(tid(ty), id);
    let mut n = 0;
    flint_db::kv::scan_prefix(kv, Cf::ReferencedBy, &prefix, &prefix, |_, _| {
        n += 1;
        true
    })
    .unwrap();
    n
}

fn obs(id: &str, subject: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "subject": subject, "code": code})
}

/// Two patients with observations and histories: p1 (to purge) and p2 (to keep).
async fn two_patients(node: &Node) -> (Vec<ContentHash>, Vec<ContentHash>) {
    let patient = |id: &str, code: &str| json!({"resourceType": "Patient", "id": id, "code": code});
    // In write order: each version, the patient it references, and whether the purge of p1
    // removes it; o2 is deleted after these.
    let versions = [
        (patient("p1", "a"), None, true),
        (patient("p1", "b"), None, true),
        (patient("p2", "a"), None, false),
        (obs("o1", "p1", "x"), Some("p1"), true),
        (obs("o1", "p1", "y"), Some("p1"), true),
        (obs("o2", "p1", "x"), Some("p1"), true),
    ];
    let (mut gone, mut kept) = (Vec::new(), Vec::new());
    for (v, subject, purged) in &versions {
        let refs: Vec<(&str, &str)> = subject.iter().map(|s| ("Patient", *s)).collect();
        let h = put(node, v, &refs).await;
        if *purged { gone.push(h) } else { kept.push(h) }
    }
    delete(node, "Observation", "o2").await;
    kept.push(put(node, &obs("o3", "p2", "x"), &[("Patient", "p2")]).await);
    (gone, kept)
}

fn purge_p1() -> Vec<TxCmd> {
    vec![
        purge_cmd("Patient", "p1", &[]),
        purge_cmd("Observation", "o1", &[("Patient", "p1")]),
        purge_cmd("Observation", "o2", &[("Patient", "p1")]),
    ]
}

#[tokio::test]
async fn a_purge_removes_every_version_from_every_read_path_and_then_the_store() {
    let f = fixture().await;
    let (gone, kept) = two_patients(&f.node).await;
    let before = f.node.db();
    assert_eq!(search(&before, "Observation", "code", "x"), ["o3"]);
    assert_eq!(compartment_search(&before, "p1", "y"), ["o1"]);
    assert_eq!(referenced_by(&*f.kv, "Patient", "p1"), 2);
    let (total, changes) = (
        before.type_total("Observation").unwrap(),
        before.type_changes("Observation").unwrap(),
    );
    let (sys_total, sys_changes) = (
        before.system_total().unwrap(),
        before.system_changes().unwrap(),
    );
    let old_t = before.t();
    drop(before);

    let out = f.node.transact(purge_p1(), vec![]).await.unwrap();
    let db = out.db.clone();
    drop(out);
    for db in [db.clone(), db.as_of(old_t), db.as_of(3)] {
        let t = db.t();
        for (ty, id) in [
            ("Patient", "p1"),
            ("Observation", "o1"),
            ("Observation", "o2"),
        ] {
            assert_eq!(db.resource(ty, id).unwrap(), None, "{ty}/{id} at t = {t}");
            for vt in 1..=t {
                assert_eq!(db.version(ty, id, vt).unwrap(), None, "{ty}/{id}/{vt}");
            }
            assert!(
                db.instance_history(ty, id, None, 0, usize::MAX)
                    .unwrap()
                    .is_empty()
            );
        }
        for (ty, shown) in [
            ("Patient", "p1"),
            ("Observation", "o1"),
            ("Observation", "o2"),
        ] {
            assert!(
                everything_of(&db, ty).iter().all(|(id, _)| id != shown),
                "{ty}/{shown} at t = {t}"
            );
        }
        assert!(search(&db, "Observation", "subject", "p1").is_empty());
        assert!(search(&db, "Patient", "code", "b").is_empty());
        assert!(compartment_search(&db, "p1", "x").is_empty());
        assert!(compartment_search(&db, "p1", "y").is_empty());
    }
    // Everything of p2 is still there.
    assert_eq!(search(&db, "Observation", "code", "x"), ["o3"]);
    assert_eq!(search(&db, "Patient", "code", "a"), ["p2"]);
    assert_eq!(compartment_search(&db, "p2", "x"), ["o3"]);
    assert_eq!(
        everything_of(&db, "Observation")
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
        ["o3"]
    );
    // Statistics: one live Observation (o1) and five versions fewer in all.
    assert_eq!(db.type_total("Observation").unwrap(), total - 1);
    assert_eq!(db.type_changes("Observation").unwrap(), changes - 4);
    assert_eq!(db.type_total("Patient").unwrap(), 1);
    assert_eq!(db.type_changes("Patient").unwrap(), 1);
    assert_eq!(db.system_total().unwrap(), sys_total - 2);
    assert_eq!(db.system_changes().unwrap(), sys_changes - 6);
    assert_eq!(referenced_by(&*f.kv, "Patient", "p1"), 0);
    assert_eq!(referenced_by(&*f.kv, "Patient", "p2"), 1);
    drop(db);

    // The contents go once no older database value is alive.
    assert_eq!(f.node.erase_unreferenced().await.unwrap(), 0);
    for h in &gone {
        assert_eq!(
            f.store.get(h).await.unwrap().as_deref(),
            Some(&b""[..]),
            "content {h:?} erased"
        );
    }
    for h in &kept {
        assert!(!f.store.get(h).await.unwrap().unwrap().is_empty());
    }
    // Writing p1 again starts a new resource.
    put(
        &f.node,
        &json!({"resourceType": "Patient", "id": "p1", "code": "c"}),
        &[],
    )
    .await;
    let h = f.node.db().resource("Patient", "p1").unwrap().unwrap();
    assert_eq!(h.num_changes, 1);
    assert_eq!(search(&f.node.db(), "Patient", "code", "c"), ["p1"]);
}

#[tokio::test]
async fn contents_stay_while_an_older_database_value_is_alive() {
    let f = fixture().await;
    let (gone, _) = two_patients(&f.node).await;
    let old = f.node.db();
    let handle = old.resource("Observation", "o1").unwrap().unwrap();
    let copy = old.clone();
    f.node.transact(purge_p1(), vec![]).await.unwrap();
    assert!(f.node.erase_unreferenced().await.unwrap() > 0);
    assert!(f.node.pending_erasures() > 0);
    // A read that began before the purge still gets its content, and knows the version is
    // gone from the index (a cached search result leaves it out).
    let bytes = copy.pull(&handle).await.unwrap();
    assert!(copy.removals_after());
    assert!(
        copy.still_indexed(std::slice::from_ref(&handle))
            .unwrap()
            .is_empty()
    );
    let o3 = copy.resource("Observation", "o3").unwrap().unwrap();
    assert_eq!(
        copy.still_indexed(&[handle.clone(), o3.clone()]).unwrap(),
        [o3]
    );
    assert!(!f.node.db().removals_after());
    assert_eq!(ContentHash::of(&bytes), handle.hash);
    drop(old);
    assert!(
        f.node.erase_unreferenced().await.unwrap() > 0,
        "a clone is alive"
    );
    drop(copy);
    assert_eq!(f.node.erase_unreferenced().await.unwrap(), 0);
    for h in &gone {
        assert_eq!(f.store.get(h).await.unwrap().as_deref(), Some(&b""[..]));
    }
    // A handle read before the purge now meets an erased content: 404, never a 500.
    let e = f.node.db().pull(&handle).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn a_purge_of_a_referenced_resource_is_refused_when_references_are_checked() {
    let f = fixture().await;
    two_patients(&f.node).await;
    put(
        &f.node,
        &json!({"resourceType": "Group", "id": "g", "member": "p1"}),
        &[("Patient", "p1")],
    )
    .await;
    let mut cmds = purge_p1();
    for c in &mut cmds {
        c.check_refs = true;
    }
    let e = f.node.transact(cmds.clone(), vec![]).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("Group/g"), "{}", e.message);
    let db = f.node.db();
    assert!(db.resource("Patient", "p1").unwrap().is_some());
    assert_eq!(f.node.pending_erasures(), 0);
    // References among the purged resources themselves are no obstacle, nor a deleted
    // referrer.
    delete(&f.node, "Group", "g").await;
    f.node.transact(cmds, vec![]).await.unwrap();
    assert!(f.node.db().resource("Patient", "p1").unwrap().is_none());
}

#[tokio::test]
async fn a_history_deletion_keeps_only_the_current_version() {
    let f = fixture().await;
    let a = obs("o", "p", "a");
    let ha = put(&f.node, &a, &[]).await;
    let hb = put(&f.node, &obs("o", "p", "b"), &[]).await;
    put(&f.node, &a, &[]).await; // back to a: a's content is current again
    let hc = put(&f.node, &obs("o", "p", "c"), &[]).await;
    let hd = put(&f.node, &obs("o", "p", "d"), &[]).await;
    let other = put(&f.node, &obs("q", "p", "b"), &[]).await;
    let before = f.node.db();
    let current = before.resource("Observation", "o").unwrap().unwrap();
    let changes = before.type_changes("Observation").unwrap();
    let old_versions: Vec<u64> = before
        .instance_history("Observation", "o", None, 0, usize::MAX)
        .unwrap()
        .iter()
        .map(|h| h.t)
        .filter(|t| *t != current.t)
        .collect();
    assert_eq!(old_versions.len(), 4);
    drop(before);

    f.node
        .transact(
            vec![TxCmd::new(TxOp::DeleteHistory, "Observation", "o", None)],
            vec![],
        )
        .await
        .unwrap();
    let db = f.node.db();
    let history = db
        .instance_history("Observation", "o", None, 0, usize::MAX)
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].t, history[0].hash, history[0].num_changes),
        (current.t, hd, 1)
    );
    assert_eq!(
        db.resource("Observation", "o").unwrap(),
        Some(history[0].clone())
    );
    for vt in &old_versions {
        assert_eq!(db.version("Observation", "o", *vt).unwrap(), None);
        assert_eq!(db.as_of(*vt).resource("Observation", "o").unwrap(), None);
    }
    assert_eq!(db.type_changes("Observation").unwrap(), changes - 4);
    assert_eq!(db.type_total("Observation").unwrap(), 2);
    let type_history: Vec<u64> = db
        .type_history("Observation", None, 0, usize::MAX)
        .unwrap()
        .iter()
        .filter(|h| h.id == "o")
        .map(|h| h.t)
        .collect();
    assert_eq!(type_history, [current.t]);
    assert_eq!(search(&db, "Observation", "code", "d"), ["o"]);
    assert_eq!(search(&db, "Observation", "code", "b"), ["q"]);
    assert!(search(&db, "Observation", "code", "a").is_empty());
    assert_eq!(compartment_search(&db, "p", "d"), ["o"]);
    assert!(compartment_search(&db, "p", "c").is_empty());
    drop(db);
    assert_eq!(f.node.erase_unreferenced().await.unwrap(), 0);
    for h in [ha, hb, hc] {
        assert_eq!(f.store.get(&h).await.unwrap().as_deref(), Some(&b""[..]));
    }
    for h in [hd, other] {
        assert!(!f.store.get(&h).await.unwrap().unwrap().is_empty());
    }
    // The next update counts on from the one version left.
    put(&f.node, &obs("o", "p", "e"), &[]).await;
    let h = f.node.db().resource("Observation", "o").unwrap().unwrap();
    assert_eq!(h.num_changes, 2);
    // A history deletion of a deleted resource keeps the deletion (410 on read).
    delete(&f.node, "Observation", "o").await;
    f.node
        .transact(
            vec![TxCmd::new(TxOp::DeleteHistory, "Observation", "o", None)],
            vec![],
        )
        .await
        .unwrap();
    let history = f
        .node
        .db()
        .instance_history("Observation", "o", None, 0, usize::MAX)
        .unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].is_deleted());
    assert!(search(&f.node.db(), "Observation", "code", "e").is_empty());
}

#[tokio::test]
async fn an_index_rebuilt_from_the_log_after_the_erasure_has_the_same_rows() {
    let f = fixture().await;
    two_patients(&f.node).await;
    f.node.transact(purge_p1(), vec![]).await.unwrap();
    put(&f.node, &obs("o3", "p2", "z"), &[("Patient", "p2")]).await;
    f.node
        .transact(
            vec![TxCmd::new(TxOp::DeleteHistory, "Observation", "o3", None)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(f.node.erase_unreferenced().await.unwrap(), 0);
    let last = f.log.last_t().await.unwrap();
    // A second node (or this one after its index was deleted) replays the whole log, meeting
    // contents erased by the later purge: it indexes them without waiting for them.
    let kv2 = Arc::new(MemKv::new());
    let node2 = start(kv2.clone(), f.log.clone(), f.store.clone()).await;
    node2.sync_to(last).await.unwrap();
    assert_eq!(node2.erase_unreferenced().await.unwrap(), 0);
    assert_eq!(rows(&*kv2), rows(&*f.kv), "both indexes hold the same rows");
}

#[tokio::test]
async fn faults_while_purging_are_retried_and_never_half_applied() {
    let faults = Faults::new();
    let (kv, log, store) = (
        Arc::new(MemKv::new()),
        Arc::new(MemLog::new()),
        Arc::new(MemStore::new()),
    );
    let node = start(
        Arc::new(FaultyKv::new(kv.clone(), faults.clone())),
        log.clone(),
        Arc::new(FaultyStore::new(store.clone(), faults.clone())),
    )
    .await;
    let (gone, _) = two_patients(&node).await;
    let before = rows(&*kv);
    // Keeps the indexer from erasing the contents right after the purge.
    let hold = node.db();
    // The indexer's reads of the purged versions fail twice, then its write once: nothing
    // is written until an attempt succeeds, and the write waits for it.
    faults.fail(
        |op| matches!(op, Op::Seek(Cf::ResourceAsOf) | Op::Write),
        0,
        3,
    );
    let t = log.submit(purge_p1()).await.unwrap();
    let db = node.sync_to(t).await.unwrap();
    assert!(faults.injected() >= 3);
    assert_ne!(rows(&*kv), before);
    assert!(db.resource("Patient", "p1").unwrap().is_none());
    assert!(search(&db, "Observation", "subject", "p1").is_empty());
    drop(db);
    assert!(node.pending_erasures() > 0);
    drop(hold);
    // A failed erasure stays pending and is retried.
    faults.fail(|op| op == Op::StoreDelete, 0, u64::MAX);
    assert!(node.erase_unreferenced().await.is_err());
    assert!(node.pending_erasures() > 0);
    for h in &gone {
        assert!(!store.get(h).await.unwrap().unwrap().is_empty());
    }
    faults.heal();
    assert_eq!(node.erase_unreferenced().await.unwrap(), 0);
    for h in &gone {
        assert_eq!(store.get(h).await.unwrap().as_deref(), Some(&b""[..]));
    }
}
