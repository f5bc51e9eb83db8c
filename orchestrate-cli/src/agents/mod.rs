//! The agents the stock `orchestrate` binary ships, usable from JSON
//! workflows: [`shell`], [`echo`], [`sleep`] and [`approval`].
//!
//! A host application registers them next to its own with
//! [`builtin`], or picks some.

mod approval;
mod echo;
mod shell;
mod sleep;

pub use approval::approval;
pub use echo::echo;
pub use shell::{shell, ShellInput};
pub use sleep::sleep;

use orchestrate_core::OrchestratorBuilder;

/// `builder` with every built-in agent registered.
pub fn builtin(builder: OrchestratorBuilder) -> OrchestratorBuilder {
    builder
        .agent(shell())
        .agent(echo())
        .agent(sleep())
        .agent(approval())
}
