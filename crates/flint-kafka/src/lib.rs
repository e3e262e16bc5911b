//! The transaction log of the distributed variant: one Apache Kafka topic with a single
//! partition. A transaction is one record (the encoded commands); its `t` is the record's offset
//! plus one and its instant the broker's `LogAppendTime`, so every node sees the same `t` and
//! instant. The producer is idempotent with `acks=all`; consumers read `read_committed` from an
//! explicitly assigned partition and never commit offsets (a node's position is its index head).

use async_trait::async_trait;
use flint_storage::T;
use flint_storage::error::{DbError, Result};
use flint_storage::log::{TxCmd, TxEntry, TxLog, decode_cmds, encode_cmds};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

mod keystore;
pub use keystore::{KafkaSsl, SslMaterial};

/// Connection settings (Blaze's `DB_KAFKA_*` variables).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `DB_KAFKA_BOOTSTRAP_SERVERS`.
    pub bootstrap_servers: String,
    /// The transaction topic.
    pub topic: String,
    /// `DB_KAFKA_MAX_REQUEST_SIZE` in bytes.
    pub max_request_size: usize,
    /// `DB_KAFKA_COMPRESSION_TYPE`: none, gzip, snappy, lz4 or zstd.
    pub compression_type: String,
    /// `DB_KAFKA_SECURITY_PROTOCOL`: PLAINTEXT or SSL.
    pub security_protocol: String,
    /// The SSL files and passwords (`DB_KAFKA_SSL_*`), read at [`KafkaLog::open`].
    pub ssl: KafkaSsl,
    /// How long a produce may take before the write fails with 503.
    pub request_timeout: Duration,
    /// How long reading the log end may take (`DB_SYNC_TIMEOUT`: a read then answers 503).
    pub end_offset_timeout: Duration,
}

impl KafkaConfig {
    /// librdkafka's settings, with the SSL material read at start-up (`ssl.*.pem`).
    fn client(&self, ssl: &[(String, String)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set(
                "security.protocol",
                self.security_protocol.to_ascii_lowercase(),
            )
            // Fail requests on a silent connection after 10 s (librdkafka then reconnects)
            // and retry a lost broker at least every second, so a node recovers soon after
            // a broker restart or a partition heals.
            .set("socket.timeout.ms", "10000")
            .set("socket.keepalive.enable", "true")
            .set("reconnect.backoff.max.ms", "1000");
        for (k, v) in ssl {
            c.set(k, v);
        }
        c
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> DbError {
    DbError::unavailable(format!("Kafka {what}: {e}"))
}

/// The indexer's consumer and where it stands.
struct Reader {
    consumer: StreamConsumer,
    /// The offset the consumer will deliver next (`None`: assign before reading).
    next: Option<i64>,
    /// Since when polls have delivered nothing.
    quiet_since: std::time::Instant,
}

/// After this long without a record the consumer is re-assigned at its position: a cheap
/// guard against a fetcher that stopped after a broker restart.
const REASSIGN_AFTER: Duration = Duration::from_secs(5);

/// The Kafka transaction log.
pub struct KafkaLog {
    config: KafkaConfig,
    /// The SSL material as librdkafka properties (PEM strings, the key decrypted): read once.
    ssl: Arc<[(String, String)]>,
    /// The producer and its generation; replaced when librdkafka reports a fatal error.
    producer: parking_lot::RwLock<(FutureProducer, u64)>,
    consumer: Mutex<Reader>,
    watermarks: Arc<BaseConsumer>,
    /// Readers waiting for the log end; one request answers every reader queued before it
    /// started (see [`KafkaLog::last_t`]).
    end_waiters: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Result<T>>>,
}

/// Log-end requests in flight at once. One is best measured: concurrent watermark requests
/// on one librdkafka handle queue behind each other and split the readers into smaller
/// rounds (reads at 16 clients: 7,629/s with one round, 2,962/s with four).
const END_OFFSET_ROUNDS: usize = 1;

/// Answers log-end requests in rounds: takes every waiting reader, asks the broker once, and
/// gives all of them the answer. Every answer comes from a request that started after its
/// readers asked, so reads stay linearizable, and N concurrent reads cost one round trip
/// instead of N. Up to [`END_OFFSET_ROUNDS`] rounds run at once; readers arriving while all
/// are out join the next one.
async fn end_offset_rounds(
    consumer: Arc<BaseConsumer>,
    topic: String,
    timeout: Duration,
    mut waiters: tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<Result<T>>>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(END_OFFSET_ROUNDS));
    while let Some(first) = waiters.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut round = vec![first];
        while let Ok(w) = waiters.try_recv() {
            round.push(w);
        }
        let (c, t) = (consumer.clone(), topic.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            // A blocking librdkafka call: keep it off the async workers.
            let result =
                tokio::task::spawn_blocking(move || c.fetch_watermarks(&t, 0, timeout)).await;
            metrics::histogram!("flint_kafka_request_duration_seconds", "request" => "end_offset")
                .record(started.elapsed().as_secs_f64());
            let answer: Result<T> = match result {
                Ok(Ok((_, high))) => Ok(high.max(0) as T),
                Ok(Err(e)) => Err(err("end offset", e)),
                Err(e) => Err(err("end offset", e)),
            };
            for w in round {
                let _ = w.send(answer.clone());
            }
            drop(slot);
        });
    }
}

