//! The bulkhead: a concurrency limit with a bounded wait queue.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::key::Key;

/// Settings of a [`Bulkhead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Calls running at once.
    pub max_concurrent: usize,
    /// Calls allowed to wait for a slot; one more is rejected.
    pub max_queue: usize,
}

impl BulkheadConfig {
    /// `max_concurrent` running, `max_queue` waiting.
    pub fn new(max_concurrent: usize, max_queue: usize) -> Self {
        Self {
            max_concurrent,
            max_queue,
        }
    }
}

/// A keyed concurrency limit with a bounded wait queue: a full queue
/// rejects instead of growing.
///
/// Taking and returning a free slot is one atomic operation each, with no
/// lock; only waiting (when every slot is taken) uses a queue, woken in
/// FIFO order.
#[derive(Debug)]
pub struct Bulkhead {
    key: Key,
    config: BulkheadConfig,
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
    freed: Notify,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot<'a>(&'a Bulkhead);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.0.waiting.load(Ordering::Acquire) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// Decrements the wait count however the wait ends (admitted or dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// A bulkhead for `key`.
    pub fn new(key: Key, config: BulkheadConfig) -> Self {
        Self {
            key,
            config,
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The settings.
    pub fn config(&self) -> BulkheadConfig {
        self.config
    }

    fn limit(&self) -> usize {
        self.config.max_concurrent.max(1)
    }

    /// Calls holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Takes a slot if one is free now, without waiting.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        let limit = self.limit();
        let mut current = self.in_flight.load(Ordering::Acquire);
        while current < limit {
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Slot(self)),
                Err(actual) => current = actual,
            }
        }
        None
    }

    /// Takes a slot, waiting in line if the queue has room.
    ///
    /// # Errors
    ///
    /// `Err(())` when every slot is taken and the queue is full.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped wait leaves the queue.
    pub async fn acquire(&self) -> Result<Slot<'_>, ()> {
        if let Some(slot) = self.try_acquire() {
            return Ok(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.config.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(());
        }
        let _waiting = Waiting(&self.waiting);
        loop {
            // Registered before the re-check: a slot freed in between wakes us.
            let mut freed = pin!(self.freed.notified());
            freed.as_mut().enable();
            if let Some(slot) = self.try_acquire() {
                return Ok(slot);
            }
            freed.await;
        }
    }
}
