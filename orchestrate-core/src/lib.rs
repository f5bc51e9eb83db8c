//! The heart of `orchestrate`: agents, the orchestrator and its executor,
//! the journal, and the in-memory store and event bus.
//!
//! An [`Agent`] is `async fn(Value, &Context) -> Result<Value, AgentError>`.
//! An [`Orchestrator`] binds workflow definitions (from `orchestrate-graph`)
//! to agents and runs them: each step starts the moment its last dependency
//! finishes, within concurrency limits; every state change is an event in
//! the execution's journal, and status views are projections of it.
//!
//! # Example
//!
//! ```
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), orchestrate_core::Error> {
//! let greet = agent_fn("greet", |input, _ctx| async move {
//!     Ok(json!({"text": format!("Hello, {}!", input["name"].as_str().unwrap_or("world"))}))
//! });
//! let shout = agent_fn("shout", |input, _ctx| async move {
//!     Ok(json!(input.as_str().unwrap_or_default().to_uppercase()))
//! });
//! let def = WorkflowDef::builder("hello")
//!     .step(StepDef::new("greet", "greet").input(json!({"name": "${input.name}"})))
//!     .step(StepDef::new("shout", "shout").depends_on(["greet"])
//!         .input(json!("${steps.greet.output.text}")))
//!     .build();
//!
//! let orchestrator = Orchestrator::builder().agent(greet).agent(shout).build()?;
//! let workflow = orchestrator.bind(&def)?;
//! let execution = orchestrator.run(&workflow, json!({"name": "Ada"})).await?;
//! let done = execution.await?;
//! assert_eq!(done.output("shout"), Some(&json!("HELLO, ADA!")));
//! # Ok(())
//! # }
//! ```
//!
//! # Calling agents from agents
//!
//! An agent decides at run time whom to call: [`Context::call`],
//! [`Context::call_with`] (a label, a policy, a budget),
//! [`Context::call_all`], [`Context::map`] and [`Context::run_workflow`]
//! run children of the calling attempt through their policies and the
//! journal, with deterministic ids, so that a resumed execution replays
//! every call that had ended instead of running it again. The clock,
//! randomness and outside reads go through [`Context::now`],
//! [`Context::random_u64`] and [`Context::side_effect`]. The calls form a
//! tree ([`journal::CallTree`], in every [`ExecutionView`]), which
//! [`Orchestrator::terminate`] prunes, and carry hierarchical
//! [`budget`]s. See [`call`] for an example.
//!
//! # Map
//!
//! - [`agent`]: the [`Agent`] trait, [`agent_fn`], typed agents.
//! - [`Orchestrator`], [`Workflow`], [`Execution`]: running workflows.
//! - [`call`]: agents calling agents, durably ([`Context::call`],
//!   [`Context::map`]).
//! - [`pattern`]: agents that coordinate agents (supervisor, hierarchy,
//!   handoff, routing), and the [`Pattern`](pattern::Pattern) trait for
//!   your own.
//! - [`journal`]: events, projections ([`ExecutionView`]) and JSON export.
//! - [`store`] and [`bus`]: the persistence and pub/sub traits, with
//!   in-memory implementations; durable ones live in `orchestrate-store`.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![doc(test(attr(deny(warnings))))]

pub mod agent;
mod boxed;
pub mod budget;
pub mod bus;
pub mod call;
mod context;
pub mod depth;
mod error;
mod error_info;
mod execution;
mod executor;
mod fast_map;
mod ids;
pub mod journal;
mod limits;
mod orchestrator;
pub mod pattern;
mod policies;
mod spans;
pub mod store;
mod workflow;

pub use agent::{agent_fn, typed_agent, Agent, BoxAgent, Typed, TypedAgent};
pub use call::{Call, CallOptions};
pub use context::Context;
pub use error::{AgentError, BoxError, CallLookup, Error, ErrorInfo, Retry, SharedError};
pub use execution::Execution;
pub use ids::ExecutionId;
pub use journal::{ExecutionStatus, ExecutionView, StepStatus};
pub use limits::{Limits, StepTasks};
pub use orchestrator::{
    CancelRequest, Orchestrator, OrchestratorBuilder, RunOptions, CANCEL_MAILBOX,
};
pub use policies::default_policy;
pub use workflow::Workflow;

/// Re-export of the planning crate, so hosts need one dependency.
pub use orchestrate_graph as graph;
/// Re-export of the resilience crate (policies, breakers, backoff).
pub use orchestrate_resilience as resilience;

/// The README's quickstart, compiled and run as a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