impl KafkaLog {
    /// Connects producer and consumers and checks the topic (one partition, `LogAppendTime`,
    /// unlimited retention); a misconfigured topic is an error that says what to fix.
    pub async fn open(config: KafkaConfig) -> Result<Self> {
        let ssl: Arc<[(String, String)]> = if config.security_protocol.eq_ignore_ascii_case("SSL") {
            config
                .ssl
                .load()
                .map_err(DbError::fault)?
                .properties()
                .into()
        } else {
            Arc::from([])
        };
        let producer = Self::producer(&config, &ssl)?;
        let consumer: StreamConsumer = Self::consumer_config(&config, &ssl)
            .create()
            .map_err(|e| err("consumer", e))?;
        let watermarks: Arc<BaseConsumer> = Arc::new(
            Self::consumer_config(&config, &ssl)
                .create()
                .map_err(|e| err("consumer", e))?,
        );
        let (end_waiters, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(end_offset_rounds(
            watermarks.clone(),
            config.topic.clone(),
            config.end_offset_timeout,
            rx,
        ));
        let log = KafkaLog {
            config,
            ssl,
            producer: parking_lot::RwLock::new((producer, 0)),
            consumer: Mutex::new(Reader {
                consumer,
                next: None,
                quiet_since: std::time::Instant::now(),
            }),
            watermarks,
            end_waiters,
        };
        log.check_topic().await?;
        Ok(log)
    }

    fn consumer_config(config: &KafkaConfig, ssl: &[(String, String)]) -> ClientConfig {
        let mut c = config.client(ssl);
        c.set("group.id", "flint-node")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set(
                "fetch.message.max.bytes",
                config.max_request_size.to_string(),
            );
        c
    }

    fn producer(config: &KafkaConfig, ssl: &[(String, String)]) -> Result<FutureProducer> {
        config
            .client(ssl)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &config.compression_type)
            .set("message.max.bytes", config.max_request_size.to_string())
            .set(
                "delivery.timeout.ms",
                config.request_timeout.as_millis().to_string(),
            )
            .create()
            .map_err(|e| err("producer", e))
    }

    /// Replaces the producer after a fatal librdkafka error (an idempotent producer that lost
    /// its sequence state cannot go on), unless another request already did.
    fn renew_producer(&self, generation: u64) {
        let mut guard = self.producer.write();
        if guard.1 != generation {
            return;
        }
        match Self::producer(&self.config, &self.ssl) {
            Ok(p) => {
                tracing::warn!("Kafka producer had a fatal error; replaced it");
                *guard = (p, generation + 1);
            }
            Err(e) => tracing::error!(error = %e, "cannot replace the Kafka producer"),
        }
    }

