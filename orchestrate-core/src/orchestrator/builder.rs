//! [`OrchestratorBuilder`]: agents, store, bus, workflows, limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use orchestrate_graph::WorkflowDef;
use orchestrate_resilience::PolicyBuilder;

use super::{Inner, Orchestrator};
use crate::agent::{Agent, BoxAgent};
use crate::bus::{EventBus, MemoryBus};
use crate::error::Error;
use crate::limits::{Limits, StepTasks};
use crate::pattern::{AgentFactory, Pattern, Patterns};
use crate::policies::Policies;
use crate::store::{MemoryStore, Store};
use crate::workflow::{Binder, Workflow};

/// Configures an [`Orchestrator`]; made by [`Orchestrator::builder`].
///
/// Defaults: an in-memory store and bus, and [`Limits::default`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct OrchestratorBuilder {
    agents: HashMap<String, BoxAgent>,
    duplicate_agents: Vec<String>,
    store: Option<Arc<dyn Store>>,
    bus: Option<Arc<dyn EventBus>>,
    workflows: Vec<WorkflowDef>,
    limits: Limits,
    policies: Policies,
    patterns: Patterns,
}

impl std::fmt::Debug for OrchestratorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestratorBuilder")
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("workflows", &self.workflows.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl OrchestratorBuilder {
    pub(crate) fn new() -> Self {
        Self {
            agents: HashMap::new(),
            duplicate_agents: Vec::new(),
            store: None,
            bus: None,
            workflows: Vec::new(),
            limits: Limits::default(),
            policies: Policies::default(),
            patterns: Patterns::default(),
        }
    }

    /// Registers an agent under its [`Agent::name`].
    pub fn agent(self, agent: impl Agent) -> Self {
        self.agent_arc(Arc::new(agent))
    }

    /// Registers a shared agent under its [`Agent::name`].
    pub fn agent_arc(mut self, agent: BoxAgent) -> Self {
        let name = agent.name().to_owned();
        if self.agents.insert(name.clone(), agent).is_some() {
            self.duplicate_agents.push(name);
        }
        self
    }

    /// Registers the agent `factory` makes, under its
    /// [`Agent::name`], and keeps the factory: a pattern that restarts
    /// the agent (a [`Supervisor`](crate::pattern::Supervisor) worker that
    /// keeps failing) makes a fresh instance with it.
    pub fn agent_factory<A, F>(mut self, factory: F) -> Self
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let agent: BoxAgent = Arc::new(factory());
        let name = agent.name().to_owned();
        let factory: AgentFactory = Arc::new(move || Arc::new(factory()) as BoxAgent);
        self.patterns.factories.insert(name, factory);
        self.agent_arc(agent)
    }

    /// Registers `pattern` under its [`Pattern::name`], for workflow
    /// steps that name it (`"pattern": "<name>"`). The built-in patterns
    /// (`"supervisor"`) are registered already.
    pub fn pattern(mut self, pattern: impl Pattern) -> Self {
        self.patterns.add(Arc::new(pattern));
        self
    }

    /// Uses `store` for journals and the key-value area.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses `bus` to publish execution events.
    pub fn bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Registers a workflow; [`build`](Self::build) validates it and checks
    /// that every agent it names is registered.
    pub fn workflow(mut self, def: WorkflowDef) -> Self {
        self.workflows.push(def);
        self
    }

    /// Replaces all limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Steps of one execution running at once (default 10).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.limits.max_concurrency = n;
        self
    }

    /// Caps the steps of one execution running on agent `name` at once.
    pub fn agent_concurrency(mut self, name: impl Into<String>, n: usize) -> Self {
        self.limits.agent_concurrency.insert(name.into(), n);
        self
    }

    /// Where steps run (default [`StepTasks::Inline`]: polled by their
    /// execution's driver; [`StepTasks::Spawned`] for agents that compute).
    pub fn step_tasks(mut self, tasks: StepTasks) -> Self {
        self.limits.step_tasks = tasks;
        self
    }

    /// How deep calls may nest below a step (default 64); a deeper call
    /// fails with [`Error::CallTooDeep`].
    pub fn max_call_depth(mut self, depth: u32) -> Self {
        self.limits.max_call_depth = depth;
        self
    }

    /// The thresholds of an allocation, in percent, journaled once each
    /// per account (default 50, 80, 100).
    pub fn budget_thresholds(mut self, percents: impl IntoIterator<Item = u8>) -> Self {
        self.limits.budget_thresholds = percents.into_iter().collect();
        self
    }

    /// Replay only: see [`Limits::strict_replay`].
    pub fn strict_replay(mut self, strict: bool) -> Self {
        self.limits.strict_replay = strict;
        self
    }

    /// Looks in the store every `every`, while executions run here, for
    /// cancellations another process asked for (default: never). See
    /// [`Orchestrator::request_cancel`]. One query per look, whatever the
    /// number of executions; none while none runs.
    pub fn watch_cancel_requests(mut self, every: Duration) -> Self {
        self.limits.cancel_requests = Some(every);
        self
    }

    /// Grace period between cancellation and dropping attempts (default 5 s).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.limits.cancel_grace = grace;
        self
    }

    /// The resilience policy of agents without their own (default:
    /// [`default_policy`](crate::default_policy)). A step's `timeout_ms` and
    /// `retries` override its timeout and attempts.
    pub fn default_policy(mut self, policy: PolicyBuilder) -> Self {
        self.policies.default = policy;
        self
    }

    /// The resilience policy of agent `name`. Its breaker, bulkhead and rate
    /// limiter are keyed by the agent name, so every step calling the agent
    /// shares them.
    pub fn agent_policy(mut self, name: impl Into<String>, policy: PolicyBuilder) -> Self {
        self.policies.per_agent.insert(name.into(), policy);
        self
    }

    /// How long idempotency keys are remembered (default 10 min).
    pub fn idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.limits.idempotency_ttl = ttl;
        self
    }

    /// Validates the registered workflows and builds the orchestrator.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an invalid workflow, [`Error::UnknownAgent`]
    /// for a step naming an agent that was not registered,
    /// [`Error::ValueTooDeep`] for a fallback value nested too deeply, and
    /// [`Error::DuplicateAgent`] when two agents share a name,
    /// [`Error::UnknownPattern`] for a step naming a pattern that was not
    /// registered, [`Error::PatternParams`] for a step's parameters its
    /// pattern refuses, and [`Error::DuplicatePattern`] when two patterns
    /// share a name.
    pub fn build(mut self) -> Result<Orchestrator, Error> {
        if let Some(name) = self.duplicate_agents.into_iter().next() {
            return Err(Error::DuplicateAgent { agent: name.into() });
        }
        if let Some(name) = self.patterns.duplicate.take() {
            return Err(Error::DuplicatePattern {
                pattern: name.into(),
            });
        }
        let mut workflows = HashMap::new();
        let binder = Binder {
            agents: &self.agents,
            agent_limits: &self.limits.agent_concurrency,
            policies: &self.policies,
            patterns: &self.patterns,
        };
        for def in &self.workflows {
            workflows.insert(def.name.clone(), Workflow::bind(def, &binder)?);
        }
        let limits = Limits {
            max_concurrency: self.limits.max_concurrency.max(1),
            ..self.limits
        };
        Ok(Orchestrator {
            inner: Arc::new(Inner::new(
                self.agents,
                self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                self.bus.unwrap_or_else(|| Arc::new(MemoryBus::new())),
                workflows,
                limits,
                self.policies,
                self.patterns,
            )),
        })
    }
}
