//! The checked-in JSON Schema of the workflow format is the one the types
//! derive, and the shipped workflows follow it.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_checked_in_schema_is_the_derived_one() {
    let checked_in = json(&root().join("schema/workflow.schema.json"));
    assert!(
        checked_in == orchestrate_graph::workflow_schema(),
        "schema/workflow.schema.json is stale: regenerate it with \
         `cargo run -p orchestrate-cli -- schema > schema/workflow.schema.json`"
    );
}

#[test]
fn the_shipped_workflows_follow_the_schema_and_a_broken_one_does_not() {
    let schema = json(&root().join("schema/workflow.schema.json"));
    let validator = jsonschema::validator_for(&schema).unwrap();
    let shipped = [
        root().join("orchestrate-cli/workflows/hello.json"),
        root().join("orchestrate-cli/template/workflows/hello.json"),
        root().join("examples/workflows/hello.json"),
    ];
    for file in shipped {
        let workflow = json(&file);
        let errors: Vec<String> = validator
            .iter_errors(&workflow)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
    let broken =
        serde_json::json!({"name": "x", "steps": [{"id": "a b", "agent": "echo", "retries": 2}]});
    let errors: Vec<String> = validator
        .iter_errors(&broken)
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors.len(), 2, "a bad id and an unknown field: {errors:?}");
}

#[test]
fn orchestrate_schema_prints_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orchestrate"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, orchestrate_graph::workflow_schema());
}
