//! The resource store of the distributed variant: Apache Cassandra table
//! `resources (hash text PRIMARY KEY, content blob)` (Blaze's schema), keyed by the hex
//! content hash. Writes use the configured consistency (`DB_CASSANDRA_PUT_CONSISTENCY_LEVEL`);
//! reads use ONE and retry a miss with QUORUM, since a value written at a lower level may not
//! yet be on the replica asked first. Timeouts and unavailability are 503s.

use async_trait::async_trait;
use bytes::Bytes;
use flint_db::ContentHash;
use flint_db::error::{DbError, Result};
use flint_db::store::ResourceStore;
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
    put: PreparedStatement,
    get_one: PreparedStatement,
    get_quorum: PreparedStatement,
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
            put,
            get_one,
            get_quorum,
        })
    }

    async fn get_with(
        &self,
        stmt: &PreparedStatement,
        hash: &ContentHash,
    ) -> Result<Option<Bytes>> {
        let result = self
            .session
            .execute_unpaged(stmt, (hash.to_hex(),))
            .await
            .map_err(|e| unavailable("read", e))?;
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
        try_join_all(entries.iter().map(|(h, b)| async move {
            self.session
                .execute_unpaged(&self.put, (h.to_hex(), b.as_ref()))
                .await
                .map_err(|e| unavailable("write", e))
        }))
        .await?;
        Ok(())
    }
}
