//! A plan bound to the orchestrator's agents.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use orchestrate_graph::{OnError, Plan, WorkflowDef};
use orchestrate_resilience::Policy;

use crate::agent::BoxAgent;
use crate::error::Error;
use crate::policies::Policies;

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
    /// Limit per agent slot (a slot is the plan's index of the agent, see
    /// [`Bound::slot`]); 0 means no per-agent limit.
    pub(crate) slot_limits: Vec<usize>,
    /// The resilience policy of each step, by plan index.
    pub(crate) policies: Vec<Policy>,
    /// Every step id in plan order, shared by every execution's start event.
    pub(crate) step_ids: Arc<[Arc<str>]>,
}

impl Bound {
    /// The agent slot of step `i`: its agent's index in the plan.
    pub(crate) fn slot(&self, i: usize) -> usize {
        self.plan.steps()[i].agent_index()
    }
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
        // One slot per agent the plan names: its concurrency limit and
        // its policy (breaker, bulkhead) are the agent's.
        let slot_limits: Vec<usize> = plan
            .agents()
            .iter()
            .map(|a| agent_limits.get(&**a).copied().unwrap_or(0))
            .collect();
        let slot_policies: Vec<Policy> = plan
            .agents()
            .iter()
            .map(|a| policies.for_agent(a))
            .collect();
        let mut bound = Vec::with_capacity(plan.len());
        let mut step_policies = Vec::with_capacity(plan.len());
        for (i, step) in plan.steps().iter().enumerate() {
            let name = plan.agent_of(i);
            let agent = agents.get(&**name).ok_or_else(|| Error::UnknownAgent {
                workflow: plan.name().clone(),
                step: plan.id(i).clone(),
                agent: name.clone(),
            })?;
            bound.push(agent.clone());
            if let OnError::Fallback(value) = &step.policy().on_error {
                crate::error::refuse_too_deep(Some(plan.id(i)), "fallback value", value)?;
            }
            let slot = step.agent_index();
            step_policies.push(Policies::for_step(&slot_policies[slot], step.policy()));
        }
        Ok(Self {
            inner: Arc::new(Bound {
                step_ids: plan.ids().into(),
                plan,
                agents: bound,
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
