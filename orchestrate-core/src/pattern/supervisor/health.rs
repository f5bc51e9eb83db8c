//! What a supervisor knows of its workers during a run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use orchestrate_resilience::BreakerState;

use super::Worker;
use crate::agent::BoxAgent;

/// Whether a worker is given tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerState {
    /// It is given tasks.
    Active,
    /// It kept failing past its restarts: it is given no more tasks.
    Quarantined,
}

/// One worker's health in a supervisor's run
/// ([`Supervisor::health`](super::Supervisor::health)).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// The worker's agent name.
    pub name: Arc<str>,
    /// Whether it is given tasks.
    pub state: WorkerState,
    /// Tasks it runs now.
    pub in_flight: u32,
    /// Tasks it completed.
    pub successes: u64,
    /// Tasks it failed.
    pub failures: u64,
    /// Tasks it failed since its last success or restart.
    pub consecutive_failures: u32,
    /// Times it was restarted.
    pub restarts: u32,
    /// Its mean time per task, once it ended one.
    pub mean_latency: Option<Duration>,
    /// Its circuit breaker's state when it last failed (or last
    /// succeeded after a failure); `None` before, or without a breaker.
    pub breaker: Option<BreakerState>,
}

/// One worker during a run.
pub(super) struct Slot {
    pub(super) name: Arc<str>,
    pub(super) instance: BoxAgent,
    pub(super) state: WorkerState,
    pub(super) in_flight: u32,
    pub(super) successes: u64,
    pub(super) failures: u64,
    pub(super) consecutive: u32,
    pub(super) restarts: u32,
    pub(super) latency: Duration,
    pub(super) breaker: Option<BreakerState>,
    /// Which instance runs: 0, then one more per restart. A call's failure
    /// counts towards a restart only when the instance that ran it still
    /// does.
    pub(super) generation: u32,
}

/// The workers of one run, and what the strategies and the restart
/// intensity keep between tasks.
pub(super) struct Pool {
    pub(super) slots: Vec<Slot>,
    /// Round robin's next worker.
    pub(super) cursor: usize,
    /// Power of two choices' generator state (never 0).
    pub(super) rng: u64,
    /// When recent restarts happened, in ms since the Unix epoch, oldest
    /// first.
    pub(super) restarts: VecDeque<u64>,
    /// Each worker's index by name, for replayed assignments.
    by_name: crate::fast_map::FastMap<Arc<str>, usize>,
}

impl Pool {
    pub(super) fn new(workers: &[Worker], seed: u64) -> Self {
        let slots: Vec<Slot> = workers
            .iter()
            .map(|w| Slot {
                name: w.name().into(),
                instance: w.first.clone(),
                state: WorkerState::Active,
                in_flight: 0,
                successes: 0,
                failures: 0,
                consecutive: 0,
                restarts: 0,
                latency: Duration::ZERO,
                breaker: None,
                generation: 0,
            })
            .collect();
        Self {
            by_name: slots
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
            slots,
            cursor: 0,
            rng: seed | 1,
            restarts: VecDeque::new(),
        }
    }

    pub(super) fn health(&self) -> Vec<WorkerHealth> {
        self.slots
            .iter()
            .map(|s| {
                let ended = s.successes + s.failures;
                WorkerHealth {
                    name: s.name.clone(),
                    state: s.state,
                    in_flight: s.in_flight,
                    successes: s.successes,
                    failures: s.failures,
                    consecutive_failures: s.consecutive,
                    restarts: s.restarts,
                    mean_latency: (ended > 0)
                        .then(|| s.latency / u32::try_from(ended).unwrap_or(u32::MAX)),
                    breaker: s.breaker,
                }
            })
            .collect()
    }

    /// The worker named `name`.
    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}
