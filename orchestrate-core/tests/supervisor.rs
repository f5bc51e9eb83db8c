//! The supervisor pattern: tasks over a pool of workers, reassigned when a
//! worker fails them, unhealthy workers restarted then quarantined, the
//! restart intensity, every choice in the journal, and a run resumed
//! after a crash that redoes no finished task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestrate_core::journal::{CallTree, EventKind};
use orchestrate_core::pattern::router::CapabilityRouter;
use orchestrate_core::pattern::supervisor::{
    RestartPolicy, Strategy, Supervisor, SupervisorError, Worker, WorkerState,
};
use orchestrate_core::resilience::RetryConfig;
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{
    agent_fn, default_policy, Agent, AgentError, Error, ExecutionStatus, Orchestrator,
};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};

/// Completions of each task, by task number.
type Done = Arc<Mutex<HashMap<i64, u32>>>;

/// A worker that doubles its task and counts the completion.
fn doubler(name: &'static str, done: &Done) -> impl Agent {
    let done = done.clone();
    agent_fn(name, move |task: Value, _| {
        let done = done.clone();
        async move {
            let n = task.as_i64().unwrap_or(-1);
            *done.lock().unwrap().entry(n).or_default() += 1;
            Ok(json!(n * 2))
        }
    })
}

fn broken(name: &'static str) -> impl Agent {
    agent_fn(name, |_, _| async move {
        Err::<Value, _>(AgentError::permanent("out of order"))
    })
}

fn single_attempts() -> orchestrate_core::resilience::PolicyBuilder {
    default_policy().retry(RetryConfig::attempts(1))
}

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("pool")
        .step(StepDef::new("pool", "pool").input(json!("${input}")))
        .build()
}

async fn run(orch: &Orchestrator, tasks: Value) -> orchestrate_core::Execution {
    let wf = orch.bind(&workflow()).unwrap();
    orch.run(&wf, tasks).await.unwrap()
}

#[tokio::test]
async fn with_one_of_four_workers_always_failing_every_task_completes_once() {
    let done = Done::default();
    let pool = Supervisor::builder("pool")
        .worker(Worker::new(doubler("a", &done)))
        .worker(Worker::new(broken("bad")))
        .worker(Worker::new(doubler("b", &done)))
        .worker(Worker::new(doubler("c", &done)))
        .strategy(Strategy::RoundRobin)
        .limit(8)
        .restart(RestartPolicy::default().after_failures(1_000))
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agent(pool.clone())
        .default_policy(single_attempts())
        .build()
        .unwrap();
    let tasks: Vec<i64> = (0..100).collect();
    let exec = run(&orch, json!(tasks)).await;
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    let expected: Vec<i64> = tasks.iter().map(|n| n * 2).collect();
    assert_eq!(
        view.output("pool"),
        Some(&json!(expected)),
        "task order kept"
    );
    {
        let done = done.lock().unwrap();
        assert_eq!(done.len(), 100);
        assert!(
            done.values().all(|&n| n == 1),
            "a task completed twice: {done:?}"
        );
    }

    // The broken worker got its turn, failed, and each such task was
    // reassigned (to another worker): all of it in the journal.
    let health = pool.health();
    assert_eq!(health[1].successes, 0);
    assert!(health[1].failures > 0, "{health:?}");
    assert_eq!(health.iter().map(|h| h.successes).sum::<u64>(), 100);
    let events = orch.store().load(&id, 0).await.unwrap();
    let tree = CallTree::from_events(&events);
    let kinds = |kind: &str| tree.decisions().iter().filter(|d| &*d.kind == kind).count();
    assert_eq!(kinds("assign"), 100);
    assert_eq!(kinds("reassign") as u64, health[1].failures);
    for d in tree.decisions().iter().filter(|d| &*d.kind == "reassign") {
        assert_ne!(
            d.value,
            json!("bad"),
            "{} went back to the worker that failed it",
            d.id
        );
    }
    assert!(tree.get("pool/t1.0").is_some_and(|c| &*c.agent == "bad"));
    assert!(tree.get("pool/t1.1").is_some_and(|c| &*c.agent != "bad"));
    let text = tree.to_text();
    assert!(text.contains("◆ assign t1.0 = \"bad\""), "{text}");
}

