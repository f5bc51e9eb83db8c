//! Test helpers for `orchestrate`: scripted [`MockAgent`]s and proptest
//! strategies for workflows.
//!
//! # Example
//!
//! ```
//! use orchestrate_core::Orchestrator;
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use orchestrate_testing::MockAgent;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let flaky = MockAgent::new("flaky").returns(json!("ok")).fail_first(2);
//! let orchestrator = Orchestrator::builder()
//!     .agent(flaky.clone())
//!     .default_policy(orchestrate_core::default_policy().retry(orchestrate_core::resilience::RetryConfig::attempts(3)))
//!     .build()
//!     .unwrap();
//! let wf = orchestrator
//!     .bind(&WorkflowDef::builder("w").step(StepDef::new("s", "flaky")).build())
//!     .unwrap();
//! let done = orchestrator.run(&wf, json!(null)).await.unwrap().await.unwrap();
//! assert_eq!(done.output("s"), Some(&json!("ok")));
//! assert_eq!(flaky.call_count(), 3);
//! # }
//! ```

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![doc(test(attr(deny(warnings))))]

pub mod bus_conformance;
mod mock;
pub mod replay;
pub mod store_conformance;
pub mod store_damage;
pub mod strategy;

pub use mock::{Call, MockAgent};
