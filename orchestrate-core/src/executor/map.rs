//! [`Context::map`](crate::Context::map), executor side.
//!
//! A map's calls are polled in its caller's task as they start, as the
//! driver polls its steps ([`InlineFutures`]): a call whose agent does not
//! wait ends there, in a box a call before it gave back, without waiting
//! for the journal on its own. Each call keeps its place among the `limit`
//! until the journal holds its end, as a single call keeps its caller
//! waiting: at most `limit` calls are ever running or ended unjournaled, so
//! a crash runs at most `limit` of them again. The map waits for the
//! journal once for every call whose end it has sent, not once per call.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::FutureExt;
use serde_json::Value;
use tracing::Instrument;

use super::call_run::{call_span, into_value, Prepared, Settled};
use super::calls::ExecutionHost;
use super::tasks::InlineFutures;
use crate::call::CallOptions;
use crate::context::Context;
use crate::error::Error;

/// The result of one input of a map.
enum Slot {
    /// Not made: the journal failed first (a result the journal could not
    /// take is cancelled).
    Waiting,
    /// Known without the journal: replayed from it, refused before it ran
    /// (an unknown agent, too deep, diverged from its record), or stopped
    /// before its end was sent.
    Done(Result<Value, Error>),
    /// Its end is message `end` of the execution's inbox; the output is
    /// shared with that message until the journal lets go of it.
    Ended {
        result: Result<Arc<Value>, Error>,
        end: u64,
    },
}

impl ExecutionHost {
    /// Calls `agent` on every input as calls of `caller`'s numbered from
    /// `first`, at most `limit` (0: no limit) running or waiting for the
    /// journal at once, and returns their results in input order once the
    /// journal holds them all.
    pub(super) async fn map_calls(
        &self,
        caller: &Context,
        agent: &str,
        inputs: Vec<Value>,
        first: u64,
        limit: usize,
    ) -> Vec<Result<Value, Error>> {
        let n = inputs.len();
        let limit = if limit == 0 { usize::MAX } else { limit };
        let target = self.targets.get(agent);
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || Slot::Waiting);
        let mut running = InlineFutures::new();
        // Calls polled and not ended.
        let mut waiting = 0;
        // The ends of the calls whose ends the journal may not hold yet,
        // oldest first (message numbers grow as they are sent).
        let mut unjournaled: VecDeque<u64> = VecDeque::with_capacity(limit.min(n));
        let mut inputs = inputs.into_iter().enumerate();
        // Set when the journal fails: no call is made after.
        let mut broken = false;
        loop {
            while unjournaled
                .front()
                .is_some_and(|&end| self.inbox.holds(end))
            {
                unjournaled.pop_front();
            }
            while !broken && waiting + unjournaled.len() < limit {
                let Some((i, input)) = inputs.next() else {
                    break;
                };
                let call = caller.child_call_id(first + i as u64);
                let prepared = match target {
                    Some(target) => {
                        self.prepare_target(caller, call, target, input, CallOptions::default())
                    }
                    None => Err(self.unknown_agent(call, agent)),
                };
                match prepared {
                    Ok(Prepared::Run(run)) => {
                        // Instrumented even with an empty span (a check at
                        // each poll): every call is then one type, which
                        // the spare boxes need.
                        let span = call_span(&run);
                        let call = run.settle(false).instrument(span).map(move |s| (i, s));
                        match running.start(call) {
                            Some(ended) => keep(&mut slots, &mut unjournaled, ended),
                            None => waiting += 1,
                        }
                    }
                    Ok(Prepared::Replayed(result)) => slots[i] = Slot::Done(result),
                    Err(error) => slots[i] = Slot::Done(Err(error)),
                }
                // Calls that end as they start never make the map wait: it
                // gives its worker back now and then.
                tokio::task::consume_budget().await;
            }
            if waiting == 0 && unjournaled.is_empty() {
                // Every call made (or the journal failed), and every end
                // journaled (or never to be).
                break;
            }
            // A call ends, or the journal takes the oldest end (the driver,
            // often this very task, journals them while the map waits).
            let oldest = unjournaled.front().copied();
            let journaled = async {
                match oldest {
                    Some(end) => self.inbox.journaled(end).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                ended = std::future::poll_fn(|cx| running.poll_next(cx)), if waiting > 0 => {
                    if let Some(ended) = ended {
                        waiting -= 1;
                        keep(&mut slots, &mut unjournaled, ended);
                    }
                }
                written = journaled => {
                    if written.is_err() {
                        // The journal will take none of them (the execution
                        // ended, or its store failed): their results, and
                        // those of the calls not made, are cancelled below.
                        unjournaled.clear();
                        broken = true;
                    }
                }
            }
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| match slot {
                Slot::Done(result) => result,
                Slot::Ended { result, end } if self.inbox.holds(end) => result.map(into_value),
                // Its end never reached the journal: as a call's, cancelled.
                Slot::Ended { .. } | Slot::Waiting => Err(Error::Cancelled {
                    step: Some(caller.child_call_id(first + i as u64)),
                }),
            })
            .collect()
    }
}

/// Keeps call `i`'s result in its slot, and its end among the unjournaled.
fn keep(
    slots: &mut [Slot],
    unjournaled: &mut VecDeque<u64>,
    (i, settled): (usize, Result<Settled, Error>),
) {
    slots[i] = match settled {
        Ok(Settled { result, end }) => {
            unjournaled.push_back(end);
            Slot::Ended { result, end }
        }
        Err(error) => Slot::Done(Err(error)),
    };
}
