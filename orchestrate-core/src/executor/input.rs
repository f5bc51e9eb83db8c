//! A step's input, given to each attempt without a copy kept for retries.

use std::sync::Arc;

use orchestrate_graph::template::{EvalError, Scope};
use serde_json::Value;
use smallvec::SmallVec;

use super::StepState;
use crate::workflow::Bound;

/// The outputs a step's template reads, by plan index.
type ReadOutputs = SmallVec<[(usize, Arc<Value>); 2]>;

/// The input of one step's attempts.
///
/// The first attempt takes the evaluated input itself. A later one, rare,
/// evaluates the step's template again from what it read, which cannot
/// have changed: the execution's input (held by the step's context) and
/// the outputs of finished steps, held here by reference count. Keeping a
/// copy of the input instead would cost a deep clone of it for every step
/// whose policy allows a retry.
pub(crate) struct StepInput {
    first: Option<Value>,
    /// The outputs the template reads, for an attempt after the first.
    again: Option<ReadOutputs>,
}

/// What evaluating a step's template again reads.
struct Reevaluate<'a> {
    input: &'a Value,
    outputs: &'a [(usize, Arc<Value>)],
}

impl Scope for Reevaluate<'_> {
    fn input(&self) -> &Value {
        self.input
    }
    fn step_output(&self, index: usize) -> Option<&Value> {
        self.outputs
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, v)| &**v)
    }
}

impl StepInput {
    /// An input for a step with a single attempt.
    pub(crate) fn once(input: Value) -> Self {
        Self {
            first: Some(input),
            again: None,
        }
    }

    /// An input for step `step` of `wf`, which may be attempted again:
    /// `steps` holds the finished steps' outputs by plan index.
    pub(super) fn retryable(input: Value, wf: &Bound, step: usize, steps: &[StepState]) -> Self {
        let refs = wf.plan.steps()[step].input_refs();
        let outputs = refs
            .iter()
            .filter_map(|&i| Some((i, steps.get(i)?.output.clone()?)))
            .collect();
        Self {
            first: Some(input),
            again: Some(outputs),
        }
    }

    /// The input of the next attempt of step `step` of `wf`, in an
    /// execution whose input is `execution_input`.
    pub(crate) fn next_attempt(
        &mut self,
        wf: &Bound,
        step: usize,
        execution_input: &Value,
    ) -> Result<Value, EvalError> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        match &self.again {
            Some(outputs) => {
                let scope = Reevaluate {
                    input: execution_input,
                    outputs,
                };
                wf.plan.steps()[step]
                    .input()
                    .evaluate(wf.plan.id(step), &scope)
            }
            // A single attempt: never asked twice.
            None => Ok(Value::Null),
        }
    }
}
