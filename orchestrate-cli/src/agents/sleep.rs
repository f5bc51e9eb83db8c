use std::time::Duration;

use orchestrate_core::{agent_fn, Agent, AgentError};
use serde_json::Value;

/// Agent `sleep`: waits `ms` milliseconds (its input, a number, or
/// `{"ms": N}`), then returns its input; cancelled, it stops at once.
pub fn sleep() -> impl Agent {
    agent_fn("sleep", |input: Value, ctx| async move {
        let ms = input
            .as_u64()
            .or_else(|| input.get("ms").and_then(Value::as_u64))
            .ok_or_else(|| {
                AgentError::permanent("sleep: the input is a number of ms, or {\"ms\": N}")
            })?;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(input),
            () = ctx.cancellation_token().cancelled() => Err(AgentError::permanent("sleep: cancelled")),
        }
    })
}
