//! Decisions: the choices an agent's later calls depend on, journaled
//! once and replayed.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Context;
use crate::error::Error;

impl Context {
    /// Makes decision `kind` about `key` once: runs `decide`, journals
    /// what it chose as an [`EventKind::Decision`](crate::journal::EventKind::Decision)
    /// (id: this attempt's id, `/`, `kind:key`) and returns it; when a
    /// resumed execution runs this attempt again, returns the journaled
    /// choice instead of running `decide`.
    ///
    /// This is how a pattern stays resumable while it decides from what
    /// it sees at run time (which worker is least loaded, whose breaker is
    /// open, what a random draw gave): the choice is journaled before the
    /// calls that follow from it (the journal keeps the order they were
    /// made in), so a resumed run makes the same calls. It is also what
    /// makes the choice visible: the call tree and the exported journal
    /// show every decision with its maker.
    ///
    /// `kind` and `key` say what the choice is about (`"assign"`,
    /// `"task-7.0"`); together they are taken once per attempt.
    /// Outside an execution, `decide` runs and nothing is journaled.
    ///
    /// # Errors
    ///
    /// [`Error::CallKey`] for an empty `kind` or `key`, one holding `/`,
    /// `:`, `@` or `#`, or a `kind:key` taken already in this attempt;
    /// [`Error::Decision`] when the choice does not convert to or from
    /// JSON; [`Error::ValueTooDeep`] past the depth limit;
    /// [`Error::NonDeterministic`] when the journal holds another kind of
    /// record under this id, or none in strict replay;
    /// [`Error::Cancelled`] when the execution has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use orchestrate_core::{agent_fn, Orchestrator};
    /// use orchestrate_core::journal::EventKind;
    /// use orchestrate_graph::{StepDef, WorkflowDef};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), orchestrate_core::Error> {
    /// let pick = agent_fn("pick", |task, ctx| async move {
    ///     // Whatever the choice depends on, a resumed run replays it.
    ///     let worker: String = ctx.decide("assign", "task-0", || "fast".to_owned())?;
    ///     Ok(ctx.call(&worker, task).await?)
    /// });
    /// let fast = agent_fn("fast", |_, _| async move { Ok(json!("done")) });
    /// let orchestrator = Orchestrator::builder().agent(pick).agent(fast).build()?;
    /// let wf = orchestrator.bind(&WorkflowDef::builder("w").step(StepDef::new("s", "pick")).build())?;
    /// let execution = orchestrator.run(&wf, json!(1)).await?;
    /// let id = execution.id().clone();
    /// let done = execution.await?;
    /// assert_eq!(done.output("s"), Some(&json!("done")));
    /// let events = orchestrator.store().load(&id, 0).await?;
    /// assert!(events.iter().any(|e| matches!(&e.kind,
    ///     EventKind::Decision(d) if &*d.id == "s/assign:task-0" && d.value == json!("fast"))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn decide<T, F>(&self, kind: &str, key: &str, decide: F) -> Result<T, Error>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        let Some(host) = self.host().cloned() else {
            return Ok(decide());
        };
        let checked = super::keys::check_key(kind, false).and(super::keys::check_key(key, false));
        if let Err(reason) = checked {
            return Err(Error::CallKey {
                call: self.child_call_id_named(format_args!("{kind}:{key}")),
                reason,
            });
        }
        let id = self.keyed_id(format_args!("{kind}:{key}"))?;
        let failed = |reason: String| Error::Decision {
            id: id.clone(),
            kind: kind.into(),
            reason,
        };
        if let Some(value) = host.replayed_decision(self, &id, kind)? {
            return serde_json::from_value(value).map_err(|e| failed(e.to_string()));
        }
        let choice = decide();
        let json = serde_json::to_value(&choice).map_err(|e| failed(e.to_string()))?;
        if crate::depth::exceeds_max_depth(&json) {
            return Err(Error::ValueTooDeep {
                step: Some(id),
                what: "decision",
                limit: crate::depth::MAX_VALUE_DEPTH,
            });
        }
        host.record_decision(self, id, kind.into(), json)?;
        Ok(choice)
    }
}
