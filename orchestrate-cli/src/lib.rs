//! The `orchestrate` command line, as a library: the stock binary is
//! [`Cli::stock`], and a host application gets the same commands with its
//! own agents registered.
//!
//! ```text
//! orchestrate init my-agents   # a project with an agent of its own
//! orchestrate validate build.json
//! orchestrate run build.json --input '{"branch": "main"}'
//! orchestrate list
//! orchestrate inspect ID --tree --gantt
//! orchestrate resume ID        # after a crash or kill -9
//! ```
//!
//! State lives in `.orchestrate/state.db` (SQLite) under the current
//! directory unless `--store` or `ORCHESTRATE_STORE` names another. Every
//! command only calls the public API of `orchestrate-core`: the command
//! line has no execution logic of its own. Exit codes: 0 success, 1 the
//! workflow failed, 2 bad usage or an invalid workflow, 130 interrupted.
//!
//! # Embedding
//!
//! ```no_run
//! use orchestrate_cli::Cli;
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use serde_json::json;
//!
//! fn main() -> std::process::ExitCode {
//!     let builder = Orchestrator::builder()
//!         .agent(agent_fn("greet", |name, _| async move { Ok(json!(format!("hello {name}"))) }));
//!     // The built-in agents too, next to yours.
//!     Cli::new(orchestrate_cli::agents::builtin(builder)).run()
//! }
//! ```
//!
//! A run from a test, without a process:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use orchestrate_cli::{Cli, Exit};
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("w.json");
//! std::fs::write(&file, r#"{"name": "w", "steps": [{"id": "a", "agent": "echo", "input": 1}]}"#).unwrap();
//! let store = format!("sqlite://{}", dir.path().join("state.db").display());
//! let exit = Cli::stock()
//!     .run_from(["orchestrate", "--store", &store, "run", file.to_str().unwrap()])
//!     .await;
//! assert_eq!(exit, Exit::Success);
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod agents;
mod args;
mod commands;
mod error;
#[cfg(feature = "otel")]
pub mod otel;
mod progress;
pub mod state;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use orchestrate_core::{ExecutionId, OrchestratorBuilder};

pub use error::{CliError, Exit};

use args::{Args, Command};

/// How often a running command looks for `orchestrate cancel` requests
/// from other processes: one store query per look.
const CANCEL_LOOK: std::time::Duration = std::time::Duration::from_millis(250);

/// The command line over an orchestrator's agents and patterns.
#[must_use = "a command line does nothing until it is run"]
pub struct Cli {
    builder: OrchestratorBuilder,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli").finish_non_exhaustive()
    }
}

impl Cli {
    /// The command line over `builder`'s agents, patterns and policies
    /// (its store is replaced by the one the command line opens, and it
    /// [watches](OrchestratorBuilder::watch_cancel_requests) for
    /// `orchestrate cancel` from other processes).
    pub fn new(builder: OrchestratorBuilder) -> Self {
        Self { builder }
    }

    /// The stock command line: the [built-in agents](agents) only.
    pub fn stock() -> Self {
        Self::new(agents::builtin(orchestrate_core::Orchestrator::builder()))
    }

