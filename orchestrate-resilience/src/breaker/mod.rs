//! The circuit breaker: fail fast while a dependency is down.
//!
//! The state lives in atomics: a call in the closed state reads one byte and,
//! on success, at most resets a counter. Only transitions and failure details
//! take a lock.

mod window;

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::key::Key;
use window::Window;

/// A breaker's state; `closed`, `open` or `half_open` when serialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls fail fast until the open duration has passed.
    Open,
    /// A limited number of probe calls pass; their outcome closes or
    /// re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    fn as_u8(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        })
    }
}

/// When a closed breaker opens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trip {
    /// After this many failures in a row (default 5).
    ConsecutiveFailures(u32),
    /// When, over the last `window`, at least `min_calls` calls were made and
    /// the share of failures reached `threshold` (0.0 to 1.0).
    FailureRate {
        /// Failure share that opens the breaker.
        threshold: f64,
        /// The sliding window.
        window: Duration,
        /// Calls needed in the window before the rate counts.
        min_calls: u32,
    },
}

/// Settings of a [`CircuitBreaker`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerConfig {
    /// When to open (default 5 consecutive failures).
    pub trip: Trip,
    /// How long to stay open before probing (default 60 s).
    pub open_duration: Duration,
    /// Probe calls admitted at once while half-open (default 1).
    pub half_open_probes: u32,
    /// Successful probes needed to close (default 2).
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            trip: Trip::ConsecutiveFailures(5),
            open_duration: Duration::from_secs(60),
            half_open_probes: 1,
            success_threshold: 2,
        }
    }
}

/// Called on every state change with the key, the old and the new state.
pub type TransitionHook = Arc<dyn Fn(&Key, BreakerState, BreakerState) + Send + Sync>;

#[derive(Default)]
struct Detail {
    last_error: Option<String>,
    last_transition: Option<Instant>,
    transitions: u64,
}

/// A point-in-time view of a breaker, for health monitoring.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerSnapshot {
    /// The breaker's key.
    pub key: Key,
    /// Its state.
    pub state: BreakerState,
    /// Failures in a row while closed.
    pub consecutive_failures: u32,
    /// Calls and failures in the current window (failure-rate mode).
    pub window_calls: u32,
    /// Failures in the current window (failure-rate mode).
    pub window_failures: u32,
    /// The most recent failure, as text.
    pub last_error: Option<String>,
    /// When the state last changed.
    pub last_transition: Option<Instant>,
    /// State changes so far.
    pub transitions: u64,
}

/// A keyed circuit breaker. Share it through an `Arc` (a
/// [`Registry`](crate::Registry) does) so every caller of one dependency
/// sees one state.
pub struct CircuitBreaker {
    key: Key,
    config: BreakerConfig,
    base: Instant,
    state: AtomicU8,
    consecutive_failures: AtomicU32,
    opened_at_ns: AtomicU64,
    probes_in_flight: AtomicU32,
    probe_successes: AtomicU32,
    window: Option<Window>,
    detail: Mutex<Detail>,
    hook: Option<TransitionHook>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("key", &self.key)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Admission to run one call through a breaker; report the outcome with
/// [`CircuitBreaker::on_success`] / [`CircuitBreaker::on_failure`]. Dropped
/// unreported (the call was cancelled), it frees its probe slot.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            self.breaker.probes_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A state change, returned to the caller that caused it.
pub type Transition = (BreakerState, BreakerState);

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(key: Key, config: BreakerConfig) -> Self {
        Self::with_hook(key, config, None)
    }

    pub(crate) fn with_hook(key: Key, config: BreakerConfig, hook: Option<TransitionHook>) -> Self {
        let window = match config.trip {
            Trip::FailureRate { window, .. } => Some(Window::new(window)),
            Trip::ConsecutiveFailures(_) => None,
        };
        Self {
            key,
            config,
            base: Instant::now(),
            state: AtomicU8::new(BreakerState::Closed.as_u8()),
            consecutive_failures: AtomicU32::new(0),
            opened_at_ns: AtomicU64::new(0),
            probes_in_flight: AtomicU32::new(0),
            probe_successes: AtomicU32::new(0),
            window,
            detail: Mutex::new(Detail::default()),
            hook,
        }
    }

