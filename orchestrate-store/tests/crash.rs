//! Crash test: a 200-step workflow on SQLite is killed with SIGKILL at 20
//! seeded random points and resumed each time. It must end with the outputs
//! of an uninterrupted run, every step's effect in the ledger under one
//! stable idempotency key (only steps in flight at a kill may appear twice),
//! and a journal without gaps or duplicates.
//!
//! One binary plays both parts: run with `--worker <db> <ledger>` it is the
//! process that gets killed.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrate_core::journal::ExecutionView;
use orchestrate_core::store::{ExecutionQuery, MemoryStore, Store};
use orchestrate_core::{agent_fn, Agent, ExecutionId, Orchestrator, StepStatus};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

const STEPS: usize = 200;
const KILLS: usize = 20;
const SEED: u64 = 0x00C0_FFEE;
const RUN_KEY: &str = "crash-run";

/// Ten segments of twenty: a chain of ten, a fan-out of nine, a join.
fn workflow() -> WorkflowDef {
    let mut b = WorkflowDef::builder("crash");
    for i in 0..STEPS {
        let pos = i % 20;
        let deps: Vec<usize> = match pos {
            0 if i == 0 => vec![],
            0..=9 => vec![i - 1],
            10..=18 => vec![i - pos + 9],
            _ => (i - 9..i).collect(),
        };
        let refs: Vec<Value> = deps
            .iter()
            .map(|d| json!(format!("${{steps.s{d}.output.sum}}")))
            .collect();
        b = b.step(
            StepDef::new(format!("s{i}"), "work")
                .depends_on(deps.iter().map(|d| format!("s{d}")))
                .input(json!({"i": i, "deps": refs})),
        );
    }
    b.build()
}