#[tokio::test]
async fn a_worker_that_keeps_failing_is_restarted_from_its_factory_then_quarantined() {
    let made = Arc::new(AtomicU32::new(0));
    let factory = {
        let made = made.clone();
        move || {
            made.fetch_add(1, Ordering::SeqCst);
            broken("flaky")
        }
    };
    let done = Done::default();
    let pool = Supervisor::builder("pool")
        .worker(Worker::from_factory(factory))
        .worker(Worker::new(doubler("steady", &done)))
        .limit(1)
        .restart(
            RestartPolicy::default()
                .after_failures(2)
                .restarts_per_worker(1),
        )
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agent(pool.clone())
        .default_policy(single_attempts())
        .build()
        .unwrap();
    let exec = run(&orch, json!((0..20).collect::<Vec<i64>>())).await;
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        made.load(Ordering::SeqCst),
        2,
        "the first instance, and one restart"
    );
    let health = pool.health();
    assert_eq!(health[0].restarts, 1);
    assert_eq!(health[0].state, WorkerState::Quarantined);
    assert_eq!(health[0].failures, 4, "2 before the restart, 2 after");
    assert_eq!(health[1].state, WorkerState::Active);
    assert_eq!(health[1].successes, 20);

    let events = orch.store().load(&id, 0).await.unwrap();
    let actions: Vec<Value> = CallTree::from_events(&events)
        .decisions_by("pool")
        .filter(|d| &*d.kind == "recover" && !d.value.is_null())
        .map(|d| d.value["action"].clone())
        .collect();
    assert_eq!(actions, [json!("restart"), json!("quarantine")]);
}

#[tokio::test]
async fn restarts_past_the_intensity_fail_the_supervisor_with_a_typed_error() {
    let pool = Supervisor::builder("pool")
        .workers((0..3).map(|i| {
            let name: &'static str = ["x", "y", "z"][i];
            Worker::new(broken(name))
        }))
        .limit(1)
        .max_reassign(10)
        .restart(
            RestartPolicy::default()
                .after_failures(1)
                .restarts_per_worker(5)
                .intensity(2, Duration::from_secs(3_600)),
        )
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agent(pool)
        .default_policy(single_attempts())
        .build()
        .unwrap();
    let exec = run(&orch, json!([1, 2, 3])).await;
    let id = exec.id().clone();
    let error = exec.await.unwrap_err();
    let supervisor_error =
        std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .find_map(|e| e.downcast_ref::<SupervisorError>());
    assert!(
        matches!(
            supervisor_error,
            Some(SupervisorError::RestartIntensity { restarts: 2, .. })
        ),
        "{error:?}"
    );
    let events = orch.store().load(&id, 0).await.unwrap();
    let actions: Vec<Value> = CallTree::from_events(&events)
        .decisions()
        .iter()
        .filter(|d| &*d.kind == "recover" && !d.value.is_null())
        .map(|d| d.value["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [json!("restart"), json!("restart"), json!("give_up")]
    );
}

#[tokio::test]
async fn a_task_that_fails_on_every_worker_fails_the_supervisor_naming_it() {
    let pool = Supervisor::builder("pool")
        .worker(Worker::new(broken("x")))
        .worker(Worker::new(broken("y")))
        .max_reassign(1)
        .restart(RestartPolicy::default().after_failures(100))
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agent(pool)
        .default_policy(single_attempts())
        .build()
        .unwrap();
    let error = run(&orch, json!([7])).await.await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("task 0 failed 2 times"), "{text}");
    assert!(text.contains("out of order"), "{text}");
}

#[tokio::test]
async fn the_input_must_be_tasks() {
    let done = Done::default();
    let pool = Supervisor::builder("pool")
        .worker(Worker::new(doubler("a", &done)))
        .build()
        .unwrap();
    let orch = Orchestrator::builder().agent(pool).build().unwrap();
    let error = run(&orch, json!("not tasks")).await.await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the input must be an array of tasks"),
        "{error}"
    );
    let ok = run(&orch, json!({"tasks": [1, 2]}))
        .await
        .wait()
        .await
        .unwrap();
    assert_eq!(ok.output("pool"), Some(&json!([2, 4])));
}

#[test]
fn a_supervisor_needs_distinct_workers() {
    let done = Done::default();
    let none = Supervisor::builder("pool").build().unwrap_err();
    assert_eq!(none.param, "workers");
    let twice = Supervisor::builder("pool")
        .worker(Worker::new(doubler("a", &done)))
        .worker(Worker::new(doubler("a", &done)))
        .build()
        .unwrap_err();
    assert_eq!(twice.param, "workers[1]");
}

