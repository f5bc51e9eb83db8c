//! This project's agents. An agent is anything that answers a JSON input
//! with a JSON output: a model call, a tool, a service.

use orchestrate_core::{agent_fn, Agent, AgentError};
use serde_json::{json, Value};

/// Agent `greet`: `{"who": NAME}` gives `"Hello, NAME!"`.
pub(crate) fn greet() -> impl Agent {
    agent_fn("greet", |input: Value, _ctx| async move {
        let who = input
            .get("who")
            .and_then(Value::as_str)
            .ok_or_else(|| AgentError::permanent(r#"greet: expected {"who": NAME}"#))?;
        Ok(json!(format!("Hello, {who}!")))
    })
}
