//! The in-process bus: one bounded queue per subscriber.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Notify;

use super::{BusError, EventBus, Subscription};
use crate::fast_map::FastMap;
use crate::journal::Event;

/// What a publisher does when a subscriber's queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Wait until the subscriber makes room (backpressure).
    Block,
    /// Drop the oldest queued event to make room (the default: a slow
    /// observer never stalls executions, and the journal keeps every event).
    #[default]
    DropOldest,
    /// Drop the event being published.
    DropNewest,
    /// Fail the publish with [`BusError::Full`].
    Error,
}

/// Settings of a [`MemoryBus`].
#[derive(Clone, Copy, Debug)]
pub struct MemoryBusConfig {
    /// Events queued per subscriber (default 1000).
    pub capacity: usize,
    /// What happens when a queue is full (default [`Overflow::DropOldest`]).
    pub overflow: Overflow,
}

impl Default for MemoryBusConfig {
    fn default() -> Self {
        Self {
            capacity: 1000,
            overflow: Overflow::DropOldest,
        }
    }
}

struct QueueState {
    buf: VecDeque<Arc<Event>>,
    closed: bool,
    /// The receiver waits for an event: a push must wake it.
    receiver_waiting: bool,
    /// Publishers wait for room (`Overflow::Block`): a pop must wake one.
    publishers_waiting: usize,
}

struct Queue {
    state: Mutex<QueueState>,
    readable: Notify,
    writable: Notify,
    dropped: Arc<AtomicU64>,
    bus_dropped: Arc<AtomicU64>,
    config: MemoryBusConfig,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn count_drop(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.bus_dropped.fetch_add(n, Ordering::Relaxed);
    }

    async fn push_all(&self, topic: &str, events: &[Arc<Event>]) -> Result<(), BusError> {
        let cap = self.config.capacity;
        if self.config.overflow == Overflow::Block {
            for e in events {
                // Fast path: room now. Notify only a receiver that waits.
                let wake = {
                    let mut st = self.lock();
                    if st.closed {
                        return Ok(());
                    }
                    if st.buf.len() < cap {
                        st.buf.push_back(e.clone());
                        Some(st.receiver_waiting)
                    } else {
                        None
                    }
                };
                match wake {
                    Some(true) => self.readable.notify_one(),
                    Some(false) => {}
                    None => {
                        if !self.push_when_room(e).await {
                            return Ok(());
                        }
                    }
                }
            }
            return Ok(());
        }
        let mut result = Ok(());
        let wake = {
            let mut st = self.lock();
            if st.closed {
                return Ok(());
            }
            for (i, e) in events.iter().enumerate() {
                if st.buf.len() < cap {
                    st.buf.push_back(e.clone());
                    continue;
                }
                match self.config.overflow {
                    Overflow::DropOldest => {
                        st.buf.pop_front();
                        st.buf.push_back(e.clone());
                        self.count_drop(1);
                    }
                    Overflow::DropNewest => self.count_drop(1),
                    _ => {
                        self.count_drop((events.len() - i) as u64);
                        result = Err(BusError::Full {
                            topic: topic.to_owned(),
                            capacity: cap,
                        });
                        break;
                    }
                }
            }
            st.receiver_waiting
        };
        if wake {
            self.readable.notify_one();
        }
        result
    }

    /// Slow path of a blocking push: waits for room. `false` if the
    /// subscription closed meanwhile.
    async fn push_when_room(&self, e: &Arc<Event>) -> bool {
        loop {
            // Registered before the re-check, so no wake-up is missed.
            let mut writable = pin!(self.writable.notified());
            writable.as_mut().enable();
            let receiver_waiting = {
                let mut st = self.lock();
                if st.closed {
                    return false;
                }
                if st.buf.len() < self.config.capacity {
                    st.buf.push_back(e.clone());
                    Some(st.receiver_waiting)
                } else {
                    st.publishers_waiting += 1;
                    None
                }
            };
            match receiver_waiting {
                Some(wake) => {
                    if wake {
                        self.readable.notify_one();
                    }
                    return true;
                }
                None => {
                    writable.await;
                    self.lock().publishers_waiting -= 1;
                }
            }
        }
    }

