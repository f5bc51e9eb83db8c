//! The handoff pattern: control and the conversation pass from agent to
//! agent; gates retry or roll back; a router picks when nobody is named;
//! a hop limit ends loops; every hop and verdict is in the journal; a
//! resumed handoff replays the hops that ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use orchestrate_core::journal::CallTree;
use orchestrate_core::pattern::handoff::{
    Gate, GateAction, Handoff, HandoffError, HandoffInput, Turn,
};
use orchestrate_core::pattern::router::CapabilityRouter;
use orchestrate_core::store::{MemoryStore, Store};
use orchestrate_core::{agent_fn, Agent, Error, ExecutionStatus, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("desk")
        .step(StepDef::new("desk", "desk").input(json!("${input}")))
        .build()
}

/// An agent that answers with `turn(input)`.
fn agent(
    name: &'static str,
    turn: impl Fn(HandoffInput) -> Turn + Send + Sync + 'static,
) -> impl Agent {
    let turn = Arc::new(turn);
    agent_fn(name, move |input: Value, _| {
        let turn = turn.clone();
        async move { Ok(turn(HandoffInput::from_value(input)?).into()) }
    })
}

fn source_of(error: &Error) -> Option<&HandoffError> {
    std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|e| e.downcast_ref::<HandoffError>())
}

async fn hops(orch: &Orchestrator, id: &orchestrate_core::ExecutionId) -> Vec<Value> {
    let events = orch.store().load(id, 0).await.unwrap();
    CallTree::from_events(&events)
        .decisions()
        .iter()
        .filter(|d| &*d.kind == "hop")
        .map(|d| d.value.clone())
        .collect()
}

#[tokio::test]
async fn a_failed_gate_rolls_back_to_the_previous_agent_with_its_reason() {
    let triage = agent("triage", |input| {
        // Sent back once: the second time it picks the other specialist.
        match input.feedback {
            None => Turn::to("junior", json!("looks easy")).because("simple question"),
            Some(why) => Turn::to("senior", json!(format!("escalating: {why}"))),
        }
    });
    let junior = agent("junior", |_| Turn::done(json!("maybe?")));
    let senior = agent("senior", |input| {
        let seen = input.conversation.history.len();
        Turn::done(json!(format!("certainly (after {seen} turns)")))
            .with_state("closed", json!(true))
    });
    let desk = Handoff::builder("desk", "triage")
        .agents(["junior", "senior"])
        .gate(
            Gate::check("confident", |turn| match turn.reply.as_str() {
                Some(text) if text.contains('?') => Err("the answer is a guess".into()),
                _ => Ok(()),
            })
            .after(["junior", "senior"])
            .on_fail(GateAction::Rollback),
        )
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agents_for_test([triage.boxed(), junior.boxed(), senior.boxed(), desk.boxed()])
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&workflow()).unwrap(), json!("q"))
        .await
        .unwrap();
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    let out = view.output("desk").unwrap();
    assert_eq!(out["answer"], json!("certainly (after 3 turns)"));
    assert_eq!(out["by"], json!("senior"));
    assert_eq!(out["hops"], json!(4));
    assert_eq!(out["state"], json!({"closed": true}));
    let history = out["history"].as_array().unwrap();
    let agents: Vec<&str> = history
        .iter()
        .map(|e| e["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["triage", "junior", "triage", "senior"]);
    assert_eq!(history[1]["rejected"], json!("the answer is a guess"));
    assert_eq!(
        history[2]["reply"],
        json!("escalating: the answer is a guess")
    );

    assert_eq!(
        hops(&orch, &id).await,
        [
            json!({"from": "triage", "to": "junior", "reason": "simple question"}),
            json!({"from": "junior", "to": "triage", "reason": "gate `confident` failed: the answer is a guess"}),
            json!({"from": "triage", "to": "senior", "reason": "triage handed off"}),
            json!({"from": "senior", "to": null, "reason": "final answer"}),
        ]
    );
    let events = orch.store().load(&id, 0).await.unwrap();
    let verdicts: Vec<bool> = CallTree::from_events(&events)
        .decisions()
        .iter()
        .filter(|d| &*d.kind == "gate")
        .map(|d| d.value["pass"].as_bool().unwrap())
        .collect();
    assert_eq!(verdicts, [false, true]);
}

#[tokio::test]
async fn a_loop_ends_at_the_hop_limit_with_its_path() {
    let ping = agent("ping", |_| Turn::to("pong", json!("ping")));
    let pong = agent("pong", |_| Turn::to("ping", json!("pong")));
    let desk = Handoff::builder("desk", "ping")
        .agents(["pong"])
        .max_hops(5)
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agents_for_test([ping.boxed(), pong.boxed(), desk.boxed()])
        .build()
        .unwrap();
    let error = orch
        .run(&orch.bind(&workflow()).unwrap(), json!("q"))
        .await
        .unwrap()
        .await
        .unwrap_err();
    match source_of(&error) {
        Some(HandoffError::HopLimit { hops, path, .. }) => {
            assert_eq!(*hops, 5);
            assert_eq!(path, &["ping", "pong", "ping", "pong", "ping"]);
        }
        other => panic!("{other:?} from {error}"),
    }
}

#[tokio::test]
async fn handing_off_outside_the_handoff_or_to_nobody_is_a_typed_error() {
    let stray = agent("stray", |_| Turn::to("stranger", json!(1)));
    let mute = agent("mute", |_| Turn::reply(json!("hmm")));
    let garbled = agent_fn(
        "garbled",
        |_, _| async move { Ok(json!({"text": "no turn"})) },
    );
    let orch = Orchestrator::builder()
        .agents_for_test([
            stray.boxed(),
            mute.boxed(),
            Arc::new(garbled),
            Handoff::builder("desk", "stray").build().unwrap().boxed(),
            Handoff::builder("desk2", "mute").build().unwrap().boxed(),
            Handoff::builder("desk3", "garbled")
                .build()
                .unwrap()
                .boxed(),
        ])
        .build()
        .unwrap();
    let fail = |desk: &'static str| {
        let orch = orch.clone();
        async move {
            let def = WorkflowDef::builder("w")
                .step(StepDef::new("s", desk))
                .build();
            let error = orch
                .run(&orch.bind(&def).unwrap(), json!(null))
                .await
                .unwrap()
                .await
                .unwrap_err();
            source_of(&error).cloned()
        }
    };
    assert!(matches!(
        fail("desk").await,
        Some(HandoffError::UnknownAgent { to, .. }) if to == "stranger"
    ));
    assert!(
        matches!(fail("desk2").await, Some(HandoffError::NoNext { from, .. }) if from == "mute")
    );
    assert!(
        matches!(fail("desk3").await, Some(HandoffError::BadTurn { from, .. }) if from == "garbled")
    );
}