#[tokio::test]
async fn a_json_step_runs_the_supervisor_pattern_with_checked_params() {
    let done = Done::default();
    let made = Arc::new(AtomicU32::new(0));
    let counted = made.clone();
    let orch = Orchestrator::builder()
        .agent(doubler("a", &done))
        .agent_factory(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            broken("b")
        })
        .default_policy(single_attempts())
        .build()
        .unwrap();
    let def = WorkflowDef::from_json(
        r#"{"name": "json-pool", "steps": [
            {"id": "pool", "pattern": "supervisor", "input": "${input}",
             "params": {"workers": ["a", "b"], "strategy": "least_loaded", "limit": 1,
                        "restart": {"after_failures": 1, "restarts_per_worker": 1}}}
        ]}"#,
    )
    .unwrap();
    let wf = orch.bind(&def).unwrap();
    let view = orch
        .run(&wf, json!([1, 2, 3, 4]))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(view.output("pool"), Some(&json!([2, 4, 6, 8])));
    // Registered once, made again for the supervisor, then restarted.
    assert_eq!(made.load(Ordering::SeqCst), 3);

    let with = |params: Value| {
        let mut def = def.clone();
        def.steps[0].params = Some(params);
        orch.bind(&def).unwrap_err()
    };
    let cases = [
        (
            json!({"workers": ["a", "ghost"]}),
            "workers[1]",
            "no agent is registered as `ghost`",
        ),
        (
            json!({"workers": ["a"], "strategy": "fastest"}),
            "strategy",
            "unknown variant `fastest`",
        ),
        (json!({"workers": ["a"], "limit": 0}), "limit", "at least 1"),
        (
            json!({"workers": ["a"], "restart": {"period": 5}}),
            "restart.period",
            "unknown field",
        ),
        (json!({"workers": []}), "workers", "needs a worker"),
        (
            json!({"workers": ["a", "a"]}),
            "workers[1]",
            "two workers are named `a`",
        ),
        (
            json!({"workers": ["a"], "strategy": "capability"}),
            "capabilities",
            "needs what each",
        ),
        (
            json!({"workers": ["a"], "strategy": "capability", "capabilities": {"z": ["x"]}}),
            "capabilities.z",
            "not one of the workers",
        ),
        (
            json!({"workers": ["a"], "capabilities": {"a": ["x"]}}),
            "capabilities",
            "only the capability",
        ),
    ];
    for (params, param, reason) in cases {
        match with(params.clone()) {
            Error::PatternParams {
                step,
                pattern,
                error,
                ..
            } => {
                assert_eq!((&*step, &*pattern), ("pool", "supervisor"));
                assert_eq!(error.param, param, "{params}");
                assert!(error.reason.contains(reason), "{params}: {}", error.reason);
            }
            other => panic!("{params}: {other:?}"),
        }
    }

    let mut unknown = def.clone();
    unknown.steps[0].pattern = Some("swarm-of-bees".into());
    assert!(matches!(
        orch.bind(&unknown).unwrap_err(),
        Error::UnknownPattern { pattern, .. } if &*pattern == "swarm-of-bees"
    ));
    let mut both = def.clone();
    both.steps[0].agent = "a".into();
    let error = orch.bind(&both).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("names both an agent and a pattern"),
        "{error}"
    );
}

