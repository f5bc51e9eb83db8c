//! Hierarchical teams: a tree of nodes with roles, where managers
//! decompose a task and delegate its parts by role, in parallel, and
//! problems travel up until a node resolves them.
//!
//! A **manager** calls its decomposer agent with its task; the decomposer
//! returns subtasks, `[{"role": "tactical", "task": ..}, ..]`. Each goes
//! to a child of that role (in turn among several), all at once, each a
//! call below the manager's (`hq/s0.0`), with the child's budget
//! allocated out of the manager's. A **leaf** calls its agent.
//!
//! A leaf **escalates** when its agent fails, or returns a `confidence`
//! below the hierarchy's threshold; a manager, when its decomposer or
//! join fails or returns subtasks it cannot delegate. The manager above
//! tries what its [`Resolve`] list allows, in order: the same child
//! again, then a sibling of the same role; failing those it escalates in
//! turn, up to the root, which fails with [`HierarchyError::Unresolved`].
//! A branch that overruns its budget is **stopped**: its result says so
//! (`{"$stopped": {"node", "reason"}}`), and the others finish. Nodes
//! pass escalations up as `{"$escalation": ..}` outputs, so an agent's
//! own output must not use the keys `$escalation` and `$stopped`.
//!
//! **Authority** rules say which role may delegate to which; a tree with
//! an edge they do not allow is refused when it is built, before anything
//! runs ([`HierarchyError::Authority`]). Every delegation and escalation
//! is a journal [`Decision`](crate::journal::Decision).
//!
//! # Examples
//!
//! Strategic → tactical → operational:
//!
//! ```
//! use orchestrate_core::pattern::hierarchy::{Authority, Hierarchy, Node, Resolve};
//! use orchestrate_core::{agent_fn, Orchestrator};
//! use orchestrate_graph::{StepDef, WorkflowDef};
//! use serde_json::{json, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Managers decompose; here each splits a task into two for one role.
//! let split = |role: &'static str| move |task: Value, _| async move {
//!     let task = task.as_str().unwrap_or("").to_owned();
//!     Ok(json!([{"role": role, "task": format!("{task}.a")}, {"role": role, "task": format!("{task}.b")}]))
//! };
//! let orchestrator = Orchestrator::builder()
//!     .agent(agent_fn("plan", split("tactical")))
//!     .agent(agent_fn("organise", split("operational")))
//!     .agent(agent_fn("do", |task: Value, _| async move { Ok(json!(format!("done {}", task.as_str().unwrap_or("")))) }))
//!     .agent(
//!         Hierarchy::builder("company", "ceo")
//!             .authority(Authority::new()
//!                 .allow("strategic", ["tactical"])
//!                 .allow("tactical", ["operational"]))
//!             .node(Node::manager("ceo", "strategic", "plan").children(["lead"]))
//!             .node(Node::manager("lead", "tactical", "organise").children(["dev-1", "dev-2"]).budget(500)
//!                 .resolve([Resolve::Reassign]))
//!             .node(Node::leaf("dev-1", "operational", "do").budget(100))
//!             .node(Node::leaf("dev-2", "operational", "do").budget(100))
//!             .build()?,
//!     )
//!     .build()?;
//! let wf = orchestrator.bind(&WorkflowDef::builder("w")
//!     .step(StepDef::new("company", "company").input(json!("ship")))
//!     .build())?;
//! let done = orchestrator.run(&wf, json!(null)).await?.await?;
//! let out = done.output("company").unwrap();
//! // The lead's two subtasks went to its two developers, in turn.
//! assert_eq!(out["results"][0]["results"], json!(["done ship.a.a", "done ship.a.b"]));
//! assert_eq!(out["results"][1]["results"], json!(["done ship.b.a", "done ship.b.b"]));
//! # Ok(())
//! # }
//! ```

mod params;
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use orchestrate_resilience::{Policy, RetryConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{Agent, BoxAgent};
use crate::context::Context;
use crate::error::AgentError;

pub(crate) use params::HierarchyPattern;

/// What a manager tries when a child escalates, in order, before it
/// escalates in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resolve {
    /// The same child again, once.
    Retry,
    /// Each other child of the same role, in turn.
    Reassign,
}

/// Which role may delegate to which. Empty: any role to any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authority {
    allowed: BTreeMap<String, BTreeSet<String>>,
}

impl Authority {
    /// No rules: any role may delegate to any.
    pub fn new() -> Self {
        Self::default()
    }

    /// Role `from` may delegate to each of `to`.
    pub fn allow<I, S>(mut self, from: impl Into<String>, to: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed
            .entry(from.into())
            .or_default()
            .extend(to.into_iter().map(Into::into));
        self
    }

    /// Whether `from` may delegate to `to`.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.allowed.is_empty() || self.allowed.get(from).is_some_and(|t| t.contains(to))
    }
}

