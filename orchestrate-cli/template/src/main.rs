//! The `orchestrate` command line over this project's agents and the
//! built-in ones (`shell`, `http`, `echo`, `sleep`, `approval`):
//!
//! ```text
//! cargo run -- run workflows/hello.json --input '{"who": "Ada"}'
//! cargo run -- list
//! ```

use std::process::ExitCode;

use orchestrate_cli::Cli;
use orchestrate_core::Orchestrator;

mod agents;

fn main() -> ExitCode {
    let builder = Orchestrator::builder().agent(agents::greet());
    Cli::new(orchestrate_cli::agents::builtin(builder)).run()
}
