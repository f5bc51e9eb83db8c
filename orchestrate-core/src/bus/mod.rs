//! Publish/subscribe: the [`EventBus`] trait and the in-process bus.

mod memory;

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_trait::async_trait;
use futures::stream::{BoxStream, Stream, StreamExt};
use thiserror::Error;

use crate::boxed::SharedError;
use crate::journal::Event;

pub use memory::{MemoryBus, MemoryBusConfig, Overflow};

/// Topic-based publish/subscribe of journal events.
///
/// The orchestrator publishes every event of an execution on
/// [`execution_topic`]; the journal in the [`Store`](crate::store::Store) stays
/// the source of truth, so a subscriber that misses events can read them
/// back from there.
///
/// # Cancel safety
///
/// Dropping a `publish` future before it completes may leave a prefix of the
/// batch delivered; dropping `subscribe` leaves no subscription behind.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `events` on `topic`, in order, to every current subscriber.
    ///
    /// # Errors
    ///
    /// [`BusError::Full`] when a subscriber is full under
    /// [`Overflow::Error`]; backend errors.
    async fn publish(&self, topic: &str, events: &[Arc<Event>]) -> Result<(), BusError>;

    /// Subscribes to `topic`; events published afterwards are delivered.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError>;

    /// Events dropped so far by overflow policies, over all subscribers.
    fn dropped(&self) -> u64;

    /// Whether events published by other processes reach this bus's
    /// subscribers (default `true`: a shared bus such as Redis Streams).
    /// Over a bus that keeps to its process, the event stream of an
    /// execution another process runs is read from the store instead.
    fn crosses_processes(&self) -> bool {
        true
    }

    /// Whether anything published on `topic` now can reach a subscriber.
    /// The orchestrator publishes an execution's events only when so: they
    /// are in the store already, and a later subscriber reads them there.
    /// A bus that keeps events for readers yet to come (Redis Streams)
    /// keeps this default, `true`.
    fn has_subscribers(&self, topic: &str) -> bool {
        let _ = topic;
        true
    }
}

/// The topic on which the orchestrator publishes an execution's events.
pub fn execution_topic(execution: &crate::ExecutionId) -> String {
    // Every execution makes its topic: two copies, no formatting machinery.
    const PREFIX: &str = "execution.";
    let id = execution.as_str();
    let mut topic = String::with_capacity(PREFIX.len() + id.len());
    topic.push_str(PREFIX);
    topic.push_str(id);
    topic
}

/// A stream of events from one subscription. Dropping it unsubscribes.
pub struct Subscription {
    stream: BoxStream<'static, Arc<Event>>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Wraps a backend's stream; `dropped` counts events this subscriber lost.
    pub fn new(stream: BoxStream<'static, Arc<Event>>, dropped: Arc<AtomicU64>) -> Self {
        Self { stream, dropped }
    }

    /// The next event, or `None` when the bus closed the subscription.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is never lost by dropping this future.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.stream.next().await
    }

    /// Events this subscriber lost to the overflow policy.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Stream for Subscription {
    type Item = Arc<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Arc<Event>>> {
        self.stream.poll_next_unpin(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// An event bus failure.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum BusError {
    /// A subscriber's queue is full and the overflow policy is `Error`.
    #[error("topic `{topic}`: subscriber queue full ({capacity} events)")]
    Full {
        /// The topic.
        topic: String,
        /// The queue capacity.
        capacity: usize,
    },
    /// The bus could not be reached.
    #[error("cannot reach the {backend} bus at {location}: {source}")]
    Unreachable {
        /// Which backend.
        backend: &'static str,
        /// Where (without credentials).
        location: String,
        /// The cause.
        #[source]
        source: SharedError,
    },
    /// The backend failed.
    #[error("{backend} bus: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: SharedError,
    },
}

impl BusError {
    /// Whether publishing again may succeed.
    pub fn is_retryable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::execution_topic;
    use crate::ExecutionId;

    #[test]
    fn an_execution_topic_is_the_prefix_and_the_id() {
        assert_eq!(
            execution_topic(&ExecutionId::from("run-1")),
            "execution.run-1"
        );
        let id = ExecutionId::new();
        assert_eq!(execution_topic(&id), format!("execution.{id}"));
    }
}
