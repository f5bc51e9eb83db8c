//! What an agent knows about the attempt it is running, and its way to
//! call other agents.

mod calls;
mod decisions;
mod effects;
mod frame;
mod host;
mod keys;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::depth::{exceeds_max_depth, MAX_VALUE_DEPTH};
use crate::error::Error;
use crate::ids::ExecutionId;

pub(crate) use calls::detached as detached_call;
pub(crate) use frame::CallFrame;
pub(crate) use host::{CallFuture, Host, MapFuture};

/// What every step of one execution shares, made once per execution: a
/// step's context then takes two reference counts, not one per field.
pub(crate) struct ExecutionScope {
    execution_id: ExecutionId,
    correlation_id: Arc<str>,
    token: CancellationToken,
    /// Where events and calls go (`None` outside an execution).
    host: Option<Arc<dyn Host>>,
    /// The execution's input, which a retry evaluates its step's template
    /// against again (`None` outside an execution).
    input: Option<Arc<Value>>,
}

impl ExecutionScope {
    pub(crate) fn new(
        execution_id: ExecutionId,
        correlation_id: Arc<str>,
        token: CancellationToken,
        host: Arc<dyn Host>,
        input: Arc<Value>,
    ) -> Self {
        Self {
            execution_id,
            correlation_id,
            token,
            host: Some(host),
            input: Some(input),
        }
    }
}

/// The calls of one attempt: the next call's index, and the first replay
/// that found the attempt not deterministic. A call's are in its frame; a
/// step's are kept by the host, by step. Either way every clone of a
/// context reaches the same ones, so no two calls of an attempt take one
/// id.
#[derive(Default)]
pub(crate) struct AttemptCalls {
    next: AtomicU64,
    /// The next consumption's number (see [`Context::consume`]).
    consumes: AtomicU32,
    /// Whether the attempt made calls named rather than numbered (a
    /// sub-workflow's steps): their names may look like numbers.
    named: AtomicBool,
    diverged: Mutex<Option<Error>>,
    /// The keys the attempt's keyed calls and decisions took (see
    /// [`CallOptions::key`](crate::CallOptions::key)), made at the first.
    keys: Mutex<Option<crate::fast_map::FastSet<Arc<str>>>>,
}

impl AttemptCalls {
    /// Whether no call, consumption or named call was counted yet.
    fn is_fresh(&self) -> bool {
        self.next.load(Ordering::Relaxed) == 0
            && self.consumes.load(Ordering::Relaxed) == 0
            && !self.named.load(Ordering::Relaxed)
    }

