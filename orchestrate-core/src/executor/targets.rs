//! What calls may run: the registered agents, and the agent instances
//! patterns call (their workers), each with its policy and limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use orchestrate_resilience::{BreakerSnapshot, Policy};

use crate::agent::BoxAgent;
use crate::fast_map::FastMap;
use crate::limits::Limits;
use crate::policies::Policies;

/// An agent a call may run, with its policy and its per-execution
/// concurrency limit (0: none).
#[derive(Clone)]
pub(crate) struct CallTarget {
    /// The agent's name, shared by every call's events.
    pub(crate) name: Arc<str>,
    pub(crate) agent: BoxAgent,
    pub(crate) policy: Policy,
    pub(crate) limit: usize,
}

/// Every registered agent by name, made once per orchestrator, and the
/// instances calls were made to, made at their first call.
pub(crate) struct CallTargets {
    registered: FastMap<String, CallTarget>,
    policies: Policies,
    agent_limits: HashMap<String, usize>,
    /// The last instance called under each name that is not the
    /// registered one: a pattern's workers, called many times each.
    instances: Mutex<FastMap<Arc<str>, CallTarget>>,
}

impl CallTargets {
    pub(crate) fn new(
        agents: &HashMap<String, BoxAgent>,
        policies: &Policies,
        limits: &Limits,
    ) -> Self {
        let registered = agents
            .iter()
            .map(|(name, agent)| {
                let target = CallTarget {
                    name: name.as_str().into(),
                    agent: agent.clone(),
                    policy: policies.for_kind(name, agent.orchestrates()),
                    limit: limits.agent_concurrency.get(name).copied().unwrap_or(0),
                };
                (name.clone(), target)
            })
            .collect();
        Self {
            registered,
            policies: policies.clone(),
            agent_limits: limits.agent_concurrency.clone(),
            instances: Mutex::default(),
        }
    }

    /// The registered agent `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&CallTarget> {
        self.registered.get(name)
    }

    /// The target of instance `agent`, under its name's policy and limit.
    pub(crate) fn instance(&self, agent: &BoxAgent) -> CallTarget {
        let name = agent.name();
        if let Some(target) = self.registered.get(name) {
            if same(&target.agent, agent) {
                return target.clone();
            }
        }
        let mut instances = self
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(target) = instances.get(name) {
            if same(&target.agent, agent) {
                return target.clone();
            }
        }
        let target = CallTarget {
            name: name.into(),
            agent: agent.clone(),
            policy: self.policies.for_kind(name, agent.orchestrates()),
            limit: self.agent_limits.get(name).copied().unwrap_or(0),
        };
        instances.insert(target.name.clone(), target.clone());
        target
    }

    /// A snapshot of agent `name`'s breaker.
    pub(crate) fn breaker(&self, name: &str) -> Option<BreakerSnapshot> {
        self.policies.breaker(name)
    }
}

/// Whether `a` and `b` are one instance (data pointers compared: two
/// vtables of one type may differ across codegen units).
fn same(a: &BoxAgent, b: &BoxAgent) -> bool {
    std::ptr::eq(Arc::as_ptr(a).cast::<()>(), Arc::as_ptr(b).cast::<()>())
}
