//! Limits and defaults applied by the orchestrator.

use std::collections::HashMap;
use std::time::Duration;

/// Concurrency limits, default policies and retention settings.
///
/// Concurrency limits apply within one execution: at most
/// `max_concurrency` of its steps run at once, and at most
/// `agent_concurrency[name]` of them on one agent.
#[derive(Clone, Debug)]
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrency: 10,
            agent_concurrency: HashMap::new(),
            cancel_grace: Duration::from_secs(5),
            idempotency_ttl: Duration::from_secs(600),
            max_custom_events: 10_000,
        }
    }
}
