//! [`Context::map`](crate::Context::map), executor side.
//!
//! A map's calls are polled in its caller's task as they start, as the
//! driver polls its steps ([`InlineFutures`]): a call whose agent does not
//! wait ends there, in a box a call before it gave back. A call sends its
//! end to the journal and frees its place at once; the map hands its results
//! back once the journal holds them all, one wait for the whole map instead
//! of one per call.

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
    /// Not made yet.
    Waiting,
    /// Known without the journal: replayed from it, refused before it ran,
    /// or stopped before its end was sent.
    Done(Result<Value, Error>),
    /// Its end is sent to the journal; the output is shared with that event
    /// until the journal lets go of it.
    Ended(Result<Arc<Value>, Error>),
}

impl ExecutionHost {
    /// Calls `agent` on every input as calls of `caller`'s numbered from
    /// `first`, at most `limit` (at least 1) running at once, and returns
    /// their results in input order once the journal holds them all.
    pub(super) async fn map_calls(
        &self,
        caller: &Context,
        agent: &str,
        inputs: Vec<Value>,
        first: u64,
        limit: usize,
    ) -> Vec<Result<Value, Error>> {
        let n = inputs.len();
        let limit = limit.max(1);
        let target = self.targets.get(agent);
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || Slot::Waiting);
        let mut running = InlineFutures::new();
        let mut in_flight = 0;
        // The highest message number of the calls' ends.
        let mut last_end = 0;
        let mut inputs = inputs.into_iter().enumerate();
        loop {
            while in_flight < limit {
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
                        let span = call_span(&run);
                        let call = run.settle().instrument(span).map(move |s| (i, s));
                        match running.start(call) {
                            Some(ended) => settle(&mut slots, &mut last_end, ended),
                            None => in_flight += 1,
                        }
                    }
                    Ok(Prepared::Replayed(result)) => slots[i] = Slot::Done(result),
                    Err(error) => slots[i] = Slot::Done(Err(error)),
                }
                // Calls that end as they start never make the map wait: it
                // gives its worker back now and then (to the driver, which
                // journals their ends, among others).
                tokio::task::consume_budget().await;
            }
            // Here every input is made, or a place is taken by a call that
            // waits.
            if in_flight == 0 {
                break;
            }
            match std::future::poll_fn(|cx| running.poll_next(cx)).await {
                Some(ended) => {
                    in_flight -= 1;
                    settle(&mut slots, &mut last_end, ended);
                }
                None => break,
            }
        }
        // The caller goes on only once the journal holds every result: a
        // resumed execution then replays them instead of running them again.
        let journaled = last_end == 0 || self.inbox.journaled(last_end).await.is_ok();
        slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| match slot {
                Slot::Done(result) => result,
                Slot::Ended(result) if journaled => result.map(into_value),
                Slot::Ended(_) | Slot::Waiting => Err(Error::Cancelled {
                    step: Some(caller.child_call_id(first + i as u64)),
                }),
            })
            .collect()
    }
}

/// Keeps call `i`'s result in its slot.
fn settle(slots: &mut [Slot], last_end: &mut u64, (i, settled): (usize, Result<Settled, Error>)) {
    slots[i] = match settled {
        Ok(Settled { result, end }) => {
            *last_end = (*last_end).max(end);
            Slot::Ended(result)
        }
        Err(error) => Slot::Done(Err(error)),
    };
}
