//! Patterns: named, parameterised factories of agents that coordinate
//! other agents (a supervisor over a pool of workers, ...).
//!
//! A pattern builds an [`Agent`](crate::Agent) whose every call of
//! another agent goes through its [`Context`](crate::Context)
//! ([`call_agent`](crate::Context::call_agent),
//! [`call_with`](crate::Context::call_with), [`map`](crate::Context::map)),
//! and whose every choice goes through
//! [`decide`](crate::Context::decide): so the pattern's children run under
//! their policies, are journaled and replayed, a killed process resumes
//! it without redoing finished work, and its choices show in the journal
//! and the call tree. Patterns nest: a pattern's worker may be another
//! pattern's agent.
//!
//! Register a pattern with
//! [`OrchestratorBuilder::pattern`](crate::OrchestratorBuilder::pattern)
//! (the built-in [`Supervisor`] is registered as `"supervisor"`), and a
//! JSON workflow step may run it: `{"id": "pool", "pattern": "supervisor",
//! "params": {..}}`. Its parameters are checked when the workflow is
//! bound; a bad one is an [`Error::PatternParams`](crate::Error::PatternParams)
//! naming it.
//!
//! # Writing a pattern
//!
//! Best of n: call n agents on the same input, keep the output a scorer
//! ranks highest. Its choice depends only on its children's outputs, so
//! it needs no [`decide`](crate::Context::decide): a replay reaches the
//! same choice, which `orchestrate_testing::replay::check_replay`
//! verifies by re-running the pattern against its own journal.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use orchestrate_core::pattern::{params, ParamError, Pattern, PatternEnv};
//! use orchestrate_core::{agent_fn, Agent, AgentError, BoxAgent, Call, Context, Orchestrator};
//! use orchestrate_graph::WorkflowDef;
//! use serde::Deserialize;
//! use serde_json::{json, Value};
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct BestOfParams { candidates: Vec<String>, scorer: String }
//!
//! struct BestOf;
//!
//! impl Pattern for BestOf {
//!     fn name(&self) -> &str { "best_of" }
//!     fn build(&self, raw: &Value, env: &PatternEnv<'_>) -> Result<BoxAgent, ParamError> {
//!         let p: BestOfParams = params(raw)?;
//!         for (i, name) in p.candidates.iter().enumerate() {
//!             env.require_agent(&format!("candidates[{i}]"), name)?;
//!         }
//!         env.require_agent("scorer", &p.scorer)?;
//!         Ok(Arc::new(BestOfAgent { name: format!("best_of:{}", env.step()), p }))
//!     }
//! }
//!
//! struct BestOfAgent { name: String, p: BestOfParams }
//!
//! #[async_trait]
//! impl Agent for BestOfAgent {
//!     fn name(&self) -> &str { &self.name }
//!     async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
//!         let calls = self.p.candidates.iter().map(|c| Call::new(c.as_str(), input.clone()));
//!         let mut best = (f64::MIN, Value::Null);
//!         for answer in ctx.call_all(calls).await {
//!             let answer = answer?;
//!             let score = ctx.call(&self.p.scorer, answer.clone()).await?;
//!             if score.as_f64().unwrap_or(f64::MIN) > best.0 {
//!                 best = (score.as_f64().unwrap_or(f64::MIN), answer);
//!             }
//!         }
//!         Ok(best.1)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), orchestrate_core::Error> {
//! let def = WorkflowDef::from_json(r#"{"name": "answer", "steps": [
//!     {"id": "best", "pattern": "best_of",
//!      "params": {"candidates": ["short", "long"], "scorer": "length"}}
//! ]}"#).unwrap();
//! let builder = || Orchestrator::builder()
//!     .agent(agent_fn("short", |_, _| async move { Ok(json!("hi")) }))
//!     .agent(agent_fn("long", |_, _| async move { Ok(json!("hello there")) }))
//!     .agent(agent_fn("length", |text: Value, _| async move {
//!         Ok(json!(text.as_str().unwrap_or("").len()))
//!     }))
//!     .pattern(BestOf)
//!     .workflow(def.clone());
//! let orchestrator = builder().build()?;
//! let run = orchestrator.run(&orchestrator.workflow("answer").unwrap(), json!("greet")).await?;
//! let done = run.clone().await?;
//! assert_eq!(done.output("best"), Some(&json!("hello there")));
//!
//! // Deterministic: run again against its own journal, strictly, the
//! // pattern makes the very calls it recorded (four: two candidates, two
//! // scores) and the same output. A choice read from the clock, a global
//! // or a random source not taken through `ctx` would be reported as the
//! // first call that differs.
//! let checked = orchestrate_testing::replay::check_replay(&**orchestrator.store(), run.id(), builder())
//!     .await
//!     .unwrap();
//! assert_eq!(checked.calls, 4);
//!
//! // A bad parameter is refused when the workflow is bound, by name.
//! let bad = WorkflowDef::from_json(r#"{"name": "answer", "steps": [
//!     {"id": "best", "pattern": "best_of", "params": {"candidates": ["short", "nobody"], "scorer": "length"}}
//! ]}"#).unwrap();
//! let error = orchestrator.bind(&bad).unwrap_err();
//! assert_eq!(error.to_string(),
//!     "workflow `answer`, step `best`: pattern `best_of`, parameter `candidates[1]`: no agent is registered as `nobody`");
//! # Ok(())
//! # }
//! ```

