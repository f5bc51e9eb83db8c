//! Workflow definitions, validation and planning for `orchestrate`: pure,
//! synchronous, no runtime.
//!
//! A [`WorkflowDef`] is data (from the Rust builder or JSON); [`Plan::new`]
//! validates it, reporting every [`Problem`] at once, and produces a [`Plan`]:
//! a topological order, parallel generations, a critical path, parsed input
//! templates, and renderings as text, Mermaid and DOT. The executor in
//! `orchestrate-core` runs plans; this crate never does I/O.
//!
//! # Example
//!
//! ```
//! use orchestrate_graph::{Plan, WorkflowDef};
//!
//! let def = WorkflowDef::from_json(r#"{
//!     "name": "research",
//!     "steps": [
//!         {"id": "search", "agent": "web", "input": {"q": "${input.topic}"}},
//!         {"id": "papers", "agent": "arxiv", "input": {"q": "${input.topic}"}},
//!         {"id": "report", "agent": "writer", "depends_on": ["search", "papers"],
//!          "input": {"web": "${steps.search.output.hits}",
//!                    "papers": "${steps.papers.output.hits ?? []}"}}
//!     ]
//! }"#).unwrap();
//! let plan = Plan::new(&def).unwrap();
//! assert_eq!(plan.to_text(), "Batch 1: [search, papers]\nBatch 2: [report]\n");
//! ```
//!
//! # Interpolation
//!
//! Strings in a step's `input` may contain `${input.<path>}` and
//! `${steps.<id>.output.<path>}`; paths use `.key` and `[index]`, and
//! `?? <json literal>` gives a default. A string that is exactly one
//! expression yields the referenced value with its own type; mixed text
//! yields a string. `$${` writes a literal `${`.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![doc(test(attr(deny(warnings))))]

mod builder;
mod def;
mod plan;
mod problem;
mod render;
pub mod template;

pub use builder::WorkflowBuilder;
pub use def::{OnError, StepDef, StepPolicy, WorkflowDef};

/// The JSON Schema of the workflow format, derived from [`WorkflowDef`]
/// and the types it holds (feature `schema`).
///
/// ```
/// let schema = orchestrate_graph::workflow_schema();
/// assert_eq!(schema["title"], "WorkflowDef");
/// assert!(schema["required"].as_array().unwrap().contains(&"steps".into()));
/// ```
#[cfg(feature = "schema")]
pub fn workflow_schema() -> serde_json::Value {
    serde_json::Value::from(schemars::schema_for!(WorkflowDef))
}
pub use plan::{Plan, PlannedStep};
pub use problem::{Problem, ValidationErrors};