    /// Starts an attempt: its calls are numbered from 0.
    fn restart(&self) {
        self.next.store(0, Ordering::Relaxed);
        self.consumes.store(0, Ordering::Relaxed);
        self.named.store(false, Ordering::Relaxed);
        *self.diverged.lock().unwrap_or_else(PoisonError::into_inner) = None;
        *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The context of one attempt: ids, the attempt number, cancellation, a
/// way to write custom events into the journal, and the way to call other
/// agents (see [`call`](crate::call)). Cheap to clone; clones share the
/// numbering of the attempt's calls.
pub struct Context {
    scope: Arc<ExecutionScope>,
    step_id: Arc<str>,
    step_index: usize,
    /// Atomic so that a step's attempts can share one context: each sets
    /// its number before it starts, once the previous one is over.
    attempt: AtomicU32,
    /// The call this context runs; `None` for a step's own context.
    frame: Option<Arc<CallFrame>>,
}

impl Clone for Context {
    fn clone(&self) -> Self {
        Self {
            scope: self.scope.clone(),
            step_id: self.step_id.clone(),
            step_index: self.step_index,
            attempt: AtomicU32::new(self.attempt()),
            frame: self.frame.clone(),
        }
    }
}

impl Context {
    pub(crate) fn new(scope: Arc<ExecutionScope>, step_id: Arc<str>, step_index: usize) -> Self {
        Self {
            scope,
            step_id,
            step_index,
            attempt: AtomicU32::new(1),
            frame: None,
        }
    }

    /// The context of a call made by `caller`.
    pub(crate) fn for_call(caller: &Context, frame: CallFrame) -> Self {
        Self {
            scope: caller.scope.clone(),
            step_id: caller.step_id.clone(),
            step_index: caller.step_index,
            attempt: AtomicU32::new(1),
            frame: Some(Arc::new(frame)),
        }
    }

    /// The call this context runs (`None` for a step's context).
    pub(crate) fn frame(&self) -> Option<&Arc<CallFrame>> {
        self.frame.as_ref()
    }

    /// The calls of this context's attempt; with `make`, made for a step
    /// that had none yet (`None` outside an execution).
    fn attempt_calls(&self, make: bool) -> Option<&AttemptCalls> {
        match &self.frame {
            Some(frame) => Some(&frame.calls),
            None => self.scope.host.as_ref()?.step_calls(self.step_index, make),
        }
    }

    /// The index of the attempt's next call.
    pub(crate) fn next_call_index(&self) -> u64 {
        self.reserve_call_indices(1)
    }

    /// Takes the indices of the attempt's next `n` calls at once and
    /// returns the first.
    pub(crate) fn reserve_call_indices(&self, n: usize) -> u64 {
        self.attempt_calls(true)
            .map_or(0, |c| c.next.fetch_add(n as u64, Ordering::Relaxed))
    }

    /// The id of the attempt's next consumption of its budget.
    pub(crate) fn next_consume_id(&self) -> Arc<str> {
        let n = self
            .attempt_calls(true)
            .map_or(0, |c| c.consumes.fetch_add(1, Ordering::Relaxed));
        let attempt = self.attempt();
        if attempt > 1 {
            format!("{}@{attempt}#{n}", self.call_id()).into()
        } else {
            format!("{}#{n}", self.call_id()).into()
        }
    }

    /// Marks the attempt as not deterministic: it fails with `error`
    /// whatever it returns.
    pub(crate) fn diverged(&self, error: Error) {
        if let Some(calls) = self.attempt_calls(true) {
            let mut first = calls
                .diverged
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            first.get_or_insert(error);
        }
    }

    /// The error of an attempt, just ended (`succeeded` or not), found not
    /// deterministic.
    pub(crate) fn divergence(&self, succeeded: bool) -> Option<Error> {
        if let Some(calls) = self.attempt_calls(false) {
            let first = calls
                .diverged
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if first.is_some() {
                return first.clone();
            }
        }
        self.host()?.missed_call(self, succeeded)
    }

    /// Whether the attempt took keyed id `id` (see [`Self::keyed_id`]).
    pub(crate) fn took_key(&self, id: &str) -> bool {
        self.attempt_calls(false).is_some_and(|calls| {
            calls
                .keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|keys| keys.contains(id))
        })
    }

    /// How many calls and side effects the attempt made (ids taken), or
    /// `None` when it made named calls, which are not numbered.
    pub(crate) fn calls_made(&self) -> Option<u64> {
        match self.attempt_calls(false) {
            Some(c) if c.named.load(Ordering::Relaxed) => None,
            Some(c) => Some(c.next.load(Ordering::Relaxed)),
            None => Some(0),
        }
    }

    /// Records that the attempt makes calls named rather than numbered.
    pub(crate) fn mark_named_calls(&self) {
        if let Some(calls) = self.attempt_calls(true) {
            calls.named.store(true, Ordering::Relaxed);
        }
    }

    /// A context outside any execution, for calling an agent directly (tests,
    /// scripts): a fresh execution id, attempt 1, a token nobody cancels, and
    /// [`emit`](Self::emit) discarding events.
    pub fn detached(step_id: &str) -> Self {
        let execution_id = ExecutionId::new();
        let scope = ExecutionScope {
            correlation_id: execution_id.as_str().into(),
            execution_id,
            token: CancellationToken::new(),
            host: None,
            input: None,
        };
        Self::new(Arc::new(scope), step_id.into(), 0)
    }

    /// Numbers the attempt about to start; its calls are numbered from 0.
    pub(crate) fn set_attempt(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Relaxed);
        if let (1, Some(frame)) = (attempt, &self.frame) {
            // A call's first attempt starts on the frame made for it: there
            // is nothing to restart (a step may run again, a call may not).
            debug_assert!(frame.calls.is_fresh(), "a call's frame run twice");
            return;
        }
        if let Some(calls) = self.attempt_calls(false) {
            calls.restart();
        }
    }

