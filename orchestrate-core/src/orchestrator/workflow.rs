//! A plan bound to the orchestrator's agents.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use orchestrate_graph::{Plan, WorkflowDef};
use orchestrate_resilience::Policy;

use super::policies::Policies;
use crate::agent::BoxAgent;
use crate::error::Error;

/// A validated workflow whose every step is bound to a registered agent.
/// Cheap to clone; made by [`Orchestrator::bind`](crate::Orchestrator::bind).
#[derive(Clone)]
pub struct Workflow {
    pub(crate) inner: Arc<Bound>,
}

pub(crate) struct Bound {
    pub(crate) plan: Plan,
    /// The agent of each step, by plan index.
    pub(crate) agents: Vec<BoxAgent>,
    /// Each step's agent slot, for per-agent concurrency.
    pub(crate) slots: Vec<usize>,
    /// Limit per agent slot; 0 means no per-agent limit.
    pub(crate) slot_limits: Vec<usize>,
    /// The resilience policy of each step, by plan index.
    pub(crate) policies: Vec<Policy>,
    /// Every step id in plan order, shared by every execution's start event.
    pub(crate) step_ids: Arc<[Arc<str>]>,
}

impl Workflow {
    pub(crate) fn bind(
        def: &WorkflowDef,
        agents: &HashMap<String, BoxAgent>,
        agent_limits: &HashMap<String, usize>,
        policies: &Policies,
    ) -> Result<Self, Error> {
        let plan = Plan::new(def)?;
        Self::bind_plan(plan, agents, agent_limits, policies)
    }

    pub(crate) fn bind_plan(
        plan: Plan,
        agents: &HashMap<String, BoxAgent>,
        agent_limits: &HashMap<String, usize>,
        policies: &Policies,
    ) -> Result<Self, Error> {
        let mut bound = Vec::with_capacity(plan.len());
        let mut slots = Vec::with_capacity(plan.len());
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut slot_limits = Vec::new();
        let mut slot_policies: Vec<Policy> = Vec::new();
        let mut step_policies = Vec::with_capacity(plan.len());
        for step in plan.steps() {
            let agent = agents
                .get(&**step.agent())
                .ok_or_else(|| Error::UnknownAgent {
                    workflow: plan.name().clone(),
                    step: step.id().clone(),
                    agent: step.agent().clone(),
                })?;
            bound.push(agent.clone());
            let next = slot_of.len();
            let slot = *slot_of.entry(step.agent()).or_insert(next);
            if slot == slot_limits.len() {
                slot_limits.push(agent_limits.get(&**step.agent()).copied().unwrap_or(0));
                slot_policies.push(policies.for_agent(step.agent()));
            }
            slots.push(slot);
            step_policies.push(Policies::for_step(&slot_policies[slot], step.policy()));
        }
        Ok(Self {
            inner: Arc::new(Bound {
                step_ids: plan.steps().iter().map(|s| s.id().clone()).collect(),
                plan,
                agents: bound,
                slots,
                slot_limits,
                policies: step_policies,
            }),
        })
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        self.inner.plan.name()
    }
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name())
            .field("steps", &self.inner.plan.len())
            .finish()
    }
}
