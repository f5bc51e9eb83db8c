//! Durable backends for `orchestrate`: implementations of
//! [`orchestrate_core::store::Store`] and [`orchestrate_core::bus::EventBus`].
//!
//! # Status
//!
//! This crate is reserved and empty: the SQLite (default) and PostgreSQL
//! stores and the Redis Streams bus land with the durable-state issue, each
//! behind a cargo feature of its name.
//!
//! Until then, use the in-memory store and bus of `orchestrate-core`:
//!
//! ```
//! use orchestrate_core::store::MemoryStore;
//! let _store = MemoryStore::new();
//! ```

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]
