//! The agents the stock `orchestrate` binary ships, usable from JSON
//! workflows: [`shell`], [`http`] (feature `http`), [`echo`], [`sleep`]
//! and [`approval`].
//!
//! A host application registers them next to its own with
//! [`builtin`], or picks some.

mod approval;
mod bounded;
mod echo;
#[cfg(feature = "http")]
mod http;
mod shell;
mod sleep;

pub use approval::approval;
pub use echo::echo;
#[cfg(feature = "http")]
pub use http::{http, http_with, HttpInput};
pub use shell::{shell, ShellInput};
pub use sleep::sleep;

use orchestrate_core::OrchestratorBuilder;

/// `builder` with every built-in agent registered.
pub fn builtin(builder: OrchestratorBuilder) -> OrchestratorBuilder {
    let builder = builder
        .agent(shell())
        .agent(echo())
        .agent(sleep())
        .agent(approval());
    #[cfg(feature = "http")]
    let builder = builder.agent(http());
    builder
}
