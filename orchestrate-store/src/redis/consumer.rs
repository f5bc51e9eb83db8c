//! A consumer-group reader: explicit acks, reclaim, dead letters, dedupe.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;
use orchestrate_core::bus::BusError;
use orchestrate_core::journal::Event;
use orchestrate_core::ExecutionId;
use redis::aio::ConnectionManager;
use redis::Value;
use tokio::time::Instant;

use super::reply::{self, Entry};
use super::{redis_error, RedisBusConfig};

/// One message handed to a consumer; acknowledge it with
/// [`RedisConsumer::ack`] once processed.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub event: Arc<Event>,
    /// The stream entry id.
    pub message_id: String,
    /// How many times the group has delivered it (1 the first time).
    pub deliveries: u64,
}

/// What identifies an event on the bus: its execution and sequence number
/// (what the `id` field written on publish holds), kept as the
/// execution's shared id and a number, so that remembering one takes no
/// allocation.
type EventKey = (ExecutionId, u64);

fn key(event: &Event) -> EventKey {
    (event.execution_id.clone(), event.seq)
}

/// Events acknowledged recently, to drop duplicates (an event published
/// twice, e.g. by a retried publish). Bounded.
struct Seen {
    order: VecDeque<EventKey>,
    set: HashSet<EventKey, RandomState>,
    capacity: usize,
}

impl Seen {
    fn contains(&self, event: &Event) -> bool {
        self.set.contains(&key(event))
    }

