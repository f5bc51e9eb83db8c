//! Hierarchical teams: a 5-level tree where an escalation from a leaf is
//! resolved at level 2; authority violations refused before anything
//! runs; a branch overrunning its budget stopped while the others finish.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use orchestrate_core::journal::CallTree;
use orchestrate_core::pattern::hierarchy::{Authority, Hierarchy, HierarchyError, Node, Resolve};
use orchestrate_core::resilience::RetryConfig;
use orchestrate_core::{agent_fn, default_policy, AgentError, Error, Orchestrator, RunOptions};
use orchestrate_graph::{StepDef, WorkflowDef};
use serde_json::{json, Value};

fn workflow() -> WorkflowDef {
    WorkflowDef::builder("team")
        .step(StepDef::new("team", "team").input(json!("${input}")))
        .build()
}

/// Starts workflow [`workflow`] on `orch` with `input`.
async fn start(orch: &Orchestrator, input: Value) -> orchestrate_core::Execution {
    orch.run(&orch.bind(&workflow()).unwrap(), input)
        .await
        .unwrap()
}

/// A decomposer that hands its whole task to one child of `role`, or
/// splits a list task into one subtask per item.
fn to_role(name: &'static str, role: &'static str) -> impl orchestrate_core::Agent {
    agent_fn(name, move |task: Value, _| async move {
        Ok(match task {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|t| json!({"role": role, "task": t}))
                    .collect(),
            ),
            task => json!([{"role": role, "task": task}]),
        })
    })
}

fn source_of(error: &Error) -> Option<&HierarchyError> {
    std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|e| e.downcast_ref::<HierarchyError>())
}

fn five_levels(resolve_at_2: Vec<Resolve>) -> Hierarchy {
    Hierarchy::builder("team", "l1")
        .authority(
            Authority::new()
                .allow("director", ["head"])
                .allow("head", ["lead"])
                .allow("lead", ["manager"])
                .allow("manager", ["worker"]),
        )
        .node(Node::manager("l1", "director", "to-head").children(["l2"]))
        .node(
            Node::manager("l2", "head", "to-lead")
                .children(["l3-a", "l3-b"])
                .resolve(resolve_at_2),
        )
        .node(Node::manager("l3-a", "lead", "to-manager").children(["l4-a"]))
        .node(Node::manager("l3-b", "lead", "to-manager").children(["l4-b"]))
        .node(
            Node::manager("l4-a", "manager", "to-worker")
                .children(["l5-a"])
                .resolve([Resolve::Retry]),
        )
        .node(Node::manager("l4-b", "manager", "to-worker").children(["l5-b"]))
        .node(Node::leaf("l5-a", "worker", "unlucky"))
        .node(Node::leaf("l5-b", "worker", "lucky"))
        .build()
        .unwrap()
}

