//! Crash test for the supervisor pattern: 500 tasks over a pool of 4
//! workers (one failing every task whose number is a multiple of 7, so
//! that tasks are reassigned), 16 at once, on SQLite; the process is
//! killed with SIGKILL at 12 seeded random moments and resumed each time.
//! No task may be lost (the output is the uninterrupted run's) and none
//! whose end was journaled may complete again: only tasks in flight at a
//! kill may appear twice in the side-effect ledger, always under their
//! one idempotency key.
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
use orchestrate_core::pattern::supervisor::{RestartPolicy, Strategy, Supervisor, Worker};
use orchestrate_core::store::{ExecutionQuery, Store};
use orchestrate_core::{agent_fn, AgentError, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;
use serde_json::{json, Value};

const KILLS: usize = 12;
const SEED: u64 = 0x5EED_F00D;
const TASKS: i64 = 500;

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("pool")
        .step(StepDef::new("pool", "pool").input(json!("${input}")))
        .build()
}

type Effect = Arc<dyn Fn(&str) + Send + Sync>;

/// A worker that squares its task after a short wait and records the
/// completion first; `picky` fails every task that is a multiple of 7.
fn worker(name: &'static str, effect: Effect, picky: bool) -> Worker {
    Worker::new(agent_fn(name, move |task: Value, ctx| {
        let effect = effect.clone();
        async move {
            let n = task.as_i64().unwrap_or(0);
            let us = 2_000 + (n.unsigned_abs() * 7919) % 4_000;
            tokio::time::sleep(Duration::from_micros(us)).await;
            if picky && n % 7 == 0 {
                return Err(AgentError::permanent("not this one"));
            }
            effect(&ctx.idempotency_key());
            Ok(json!(n * n))
        }
    }))
}

fn orchestrator(store: Arc<dyn Store>, effect: Effect) -> Orchestrator {
    let pool = Supervisor::builder("pool")
        .worker(worker("w1", effect.clone(), false))
        .worker(worker("w2", effect.clone(), true))
        .worker(worker("w3", effect.clone(), false))
        .worker(worker("w4", effect, false))
        .strategy(Strategy::LeastLoaded)
        .limit(16)
        .restart(RestartPolicy::default().after_failures(1_000))
        .build()
        .unwrap();
    Orchestrator::builder()
        .agent(pool)
        .default_policy(
            orchestrate_core::default_policy()
                .retry(orchestrate_core::resilience::RetryConfig::attempts(1)),
        )
        .store(store)
        .workflow(workflow())
        .build()
        .unwrap()
}

async fn worker_process(db: &str, ledger: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)
        .unwrap();
    let file = Mutex::new(file);
    let effect: Effect = Arc::new(move |key: &str| {
        // One write per line: an append of a few bytes is not torn by a kill.
        file.lock()
            .unwrap()
            .write_all(format!("{key}\n").as_bytes())
            .unwrap();
    });
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await.unwrap());
    let orch = orchestrator(store.clone(), effect);
    let unfinished = store
        .list_executions(&ExecutionQuery::unfinished())
        .await
        .unwrap();
    let tasks: Vec<i64> = (0..TASKS).collect();
    let exec = match unfinished.first() {
        Some(summary) => orch.resume(&summary.id).await.unwrap(),
        None => orch
            .run_with_key("crash-pool", &orch.workflow("pool").unwrap(), json!(tasks))
            .await
            .unwrap(),
    };
    exec.wait().await.unwrap();
}

async fn crash_test(dir: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let db = dir.join("pool.db").display().to_string();
    let ledger = dir.join("ledger.txt");
    let worker_cmd = || {
        let mut c = Command::new(&exe);
        c.arg("--worker")
            .arg(&db)
            .arg(&ledger)
            .stdout(Stdio::null());
        c
    };
    let journal = || kill::first_execution(&db);

    let mut rng = SEED;
    let mut kill_points = Vec::new();
    let mut in_flight_at_kills: HashMap<String, usize> = HashMap::new();
    for _ in 0..KILLS {
        let after = Duration::from_millis(25 + splitmix(&mut rng) % 50);
        kill_points.push(after.as_millis());
        run_until_killed(worker_cmd(), after)?;
        if let Some((id, events)) = journal().await {
            for call in CallTree::from_events(&events).calls() {
                if matches!(call.status, CallStatus::Running | CallStatus::Pending) {
                    *in_flight_at_kills
                        .entry(format!("{id}/{}", call.id))
                        .or_default() += 1;
                }
            }
        }
    }
    let context = format!("seed {SEED:#x}, kill points (ms after start) {kill_points:?}");
    let status = worker_cmd().status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("final run failed: {status}; {context}"));
    }
    let (id, events) = journal().await.ok_or(format!("no execution; {context}"))?;
    let view = ExecutionView::from_events(&events);
    let expected: Vec<i64> = (0..TASKS).map(|n| n * n).collect();
    if view.output("pool") != Some(&json!(expected)) {
        return Err(format!("a task was lost or wrong; {context}"));
    }
    let tree = view.calls();
    // Every task ended exactly once in the journal.
    let mut completed: HashMap<i64, usize> = HashMap::new();
    for call in tree.calls() {
        if call.status == CallStatus::Completed {
            let task = call
                .id
                .rsplit_once("/t")
                .and_then(|(_, k)| k.split_once('.'))
                .and_then(|(t, _)| t.parse::<i64>().ok())
                .ok_or(format!("call {} is not a task's; {context}", call.id))?;
            *completed.entry(task).or_default() += 1;
        }
    }
    if completed.len() != TASKS as usize || completed.values().any(|&n| n != 1) {
        return Err(format!(
            "tasks completed in the journal: {completed:?}; {context}"
        ));
    }
    let reassigned = tree
        .decisions()
        .iter()
        .filter(|d| &*d.kind == "reassign")
        .count();
    if reassigned == 0 {
        return Err(format!("no task was reassigned; {context}"));
    }
    let text = std::fs::read_to_string(&ledger).map_err(|e| e.to_string())?;
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for key in text.lines() {
        *runs.entry(key).or_default() += 1;
    }
    for (key, &n) in &runs {
        if !key.starts_with(id.as_str()) {
            return Err(format!(
                "a completion under a foreign key `{key}`; {context}"
            ));
        }
        let allowed = 1 + in_flight_at_kills.get(*key).copied().unwrap_or(0);
        if n > allowed {
            return Err(format!(
                "{key} completed {n} times but was in flight at {} kill(s); {context}",
                allowed - 1
            ));
        }
    }
    let resumes = events
        .iter()
        .filter(|e| e.kind.name() == "execution_resumed")
        .count();
    if resumes == 0 {
        return Err(format!("no kill landed mid-run; {context}"));
    }
    let repeated = runs.values().filter(|&&n| n > 1).count();
    println!(
        "crash test (supervisor): {KILLS} kills, {resumes} resumes, {reassigned} reassignments, {repeated} tasks re-run (all in flight at a kill), {} events; {context}",
        events.len()
    );
    Ok(())
}

fn main() {
    kill::crash_main(
        "sqlite_supervisor_crash_resume",
        "crash_supervisor",
        |db, ledger| async move { worker_process(&db, &ledger).await },
        |dir| async move { crash_test(&dir).await },
    );
}
