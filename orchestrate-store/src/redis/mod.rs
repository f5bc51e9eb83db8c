//! The Redis Streams event bus.

mod consumer;
mod reply;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use orchestrate_core::bus::{BusError, EventBus, Subscription};
use orchestrate_core::journal::Event;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use tokio::sync::mpsc;

pub use consumer::{Delivery, RedisConsumer};

/// Settings of a [`RedisBus`].
#[derive(Clone, Debug)]
pub struct RedisBusConfig {
    /// Prefix of every key (default `"orchestrate"`); tests give each run its own.
    pub prefix: String,
    /// Approximate bound of each stream (`XADD MAXLEN ~`, default 100,000).
    pub max_len: usize,
    /// How long a message may stay unacknowledged with one consumer before
    /// another reclaims it (default 30 s).
    pub visibility_timeout: Duration,
    /// How often a consumer looks for messages to reclaim (`XAUTOCLAIM`,
    /// default 1 s): its first read looks, and later reads look again once
    /// this much time has passed, or at once after a look that filled a
    /// batch. A message a dead consumer left is reclaimed between
    /// `visibility_timeout` and `visibility_timeout + reclaim_interval` after
    /// its last delivery (plus one blocking read); `Duration::ZERO` looks on
    /// every read, a round trip each that a busy consumer rarely needs.
    pub reclaim_interval: Duration,
    /// Deliveries after which a message goes to the dead-letter stream
    /// (default 5).
    pub max_deliveries: u64,
    /// How long one read waits for new messages (default 1 s).
    pub block: Duration,
    /// Messages read at once (default 128).
    pub batch: usize,
    /// Acknowledged event ids remembered per consumer to drop duplicates
    /// (default 10,000).
    pub dedupe_window: usize,
    /// Events buffered per [`EventBus`] subscription (default 1,000).
    pub subscriber_capacity: usize,
}

impl Default for RedisBusConfig {
    fn default() -> Self {
        Self {
            prefix: "orchestrate".into(),
            max_len: 100_000,
            visibility_timeout: Duration::from_secs(30),
            reclaim_interval: Duration::from_secs(1),
            max_deliveries: 5,
            block: Duration::from_secs(1),
            batch: 128,
            dedupe_window: 10_000,
            subscriber_capacity: 1_000,
        }
    }
}

impl RedisBusConfig {
    /// Uses `prefix` for every key.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// An entry of a dead-letter stream.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// Why it was set aside.
    pub reason: String,
    /// Its id in the original stream.
    pub source_id: String,
    /// The consumer group that gave up on it.
    pub group: String,
    /// Its original `event` field, if it had one.
    pub event: Option<Vec<u8>>,
}

/// An [`EventBus`] on Redis Streams, for many processes.
///
/// Each topic is a stream (`<prefix>:stream:<topic>`, trimmed to about
/// `max_len`). [`EventBus::subscribe`] gives every subscriber a consumer
/// group of its own (broadcast); [`RedisBus::consumer`] joins a named group
/// whose members share the work, with explicit acks, reclaim of messages a
/// dead consumer left (`XAUTOCLAIM`), a dead-letter stream
/// (`<prefix>:dead:<topic>`) and de-duplication by event id.
#[derive(Clone)]
pub struct RedisBus {
    client: redis::Client,
    conn: ConnectionManager,
    config: Arc<RedisBusConfig>,
    location: String,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("location", &self.location)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn redis_error(e: redis::RedisError) -> BusError {
    BusError::Backend {
        backend: "redis",
        source: Arc::new(e),
    }
}

/// Writes the id an event carries on the bus (`<execution>:<seq>`, unique
/// per execution and sequence) into `buf`, replacing what it held.
fn write_event_id(buf: &mut String, event: &Event) {
    use std::fmt::Write as _;
    buf.clear();
    // Writing to a String cannot fail.
    let _ = write!(buf, "{}:{}", event.execution_id, event.seq);
}

impl RedisBus {
    /// Connects to `url` with default settings.
    ///
    /// # Errors
    ///
    /// [`BusError::Unreachable`] naming the server when it cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        Self::connect_with(url, RedisBusConfig::default()).await
    }

