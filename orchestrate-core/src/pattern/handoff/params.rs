//! The handoff as a registered pattern: a JSON step's parameters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Gate, GateAction, Handoff};
use crate::agent::BoxAgent;
use crate::pattern::router::CapabilityRouter;
use crate::pattern::{params, ParamError, Pattern, PatternEnv};

/// `"pattern": "handoff"`: registered agents pass control; gates are
/// registered agents that judge replies; with `capabilities`, a
/// capability router picks the next agent when a turn names none.
///
/// ```json
/// {"start": "triage", "agents": ["triage", "billing", "tech"], "max_hops": 8,
///  "gates": [{"agent": "reviewer", "after": ["billing", "tech"], "on_fail": "retry"}],
///  "capabilities": {"billing": ["billing"], "tech": ["tech"]}, "cache_ttl_ms": 60000}
/// ```
pub(crate) struct HandoffPattern;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    start: String,
    #[serde(default)]
    agents: Vec<String>,
    max_hops: Option<u32>,
    #[serde(default)]
    gates: Vec<GateParams>,
    capabilities: Option<BTreeMap<String, Vec<String>>>,
    cache_ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateParams {
    agent: String,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    on_fail: GateAction,
}

impl Pattern for HandoffPattern {
    fn name(&self) -> &str {
        "handoff"
    }

    fn build(&self, raw: &Value, env: &PatternEnv<'_>) -> Result<BoxAgent, ParamError> {
        let p: Params = params(raw)?;
        env.require_agent("start", &p.start)?;
        for (i, name) in p.agents.iter().enumerate() {
            env.require_agent(&format!("agents[{i}]"), name)?;
        }
        if p.max_hops == Some(0) {
            return Err(ParamError::new("max_hops", "at least 1 hop"));
        }
        let mut builder = Handoff::builder(format!("handoff:{}", env.step()), &p.start)
            .agents(p.agents.iter().cloned())
            .max_hops(p.max_hops.unwrap_or(10));
        for (i, gate) in p.gates.into_iter().enumerate() {
            env.require_agent(&format!("gates[{i}].agent"), &gate.agent)?;
            builder = builder.gate(
                Gate::agent(gate.agent)
                    .after(gate.after)
                    .on_fail(gate.on_fail),
            );
        }
        if let Some(capabilities) = p.capabilities {
            let mut router = CapabilityRouter::new();
            for (name, can) in capabilities {
                if name != p.start && !p.agents.contains(&name) {
                    return Err(ParamError::new(
                        format!("capabilities.{name}"),
                        "not one of the handoff's agents",
                    ));
                }
                router = router.agent(name, can);
            }
            if let Some(ttl) = p.cache_ttl_ms {
                router = router.ttl(Duration::from_millis(ttl));
            }
            builder = builder.router(router);
        }
        Ok(std::sync::Arc::new(builder.build()?))
    }
}
