//! A workflow run as a call ([`Context::run_workflow`]): its steps run as
//! they become ready, each a call named by its step id below the workflow's
//! own call, so that the journal, replay and the call tree hold them like
//! any call.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use orchestrate_graph::template::Scope;
use orchestrate_graph::{OnError, Plan, WorkflowDef};
use orchestrate_resilience::{Policy, RetryConfig};
use serde_json::{Map, Value};

use super::targets::CallTarget;
use crate::agent::Agent;
use crate::call::CallOptions;
use crate::context::Context;
use crate::error::{AgentError, Error};

/// The call target that runs `def`: its own policy is one attempt and no
/// timeout (its steps' calls have their agents' policies).
pub(super) fn target(def: &WorkflowDef) -> Result<CallTarget, Error> {
    let plan = Plan::new(def)?;
    let name = format!("workflow:{}", def.name);
    Ok(CallTarget {
        name: name.as_str().into(),
        agent: Arc::new(SubWorkflow { name, plan }),
        policy: Policy::builder().retry(RetryConfig::attempts(1)).build(),
        limit: 0,
    })
}

struct SubWorkflow {
    name: String,
    plan: Plan,
}

struct Outputs<'a> {
    input: &'a Value,
    outputs: &'a [Option<Value>],
}

impl Scope for Outputs<'_> {
    fn input(&self) -> &Value {
        self.input
    }

    fn step_output(&self, index: usize) -> Option<&Value> {
        self.outputs.get(index)?.as_ref()
    }
}

/// How a step of the sub-workflow ended.
enum Ended {
    Output(Value),
    /// Failed under `on_error: continue`, or skipped: its dependents skip.
    Nothing,
}

#[async_trait]
impl Agent for SubWorkflow {
    fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        let plan = &self.plan;
        let n = plan.len();
        let mut outputs: Vec<Option<Value>> = vec![None; n];
        let mut remaining: Vec<usize> = (0..n).map(|i| plan.deps(i).len()).collect();
        let mut blocked = vec![false; n];
        let mut ready: VecDeque<usize> = plan.entries().collect();
        let mut running = FuturesUnordered::new();
        let mut ended: Vec<(usize, Ended)> = Vec::new();
        loop {
            while let Some(i) = ready.pop_front() {
                let step = &plan.steps()[i];
                let scope = Outputs {
                    input: &input,
                    outputs: &outputs,
                };
                let skip = blocked[i] || step.condition().is_some_and(|c| !c.evaluate(&scope));
                if skip {
                    ended.push((i, Ended::Nothing));
                    continue;
                }
                let step_input = step
                    .input()
                    .evaluate(plan.id(i), &scope)
                    .map_err(Error::Interpolation)?;
                let call = ctx.call_named(
                    plan.id(i),
                    plan.agent_of(i),
                    step_input,
                    CallOptions::new().label(plan.id(i).to_string()),
                );
                running.push(async move { (i, call.await) });
            }
            for (i, end) in ended.drain(..) {
                let output = matches!(end, Ended::Output(_));
                if let Ended::Output(v) = end {
                    outputs[i] = Some(v);
                }
                for &d in plan.dependents(i) {
                    blocked[d] |= !output;
                    remaining[d] -= 1;
                    if remaining[d] == 0 {
                        ready.push_back(d);
                    }
                }
            }
            if !ready.is_empty() {
                continue;
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            let end = match result {
                Ok(output) => Ended::Output(output),
                Err(error) => match &plan.steps()[i].policy().on_error {
                    OnError::Fail => return Err(error.into()),
                    OnError::Continue => Ended::Nothing,
                    OnError::Fallback(value) => Ended::Output(value.clone()),
                },
            };
            ended.push((i, end));
        }
        let mut out = Map::new();
        for (i, output) in outputs.into_iter().enumerate() {
            if let Some(output) = output {
                out.insert(plan.id(i).to_string(), output);
            }
        }
        Ok(Value::Object(out))
    }
}
