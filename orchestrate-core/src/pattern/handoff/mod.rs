//! Handoff: control and the whole conversation pass from agent to agent
//! until one gives the final answer.
//!
//! Each hop calls the current agent with a [`HandoffInput`] (the task,
//! the [`Conversation`] so far, and a gate's feedback when its last reply
//! was sent back) and reads its output as a [`Turn`]: a reply, and either
//! the next agent ([`Turn::to`]), the final answer ([`Turn::done`]), or
//! neither, and the handoff's [`Router`] picks the next agent from the
//! reply. Between hops, [`Gate`]s judge the reply: a failed gate retries
//! the hop (the same agent, told why) or rolls back to the previous agent
//! (told why). A hop limit ends loops with [`HandoffError::HopLimit`].
//!
//! A hop is one call, keyed by its number (`desk/h3`), and one journaled
//! [`Decision`](crate::journal::Decision) (`hop`, with its reason); each
//! verdict is one too (`gate`). The conversation is rebuilt from the
//! calls' journaled outputs, so it never holds a request without its
//! reply, and a resumed handoff replays the hops that ended and goes on.
//!
//! # Examples
//!
//! ```
//! use orchestrate_core::pattern::handoff::{Gate, Handoff, HandoffInput, Turn};
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use serde_json::{json, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let triage = agent_fn("triage", |_, _| async move {
//!     Ok(Turn::to("billing", json!("a billing question")).because("mentions an invoice").into())
//! });
//! let billing = agent_fn("billing", |input: Value, _| async move {
//!     let input = HandoffInput::from_value(input)?;
//!     // Told why when the gate sent the first answer back.
//!     let answer = match input.feedback {
//!         None => "refunded",
//!         Some(_) => "refunded within 5 days",
//!     };
//!     Ok(Turn::done(json!(answer)).into())
//! });
//! let desk = Handoff::builder("desk", "triage")
//!     .agents(["triage", "billing"])
//!     .gate(Gate::check("says when", |turn| {
//!         match turn.reply.as_str().is_some_and(|r| r.contains("days")) {
//!             true => Ok(()),
//!             false => Err("say when the refund arrives".into()),
//!         }
//!     }).after(["billing"]))
//!     .build()?;
//! let orchestrator = Orchestrator::builder().agent(triage).agent(billing).agent(desk).build()?;
//! let wf = orchestrator.bind(&WorkflowDef::builder("w")
//!     .step(StepDef::new("desk", "desk").input(json!("${input}")))
//!     .build())?;
//! let done = orchestrator.run(&wf, json!("where is my refund?")).await?.await?;
//! let out = done.output("desk").unwrap();
//! assert_eq!(out["answer"], json!("refunded within 5 days"));
//! assert_eq!(out["by"], json!("billing"));
//! assert_eq!(out["hops"], json!(3)); // triage, billing, billing again
//! # Ok(())
//! # }
//! ```

mod gate;
mod params;
mod run;
mod turn;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::router::Router;
use super::ParamError;
use crate::agent::Agent;
use crate::context::Context;
use crate::error::{AgentError, Error};

pub use gate::{Gate, GateAction, Verdict};
pub(crate) use params::HandoffPattern;
pub use turn::{Conversation, Entry, HandoffInput, Turn};

/// Why a handoff failed. It is the [source](std::error::Error::source)
/// of the [`AgentError`] the handoff fails with. When it runs as a step, the
/// step's error holds it; called from another agent, the caller sees a
/// [`CallFailed`](crate::Error::CallFailed) whose journaled
/// [`ErrorInfo`](crate::ErrorInfo) keeps its text, as every call's does.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandoffError {
    /// The hop limit was reached before a final answer.
    #[error("handoff `{handoff}`: no final answer after {hops} hops ({})", path.join(" -> "))]
    HopLimit {
        /// The handoff.
        handoff: Arc<str>,
        /// Hops made.
        hops: u32,
        /// The agents, in the order they held control.
        path: Vec<String>,
    },
    /// An agent handed off to one that is not among the handoff's agents.
    #[error("handoff `{handoff}`: `{from}` hands off to `{to}`, which is not one of its agents")]
    UnknownAgent {
        /// The handoff.
        handoff: Arc<str>,
        /// The agent handing off.
        from: String,
        /// The agent named.
        to: String,
    },
    /// An agent named no next agent and gave no final answer, and no
    /// router could pick one.
    #[error("handoff `{handoff}`: `{from}` neither answered nor handed off, and no router picked an agent")]
    NoNext {
        /// The handoff.
        handoff: Arc<str>,
        /// The agent.
        from: String,
    },
    /// An agent's output is not a [`Turn`].
    #[error("handoff `{handoff}`: `{from}` returned something other than a turn: {reason}")]
    BadTurn {
        /// The handoff.
        handoff: Arc<str>,
        /// The agent.
        from: String,
        /// Why it does not read as a turn.
        reason: String,
    },
    /// A gate failed and its action cannot apply: a rollback from the
    /// first agent, which has no previous one.
    #[error("handoff `{handoff}`: gate `{gate}` failed `{from}` ({reason}), and there is no previous agent to roll back to")]
    NoRollback {
        /// The handoff.
        handoff: Arc<str>,
        /// The gate.
        gate: String,
        /// The agent whose reply failed.
        from: String,
        /// The gate's reason.
        reason: String,
    },
}

/// A handoff among agents; see the [module](self) docs. Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    inner: Arc<Config>,
}

struct Config {
    name: Arc<str>,
    start: String,
    /// The agents control may pass to (registered names).
    agents: Vec<String>,
    max_hops: u32,
    gates: Vec<Gate>,
    router: Option<Arc<dyn Router>>,
}

impl Handoff {
    /// Starts a handoff registered as agent `name`, where `start` holds
    /// control first.
    pub fn builder(name: impl Into<String>, start: impl Into<String>) -> HandoffBuilder {
        HandoffBuilder {
            name: name.into(),
            start: start.into(),
            agents: Vec::new(),
            max_hops: 10,
            gates: Vec::new(),
            router: None,
        }
    }
}

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff")
            .field("name", &self.inner.name)
            .field("start", &self.inner.start)
            .field("agents", &self.inner.agents)
            .field("max_hops", &self.inner.max_hops)
            .field("gates", &self.inner.gates)
            .field("router", &self.inner.router.is_some())
            .finish()
    }
}

