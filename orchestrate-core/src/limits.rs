//! Limits and defaults applied by the orchestrator.

use std::collections::HashMap;
use std::time::Duration;

/// Concurrency limits, default policies and retention settings.
///
/// Concurrency limits apply within one execution: at most
/// `max_concurrency` of its steps run at once, and at most
/// `agent_concurrency[name]` of them on one agent.
///
/// Set through [`OrchestratorBuilder`](crate::OrchestratorBuilder), read
/// through [`Orchestrator::limits`](crate::Orchestrator::limits);
/// non-exhaustive, so that a new limit is not a breaking change.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Steps of one execution running at once (default 10).
    pub max_concurrency: usize,
    /// Per-agent caps within one execution; agents not listed are limited
    /// only by `max_concurrency`.
    pub agent_concurrency: HashMap<String, usize>,
    /// How long running attempts get to return after cancellation before
    /// they are dropped (default 5 s).
    pub cancel_grace: Duration,
    /// How long an idempotency key maps to its execution (default 10 min).
    pub idempotency_ttl: Duration,
    /// Custom events one execution may emit (default 10,000).
    pub max_custom_events: u32,
    /// Where the steps of an execution run (default [`StepTasks::Inline`]).
    pub step_tasks: StepTasks,
    /// How deep calls may nest below a step (default 64): a step's own
    /// calls are at depth 1.
    pub max_call_depth: u32,
    /// Replay only (default off): a resumed execution's call or side effect
    /// that its journal does not hold fails as
    /// [`NonDeterministic`](crate::Error::NonDeterministic) instead of
    /// running, and an attempt that ends having made fewer calls and side
    /// effects than its record fails alike, naming the first one it did
    /// not make. For replay checkers (`orchestrate_testing::replay`), which
    /// run an execution again against its own journal.
    pub strict_replay: bool,
    /// Thresholds of an allocation, in percent, each journaled once per
    /// account when its consumption reaches it (default 50, 80, 100; see
    /// [`budget`](crate::budget)).
    pub budget_thresholds: Vec<u8>,
    /// How often, while executions run here, the orchestrator looks in the
    /// store for cancellations another process asked for with
    /// [`request_cancel`](crate::Orchestrator::request_cancel) (default
    /// `None`: it does not look).
    pub cancel_requests: Option<Duration>,
}

/// Where the attempts of a step run.
///
/// Either way the steps of one execution run concurrently, up to
/// [`Limits::max_concurrency`]; what differs is whether they can also run
/// in parallel on several worker threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepTasks {
    /// Polled by the execution's own driver task, first as the step starts
    /// (a step whose agent does not wait finishes right there), then like
    /// the futures of a `FuturesUnordered`: no task spawned, no
    /// cross-thread wake-up per step. Right for agents that wait (model
    /// calls, tools, services),
    /// which is what agents mostly do. A step that computes for long holds
    /// up its execution's other steps: such an agent should move that work
    /// to `tokio::task::spawn_blocking`, or the orchestrator should use
    /// [`StepTasks::Spawned`].
    #[default]
    Inline,
    /// Each step in a tokio task of its own, so that the steps of one
    /// execution can compute in parallel on a multi-threaded runtime, at
    /// the price of a spawn and a wake-up across threads per step.
    Spawned,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrency: 10,
            agent_concurrency: HashMap::new(),
            cancel_grace: Duration::from_secs(5),
            idempotency_ttl: Duration::from_secs(600),
            max_custom_events: 10_000,
            step_tasks: StepTasks::Inline,
            max_call_depth: 64,
            strict_replay: false,
            budget_thresholds: crate::budget::DEFAULT_THRESHOLDS.to_vec(),
            cancel_requests: None,
        }
    }
}
