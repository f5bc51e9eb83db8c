//! Closures as agents.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use serde_json::Value;

use super::Agent;
use crate::context::Context;
use crate::error::AgentError;

/// An agent made from a closure by [`agent_fn`].
pub struct AgentFn<F> {
    name: String,
    f: F,
}

impl<F> fmt::Debug for AgentFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentFn").field("name", &self.name).finish()
    }
}

/// Makes an agent named `name` from an async closure taking the input and a
/// [`Context`] (a cheap clone of the attempt's context).
///
/// # Examples
///
/// ```
/// use orchestrate_core::{agent_fn, Agent, Context};
/// use serde_json::json;
///
/// let add_one = agent_fn("add_one", |input, _ctx| async move {
///     Ok(json!({"count": input["count"].as_i64().unwrap_or(0) + 1}))
/// });
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = add_one.call(json!({"count": 41}), &Context::detached("s")).await.unwrap();
/// assert_eq!(out, json!({"count": 42}));
/// # });
/// ```
pub fn agent_fn<F, Fut>(name: impl Into<String>, f: F) -> AgentFn<F>
where
    F: Fn(Value, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, AgentError>> + Send + 'static,
{
    AgentFn {
        name: name.into(),
        f,
    }
}

#[async_trait]
impl<F, Fut> Agent for AgentFn<F>
where
    F: Fn(Value, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, AgentError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        (self.f)(input, ctx.clone()).await
    }
}
