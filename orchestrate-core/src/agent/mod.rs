//! The [`Agent`] trait and its adapters.

mod func;
mod instance;
mod typed;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::context::Context;
use crate::error::AgentError;

pub use func::{agent_fn, AgentFn};
pub use typed::{typed_agent, Typed, TypedAgent, TypedFn};

/// Anything async that takes a task and returns a result: an LLM call, a
/// tool, a service call, another workflow.
///
/// Agents are shared (`Arc<dyn Agent>`) and may be called concurrently, so
/// behaviour lives on `&self`; keep per-call state in locals.
///
/// # Examples
///
/// ```
/// use async_trait::async_trait;
/// use orchestrate_core::{Agent, AgentError, Context};
/// use serde_json::{json, Value};
///
/// struct Upper;
///
/// #[async_trait]
/// impl Agent for Upper {
///     fn name(&self) -> &str { "upper" }
///     async fn call(&self, input: Value, _ctx: &Context) -> Result<Value, AgentError> {
///         let text = input.as_str().ok_or_else(|| AgentError::permanent("expected a string"))?;
///         Ok(json!(text.to_uppercase()))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let agent: std::sync::Arc<dyn Agent> = std::sync::Arc::new(Upper);
/// let out = agent.call(json!("hi"), &Context::detached("test-step")).await.unwrap();
/// assert_eq!(out, json!("HI"));
/// # });
/// ```
///
/// # Cancel safety
///
/// The orchestrator signals cancellation through
/// [`Context::cancellation_token`] and drops the `call` future after the
/// cancellation grace period; an agent with side effects should make them
/// idempotent (see [`Context::idempotency_key`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an orchestrate agent",
    note = "implement `orchestrate_core::Agent` with `#[async_trait]`, or wrap a closure with `agent_fn(name, |input, ctx| async move {{ .. }})`"
)]
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// The name steps use to refer to this agent.
    fn name(&self) -> &str;

    /// Runs one attempt on `input`.
    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError>;

    /// Whether this agent only runs others through its context, as the
    /// [patterns](crate::pattern) do. Unless a policy is set for its name
    /// ([`OrchestratorBuilder::agent_policy`](crate::OrchestratorBuilder::agent_policy)),
    /// such an agent runs under one attempt and no timeout rather than
    /// the default policy: its calls have their own agents' policies, a
    /// retry of it would start every call again under new ids, and a
    /// timeout would cut a long run of them short. `false` unless
    /// overridden.
    fn orchestrates(&self) -> bool {
        false
    }
}

/// A shared, type-erased agent.
pub type BoxAgent = Arc<dyn Agent>;

#[async_trait]
impl<A: Agent + ?Sized> Agent for Arc<A> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        (**self).call(input, ctx).await
    }

    fn orchestrates(&self) -> bool {
        (**self).orchestrates()
    }
}

#[allow(dead_code)]
fn _object_safe(_: Box<dyn Agent>) {}
