//! Crash test for durable calls: an agent makes 5 sequential calls, then a
//! `map` over 200 inputs, then runs a 3-step workflow, on SQLite; the
//! process is killed with SIGKILL at 20 seeded random moments and resumed
//! each time. The final output must equal an uninterrupted run's, and no
//! call that had completed (its end in the journal at a kill) may complete
//! again: only calls in flight at a kill may appear twice in the
//! side-effect ledger, always under their one idempotency key.
//!
//! One binary plays both parts: run with `--worker <db> <ledger>` it is the
//! process that gets killed.

#[path = "support/kill.rs"]
mod kill;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kill::{run_until_killed, splitmix};
use orchestrate_core::journal::{CallStatus, CallTree, ExecutionView};
use orchestrate_core::store::{ExecutionQuery, MemoryStore, Store};
use orchestrate_core::{agent_fn, Agent, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

const KILLS: usize = 20;
const SEED: u64 = 0x0CA1_1ED5;
const RUN_KEY: &str = "crash-calls";
const MAPPED: u64 = 200;

fn sub_workflow() -> WorkflowDef {
    WorkflowDef::builder("finish")
        .step(StepDef::new("a", "work").input(json!({"n": "${input.total}"})))
        .step(
            StepDef::new("b", "work")
                .depends_on(["a"])
                .input(json!({"n": "${steps.a.output.sum}"})),
        )
        .step(
            StepDef::new("c", "work")
                .depends_on(["a"])
                .input(json!({"n": "${steps.a.output.sum}"})),
        )
        .build()
}

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("crash-calls")
        .step(StepDef::new("conduct", "conductor").input(json!("${input}")))
        .build()
}

/// Five calls in a row, a map over 200 inputs, a workflow of three steps.
fn conductor() -> impl Agent {
    agent_fn("conductor", |_, ctx| async move {
        let mut total = 0;
        for n in 0..5 {
            let out = ctx.call("work", json!({"n": n})).await?;
            total += out["sum"].as_i64().unwrap_or(0);
        }
        let inputs = (0..MAPPED).map(|n| json!({"n": n + total as u64}));
        for out in ctx.map("work", inputs, 4).await {
            total += out?["sum"].as_i64().unwrap_or(0);
        }
        let finished = ctx
            .run_workflow(&sub_workflow(), json!({"total": total}))
            .await?;
        Ok(json!({"total": total, "finished": finished}))
    })
}

/// Doubles and adds one; `effect` records the completion first.
fn work(effect: impl Fn(&str) + Send + Sync + 'static, latency: bool) -> impl Agent {
    let effect = Arc::new(effect);
    agent_fn("work", move |input, ctx| {
        let effect = effect.clone();
        async move {
            let n = input["n"].as_i64().unwrap_or(0);
            if latency {
                let us = 2_000 + (n.unsigned_abs() * 7919) % 4_000;
                tokio::time::sleep(Duration::from_micros(us)).await;
            }
            effect(&ctx.idempotency_key());
            Ok(json!({"sum": 2 * n + 1}))
        }
    })
}

fn orchestrator(store: Arc<dyn Store>, work: impl Agent) -> Orchestrator {
    Orchestrator::builder()
        .agent(conductor())
        .agent(work)
        .store(store)
        .workflow(workflow())
        .build()
        .unwrap()
}

/// The killed process: resumes the run if it exists, starts it otherwise.
async fn worker(db: &str, ledger: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)
        .unwrap();
    let file = Mutex::new(file);
    let effect = move |key: &str| {
        // One write per line: an append of a few bytes is not torn by a kill.
        file.lock()
            .unwrap()
            .write_all(format!("{key}\n").as_bytes())
            .unwrap();
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await.unwrap());
    let orch = orchestrator(store.clone(), work(effect, true));
    let unfinished = store
        .list_executions(&ExecutionQuery::unfinished())
        .await
        .unwrap();
    let exec = match unfinished.first() {
        Some(summary) => orch.resume(&summary.id).await.unwrap(),
        None => orch
            .run_with_key(RUN_KEY, &orch.workflow("crash-calls").unwrap(), json!({}))
            .await
            .unwrap(),
    };
    exec.wait().await.unwrap();
}