    async fn check_topic(&self) -> Result<()> {
        let topic = self.config.topic.clone();
        let md = self
            .watermarks
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(|e| err("metadata", e))?;
        let partitions = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        if partitions != 1 {
            return Err(DbError::fault(format!(
                "Kafka topic `{topic}` must exist with exactly one partition (found {partitions}); \
                 create it with --partitions 1 --config message.timestamp.type=LogAppendTime \
                 --config retention.ms=-1"
            )));
        }
        let admin: AdminClient<DefaultClientContext> = self
            .config
            .client(&self.ssl)
            .create()
            .map_err(|e| err("admin", e))?;
        let described = admin
            .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
            .await
            .map_err(|e| err("describe configs", e))?;
        for r in described.into_iter().flatten() {
            let get = |name: &str| r.get(name).and_then(|e| e.value.clone());
            if get("message.timestamp.type").as_deref() != Some("LogAppendTime") {
                return Err(DbError::fault(format!(
                    "Kafka topic `{topic}` must have message.timestamp.type=LogAppendTime \
                     (kafka-configs --alter --entity-type topics --entity-name {topic} \
                     --add-config message.timestamp.type=LogAppendTime)"
                )));
            }
            if get("retention.ms").as_deref() != Some("-1") {
                return Err(DbError::fault(format!(
                    "Kafka topic `{topic}` must keep records forever (retention.ms=-1): the log \
                     is the source every node's index is built from"
                )));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TxLog for KafkaLog {
    async fn submit(&self, cmds: Vec<TxCmd>) -> Result<T> {
        let payload = encode_cmds(&cmds);
        if payload.len() > self.config.max_request_size {
            return Err(DbError::new(
                flint_storage::ErrorKind::Unprocessable,
                format!(
                    "The transaction is {} bytes, more than DB_KAFKA_MAX_REQUEST_SIZE ({}); split it.",
                    payload.len(),
                    self.config.max_request_size
                ),
            ));
        }
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&self.config.topic)
            .payload(payload.as_slice())
            .partition(0);
        let (producer, generation) = self.producer.read().clone();
        let started = std::time::Instant::now();
        let sent = producer.send(record, self.config.request_timeout).await;
        metrics::histogram!("flint_kafka_request_duration_seconds", "request" => "produce")
            .record(started.elapsed().as_secs_f64());
        match sent {
            Ok(delivery) => Ok(delivery.offset as T + 1),
            Err((e, _)) => {
                if let Some(fatal) = producer.client().fatal_error() {
                    tracing::error!(?fatal, "fatal Kafka producer error");
                    self.renew_producer(generation);
                }
                // The record may or may not have been appended: the client sees a 503 and
                // must read before it retries (the write is applied at most once).
                Err(err("produce", e))
            }
        }
    }

    async fn poll(&self, from: T, max: usize, timeout: Duration) -> Result<Vec<TxEntry>> {
        let mut guard = self.consumer.lock().await;
        let reader = &mut *guard;
        let offset = from.saturating_sub(1) as i64;
        if reader.quiet_since.elapsed() > REASSIGN_AFTER {
            reader.next = None;
            reader.quiet_since = std::time::Instant::now();
        }
        if reader.next != Some(offset) {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.config.topic, 0, Offset::Offset(offset))
                .map_err(|e| err("assign", e))?;
            reader.consumer.assign(&tpl).map_err(|e| err("assign", e))?;
            reader.next = Some(offset);
        }
        let mut out = Vec::new();
        let mut wait = timeout;
        while out.len() < max {
            let msg = match tokio::time::timeout(wait, reader.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    // A broker went away (or worse): start over with a fresh consumer at the
                    // index head once the caller retries, rather than trust its fetch state.
                    match Self::consumer_config(&self.config, &self.ssl).create() {
                        Ok(c) => reader.consumer = c,
                        Err(e) => tracing::error!(error = %e, "cannot recreate the Kafka consumer"),
                    }
                    reader.next = None;
                    return Err(err("consume", e));
                }
                Ok(Ok(m)) => m,
            };
            reader.quiet_since = std::time::Instant::now();
            wait = Duration::from_millis(1);
            let t = msg.offset() as T + 1;
            reader.next = Some(msg.offset() + 1);
            let (instant_ms, cmds) = match (msg.timestamp(), msg.payload().map(decode_cmds)) {
                (Timestamp::LogAppendTime(ms), Some(Ok(cmds))) => (ms, cmds),
                (ts, _) => {
                    // Not a Flint transaction (wrong timestamp type or payload): an empty
                    // transaction keeps t dense on every node.
                    tracing::warn!(t, ?ts, "skipping an invalid transaction log record");
                    (
                        match ts {
                            Timestamp::LogAppendTime(ms) | Timestamp::CreateTime(ms) => ms,
                            Timestamp::NotAvailable => 0,
                        },
                        Vec::new(),
                    )
                }
            };
            out.push(TxEntry {
                t,
                instant_ms,
                cmds,
            });
        }
        Ok(out)
    }

    async fn last_t(&self) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.end_waiters
            .send(tx)
            .map_err(|_| DbError::unavailable("Kafka log-end task stopped"))?;
        rx.await
            .map_err(|_| DbError::unavailable("Kafka log-end task stopped"))?
    }
}
