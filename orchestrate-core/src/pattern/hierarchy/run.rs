//! One node's work: a leaf's call, or a manager's decomposition,
//! delegations, resolutions and join.

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Config, HierarchyError, Resolve};
use crate::call::CallOptions;
use crate::context::Context;
use crate::error::{AgentError, Error};
use crate::pattern::fail;

/// The key of a node's output that says it escalates.
const ESCALATION: &str = "$escalation";
/// The key of a node's output that says its branch was stopped (its
/// budget overrun).
const STOPPED: &str = "$stopped";

/// An escalation, as a node's output carries it up.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Escalation {
    /// The nodes it came through, from the one it started at up.
    path: Vec<String>,
    reason: String,
}

fn escalation(path: Vec<String>, reason: String) -> Value {
    json!({ ESCALATION: Escalation { path, reason } })
}

fn escalation_of(output: &Value) -> Option<Escalation> {
    serde_json::from_value(output.get(ESCALATION)?.clone()).ok()
}

fn stopped(node: &str, reason: String) -> Value {
    json!({ STOPPED: {"node": node, "reason": reason} })
}

/// A budget refused: the branch stops.
fn overrun(error: &Error) -> bool {
    match error {
        Error::BudgetExceeded(_) => true,
        Error::CallFailed { cause, .. } => {
            cause.code == "budget_exceeded" || cause.origin.as_deref() == Some("budget_exceeded")
        }
        _ => false,
    }
}

/// Errors that end the run rather than escalate: a terminated child's
/// too (someone stopped that subtree on purpose).
fn ends_the_run(error: &Error) -> bool {
    crate::pattern::ends_the_run(error) || matches!(error, Error::Terminated { .. })
}

pub(super) async fn run_root(
    config: &Config,
    task: Value,
    ctx: &Context,
) -> Result<Value, AgentError> {
    let output = run_node(config, config.root, task, ctx).await?;
    match escalation_of(&output) {
        Some(e) => Err(fail(HierarchyError::Unresolved {
            hierarchy: config.name.clone(),
            path: e.path,
            reason: e.reason,
        })),
        None => Ok(output),
    }
}

pub(super) async fn run_node(
    config: &Config,
    index: usize,
    task: Value,
    ctx: &Context,
) -> Result<Value, AgentError> {
    let node = &config.nodes[index];
    let here = || vec![node.name.clone()];
    if !node.manager {
        return match ctx.call(&node.agent, task).await {
            Ok(output) => {
                let confidence = output.get("confidence").and_then(Value::as_f64);
                match (config.confidence, confidence) {
                    (Some(threshold), Some(c)) if c < threshold => Ok(escalation(
                        here(),
                        format!("confidence {c} is below {threshold}"),
                    )),
                    _ => Ok(output),
                }
            }
            Err(error) if overrun(&error) => Ok(stopped(&node.name, error.to_string())),
            Err(error) if ends_the_run(&error) => Err(error.into()),
            Err(error) => Ok(escalation(here(), error.to_string())),
        };
    }

    let planned = match ctx.call(&node.agent, task.clone()).await {
        Ok(planned) => planned,
        Err(error) if overrun(&error) => return Ok(stopped(&node.name, error.to_string())),
        Err(error) if ends_the_run(&error) => return Err(error.into()),
        Err(error) => return Ok(escalation(here(), error.to_string())),
    };
    // A decomposition that makes no sense is this manager's failure: its
    // parent hears of it as of any other.
    let subtasks = match subtasks(config, index, planned) {
        Ok(subtasks) => subtasks,
        Err(error) => return Ok(escalation(here(), error.to_string())),
    };
    // Each subtask's turn among those of its role: children of a role
    // take that role's subtasks in turn.
    let mut turns: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let turns: Vec<usize> = subtasks
        .iter()
        .map(|(role, _)| {
            let turn = turns.entry(role.as_str()).or_default();
            *turn += 1;
            *turn - 1
        })
        .collect();
    let outcomes = join_all(
        subtasks
            .into_iter()
            .zip(turns)
            .enumerate()
            .map(|(k, ((role, sub), turn))| delegate(config, index, k, turn, role, sub, ctx)),
    )
    .await;
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let output = outcome?;
        if let Some(mut e) = escalation_of(&output) {
            e.path.push(node.name.clone());
            return Ok(escalation(e.path, e.reason));
        }
        results.push(output);
    }
    match &node.join {
        Some(join) => {
            let input = json!({"task": task, "results": results});
            match ctx
                .call_with(join, input, CallOptions::new().key("join"))
                .await
            {
                Ok(joined) => Ok(joined),
                Err(error) if overrun(&error) => Ok(stopped(&node.name, error.to_string())),
                Err(error) if ends_the_run(&error) => Err(error.into()),
                Err(error) => Ok(escalation(here(), error.to_string())),
            }
        }
        None => Ok(json!({ "results": results })),
    }
}

