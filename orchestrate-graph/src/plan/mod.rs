//! A validated, planned workflow: order, generations, critical path.

mod build;
mod cycle;
mod index;
mod links;

use std::sync::{Arc, OnceLock};

use petgraph::graph::{DiGraph, NodeIndex};
use smallvec::SmallVec;

use crate::def::{OnError, StepPolicy, WorkflowDef};
use crate::problem::ValidationErrors;
use crate::template::{Condition, Template};
use index::StepIndex;
use links::Links;

/// A list of step indices, inline up to three: no allocation for the
/// template references of most steps.
pub(crate) type StepList = SmallVec<[usize; 3]>;

/// The petgraph form of the dependencies: node `i` is step `i`, with an edge
/// from each dependency to its dependent.
fn dependency_graph(links: &Links) -> DiGraph<(), ()> {
    let mut graph = DiGraph::with_capacity(links.len(), links.edge_count());
    for _ in 0..links.len() {
        graph.add_node(());
    }
    for i in 0..links.len() {
        for &d in links.deps(i) {
            graph.add_edge(NodeIndex::new(d), NodeIndex::new(i), ());
        }
    }
    graph
}

/// One step of a [`Plan`], with its references resolved to plan indices.
#[derive(Clone, Debug)]
pub struct PlannedStep {
    /// Index into the plan's agents: no reference count to take and drop
    /// per step.
    pub(crate) agent: u32,
    pub(crate) input: Template,
    /// Boxed: most steps have none, and the plan's steps stay small.
    pub(crate) condition: Option<Box<Condition>>,
    /// Boxed: mostly empty or one, and kept for the plan's life.
    pub(crate) input_refs: Box<[usize]>,
    /// `None` for the default policy, which most steps have: no reference
    /// count to take per step.
    pub(crate) policy: Option<Arc<StepPolicy>>,
    pub(crate) cost: f64,
    /// For a step that runs a pattern (named by its agent), the
    /// pattern's parameters.
    pub(crate) pattern: Option<Arc<serde_json::Value>>,
}

impl PlannedStep {
    /// The agent that runs the step, as an index into
    /// [`Plan::agents`] (see [`Plan::agent_of`]).
    pub fn agent_index(&self) -> usize {
        self.agent as usize
    }
    /// The parsed input template.
    pub fn input(&self) -> &Template {
        &self.input
    }
    /// Plan indices of the steps whose outputs the input template reads
    /// (each once): what evaluating it again needs.
    pub fn input_refs(&self) -> &[usize] {
        &self.input_refs
    }
    /// The parsed condition, if any.
    pub fn condition(&self) -> Option<&Condition> {
        self.condition.as_deref()
    }
    /// The step's policy fields.
    pub fn policy(&self) -> &StepPolicy {
        static DEFAULT: StepPolicy = StepPolicy {
            timeout: None,
            retries: None,
            on_error: OnError::Fail,
        };
        self.policy.as_deref().unwrap_or(&DEFAULT)
    }
    /// The cost estimate (1.0 when none was given).
    pub fn cost(&self) -> f64 {
        self.cost
    }
    /// For a step that runs a pattern, its parameters (`null` when none
    /// were given); the pattern's name is the step's agent
    /// ([`Plan::agent_of`]). `None` for a step that runs an agent.
    pub fn pattern_params(&self) -> Option<&serde_json::Value> {
        self.pattern.as_deref()
    }
}

