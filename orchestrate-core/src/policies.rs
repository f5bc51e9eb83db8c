//! Which resilience policy wraps each step's attempts.

use std::collections::HashMap;
use std::time::Duration;

use orchestrate_graph::StepPolicy;
use orchestrate_resilience::{
    BreakerConfig, BreakerSnapshot, BulkheadConfig, Key, Policy, PolicyBuilder, Registry,
    RetryConfig,
};

/// The policy every agent gets unless overridden: a 30 s attempt timeout,
/// 3 attempts with exponential backoff (1 s base, factor 2, proportional
/// jitter), a circuit breaker opening after 5 consecutive failures for 60 s,
/// and a bulkhead of 1,000 concurrent calls with 100,000 waiting.
///
/// Start from it to change one part:
///
/// ```
/// use orchestrate_core::{default_policy, Orchestrator};
/// use orchestrate_core::resilience::RetryConfig;
///
/// let orchestrator = Orchestrator::builder()
///     .default_policy(default_policy().retry(RetryConfig::attempts(5)))
///     .build()
///     .unwrap();
/// # let _ = orchestrator;
/// ```
pub fn default_policy() -> PolicyBuilder {
    Policy::builder()
        .timeout(Duration::from_secs(30))
        .retry(RetryConfig::default())
        .circuit_breaker(BreakerConfig::default())
        .bulkhead(BulkheadConfig::new(1_000, 100_000))
}

/// The default, the per-agent overrides, and the registry where breakers,
/// bulkheads and rate limiters live (keyed by agent name).
#[derive(Clone, Debug)]
pub(crate) struct Policies {
    pub(crate) default: PolicyBuilder,
    pub(crate) per_agent: HashMap<String, PolicyBuilder>,
    pub(crate) registry: Registry,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            default: default_policy(),
            per_agent: HashMap::new(),
            registry: Registry::new(),
        }
    }
}

impl Policies {
    /// The policy of `agent`, joined to its keyed state in the registry.
    pub(crate) fn for_agent(&self, agent: &str) -> Policy {
        self.per_agent
            .get(agent)
            .unwrap_or(&self.default)
            .clone()
            .registry(&self.registry)
            .key(agent)
            .build()
    }

    /// The policy of agent `name`, which `orchestrates` others or not
    /// (see [`Agent::orchestrates`](crate::Agent::orchestrates)).
    pub(crate) fn for_kind(&self, name: &str, orchestrates: bool) -> Policy {
        if orchestrates {
            self.for_pattern(name)
        } else {
            self.for_agent(name)
        }
    }

    /// The policy of a step running pattern `name`: its agent's, when
    /// one was set for that name; otherwise one attempt and no timeout
    /// (the pattern's calls have their agents' policies).
    pub(crate) fn for_pattern(&self, name: &str) -> Policy {
        match self.per_agent.get(name) {
            Some(_) => self.for_agent(name),
            None => Policy::builder()
                .retry(RetryConfig::attempts(1))
                .registry(&self.registry)
                .key(name)
                .build(),
        }
    }

    /// `base` with a step's own `timeout_ms` and `retries`, sharing its state.
    pub(crate) fn for_step(base: &Policy, step: &StepPolicy) -> Policy {
        let mut policy = base.clone();
        if let Some(timeout) = step.timeout {
            policy = policy.with_timeout(Some(timeout));
        }
        if let Some(retries) = step.retries {
            policy = policy.with_max_attempts(retries.saturating_add(1));
        }
        policy
    }

    pub(crate) fn breaker(&self, agent: &str) -> Option<BreakerSnapshot> {
        self.registry
            .circuit_breaker(&Key::new(agent))
            .map(|b| b.snapshot())
    }
}