/// A decomposer's output as `(role, task)` pairs, each role one of the
/// manager's children's.
fn subtasks(
    config: &Config,
    index: usize,
    planned: Value,
) -> Result<Vec<(String, Value)>, AgentError> {
    let node = &config.nodes[index];
    let bad = |k: usize, reason: String| {
        fail(HierarchyError::Subtask {
            node: node.name.clone(),
            index: k,
            reason,
        })
    };
    let list = match planned {
        Value::Array(list) => list,
        Value::Object(mut fields) => match fields.remove("subtasks") {
            Some(Value::Array(list)) => list,
            _ => return Err(bad(0, "the decomposer returned no list of subtasks".into())),
        },
        _ => return Err(bad(0, "the decomposer returned no list of subtasks".into())),
    };
    list.into_iter()
        .enumerate()
        .map(|(k, mut sub)| {
            let role = sub
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(k, "a subtask is {\"role\": .., \"task\": ..}".into()))?
                .to_owned();
            let has = node.children.iter().any(|c| {
                config
                    .index(c)
                    .is_some_and(|i| config.nodes[i].role == role)
            });
            if !has {
                return Err(bad(
                    k,
                    format!("no child of `{}` has role `{role}`", node.name),
                ));
            }
            let task = sub.get_mut("task").map(Value::take).unwrap_or(Value::Null);
            Ok((role, task))
        })
        .collect()
}

/// What a manager decided about a child's escalation, as journaled.
#[derive(Serialize, Deserialize)]
struct Resolution {
    from: String,
    reason: String,
    action: String,
    to: Option<String>,
}

/// Runs subtask `k`, the `turn`-th of its `role`, on a child of that
/// role, resolving its escalations as the manager's [`Resolve`] list
/// allows; returns the output to keep, or the escalation to pass up.
async fn delegate(
    config: &Config,
    parent: usize,
    k: usize,
    turn: usize,
    role: String,
    task: Value,
    ctx: &Context,
) -> Result<Value, AgentError> {
    let node = &config.nodes[parent];
    let of_role: Vec<usize> = node
        .children
        .iter()
        .filter_map(|c| config.index(c))
        .filter(|&i| config.nodes[i].role == role)
        .collect();
    // A recorded choice must still name a child of the role.
    let child_named = |decision: &'static str, name: &str| {
        config
            .index(name)
            .filter(|i| of_role.contains(i))
            .ok_or_else(|| {
                fail(HierarchyError::UnknownNode {
                    manager: node.name.clone(),
                    decision,
                    node: name.to_owned(),
                    role: role.clone(),
                })
            })
    };
    // `subtasks` checked there is one.
    let first = of_role[turn % of_role.len()];
    let to: String = ctx.decide("delegate", &format!("s{k}"), || {
        config.nodes[first].name.clone()
    })?;
    let mut child = child_named("delegate", &to)?;
    let mut tried = vec![child];
    let mut retried = false;
    let mut attempt = 0u32;
    loop {
        let mut options = CallOptions::new()
            .key(format!("s{k}.{attempt}"))
            .policy(config.policy.clone());
        if let Some(amount) = config.nodes[child].budget {
            options = options.budget(amount);
        }
        let output = match ctx
            .call_agent(&config.agents[child], task.clone(), options)
            .await
        {
            Ok(output) => output,
            Err(error) if overrun(&error) => {
                return Ok(stopped(&config.nodes[child].name, error.to_string()))
            }
            Err(error) => return Err(error.into()),
        };
        let Some(escalated) = escalation_of(&output) else {
            return Ok(output);
        };
        let mut next = None;
        for resolve in &node.resolve {
            match resolve {
                Resolve::Retry if !retried => {
                    next = Some(("retry", child));
                    break;
                }
                Resolve::Reassign => {
                    if let Some(&sibling) = of_role.iter().find(|s| !tried.contains(s)) {
                        next = Some(("reassign", sibling));
                        break;
                    }
                }
                _ => {}
            }
        }
        let decided: Resolution =
            ctx.decide("escalation", &format!("s{k}.{attempt}"), || Resolution {
                from: config.nodes[child].name.clone(),
                reason: escalated.reason.clone(),
                action: next.map_or("escalate", |(action, _)| action).to_owned(),
                to: next.map(|(_, to)| config.nodes[to].name.clone()),
            })?;
        let to = match decided.to.as_deref() {
            Some(name) => Some(child_named("escalation", name)?),
            None => None,
        };
        match to {
            Some(to) if decided.action == "retry" => {
                retried = true;
                child = to;
            }
            Some(to) => {
                retried = false;
                tried.push(to);
                child = to;
            }
            None => return Ok(output),
        }
        attempt += 1;
    }
}
