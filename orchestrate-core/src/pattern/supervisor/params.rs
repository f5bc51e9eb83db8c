//! The supervisor as a registered pattern: a JSON step's parameters.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{RestartPolicy, Strategy, Supervisor, Worker};
use crate::agent::BoxAgent;
use crate::pattern::router::CapabilityRouter;
use crate::pattern::{params, ParamError, Pattern, PatternEnv};

/// `"pattern": "supervisor"`: its parameters name registered agents as
/// workers (restarted with their factory when they were registered with
/// [`agent_factory`](crate::OrchestratorBuilder::agent_factory)).
///
/// ```json
/// {"workers": ["ocr-1", "ocr-2"], "strategy": "capability", "limit": 8,
///  "max_reassign": 2, "capabilities": {"ocr-1": ["ocr"], "ocr-2": ["ocr", "pdf"]},
///  "cache_ttl_ms": 60000,
///  "restart": {"after_failures": 3, "restarts_per_worker": 1,
///              "max_restarts": 5, "period_ms": 60000}}
/// ```
pub(crate) struct SupervisorPattern;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    workers: Vec<String>,
    #[serde(default)]
    strategy: Strategy,
    limit: Option<usize>,
    max_reassign: Option<u32>,
    restart: Option<RestartParams>,
    /// For `"strategy": "capability"`: what each worker can do.
    capabilities: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// For `"strategy": "capability"`: how long a routing stays cached.
    cache_ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartParams {
    after_failures: Option<u32>,
    restarts_per_worker: Option<u32>,
    max_restarts: Option<u32>,
    period_ms: Option<u64>,
}

impl Pattern for SupervisorPattern {
    fn name(&self) -> &str {
        "supervisor"
    }

    fn build(&self, raw: &Value, env: &PatternEnv<'_>) -> Result<BoxAgent, ParamError> {
        let p: Params = params(raw)?;
        let mut workers = Vec::with_capacity(p.workers.len());
        for (i, name) in p.workers.iter().enumerate() {
            let param = format!("workers[{i}]");
            let agent = env.require_agent(&param, name)?;
            workers.push(match env.factory(name) {
                Some(factory) => Worker::with_factory(factory.clone()),
                None => Worker::shared(agent.clone()),
            });
        }
        let mut builder = Supervisor::builder(format!("supervisor:{}", env.step()))
            .workers(workers)
            .strategy(p.strategy);
        match (p.strategy, p.capabilities) {
            (Strategy::Capability, Some(capabilities)) => {
                let mut router = CapabilityRouter::new();
                for (name, can) in capabilities {
                    if !p.workers.contains(&name) {
                        return Err(ParamError::new(
                            format!("capabilities.{name}"),
                            "not one of the workers",
                        ));
                    }
                    router = router.agent(name, can);
                }
                if let Some(ttl) = p.cache_ttl_ms {
                    router = router.ttl(Duration::from_millis(ttl));
                }
                builder = builder.router(router);
            }
            (Strategy::Capability, None) => {
                return Err(ParamError::new(
                    "capabilities",
                    "the capability strategy needs what each worker can do",
                ))
            }
            (_, Some(_)) => {
                return Err(ParamError::new(
                    "capabilities",
                    "only the capability strategy routes by capabilities",
                ))
            }
            (_, None) => {}
        }
        if let Some(limit) = p.limit {
            if limit == 0 {
                return Err(ParamError::new("limit", "at least 1 task must run at once"));
            }
            builder = builder.limit(limit);
        }
        if let Some(n) = p.max_reassign {
            builder = builder.max_reassign(n);
        }
        if let Some(r) = p.restart {
            let default = RestartPolicy::default();
            if r.after_failures == Some(0) {
                return Err(ParamError::new(
                    "restart.after_failures",
                    "at least 1 failure makes a worker unhealthy",
                ));
            }
            builder = builder.restart(
                default
                    .after_failures(r.after_failures.unwrap_or(default.after_failures))
                    .restarts_per_worker(
                        r.restarts_per_worker.unwrap_or(default.restarts_per_worker),
                    )
                    .intensity(
                        r.max_restarts.unwrap_or(default.max_restarts),
                        r.period_ms.map_or(default.period, Duration::from_millis),
                    ),
            );
        }
        Ok(std::sync::Arc::new(builder.build()?))
    }
}
