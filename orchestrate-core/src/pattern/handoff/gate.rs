//! Quality gates: judges of a handoff's replies between hops.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Turn;
use crate::call::CallOptions;
use crate::context::Context;
use crate::error::AgentError;

/// What a failed gate does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GateAction {
    /// The same agent runs the hop again, told the gate's reason.
    #[default]
    Retry,
    /// Control goes back to the agent before, told the gate's reason.
    Rollback,
}

/// A gate's judgement of one reply, as journaled (a `gate` decision).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Verdict {
    /// The gate.
    pub gate: String,
    /// Whether the reply passes.
    pub pass: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

type Check = Arc<dyn Fn(&Turn) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
enum Judge {
    Check(Check),
    /// A registered agent, called with `{"task", "agent", "reply",
    /// "state"}`, answering `{"pass": bool, "reason": ".."}`.
    Agent(String),
}

/// A quality gate on a handoff's replies: a predicate, or an agent that
/// judges (called through the context: journaled, replayed, under its
/// policy).
#[derive(Clone)]
pub struct Gate {
    pub(super) name: String,
    judge: Judge,
    /// The agents whose replies it judges; empty: every agent's.
    pub(super) after: Vec<String>,
    pub(super) action: GateAction,
}

impl Gate {
    /// A gate named `name` that passes a turn when `check` returns `Ok`,
    /// and fails it with the reason `check` gives.
    pub fn check(
        name: impl Into<String>,
        check: impl Fn(&Turn) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            judge: Judge::Check(Arc::new(check)),
            after: Vec::new(),
            action: GateAction::default(),
        }
    }

    /// A gate that calls registered agent `agent` with `{"task", "agent",
    /// "reply", "state"}`; it passes when the agent answers `{"pass":
    /// true}`, and fails with the answer's `reason` otherwise.
    pub fn agent(agent: impl Into<String>) -> Self {
        let agent = agent.into();
        Self {
            name: agent.clone(),
            judge: Judge::Agent(agent),
            after: Vec::new(),
            action: GateAction::default(),
        }
    }

    /// Judges only the replies of these agents.
    pub fn after<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.after = agents.into_iter().map(Into::into).collect();
        self
    }

    /// What a failure does (default [`GateAction::Retry`]).
    pub fn on_fail(mut self, action: GateAction) -> Self {
        self.action = action;
        self
    }

    pub(super) fn applies_to(&self, agent: &str) -> bool {
        self.after.is_empty() || self.after.iter().any(|a| a == agent)
    }

    /// Judges `turn` of `agent`, gate number `index` on hop `hop`, and
    /// journals the verdict.
    pub(super) async fn judge(
        &self,
        ctx: &Context,
        key: &str,
        agent: &str,
        turn: &Turn,
        task: &Value,
        state: &serde_json::Map<String, Value>,
    ) -> Result<Verdict, AgentError> {
        let outcome = match &self.judge {
            Judge::Check(check) => check(turn),
            Judge::Agent(judge) => {
                let input =
                    json!({"task": task, "agent": agent, "reply": turn.reply, "state": state});
                let answer = ctx
                    .call_with(judge, input, CallOptions::new().key(key))
                    .await
                    .map_err(AgentError::from)?;
                read_answer(judge, &answer)?
            }
        };
        let verdict = Verdict {
            gate: self.name.clone(),
            pass: outcome.is_ok(),
            reason: outcome.err(),
        };
        // Journaled as what the gate decided; a predicate's replays alike.
        let recorded: Verdict = ctx.decide("gate", key, || verdict)?;
        Ok(recorded)
    }
}

/// A judging agent's answer: `Ok` when it passes.
fn read_answer(judge: &str, answer: &Value) -> Result<Result<(), String>, AgentError> {
    match answer.get("pass").and_then(Value::as_bool) {
        Some(true) => Ok(Ok(())),
        Some(false) => Ok(Err(answer
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .to_owned())),
        None => Err(AgentError::permanent(format!(
            "gate agent `{judge}` answered {answer}, not {{\"pass\": bool, \"reason\": ..}}"
        ))),
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("name", &self.name)
            .field(
                "judge",
                &match &self.judge {
                    Judge::Check(_) => "check".to_owned(),
                    Judge::Agent(a) => format!("agent {a}"),
                },
            )
            .field("after", &self.after)
            .field("action", &self.action)
            .finish()
    }
}