/// One node of a [`Hierarchy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    name: String,
    role: String,
    /// A manager's decomposer, or a leaf's worker (registered agents).
    agent: String,
    manager: bool,
    children: Vec<String>,
    /// A manager's agent that joins its children's results.
    join: Option<String>,
    budget: Option<u64>,
    resolve: Vec<Resolve>,
}

impl Node {
    /// A manager named `name` with `role`, whose decomposer is registered
    /// agent `decomposer`.
    pub fn manager(
        name: impl Into<String>,
        role: impl Into<String>,
        decomposer: impl Into<String>,
    ) -> Self {
        Self {
            manager: true,
            ..Self::leaf(name, role, decomposer)
        }
    }

    /// A leaf named `name` with `role`, whose work is registered agent
    /// `agent`'s.
    pub fn leaf(
        name: impl Into<String>,
        role: impl Into<String>,
        agent: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            role: role.into(),
            agent: agent.into(),
            manager: false,
            children: Vec::new(),
            join: None,
            budget: None,
            resolve: Vec::new(),
        }
    }

    /// A manager's children, by node name.
    pub fn children<I, S>(mut self, children: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.children.extend(children.into_iter().map(Into::into));
        self
    }

    /// Joins a manager's results with registered agent `agent`, called
    /// with `{"task": .., "results": [..]}`; without one, the manager
    /// returns `{"results": [..]}`.
    pub fn join(mut self, agent: impl Into<String>) -> Self {
        self.join = Some(agent.into());
        self
    }

    /// The amount the node is given out of its parent's budget when it is
    /// delegated to (see [`budget`](crate::budget)). The root is not
    /// delegated to: it draws on its step's budget (an execution's is set
    /// with [`RunOptions::budget`](crate::RunOptions::budget)), and a
    /// budget on it is refused when the hierarchy is built.
    pub fn budget(mut self, amount: u64) -> Self {
        self.budget = Some(amount);
        self
    }

    /// What the node tries when a child escalates (default: nothing, it
    /// escalates at once).
    pub fn resolve(mut self, resolve: impl IntoIterator<Item = Resolve>) -> Self {
        self.resolve = resolve.into_iter().collect();
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's role.
    pub fn role(&self) -> &str {
        &self.role
    }
}

/// Why a hierarchy could not be built, or failed: the
/// [source](std::error::Error::source) of the [`AgentError`] it fails
/// with. A node's failure below the root reaches the root as an
/// escalation, whose reason keeps its text ([`HierarchyError::Unresolved`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HierarchyError {
    /// A manager delegates to a role its role may not delegate to.
    #[error("node `{parent}` ({from}) may not delegate to `{child}` ({to})")]
    Authority {
        /// The manager.
        parent: String,
        /// Its role.
        from: String,
        /// The child.
        child: String,
        /// The child's role.
        to: String,
    },
    /// The nodes do not form one tree from the root.
    #[error("node `{node}`: {reason}")]
    Shape {
        /// The node.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// A decomposer's subtask names a role none of its manager's children
    /// has, or is not `{"role", "task"}`.
    #[error("node `{node}`: subtask {index}: {reason}")]
    Subtask {
        /// The manager.
        node: String,
        /// The subtask's index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A journaled delegation or escalation names a node that is not a
    /// child of the manager of the subtask's role: the hierarchy changed
    /// since the run that recorded it, which a resumed run cannot follow.
    #[error("node `{manager}`: its recorded {decision} names `{node}`, which is not its child of role `{role}`")]
    UnknownNode {
        /// The manager.
        manager: String,
        /// The decision's kind, `delegate` or `escalation`.
        decision: &'static str,
        /// The node it names.
        node: String,
        /// The subtask's role.
        role: String,
    },
    /// An escalation reached the root and nobody resolved it.
    #[error("hierarchy `{hierarchy}`: unresolved escalation from {}: {reason}", path.join(" -> "))]
    Unresolved {
        /// The hierarchy.
        hierarchy: Arc<str>,
        /// The nodes it came through, from the one it started at up.
        path: Vec<String>,
        /// Why it started.
        reason: String,
    },
}

/// A hierarchy of nodes; see the [module](self) docs. Cheap to clone.
#[derive(Clone)]
pub struct Hierarchy {
    inner: Arc<Config>,
}

pub(super) struct Config {
    name: Arc<str>,
    nodes: Vec<Node>,
    root: usize,
    /// The agent each node runs as when delegated to.
    agents: Vec<BoxAgent>,
    confidence: Option<f64>,
    /// A node's own call: one attempt, no timeout (its children's calls
    /// have their agents' policies).
    policy: Policy,
}

impl Config {
    fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

impl Hierarchy {
    /// Starts a hierarchy registered as agent `name`, whose root is the
    /// node named `root`.
    pub fn builder(name: impl Into<String>, root: impl Into<String>) -> HierarchyBuilder {
        HierarchyBuilder {
            name: name.into(),
            root: root.into(),
            nodes: Vec::new(),
            authority: Authority::new(),
            confidence: None,
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.inner.nodes.iter().find(|n| n.name == name)
    }
}

impl fmt::Debug for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hierarchy")
            .field("name", &self.inner.name)
            .field("root", &self.inner.nodes[self.inner.root].name)
            .field("nodes", &self.inner.nodes.len())
            .finish()
    }
}

#[async_trait]
impl Agent for Hierarchy {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn orchestrates(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        run::run_root(&self.inner, input, ctx).await
    }
}

/// A node of a hierarchy as the agent its parent calls.
struct NodeAgent {
    config: std::sync::Weak<Config>,
    node: usize,
    name: String,
}

#[async_trait]
impl Agent for NodeAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn orchestrates(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        let config = self
            .config
            .upgrade()
            .ok_or_else(|| AgentError::permanent("the hierarchy was dropped"))?;
        run::run_node(&config, self.node, input, ctx).await
    }
}

