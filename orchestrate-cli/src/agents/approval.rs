use orchestrate_core::{agent_fn, Agent, AgentError};

/// Agent `approval`: a human decision. It parks the execution with its
/// input as the question; `orchestrate approve ID STEP --value JSON`
/// supplies the step's output, `orchestrate reject ID STEP` fails it.
pub fn approval() -> impl Agent {
    agent_fn("approval", |input, _| async move {
        Err::<serde_json::Value, _>(AgentError::interrupt(input))
    })
}
