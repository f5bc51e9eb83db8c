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
