//! The serialisable description of a workflow: what the user writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::builder::WorkflowBuilder;

/// A workflow as written by a user, in Rust or JSON.
///
/// A definition is plain data: nothing is checked until it is planned with
/// [`Plan::new`](crate::Plan::new), which reports every problem at once.
///
/// # Examples
///
/// ```
/// use orchestrate_graph::WorkflowDef;
///
/// let def: WorkflowDef = serde_json::from_str(r#"{
///     "name": "greet",
///     "steps": [
///         {"id": "hello", "agent": "greeter", "input": {"name": "${input.name}"}},
///         {"id": "shout", "agent": "upper", "depends_on": ["hello"],
///          "input": "${steps.hello.output.text}"}
///     ]
/// }"#).unwrap();
/// assert_eq!(def.steps.len(), 2);
/// assert_eq!(def.version, "1");
/// ```
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// Name of the workflow, used in logs, spans and renderings.
    pub name: String,
    /// Version of the definition; `"1"` when omitted.
    #[serde(default = "default_version")]
    pub version: String,
    /// Free-form metadata carried along with the workflow.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Value>,
    /// The steps, in any order: dependencies decide the order of execution.
    pub steps: Vec<StepDef>,
}

fn default_version() -> String {
    "1".to_owned()
}

impl WorkflowDef {
    /// Starts a Rust builder for a workflow named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use orchestrate_graph::{StepDef, WorkflowDef};
    ///
    /// let def = WorkflowDef::builder("greet")
    ///     .step(StepDef::new("hello", "greeter"))
    ///     .step(StepDef::new("shout", "upper").depends_on(["hello"]))
    ///     .build();
    /// assert_eq!(def.steps[1].depends_on, vec!["hello".to_owned()]);
    /// ```
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder::new(name)
    }

    /// Parses a definition from JSON text.
    ///
    /// # Errors
    ///
    /// Returns the `serde_json` error, which names the line and column of the
    /// first syntax or shape problem.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Serialises the definition as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// One step of a workflow: which agent runs, on what input, after what.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Identifier, unique in the workflow; letters, digits, `_` and `-`.
    /// Shared: a plan of this definition, and the events of its
    /// executions, hold this very string.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "String", regex(pattern = r"^[A-Za-z0-9_-]+$"))
    )]
    pub id: Arc<str>,
    /// Name of the agent that runs this step; empty for a step that
    /// runs a [`pattern`](Self::pattern) instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent: String,
    /// Name of the pattern (registered with the orchestrator) whose agent
    /// runs this step, made from [`params`](Self::params), instead of an
    /// `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The pattern's parameters, which the pattern checks when the
    /// workflow is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Input template: any JSON value whose strings may interpolate
    /// `${input.<path>}` and `${steps.<id>.output.<path>}`, with an optional
    /// `?? <json>` default. `null` when omitted.
    #[serde(default)]
    pub input: Value,
    /// Steps that must complete before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Optional condition such as `${steps.check.output.ok} == true`; when it
    /// is false the step and everything downstream of it is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Per-step resilience and failure handling.
    #[serde(default, skip_serializing_if = "StepPolicy::is_default")]
    pub policy: StepPolicy,
    /// Estimated cost (any unit, e.g. seconds) used for the critical path;
    /// `1.0` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl StepDef {
    /// A step `id` run by `agent`, with a `null` input and no dependencies.
    pub fn new(id: impl Into<Arc<str>>, agent: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            agent: agent.into(),
            pattern: None,
            params: None,
            input: Value::Null,
            depends_on: Vec::new(),
            condition: None,
            policy: StepPolicy::default(),
            cost: None,
        }
    }

    /// A step `id` run by the agent that pattern `pattern` makes from
    /// `params`, with a `null` input and no dependencies.
    ///
    /// ```
    /// use orchestrate_graph::StepDef;
    /// use serde_json::json;
    ///
    /// let step = StepDef::pattern("pool", "supervisor", json!({"workers": ["a", "b"]}));
    /// let json = serde_json::to_value(&step).unwrap();
    /// assert_eq!(json, json!({"id": "pool", "pattern": "supervisor",
    ///                         "params": {"workers": ["a", "b"]}, "input": null}));
    /// ```
    pub fn pattern(id: impl Into<Arc<str>>, pattern: impl Into<String>, params: Value) -> Self {
        Self {
            pattern: Some(pattern.into()),
            // As JSON reads it: `"params": null` is no parameters.
            params: (!params.is_null()).then_some(params),
            ..Self::new(id, "")
        }
    }

    /// Sets the input template.
    pub fn input(mut self, input: Value) -> Self {
        self.input = input;
        self
    }

    /// Adds dependencies.
    pub fn depends_on<I, S>(mut self, deps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.depends_on.extend(deps.into_iter().map(Into::into));
        self
    }

    /// Sets the condition.
    pub fn condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = Some(timeout);
        self
    }

    /// Sets how many times a failed attempt is retried.
    pub fn retries(mut self, retries: u32) -> Self {
        self.policy.retries = Some(retries);
        self
    }

    /// Sets what happens when the step fails.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.policy.on_error = on_error;
        self
    }

    /// Sets the cost estimate used by the critical path.
    pub fn cost(mut self, cost: f64) -> Self {
        self.cost = Some(cost);
        self
    }
}

/// Per-step policy, kept as data; the orchestrator applies it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepPolicy {
    /// Timeout of one attempt (`timeout_ms` in JSON); the orchestrator's
    /// default when omitted.
    #[serde(
        default,
        rename = "timeout_ms",
        with = "duration_ms",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "Option<u64>"))]
    pub timeout: Option<Duration>,
    /// Retries after the first attempt; the orchestrator's default when
    /// omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// What a failure of this step does to the execution.
    #[serde(default, skip_serializing_if = "OnError::is_fail")]
    pub on_error: OnError,
}

impl StepPolicy {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What a step's failure does to the rest of the execution.
///
/// In JSON: `"fail"`, `"continue"` or `{"fallback": <value>}`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Cancel everything still running and fail the execution.
    #[default]
    Fail,
    /// Record the failure, skip the steps downstream of this one, and let
    /// independent branches finish.
    Continue,
    /// Use this value as the step's output, as if it had succeeded.
    Fallback(Value),
}

impl OnError {
    fn is_fail(&self) -> bool {
        matches!(self, OnError::Fail)
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_round_trips_through_json() {
        let step = StepDef::new("a", "x")
            .timeout(Duration::from_millis(1500))
            .retries(2)
            .on_error(OnError::Fallback(json!({"ok": false})));
        let text = serde_json::to_string(&step).unwrap();
        assert!(text.contains("\"timeout_ms\":1500"), "{text}");
        assert!(text.contains("{\"fallback\":{\"ok\":false}}"), "{text}");
        let back: StepDef = serde_json::from_str(&text).unwrap();
        assert_eq!(back, step);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<StepDef>(r#"{"id":"a","agent":"x","dependson":[]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("dependson"), "{err}");
    }

    #[test]
    fn on_error_accepts_its_three_json_forms() {
        let fail: OnError = serde_json::from_str("\"fail\"").unwrap();
        let cont: OnError = serde_json::from_str("\"continue\"").unwrap();
        let fb: OnError = serde_json::from_str("{\"fallback\": 3}").unwrap();
        assert_eq!(fail, OnError::Fail);
        assert_eq!(cont, OnError::Continue);
        assert_eq!(fb, OnError::Fallback(json!(3)));
    }
}