/// Configures a [`Hierarchy`]; made by [`Hierarchy::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HierarchyBuilder {
    name: String,
    root: String,
    nodes: Vec<Node>,
    authority: Authority,
    confidence: Option<f64>,
}

impl HierarchyBuilder {
    /// Adds a node.
    pub fn node(mut self, node: Node) -> Self {
        self.nodes.push(node);
        self
    }

    /// Sets the authority rules.
    pub fn authority(mut self, authority: Authority) -> Self {
        self.authority = authority;
        self
    }

    /// A leaf whose agent returns an object with a `confidence` below
    /// `threshold` escalates it (default: none does).
    pub fn confidence(mut self, threshold: f64) -> Self {
        self.confidence = Some(threshold);
        self
    }

    /// Builds the hierarchy.
    ///
    /// # Errors
    ///
    /// [`HierarchyError::Authority`] for a delegation the rules do not
    /// allow; [`HierarchyError::Shape`] for an unknown root or child, a
    /// node named twice or with two parents, a manager without children,
    /// a leaf with some, or a node the root does not reach.
    pub fn build(self) -> Result<Hierarchy, HierarchyError> {
        let shape = |node: &str, reason: String| HierarchyError::Shape {
            node: node.to_owned(),
            reason,
        };
        let index = |name: &str| self.nodes.iter().position(|n| n.name == name);
        let root =
            index(&self.root).ok_or_else(|| shape(&self.root, "the root is not a node".into()))?;
        if self.nodes[root].budget.is_some() {
            // Silently ignored, it would promise a limit nothing keeps.
            return Err(shape(
                &self.root,
                "the root is not delegated to: it spends its step's or call's budget \
                 (RunOptions::budget, CallOptions::budget), not one of its own"
                    .into(),
            ));
        }
        let mut parent: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if index(&node.name) != Some(i) {
                return Err(shape(&node.name, "two nodes have this name".into()));
            }
            match (node.manager, node.children.is_empty()) {
                (true, true) => return Err(shape(&node.name, "a manager needs children".into())),
                (false, false) => return Err(shape(&node.name, "a leaf has no children".into())),
                _ => {}
            }
            for child_name in &node.children {
                let child = index(child_name).ok_or_else(|| {
                    shape(&node.name, format!("child `{child_name}` is not a node"))
                })?;
                if child == root || parent[child].replace(i).is_some() {
                    return Err(shape(
                        child_name,
                        "a node has one parent, and the root none".into(),
                    ));
                }
                let to = &self.nodes[child].role;
                if !self.authority.allows(&node.role, to) {
                    return Err(HierarchyError::Authority {
                        parent: node.name.clone(),
                        from: node.role.clone(),
                        child: child_name.clone(),
                        to: to.clone(),
                    });
                }
            }
        }
        // Every node below the root: a node with a parent whose chain
        // reaches it (one parent each, so a chain that does not is a
        // cycle or ends at another orphan).
        for (i, node) in self.nodes.iter().enumerate() {
            let mut at = i;
            let mut steps = 0;
            while at != root {
                match parent[at] {
                    Some(p) if steps <= self.nodes.len() => {
                        at = p;
                        steps += 1;
                    }
                    _ => return Err(shape(&node.name, "the root does not reach it".into())),
                }
            }
        }
        let nodes = self.nodes;
        let name = self.name;
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Config>| Config {
            agents: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Arc::new(NodeAgent {
                        config: weak.clone(),
                        node: i,
                        // Not the node's own name: that may be an
                        // agent's, whose concurrency limit a node's call
                        // would then hold while it calls that agent.
                        name: format!("{name}::{}", n.name),
                    }) as BoxAgent
                })
                .collect(),
            name: name.into(),
            nodes,
            root,
            confidence: self.confidence,
            policy: Policy::builder().retry(RetryConfig::attempts(1)).build(),
        });
        Ok(Hierarchy { inner })
    }
}