#[test]
fn a_resumed_supervisor_replays_finished_tasks_and_runs_the_rest_once() {
    // The first process stops (its runtime dropped, as a killed process)
    // while tasks 10.. hang; the second resumes from the store.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let done = Done::default();
    let hang = Arc::new(AtomicBool::new(true));
    let build = |store: Arc<dyn Store>| {
        let worker = |name: &'static str| {
            let (done, hang) = (done.clone(), hang.clone());
            agent_fn(name, move |task: Value, _| {
                let (done, hang) = (done.clone(), hang.clone());
                async move {
                    let n = task.as_i64().unwrap_or(-1);
                    if n >= 10 && hang.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    *done.lock().unwrap().entry(n).or_default() += 1;
                    Ok(json!(n * 2))
                }
            })
        };
        let pool = Supervisor::builder("pool")
            .workers([
                Worker::new(worker("a")),
                Worker::new(worker("b")),
                Worker::new(worker("c")),
            ])
            .strategy(Strategy::LeastLoaded)
            .limit(4)
            .build()
            .unwrap();
        Orchestrator::builder()
            .agent(pool)
            .store(store)
            .workflow(workflow())
            .build()
            .unwrap()
    };
    let tasks: Vec<i64> = (0..30).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id = rt.block_on(async {
        let orch = build(store.clone());
        let exec = orch
            .run(&orch.workflow("pool").unwrap(), json!(tasks))
            .await
            .unwrap();
        // Until tasks 0..10 are journaled and 4 of the rest hang.
        loop {
            let events = store.load(exec.id(), 0).await.unwrap_or_default();
            let ended = events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::CallCompleted { .. }))
                .count();
            if ended == 10 && done.lock().unwrap().len() == 10 {
                let tree = CallTree::from_events(&events);
                if tree.calls().len() == 14 {
                    break exec.id().clone();
                }
            }
            tokio::task::yield_now().await;
        }
    });
    drop(rt);
    let before: Vec<_> = {
        let events = futures::executor::block_on(store.load(&id, 0)).unwrap();
        CallTree::from_events(&events)
            .decisions()
            .iter()
            .map(|d| (d.id.clone(), d.value.clone()))
            .collect()
    };
    assert_eq!(
        before.len(),
        14,
        "10 finished and 4 hanging tasks were assigned"
    );

    hang.store(false, Ordering::SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let view = rt.block_on(async {
        let orch = build(store.clone());
        orch.resume(&id).await.unwrap().wait().await.unwrap()
    });
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    let expected: Vec<i64> = tasks.iter().map(|n| n * 2).collect();
    assert_eq!(view.output("pool"), Some(&json!(expected)));
    let done = done.lock().unwrap();
    assert_eq!(done.len(), 30);
    assert!(
        done.values().all(|&n| n == 1),
        "a task completed twice: {done:?}"
    );

    // The assignments journaled before the crash were replayed, not made
    // again: each id once, with its first choice.
    let events = futures::executor::block_on(store.load(&id, 0)).unwrap();
    let tree = CallTree::from_events(&events);
    assert_eq!(tree.decisions().len(), 30);
    for (id, value) in before {
        let now: Vec<_> = tree.decisions().iter().filter(|d| d.id == id).collect();
        assert_eq!(now.len(), 1, "{id}");
        assert_eq!(now[0].value, value, "{id}");
    }
}

