//! What passes between a handoff's agents: the conversation, and each
//! agent's turn.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::AgentError;

/// What an agent of a handoff returns: its reply, and where control goes.
///
/// Serialised as an object: `{"reply": .., "next": "billing"}`,
/// `{"reply": .., "done": true}`, or `{"reply": ..}` for the handoff's
/// router to pick the next agent; optionally with a `reason` (journaled
/// with the hop) and `state` (merged into the conversation's state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Turn {
    /// The agent's reply.
    pub reply: Value,
    /// The agent control passes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Whether the reply is the final answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
    /// Why control passes on (or why this is final).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Entries merged into the conversation's state (each replaces the
    /// entry of its key).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub state: Map<String, Value>,
}

impl Turn {
    /// Hands control to `next` with `reply`.
    pub fn to(next: impl Into<String>, reply: Value) -> Self {
        Self {
            next: Some(next.into()),
            ..Self::reply(reply)
        }
    }

    /// `reply` is the final answer.
    pub fn done(reply: Value) -> Self {
        Self {
            done: true,
            ..Self::reply(reply)
        }
    }

    /// `reply`, and the handoff's router picks the next agent from it.
    pub fn reply(reply: Value) -> Self {
        Self {
            reply,
            next: None,
            done: false,
            reason: None,
            state: Map::new(),
        }
    }

    /// Says why.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets `key` of the conversation's state to `value`.
    pub fn with_state(mut self, key: impl Into<String>, value: Value) -> Self {
        self.state.insert(key.into(), value);
        self
    }

    /// Reads an agent's output as a turn.
    ///
    /// # Errors
    ///
    /// The `serde_json` error when `value` is not a turn.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}

impl From<Turn> for Value {
    fn from(turn: Turn) -> Self {
        // Plain data with string keys: serialising it cannot fail.
        serde_json::to_value(turn).unwrap_or(Value::Null)
    }
}

/// One turn in a conversation's history: a request answered, never one
/// without the other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Entry {
    /// The hop's number, from 0.
    pub hop: u32,
    /// The agent that held control.
    pub agent: String,
    /// Its reply.
    pub reply: Value,
    /// The agent it handed to, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why a gate sent the reply back, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// What a handoff's agents share: every turn so far and the state they
/// accumulated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conversation {
    /// The turns, in order.
    pub history: Vec<Entry>,
    /// The state, merged from the accepted turns.
    pub state: Map<String, Value>,
}

/// What each agent of a handoff is called with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HandoffInput {
    /// The handoff's own input.
    pub task: Value,
    /// The conversation so far.
    pub conversation: Conversation,
    /// Why a gate sent this agent's (or the next one's) reply back, on
    /// the hop after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
}

impl HandoffInput {
    /// Reads an agent's input as a handoff's.
    ///
    /// # Errors
    ///
    /// A permanent [`AgentError`] when `value` is not one.
    pub fn from_value(value: Value) -> Result<Self, AgentError> {
        serde_json::from_value(value)
            .map_err(|e| AgentError::permanent(format!("not a handoff's input: {e}")))
    }
}
