//! Proptest strategies that generate valid workflows.

use orchestrate_graph::{StepDef, WorkflowDef};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Dependency lists of a random DAG with `size` nodes: node `i` depends on
/// one to three distinct earlier nodes (node 0 on none), so the graph is
/// connected from node 0 and has no orphans.
pub fn arb_dag(size: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Vec<usize>>> {
    size.prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::btree_set(0..i, 1..=i.min(3))
                        .prop_map(|s| s.into_iter().collect())
                        .boxed()
                }
            })
            .collect::<Vec<_>>()
    })
}

/// A valid workflow of `size` steps (`s0`, `s1`, ...) all run by `agent`;
/// each step's input lists its dependencies' outputs through interpolation:
/// `{"step": "s3", "deps": ["${steps.s1.output}", ...]}`.
///
/// # Examples
///
/// ```
/// use orchestrate_graph::Plan;
/// use orchestrate_testing::strategy::arb_workflow;
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
///
/// let def = arb_workflow(5..=10, "mock").new_tree(&mut TestRunner::default()).unwrap().current();
/// assert!(Plan::new(&def).is_ok());
/// ```
pub fn arb_workflow(
    size: std::ops::RangeInclusive<usize>,
    agent: &str,
) -> impl Strategy<Value = WorkflowDef> {
    let agent = agent.to_owned();
    arb_dag(size).prop_map(move |deps| workflow_from_dag(&deps, &agent))
}

/// Builds the workflow that [`arb_workflow`] generates for a given DAG.
pub fn workflow_from_dag(deps: &[Vec<usize>], agent: &str) -> WorkflowDef {
    WorkflowDef::builder("generated")
        .steps(deps.iter().enumerate().map(|(i, ds)| {
            let refs: Vec<Value> = ds
                .iter()
                .map(|d| Value::String(format!("${{steps.s{d}.output}}")))
                .collect();
            StepDef::new(format!("s{i}"), agent)
                .depends_on(ds.iter().map(|d| format!("s{d}")))
                .input(json!({"step": format!("s{i}"), "deps": refs}))
        }))
        .build()
}
