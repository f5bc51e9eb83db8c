//! The orchestrate REST server, as an axum [`Router`] over an
//! [`Orchestrator`] that a host service mounts next to its own routes.
//! Every handler is one call of the orchestrator's public API: the server
//! has no execution logic of its own.
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /health` | liveness, and executions running here (no token needed) |
//! | `GET /workflows` | the registered workflows' names |
//! | `POST /workflows/{name}/executions` | starts one; the body is its input; `Idempotency-Key` (one key space per workflow) returns the one it started before, or 422 when that one had another input |
//! | `GET /executions?limit=&after=&status=&workflow=` | a page of executions, and the `next` page's `after` |
//! | `GET /executions/{id}` | status, progress, steps |
//! | `GET /executions/{id}/journal` | the journal, capped and redacted |
//! | `GET /executions/{id}/tree` | the call tree |
//! | `GET /executions/{id}/events` | server-sent events, live, resumable with `Last-Event-ID` |
//! | `POST /executions/{id}/cancel` | cancels it, or asks the replica running it to |
//! | `POST /executions/{id}/approve` | `{"step", "value"}` for a step waiting for a decision |
//!
//! Errors are `application/problem+json` (RFC 9457): 400 a malformed
//! body or query, 401 a missing or wrong token, 404 no such workflow or
//! execution, 409 nothing to approve, 413 a body past the limit, 415 a
//! body that is not JSON, 422 JSON the workflow refuses, 500 the rest.
//!
//! Several replicas may share one store (PostgreSQL): build each
//! orchestrator with
//! [`watch_cancel_requests`](orchestrate_core::OrchestratorBuilder::watch_cancel_requests)
//! so that a cancel sent to one reaches the execution another runs.
//!
//! # Examples
//!
//! ```
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use orchestrate_server::{router_with, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let orchestrator = Orchestrator::builder()
//!     .agent(agent_fn("echo", |input, _| async move { Ok(input) }))
//!     .workflow(WorkflowDef::builder("echo")
//!         .step(StepDef::new("echo", "echo").input(serde_json::json!("${input}")))
//!         .build())
//!     .build()?;
//! // Mounted under a prefix of the host's own router.
//! let app = axum::Router::new()
//!     .nest("/orchestrate", router_with(orchestrator, ServerConfig::default().token("s3cret")));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base = format!("http://{}/orchestrate", listener.local_addr()?);
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! let health = reqwest::get(format!("{base}/health")).await?;
//! assert_eq!(health.status(), 200);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod auth;
mod problem;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use orchestrate_core::Orchestrator;

pub use problem::Problem;

use routes::AppState;

/// How the server is guarded.
#[derive(Clone, Debug)]
#[must_use]
pub struct ServerConfig {
    token: Option<Arc<str>>,
    max_body_bytes: usize,
}

impl Default for ServerConfig {
    /// No token; bodies up to 1 MiB.
    fn default() -> Self {
        Self {
            token: None,
            max_body_bytes: 1 << 20,
        }
    }
}

impl ServerConfig {
    /// Every route but `/health` requires `Authorization: Bearer <token>`
    /// (compared in constant time).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().into());
        self
    }

    /// Refuses request bodies past `bytes` with 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

/// The routes over `orchestrator`, unguarded, bodies up to 1 MiB.
pub fn router(orchestrator: Orchestrator) -> Router {
    router_with(orchestrator, ServerConfig::default())
}

/// The routes over `orchestrator`, guarded as `config` says.
pub fn router_with(orchestrator: Orchestrator, config: ServerConfig) -> Router {
    let state = AppState { orchestrator };
    let mut api = Router::new()
        .route("/workflows", get(routes::workflows))
        .route("/workflows/{name}/executions", post(routes::execute))
        .route("/executions", get(routes::list))
        .route("/executions/{id}", get(routes::status))
        .route("/executions/{id}/journal", get(routes::journal))
        .route("/executions/{id}/tree", get(routes::tree))
        .route("/executions/{id}/events", get(routes::events))
        .route("/executions/{id}/cancel", post(routes::cancel))
        .route("/executions/{id}/approve", post(routes::approve))
        .with_state(state.clone());
    if let Some(token) = config.token {
        api = api.layer(middleware::from_fn_with_state(token, auth::require_token));
    }
    Router::new()
        .route("/health", get(routes::health))
        .with_state(state)
        .merge(api)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
}
