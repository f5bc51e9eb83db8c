//! A step's input, given to each attempt without a copy kept for retries.

use std::sync::Arc;

use orchestrate_graph::template::{EvalError, Scope};
use serde_json::Value;
use smallvec::SmallVec;

use crate::orchestrator::Bound;

/// The input of one step's attempts.
///
/// The first attempt takes the evaluated input itself. A later one, rare,
/// evaluates the step's template again from what it read, which cannot
/// have changed: the execution's input and the outputs of finished steps,
/// held by reference count. Keeping a copy of the input instead would cost
/// a deep clone of it for every step whose policy allows a retry.
pub(crate) struct StepInput {
    first: Option<Value>,
    again: Option<Reevaluate>,
}

/// What evaluating a step's template again needs.
struct Reevaluate {
    wf: Arc<Bound>,
    step: usize,
    input: Arc<Value>,
    outputs: SmallVec<[(usize, Arc<Value>); 2]>,
}

impl Scope for Reevaluate {
    fn input(&self) -> &Value {
        &self.input
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

    /// An input for a step that may be attempted again: `outputs` gives the
    /// finished steps' outputs by plan index.
    pub(crate) fn retryable(
        input: Value,
        wf: Arc<Bound>,
        step: usize,
        execution_input: Arc<Value>,
        outputs: &[Option<Arc<Value>>],
    ) -> Self {
        let refs = wf.plan.steps()[step].input_refs();
        let outputs = refs
            .iter()
            .filter_map(|&i| Some((i, outputs.get(i)?.clone()?)))
            .collect();
        Self {
            first: Some(input),
            again: Some(Reevaluate {
                wf,
                step,
                input: execution_input,
                outputs,
            }),
        }
    }

    /// The input of the next attempt.
    pub(crate) fn next_attempt(&mut self) -> Result<Value, EvalError> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        match &self.again {
            Some(again) => {
                let step = &again.wf.plan.steps()[again.step];
                step.input().evaluate(step.id(), again)
            }
            // A single attempt: never asked twice.
            None => Ok(Value::Null),
        }
    }
}
