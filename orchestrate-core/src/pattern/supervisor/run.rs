//! One run of a supervisor: its tasks handed out, monitored, reassigned.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::health::{Pool, WorkerState};
use super::{Config, SupervisorError};
use crate::call::CallOptions;
use crate::context::Context;
use crate::error::AgentError;
use crate::pattern::{ends_the_run, fail};

/// A task waiting for a worker.
#[derive(Clone, Copy)]
struct Pending {
    task: usize,
    /// 0, then one more per reassignment.
    attempt: u32,
    /// The worker that failed its previous attempt.
    avoid: Option<usize>,
}

/// What is done about a worker that failed too often in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Restart,
    Quarantine,
    /// A restart would pass the restart intensity: the supervisor fails.
    GiveUp,
}

/// The `recover` decision, as journaled.
#[derive(Serialize, Deserialize)]
struct Recovery {
    worker: String,
    action: Action,
    /// When it was decided, in ms since the Unix epoch: the restart
    /// intensity counts restarts by these, replayed alike.
    at_ms: u64,
}

fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(super) async fn supervise(
    config: &Config,
    input: Value,
    ctx: &Context,
) -> Result<Value, AgentError> {
    let tasks = match input {
        Value::Array(tasks) => tasks,
        Value::Object(mut fields) => match fields.remove("tasks") {
            Some(Value::Array(tasks)) => tasks,
            _ => return Err(input_error(config)),
        },
        _ => return Err(input_error(config)),
    };
    // Only power of two choices draws; its draws are journaled with its
    // picks, so the seed need not be.
    let seed = now_ms() ^ u64::from(ctx.attempt()).rotate_left(32);
    let pool = Arc::new(Mutex::new(Pool::new(&config.workers, seed)));
    *config.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(pool.clone());

    let mut results: Vec<Value> = vec![Value::Null; tasks.len()];
    let mut queue: VecDeque<Pending> = (0..tasks.len())
        .map(|task| Pending {
            task,
            attempt: 0,
            avoid: None,
        })
        .collect();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < config.limit {
            let Some(next) = queue.pop_front() else {
                break;
            };
            let key = format!("t{}.{}", next.task, next.attempt);
            let (worker, instance, generation) = assign(config, ctx, &pool, &tasks, next, &key)?;
            let call = ctx.call_agent(
                &instance,
                tasks[next.task].clone(),
                CallOptions::new().key(key),
            );
            running.push(async move {
                let started = Instant::now();
                let result = call.await;
                (next, worker, generation, result, started.elapsed())
            });
        }
        let Some((done, worker, generation, result, elapsed)) = running.next().await else {
            break;
        };
        match result {
            Ok(output) => {
                let mut pool = lock(&pool);
                let slot = &mut pool.slots[worker];
                slot.in_flight -= 1;
                slot.successes += 1;
                slot.consecutive = 0;
                slot.latency += elapsed;
                if slot
                    .breaker
                    .is_some_and(|b| b != orchestrate_resilience::BreakerState::Closed)
                {
                    slot.breaker = ctx.circuit_breaker(&slot.name).map(|b| b.state);
                }
                results[done.task] = output;
            }
            Err(error) if ends_the_run(&error) => return Err(error.into()),
            Err(error) => {
                let unhealthy = {
                    let mut pool = lock(&pool);
                    let slot = &mut pool.slots[worker];
                    slot.in_flight -= 1;
                    slot.failures += 1;
                    slot.latency += elapsed;
                    slot.breaker = ctx.circuit_breaker(&slot.name).map(|b| b.state);
                    // A call of an instance restarted since says nothing
                    // of the one that runs now.
                    let current = generation == slot.generation;
                    if current {
                        slot.consecutive += 1;
                    }
                    current
                        && slot.state == WorkerState::Active
                        && slot.consecutive >= config.restart.after_failures
                };
                // Decided at every failure, keyed by the failed call: the
                // failures in a row depend on the order calls end, which a
                // replay need not repeat, but the set of failed calls it
                // meets is the journal's.
                let key = format!("t{}.{}", done.task, done.attempt);
                recover(config, ctx, &pool, worker, &key, unhealthy)?;
                if done.attempt >= config.max_reassign {
                    return Err(fail(SupervisorError::TaskFailed {
                        supervisor: config.name.clone(),
                        task: done.task,
                        attempts: done.attempt + 1,
                        cause: error,
                    }));
                }
                // First in line: a reassigned task is the oldest waiting.
                queue.push_front(Pending {
                    task: done.task,
                    attempt: done.attempt + 1,
                    avoid: Some(worker),
                });
            }
        }
    }
    Ok(Value::Array(results))
}