#[tokio::test]
async fn a_router_picks_the_next_agent_when_a_turn_names_none() {
    let triage = agent("triage", |input| {
        Turn::reply(
            json!({"capability": if input.task == json!("invoice") { "billing" } else { "tech" }}),
        )
    });
    let billing = agent("billing", |_| Turn::done(json!("billing answered")));
    let tech = agent("tech", |_| Turn::done(json!("tech answered")));
    let router = CapabilityRouter::new()
        .agent("billing", ["billing"])
        .agent("tech", ["tech"]);
    let desk = Handoff::builder("desk", "triage")
        .agents(["billing", "tech"])
        .router(router.clone())
        .build()
        .unwrap();
    let orch = Orchestrator::builder()
        .agents_for_test([triage.boxed(), billing.boxed(), tech.boxed(), desk.boxed()])
        .build()
        .unwrap();
    for (task, answer) in [
        ("invoice", "billing answered"),
        ("crash", "tech answered"),
        ("invoice", "billing answered"),
    ] {
        let exec = orch
            .run(&orch.bind(&workflow()).unwrap(), json!(task))
            .await
            .unwrap();
        let id = exec.id().clone();
        let view = exec.wait().await.unwrap();
        assert_eq!(view.output("desk").unwrap()["answer"], json!(answer));
        let first = &hops(&orch, &id).await[0];
        assert!(
            first["reason"]
                .as_str()
                .unwrap()
                .starts_with("routed (score"),
            "{first}"
        );
    }
    assert_eq!(
        router.stats().hits,
        1,
        "the second invoice was routed from the cache"
    );
}

