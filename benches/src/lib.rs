//! Shared workload builders for the benches.

#![warn(missing_docs, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod workloads;

use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::json;

/// splitmix64, exactly as the performance issue specifies, so figures
/// compare across tools.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Predecessor lists of the layered random DAG: `layers × width` nodes with
/// ids `layer * width + j`; each node of layer L ≥ 1 draws `d = 1 + next % 3`
/// (capped at `width`) distinct predecessors from layer L − 1.
pub fn layered_dag(layers: usize, width: usize) -> Vec<Vec<usize>> {
    let mut rng = SplitMix64::new(42);
    let mut preds = vec![Vec::new(); layers * width];
    for layer in 1..layers {
        for j in 0..width {
            let d = (1 + (rng.next() % 3) as usize).min(width);
            let own = &mut preds[layer * width + j];
            while own.len() < d {
                let p = (layer - 1) * width + (rng.next() % width as u64) as usize;
                if !own.contains(&p) {
                    own.push(p);
                }
            }
        }
    }
    preds
}

/// The layered DAG as a workflow of no-op steps run by `agent`.
pub fn layered_workflow(layers: usize, width: usize, agent: &str) -> WorkflowDef {
    let preds = layered_dag(layers, width);
    WorkflowDef::builder("layered")
        .steps(preds.iter().enumerate().map(|(i, ps)| {
            StepDef::new(format!("n{i}"), agent).depends_on(ps.iter().map(|p| format!("n{p}")))
        }))
        .build()
}

/// A chain of `n` steps, each passing `{"count": input.count + 1}` on.
pub fn chain_workflow(n: usize, agent: &str) -> WorkflowDef {
    WorkflowDef::builder("chain")
        .steps((0..n).map(|i| {
            let step = StepDef::new(format!("c{i}"), agent);
            if i == 0 {
                step.input(json!({"count": "${input.count}"}))
            } else {
                step.depends_on([format!("c{}", i - 1)])
                    .input(json!({"count": format!("${{steps.c{}.output.count}}", i - 1)}))
            }
        }))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of splitmix64 seeded with 0 (reference implementation).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn layered_dag_is_deterministic_and_well_formed() {
        let a = layered_dag(20, 50);
        assert_eq!(a, layered_dag(20, 50));
        assert_eq!(a.len(), 1000);
        assert!(a[..50].iter().all(Vec::is_empty));
        for (i, ps) in a.iter().enumerate().skip(50) {
            assert!((1..=3).contains(&ps.len()));
            assert!(ps.iter().all(|&p| p / 50 == i / 50 - 1));
        }
    }

    #[test]
    fn workloads_plan() {
        assert_eq!(
            orchestrate_graph::Plan::new(&layered_workflow(20, 50, "a"))
                .unwrap()
                .generations()
                .len(),
            20
        );
        assert_eq!(
            orchestrate_graph::Plan::new(&chain_workflow(10, "a"))
                .unwrap()
                .order()
                .len(),
            10
        );
    }
}