    /// Runs the command the process's arguments name, on a runtime of its
    /// own, and returns the exit code (errors are printed on stderr).
    pub fn run(self) -> ExitCode {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return Exit::Failed.into();
            }
        };
        runtime.block_on(self.run_from(std::env::args_os())).into()
    }

    /// Runs the command `args` name (the first is the program's name).
    pub async fn run_from<I, T>(self, args: I) -> Exit
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = match Args::try_parse_from(args) {
            Ok(args) => args,
            Err(e) => {
                // `--help` and `--version` are not failures.
                let _ = e.print();
                return if e.use_stderr() {
                    Exit::Usage
                } else {
                    Exit::Success
                };
            }
        };
        match self.traced(args).await {
            Ok(exit) => exit,
            Err(e) => {
                eprintln!("error: {e}");
                e.exit()
            }
        }
    }

    /// Runs the command, its spans exported when `--otlp-endpoint` asks.
    #[cfg(feature = "otel")]
    async fn traced(self, args: Args) -> Result<Exit, CliError> {
        let Some(endpoint) = args.otlp_endpoint.clone() else {
            return self.dispatch(args).await;
        };
        let export = otel::Export::start(&endpoint)?;
        let exit = self.dispatch(args).await;
        export.finish().await;
        exit
    }

    #[cfg(not(feature = "otel"))]
    async fn traced(self, args: Args) -> Result<Exit, CliError> {
        if args.otlp_endpoint.is_some() {
            return Err(CliError::Usage(
                "--otlp-endpoint: this build has no OpenTelemetry support (feature `otel`)"
                    .to_owned(),
            ));
        }
        self.dispatch(args).await
    }

    async fn dispatch(self, args: Args) -> Result<Exit, CliError> {
        // Commands that need no store make none.
        match &args.command {
            Command::Init {
                dir,
                name,
                orchestrate_path,
            } => return commands::init::init(dir, name.as_deref(), orchestrate_path.as_deref()),
            Command::Schema => {
                let schema = orchestrate_graph::workflow_schema();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&schema).unwrap_or_default()
                );
                return Ok(Exit::Success);
            }
            _ => {}
        }
        let store = state::open_store(args.store.as_deref()).await?;
        // A `cancel` in another process reaches a run here within this.
        let mut builder = self
            .builder
            .store(store.clone())
            .watch_cancel_requests(CANCEL_LOOK);
        // Commands on an execution need its workflow registered: the
        // definition `run` kept in the store.
        if let Command::Serve { workflows, .. } = &args.command {
            for file in workflows {
                let def = commands::check::parse(file)?;
                state::keep_definition(&*store, &def).await?;
                builder = builder.workflow(def);
            }
        }
        if let Some(id) = args.command.execution() {
            builder = match workflow_of(&*store, &id).await? {
                Some(def) => builder.workflow(def),
                None => builder,
            };
        }
        let orchestrator = builder.build()?;
        let exit = match args.command {
            Command::Validate { file } => commands::check::validate(&file, &orchestrator),
            Command::Plan { file, format } => commands::check::plan(&file, format, &orchestrator),
            Command::Run {
                file,
                input,
                key,
                json,
            } => {
                let input = state::input(input.as_deref())?;
                commands::run::run(&file, input, key, json, &orchestrator, &*store).await
            }
            Command::Serve { addr, token, .. } => {
                commands::serve::serve(&addr, token, &orchestrator).await
            }
            // Done above, without a store.
            Command::Init { .. } | Command::Schema => Ok(Exit::Success),
            Command::List { status, workflow } => {
                commands::inspect::list(&*store, status, workflow).await
            }
            Command::Inspect { id, tree, gantt } => {
                commands::inspect::inspect(&id.into(), tree, gantt, &orchestrator).await
            }
            Command::Logs { id, follow, json } => {
                commands::logs::logs(&id.into(), follow, json, &*store).await
            }
            Command::Export { id } => commands::inspect::export(&id.into(), &orchestrator).await,
            Command::Cancel { id, wait } => {
                let wait = std::time::Duration::from_secs(wait);
                commands::control::cancel(&id.into(), wait, &orchestrator).await
            }
            Command::Resume { id, json } => {
                commands::run::resume(&id.into(), json, &orchestrator).await
            }
            Command::Approve { id, step, value } => {
                let value = state::input(value.as_deref())?;
                commands::control::approve(&id.into(), &step, value, &orchestrator).await
            }
            Command::Reject { id, step, reason } => {
                commands::control::reject(&id.into(), &step, reason, &orchestrator).await
            }
        };
        // Interrupted, the run has ended cancelled, or a second Ctrl-C
        // asked not to wait for it.
        if !matches!(exit, Ok(Exit::Interrupted)) {
            orchestrator.shutdown().await;
        }
        exit
    }
}

/// The definition of execution `id`'s workflow kept in `store`; `None`
/// when there is no such execution (the command then says so).
async fn workflow_of(
    store: &dyn orchestrate_core::store::Store,
    id: &ExecutionId,
) -> Result<Option<orchestrate_graph::WorkflowDef>, CliError> {
    let first = store.load(id, 0).await?;
    let Some(orchestrate_core::journal::EventKind::ExecutionStarted(start)) =
        first.first().map(|e| &e.kind)
    else {
        return Ok(None);
    };
    match state::definition(store, id, &start.workflow, &start.version).await? {
        Some(def) => Ok(Some(def)),
        None => Err(CliError::NoDefinition {
            id: id.to_string(),
            workflow: format!("{}@{}", start.workflow, start.version),
        }),
    }
}

impl Command {
    /// The execution a command is about, when it resumes or steers one.
    fn execution(&self) -> Option<ExecutionId> {
        match self {
            Command::Cancel { id, .. }
            | Command::Resume { id, .. }
            | Command::Approve { id, .. }
            | Command::Reject { id, .. } => Some(id.as_str().into()),
            _ => None,
        }
    }
}