    /// The execution this attempt belongs to.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.scope.execution_id
    }

    /// The step being run.
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }

    /// The correlation id shared by every span and event of the execution.
    pub fn correlation_id(&self) -> &str {
        &self.scope.correlation_id
    }

    /// A key for this step (or this call) of this execution, the same on
    /// every attempt and when a resumed execution runs it again: pass it to
    /// external services to make side effects happen once.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.scope.execution_id, self.call_id())
    }

    /// The id of what this context runs: the step's id, or the call's (see
    /// [`call`](crate::call)).
    pub fn call_id(&self) -> &str {
        match &self.frame {
            Some(frame) => &frame.id,
            None => &self.step_id,
        }
    }

    /// The id of the caller, for a call's context: a step's id or another
    /// call's; `None` for a step's own context.
    pub fn parent_call_id(&self) -> Option<&str> {
        self.frame.as_ref().map(|f| &*f.parent)
    }

    /// Calls between the step and this context: 0 for a step's own
    /// context, 1 for its calls, 2 for theirs.
    pub fn depth(&self) -> u32 {
        self.frame.as_ref().map_or(0, |f| f.depth)
    }

    /// The token cancelled when the execution is cancelled (for a call,
    /// also when its caller's is).
    pub fn cancellation_token(&self) -> &CancellationToken {
        match &self.frame {
            Some(frame) => frame.token(&self.scope.token),
            None => &self.scope.token,
        }
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        match &self.frame {
            Some(frame) => frame.is_cancelled(&self.scope.token),
            None => self.scope.token.is_cancelled(),
        }
    }

    /// Completes when cancellation is requested.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        self.cancellation_token().cancelled().await
    }

    /// Appends a custom event to the execution's journal, after any event
    /// this attempt emitted before and before the step's own result.
    ///
    /// # Errors
    ///
    /// [`Error::JournalLimit`] past the orchestrator's limit of custom events
    /// per execution; [`Error::ValueTooDeep`] when the payload nests deeper
    /// than [`MAX_VALUE_DEPTH`]; [`Error::Cancelled`] when the execution has
    /// ended.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the event may or may
    /// not be recorded.
    pub async fn emit(&self, name: impl Into<String>, payload: Value) -> Result<(), Error> {
        if exceeds_max_depth(&payload) {
            return Err(Error::ValueTooDeep {
                step: Some(self.step_id.clone()),
                what: "custom event payload",
                limit: MAX_VALUE_DEPTH,
            });
        }
        let Some(host) = &self.scope.host else {
            return Ok(());
        };
        host.emit(self, name.into().into_boxed_str(), Box::new(payload))
    }

    /// Where this context's events and calls go (`None` outside an
    /// execution).
    pub(crate) fn host(&self) -> Option<&Arc<dyn Host>> {
        self.scope.host.as_ref()
    }

    /// The step this context's attempt (or call) belongs to.
    pub(crate) fn step_arc(&self) -> &Arc<str> {
        &self.step_id
    }

    /// The id a call of this context's attempt number `index` gets: what
    /// [`child_call_id_named`](Self::child_call_id_named) gives for
    /// `index`, written without the formatting machinery (the one id every
    /// call takes; `map` takes thousands).
    pub(crate) fn child_call_id(&self, index: u64) -> Arc<str> {
        thread_local! {
            /// Reused: the id's one allocation is its `Arc`.
            static ID: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let written = ID.try_with(|id| {
            let mut id = id.try_borrow_mut().ok()?;
            id.clear();
            id.push_str(self.call_id());
            let attempt = self.attempt();
            if attempt > 1 {
                id.push('@');
                push_decimal(&mut id, attempt.into());
            }
            id.push('/');
            push_decimal(&mut id, index);
            Some(Arc::from(id.as_str()))
        });
        // Busy, or the thread's locals already gone: formatted instead.
        written
            .ok()
            .flatten()
            .unwrap_or_else(|| self.child_call_id_named(index))
    }

    /// The id of this attempt's call named `name`.
    pub(crate) fn child_call_id_named(&self, name: impl fmt::Display) -> Arc<str> {
        use fmt::Write as _;
        // Written on the stack when it fits: the id's one allocation is
        // its `Arc`.
        let mut id = StackText::<96>::new();
        let attempt = self.attempt();
        let written = if attempt > 1 {
            write!(id, "{}@{attempt}/{name}", self.call_id())
        } else {
            write!(id, "{}/{name}", self.call_id())
        };
        match (written, id.as_str()) {
            (Ok(()), Some(text)) => Arc::from(text),
            _ if attempt > 1 => format!("{}@{attempt}/{name}", self.call_id()).into(),
            _ => format!("{}/{name}", self.call_id()).into(),
        }
    }

    /// [`call_id`](Self::call_id), shared.
    pub(crate) fn call_id_arc(&self) -> Arc<str> {
        match &self.frame {
            Some(frame) => frame.id.clone(),
            None => self.step_id.clone(),
        }
    }

    pub(crate) fn step_index(&self) -> usize {
        self.step_index
    }

    /// The execution's input (null outside an execution).
    pub(crate) fn execution_input(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.scope.input.as_deref().unwrap_or(&NULL)
    }
}

