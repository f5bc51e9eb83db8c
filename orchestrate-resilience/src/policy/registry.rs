//! Shared, keyed policy state.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use crate::breaker::{BreakerConfig, BreakerSnapshot, CircuitBreaker, TransitionHook};
use crate::bulkhead::{Bulkhead, BulkheadConfig};
use crate::key::Key;
use crate::rate_limit::{RateLimitConfig, RateLimiter};

struct Keyed<T>(Mutex<HashMap<Key, Arc<T>>>);

impl<T> Default for Keyed<T> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<T> Keyed<T> {
    fn get_or_insert(&self, key: &Key, make: impl FnOnce() -> T) -> Arc<T>
    where
        Key: Hash + Eq,
    {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    fn get(&self, key: &Key) -> Option<Arc<T>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn all(&self) -> Vec<Arc<T>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    breakers: Keyed<CircuitBreaker>,
    bulkheads: Keyed<Bulkhead>,
    limiters: Keyed<RateLimiter>,
    hook: Mutex<Option<TransitionHook>>,
}

/// Where breakers, bulkheads and rate limiters live, by [`Key`]: policies
/// bound to one key through one registry share one breaker.
///
/// Look-ups happen when a policy is bound to a key, never per call. The
/// first configuration seen for a key wins. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("breakers", &self.inner.breakers.all().len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `hook` on every breaker transition of breakers created from now on.
    pub fn on_transition(
        &self,
        hook: impl Fn(&Key, crate::BreakerState, crate::BreakerState) + Send + Sync + 'static,
    ) {
        *self
            .inner
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(hook));
    }

    pub(crate) fn breaker(&self, key: &Key, config: BreakerConfig) -> Arc<CircuitBreaker> {
        let hook = self
            .inner
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.inner
            .breakers
            .get_or_insert(key, || CircuitBreaker::with_hook(key.clone(), config, hook))
    }

    pub(crate) fn bulkhead(&self, key: &Key, config: BulkheadConfig) -> Arc<Bulkhead> {
        self.inner
            .bulkheads
            .get_or_insert(key, || Bulkhead::new(key.clone(), config))
    }

    pub(crate) fn limiter(&self, key: &Key, config: RateLimitConfig) -> Arc<RateLimiter> {
        self.inner
            .limiters
            .get_or_insert(key, || RateLimiter::new(key.clone(), config))
    }

    /// The breaker of `key`, if a policy created one.
    pub fn circuit_breaker(&self, key: &Key) -> Option<Arc<CircuitBreaker>> {
        self.inner.breakers.get(key)
    }

    /// Snapshots of every breaker, sorted by key.
    pub fn breaker_snapshots(&self) -> Vec<BreakerSnapshot> {
        let mut all: Vec<_> = self
            .inner
            .breakers
            .all()
            .iter()
            .map(|b| b.snapshot())
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The bulkhead of `key`, if a policy created one.
    pub fn bulkhead_for(&self, key: &Key) -> Option<Arc<Bulkhead>> {
        self.inner.bulkheads.get(key)
    }
}
