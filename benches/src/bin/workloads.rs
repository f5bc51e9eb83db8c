//! `cargo run --release -p orchestrate-benches --bin workloads -- <name> [--n N] [--reps R]`
//!
//! Prints one JSON object per line for each workload run; `all` runs every
//! workload at its default size, each in a process of its own.

use std::process::{Command, ExitCode};

use orchestrate_benches::workloads::{self, WORKLOADS};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first().cloned() else {
        eprintln!("usage: workloads <name|all> [--n N] [--reps R]");
        return ExitCode::from(2);
    };
    let flag = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let reps = flag("--reps").unwrap_or(5).max(1);
    if name == "all" {
        return run_all(reps);
    }
    let default = WORKLOADS
        .iter()
        .find(|(w, _)| *w == name)
        .map_or(1_000, |(_, n)| *n);
    run_one(name, flag("--n").unwrap_or(default), reps)
}

/// Every workload in a fresh process: one workload's heap (fragmentation
/// after 10,000 executions, say) and peak RSS must not be charged to the
/// next.
fn run_all(reps: usize) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find this program to rerun it: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (workload, n) in WORKLOADS {
        let status = Command::new(&exe)
            .args([workload, "--n", &n.to_string(), "--reps", &reps.to_string()])
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("{workload} (n = {n}) failed: {s}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("{workload} (n = {n}) could not start: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn run_one(workload: String, n: usize, reps: usize) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Measured on a worker thread, like the executions it compares with: a
    // loop on the `block_on` thread would pay a cross-thread wake-up on every
    // await and flatter the ratios.
    let job = workload.clone();
    let result = runtime
        .block_on(
            async move { tokio::spawn(async move { workloads::run(&job, n, reps).await }).await },
        )
        .unwrap_or_else(|e| Err(format!("the workload panicked: {e}")));
    match result {
        Ok(reports) => {
            for r in reports {
                println!("{}", r.to_json());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{workload}: {e}");
            ExitCode::FAILURE
        }
    }
}