    async fn recv(&self) -> Option<Arc<Event>> {
        loop {
            // Fast path: an event is there; wake a publisher only if one waits.
            {
                let mut st = self.lock();
                if let Some(e) = st.buf.pop_front() {
                    let wake = st.publishers_waiting > 0;
                    drop(st);
                    if wake {
                        self.writable.notify_one();
                    }
                    return Some(e);
                }
                if st.closed {
                    return None;
                }
            }
            let mut readable = pin!(self.readable.notified());
            readable.as_mut().enable();
            {
                // Re-checked after registering, so no wake-up is missed.
                let mut st = self.lock();
                if !st.buf.is_empty() || st.closed {
                    continue;
                }
                st.receiver_waiting = true;
            }
            readable.await;
            self.lock().receiver_waiting = false;
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.writable.notify_waiters();
        self.readable.notify_waiters();
    }
}

/// Closes the queue when the subscription is dropped.
struct Receiver(Arc<Queue>);

impl Drop for Receiver {
    fn drop(&mut self) {
        self.0.close();
    }
}

type Topics = FastMap<Box<str>, Arc<[Arc<Queue>]>>;

/// The in-process [`EventBus`]: bounded per subscriber, with an [`Overflow`]
/// policy and a count of dropped events.
///
/// # Examples
///
/// ```
/// use orchestrate_core::bus::{EventBus, MemoryBus, MemoryBusConfig, Overflow};
/// use orchestrate_core::journal::{Event, EventKind};
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = MemoryBus::with_config(MemoryBusConfig { capacity: 2, overflow: Overflow::DropOldest });
/// let mut sub = bus.subscribe("t").await.unwrap();
/// let events: Vec<Arc<Event>> = (0..3).map(|seq| Arc::new(Event {
///     execution_id: "x".into(), seq, at_us: 0, kind: EventKind::CancelRequested,
/// })).collect();
/// bus.publish("t", &events).await.unwrap();
/// assert_eq!(sub.recv().await.unwrap().seq, 1); // seq 0 was dropped
/// assert_eq!(bus.dropped(), 1);
/// # });
/// ```
pub struct MemoryBus {
    topics: RwLock<Topics>,
    /// `topics.len()`, written under the write lock: a bus nobody listens
    /// to answers [`has_subscribers`](EventBus::has_subscribers) and
    /// `publish` without taking the lock every execution's every batch
    /// would share.
    topic_count: AtomicUsize,
    dropped: Arc<AtomicU64>,
    config: MemoryBusConfig,
}

impl MemoryBus {
    /// A bus with default settings.
    pub fn new() -> Self {
        Self::with_config(MemoryBusConfig::default())
    }

    /// A bus with the given settings.
    pub fn with_config(config: MemoryBusConfig) -> Self {
        Self {
            topics: RwLock::new(FastMap::default()),
            topic_count: AtomicUsize::new(0),
            dropped: Arc::new(AtomicU64::new(0)),
            config: MemoryBusConfig {
                capacity: config.capacity.max(1),
                ..config
            },
        }
    }

    /// Current subscribers of `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .map_or(0, |q| q.iter().filter(|q| !q.is_closed()).count())
    }

    fn prune(&self, topic: &str) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(queues) = topics.get(topic) {
            let live: Vec<Arc<Queue>> = queues.iter().filter(|q| !q.is_closed()).cloned().collect();
            if live.is_empty() {
                topics.remove(topic);
            } else {
                topics.insert(topic.into(), live.into());
            }
        }
        self.topic_count.store(topics.len(), Ordering::Release);
    }

    /// Whether no topic has a subscriber, without the lock.
    fn is_unheard(&self) -> bool {
        self.topic_count.load(Ordering::Acquire) == 0
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("config", &self.config)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    fn crosses_processes(&self) -> bool {
        false
    }

    async fn publish(&self, topic: &str, events: &[Arc<Event>]) -> Result<(), BusError> {
        if self.is_unheard() {
            return Ok(());
        }
        let queues = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .cloned();
        let Some(queues) = queues else {
            return Ok(());
        };
        let mut saw_closed = false;
        let mut result = Ok(());
        for q in queues.iter() {
            if q.is_closed() {
                saw_closed = true;
                continue;
            }
            if let Err(e) = q.push_all(topic, events).await {
                result = Err(e);
            }
        }
        if saw_closed {
            self.prune(topic);
        }
        result
    }

    fn has_subscribers(&self, topic: &str) -> bool {
        if self.is_unheard() {
            return false;
        }
        let (live, closed) = match self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            None => return false,
            Some(queues) => {
                queues
                    .iter()
                    .fold((false, false), |(live, closed), q| match q.is_closed() {
                        true => (live, true),
                        false => (true, closed),
                    })
            }
        };
        // Publishing prunes departed subscribers; nothing is published to
        // a topic nobody hears, so look here too.
        if closed {
            self.prune(topic);
        }
        live
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        let dropped = Arc::new(AtomicU64::new(0));
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                buf: VecDeque::new(),
                closed: false,
                receiver_waiting: false,
                publishers_waiting: 0,
            }),
            readable: Notify::new(),
            writable: Notify::new(),
            dropped: dropped.clone(),
            bus_dropped: self.dropped.clone(),
            config: self.config,
        });
        {
            let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
            let mut queues: Vec<Arc<Queue>> = topics
                .get(topic)
                .map(|q| q.iter().filter(|q| !q.is_closed()).cloned().collect())
                .unwrap_or_default();
            queues.push(queue.clone());
            topics.insert(topic.into(), queues.into());
            self.topic_count.store(topics.len(), Ordering::Release);
        }
        let stream = futures::stream::unfold(Receiver(queue), |rx| async move {
            let event = rx.0.recv().await?;
            Some((event, rx))
        });
        Ok(Subscription::new(stream.boxed(), dropped))
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
