//! Calls named by a key instead of their order, and decisions: their ids,
//! the keys refused, and what the journal and the call tree show.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use orchestrate_core::journal::{CallTree, EventKind};
use orchestrate_core::{agent_fn, CallOptions, Context, Error, Orchestrator};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};

fn single_step(agent: &str) -> WorkflowDef {
    WorkflowDef::builder("w")
        .step(StepDef::new("s", agent).input(json!("${input}")))
        .build()
}

#[tokio::test]
async fn keyed_calls_take_their_key_as_id_and_bad_keys_are_refused_before_running() {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let orch = Orchestrator::builder()
        .agent(agent_fn("echo", move |input, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok(input) }
        }))
        .agent(agent_fn("caller", |_, ctx| async move {
            // Made in one order, keyed in another: ids follow the keys.
            let second = ctx.call_with("echo", json!(2), CallOptions::new().key("task-2"));
            let first = ctx.call_with("echo", json!(1), CallOptions::new().key("task-1"));
            let numbered = ctx.call("echo", json!(0));
            let outputs = (first.await?, second.await?, numbered.await?);
            let refused = |key: &str| {
                let ctx = ctx.clone();
                let key = key.to_owned();
                async move {
                    match ctx
                        .call_with("echo", json!(9), CallOptions::new().key(key))
                        .await
                    {
                        Err(Error::CallKey { call, reason }) => json!([call, reason]),
                        other => json!(format!("not refused: {other:?}")),
                    }
                }
            };
            Ok(json!({
                "outputs": [outputs.0, outputs.1, outputs.2],
                "twice": refused("task-1").await,
                "digits": refused("17").await,
                "slash": refused("a/b").await,
                "empty": refused("").await,
            }))
        }))
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&single_step("caller")).unwrap(), json!(null))
        .await
        .unwrap();
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    let out = view.output("s").unwrap();
    assert_eq!(out["outputs"], json!([1, 2, 0]));
    assert_eq!(
        out["twice"],
        json!(["s/task-1", "is taken twice in one attempt"])
    );
    assert_eq!(
        out["digits"],
        json!(["s/17", "is digits only, as numbered calls' ids are"])
    );
    assert_eq!(out["slash"][0], json!("s/a/b"));
    assert_eq!(out["empty"][0], json!("s/"));
    assert_eq!(runs.load(Ordering::SeqCst), 3, "a refused call never runs");

    let tree = CallTree::from_events(orch.store().load(&id, 0).await.unwrap());
    // In the order they started (awaited), each under its key.
    let ids: Vec<(&str, &str)> = tree.calls().iter().map(|c| (&*c.id, &*c.agent)).collect();
    assert_eq!(
        ids,
        [("s/task-1", "echo"), ("s/task-2", "echo"), ("s/0", "echo")]
    );
}

#[tokio::test]
async fn decisions_are_journaled_with_their_maker_and_shown_in_the_tree() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("echo", |input, _| async move { Ok(input) }))
        .agent(agent_fn("router", |input: Value, ctx| async move {
            let target: String = ctx.decide("route", "q", || "echo".to_owned())?;
            let child = ctx.call(&target, input).await?;
            Ok(json!({"via": target, "child": child}))
        }))
        .agent(agent_fn("top", |input, ctx| async move {
            let picked: u32 = ctx.decide("pick", "first", || 7)?;
            let bad_kind = ctx.decide("a:b", "k", || 1).unwrap_err();
            // JSON has no map keyed by pairs: the choice is not journaled.
            let unwritable = ctx
                .decide("pairs", "k", || std::collections::HashMap::from([((1, 2), 3)]))
                .unwrap_err();
            let routed = ctx.call("router", input).await?;
            Ok(json!({"picked": picked, "routed": routed, "bad": bad_kind.code(), "unwritable": unwritable.code()}))
        }))
        .build()
        .unwrap();
    let exec = orch
        .run(&orch.bind(&single_step("top")).unwrap(), json!("hi"))
        .await
        .unwrap();
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    assert_eq!(
        view.output("s"),
        Some(
            &json!({"picked": 7, "routed": {"via": "echo", "child": "hi"}, "bad": "call_key", "unwritable": "decision"})
        )
    );
    let events = orch.store().load(&id, 0).await.unwrap();
    let decisions: Vec<(String, String, String, Value)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Decision(d) => Some((
                d.id.to_string(),
                d.by.to_string(),
                d.kind.to_string(),
                d.value.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("s/pick:first".into(), "s".into(), "pick".into(), json!(7)),
            (
                "s/0/route:q".into(),
                "s/0".into(),
                "route".into(),
                json!("echo")
            ),
        ]
    );
    let tree = CallTree::from_events(&events);
    assert_eq!(tree.decisions_by("s/0").count(), 1);
    let text = tree.to_text();
    assert_eq!(
        text.lines()
            .map(|l| l.split(" [").next().unwrap_or(l))
            .collect::<Vec<_>>(),
        [
            "◆ pick first = 7",
            "s/0 → router",
            "  ◆ route q = \"echo\"",
            "  s/0/0 → echo",
        ],
        "{text}"
    );
}

#[test]
fn outside_an_execution_a_decision_is_made_and_not_journaled() {
    let ctx = Context::detached("s");
    let made: Result<u8, _> = ctx.decide("pick", "x", || 3);
    assert_eq!(made.unwrap(), 3);
}