async fn reference() -> Value {
    let orch = orchestrator(Arc::new(MemoryStore::new()), work(|_| {}, false));
    let view = orch
        .run(&orch.workflow("crash-calls").unwrap(), json!({}))
        .await
        .unwrap()
        .await
        .unwrap();
    view.output("conduct").cloned().unwrap_or_default()
}

async fn crash_test(dir: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let db = dir.join("calls.db").display().to_string();
    let ledger = dir.join("ledger.txt");
    let worker_cmd = || {
        let mut c = Command::new(&exe);
        c.arg("--worker")
            .arg(&db)
            .arg(&ledger)
            .stdout(Stdio::null());
        c
    };
    let expected = reference().await;
    let journal = || kill::first_execution(&db);

    let mut rng = SEED;
    let mut kill_points = Vec::new();
    // How many kills found each call running: each may have cost it one
    // completion that the journal never got.
    let mut in_flight_at_kills: HashMap<String, usize> = HashMap::new();
    for _ in 0..KILLS {
        // Each run makes some progress past its start-up; the kills land
        // all along the work (about 250 ms of it uninterrupted).
        let after = Duration::from_millis(20 + splitmix(&mut rng) % 40);
        kill_points.push(after.as_millis());
        run_until_killed(worker_cmd(), after)?;
        if let Some((id, events)) = journal().await {
            for call in CallTree::from_events(&events).calls() {
                let key = format!("{id}/{}", call.id);
                if matches!(call.status, CallStatus::Running | CallStatus::Pending) {
                    *in_flight_at_kills.entry(key).or_default() += 1;
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
    let (id, events) = journal().await.ok_or(format!("no execution; {context}"))?;
    for (i, e) in events.iter().enumerate() {
        if e.seq != i as u64 {
            return Err(format!("journal seq {} at position {i}; {context}", e.seq));
        }
    }
    let view = ExecutionView::from_events(&events);
    if view.output("conduct") != Some(&expected) {
        return Err(format!(
            "output {:?} differs from the uninterrupted run's {expected}; {context}",
            view.output("conduct")
        ));
    }
    let tree = view.calls();
    let calls = tree.len();
    // 5 + 200 + the workflow and its 3 steps.
    if calls != 5 + MAPPED as usize + 4 {
        return Err(format!("{calls} calls in the tree; {context}"));
    }
    let text = std::fs::read_to_string(&ledger).map_err(|e| e.to_string())?;
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for key in text.lines() {
        if !key.starts_with(id.as_str()) {
            return Err(format!(
                "a completion under a foreign key `{key}`; {context}"
            ));
        }
        *runs.entry(key).or_default() += 1;
    }
    for call in tree.calls().iter().filter(|c| &*c.agent == "work") {
        let key = format!("{id}/{}", call.id);
        let n = runs.get(key.as_str()).copied().unwrap_or(0);
        if n == 0 {
            return Err(format!("{key} never completed; {context}"));
        }
        // Once its end is journaled, a call never runs again.
        let allowed = 1 + in_flight_at_kills.get(&key).copied().unwrap_or(0);
        if n > allowed {
            return Err(format!(
                "{key} completed {n} times but was in flight at {} kill(s); {context}",
                allowed - 1
            ));
        }
    }
    let repeated = runs.values().filter(|&&n| n > 1).count();
    let resumes = events
        .iter()
        .filter(|e| e.kind.name() == "execution_resumed")
        .count();
    println!(
        "crash test (calls): {KILLS} kills, {resumes} resumes, {repeated} calls re-run (all in flight at a kill), {} events; {context}",
        events.len()
    );
    if resumes == 0 {
        return Err(format!("no kill landed mid-run; {context}"));
    }
    Ok(())
}

fn main() {
    kill::crash_main(
        "sqlite_calls_crash_resume",
        "crash_calls",
        |db, ledger| async move { worker(&db, &ledger).await },
        |dir| async move { crash_test(&dir).await },
    );
}
