//! A call's place in the call tree, as its context knows it.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use super::AttemptCalls;

/// What a call's context knows of its place in the call tree.
pub(crate) struct CallFrame {
    /// The call's id.
    pub(crate) id: Arc<str>,
    /// Its caller's id (a step's, or another call's).
    pub(crate) parent: Arc<str>,
    /// Calls between the step and this one: 1 for a step's own calls.
    pub(crate) depth: u32,
    /// Its caller's frame; `None` for a step's call, whose caller's token
    /// is the execution's.
    caller: Option<Arc<CallFrame>>,
    /// A child of its caller's token, made at its first use: making one
    /// locks the caller's token twice (made, dropped), and a call that ends
    /// as it starts never waits on its own.
    token: OnceLock<CancellationToken>,
    /// The calls of the call's current attempt.
    pub(crate) calls: AttemptCalls,
}

impl CallFrame {
    /// The frame of call `id`, made by `parent` (whose frame is `caller`,
    /// `None` for a step).
    pub(crate) fn new(
        id: Arc<str>,
        parent: Arc<str>,
        depth: u32,
        caller: Option<Arc<CallFrame>>,
    ) -> Self {
        Self {
            id,
            parent,
            depth,
            caller,
            token: OnceLock::new(),
            calls: AttemptCalls::default(),
        }
    }

    /// The call's token, made at the first use as a child of its caller's;
    /// `execution` is the execution's token.
    pub(crate) fn token<'a>(&'a self, execution: &'a CancellationToken) -> &'a CancellationToken {
        self.token.get_or_init(|| match &self.caller {
            Some(caller) => caller.token(execution).child_token(),
            None => execution.child_token(),
        })
    }

    /// Whether the call's token is cancelled, without making it: until it
    /// is made only its caller's can be (terminating the call makes it).
    pub(crate) fn is_cancelled(&self, execution: &CancellationToken) -> bool {
        let mut frame = self;
        loop {
            if let Some(token) = frame.token.get() {
                return token.is_cancelled();
            }
            match &frame.caller {
                Some(caller) => frame = caller,
                None => return execution.is_cancelled(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `s/0` → `s/0/0` → `s/0/0/0`, none with a token yet.
    fn chain() -> [Arc<CallFrame>; 3] {
        let a = Arc::new(CallFrame::new("s/0".into(), "s".into(), 1, None));
        let b = Arc::new(CallFrame::new(
            "s/0/0".into(),
            "s/0".into(),
            2,
            Some(a.clone()),
        ));
        let c = Arc::new(CallFrame::new(
            "s/0/0/0".into(),
            "s/0/0".into(),
            3,
            Some(b.clone()),
        ));
        [a, b, c]
    }

    #[test]
    fn calls_without_tokens_are_cancelled_through_the_nearest_caller_that_has_one() {
        let execution = CancellationToken::new();
        let [a, b, c] = chain();
        // Terminating `s/0` makes its token and cancels it.
        a.token(&execution).cancel();
        assert!(b.token.get().is_none() && c.token.get().is_none());
        assert!(b.is_cancelled(&execution) && c.is_cancelled(&execution));
        // Made now, a token is a child of a cancelled one.
        assert!(c.token(&execution).is_cancelled());
        assert!(b.token.get().is_some_and(CancellationToken::is_cancelled));
        assert!(!execution.is_cancelled());
    }

    #[test]
    fn a_token_made_first_makes_its_callers_and_follows_the_execution() {
        let execution = CancellationToken::new();
        let [a, b, c] = chain();
        let token = c.token(&execution).clone();
        assert!(a.token.get().is_some() && b.token.get().is_some());
        assert!(!c.is_cancelled(&execution));
        execution.cancel();
        assert!(token.is_cancelled());
        assert!(a.is_cancelled(&execution) && b.is_cancelled(&execution));
    }

    #[test]
    fn a_cancelled_call_leaves_its_caller_and_siblings_running() {
        let execution = CancellationToken::new();
        let [a, b, _] = chain();
        let sibling = CallFrame::new("s/0/1".into(), "s/0".into(), 2, Some(a.clone()));
        b.token(&execution).cancel();
        assert!(b.is_cancelled(&execution));
        assert!(!a.is_cancelled(&execution));
        assert!(!sibling.is_cancelled(&execution));
        assert!(!sibling.token(&execution).is_cancelled());
    }
}
