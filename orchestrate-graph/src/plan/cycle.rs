//! Reporting cycles as concrete paths.

use std::collections::VecDeque;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// The cycles of a graph.
pub(super) struct Cycles {
    /// One cycle per strongly connected component that has one, as node
    /// indices with the first repeated at the end (`[a, b, c, a]`).
    pub(super) paths: Vec<Vec<usize>>,
    /// Every node that lies on some cycle.
    pub(super) members: Vec<usize>,
}

pub(super) fn find_cycles(graph: &DiGraph<(), ()>) -> Cycles {
    let mut in_scc = vec![usize::MAX; graph.node_count()];
    let mut cycles = Vec::new();
    let mut members = Vec::new();
    let mut sccs = tarjan_scc(graph);
    // Report in a stable order: by the smallest step index of each component.
    for scc in &mut sccs {
        scc.sort_unstable();
    }
    sccs.sort_unstable_by_key(|scc| scc[0]);
    for (k, scc) in sccs.iter().enumerate() {
        let start = scc[0];
        let self_loop = graph.contains_edge(start, start);
        if scc.len() == 1 && !self_loop {
            continue;
        }
        members.extend(scc.iter().map(|n| n.index()));
        if scc.len() == 1 {
            cycles.push(vec![start.index(), start.index()]);
            continue;
        }
        for n in scc {
            in_scc[n.index()] = k;
        }
        if let Some(path) = shortest_cycle_through(graph, start, |n| in_scc[n.index()] == k) {
            cycles.push(path);
        }
    }
    Cycles {
        paths: cycles,
        members,
    }
}

/// Breadth-first search from `start` back to itself inside one component.
fn shortest_cycle_through(
    graph: &DiGraph<(), ()>,
    start: NodeIndex,
    inside: impl Fn(NodeIndex) -> bool,
) -> Option<Vec<usize>> {
    let mut parent = vec![usize::MAX; graph.node_count()];
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.neighbors(v) {
            if w == start {
                let mut path = vec![start.index()];
                let mut at = v.index();
                while at != start.index() {
                    path.push(at);
                    at = parent[at];
                }
                path.push(start.index());
                path.reverse();
                return Some(path);
            }
            if inside(w) && parent[w.index()] == usize::MAX {
                parent[w.index()] = v.index();
                queue.push_back(w);
            }
        }
    }
    None
}
