//! The resource store of the distributed variant: Apache Cassandra table
//! `resources (hash text PRIMARY KEY, content blob)` (Blaze's schema), keyed by the hex
//! content hash. Writes use the configured consistency (`DB_CASSANDRA_PUT_CONSISTENCY_LEVEL`);
//! reads use ONE and retry a miss with QUORUM, since a value written at a lower level may not
//! yet be on the replica asked first. Timeouts and unavailability are 503s.

use async_trait::async_trait;
use bytes::Bytes;
use flint_storage::ContentHash;
use flint_storage::error::{DbError, Result};
use flint_storage::store::ResourceStore;
use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use std::time::Duration;

/// Connection settings (Blaze's `DB_CASSANDRA_*` variables).
#[derive(Debug, Clone)]
pub struct CassandraConfig {
    /// `DB_CASSANDRA_CONTACT_POINTS`: `host:port` list.
    pub contact_points: Vec<String>,
    /// `DB_CASSANDRA_USERNAME`.
    pub username: String,
    /// `DB_CASSANDRA_PASSWORD`.
    pub password: String,
    /// `DB_CASSANDRA_KEY_SPACE`.
    pub keyspace: String,
    /// `DB_CASSANDRA_PUT_CONSISTENCY_LEVEL` (ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, ...).
    pub put_consistency: String,
    /// `DB_CASSANDRA_REQUEST_TIMEOUT`.
    pub request_timeout: Duration,
    /// `DB_CASSANDRA_MAX_CONCURRENT_REQUESTS`: requests in flight at once; more wait in a queue.
    pub max_concurrent_requests: usize,
    /// `DB_CASSANDRA_MAX_REQUEST_QUEUE_SIZE`: requests waiting for a slot; more get a 503.
    pub max_request_queue_size: usize,
}

/// Parses a consistency level name.
pub fn parse_consistency(s: &str) -> Option<Consistency> {
    Some(match s.to_ascii_uppercase().as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        _ => return None,
    })
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> DbError {
    DbError::unavailable(format!("Cassandra {what}: {e}"))
}

/// The Cassandra resource store.
pub struct CassandraStore {
    session: Session,
    keyspace: String,
    put: PreparedStatement,
    get_one: PreparedStatement,
    get_quorum: PreparedStatement,
    /// Slots for concurrent requests (`DB_CASSANDRA_MAX_CONCURRENT_REQUESTS`).
    slots: tokio::sync::Semaphore,
    /// Requests running or waiting for a slot.
    queued: std::sync::atomic::AtomicUsize,
    max_queued: usize,
    request_timeout: Duration,
}

/// Releases a request's place in the queue.
struct Queued<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl CassandraStore {
    /// Connects and prepares the statements; the keyspace and table must exist.
    pub async fn open(config: &CassandraConfig) -> Result<Self> {
        let put_consistency = parse_consistency(&config.put_consistency).ok_or_else(|| {
            DbError::fault(format!(
                "invalid DB_CASSANDRA_PUT_CONSISTENCY_LEVEL `{}`",
                config.put_consistency
            ))
        })?;
        let session = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .user(&config.username, &config.password)
            .connection_timeout(config.request_timeout)
            // A heartbeat every 2 s; a connection silent for longer than a request may take
            // is closed and re-opened, so a node recovers within seconds of a network
            // partition healing rather than waiting out TCP retransmission back-off.
            .keepalive_interval(Duration::from_secs(2))
            .keepalive_timeout(config.request_timeout.max(Duration::from_secs(2)))
            .build()
            .await
            .map_err(|e| unavailable("connect", e))?;
        let ks = &config.keyspace;
        let prepare = |cql: String, c: Consistency| {
            let session = &session;
            let timeout = config.request_timeout;
            async move {
                let mut p = session
                    .prepare(cql)
                    .await
                    .map_err(|e| unavailable("prepare", e))?;
                p.set_consistency(c);
                p.set_request_timeout(Some(timeout));
                Ok::<_, DbError>(p)
            }
        };
        let put = prepare(
            format!("INSERT INTO {ks}.resources (hash, content) VALUES (?, ?)"),
            put_consistency,
        )
        .await?;
        let select = format!("SELECT content FROM {ks}.resources WHERE hash = ?");
        let get_one = prepare(select.clone(), Consistency::One).await?;
        let get_quorum = prepare(select, Consistency::Quorum).await?;
        Ok(CassandraStore {
            session,
            keyspace: ks.clone(),
            put,
            get_one,
            get_quorum,
            slots: tokio::sync::Semaphore::new(config.max_concurrent_requests.max(1)),
            queued: std::sync::atomic::AtomicUsize::new(0),
            max_queued: config.max_concurrent_requests + config.max_request_queue_size,
            request_timeout: config.request_timeout,
        })
    }