#[async_trait]
impl Agent for Handoff {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn orchestrates(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        run::hand_off(&self.inner, input, ctx).await
    }
}

/// Configures a [`Handoff`]; made by [`Handoff::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct HandoffBuilder {
    name: String,
    start: String,
    agents: Vec<String>,
    max_hops: u32,
    gates: Vec<Gate>,
    router: Option<Arc<dyn Router>>,
}

impl fmt::Debug for HandoffBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoffBuilder")
            .field("name", &self.name)
            .field("start", &self.start)
            .field("agents", &self.agents)
            .finish_non_exhaustive()
    }
}

impl HandoffBuilder {
    /// The agents control may pass to, by registered name (the start is
    /// one of them whether listed or not).
    pub fn agents<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.agents.extend(agents.into_iter().map(Into::into));
        self
    }

    /// The most hops before [`HandoffError::HopLimit`] (default 10, at
    /// least 1). Every call of an agent is a hop, a retried one too.
    pub fn max_hops(mut self, n: u32) -> Self {
        self.max_hops = n.max(1);
        self
    }

    /// Adds a gate, run on every reply it applies to, in the order added.
    pub fn gate(mut self, gate: Gate) -> Self {
        self.gates.push(gate);
        self
    }

    /// Lets `router` pick the next agent when a turn names none and is
    /// not final: among the handoff's agents (but the one that just
    /// spoke), from the turn's reply. Each candidate carries its circuit
    /// breaker's state; its load is nil, as a handoff runs one agent at a
    /// time and knows of no other caller's calls.
    pub fn router(mut self, router: impl Router) -> Self {
        self.router = Some(Arc::new(router));
        self
    }

    /// Builds the handoff.
    ///
    /// # Errors
    ///
    /// A [`ParamError`] on `gates[i].after` naming an agent that is not
    /// one of the handoff's.
    pub fn build(mut self) -> Result<Handoff, ParamError> {
        if !self.agents.contains(&self.start) {
            self.agents.insert(0, self.start.clone());
        }
        for (i, gate) in self.gates.iter().enumerate() {
            if let Some(stray) = gate.after.iter().find(|a| !self.agents.contains(a)) {
                return Err(ParamError::new(
                    format!("gates[{i}].after"),
                    format!("`{stray}` is not one of the handoff's agents"),
                ));
            }
        }
        Ok(Handoff {
            inner: Arc::new(Config {
                name: self.name.into(),
                start: self.start,
                agents: self.agents,
                max_hops: self.max_hops,
                gates: self.gates,
                router: self.router,
            }),
        })
    }
}

/// Errors of a call that end the handoff as they are.
fn call_failed(error: Error) -> AgentError {
    error.into()
}
