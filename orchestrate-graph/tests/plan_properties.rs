//! Property tests: plans respect dependencies; reported cycles are real.

use std::collections::HashSet;

use orchestrate_graph::{Plan, Problem, StepDef, WorkflowDef};
use proptest::prelude::*;

/// A random DAG: node `i` may only depend on nodes `< i`, and every node but
/// the first depends on at least one earlier node (so there are no orphans).
fn arb_dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (2usize..40).prop_flat_map(|n| {
        let per_node: Vec<_> = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::vec(0..i, 1..=i.min(4)).boxed()
                }
            })
            .collect();
        per_node
    })
}

fn def_from(deps: &[Vec<usize>]) -> WorkflowDef {
    WorkflowDef::builder("prop")
        .steps(deps.iter().enumerate().map(|(i, ds)| {
            StepDef::new(format!("s{i}"), "agent").depends_on(ds.iter().map(|d| format!("s{d}")))
        }))
        .build()
}

proptest! {
    #[test]
    fn plans_respect_dependencies_and_generations_are_antichains(deps in arb_dag()) {
        let plan = Plan::new(&def_from(&deps)).unwrap();
        let n = deps.len();
        let mut position = vec![usize::MAX; n];
        for (k, &i) in plan.order().iter().enumerate() {
            position[i] = k;
        }
        prop_assert!(position.iter().all(|&p| p != usize::MAX), "order covers every step");
        let mut generation_of = vec![usize::MAX; n];
        for (g, batch) in plan.generations().iter().enumerate() {
            for &i in batch {
                generation_of[i] = g;
            }
        }
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                prop_assert!(position[d] < position[i]);
                prop_assert!(generation_of[d] < generation_of[i]);
            }
        }
        // Antichain: no step of a batch reaches another step of the same batch.
        for batch in plan.generations() {
            let members: HashSet<usize> = batch.iter().copied().collect();
            for &i in batch {
                let mut stack = plan.dependents(i).to_vec();
                let mut seen = HashSet::new();
                while let Some(v) = stack.pop() {
                    prop_assert!(!members.contains(&v), "{} reaches {} in one batch", i, v);
                    if seen.insert(v) {
                        stack.extend_from_slice(plan.dependents(v));
                    }
                }
            }
        }
        // The critical path is a real dependency chain.
        for w in plan.critical_path().windows(2) {
            prop_assert!(plan.deps(w[1]).contains(&w[0]));
        }
        // The petgraph form (built on demand) holds exactly the dependencies.
        let graph = plan.graph();
        prop_assert_eq!(graph.node_count(), n);
        let mut edges: Vec<(usize, usize)> = graph
            .raw_edges()
            .iter()
            .map(|e| (e.source().index(), e.target().index()))
            .collect();
        edges.sort_unstable();
        let mut expected: Vec<(usize, usize)> = deps
            .iter()
            .enumerate()
            .flat_map(|(i, ds)| ds.iter().map(move |&d| (d, i)))
            .collect();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(edges, expected);
        prop_assert!(!petgraph::algo::is_cyclic_directed(graph));
    }

    #[test]
    fn a_plan_lists_each_steps_dependencies_once_and_its_dependents_in_order(deps in arb_dag()) {
        let plan = Plan::new(&def_from(&deps)).unwrap();
        let n = deps.len();
        for (i, ds) in deps.iter().enumerate() {
            // The definition's order, first mention kept.
            let mut once: Vec<usize> = Vec::new();
            for &d in ds {
                if !once.contains(&d) {
                    once.push(d);
                }
            }
            prop_assert_eq!(plan.deps(i), once.as_slice(), "deps of s{}", i);
            let dependents: Vec<usize> = (0..n).filter(|&j| deps[j].contains(&i)).collect();
            prop_assert_eq!(plan.dependents(i), dependents.as_slice(), "dependents of s{}", i);
            let id = format!("s{i}");
            prop_assert_eq!(&**plan.id(i), id.as_str());
        }
        prop_assert_eq!(plan.ids().len(), n);
    }

    #[test]
    fn reported_cycles_are_real_cycles(deps in arb_dag(), back in any::<(prop::sample::Index, prop::sample::Index)>()) {
        // Close a cycle: `later` depends on `earlier` and `earlier` on `later`.
        let mut deps = deps;
        let n = deps.len();
        let later = 1 + back.0.index(n - 1);
        let earlier = back.1.index(later);
        if !deps[later].contains(&earlier) {
            deps[later].push(earlier);
        }
        deps[earlier].push(later);
        let def = def_from(&deps);
        let errors = Plan::new(&def).unwrap_err();
        let cycles: Vec<_> = errors.problems().iter().filter_map(|p| match p {
            Problem::Cycle { path } => Some(path.clone()),
            _ => None,
        }).collect();
        prop_assert!(!cycles.is_empty(), "no cycle reported: {:?}", errors);
        for path in cycles {
            prop_assert!(path.len() >= 2);
            prop_assert_eq!(path.first(), path.last());
            for w in path.windows(2) {
                let from: usize = w[0][1..].parse().unwrap();
                let to: usize = w[1][1..].parse().unwrap();
                prop_assert!(deps[to].contains(&from), "{} -> {} is not an edge", w[0], w[1]);
            }
        }
    }
}
