//! Crash test: a 200-step workflow on SQLite is killed with SIGKILL at 20
//! seeded random points and resumed each time. It must end with the outputs
//! of an uninterrupted run, every step's effect in the ledger under one
//! stable idempotency key (only steps in flight at a kill may appear twice),
//! and a journal without gaps or duplicates.
//!
//! Runs on SQLite always and on PostgreSQL when
//! `ORCHESTRATE_TEST_POSTGRES_URL` is set (in a schema of its own).
//!
//! One binary plays both parts: run with `--worker <backend> <location>
//! <ledger>` it is the process that gets killed.

#[path = "support/kill.rs"]
mod kill;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kill::{run_until_killed, splitmix};
use orchestrate_core::journal::ExecutionView;
use orchestrate_core::store::{ExecutionQuery, MemoryStore, Store};
use orchestrate_core::{agent_fn, Agent, ExecutionId, Orchestrator, StepStatus};
use orchestrate_graph::{StepDef, WorkflowDef};
use orchestrate_store::sqlite::SqliteStore;

/// Where the crash test keeps its state.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite(String),
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres { .. } => "postgres",
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Backend::Sqlite(path) => vec!["sqlite".into(), path.clone()],
            #[cfg(feature = "postgres")]
            Backend::Postgres { url, schema } => vec!["postgres".into(), format!("{url}#{schema}")],
        }
    }

    fn from_args(kind: &str, location: &str) -> Self {
        match kind {
            #[cfg(feature = "postgres")]
            "postgres" => {
                let (url, schema) = location.rsplit_once('#').unwrap();
                Backend::Postgres {
                    url: url.into(),
                    schema: schema.into(),
                }
            }
            _ => Backend::Sqlite(location.into()),
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(path) => Arc::new(SqliteStore::open(path).await.unwrap()),
            #[cfg(feature = "postgres")]
            Backend::Postgres { url, schema } => Arc::new(
                orchestrate_store::postgres::PostgresStore::connect_with(
                    url,
                    orchestrate_store::postgres::PostgresConfig::default().with_schema(schema),
                )
                .await
                .unwrap(),
            ),
        }
    }
}
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
async fn worker(backend: Backend, ledger: &str) {
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
    let store = backend.open().await;
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
    backend: &Backend,
) -> Option<(ExecutionId, Vec<orchestrate_core::journal::Event>)> {
    let store = backend.open().await;
    let all = store.list_executions(&ExecutionQuery::all()).await.unwrap();
    let id = all.first()?.id.clone();
    let events = store.load(&id, 0).await.unwrap();
    Some((id, events))
}

async fn crash_test(backend: Backend, dir: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let db = &backend;
    let ledger = dir.join(format!("ledger-{}.tsv", backend.name()));
    let worker_cmd = || {
        let mut c = Command::new(&exe);
        c.arg("--worker")
            .args(backend.args())
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
        run_until_killed(worker_cmd(), after)?;
        if let Some((_, events)) = journal_of(db).await {
            let view = ExecutionView::from_events(&events);
            for s in view.steps() {
                if matches!(s.status, StepStatus::Running | StepStatus::Scheduled) {
                    in_flight_at_kills.insert(s.id.to_string());
                }
            }
        }
    }
    let context = format!(
        "{}: seed {SEED:#x}, kill points (ms after start) {kill_points:?}",
        backend.name()
    );
    // The last run is never killed.
    let status = worker_cmd().status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("final run failed: {status}; {context}"));
    }

    let (id, events) = journal_of(db)
        .await
        .ok_or(format!("no execution; {context}"))?;
    // (c) no gap, no duplicate.
    for (i, e) in events.iter().enumerate() {
        if e.seq != i as u64 {
            return Err(format!("journal seq {} at position {i}; {context}", e.seq));
        }
    }
    // (a) the outputs of an uninterrupted run.
    let view = ExecutionView::from_events(&events);
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
        rt.block_on(worker(Backend::from_args(&args[2], &args[3]), &args[4]));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cases = vec![(
        "sqlite_crash_resume",
        Some(Backend::Sqlite(
            dir.path().join("crash.db").display().to_string(),
        )),
    )];
    #[cfg(feature = "postgres")]
    cases.push((
        "postgres_crash_resume",
        std::env::var("ORCHESTRATE_TEST_POSTGRES_URL")
            .ok()
            .map(|url| Backend::Postgres {
                url,
                schema: format!("crash_{}", std::process::id()),
            }),
    ));
    // `cargo test` may pass a filter: run the cases whose name contains it.
    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, backend) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let Some(backend) = backend else {
            println!("test {name} ... skipped: ORCHESTRATE_TEST_POSTGRES_URL is not set");
            continue;
        };
        let result = rt.block_on(crash_test(backend.clone(), dir.path()));
        #[cfg(feature = "postgres")]
        if let Backend::Postgres { url, schema } = &backend {
            let _ = rt.block_on(orchestrate_store::postgres::PostgresStore::drop_schema(
                url, schema,
            ));
        }
        match result {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(e) => {
                eprintln!("test {name} ... FAILED\n{e}");
                failed += 1;
            }
        }
    }
    println!("\ncrash: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