fn input_error(config: &Config) -> AgentError {
    fail(SupervisorError::Input {
        supervisor: config.name.clone(),
    })
}

/// Picks (or replays) the worker of `next`, and counts the task as its.
fn assign(
    config: &Config,
    ctx: &Context,
    pool: &Mutex<Pool>,
    tasks: &[Value],
    next: Pending,
    key: &str,
) -> Result<(usize, crate::agent::BoxAgent, u32), AgentError> {
    let kind = if next.attempt == 0 {
        "assign"
    } else {
        "reassign"
    };
    // The pick's index, when it is made here rather than replayed: no
    // lookup of the name among the workers.
    let mut picked_here = None;
    // The name as an `Arc`: journaled, it is copied once, into the JSON.
    let name: Option<Arc<str>> = ctx.decide(kind, key, || {
        let mut pool = lock(pool);
        let picked = config.strategy.pick(
            &mut pool,
            next.avoid,
            config.router.as_deref(),
            &tasks[next.task],
        )?;
        picked_here = Some(picked);
        Some(pool.slots[picked].name.clone())
    })?;
    let Some(name) = name else {
        return Err(fail(SupervisorError::NoWorkers {
            supervisor: config.name.clone(),
            task: next.task,
        }));
    };
    let mut pool = lock(pool);
    let hinted = picked_here.filter(|&i| *pool.slots[i].name == *name);
    let Some(worker) = hinted.or_else(|| pool.index_of(&name)) else {
        return Err(fail(SupervisorError::UnknownWorker {
            supervisor: config.name.clone(),
            worker: name.to_string(),
        }));
    };
    let slot = &mut pool.slots[worker];
    slot.in_flight += 1;
    Ok((worker, slot.instance.clone(), slot.generation))
}

/// Decides (or replays) what is done about worker `worker` after its call
/// `key` failed: nothing while it is `unhealthy` = false, else restart or
/// quarantine it, one for one, or fail past the restart intensity.
fn recover(
    config: &Config,
    ctx: &Context,
    pool: &Mutex<Pool>,
    worker: usize,
    key: &str,
    unhealthy: bool,
) -> Result<(), AgentError> {
    let period_ms = u64::try_from(config.restart.period.as_millis()).unwrap_or(u64::MAX);
    let recent = |pool: &Pool, at_ms: u64| {
        pool.restarts
            .iter()
            .filter(|&&t| t.saturating_add(period_ms) > at_ms)
            .count()
    };
    let decision: Option<Recovery> = ctx.decide("recover", key, || {
        if !unhealthy {
            return None;
        }
        let pool = lock(pool);
        let slot = &pool.slots[worker];
        let at_ms = now_ms();
        let action = if slot.restarts >= config.restart.restarts_per_worker {
            Action::Quarantine
        } else if recent(&pool, at_ms) >= config.restart.max_restarts as usize {
            Action::GiveUp
        } else {
            Action::Restart
        };
        Some(Recovery {
            worker: slot.name.to_string(),
            action,
            at_ms,
        })
    })?;
    let Some(decision) = decision else {
        return Ok(());
    };
    let mut pool = lock(pool);
    let Some(worker) = pool.index_of(&decision.worker) else {
        return Err(fail(SupervisorError::UnknownWorker {
            supervisor: config.name.clone(),
            worker: decision.worker,
        }));
    };
    match decision.action {
        Action::Restart => {
            let slot = &mut pool.slots[worker];
            slot.instance = config.workers[worker].restart();
            slot.generation += 1;
            slot.restarts += 1;
            slot.consecutive = 0;
            pool.restarts.push_back(decision.at_ms);
            while pool.restarts.len() > config.restart.max_restarts as usize {
                pool.restarts.pop_front();
            }
        }
        Action::Quarantine => pool.slots[worker].state = WorkerState::Quarantined,
        Action::GiveUp => {
            return Err(fail(SupervisorError::RestartIntensity {
                supervisor: config.name.clone(),
                restarts: u32::try_from(recent(&pool, decision.at_ms)).unwrap_or(u32::MAX),
                period: Duration::from_millis(period_ms),
            }))
        }
    }
    Ok(())
}
