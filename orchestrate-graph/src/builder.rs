//! The Rust builder for [`WorkflowDef`].

use serde_json::Value;

use crate::def::{StepDef, WorkflowDef};

/// Builds a [`WorkflowDef`] in Rust; the result equals the same workflow
/// parsed from JSON.
///
/// # Examples
///
/// ```
/// use orchestrate_graph::{StepDef, WorkflowDef};
/// use serde_json::json;
///
/// let built = WorkflowDef::builder("w")
///     .version("2")
///     .step(StepDef::new("a", "echo").input(json!({"q": "${input.q}"})))
///     .build();
/// let parsed = WorkflowDef::from_json(r#"{"name": "w", "version": "2",
///     "steps": [{"id": "a", "agent": "echo", "input": {"q": "${input.q}"}}]}"#).unwrap();
/// assert_eq!(built, parsed);
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct WorkflowBuilder {
    def: WorkflowDef,
}

impl WorkflowBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            def: WorkflowDef {
                name: name.into(),
                version: "1".to_owned(),
                metadata: Default::default(),
                steps: Vec::new(),
            },
        }
    }

    /// Sets the version (default `"1"`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.def.version = version.into();
        self
    }

    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: Value) -> Self {
        self.def.metadata.insert(key.into(), value);
        self
    }

    /// Appends a step.
    pub fn step(mut self, step: StepDef) -> Self {
        self.def.steps.push(step);
        self
    }

    /// Appends several steps.
    pub fn steps(mut self, steps: impl IntoIterator<Item = StepDef>) -> Self {
        self.def.steps.extend(steps);
        self
    }

    /// Returns the definition. Validation happens when it is planned.
    pub fn build(self) -> WorkflowDef {
        self.def
    }
}
