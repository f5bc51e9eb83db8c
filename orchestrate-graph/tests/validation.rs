//! Validation reports every problem at once, each naming its step.

use orchestrate_graph::{Plan, Problem, StepDef, WorkflowDef};
use serde_json::json;

fn problems(def: &WorkflowDef) -> Vec<Problem> {
    Plan::new(def).unwrap_err().problems().to_vec()
}

#[test]
fn every_problem_is_reported_at_once() {
    let def = WorkflowDef::builder("broken")
        .step(StepDef::new("a", "x"))
        .step(StepDef::new("a", "x").depends_on(["b"]))
        .step(StepDef::new("b", "x").depends_on(["a", "ghost"]))
        .step(StepDef::new("lonely", "x"))
        .step(
            StepDef::new("c", "x")
                .depends_on(["a"])
                .input(json!({"q": "${steps.b.output.v}", "bad": "${wat}"})),
        )
        .build();
    let found = problems(&def);
    let expected = [
        Problem::DuplicateId { step: "a".into() },
        Problem::UnknownDependency {
            step: "b".into(),
            dependency: "ghost".into(),
        },
        Problem::NotUpstream {
            step: "c".into(),
            referenced: "b".into(),
            expr: "steps.b.output.v".into(),
        },
    ];
    for p in &expected {
        assert!(found.contains(p), "missing {p:?} in {found:#?}");
    }
    assert!(found.iter().any(|p| matches!(
        p,
        Problem::MalformedInterpolation { step, field: "input", location, .. }
            if step == "c" && location == "/bad"
    )));
}

#[test]
fn cycles_are_reported_with_their_path() {
    let def = WorkflowDef::builder("loop")
        .step(StepDef::new("start", "x"))
        .step(StepDef::new("a", "x").depends_on(["start", "c"]))
        .step(StepDef::new("b", "x").depends_on(["a"]))
        .step(StepDef::new("c", "x").depends_on(["b"]))
        .build();
    let found = problems(&def);
    let cycle = found
        .iter()
        .find_map(|p| match p {
            Problem::Cycle { path } => Some(path.clone()),
            _ => None,
        })
        .expect("a cycle");
    assert_eq!(cycle, ["a", "b", "c", "a"]);
    assert_eq!(
        Problem::Cycle { path: cycle }.to_string(),
        "cycle: a -> b -> c -> a"
    );
}

#[test]
fn steps_downstream_of_a_cycle_are_unreachable() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("entry", "x"))
        .step(StepDef::new("a", "x").depends_on(["entry", "b"]))
        .step(StepDef::new("b", "x").depends_on(["a"]))
        .step(StepDef::new("stuck", "x").depends_on(["b"]))
        .step(StepDef::new("fine", "x").depends_on(["entry"]))
        .build();
    let found = problems(&def);
    assert!(
        found.contains(&Problem::Unreachable {
            step: "stuck".into()
        }),
        "{found:?}"
    );
    assert!(!found
        .iter()
        .any(|p| matches!(p, Problem::Unreachable { step } if step != "stuck")));
}

#[test]
fn independent_steps_are_valid() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "x"))
        .step(StepDef::new("b", "x"))
        .build();
    assert_eq!(Plan::new(&def).unwrap().generations(), &[vec![0, 1]]);
}

#[test]
fn self_dependency_is_a_cycle_and_no_entry_is_reported() {
    let def = WorkflowDef::builder("selfish")
        .step(StepDef::new("a", "x").depends_on(["a"]))
        .build();
    let found = problems(&def);
    assert!(found.contains(&Problem::NoEntry), "{found:?}");
    assert!(found.contains(&Problem::Cycle {
        path: vec!["a".into(), "a".into()]
    }));
}

#[test]
fn unknown_references_and_malformed_conditions_name_the_step() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "x"))
        .step(
            StepDef::new("b", "x")
                .depends_on(["a"])
                .input(json!("${steps.nobody.output}"))
                .condition("${steps.a.output.ok} === true"),
        )
        .build();
    let found = problems(&def);
    assert!(found.contains(&Problem::UnknownReference {
        step: "b".into(),
        referenced: "nobody".into(),
        expr: "steps.nobody.output".into()
    }));
    assert!(found.iter().any(|p| matches!(
        p,
        Problem::MalformedInterpolation { step, field: "condition", .. } if step == "b"
    )));
}

