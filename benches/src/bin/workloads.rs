//! `cargo run --release -p orchestrate-benches --bin workloads -- <name> [--n N] [--reps R]`
//!
//! Prints one JSON object per line for each workload run; `all` runs every
//! workload at its default size. See BENCHMARKS.md.

use orchestrate_benches::workloads::{self, WORKLOADS};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first().cloned() else {
        eprintln!("usage: workloads <name|all> [--n N] [--reps R]");
        std::process::exit(2);
    };
    let flag = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let reps = flag("--reps").unwrap_or(5).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let jobs: Vec<(String, usize)> = if name == "all" {
        WORKLOADS
            .iter()
            .map(|(w, n)| ((*w).to_owned(), *n))
            .collect()
    } else {
        let default = WORKLOADS
            .iter()
            .find(|(w, _)| *w == name)
            .map_or(1_000, |(_, n)| *n);
        vec![(name, flag("--n").unwrap_or(default))]
    };
    for (workload, n) in jobs {
        // Measured on a worker thread, like the executions it compares with:
        // a loop on the `block_on` thread would pay a cross-thread wake-up on
        // every await and flatter the ratios.
        let job = workload.clone();
        let result = runtime
            .block_on(async move {
                tokio::spawn(async move { workloads::run(&job, n, reps).await }).await
            })
            .unwrap_or_else(|e| Err(format!("the workload panicked: {e}")));
        match result {
            Ok(reports) => {
                for r in reports {
                    println!("{}", r.to_json());
                }
            }
            Err(e) => {
                eprintln!("{workload}: {e}");
                std::process::exit(1);
            }
        }
    }
}