/// A validated workflow, ready to run.
///
/// Steps keep the order of the definition; everything else refers to them by
/// that index.
///
/// # Examples
///
/// ```
/// use orchestrate_graph::{Plan, StepDef, WorkflowDef};
///
/// let def = WorkflowDef::builder("w")
///     .step(StepDef::new("a", "x"))
///     .step(StepDef::new("b", "x").depends_on(["a"]))
///     .step(StepDef::new("c", "x").depends_on(["a"]))
///     .step(StepDef::new("d", "x").depends_on(["b", "c"]).cost(5.0))
///     .build();
/// let plan = Plan::new(&def).unwrap();
/// assert_eq!(plan.to_text(), "Batch 1: [a]\nBatch 2: [b, c]\nBatch 3: [d]\n");
/// assert_eq!(plan.critical_path_ids(), vec!["a", "b", "d"]);
/// assert_eq!(plan.critical_path_cost(), 7.0);
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    pub(crate) name: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) steps: Vec<PlannedStep>,
    /// The steps' ids, apart from the steps: the index compares against
    /// them densely packed, and dropping a plan takes each id's reference
    /// count back in one tight pass.
    pub(crate) ids: Vec<Arc<str>>,
    pub(crate) links: Links,
    /// Each agent name once, in the order steps first name them.
    pub(crate) agents: Vec<Arc<str>>,
    pub(crate) index: StepIndex,
    /// Built on first use: scheduling needs only the steps' own lists.
    pub(crate) graph: OnceLock<DiGraph<(), ()>>,
    pub(crate) order: Vec<usize>,
    pub(crate) generations: Vec<Vec<usize>>,
    pub(crate) critical_path: Vec<usize>,
    pub(crate) critical_cost: f64,
}

impl Plan {
    /// Validates `def` and plans it.
    ///
    /// # Errors
    ///
    /// [`ValidationErrors`] listing every problem found, each naming its step.
    pub fn new(def: &WorkflowDef) -> Result<Self, ValidationErrors> {
        build::build(def)
    }

    /// The workflow's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The workflow's version.
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// The steps, in definition order.
    pub fn steps(&self) -> &[PlannedStep] {
        &self.steps
    }

    /// The id of step `step` (a plan index).
    ///
    /// # Panics
    ///
    /// When `step` is not a plan index.
    pub fn id(&self, step: usize) -> &Arc<str> {
        &self.ids[step]
    }

    /// The steps' ids, in definition order.
    pub fn ids(&self) -> &[Arc<str>] {
        &self.ids
    }

    /// The agents the steps name, each once, in the order steps first
    /// name them.
    pub fn agents(&self) -> &[Arc<str>] {
        &self.agents
    }

    /// The agent that runs step `step` (a plan index).
    ///
    /// # Panics
    ///
    /// When `step` is not a plan index.
    pub fn agent_of(&self, step: usize) -> &Arc<str> {
        &self.agents[self.steps[step].agent as usize]
    }

    /// Plan indices of the steps step `step` depends on (no duplicates).
    ///
    /// # Panics
    ///
    /// When `step` is not a plan index.
    pub fn deps(&self, step: usize) -> &[usize] {
        self.links.deps(step)
    }

    /// Plan indices of the steps that depend on step `step`, in plan order.
    ///
    /// # Panics
    ///
    /// When `step` is not a plan index.
    pub fn dependents(&self, step: usize) -> &[usize] {
        self.links.dependents(step)
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the plan has no steps (never true for a validated plan).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step with id `id`.
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.index_of(id).map(|i| &self.steps[i])
    }

    /// The plan index of step `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id, |j| &self.ids[j])
    }

    /// The dependency graph (edge `a -> b`: `b` depends on `a`); node `i` is step `i`.
    pub fn graph(&self) -> &DiGraph<(), ()> {
        self.graph.get_or_init(|| dependency_graph(&self.links))
    }

    /// A topological order: every step comes after all its dependencies.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Batches of steps whose dependencies are all in earlier batches; the
    /// steps of one batch are independent of each other.
    pub fn generations(&self) -> &[Vec<usize>] {
        &self.generations
    }

    /// The most expensive dependency chain by cost estimate, entry first.
    pub fn critical_path(&self) -> &[usize] {
        &self.critical_path
    }

    /// The ids along [`critical_path`](Self::critical_path).
    pub fn critical_path_ids(&self) -> Vec<&str> {
        self.critical_path.iter().map(|&i| &*self.ids[i]).collect()
    }

    /// The total cost of the critical path.
    pub fn critical_path_cost(&self) -> f64 {
        self.critical_cost
    }

    /// Steps that have no dependencies.
    pub fn entries(&self) -> impl Iterator<Item = usize> + '_ {
        self.generations.first().into_iter().flatten().copied()
    }
}