fn orchestrator(team: Hierarchy, unlucky_runs: Arc<AtomicU32>) -> Orchestrator {
    Orchestrator::builder()
        .agent(to_role("to-head", "head"))
        .agent(to_role("to-lead", "lead"))
        .agent(to_role("to-manager", "manager"))
        .agent(to_role("to-worker", "worker"))
        .agent(agent_fn("unlucky", move |_, _| {
            unlucky_runs.fetch_add(1, Ordering::SeqCst);
            async move { Err::<Value, _>(AgentError::permanent("cannot do it")) }
        }))
        .agent(agent_fn("lucky", |task: Value, _| async move {
            Ok(json!({"did": task}))
        }))
        .agent(team)
        .default_policy(default_policy().retry(RetryConfig::attempts(1)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_escalation_from_a_level_5_leaf_is_resolved_at_level_2() {
    let unlucky = Arc::new(AtomicU32::new(0));
    let orch = orchestrator(five_levels(vec![Resolve::Reassign]), unlucky.clone());
    let exec = start(&orch, json!("the job")).await;
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    // l1 ← l2 ← l3-b ← l4-b ← l5-b did it, after l3-a's branch escalated.
    assert_eq!(
        view.output("team"),
        Some(
            &json!({"results": [{"results": [{"results": [{"results": [{"did": "the job"}]}]}]}]})
        )
    );
    assert_eq!(
        unlucky.load(Ordering::SeqCst),
        2,
        "run, then retried once by l4-a"
    );

    let events = orch.store().load(&id, 0).await.unwrap();
    let tree = CallTree::from_events(&events);
    let escalations: Vec<(String, Value)> = tree
        .decisions()
        .iter()
        .filter(|d| &*d.kind == "escalation")
        .map(|d| {
            (
                tree.get(&d.by)
                    .map_or(d.by.to_string(), |c| c.agent.to_string()),
                d.value.clone(),
            )
        })
        .collect();
    let summary: Vec<(&str, &str, &str)> = escalations
        .iter()
        .map(|(by, v)| {
            (
                by.as_str(),
                v["from"].as_str().unwrap(),
                v["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("team::l4-a", "l5-a", "retry"),
            ("team::l4-a", "l5-a", "escalate"),
            ("team::l3-a", "l4-a", "escalate"),
            ("team::l2", "l3-a", "reassign"),
        ]
    );
    let l2_resolution = &escalations[3].1;
    assert_eq!(l2_resolution["to"], json!("l3-b"));
    assert!(l2_resolution["reason"]
        .as_str()
        .unwrap()
        .contains("cannot do it"));
    // l1 is the step; l2..l5 are calls at depths 1 to 4, the leaf's agent 5.
    let depth = |agent: &str| {
        tree.calls()
            .iter()
            .find(|c| &*c.agent == agent)
            .map(|c| c.depth)
    };
    assert_eq!(
        [
            "team::l2",
            "team::l3-a",
            "team::l4-b",
            "team::l5-b",
            "lucky"
        ]
        .map(depth),
        [Some(1), Some(2), Some(3), Some(4), Some(5)]
    );
}

#[tokio::test]
async fn an_escalation_nobody_resolves_fails_the_hierarchy_with_its_path() {
    let orch = orchestrator(five_levels(Vec::new()), Arc::default());
    let error = start(&orch, json!("the job")).await.await.unwrap_err();
    match source_of(&error) {
        Some(HierarchyError::Unresolved { path, reason, .. }) => {
            assert_eq!(path, &["l5-a", "l4-a", "l3-a", "l2", "l1"]);
            assert!(reason.contains("cannot do it"), "{reason}");
        }
        other => panic!("{other:?} from {error}"),
    }
}

#[test]
fn a_delegation_against_the_authority_rules_is_refused_when_built() {
    let error = Hierarchy::builder("team", "boss")
        .authority(Authority::new().allow("tactical", ["operational"]))
        .node(Node::manager("boss", "operational", "plan").children(["chief"]))
        .node(Node::leaf("chief", "strategic", "work"))
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        HierarchyError::Authority {
            parent: "boss".into(),
            from: "operational".into(),
            child: "chief".into(),
            to: "strategic".into(),
        }
    );
    let shapes = [
        Hierarchy::builder("t", "ghost")
            .node(Node::leaf("a", "r", "w"))
            .build(),
        Hierarchy::builder("t", "a")
            .node(Node::manager("a", "r", "p"))
            .build(),
        Hierarchy::builder("t", "a")
            .node(Node::manager("a", "r", "p").children(["b"]))
            .node(Node::leaf("b", "r", "w"))
            .node(Node::leaf("c", "r", "w"))
            .build(),
        Hierarchy::builder("t", "a")
            .node(Node::manager("a", "r", "p").children(["b"]).budget(10))
            .node(Node::leaf("b", "r", "w"))
            .build(),
    ];
    let reasons: Vec<String> = shapes
        .into_iter()
        .map(|s| s.unwrap_err().to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "node `ghost`: the root is not a node",
            "node `a`: a manager needs children",
            "node `c`: the root does not reach it",
            "node `a`: the root is not delegated to: it spends its step's or call's budget \
             (RunOptions::budget, CallOptions::budget), not one of its own",
        ]
    );
}

#[tokio::test]
async fn an_authority_violation_in_json_names_the_node_before_anything_runs() {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let orch = Orchestrator::builder()
        .agent(to_role("plan", "strategic"))
        .agent(agent_fn("work", move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!(1)) }
        }))
        .build()
        .unwrap();
    let def = WorkflowDef::from_json(
        r#"{"name": "team", "steps": [{"id": "team", "pattern": "hierarchy", "params": {
            "root": "boss",
            "authority": {"tactical": ["operational"]},
            "nodes": [
                {"name": "boss", "role": "tactical", "decomposer": "plan", "children": ["chief"]},
                {"name": "chief", "role": "strategic", "agent": "work"}
            ]}}]}"#,
    )
    .unwrap();
    match orch.bind(&def).unwrap_err() {
        Error::PatternParams { error, .. } => {
            assert_eq!(error.param, "nodes[0].children");
            assert!(
                error.reason.contains("may not delegate"),
                "{}",
                error.reason
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // Allowed, it runs.
    let text = def
        .to_json()
        .replace(r#""tactical": ["#, r#""tactical": ["strategic", "#);
    let ok = WorkflowDef::from_json(&text).unwrap();
    let view = orch
        .run(&orch.bind(&ok).unwrap(), json!("x"))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(view.output("team"), Some(&json!({"results": [1]})));
}

#[tokio::test]
async fn a_branch_that_overruns_its_budget_is_stopped_while_the_others_finish() {
    let orch = Orchestrator::builder()
        .agent(to_role("split", "analyst"))
        .agent(agent_fn("analyse", |task: Value, ctx| async move {
            // Each token of work costs 10.
            let cost = task.as_u64().unwrap_or(0) * 10;
            ctx.consume(cost)?;
            Ok(json!({"cost": cost}))
        }))
        .agent(
            Hierarchy::builder("team", "lead")
                .node(Node::manager("lead", "lead", "split").children(["a", "b", "c"]))
                .node(Node::leaf("a", "analyst", "analyse").budget(100))
                .node(Node::leaf("b", "analyst", "analyse").budget(100))
                .node(Node::leaf("c", "analyst", "analyse").budget(100))
                .build()
                .unwrap(),
        )
        .default_policy(default_policy().retry(RetryConfig::attempts(1)))
        .build()
        .unwrap();
    let exec = orch
        .run_with(
            &orch.bind(&workflow()).unwrap(),
            json!([3, 50, 7]),
            RunOptions::default().budget(1_000, "tokens"),
        )
        .await
        .unwrap();
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    let results = &view.output("team").unwrap()["results"];
    assert_eq!(results[0], json!({"cost": 30}));
    assert_eq!(results[2], json!({"cost": 70}));
    assert_eq!(results[1]["$stopped"]["node"], json!("b"));
    assert!(
        results[1]["$stopped"]["reason"]
            .as_str()
            .unwrap()
            .contains("budget"),
        "{results}"
    );
    // What the others consumed is all the execution spent.
    let events = orch.store().load(&id, 0).await.unwrap();
    let tree = CallTree::from_events(&events);
    let root = tree.budget(orchestrate_core::budget::ROOT).unwrap();
    assert_eq!(root.consumed, 100);
    assert_eq!(root.held, 0);
}

#[tokio::test]
async fn a_leaf_below_the_confidence_threshold_escalates() {
    let orch = Orchestrator::builder()
        .agent(to_role("split", "guesser"))
        .agent(agent_fn("unsure", |_, _| async move {
            Ok(json!({"answer": 1, "confidence": 0.2}))
        }))
        .agent(agent_fn("sure", |_, _| async move {
            Ok(json!({"answer": 2, "confidence": 0.9}))
        }))
        .agent(
            Hierarchy::builder("team", "lead")
                .confidence(0.5)
                .node(
                    Node::manager("lead", "lead", "split")
                        .children(["first", "second"])
                        .resolve([Resolve::Reassign]),
                )
                .node(Node::leaf("first", "guesser", "unsure"))
                .node(Node::leaf("second", "guesser", "sure"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let view = start(&orch, json!("q")).await.wait().await.unwrap();
    assert_eq!(
        view.output("team"),
        Some(&json!({"results": [{"answer": 2, "confidence": 0.9}]}))
    );
}

/// The nodes each `delegate` decision of `events` chose, by subtask.
fn delegations(events: &[orchestrate_core::journal::Event]) -> Vec<(String, Value)> {
    CallTree::from_events(events)
        .decisions()
        .iter()
        .filter(|d| &*d.kind == "delegate")
        .map(|d| (d.id.rsplit(':').next().unwrap().to_owned(), d.value.clone()))
        .collect()
}

#[tokio::test]
async fn children_of_a_role_take_that_roles_subtasks_in_turn() {
    let orch = Orchestrator::builder()
        .agent(agent_fn("mixed", |_, _| async move {
            Ok(json!([
                {"role": "y", "task": 0},
                {"role": "x", "task": 1},
                {"role": "y", "task": 2},
                {"role": "x", "task": 3},
            ]))
        }))
        .agent(agent_fn("work", |task: Value, _| async move { Ok(task) }))
        .agent(
            Hierarchy::builder("team", "lead")
                .node(Node::manager("lead", "lead", "mixed").children(["x1", "x2", "y1"]))
                .node(Node::leaf("x1", "x", "work"))
                .node(Node::leaf("x2", "x", "work"))
                .node(Node::leaf("y1", "y", "work"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let exec = start(&orch, json!(null)).await;
    let id = exec.id().clone();
    let view = exec.wait().await.unwrap();
    assert_eq!(view.output("team"), Some(&json!({"results": [0, 1, 2, 3]})));
    let events = orch.store().load(&id, 0).await.unwrap();
    let mut chosen = delegations(&events);
    chosen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        chosen,
        [
            ("s0".to_owned(), json!("y1")),
            ("s1".to_owned(), json!("x1")),
            ("s2".to_owned(), json!("y1")),
            ("s3".to_owned(), json!("x2")),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_named_like_its_agent_does_not_take_that_agents_concurrency() {
    // Node `work` runs agent `work`, allowed one call at a time: were the
    // node's call counted as the agent's, it would wait for itself.
    let orch = Orchestrator::builder()
        .agent(to_role("split", "doer"))
        .agent(agent_fn("work", |task: Value, _| async move { Ok(task) }))
        .agent_concurrency("work", 1)
        .agent(
            Hierarchy::builder("team", "lead")
                .node(Node::manager("lead", "lead", "split").children(["work"]))
                .node(Node::leaf("work", "doer", "work"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let run = async { start(&orch, json!([1, 2])).await.wait().await.unwrap() };
    let view = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the hierarchy waited for itself");
    assert_eq!(view.output("team"), Some(&json!({"results": [1, 2]})));
}

#[tokio::test]
async fn a_recorded_delegation_to_a_node_that_is_gone_is_a_typed_error_on_resume() {
    use orchestrate_core::journal::EventKind;
    use orchestrate_core::store::{MemoryStore, Store};
    let team = |leaf: &'static str| {
        Hierarchy::builder("team", "lead")
            .node(Node::manager("lead", "lead", "split").children([leaf]))
            .node(Node::leaf(leaf, "doer", "work"))
            .build()
            .unwrap()
    };
    let orchestrator = |leaf: &'static str, store: Option<Arc<MemoryStore>>| {
        let mut builder = Orchestrator::builder()
            .agent(to_role("split", "doer"))
            .agent(agent_fn("work", |task: Value, _| async move { Ok(task) }))
            .agent(team(leaf))
            .workflow(workflow());
        if let Some(store) = store {
            builder = builder.store(store);
        }
        builder.build().unwrap()
    };
    let first = orchestrator("old", None);
    let exec = first
        .run(&first.workflow("team").unwrap(), json!("job"))
        .await
        .unwrap();
    let id = exec.id().clone();
    exec.wait().await.unwrap();
    // The journal as a crash would leave it just before the step ended.
    let events = first.store().load(&id, 0).await.unwrap();
    assert_eq!(delegations(&events), [("s0".to_owned(), json!("old"))]);
    let unfinished: Vec<_> = events
        .into_iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::StepSucceeded { .. } | EventKind::ExecutionFinished { .. }
            )
        })
        .enumerate()
        .map(|(seq, mut e)| {
            e.seq = seq as u64;
            e
        })
        .collect();
    let store = Arc::new(MemoryStore::new());
    store.append(&id, &unfinished).await.unwrap();

    // The leaf is renamed: the recorded delegation names no node now.
    let error = orchestrator("new", Some(store))
        .resume(&id)
        .await
        .unwrap()
        .await
        .unwrap_err();
    match source_of(&error) {
        Some(HierarchyError::UnknownNode {
            manager,
            decision,
            node,
            role,
        }) => {
            assert_eq!(
                (manager.as_str(), *decision, node.as_str(), role.as_str()),
                ("lead", "delegate", "old", "doer")
            );
        }
        other => panic!("{other:?} from {error}"),
    }
}

#[tokio::test]
async fn a_manager_whose_decomposition_makes_no_sense_escalates_and_a_sibling_takes_over() {
    let orch = |resolve: Vec<Resolve>| {
        Orchestrator::builder()
            .agent(to_role("to-b", "b"))
            .agent(agent_fn("confused", |task: Value, _| async move {
                Ok(json!([{"role": "nope", "task": task}]))
            }))
            .agent(to_role("to-c", "c"))
            .agent(agent_fn("work", |task: Value, _| async move {
                Ok(json!({"did": task}))
            }))
            .agent(
                Hierarchy::builder("team", "top")
                    .node(
                        Node::manager("top", "a", "to-b")
                            .children(["mid-1", "mid-2"])
                            .resolve(resolve),
                    )
                    .node(Node::manager("mid-1", "b", "confused").children(["leaf"]))
                    .node(Node::manager("mid-2", "b", "to-c").children(["leaf-2"]))
                    .node(Node::leaf("leaf", "c", "work"))
                    .node(Node::leaf("leaf-2", "c", "work"))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let resolved = orch(vec![Resolve::Reassign]);
    let view = start(&resolved, json!("x")).await.wait().await.unwrap();
    assert_eq!(
        view.output("team"),
        Some(&json!({"results": [{"results": [{"did": "x"}]}]}))
    );

    let unresolved = orch(Vec::new());
    let error = start(&unresolved, json!("x")).await.await.unwrap_err();
    match source_of(&error) {
        Some(HierarchyError::Unresolved { path, reason, .. }) => {
            assert_eq!(path, &["mid-1", "top"]);
            assert!(
                reason.contains("no child of `mid-1` has role `nope`"),
                "{reason}"
            );
        }
        other => panic!("{other:?} from {error}"),
    }
}
