//! What can go wrong in a command, and the exit code each ends with.

use std::path::PathBuf;
use std::process::ExitCode;

/// How a command ended, as the process's exit code says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// It did what was asked (0).
    Success,
    /// The workflow ran and failed, or the store did (1).
    Failed,
    /// Bad usage, or a workflow that is not valid (2).
    Usage,
    /// Interrupted with Ctrl-C (130).
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// A command's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A workflow file is not a valid workflow; every problem found.
    #[error("{}: {} problem(s):\n{}", file.display(), problems.len(), problems.join("\n"))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Each problem, with its JSON path and step.
        problems: Vec<String>,
    },
    /// An argument is not usable.
    #[error("{0}")]
    Usage(String),
    /// The execution's workflow definition is not in the store: it was
    /// not started by this command line.
    #[error("execution `{id}` runs workflow `{workflow}`, whose definition this store does not hold (it was not started with `orchestrate run`)")]
    NoDefinition {
        /// The execution.
        id: String,
        /// Its workflow.
        workflow: String,
    },
    /// The process running an execution took the request to cancel it,
    /// but had not ended it after the wait.
    #[error("execution `{id}`: the process running it took the request to cancel it but had not ended it after {}s; look again with `orchestrate inspect {id}`", waited.as_secs())]
    StillRunning {
        /// The execution.
        id: String,
        /// How long this waited.
        waited: std::time::Duration,
    },
    /// The library refused or failed.
    #[error(transparent)]
    Orchestrate(#[from] orchestrate_core::Error),
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] orchestrate_core::store::StoreError),
}

impl CliError {
    /// The exit code this failure ends the process with.
    pub fn exit(&self) -> Exit {
        use orchestrate_core::store::StoreError;
        use orchestrate_core::Error;
        match self {
            CliError::Io { .. }
            | CliError::Invalid { .. }
            | CliError::Usage(_)
            | CliError::NoDefinition { .. } => Exit::Usage,
            CliError::Orchestrate(
                Error::Validation(_)
                | Error::UnknownAgent { .. }
                | Error::UnknownPattern { .. }
                | Error::PatternParams { .. }
                | Error::UnknownWorkflow { .. }
                | Error::WorkflowMismatch { .. }
                | Error::ExecutionNotFound(_)
                | Error::NotInterrupted { .. },
            ) => Exit::Usage,
            CliError::Store(StoreError::NotFound { .. })
            | CliError::Orchestrate(Error::Store(StoreError::NotFound { .. })) => Exit::Usage,
            CliError::Orchestrate(Error::Cancelled { .. }) => Exit::Interrupted,
            CliError::Orchestrate(_) | CliError::Store(_) | CliError::StillRunning { .. } => {
                Exit::Failed
            }
        }
    }
}