pub mod handoff;
pub mod hierarchy;
mod registry;
pub mod router;
pub mod supervisor;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::agent::BoxAgent;
pub use crate::error::ParamError;

pub use handoff::Handoff;
pub use hierarchy::Hierarchy;
pub(crate) use registry::Patterns;
pub use supervisor::Supervisor;

/// A named, parameterised factory of agents: what a workflow step names
/// with `"pattern"` instead of `"agent"`.
pub trait Pattern: Send + Sync + 'static {
    /// The name steps use (`"supervisor"`).
    fn name(&self) -> &str;

    /// Checks `params` and builds the agent a step runs.
    ///
    /// # Errors
    ///
    /// A [`ParamError`] naming the first bad parameter.
    fn build(&self, params: &Value, env: &PatternEnv<'_>) -> Result<BoxAgent, ParamError>;
}

/// Makes a fresh instance of an agent: what a supervisor restarts a
/// worker with.
pub type AgentFactory = Arc<dyn Fn() -> BoxAgent + Send + Sync>;

/// Reads `raw` parameters into `T`, naming the parameter serde refused
/// (`restart.period_ms`), not only why.
///
/// # Errors
///
/// A [`ParamError`] naming the parameter.
pub fn params<T: DeserializeOwned>(raw: &Value) -> Result<T, ParamError> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let param = e.path().to_string();
        ParamError::new(param, e.into_inner())
    })
}

/// `error` as the permanent failure of a pattern's attempt, with `error`
/// its source (typed, for a caller to downcast).
pub(crate) fn fail(error: impl std::error::Error + Send + Sync + 'static) -> crate::AgentError {
    crate::AgentError::permanent(error.to_string()).with_source(error)
}

/// Errors of a pattern's child that end the pattern's run as they are,
/// rather than count as the child's failure: the execution is ending, the
/// replay diverged, or the pattern misused its context.
pub(crate) fn ends_the_run(error: &crate::Error) -> bool {
    use crate::Error;
    matches!(
        error,
        Error::Cancelled { .. }
            | Error::NonDeterministic { .. }
            | Error::CallKey { .. }
            | Error::CallTooDeep { .. }
    )
}

/// What a pattern sees when it builds a step's agent: the step, and the
/// agents registered with the orchestrator.
pub struct PatternEnv<'a> {
    pub(crate) step: &'a str,
    pub(crate) agents: &'a HashMap<String, BoxAgent>,
    pub(crate) factories: &'a HashMap<String, AgentFactory>,
}

impl<'a> PatternEnv<'a> {
    /// The id of the step the agent will run.
    pub fn step(&self) -> &str {
        self.step
    }

    /// The registered agent `name`.
    pub fn agent(&self, name: &str) -> Option<&'a BoxAgent> {
        self.agents.get(name)
    }

    /// The registered agent `name`, or an error naming `param`.
    ///
    /// # Errors
    ///
    /// A [`ParamError`] on `param` when no agent is registered as `name`.
    pub fn require_agent(&self, param: &str, name: &str) -> Result<&'a BoxAgent, ParamError> {
        self.agent(name)
            .ok_or_else(|| ParamError::new(param, format!("no agent is registered as `{name}`")))
    }

    /// The factory agent `name` was registered with
    /// ([`OrchestratorBuilder::agent_factory`](crate::OrchestratorBuilder::agent_factory)),
    /// if it was.
    pub fn factory(&self, name: &str) -> Option<&'a AgentFactory> {
        self.factories.get(name)
    }
}

impl fmt::Debug for PatternEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternEnv")
            .field("step", &self.step)
            .field("agents", &self.agents.len())
            .finish_non_exhaustive()
    }
}