#[test]
fn a_resumed_handoff_replays_the_hops_that_ended() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let stall = Arc::new(AtomicBool::new(true));
    let build = |store: Arc<dyn Store>| {
        let counted = |name: &'static str| {
            let runs = runs.clone();
            move || *runs.lock().unwrap().entry(name.to_owned()).or_default() += 1
        };
        let (a, b) = (counted("triage"), counted("expert"));
        let stall = stall.clone();
        let triage = agent("triage", move |_| {
            a();
            Turn::to("expert", json!("over to you"))
        });
        let expert = agent_fn("expert", move |input: Value, _| {
            b();
            let stall = stall.clone();
            async move {
                let input = HandoffInput::from_value(input)?;
                if stall.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let seen = input.conversation.history.len();
                Ok(Turn::done(json!(format!("answered after {seen} turn"))).into())
            }
        });
        let desk = Handoff::builder("desk", "triage")
            .agents(["expert"])
            .build()
            .unwrap();
        Orchestrator::builder()
            .agents_for_test([triage.boxed(), Arc::new(expert), desk.boxed()])
            .store(store)
            .workflow(workflow())
            .build()
            .unwrap()
    };
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let rt = runtime();
    let id = rt.block_on(async {
        let orch = build(store.clone());
        let exec = orch
            .run(&orch.workflow("desk").unwrap(), json!("q"))
            .await
            .unwrap();
        // Until the expert runs (hop 1 started): the triage hop is journaled.
        loop {
            let started = runs.lock().unwrap().get("expert").copied().unwrap_or(0) == 1;
            let events = store.load(exec.id(), 0).await.unwrap_or_default();
            let tree = CallTree::from_events(&events);
            if started && tree.get("desk/h1").is_some() {
                break exec.id().clone();
            }
            tokio::task::yield_now().await;
        }
    });
    drop(rt);
    stall.store(false, Ordering::SeqCst);
    let view = runtime().block_on(async {
        let orch = build(store.clone());
        orch.resume(&id).await.unwrap().wait().await.unwrap()
    });
    assert_eq!(view.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        view.output("desk").unwrap()["answer"],
        json!("answered after 1 turn")
    );
    let runs = runs.lock().unwrap();
    assert_eq!(
        runs.get("triage"),
        Some(&1),
        "the ended hop was replayed, not run"
    );
    assert_eq!(runs.get("expert"), Some(&2), "the hop in flight ran again");
}

#[tokio::test]
async fn a_json_step_runs_the_handoff_pattern_with_an_agent_gate() {
    let strict = Arc::new(AtomicBool::new(true));
    let reviewer = {
        let strict = strict.clone();
        agent_fn("reviewer", move |input: Value, _| {
            // Fails the first answer it sees, then passes.
            let fail = strict.swap(false, Ordering::SeqCst);
            async move {
                Ok(match fail {
                    true => {
                        json!({"pass": false, "reason": format!("{} is too short", input["reply"])})
                    }
                    false => json!({"pass": true}),
                })
            }
        })
    };
    let writer = agent("writer", |input| match input.feedback {
        None => Turn::done(json!("ok")),
        Some(_) => Turn::done(json!("ok, and here is why")),
    });
    let orch = Orchestrator::builder()
        .agents_for_test([writer.boxed(), Arc::new(reviewer)])
        .build()
        .unwrap();
    let def = WorkflowDef::from_json(
        r#"{"name": "desk", "steps": [{"id": "desk", "pattern": "handoff",
            "params": {"start": "writer", "gates": [{"agent": "reviewer"}], "max_hops": 3}}]}"#,
    )
    .unwrap();
    let exec = orch
        .run(&orch.bind(&def).unwrap(), json!("q"))
        .await
        .unwrap();
    let id = exec.id().clone();
    let out = exec.wait().await.unwrap().output("desk").cloned().unwrap();
    assert_eq!(out["answer"], json!("ok, and here is why"));
    assert_eq!(out["history"][0]["rejected"], json!("\"ok\" is too short"));
    let events = orch.store().load(&id, 0).await.unwrap();
    let tree = CallTree::from_events(&events);
    assert!(tree
        .get("desk/h0.g0")
        .is_some_and(|c| &*c.agent == "reviewer"));

    let bad = |params: Value| {
        let mut def = def.clone();
        def.steps[0].params = Some(params);
        match orch.bind(&def).unwrap_err() {
            Error::PatternParams { error, .. } => error.param,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(bad(json!({"start": "nobody"})), "start");
    assert_eq!(
        bad(json!({"start": "writer", "gates": [{"agent": "ghost"}]})),
        "gates[0].agent"
    );
    assert_eq!(
        bad(json!({"start": "writer", "gates": [{"agent": "reviewer", "after": ["ghost"]}]})),
        "gates[0].after"
    );
    assert_eq!(bad(json!({"start": "writer", "max_hops": 0})), "max_hops");
    assert_eq!(
        bad(json!({"start": "writer", "gates": [{"agent": "reviewer", "on_fail": "panic"}]})),
        "gates[0].on_fail"
    );
}

/// Registers shared agents.
trait BuilderExt {
    fn agents_for_test(self, agents: impl IntoIterator<Item = Arc<dyn Agent>>) -> Self;
}

impl BuilderExt for orchestrate_core::OrchestratorBuilder {
    fn agents_for_test(self, agents: impl IntoIterator<Item = Arc<dyn Agent>>) -> Self {
        agents.into_iter().fold(self, |b, a| b.agent_arc(a))
    }
}

trait Boxed {
    fn boxed(self) -> Arc<dyn Agent>;
}

impl<A: Agent> Boxed for A {
    fn boxed(self) -> Arc<dyn Agent> {
        Arc::new(self)
    }
}
