//! Run a chain of no-op steps through the orchestrator (journal on, in-memory store).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use orchestrate_benches::chain_workflow;
use orchestrate_core::{agent_fn, Orchestrator};
use serde_json::json;

fn executor_chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let orchestrator = Orchestrator::builder()
        .agent(agent_fn("inc", |input, _| async move {
            Ok(json!({"count": input["count"].as_i64().unwrap_or(0) + 1}))
        }))
        .build()
        .expect("orchestrator");
    let mut group = c.benchmark_group("executor_chain");
    for n in [10usize, 100] {
        let wf = orchestrator
            .bind(&chain_workflow(n, "inc"))
            .expect("workflow");
        group.bench_with_input(BenchmarkId::from_parameter(n), &wf, |b, wf| {
            b.to_async(&rt).iter(|| async {
                let done = orchestrator
                    .run(wf, json!({"count": 0}))
                    .await
                    .expect("run");
                done.await.expect("execution")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, executor_chain);
criterion_main!(benches);
