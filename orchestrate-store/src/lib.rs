//! Durable backends for `orchestrate`: implementations of
//! [`orchestrate_core::store::Store`] (and, to come, of
//! [`orchestrate_core::bus::EventBus`]) behind cargo features.
//!
//! | Feature  | Description                                        | Default |
//! |----------|----------------------------------------------------|---------|
//! | `sqlite` | `sqlite::SqliteStore`: one file, WAL, group commit | yes     |
//! | `postgres` | `postgres::PostgresStore`: verbatim JSON, many processes | no |
//! | `redis`  | `redis::RedisBus`: Redis Streams, consumer groups  | no      |
//! | `encryption` | `encrypted::EncryptedStore`: AES-256-GCM at rest | no  |
//! | `full`   | every backend                                      | no      |
//!
//! Every backend stores each journal record once, with a record version and
//! a CRC-32 checked on every read, and passes the conformance suite of
//! `orchestrate-testing`. Values are kept as the JSON text they were
//! written as and read back identically; one nested deeper than
//! [`MAX_VALUE_DEPTH`](orchestrate_core::depth::MAX_VALUE_DEPTH) is refused
//! when it is written. `load` refuses a journal with a damaged record or a
//! missing sequence number; the executions table is a projection that
//! [`Store::verify`](orchestrate_core::store::Store::verify) checks against
//! the journals and
//! [`Store::rebuild_projections`](orchestrate_core::store::Store::rebuild_projections)
//! rewrites from them.
//!
//! ```
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use orchestrate_store::sqlite::SqliteStore;
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(SqliteStore::open(dir.path().join("runs.db")).await?);
//! let orchestrator = Orchestrator::builder()
//!     .agent(agent_fn("echo", |input, _| async move { Ok(input) }))
//!     .store(store.clone())
//!     .build()?;
//! let wf = orchestrator.bind(&WorkflowDef::builder("w").step(StepDef::new("s", "echo").input(json!(1))).build())?;
//! let done = orchestrator.run(&wf, json!(null)).await?.await?;
//! assert_eq!(done.output("s"), Some(&json!(1)));
//! # Ok(())
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
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod audit;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group_commit;

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "encryption")]
#[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
pub mod encrypted;
