//! One run of a handoff: hops until a final answer or the hop limit.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    call_failed, Config, Conversation, Entry, GateAction, HandoffError, HandoffInput, Turn,
};
use crate::call::CallOptions;
use crate::context::Context;
use crate::error::AgentError;
use crate::pattern::fail;
use crate::pattern::router::Candidate;

/// A hop, as journaled (a `hop` decision): control passing from one agent
/// to the next (`to: None`: the final answer), and why.
#[derive(Serialize, Deserialize)]
struct Hop {
    from: String,
    to: Option<String>,
    reason: String,
}

pub(super) async fn hand_off(
    config: &Config,
    task: Value,
    ctx: &Context,
) -> Result<Value, AgentError> {
    let mut conversation = Conversation::default();
    let mut current = config.start.clone();
    // The agents that held control before, for rollbacks.
    let mut before: Vec<String> = Vec::new();
    let mut feedback: Option<String> = None;
    let mut path: Vec<String> = Vec::new();
    for hop in 0..config.max_hops {
        path.push(current.clone());
        let key = format!("h{hop}");
        let input = HandoffInput {
            task: task.clone(),
            conversation: conversation.clone(),
            feedback: feedback.take(),
        };
        let output = ctx
            .call_with(&current, to_value(&input), CallOptions::new().key(&key))
            .await
            .map_err(call_failed)?;
        let turn = Turn::from_value(output).map_err(|e| {
            fail(HandoffError::BadTurn {
                handoff: config.name.clone(),
                from: current.clone(),
                reason: e.to_string(),
            })
        })?;

        // The gates, in order; the first that fails decides.
        let mut failed = None;
        for (i, gate) in config.gates.iter().enumerate() {
            if !gate.applies_to(&current) {
                continue;
            }
            let gate_key = format!("{key}.g{i}");
            let verdict = gate
                .judge(ctx, &gate_key, &current, &turn, &task, &conversation.state)
                .await?;
            if !verdict.pass {
                let reason = verdict.reason.unwrap_or_default();
                failed = Some((gate, reason));
                break;
            }
        }
        let mut entry = Entry {
            hop,
            agent: current.clone(),
            reply: turn.reply.clone(),
            next: turn.next.clone(),
            reason: turn.reason.clone(),
            rejected: None,
        };

        if let Some((gate, reason)) = failed {
            entry.rejected = Some(reason.clone());
            conversation.history.push(entry);
            let to = match gate.action {
                GateAction::Retry => current.clone(),
                GateAction::Rollback => before.pop().ok_or_else(|| {
                    fail(HandoffError::NoRollback {
                        handoff: config.name.clone(),
                        gate: gate.name.clone(),
                        from: current.clone(),
                        reason: reason.clone(),
                    })
                })?,
            };
            let why = format!("gate `{}` failed: {reason}", gate.name);
            let hop_record: Hop = ctx.decide("hop", &key, || Hop {
                from: current.clone(),
                to: Some(to),
                reason: why,
            })?;
            feedback = Some(reason);
            current = hop_record.to.unwrap_or(current);
            continue;
        }

        conversation.state.extend(turn.state.clone());
        conversation.history.push(entry);
        let next: Hop = ctx.decide("hop", &key, || next_hop(config, ctx, &current, &turn))?;
        match next.to {
            None if turn.done => {
                return Ok(json!({
                    "answer": turn.reply,
                    "by": current,
                    "hops": hop + 1,
                    "history": conversation.history,
                    "state": conversation.state,
                }))
            }
            None => {
                return Err(fail(HandoffError::NoNext {
                    handoff: config.name.clone(),
                    from: current,
                }))
            }
            Some(to) if !config.agents.contains(&to) => {
                return Err(fail(HandoffError::UnknownAgent {
                    handoff: config.name.clone(),
                    from: current,
                    to,
                }))
            }
            Some(to) => {
                before.push(std::mem::replace(&mut current, to));
            }
        }
    }
    Err(fail(HandoffError::HopLimit {
        handoff: config.name.clone(),
        hops: config.max_hops,
        path,
    }))
}

/// Where control goes after `turn` of `from`: the agent it names, none
/// when it is final, or the router's pick among the other agents.
fn next_hop(config: &Config, ctx: &Context, from: &str, turn: &Turn) -> Hop {
    let (to, reason) = if turn.done {
        (
            None,
            turn.reason.clone().unwrap_or_else(|| "final answer".into()),
        )
    } else if let Some(next) = &turn.next {
        let reason = turn
            .reason
            .clone()
            .unwrap_or_else(|| format!("{from} handed off"));
        (Some(next.clone()), reason)
    } else {
        let breakers: Vec<_> = config
            .agents
            .iter()
            .filter(|a| *a != from)
            .map(|a| (a, ctx.circuit_breaker(a).map(|b| b.state)))
            .collect();
        let candidates: Vec<Candidate<'_>> = breakers
            .iter()
            .map(|(name, breaker)| Candidate {
                breaker: *breaker,
                ..Candidate::new(name)
            })
            .collect();
        match config
            .router
            .as_ref()
            .and_then(|r| r.route(&turn.reply, &candidates))
        {
            Some(routed) => {
                let reason = format!("routed (score {:.2})", routed.score);
                (Some(routed.agent), reason)
            }
            None => (None, "no agent named, none routed".into()),
        }
    };
    Hop {
        from: from.to_owned(),
        to,
        reason,
    }
}

fn to_value(input: &HandoffInput) -> Value {
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_value(input).unwrap_or(Value::Null)
}
