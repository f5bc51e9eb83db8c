//! The bulkhead: a concurrency limit with a bounded wait queue.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

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

/// A keyed concurrency limit. Waiting is FIFO (tokio's semaphore) and
/// bounded: a full queue rejects instead of growing.
#[derive(Debug)]
pub struct Bulkhead {
    key: Key,
    config: BulkheadConfig,
    slots: Semaphore,
    waiting: AtomicUsize,
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
            slots: Semaphore::new(config.max_concurrent.max(1)),
            config,
            waiting: AtomicUsize::new(0),
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

    /// Calls holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.config.max_concurrent.max(1) - self.slots.available_permits()
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Takes a slot if one is free now, without waiting.
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.slots.try_acquire().ok()
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
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, ()> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.config.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(());
        }
        let _waiting = Waiting(&self.waiting);
        // The semaphore is never closed.
        self.slots.acquire().await.map_err(|_| ())
    }
}
