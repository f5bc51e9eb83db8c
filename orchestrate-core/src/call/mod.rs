//! Durable calls: an agent calling other agents at run time, as children
//! of its own attempt.
//!
//! [`Context::call`](crate::Context::call) runs a registered agent as a
//! child of the calling attempt, through the same pipeline as a step's
//! attempt (the agent's resilience policy, its concurrency limit, the
//! journal). Every call has a deterministic id, the caller's id and the
//! call's index within the caller's attempt (`research/0`, `research/0/3`;
//! an attempt after the first is part of its caller's id: `research@2/0`),
//! and the journal records its start (agent and a digest of its input) and
//! its end (output or error). When an execution resumes after its process
//! stopped, the caller runs again and every call that had ended returns its
//! recorded result without running (replay); a call that was running runs
//! again, with the same [`idempotency_key`](crate::Context::idempotency_key).
//! A call whose agent or input differs from its record fails with
//! [`Error::NonDeterministic`](crate::Error::NonDeterministic): an agent's
//! calls must depend only on its input, its children's results and what it
//! read through its context.
//!
//! # Examples
//!
//! ```
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), orchestrate_core::Error> {
//! let planner = agent_fn("planner", |topic, ctx| async move {
//!     // Decided at run time: one question per word of the topic.
//!     let questions: Vec<_> = topic.as_str().unwrap_or("").split(' ').map(|w| json!(w)).collect();
//!     let answers = ctx.map("researcher", questions, 4).await;
//!     let answers: Result<Vec<_>, _> = answers.into_iter().collect();
//!     Ok(json!(answers?))
//! });
//! let researcher = agent_fn("researcher", |q, _ctx| async move {
//!     Ok(json!(format!("notes on {}", q.as_str().unwrap_or(""))))
//! });
//! let orchestrator = Orchestrator::builder().agent(planner).agent(researcher).build()?;
//! let wf = orchestrator.bind(&WorkflowDef::builder("research")
//!     .step(StepDef::new("plan", "planner").input(json!("${input}")))
//!     .build())?;
//! let done = orchestrator.run(&wf, json!("rust tokio")).await?.await?;
//! assert_eq!(done.output("plan"), Some(&json!(["notes on rust", "notes on tokio"])));
//! # Ok(())
//! # }
//! ```

mod digest;

use std::fmt;

use orchestrate_resilience::Policy;
use serde_json::Value;

pub use digest::digest;

/// Options of one call: a label for the call tree and the journal, and a
/// resilience policy in place of the agent's own.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// A name for the call in the journal and the call tree.
    pub label: Option<String>,
    /// The policy the call runs under instead of the agent's.
    pub policy: Option<Policy>,
    /// An amount given to the call out of its caller's budget (see
    /// [`budget`](crate::budget)); `None`: it draws on its caller's.
    pub budget: Option<u64>,
    /// The key that names the call instead of its index (see
    /// [`key`](Self::key)).
    pub key: Option<String>,
}

impl CallOptions {
    /// No label; the agent's own policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the call.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Gives the call `amount` out of its caller's budget: refused with
    /// [`Error::BudgetExceeded`](crate::Error::BudgetExceeded) before the
    /// child runs when the caller has less available; what the child does
    /// not consume returns when it ends.
    pub fn budget(mut self, amount: u64) -> Self {
        self.budget = Some(amount);
        self
    }

    /// Runs the call under `policy` instead of the agent's own (its breaker
    /// and bulkhead are those `policy` was built with).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Names the call by `key` instead of its index among the attempt's
    /// calls: its id is the caller's id, `/`, then `key` (`pool/task-7.0`).
    ///
    /// Numbered ids are right when the calls are made in an order the
    /// caller's input decides. A caller whose calls are made in an order
    /// timing decides (a work queue that hands out the next task when any
    /// running one ends) keys them instead, so that a resumed execution
    /// matches each call with its record whatever order they are made in.
    ///
    /// A key is not empty, holds no `/`, `:`, `@` or `#`, is not digits
    /// only, and is taken once per attempt; otherwise the call fails with
    /// [`Error::CallKey`](crate::Error::CallKey) before anything runs.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("label", &self.label)
            .field("policy", &self.policy.is_some())
            .field("budget", &self.budget)
            .field("key", &self.key)
            .finish()
    }
}

/// One call of [`Context::call_all`](crate::Context::call_all): an agent,
/// its input and its options.
#[derive(Clone, Debug)]
pub struct Call {
    /// The agent's name.
    pub agent: String,
    /// Its input.
    pub input: Value,
    /// Its options.
    pub options: CallOptions,
}

impl Call {
    /// A call of `agent` on `input` with default options.
    pub fn new(agent: impl Into<String>, input: Value) -> Self {
        Self {
            agent: agent.into(),
            input,
            options: CallOptions::default(),
        }
    }

    /// Sets the call's options.
    pub fn with_options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }
}