/// Appends `n` in decimal.
fn push_decimal(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // A digit: `n % 10` is below 10.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits: always text.
    if let Ok(digits) = std::str::from_utf8(&digits[start..]) {
        text.push_str(digits);
    }
}

/// Text written into a buffer on the stack; `None` once it overflowed.
struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> StackText<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            overflowed: false,
        }
    }

    fn as_str(&self) -> Option<&str> {
        if self.overflowed {
            return None;
        }
        std::str::from_utf8(&self.buf[..self.len]).ok()
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > N {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A policy an agent runs stops with its attempt:
/// `policy.call_with(CallOptions::new().cancel_with(&ctx), ..)`. A call's
/// token is made only if the policy waits.
impl orchestrate_resilience::Cancellation for Context {
    fn is_cancelled(&self) -> bool {
        Context::is_cancelled(self)
    }

    fn cancellation_token(&self) -> &CancellationToken {
        Context::cancellation_token(self)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("execution_id", &self.scope.execution_id)
            .field("step_id", &self.step_id)
            .field("call_id", &self.call_id())
            .field("attempt", &self.attempt())
            .field("correlation_id", &self.scope.correlation_id)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Context;

    #[test]
    fn a_numbered_call_id_reads_as_the_formatted_one() {
        let ctx = Context::detached("plan/step");
        for attempt in [1, 2, 10, u32::MAX] {
            ctx.set_attempt(attempt);
            for index in [0, 1, 9, 10, 99, 1_000, 123_456_789, u64::MAX] {
                assert_eq!(
                    ctx.child_call_id(index),
                    ctx.child_call_id_named(index),
                    "attempt {attempt}, index {index}"
                );
            }
        }
        ctx.set_attempt(3);
        assert_eq!(&*ctx.child_call_id(42), "plan/step@3/42");
    }
}
