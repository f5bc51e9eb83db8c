//! Agents that take and return their own serde types.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::Agent;
use crate::context::Context;
use crate::error::AgentError;

/// An agent over typed input and output; wrap it in [`Typed`] to register it.
///
/// Input that does not deserialise is a permanent failure naming the agent
/// and the serde error.
///
/// # Examples
///
/// ```
/// use orchestrate_core::{Agent, AgentError, Context, Typed, TypedAgent};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Query { text: String }
/// #[derive(Serialize)]
/// struct Words { count: usize }
///
/// struct WordCount;
///
/// impl TypedAgent for WordCount {
///     type Input = Query;
///     type Output = Words;
///     fn name(&self) -> &str { "word_count" }
///     async fn call(&self, q: Query, _ctx: &Context) -> Result<Words, AgentError> {
///         Ok(Words { count: q.text.split_whitespace().count() })
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let agent = Typed(WordCount);
/// let ctx = Context::detached("s");
/// let out = agent.call(serde_json::json!({"text": "a b c"}), &ctx).await.unwrap();
/// assert_eq!(out, serde_json::json!({"count": 3}));
/// let err = agent.call(serde_json::json!({"txt": 1}), &ctx).await.unwrap_err();
/// assert!(!err.is_retryable());
/// # });
/// ```
pub trait TypedAgent: Send + Sync + 'static {
    /// What the agent takes.
    type Input: DeserializeOwned + Send;
    /// What the agent returns.
    type Output: Serialize + Send;

    /// The agent's name.
    fn name(&self) -> &str;

    /// Runs one attempt.
    fn call(
        &self,
        input: Self::Input,
        ctx: &Context,
    ) -> impl Future<Output = Result<Self::Output, AgentError>> + Send;
}

/// Adapts a [`TypedAgent`] to [`Agent`].
#[derive(Clone, Debug)]
pub struct Typed<T>(pub T);

pub(crate) fn decode<I: DeserializeOwned>(agent: &str, input: Value) -> Result<I, AgentError> {
    serde_json::from_value(input).map_err(|e| {
        AgentError::permanent(format!("agent `{agent}`: invalid input: {e}")).with_source(e)
    })
}

pub(crate) fn encode<O: Serialize>(agent: &str, output: O) -> Result<Value, AgentError> {
    serde_json::to_value(output).map_err(|e| {
        AgentError::permanent(format!("agent `{agent}`: output is not JSON: {e}")).with_source(e)
    })
}

#[async_trait]
impl<T: TypedAgent> Agent for Typed<T> {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        let input = decode(self.0.name(), input)?;
        let output = self.0.call(input, ctx).await?;
        encode(self.0.name(), output)
    }
}

/// A typed agent made from a closure by [`typed_agent`].
pub struct TypedFn<F, I, O> {
    name: String,
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<F, I, O> fmt::Debug for TypedFn<F, I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedFn").field("name", &self.name).finish()
    }
}

/// Makes an agent from an async closure over serde types.
///
/// # Examples
///
/// ```
/// use orchestrate_core::{typed_agent, Agent, Context};
///
/// let double = typed_agent("double", |n: i64, _ctx| async move { Ok(n * 2) });
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = double.call(serde_json::json!(21), &Context::detached("s")).await.unwrap();
/// assert_eq!(out, serde_json::json!(42));
/// # });
/// ```
pub fn typed_agent<F, Fut, I, O>(name: impl Into<String>, f: F) -> TypedFn<F, I, O>
where
    F: Fn(I, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, AgentError>> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    TypedFn {
        name: name.into(),
        f,
        _types: PhantomData,
    }
}

#[async_trait]
impl<F, Fut, I, O> Agent for TypedFn<F, I, O>
where
    F: Fn(I, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, AgentError>> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        let input = decode(&self.name, input)?;
        let output = (self.f)(input, ctx.clone()).await?;
        encode(&self.name, output)
    }
}