#[tokio::test]
async fn the_capability_strategy_routes_each_task_to_a_worker_that_can_do_it() {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let worker = |name: &'static str| {
        let seen = seen.clone();
        agent_fn(name, move |task: Value, _| {
            let seen = seen.clone();
            async move {
                let need = task["capability"].as_str().unwrap_or("").to_owned();
                seen.lock().unwrap().push((name.to_owned(), need));
                Ok(json!(name))
            }
        })
    };
    let router = CapabilityRouter::new()
        .agent("reader", ["ocr"])
        .agent("linguist", ["translate"])
        .agent("polyglot", ["translate", "ocr"]);
    let pool = Supervisor::builder("pool")
        .workers(["reader", "linguist", "polyglot"].map(|n| Worker::new(worker(n))))
        .router(router.clone())
        .limit(1)
        .build()
        .unwrap();
    let orch = Orchestrator::builder().agent(pool).build().unwrap();
    let tasks: Vec<Value> = ["ocr", "translate", "ocr", "translate", "sing"]
        .iter()
        .map(|c| json!({"capability": c}))
        .collect();
    let exec = run(&orch, json!(tasks[..4])).await;
    let id = exec.id().clone();
    exec.wait().await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        for (worker, need) in seen.iter() {
            let can = router.capabilities_of(worker).unwrap();
            assert!(can.contains(need), "{worker} got a {need} task");
        }
    }
    // One at a time, every worker idle at each pick: the second task of
    // each kind is served from the cache.
    assert_eq!(
        (router.stats().hits, router.stats().misses),
        (2, 2),
        "{:?}",
        router.stats()
    );
    let events = orch.store().load(&id, 0).await.unwrap();
    assert_eq!(CallTree::from_events(&events).decisions().len(), 4);

    // Nobody sings: the supervisor fails, naming the task.
    let error = run(&orch, json!(tasks[4..])).await.await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no active worker can take task 0"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_capability_strategy_spreads_tasks_over_the_workers_that_can_do_them() {
    // Two readers, each task 10 ms long, four at a time: a pick that made
    // its worker busier is not reused from the router's cache.
    let worker = |name: &'static str| {
        agent_fn(name, move |_, _| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(json!(name))
        })
    };
    let router = CapabilityRouter::new()
        .agent("reader-1", ["ocr"])
        .agent("reader-2", ["ocr"]);
    let pool = Supervisor::builder("pool")
        .workers(["reader-1", "reader-2"].map(|n| Worker::new(worker(n))))
        .router(router)
        .limit(4)
        .build()
        .unwrap();
    let orch = Orchestrator::builder().agent(pool).build().unwrap();
    let tasks = vec![json!({"capability": "ocr"}); 8];
    let view = run(&orch, json!(tasks)).await.wait().await.unwrap();
    let by: Vec<&str> = view
        .output("pool")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let first = by.iter().filter(|&&w| w == "reader-1").count();
    assert_eq!((first, by.len() - first), (4, 4), "{by:?}");
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_registered_from_rust_runs_one_attempt_without_a_timeout() {
    // Two tasks of 20 s each, one at a time: under the default policy
    // (30 s timeout, 3 attempts) the supervisor would time out and start
    // every task again under new ids; a pattern agent gets one attempt
    // and no timeout unless a policy is set for its name.
    let done = Done::default();
    let slow = {
        let done = done.clone();
        agent_fn("slow", move |task: Value, _| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let n = task.as_i64().unwrap_or(-1);
                *done.lock().unwrap().entry(n).or_default() += 1;
                Ok(json!(n))
            }
        })
    };
    let pool = Supervisor::builder("pool")
        .worker(Worker::new(slow))
        .limit(1)
        .build()
        .unwrap();
    let orch = Orchestrator::builder().agent(pool).build().unwrap();
    let view = run(&orch, json!([0, 1])).await.wait().await.unwrap();
    assert_eq!(view.output("pool"), Some(&json!([0, 1])));
    let done = done.lock().unwrap();
    assert_eq!((done[&0], done[&1]), (1, 1), "{done:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_worker_is_judged_by_its_own_calls_not_its_old_instances() {
    // Sixteen tasks, eight at once: `flaky`'s first instance has four running when
    // two of them fail and it is restarted. The other two fail after the
    // restart: they must not count against the fresh instance, which is
    // quarantined only after failing calls of its own.
    let made = Arc::new(AtomicU32::new(0));
    let on_fresh = Arc::new(AtomicU32::new(0));
    let factory = {
        let (made, on_fresh) = (made.clone(), on_fresh.clone());
        move || {
            let generation = made.fetch_add(1, Ordering::SeqCst);
            let on_fresh = on_fresh.clone();
            agent_fn("flaky", move |_: Value, _| {
                let on_fresh = on_fresh.clone();
                async move {
                    if generation > 0 {
                        on_fresh.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Err::<Value, _>(AgentError::permanent("flaky"))
                }
            })
        }
    };
    let steady = agent_fn("steady", |task: Value, _| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(task)
    });
    let pool = Supervisor::builder("pool")
        .worker(Worker::from_factory(factory))
        .worker(Worker::new(steady))
        .strategy(Strategy::RoundRobin)
        .limit(8)
        .max_reassign(5)
        .restart(
            RestartPolicy::default()
                .after_failures(2)
                .restarts_per_worker(1),
        )
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agent(pool.clone())
        .default_policy(single_attempts())
        .build()
        .unwrap();
    let view = run(&orch, json!((0..16).collect::<Vec<i64>>()))
        .await
        .wait()
        .await
        .unwrap();
    assert_eq!(
        view.output("pool"),
        Some(&json!((0..16).collect::<Vec<i64>>()))
    );
    assert_eq!(
        made.load(Ordering::SeqCst),
        2,
        "the first instance and one restart"
    );
    assert!(
        on_fresh.load(Ordering::SeqCst) >= 2,
        "the fresh instance ran {} call(s) before its quarantine",
        on_fresh.load(Ordering::SeqCst)
    );
    assert_eq!(pool.health()[0].state, WorkerState::Quarantined);
}
