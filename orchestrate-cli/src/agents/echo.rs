use orchestrate_core::{agent_fn, Agent};

/// Agent `echo`: returns its input (demos and tests).
pub fn echo() -> impl Agent {
    agent_fn("echo", |input, _| async move { Ok(input) })
}
