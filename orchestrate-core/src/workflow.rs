//! A plan bound to the orchestrator's agents.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use orchestrate_graph::{OnError, Plan, WorkflowDef};
use orchestrate_resilience::Policy;

use crate::agent::BoxAgent;
use crate::error::Error;
use crate::pattern::{PatternEnv, Patterns};
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

/// What a workflow is bound to: the orchestrator's agents, their limits
/// and policies, and its patterns.
pub(crate) struct Binder<'a> {
    pub(crate) agents: &'a HashMap<String, BoxAgent>,
    pub(crate) agent_limits: &'a HashMap<String, usize>,
    pub(crate) policies: &'a Policies,
    pub(crate) patterns: &'a Patterns,
}

impl Binder<'_> {
    /// The agent that runs step `i`: its registered agent, or the agent
    /// its pattern makes from its parameters.
    fn agent(&self, plan: &Plan, i: usize) -> Result<BoxAgent, Error> {
        let name = plan.agent_of(i);
        let Some(params) = plan.steps()[i].pattern_params() else {
            return self
                .agents
                .get(&**name)
                .cloned()
                .ok_or_else(|| Error::UnknownAgent {
                    workflow: plan.name().clone(),
                    step: plan.id(i).clone(),
                    agent: name.clone(),
                });
        };
        let pattern = self
            .patterns
            .get(name)
            .ok_or_else(|| Error::UnknownPattern {
                workflow: plan.name().clone(),
                step: plan.id(i).clone(),
                pattern: name.clone(),
            })?;
        let env = PatternEnv {
            step: plan.id(i),
            agents: self.agents,
            factories: &self.patterns.factories,
        };
        pattern
            .build(params, &env)
            .map_err(|error| Error::PatternParams {
                workflow: plan.name().clone(),
                step: plan.id(i).clone(),
                pattern: name.clone(),
                error,
            })
    }
}

impl Workflow {
    pub(crate) fn bind(def: &WorkflowDef, binder: &Binder<'_>) -> Result<Self, Error> {
        let plan = Plan::new(def)?;
        Self::bind_plan(plan, binder)
    }

    pub(crate) fn bind_plan(plan: Plan, binder: &Binder<'_>) -> Result<Self, Error> {
        // One slot per agent the plan names: its concurrency limit and
        // its policy (breaker, bulkhead) are the agent's. A pattern's
        // agent (or one that says it orchestrates) runs others, under
        // their own policies: unless its name has a policy, it gets one
        // attempt and no timeout.
        let slot_limits: Vec<usize> = plan
            .agents()
            .iter()
            .map(|a| binder.agent_limits.get(&**a).copied().unwrap_or(0))
            .collect();
        let mut slot_policies: Vec<Option<Policy>> = vec![None; plan.agents().len()];
        let mut bound = Vec::with_capacity(plan.len());
        let mut step_policies = Vec::with_capacity(plan.len());
        for (i, step) in plan.steps().iter().enumerate() {
            bound.push(binder.agent(&plan, i)?);
            let slot = step.agent_index();
            let name = plan.agent_of(i);
            let orchestrates = step.pattern_params().is_some() || bound[i].orchestrates();
            let base = slot_policies[slot]
                .get_or_insert_with(|| binder.policies.for_kind(name, orchestrates));
            if let OnError::Fallback(value) = &step.policy().on_error {
                crate::error::refuse_too_deep(Some(plan.id(i)), "fallback value", value)?;
            }
            step_policies.push(Policies::for_step(base, step.policy()));
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