    /// The key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state (an open breaker whose open duration has passed
    /// still reads `Open` until a call probes it).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Asks to run a call. `Err` carries the transition this request caused
    /// (none: the breaker is simply open or its probes are taken).
    pub fn try_acquire(&self) -> (Result<Permit<'_>, ()>, Option<Transition>) {
        let mut transition = None;
        let mut state = self.state();
        if state == BreakerState::Open {
            let opened = self.opened_at_ns.load(Ordering::Acquire);
            let open_ns = u64::try_from(self.config.open_duration.as_nanos()).unwrap_or(u64::MAX);
            if self.now_ns().saturating_sub(opened) < open_ns {
                return (Err(()), None);
            }
            if self.transition(BreakerState::Open, BreakerState::HalfOpen) {
                transition = Some((BreakerState::Open, BreakerState::HalfOpen));
            }
            state = self.state();
        }
        match state {
            BreakerState::Closed => (Ok(self.permit(false)), transition),
            BreakerState::HalfOpen => {
                let admitted = self.probes_in_flight.fetch_add(1, Ordering::AcqRel);
                if admitted < self.config.half_open_probes {
                    (Ok(self.permit(true)), transition)
                } else {
                    self.probes_in_flight.fetch_sub(1, Ordering::AcqRel);
                    (Err(()), transition)
                }
            }
            BreakerState::Open => (Err(()), transition),
        }
    }

    fn permit(&self, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            probe,
            reported: false,
        }
    }

    /// Reports a successful call.
    pub fn on_success(&self, mut permit: Permit<'_>) -> Option<Transition> {
        permit.reported = true;
        if permit.probe {
            self.probes_in_flight.fetch_sub(1, Ordering::AcqRel);
            let ok = self.probe_successes.fetch_add(1, Ordering::AcqRel) + 1;
            if ok >= self.config.success_threshold
                && self.transition(BreakerState::HalfOpen, BreakerState::Closed)
            {
                return Some((BreakerState::HalfOpen, BreakerState::Closed));
            }
            return None;
        }
        // The common path: one load, and a store only after failures.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if let Some(w) = &self.window {
            w.record(self.now_ns(), false);
        }
        None
    }

    /// Reports a failed call (a timeout counts as one).
    pub fn on_failure(
        &self,
        mut permit: Permit<'_>,
        error: &dyn fmt::Display,
    ) -> Option<Transition> {
        permit.reported = true;
        self.detail().last_error = Some(error.to_string());
        if permit.probe {
            self.probes_in_flight.fetch_sub(1, Ordering::AcqRel);
            return self
                .transition(BreakerState::HalfOpen, BreakerState::Open)
                .then_some((BreakerState::HalfOpen, BreakerState::Open));
        }
        if self.state() != BreakerState::Closed {
            // Admitted while closed, finished after another call opened it.
            return None;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let trip = match self.config.trip {
            Trip::ConsecutiveFailures(n) => failures >= n,
            Trip::FailureRate {
                threshold,
                min_calls,
                ..
            } => match &self.window {
                Some(w) => {
                    let now = self.now_ns();
                    w.record(now, true);
                    let (calls, failed) = w.totals(now);
                    calls >= min_calls && f64::from(failed) >= threshold * f64::from(calls)
                }
                None => false,
            },
        };
        (trip && self.transition(BreakerState::Closed, BreakerState::Open))
            .then_some((BreakerState::Closed, BreakerState::Open))
    }

    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves `from` → `to` if the state is still `from`; exactly one caller
    /// wins a race.
    fn transition(&self, from: BreakerState, to: BreakerState) -> bool {
        let mut detail = self.detail();
        if to == BreakerState::Open {
            self.opened_at_ns.store(self.now_ns(), Ordering::Release);
        }
        if self
            .state
            .compare_exchange(
                from.as_u8(),
                to.as_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        match to {
            BreakerState::Closed => {
                self.consecutive_failures.store(0, Ordering::Release);
                if let Some(w) = &self.window {
                    w.reset();
                }
            }
            BreakerState::Open | BreakerState::HalfOpen => {
                self.probes_in_flight.store(0, Ordering::Release);
                self.probe_successes.store(0, Ordering::Release);
            }
        }
        detail.last_transition = Some(Instant::now());
        detail.transitions += 1;
        drop(detail);
        if let Some(hook) = &self.hook {
            hook(&self.key, from, to);
        }
        true
    }

    /// A snapshot for health monitoring.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let (window_calls, window_failures) = self
            .window
            .as_ref()
            .map_or((0, 0), |w| w.totals(self.now_ns()));
        let detail = self.detail();
        BreakerSnapshot {
            key: self.key.clone(),
            state: self.state(),
            consecutive_failures: self.consecutive_failures.load(Ordering::Acquire),
            window_calls,
            window_failures,
            last_error: detail.last_error.clone(),
            last_transition: detail.last_transition,
            transitions: detail.transitions,
        }
    }
}