/// Sums its inputs; `effect` records the side effect first.
fn work(effect: impl Fn(&str, &str) + Send + Sync + 'static, latency: bool) -> impl Agent {
    let effect = Arc::new(effect);
    agent_fn("work", move |input, ctx| {
        let effect = effect.clone();
        async move {
            effect(&ctx.idempotency_key(), ctx.step_id());
            if latency {
                let i = input["i"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_micros(300 + (i * 7919) % 1500)).await;
            }
            let deps: i64 = input["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .sum();
            Ok(json!({"sum": deps + input["i"].as_i64().unwrap_or(0) + 1}))
        }
    })
}

fn outputs(view: &ExecutionView) -> Vec<Option<Value>> {
    view.steps()
        .iter()
        .map(|s| s.output.as_deref().cloned())
        .collect()
}

/// The killed process: resumes the run if it exists, starts it otherwise.
async fn worker(db: &str, ledger: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)
        .unwrap();
    let file = Mutex::new(file);
    let effect = move |key: &str, step: &str| {
        // One write per line: an append of a few bytes is not torn by a kill.
        let line = format!("{key}\t{step}\n");
        file.lock().unwrap().write_all(line.as_bytes()).unwrap();
    };
    let store = Arc::new(SqliteStore::open(db).await.unwrap());
    let orch = Orchestrator::builder()
        .agent(work(effect, true))
        .store(store.clone())
        .workflow(workflow())
        .build()
        .unwrap();
    let unfinished = store
        .list_executions(&ExecutionQuery::unfinished())
        .await
        .unwrap();
    let exec = match unfinished.first() {
        Some(summary) => orch.resume(&summary.id).await.unwrap(),
        None => orch
            .run_with_key(RUN_KEY, &orch.workflow("crash").unwrap(), json!({}))
            .await
            .unwrap(),
    };
    exec.wait().await.unwrap();
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn reference() -> Vec<Option<Value>> {
    let orch = Orchestrator::builder()
        .agent(work(|_, _| {}, false))
        .store(Arc::new(MemoryStore::new()))
        .max_concurrency(10)
        .build()
        .unwrap();
    let view = orch
        .run(&orch.bind(&workflow()).unwrap(), json!({}))
        .await
        .unwrap()
        .await
        .unwrap();
    outputs(&view)
}

async fn journal_of(
    db: &Path,
) -> Option<(ExecutionId, Vec<Arc<orchestrate_core::journal::Event>>)> {
    let store = SqliteStore::open(db).await.unwrap();
    let all = store.list_executions(&ExecutionQuery::all()).await.unwrap();
    let id = all.first()?.id.clone();
    let events = store.load(&id, 0).await.unwrap();
    store.close().await;
    Some((id, events))
}

async fn crash_test() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let db = dir.path().join("crash.db");
    let ledger = dir.path().join("ledger.tsv");
    let worker_cmd = || {
        let mut c = Command::new(&exe);
        c.arg("--worker")
            .arg(&db)
            .arg(&ledger)
            .stdout(Stdio::null());
        c
    };
    let expected = reference().await;

    let mut rng = SEED;
    let mut kill_points = Vec::new();
    let mut in_flight_at_kills = BTreeSet::new();
    for _ in 0..KILLS {
        let after = Duration::from_millis(20 + splitmix(&mut rng) % 80);
        kill_points.push(after.as_millis());
        let mut child = worker_cmd().spawn().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut finished = false;
        while started.elapsed() < after {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if !finished {
            child.kill().map_err(|e| e.to_string())?; // SIGKILL
        }
        child.wait().map_err(|e| e.to_string())?;
        if let Some((_, events)) = journal_of(&db).await {
            let view = ExecutionView::from_events(events.iter().map(|e| &**e));
            for s in view.steps() {
                if matches!(s.status, StepStatus::Running | StepStatus::Scheduled) {
                    in_flight_at_kills.insert(s.id.to_string());
                }
            }
        }
    }
    let context = format!("seed {SEED:#x}, kill points (ms after start) {kill_points:?}");
    // The last run is never killed.
    let status = worker_cmd().status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("final run failed: {status}; {context}"));
    }

    let (id, events) = journal_of(&db)
        .await
        .ok_or(format!("no execution; {context}"))?;
    // (c) no gap, no duplicate.
    for (i, e) in events.iter().enumerate() {
        if e.seq != i as u64 {
            return Err(format!("journal seq {} at position {i}; {context}", e.seq));
        }
    }
    // (a) the outputs of an uninterrupted run.
    let view = ExecutionView::from_events(events.iter().map(|e| &**e));
    if outputs(&view) != expected {
        return Err(format!(
            "outputs differ from the uninterrupted run; {context}"
        ));
    }
    // (b) every step in the ledger under exactly one key; repeats only for
    // steps in flight at a kill.
    let text = std::fs::read_to_string(&ledger).map_err(|e| e.to_string())?;
    let mut keys: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut runs: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let (key, step) = line
            .split_once('\t')
            .ok_or(format!("torn ledger line `{line}`"))?;
        keys.entry(step.to_owned())
            .or_default()
            .insert(key.to_owned());
        *runs.entry(step.to_owned()).or_default() += 1;
    }
    for i in 0..STEPS {
        let step = format!("s{i}");
        let step_keys = keys
            .get(&step)
            .ok_or(format!("{step} never ran; {context}"))?;
        let expected_key = format!("{id}/{step}");
        if step_keys.len() != 1 || !step_keys.contains(&expected_key) {
            return Err(format!("{step} ran under keys {step_keys:?}; {context}"));
        }
        if runs[&step] > 1 && !in_flight_at_kills.contains(&step) {
            return Err(format!(
                "{step} ran {} times but was never in flight at a kill; {context}",
                runs[&step]
            ));
        }
    }
    let repeated = runs.values().filter(|&&n| n > 1).count();
    let resumes = events
        .iter()
        .filter(|e| e.kind.name() == "execution_resumed")
        .count();
    println!(
        "crash test: {KILLS} kills, {resumes} resumes, {repeated} steps re-run (all in flight at a kill), {} events; {context}",
        events.len()
    );
    if resumes == 0 {
        return Err(format!("no kill landed mid-run; {context}"));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.get(1).map(String::as_str) == Some("--worker") {
        rt.block_on(worker(&args[2], &args[3]));
        return;
    }
    // `cargo test` may pass a filter; run unless it excludes this test.
    if args
        .iter()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"sqlite_crash_resume".contains(a.as_str()))
    {
        return;
    }
    match rt.block_on(crash_test()) {
        Ok(()) => println!("test sqlite_crash_resume ... ok\n\ncrash: 1 passed, 0 failed"),
        Err(e) => {
            eprintln!("test sqlite_crash_resume ... FAILED\n{e}");
            std::process::exit(1);
        }
    }
}
