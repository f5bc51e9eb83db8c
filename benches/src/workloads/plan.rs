//! Validation and planning of the layered DAG, no execution.

use std::hint::black_box;

use orchestrate_graph::Plan;
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use super::{compare, layers_for, Report};
use crate::{layered_dag, layered_workflow};

/// Floor: a petgraph `DiGraph` of the same edges, `toposort`, and a Kahn
/// generation pass.
pub(super) async fn plan(n: usize, reps: usize) -> Result<Report, String> {
    let (layers, width) = layers_for(n);
    let def = layered_workflow(layers, width, "noop");
    Plan::new(&def).map_err(|e| e.to_string())?;
    let preds = layered_dag(layers, width);
    Ok(compare(
        "plan",
        layers * width,
        reps,
        || {
            let def = &def;
            async move {
                black_box(Plan::new(black_box(def)).map(|p| p.len()).ok());
            }
        },
        || {
            let preds = &preds;
            async move {
                black_box(floor(preds));
            }
        },
    )
    .await)
}

fn floor(preds: &[Vec<usize>]) -> usize {
    let n = preds.len();
    let mut g = DiGraph::<(), ()>::with_capacity(n, n * 3);
    for _ in 0..n {
        g.add_node(());
    }
    for (i, ps) in preds.iter().enumerate() {
        for &p in ps {
            g.add_edge(NodeIndex::new(p), NodeIndex::new(i), ());
        }
    }
    let order = toposort(&g, None).map(|o| o.len()).unwrap_or(0);
    let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut current: Vec<NodeIndex> = g
        .node_indices()
        .filter(|i| indegree[i.index()] == 0)
        .collect();
    let mut generations = 0;
    while !current.is_empty() {
        let mut next = Vec::new();
        for &v in &current {
            for w in g.neighbors(v) {
                indegree[w.index()] -= 1;
                if indegree[w.index()] == 0 {
                    next.push(w);
                }
            }
        }
        generations += 1;
        current = next;
    }
    order + generations
}
