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

/// Any JSON value the orchestrator accepts, weighted towards the ones
/// stores get wrong: nesting up to
/// [`MAX_VALUE_DEPTH`](orchestrate_core::depth::MAX_VALUE_DEPTH), integers
/// at the ends of `i64` and `u64`, floats of every class (negative zero,
/// subnormals, integral floats such as `1e15`, the largest finite),
/// unicode text with control characters (U+0000 included) and empty keys,
/// and now and then a string of a megabyte.
///
/// # Examples
///
/// ```
/// use orchestrate_core::depth::exceeds_max_depth;
/// use orchestrate_testing::strategy::arb_json;
/// use proptest::strategy::{Strategy, ValueTree};
/// use proptest::test_runner::TestRunner;
///
/// let mut runner = TestRunner::deterministic();
/// for _ in 0..20 {
///     let value = arb_json().new_tree(&mut runner).unwrap().current();
///     assert!(!exceeds_max_depth(&value));
/// }
/// ```
pub fn arb_json() -> impl Strategy<Value = Value> {
    use orchestrate_core::depth::MAX_VALUE_DEPTH;
    // The tree below nests at most 4 levels; wrapping adds up to the rest.
    const TREE_DEPTH: usize = 4;
    (
        json_tree(),
        0..=MAX_VALUE_DEPTH - TREE_DEPTH,
        any::<bool>(),
        prop::option::weighted(0.1, huge_string()),
    )
        .prop_map(|(tree, wraps, objects, huge)| {
            let mut value = match huge {
                Some(text) => Value::Array(vec![tree, Value::String(text)]),
                None => tree,
            };
            // Built by hand: `json!` would serialise the inner value.
            for level in 0..wraps {
                value = if objects && level % 2 == 0 {
                    Value::Object([(String::new(), value)].into_iter().collect())
                } else {
                    Value::Array(vec![value])
                };
            }
            value
        })
}

/// A JSON tree at most 4 levels deep.
fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1), Just(0)].prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        finite_float()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Finite floats of every class, and the ones JSON databases rewrite.
fn finite_float() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        (NORMAL | SUBNORMAL | ZERO | NEGATIVE | POSITIVE),
        Just(-0.0),
        Just(1e15),
        Just(-1e20),
        Just(0.1),
        Just(1.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
    ]
}

/// Unicode text: any characters, control characters (U+0000 among them),
/// quotes and backslashes, or nothing at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        any::<String>(),
        prop::collection::vec(
            prop_oneof![
                (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('\0')),
                Just('"'),
                Just('\\'),
                Just('\u{7f}'),
                Just('\u{2028}'),
                Just('\u{feff}'),
                Just('\u{1F4A5}'),
                any::<char>(),
            ],
            0..16
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

/// A string of one megabyte, of plain or escaped characters.
fn huge_string() -> impl Strategy<Value = String> {
    const MB: usize = 1 << 20;
    prop_oneof![
        Just("x".repeat(MB)),
        Just("\u{0}\"é\u{1F4A5}".repeat(MB / 8)),
    ]
}
