//! Fuzzing with proptest: workflow definitions from arbitrary text and
//! templates from arbitrary strings never panic and never hang; every
//! failure is a typed error.
//!
//! A bounded number of cases runs with `cargo test`; set
//! `ORCHESTRATE_FUZZ_CASES` for more (e.g. `ORCHESTRATE_FUZZ_CASES=100000`).

use orchestrate_graph::template::{Scope, Template};
use orchestrate_graph::{Plan, WorkflowDef};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn config() -> ProptestConfig {
    let cases = std::env::var("ORCHESTRATE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    // A case that takes longer than this is a failure, not a slow pass.
    ProptestConfig {
        timeout: 10_000,
        ..ProptestConfig::with_cases(cases)
    }
}

/// Words a workflow is made of, so that generated documents get past the
/// JSON parser and into the definition's own checks.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_owned()),
        Just("steps".to_owned()),
        Just("id".to_owned()),
        Just("agent".to_owned()),
        Just("depends_on".to_owned()),
        Just("input".to_owned()),
        Just("when".to_owned()),
        Just("on_error".to_owned()),
        Just("policy".to_owned()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("${input.x}".to_owned()),
        Just("${steps.a.output.y ?? 1}".to_owned()),
        Just("${steps.b.output".to_owned()),
        Just("$${".to_owned()),
        "[a-z$.{}?\\[\\]0-9 ]{0,12}",
    ]
}

/// JSON values in the shape of workflows, of arbitrary depth.
fn workflowish() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A document, whole or damaged: cut short, or with a byte range replaced.
fn document() -> impl Strategy<Value = String> {
    (
        workflowish(),
        any::<prop::sample::Index>(),
        "[\\[\\]{}\",:a-z0-9$\\\\]{0,4}",
    )
        .prop_map(|(value, at, splice)| {
            let text = value.to_string();
            let cut = at.index(text.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            match cut % 3 {
                0 => text,
                1 => text[..cut].to_owned(),
                _ => format!("{}{splice}{}", &text[..cut], &text[cut..]),
            }
        })
}

/// Parses, and when it parses, plans and renders: every step of reading a
/// workflow file.
fn read_workflow(text: &str) {
    let Ok(def) = WorkflowDef::from_json(text) else {
        return;
    };
    match Plan::new(&def) {
        Ok(plan) => {
            let _ = (plan.to_text(), plan.to_mermaid(), plan.to_dot());
        }
        Err(errors) => {
            // Every problem names where it is.
            assert!(!errors.to_string().is_empty());
        }
    }
}

struct Empty;

impl Scope for Empty {
    fn input(&self) -> &Value {
        static INPUT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        INPUT.get_or_init(|| json!({"x": [1, {"y": "z"}], "s": "t"}))
    }

    fn step_output(&self, _index: usize) -> Option<&Value> {
        None
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn workflow_json_from_any_text(text in ".{0,400}") {
        read_workflow(&text);
    }

    #[test]
    fn workflow_json_from_damaged_documents(text in document()) {
        read_workflow(&text);
    }

    #[test]
    fn templates_from_any_string(text in ".{0,200}") {
        if let Ok(template) = Template::parse(&Value::String(text)) {
            let _ = template.evaluate("s", &Empty);
        }
    }

    #[test]
    fn templates_from_template_shaped_strings(
        parts in prop::collection::vec(
            prop_oneof![
                Just("${".to_owned()),
                Just("$${".to_owned()),
                Just("}".to_owned()),
                Just("input".to_owned()),
                Just(".x".to_owned()),
                Just("[1]".to_owned()),
                Just(" ?? ".to_owned()),
                Just("\"}\"".to_owned()),
                Just("{\"a\": [".to_owned()),
                Just("steps.a.output".to_owned()),
                "[a-z0-9.\\[\\]{}$?\"\\\\ ]{0,6}",
            ],
            0..16,
        ),
        nest in workflowish(),
    ) {
        let text: String = parts.concat();
        let value = json!({"in": [text.clone(), nest], "at": text});
        if let Ok(template) = Template::parse(&value) {
            let _ = template.evaluate("s", &Empty);
        }
    }
}