    /// Connects with `config`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, config: RedisBusConfig) -> Result<Self, BusError> {
        let location = url.split('@').next_back().unwrap_or(url).to_owned();
        let unreachable = |e: redis::RedisError| BusError::Unreachable {
            backend: "redis",
            location: location.clone(),
            source: Arc::new(e),
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let config = Arc::new(config);
        let conn = Self::manager(&client, &config).await.map_err(unreachable)?;
        Ok(Self {
            client,
            conn,
            config,
            location,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A connection of its own: a blocking read must not hold up others.
    async fn manager(
        client: &redis::Client,
        config: &RedisBusConfig,
    ) -> redis::RedisResult<ConnectionManager> {
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(config.block + Duration::from_secs(5)))
            .set_number_of_retries(3);
        client.get_connection_manager_with_config(settings).await
    }

    /// The stream holding `topic`.
    pub fn stream_key(&self, topic: &str) -> String {
        format!("{}:stream:{topic}", self.config.prefix)
    }

    /// The dead-letter stream of `topic`.
    pub fn dead_letter_key(&self, topic: &str) -> String {
        format!("{}:dead:{topic}", self.config.prefix)
    }

    /// Joins (creating if needed) consumer group `group` on `topic` as
    /// `name`. A new group starts at the beginning of the stream.
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`] when Redis refuses or cannot be reached.
    pub async fn consumer(
        &self,
        topic: &str,
        group: &str,
        name: &str,
    ) -> Result<RedisConsumer, BusError> {
        self.create_group(topic, group, "0").await?;
        let conn = Self::manager(&self.client, &self.config)
            .await
            .map_err(redis_error)?;
        Ok(RedisConsumer::new(
            conn,
            self.stream_key(topic),
            self.dead_letter_key(topic),
            group.to_owned(),
            name.to_owned(),
            self.config.clone(),
        ))
    }

    async fn create_group(&self, topic: &str, group: &str, start: &str) -> Result<(), BusError> {
        let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.stream_key(topic))
            .arg(group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(redis_error(e)),
        }
    }

    /// The first `count` entries of `topic`'s dead-letter stream.
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`].
    pub async fn dead_letters(
        &self,
        topic: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let v: Value = redis::cmd("XRANGE")
            .arg(self.dead_letter_key(topic))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        Ok(reply::entries(v)
            .into_iter()
            .map(|e| {
                let text = |k: &str| {
                    e.field(k)
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default()
                };
                DeadLetter {
                    reason: text("reason"),
                    source_id: text("source_id"),
                    group: text("group"),
                    event: e.field("field:event").map(<[u8]>::to_vec),
                }
            })
            .collect())
    }

    /// Appends raw fields to `topic` (tests and tools: e.g. a malformed
    /// message from another producer).
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`].
    pub async fn publish_raw(
        &self,
        topic: &str,
        fields: &[(&str, &[u8])],
    ) -> Result<String, BusError> {
        let mut add = redis::cmd("XADD");
        add.arg(self.stream_key(topic)).arg("*");
        for (k, v) in fields {
            add.arg(*k).arg(*v);
        }
        add.query_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)
    }

    /// Deletes every key under the prefix (for tests that made their own).
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`].
    pub async fn delete_all(&self) -> Result<(), BusError> {
        let pattern = format!("{}:*", self.config.prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(redis_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, events: &[Arc<Event>]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let key = self.stream_key(topic);
        let mut pipe = redis::pipe();
        // The pipeline copies its arguments: every event's id and JSON are
        // written into these two buffers instead of two new allocations.
        let (mut id, mut json) = (String::new(), Vec::new());
        for event in events {
            write_event_id(&mut id, event);
            json.clear();
            serde_json::to_writer(&mut json, &**event).map_err(|e| BusError::Backend {
                backend: "redis",
                source: Arc::new(e),
            })?;
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.config.max_len)
                .arg("*")
                .arg("id")
                .arg(id.as_str())
                .arg("event")
                .arg(json.as_slice())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(redis_error)
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        // A group of its own, starting now: every subscriber sees every
        // event published from here on.
        let group = format!("sub-{}", uuid::Uuid::new_v4());
        self.create_group(topic, &group, "$").await?;
        let mut consumer = self.consumer(topic, &group, "only").await?;
        let (tx, rx) = mpsc::channel(self.config.subscriber_capacity.max(1));
        let mut cleanup = self.conn.clone();
        let stream = self.stream_key(topic);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => break,
                    next = consumer.next() => next,
                };
                match next {
                    Ok(Some(delivery)) => {
                        if tx.send(delivery.event.clone()).await.is_err() {
                            break;
                        }
                        if let Err(e) = consumer.ack(&delivery).await {
                            tracing::warn!(error = %e, "ack failed; the event may be delivered again");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the stream failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            // The subscription is gone: so is its group.
            let _: redis::RedisResult<Value> = redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(&stream)
                .arg(&group)
                .query_async(&mut cleanup)
                .await;
        });
        let events =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        Ok(Subscription::new(events.boxed(), self.dropped.clone()))
    }

    fn dropped(&self) -> u64 {
        // Redis keeps every event up to the stream bound; nothing is dropped
        // per subscriber (a slow one applies backpressure to its reader).
        0
    }
}
