//! Validate + plan the layered DAG.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use orchestrate_benches::layered_workflow;
use orchestrate_graph::Plan;

fn graph_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph_plan");
    for (layers, width) in [(20, 50), (100, 100)] {
        let def = layered_workflow(layers, width, "noop");
        group.bench_with_input(
            BenchmarkId::from_parameter(layers * width),
            &def,
            |b, def| b.iter(|| Plan::new(black_box(def)).map(|p| p.len())),
        );
    }
    group.finish();
}

criterion_group!(benches, graph_plan);
criterion_main!(benches);
