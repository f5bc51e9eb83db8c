//! The command line's grammar: what `orchestrate --help` shows.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Run and inspect durable multi-agent workflows.
///
/// State lives in `.orchestrate/state.db` under the current directory
/// (SQLite) unless `--store` or `ORCHESTRATE_STORE` names another, so a
/// run that was stopped is finished later with `orchestrate resume ID`.
#[derive(Debug, Parser)]
#[command(name = "orchestrate", version)]
pub(crate) struct Args {
    /// Where executions are kept: a SQLite file (`sqlite://PATH` or a
    /// path) or a PostgreSQL URL (`postgres://..`).
    #[arg(long, global = true, env = "ORCHESTRATE_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,

    /// Exports the spans of executions, steps, calls and attempts to this
    /// OpenTelemetry collector over OTLP/HTTP (`http://localhost:4318`).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Creates a project: a Cargo package with an agent of its own, a
    /// workflow, a test, and this command line over them.
    #[command(after_help = "Example:\n  orchestrate init my-agents && cd my-agents && cargo test")]
    Init {
        /// Where (made if missing; must not hold the project's files).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The package's name (default: the directory's).
        #[arg(long)]
        name: Option<String>,
        /// Takes the orchestrate crates from this checkout instead of
        /// crates.io.
        #[arg(long, value_name = "DIR")]
        orchestrate_path: Option<PathBuf>,
    },
    /// Checks a workflow file and reports every problem at once.
    #[command(after_help = "Example:\n  orchestrate validate workflows/build.json")]
    Validate {
        /// The workflow (JSON).
        file: PathBuf,
    },
    /// Shows a workflow's plan: its steps, in the order they can run.
    #[command(after_help = "Example:\n  orchestrate plan workflows/build.json --format mermaid")]
    Plan {
        /// The workflow (JSON).
        file: PathBuf,
        /// How to draw it.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Runs a workflow to its end, showing its progress: redrawn in place
    /// on a terminal, as timestamped lines elsewhere.
    #[command(
        after_help = "Example:\n  orchestrate run workflows/build.json --input '{\"branch\": \"main\"}' --key build-42"
    )]
    Run {
        /// The workflow (JSON).
        file: PathBuf,
        /// The execution's input: JSON, or `@FILE` to read it from a file.
        #[arg(long, value_name = "JSON|@FILE")]
        input: Option<String>,
        /// An idempotency key: a second run of the workflow with it
        /// (here, or over `orchestrate serve`) returns the first's
        /// execution instead of starting another.
        #[arg(long, value_name = "IDEMPOTENCY_KEY")]
        key: Option<String>,
        /// Prints one JSON event per line instead of progress lines.
        #[arg(long)]
        json: bool,
    },
    /// Serves the REST API over the given workflows (see
    /// `orchestrate-server`), until Ctrl-C.
    #[command(
        after_help = "Example:\n  orchestrate serve --addr 127.0.0.1:8080 --workflow build.json --token \"$TOKEN\""
    )]
    Serve {
        /// The address to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// A workflow (JSON) to serve; repeat for more.
        #[arg(long = "workflow", value_name = "FILE")]
        workflows: Vec<PathBuf>,
        /// Requires `Authorization: Bearer TOKEN` on every route but
        /// `/health`.
        #[arg(long, env = "ORCHESTRATE_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Prints the JSON Schema of the workflow format.
    #[command(after_help = "Example:\n  orchestrate schema > workflow.schema.json")]
    Schema,
    /// Lists the executions in the store, newest last.
    #[command(after_help = "Example:\n  orchestrate list --status running")]
    List {
        /// Only executions in this status.
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// Only executions of this workflow.
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Shows an execution: its status, its steps, its call tree, its timing.
    #[command(after_help = "Example:\n  orchestrate inspect 0193c2d4-... --tree --gantt")]
    Inspect {
        /// The execution's id.
        id: String,
        /// Also the tree of calls its agents made.
        #[arg(long)]
        tree: bool,
        /// Also its steps' timing, as a Mermaid gantt chart.
        #[arg(long)]
        gantt: bool,
    },
    /// Prints an execution's events as progress lines; with `--follow`,
    /// waits for more until it finishes (in whatever process runs it).
    #[command(after_help = "Example:\n  orchestrate logs 0193c2d4-... --follow")]
    Logs {
        /// The execution's id.
        id: String,
        /// Keeps printing events as they are journaled, until it ends.
        #[arg(long, short)]
        follow: bool,
        /// Prints one JSON event per line instead.
        #[arg(long)]
        json: bool,
    },
    /// Prints an execution's journal as JSON, capped and with secrets
    /// redacted.
    #[command(after_help = "Example:\n  orchestrate export 0193c2d4-... > journal.json")]
    Export {
        /// The execution's id.
        id: String,
    },
    /// Cancels an execution that has not finished: the process running it
    /// is asked to, or, when none takes the request within `--wait`, it is
    /// ended here.
    #[command(after_help = "Example:\n  orchestrate cancel 0193c2d4-... --wait 30")]
    Cancel {
        /// The execution's id.
        id: String,
        /// Seconds to wait for the process running it before ending it here.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Finishes an execution whose process stopped: steps that had
    /// finished are not run again.
    #[command(after_help = "Example:\n  orchestrate resume 0193c2d4-...")]
    Resume {
        /// The execution's id.
        id: String,
        /// Prints one JSON event per line instead of progress lines.
        #[arg(long)]
        json: bool,
    },
    /// Approves a step waiting for a decision, and runs the execution on.
    #[command(
        after_help = "Example:\n  orchestrate approve 0193c2d4-... deploy --value '{\"ok\": true}'"
    )]
    Approve {
        /// The execution's id.
        id: String,
        /// The waiting step.
        step: String,
        /// The step's output: JSON, or `@FILE` (default `null`).
        #[arg(long, value_name = "JSON|@FILE")]
        value: Option<String>,
    },
    /// Rejects a step waiting for a decision, and runs the execution on.
    #[command(
        after_help = "Example:\n  orchestrate reject 0193c2d4-... deploy --reason 'not today'"
    )]
    Reject {
        /// The execution's id.
        id: String,
        /// The waiting step.
        step: String,
        /// Why: the step's error.
        #[arg(long, default_value = "rejected")]
        reason: String,
    },
}

/// How `plan` draws a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    /// Indented text.
    Text,
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz.
    Dot,
}

/// The statuses `list --status` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFilter {
    Running,
    Parked,
    Succeeded,
    PartiallySucceeded,
    Failed,
    Cancelled,
}
