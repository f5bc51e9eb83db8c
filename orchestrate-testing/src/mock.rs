//! A scripted agent that records its calls.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use orchestrate_core::{Agent, AgentError, Context, ExecutionId};
use serde_json::Value;

/// One call a [`MockAgent`] received.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The execution.
    pub execution: ExecutionId,
    /// The step.
    pub step: String,
    /// The attempt number.
    pub attempt: u32,
    /// The input.
    pub input: Value,
}

type Respond = Arc<dyn Fn(&Value, &Context) -> Value + Send + Sync>;

#[derive(Clone)]
enum Failures {
    Never,
    FirstAttempts(u32),
    Always,
    Probability { p: f64, seed: u64 },
}

#[derive(Clone)]
struct Script {
    respond: Respond,
    failures: Failures,
    permanent: bool,
    latency: Duration,
    ignore_cancel: bool,
    panic_on_attempt: Option<u32>,
}

/// An agent whose outputs, failures, latency and panics are scripted, and
/// which records every call. Clones share the script and the record, so keep
/// a clone to inspect after registering one with the orchestrator.
///
/// By default it echoes its input at once.
///
/// # Examples
///
/// ```
/// use orchestrate_core::{Agent, Context};
/// use orchestrate_testing::MockAgent;
/// use serde_json::json;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mock = MockAgent::new("m").respond_with(|input, _| json!({"n": input["n"].as_i64().unwrap() + 1}));
/// assert_eq!(mock.call(json!({"n": 1}), &Context::detached("s")).await.unwrap(), json!({"n": 2}));
/// assert_eq!(mock.calls()[0].input, json!({"n": 1}));
/// # });
/// ```
#[derive(Clone)]
pub struct MockAgent {
    name: Arc<str>,
    script: Script,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl fmt::Debug for MockAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockAgent")
            .field("name", &self.name)
            .field("calls", &self.call_count())
            .finish_non_exhaustive()
    }
}

impl MockAgent {
    /// A mock named `name` that echoes its input.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            script: Script {
                respond: Arc::new(|input, _| input.clone()),
                failures: Failures::Never,
                permanent: false,
                latency: Duration::ZERO,
                ignore_cancel: false,
                panic_on_attempt: None,
            },
            calls: Arc::default(),
        }
    }

    /// Always returns `value`.
    pub fn returns(mut self, value: Value) -> Self {
        self.script.respond = Arc::new(move |_, _| value.clone());
        self
    }

    /// Computes the output from the input and context.
    pub fn respond_with(
        mut self,
        f: impl Fn(&Value, &Context) -> Value + Send + Sync + 'static,
    ) -> Self {
        self.script.respond = Arc::new(f);
        self
    }

    /// Attempts 1 to `n` of each step fail.
    pub fn fail_first(mut self, n: u32) -> Self {
        self.script.failures = Failures::FirstAttempts(n);
        self
    }

    /// Every attempt fails.
    pub fn fail_always(mut self) -> Self {
        self.script.failures = Failures::Always;
        self
    }

    /// Each attempt fails with probability `p`, decided by a generator seeded
    /// with `seed`, the step id and the attempt number, so the outcome of a
    /// given attempt does not depend on scheduling order.
    pub fn fail_with_probability(mut self, p: f64, seed: u64) -> Self {
        self.script.failures = Failures::Probability { p, seed };
        self
    }

    /// Failures are permanent (not retryable) instead of transient.
    pub fn permanent(mut self) -> Self {
        self.script.permanent = true;
        self
    }

    /// Each attempt takes `latency` (on tokio's clock, so paused time works).
    /// Cancellation ends the wait early with a failure unless
    /// [`ignore_cancel`](Self::ignore_cancel) is set.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.script.latency = latency;
        self
    }

    /// Keeps waiting out the latency after cancellation, like an agent that
    /// does not check its token.
    pub fn ignore_cancel(mut self) -> Self {
        self.script.ignore_cancel = true;
        self
    }

    /// Panics on attempt `attempt` of each step.
    pub fn panic_on_attempt(mut self, attempt: u32) -> Self {
        self.script.panic_on_attempt = Some(attempt);
        self
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The number of calls received.
    pub fn call_count(&self) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Calls received for step `step`.
    pub fn calls_for(&self, step: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.step == step)
            .collect()
    }

    fn should_fail(&self, ctx: &Context) -> bool {
        match self.script.failures {
            Failures::Never => false,
            Failures::Always => true,
            Failures::FirstAttempts(n) => ctx.attempt() <= n,
            Failures::Probability { p, seed } => {
                let mut h = seed ^ u64::from(ctx.attempt()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for b in ctx.step_id().bytes() {
                    h = splitmix64(h ^ u64::from(b));
                }
                ((splitmix64(h) >> 11) as f64 / (1u64 << 53) as f64) < p
            }
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[async_trait]
impl Agent for MockAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, input: Value, ctx: &Context) -> Result<Value, AgentError> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Call {
                execution: ctx.execution_id().clone(),
                step: ctx.step_id().to_owned(),
                attempt: ctx.attempt(),
                input: input.clone(),
            });
        if !self.script.latency.is_zero() {
            let sleep = tokio::time::sleep(self.script.latency);
            if self.script.ignore_cancel {
                sleep.await;
            } else {
                tokio::select! {
                    _ = sleep => {}
                    _ = ctx.cancelled() => return Err(AgentError::permanent("cancelled")),
                }
            }
        }
        if self.script.panic_on_attempt == Some(ctx.attempt()) {
            panic!(
                "mock agent `{}` scripted to panic on attempt {}",
                self.name,
                ctx.attempt()
            );
        }
        if self.should_fail(ctx) {
            let msg = format!(
                "mock agent `{}` scripted failure (attempt {})",
                self.name,
                ctx.attempt()
            );
            return Err(if self.script.permanent {
                AgentError::permanent(msg)
            } else {
                AgentError::transient(msg)
            });
        }
        Ok((self.script.respond)(&input, ctx))
    }
}