#[test]
fn ids_agents_costs_and_emptiness_are_checked() {
    assert_eq!(
        problems(&WorkflowDef::builder("empty").build()),
        vec![Problem::Empty]
    );
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("has space", "x"))
        .step(StepDef::new("b", " ").depends_on(["has space"]).cost(-1.0))
        .build();
    let found = problems(&def);
    assert!(found.contains(&Problem::InvalidId {
        step: "has space".into()
    }));
    assert!(found.contains(&Problem::MissingAgent { step: "b".into() }));
    assert!(found.contains(&Problem::InvalidCost { step: "b".into() }));
}

#[test]
fn transitive_upstream_references_are_allowed() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "x"))
        .step(StepDef::new("b", "x").depends_on(["a"]))
        .step(
            StepDef::new("c", "x")
                .depends_on(["b"])
                .input(json!("${steps.a.output}")),
        )
        .build();
    let plan = Plan::new(&def).unwrap();
    assert_eq!(plan.order(), &[0, 1, 2]);
}

#[test]
fn error_display_lists_every_problem() {
    let def = WorkflowDef::builder("w")
        .step(StepDef::new("a", "x").depends_on(["p", "q"]))
        .build();
    let text = Plan::new(&def).unwrap_err().to_string();
    assert!(
        text.starts_with("workflow `w` is invalid (2 problems)"),
        "{text}"
    );
    assert!(text.contains("unknown step `p`") && text.contains("unknown step `q`"));
}

#[test]
fn graph_problems_come_first_then_each_steps_template_problems_in_document_order() {
    let def = WorkflowDef::builder("ordered")
        .step(StepDef::new("a", "x").input(json!({"q": "${nope"})))
        .step(StepDef::new("b", "x").depends_on(["a", "ghost"]))
        .step(
            StepDef::new("c", "x")
                .depends_on(["a"])
                .input(json!({"x": "${steps.b.output.v}", "y": "${steps.zz.output}"}))
                .condition("${steps.a.output.ok} == true"),
        )
        .build();
    let found = problems(&def);
    assert!(
        matches!(
            &found[..],
            [
                Problem::UnknownDependency { step: b, .. },
                Problem::MalformedInterpolation { step: a, field: "input", .. },
                Problem::NotUpstream { step: c1, referenced, .. },
                Problem::UnknownReference { step: c2, referenced: zz, .. },
            ] if b == "b" && a == "a" && c1 == "c" && referenced == "b" && c2 == "c" && zz == "zz"
        ),
        "{found:#?}"
    );
}

#[test]
fn a_step_runs_an_agent_or_a_pattern_and_params_go_with_a_pattern() {
    let def = WorkflowDef::from_json(
        r#"{"name": "w", "steps": [
            {"id": "pool", "pattern": "supervisor", "params": {"workers": ["a"]}},
            {"id": "both", "agent": "x", "pattern": "supervisor"},
            {"id": "stray", "agent": "x", "params": {"limit": 1}},
            {"id": "none"},
            {"id": "bare", "pattern": "supervisor"}
        ]}"#,
    )
    .unwrap();
    let found = Plan::new(&def).unwrap_err().problems().to_vec();
    assert_eq!(
        found,
        [
            Problem::AgentAndPattern {
                step: "both".into()
            },
            Problem::ParamsWithoutPattern {
                step: "stray".into()
            },
            Problem::MissingAgent {
                step: "none".into()
            },
        ]
    );
    let ok = WorkflowDef::builder("w")
        .step(StepDef::pattern(
            "pool",
            "supervisor",
            serde_json::json!({"workers": ["a"]}),
        ))
        .step(StepDef::pattern("bare", "supervisor", serde_json::Value::Null).depends_on(["pool"]))
        .build();
    let plan = Plan::new(&ok).unwrap();
    assert_eq!(&**plan.agent_of(0), "supervisor");
    assert_eq!(
        plan.steps()[0].pattern_params(),
        Some(&serde_json::json!({"workers": ["a"]}))
    );
    assert_eq!(
        plan.steps()[1].pattern_params(),
        Some(&serde_json::Value::Null)
    );
    // A definition round-trips through JSON with its pattern.
    assert_eq!(WorkflowDef::from_json(&ok.to_json()).unwrap(), ok);
}