    fn insert(&mut self, event: &Event) {
        if self.capacity == 0 || !self.set.insert(key(event)) {
            return;
        }
        self.order.push_back(key(event));
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// A member of a consumer group on one topic's stream.
///
/// [`next`](Self::next) serves, in this order: messages this consumer took
/// earlier and never acknowledged (after a restart or a dropped connection),
/// messages other consumers took and left unacknowledged past the
/// visibility timeout (`XAUTOCLAIM`; looked for on the first read, then once
/// per [`RedisBusConfig::reclaim_interval`], or at once after a look that
/// filled a batch), then new messages. A message delivered
/// more than `max_deliveries` times, or that is not a valid event, goes to
/// the dead-letter stream instead of blocking the group.
pub struct RedisConsumer {
    pub(super) conn: ConnectionManager,
    pub(super) stream: String,
    pub(super) dead: String,
    pub(super) group: String,
    pub(super) name: String,
    pub(super) config: Arc<RedisBusConfig>,
    pub(super) own_pending_first: bool,
    pub(super) ready: VecDeque<Delivery>,
    /// When this consumer last looked for messages to reclaim and found
    /// fewer than a batch; `None`: the next read looks.
    last_reclaim: Option<Instant>,
    seen: Seen,
}

impl std::fmt::Debug for RedisConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConsumer")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RedisConsumer {
    pub(super) fn new(
        conn: ConnectionManager,
        stream: String,
        dead: String,
        group: String,
        name: String,
        config: Arc<RedisBusConfig>,
    ) -> Self {
        let capacity = config.dedupe_window;
        Self {
            conn,
            stream,
            dead,
            group,
            name,
            config,
            own_pending_first: true,
            ready: VecDeque::new(),
            last_reclaim: None,
            seen: Seen {
                order: VecDeque::new(),
                set: HashSet::default(),
                capacity,
            },
        }
    }

    /// The Redis client id of this consumer's connection (diagnostics; it
    /// changes when the connection is re-established).
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`].
    pub async fn client_id(&mut self) -> Result<i64, BusError> {
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut self.conn)
            .await
            .map_err(redis_error)
    }

    /// The consumer's name in its group.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next delivery, or `None` when nothing arrived within the
    /// configured block time.
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`] when Redis cannot be reached; the next call
    /// reconnects and serves this consumer's unacknowledged messages again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message read but not returned stays pending for this
    /// consumer and is served again.
    pub async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Ok(Some(d));
            }
            match self.fill().await {
                // Everything read was dead-lettered or a duplicate: read on.
                Ok(true) if self.ready.is_empty() => continue,
                Ok(true) => {}
                // Blocked for new messages and none came.
                Ok(false) => return Ok(None),
                Err(e) => {
                    // Whatever was read before the failure is pending here.
                    self.own_pending_first = true;
                    return Err(e);
                }
            }
        }
    }

    /// Acknowledges a processed delivery; its event id is remembered to drop
    /// duplicates.
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`] when Redis cannot be reached (the message stays
    /// pending and will be delivered again).
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let _: i64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&delivery.message_id)
            .query_async(&mut self.conn)
            .await
            .map_err(redis_error)?;
        self.seen.insert(&delivery.event);
        Ok(())
    }

    /// Reads one batch into `ready`; `false` when a blocking read for new
    /// messages timed out empty.
    async fn fill(&mut self) -> Result<bool, BusError> {
        let batch = self.config.batch.max(1);
        if self.own_pending_first {
            let v: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.group)
                .arg(&self.name)
                .arg("COUNT")
                .arg(batch)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg("0")
                .query_async(&mut self.conn)
                .await
                .map_err(redis_error)?;
            let entries = reply::read_group(v);
            if entries.is_empty() {
                self.own_pending_first = false;
            } else {
                let counts = self.delivery_counts(&entries).await?;
                return self.admit(entries, Some(counts)).await.map(|()| true);
            }
        }
        let interval = self.config.reclaim_interval;
        if self.last_reclaim.is_none_or(|at| at.elapsed() >= interval) {
            let claimed = self.reclaim(batch).await?;
            if !claimed.is_empty() {
                let counts = self.delivery_counts(&claimed).await?;
                return self.admit(claimed, Some(counts)).await.map(|()| true);
            }
        }
        let block_ms = u64::try_from(self.config.block.as_millis()).unwrap_or(u64::MAX);
        let v: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(batch)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.conn)
            .await
            .map_err(redis_error)?;
        let fresh = reply::read_group(v);
        if fresh.is_empty() {
            return Ok(false);
        }
        self.admit(fresh, None).await.map(|()| true)
    }

    /// Claims up to `batch` messages left unacknowledged past the
    /// visibility timeout, and sets when to look next: at once if the batch
    /// is full (more may wait), else after the reclaim interval.
    async fn reclaim(&mut self, batch: usize) -> Result<Vec<Entry>, BusError> {
        let visibility_ms =
            u64::try_from(self.config.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let looked_at = Instant::now();
        let v: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.name)
            .arg(visibility_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(batch)
            .query_async(&mut self.conn)
            .await
            .map_err(redis_error)?;
        let claimed = reply::autoclaim(v);
        self.last_reclaim = (claimed.len() < batch).then_some(looked_at);
        Ok(claimed)
    }

    async fn delivery_counts(&mut self, entries: &[Entry]) -> Result<Vec<(String, u64)>, BusError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let v: Value = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(entries.len())
            .arg(&self.name)
            .query_async(&mut self.conn)
            .await
            .map_err(redis_error)?;
        Ok(reply::delivery_counts(v))
    }

    /// Turns entries into deliveries, sending the malformed, the too often
    /// delivered and the duplicates where they belong.
    async fn admit(
        &mut self,
        entries: Vec<Entry>,
        counts: Option<Vec<(String, u64)>>,
    ) -> Result<(), BusError> {
        for entry in entries {
            let deliveries = counts
                .as_ref()
                .and_then(|c| c.iter().find(|(id, _)| *id == entry.id).map(|(_, n)| *n))
                .unwrap_or(1);
            let event = entry
                .field("event")
                .ok_or_else(|| "no `event` field".to_owned())
                .and_then(|raw| {
                    serde_json::from_slice::<Event>(raw)
                        .map_err(|e| format!("undecodable event: {e}"))
                });
            let event = match event {
                Ok(event) => event,
                Err(reason) => {
                    tracing::warn!(stream = %self.stream, id = %entry.id, %reason, "malformed message moved to the dead-letter stream");
                    self.bury(&entry, &reason).await?;
                    continue;
                }
            };
            if deliveries > self.config.max_deliveries {
                let reason = format!("delivered {deliveries} times");
                tracing::warn!(stream = %self.stream, id = %entry.id, %reason, "message moved to the dead-letter stream");
                self.bury(&entry, &reason).await?;
                continue;
            }
            if self.seen.contains(&event) {
                self.ack_id(&entry.id).await?;
                continue;
            }
            self.ready.push_back(Delivery {
                event: Arc::new(event),
                message_id: entry.id,
                deliveries,
            });
        }
        Ok(())
    }

    /// Acknowledges several deliveries in one round trip.
    ///
    /// # Errors
    ///
    /// [`BusError::Backend`] when Redis cannot be reached (the messages stay
    /// pending and will be delivered again).
    pub async fn ack_all(&mut self, deliveries: &[Delivery]) -> Result<(), BusError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.stream).arg(&self.group);
        for d in deliveries {
            ack.arg(&d.message_id);
        }
        let _: i64 = ack.query_async(&mut self.conn).await.map_err(redis_error)?;
        for d in deliveries {
            self.seen.insert(&d.event);
        }
        Ok(())
    }

    /// Deliveries already read and buffered: [`next`](Self::next) returns
    /// them without a round trip.
    pub fn buffered(&self) -> usize {
        self.ready.len()
    }

    async fn ack_id(&mut self, id: &str) -> Result<(), BusError> {
        let _: i64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .query_async(&mut self.conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    /// Copies the entry to the dead-letter stream, then acknowledges it.
    async fn bury(&mut self, entry: &Entry, reason: &str) -> Result<(), BusError> {
        let mut add = redis::cmd("XADD");
        add.arg(&self.dead)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.max_len)
            .arg("*")
            .arg("reason")
            .arg(reason)
            .arg("source_id")
            .arg(&entry.id)
            .arg("group")
            .arg(&self.group);
        for (k, v) in &entry.fields {
            add.arg(format!("field:{k}")).arg(v.as_slice());
        }
        let _: Value = add.query_async(&mut self.conn).await.map_err(redis_error)?;
        self.ack_id(&entry.id).await
    }
}

#[cfg(test)]
mod tests {
    use orchestrate_core::journal::EventKind;

    use super::*;

    fn event(execution: &str, seq: u64) -> Event {
        Event {
            execution_id: execution.into(),
            seq,
            at_us: 0,
            kind: EventKind::CancelRequested,
        }
    }

    fn seen(capacity: usize) -> Seen {
        Seen {
            order: VecDeque::new(),
            set: HashSet::default(),
            capacity,
        }
    }

    #[test]
    fn the_window_remembers_the_latest_events_by_execution_and_sequence() {
        let mut window = seen(2);
        window.insert(&event("a", 1));
        window.insert(&event("a", 1));
        window.insert(&event("b", 1));
        // A repeat takes no second place in the window: both still fit.
        assert!(window.contains(&event("a", 1)) && window.contains(&event("b", 1)));
        assert!(!window.contains(&event("a", 2)), "another sequence number");
        window.insert(&event("a", 2));
        assert!(!window.contains(&event("a", 1)), "the oldest was forgotten");
        assert!(window.contains(&event("b", 1)) && window.contains(&event("a", 2)));
        assert_eq!((window.order.len(), window.set.len()), (2, 2));
    }

    #[test]
    fn a_window_of_zero_remembers_nothing() {
        let mut window = seen(0);
        window.insert(&event("a", 1));
        assert!(!window.contains(&event("a", 1)));
    }
}