    /// Runs one request within the concurrency limit, timing it (`request` names the metric
    /// label); a full queue is a 503.
    async fn limited<F: std::future::Future<Output = Result<R>>, R>(
        &self,
        request: &'static str,
        f: F,
    ) -> Result<R> {
        use std::sync::atomic::Ordering;
        let n = self.queued.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(&self.queued);
        if n >= self.max_queued {
            return Err(DbError::unavailable(
                "too many Cassandra requests queued (DB_CASSANDRA_MAX_REQUEST_QUEUE_SIZE)",
            ));
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| unavailable("request slot", e))?;
        let started = std::time::Instant::now();
        let result = f.await;
        metrics::histogram!("flint_cassandra_request_duration_seconds", "request" => request)
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("flint_cassandra_request_errors_total", "request" => request)
                .increment(1);
        }
        result
    }

    /// A 32-byte secret shared by every node of the deployment, kept in the `clauses` table
    /// under `name`: the first node to ask creates it (a lightweight transaction), every later
    /// one reads the same value. Used for the page-link key when `PAGE_SECRET` is unset.
    pub async fn shared_secret(&self, name: &str, fresh: [u8; 32]) -> Result<[u8; 32]> {
        let ks = &self.keyspace;
        let mut insert = scylla::statement::unprepared::Statement::new(format!(
            "INSERT INTO {ks}.clauses (\"token\", content) VALUES (?, ?) IF NOT EXISTS"
        ));
        insert.set_consistency(Consistency::Quorum);
        insert.set_request_timeout(Some(self.request_timeout));
        self.session
            .query_unpaged(insert, (name, fresh.as_slice()))
            .await
            .map_err(|e| unavailable("create shared secret", e))?;
        let mut select = scylla::statement::unprepared::Statement::new(format!(
            "SELECT content FROM {ks}.clauses WHERE \"token\" = ?"
        ));
        select.set_consistency(Consistency::Serial);
        select.set_request_timeout(Some(self.request_timeout));
        let rows = self
            .session
            .query_unpaged(select, (name,))
            .await
            .map_err(|e| unavailable("read shared secret", e))?
            .into_rows_result()
            .map_err(|e| unavailable("read shared secret", e))?;
        let row: Option<(Vec<u8>,)> = rows
            .maybe_first_row()
            .map_err(|e| unavailable("read shared secret", e))?;
        row.and_then(|(b,)| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| {
                DbError::fault(format!("shared secret `{name}` is missing or malformed"))
            })
    }

    async fn get_with(
        &self,
        stmt: &PreparedStatement,
        hash: &ContentHash,
    ) -> Result<Option<Bytes>> {
        let result = self
            .limited("get", async {
                self.session
                    .execute_unpaged(stmt, (hash.to_hex(),))
                    .await
                    .map_err(|e| unavailable("read", e))
            })
            .await?;
        let rows = result
            .into_rows_result()
            .map_err(|e| unavailable("read", e))?;
        let row: Option<(Vec<u8>,)> = rows.maybe_first_row().map_err(|e| unavailable("read", e))?;
        Ok(row.map(|(b,)| Bytes::from(b)))
    }
}

#[async_trait]
impl ResourceStore for CassandraStore {
    async fn get(&self, hash: &ContentHash) -> Result<Option<Bytes>> {
        match self.get_with(&self.get_one, hash).await? {
            Some(b) => Ok(Some(b)),
            None => self.get_with(&self.get_quorum, hash).await,
        }
    }

    async fn multi_get(&self, hashes: &[ContentHash]) -> Result<Vec<Option<Bytes>>> {
        try_join_all(hashes.iter().map(|h| self.get(h))).await
    }

    async fn put(&self, entries: Vec<(ContentHash, Bytes)>) -> Result<()> {
        try_join_all(entries.iter().map(|(h, b)| {
            self.limited("put", async move {
                self.session
                    .execute_unpaged(&self.put, (h.to_hex(), b.as_ref()))
                    .await
                    .map_err(|e| unavailable("write", e))
            })
        }))
        .await?;
        Ok(())
    }

    /// Overwrites each content with the empty erased value (the insert of a put: a newer
    /// cell that replaces the bytes on every replica; Cassandra drops the old ones at
    /// compaction).
    async fn delete(&self, hashes: &[ContentHash]) -> Result<()> {
        try_join_all(hashes.iter().map(|h| {
            self.limited("delete", async move {
                self.session
                    .execute_unpaged(&self.put, (h.to_hex(), &[0u8; 0][..]))
                    .await
                    .map_err(|e| unavailable("delete", e))
            })
        }))
        .await?;
        Ok(())
    }
}
