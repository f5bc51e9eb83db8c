//! The workloads harness: each workload measured against its floor, the
//! cheapest tokio code doing the same shape of work, in the same process.

mod calls;
mod durable;
mod events;
mod execution;
mod patterns;
mod plan;
mod resilience;

use std::future::Future;
use std::time::Instant;

use serde_json::{json, Value};

/// One line of output.
#[derive(Debug, Clone)]
pub struct Report {
    /// The workload's name.
    pub workload: String,
    /// Its size.
    pub n: usize,
    /// Timed runs, seconds.
    pub runs: Vec<f64>,
    /// The floor's timed runs, seconds.
    pub floor_runs: Vec<f64>,
    /// Peak resident set during the workload's runs, MiB.
    pub peak_rss_mb: f64,
    /// Extra figures (e.g. the bare call of `resilience`).
    pub extra: Vec<(&'static str, Value)>,
}

fn median(runs: &[f64]) -> f64 {
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

impl Report {
    fn new(name: &str, n: usize, runs: Vec<f64>, floor_runs: Vec<f64>, peak_rss_mb: f64) -> Self {
        Self {
            workload: name.to_owned(),
            n,
            runs,
            floor_runs,
            peak_rss_mb,
            extra: Vec::new(),
        }
    }

    /// The median of the runs.
    pub fn median_s(&self) -> f64 {
        median(&self.runs)
    }

    /// The median of the floor's runs.
    pub fn floor_median_s(&self) -> f64 {
        median(&self.floor_runs)
    }

    /// The JSON line the issue defines.
    pub fn to_json(&self) -> Value {
        let median_s = self.median_s();
        let floor = self.floor_median_s();
        let mut line = json!({
            "workload": self.workload,
            "n": self.n,
            "median_s": median_s,
            "runs": self.runs,
            "peak_rss_mb": (self.peak_rss_mb * 10.0).round() / 10.0,
            "per_item_us": median_s * 1e6 / self.n.max(1) as f64,
            "floor_median_s": floor,
            "ratio_to_floor": median_s / floor,
        });
        if let Some(map) = line.as_object_mut() {
            for (k, v) in &self.extra {
                map.insert((*k).to_owned(), v.clone());
            }
        }
        line
    }
}

/// Peak resident set of this process since the last reset, MiB (Linux).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak resident set to the current one (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `once` one untimed time, then `reps` timed times.
pub async fn timed<F, Fut>(reps: usize, mut once: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    timed_fresh(reps, || (), |()| once()).await
}

/// Like [`timed`], each run on a fresh value of `setup`, which the run hands
/// back: making it and dropping it after the run are not timed.
pub async fn timed_fresh<S, Setup, F, Fut>(reps: usize, mut setup: Setup, mut once: F) -> Vec<f64>
where
    Setup: FnMut() -> S,
    F: FnMut(S) -> Fut,
    Fut: Future<Output = S>,
{
    drop(once(setup()).await);
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let state = setup();
        let start = Instant::now();
        let state = once(state).await;
        runs.push(start.elapsed().as_secs_f64());
        drop(state);
    }
    runs
}

/// Like [`compare`], each run of the workload on a fresh value of `setup`
/// (an orchestrator, say, so that no run sees what the previous one left).
pub async fn compare_fresh<S, Setup, W, WF, F, FF>(
    name: &str,
    n: usize,
    reps: usize,
    setup: Setup,
    workload: W,
    floor: F,
) -> Report
where
    Setup: FnMut() -> S,
    W: FnMut(S) -> WF,
    WF: Future<Output = S>,
    F: FnMut() -> FF,
    FF: Future<Output = ()>,
{
    reset_peak_rss();
    let runs = timed_fresh(reps, setup, workload).await;
    let peak = peak_rss_mb();
    let floor_runs = timed(reps, floor).await;
    Report::new(name, n, runs, floor_runs, peak)
}

/// Measures a workload and its floor, both with a warm-up.
pub async fn compare<W, WF, F, FF>(
    name: &str,
    n: usize,
    reps: usize,
    mut workload: W,
    floor: F,
) -> Report
where
    W: FnMut() -> WF,
    WF: Future<Output = ()>,
    F: FnMut() -> FF,
    FF: Future<Output = ()>,
{
    compare_fresh(name, n, reps, || (), |()| workload(), floor).await
}

/// Like [`compare`], the workload's runs and the floor's taken in turn,
/// each first in every other round, after one untimed run of each.
///
/// For workloads bound by a disk or a server, whose speed drifts over
/// seconds on a shared machine (a SQLite commit's time moved threefold
/// from one run to the next): taken in two blocks, the two medians came
/// from different periods and the ratio measured the drift.
pub async fn compare_interleaved<W, WF, F, FF>(
    name: &str,
    n: usize,
    reps: usize,
    mut workload: W,
    mut floor: F,
) -> Report
where
    W: FnMut() -> WF,
    WF: Future<Output = ()>,
    F: FnMut() -> FF,
    FF: Future<Output = ()>,
{
    reset_peak_rss();
    workload().await;
    let mut peak = peak_rss_mb();
    floor().await;
    let mut runs = Vec::with_capacity(reps);
    let mut floor_runs = Vec::with_capacity(reps);
    for round in 0..reps {
        if round % 2 == 1 {
            floor_runs.push(time(floor()).await);
        }
        reset_peak_rss();
        runs.push(time(workload()).await);
        peak = peak.max(peak_rss_mb());
        if round % 2 == 0 {
            floor_runs.push(time(floor()).await);
        }
    }
    Report::new(name, n, runs, floor_runs, peak)
}

/// How long `run` takes, seconds.
async fn time(run: impl Future<Output = ()>) -> f64 {
    let start = Instant::now();
    run.await;
    start.elapsed().as_secs_f64()
}

/// Every workload with its default size, in the order `all` runs them.
pub const WORKLOADS: &[(&str, usize)] = &[
    ("chain", 1_000),
    ("fanout", 1_000),
    ("layered", 1_000),
    ("plan", 1_000),
    ("plan", 10_000),
    ("plan", 100_000),
    ("concurrent", 10_000),
    ("events", 1_000_000),
    ("resilience", 1_000_000),
    ("checkpoint_sqlite", 200),
    ("checkpoint_postgres", 200),
    ("calls", 1_000),
    ("map", 10_000),
    ("calls_sqlite", 200),
    ("supervisor", 100_000),
    ("redis_bus", 100_000),
];

/// Runs workload `name` at size `n`. Backends whose URL variable is unset
/// report nothing.
///
/// # Errors
///
/// An unknown name, or a workload that failed.
pub async fn run(name: &str, n: usize, reps: usize) -> Result<Vec<Report>, String> {
    Ok(match name {
        "chain" => vec![execution::chain(n, reps).await],
        "fanout" => vec![execution::fanout(n, reps).await],
        "layered" => vec![execution::layered(n, reps).await],
        "concurrent" => vec![execution::concurrent(n, reps).await],
        "plan" => vec![plan::plan(n, reps).await?],
        "events" => vec![events::events(n, reps).await],
        "resilience" => vec![resilience::resilience(n, reps).await],
        "checkpoint_sqlite" => durable::checkpoint_sqlite(n, reps).await?,
        "checkpoint_postgres" => durable::checkpoint_postgres(n, reps)
            .await?
            .into_iter()
            .collect(),
        "redis_bus" => events::redis_bus(n, reps).await?.into_iter().collect(),
        "calls" => vec![calls::calls(n, reps).await],
        "map" => vec![calls::map(n, reps).await],
        "calls_sqlite" => vec![calls::calls_sqlite(n, reps).await?],
        "supervisor" => vec![patterns::supervisor(n, reps).await],
        other => return Err(format!("unknown workload `{other}`")),
    })
}

/// The side of the layered DAG for `n` nodes: 1000 = 20 × 50,
/// 10000 = 100 × 100, 100000 = 1000 × 100; other sizes use width 100.
pub fn layers_for(n: usize) -> (usize, usize) {
    match n {
        1_000 => (20, 50),
        10_000 => (100, 100),
        100_000 => (1_000, 100),
        n if n <= 100 => (n.div_ceil(10).max(1), 10.min(n.max(1))),
        n => (n.div_ceil(100), 100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every workload and its floor run to completion at a small size, and
    /// report sane figures (the harness itself is tested; speed is not).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_small() {
        for (name, n) in [
            ("chain", 20),
            ("fanout", 20),
            ("layered", 100),
            ("plan", 100),
            ("concurrent", 20),
            ("events", 2_000),
            ("resilience", 1_000),
            ("checkpoint_sqlite", 5),
            ("checkpoint_postgres", 5),
            ("redis_bus", 300),
            ("calls", 20),
            ("map", 50),
            ("calls_sqlite", 5),
            ("supervisor", 50),
        ] {
            let reports = run(name, n, 1).await.unwrap();
            for r in reports {
                let line = r.to_json();
                assert_eq!(r.runs.len(), 1, "{line}");
                assert!(r.median_s() > 0.0 && r.floor_median_s() > 0.0, "{line}");
                assert!(
                    line["ratio_to_floor"].as_f64().is_some_and(f64::is_finite),
                    "{line}"
                );
                if matches!(name, "chain" | "concurrent") {
                    assert!(
                        line["work_floor_median_s"]
                            .as_f64()
                            .is_some_and(|s| s > 0.0),
                        "{line}"
                    );
                    assert!(
                        line["ratio_to_work_floor"]
                            .as_f64()
                            .is_some_and(f64::is_finite),
                        "{line}"
                    );
                }
            }
        }
        assert!(run("nope", 1, 1).await.is_err());
    }

    #[tokio::test]
    async fn every_fresh_run_gets_its_own_state_and_hands_it_back() {
        let mut made = 0;
        let mut seen = Vec::new();
        let runs = timed_fresh(
            3,
            || {
                made += 1;
                made
            },
            |state| {
                seen.push(state);
                async move { state }
            },
        )
        .await;
        assert_eq!(runs.len(), 3);
        // The warm-up's state, then one per timed run, never shared.
        assert_eq!(seen, [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn interleaved_runs_take_turns_each_first_in_every_other_round() {
        let order = std::cell::RefCell::new(String::new());
        let report = compare_interleaved(
            "turns",
            1,
            3,
            || {
                order.borrow_mut().push('W');
                async {}
            },
            || {
                order.borrow_mut().push('F');
                async {}
            },
        )
        .await;
        // One untimed run of each, then rounds W F, F W, W F.
        assert_eq!(order.into_inner(), "WFWFFWWF");
        assert_eq!((report.runs.len(), report.floor_runs.len()), (3, 3));
        if cfg!(target_os = "linux") {
            assert!(report.peak_rss_mb > 0.0, "the workload's peak is read");
        }
    }

    #[test]
    fn medians_and_layer_shapes() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(layers_for(1_000), (20, 50));
        assert_eq!(layers_for(10_000), (100, 100));
        assert_eq!(layers_for(100_000), (1_000, 100));
    }
}
