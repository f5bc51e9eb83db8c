//! How a supervisor picks a task's worker.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::health::{Pool, WorkerState};
use crate::pattern::router::{Candidate, Router};

/// How a [`Supervisor`](super::Supervisor) picks the worker of a task,
/// among its active workers (a reassigned task avoids the worker that
/// failed it when another is active). The pick is journaled, so a
/// strategy may read the pool's load, or draw at random: a resumed run
/// replays it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Strategy {
    /// Each worker in turn.
    #[default]
    RoundRobin,
    /// The worker running the fewest tasks (the first such in turn).
    LeastLoaded,
    /// Two workers drawn at random; the less loaded of the two. Nearly as
    /// even as least loaded, without reading every worker.
    PowerOfTwo,
    /// The supervisor's [`Router`] picks, from the task, the workers'
    /// loads and their breakers (see
    /// [`SupervisorBuilder::router`](super::SupervisorBuilder::router)).
    Capability,
}

impl Strategy {
    /// The worker for `task`, or `None` when no active worker fits it.
    pub(super) fn pick(
        self,
        pool: &mut Pool,
        avoid: Option<usize>,
        router: Option<&dyn Router>,
        task: &Value,
    ) -> Option<usize> {
        let n = pool.slots.len();
        let eligible = |pool: &Pool, i: usize, strict: bool| {
            pool.slots[i].state == WorkerState::Active && !(strict && Some(i) == avoid)
        };
        // Avoiding a worker only while another is active.
        let strict = (0..n).any(|i| eligible(pool, i, true));
        if !strict && !(0..n).any(|i| eligible(pool, i, false)) {
            return None;
        }
        let picked = match self {
            Strategy::RoundRobin => (0..n)
                .map(|k| (pool.cursor + k) % n)
                .find(|&i| eligible(pool, i, strict)),
            Strategy::LeastLoaded => (0..n)
                .map(|k| (pool.cursor + k) % n)
                .filter(|&i| eligible(pool, i, strict))
                .min_by_key(|&i| pool.slots[i].in_flight),
            Strategy::PowerOfTwo => {
                let a = draw(pool, n, |p, i| eligible(p, i, strict));
                let b = draw(pool, n, |p, i| eligible(p, i, strict) && Some(i) != a);
                match (a, b) {
                    (Some(a), Some(b)) if pool.slots[b].in_flight < pool.slots[a].in_flight => {
                        Some(b)
                    }
                    (a, _) => a,
                }
            }
            Strategy::Capability => {
                let eligible: Vec<usize> = (0..n).filter(|&i| eligible(pool, i, strict)).collect();
                let candidates: Vec<Candidate<'_>> = eligible
                    .iter()
                    .map(|&i| {
                        let slot = &pool.slots[i];
                        Candidate {
                            breaker: slot.breaker,
                            ..Candidate::new(&slot.name).load(slot.in_flight)
                        }
                    })
                    .collect();
                let routed = router?.route(task, &candidates)?;
                eligible
                    .into_iter()
                    .find(|&i| *pool.slots[i].name == *routed.agent)
            }
        }?;
        pool.cursor = (picked + 1) % n;
        Some(picked)
    }
}

/// A random eligible worker: a random start, then the first eligible in
/// turn from there.
fn draw(pool: &mut Pool, n: usize, eligible: impl Fn(&Pool, usize) -> bool) -> Option<usize> {
    // xorshift64: the draw need not be strong, only cheap; it is
    // journaled with the pick.
    let mut x = pool.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    pool.rng = x;
    let start = (x % n as u64) as usize;
    (0..n).map(|k| (start + k) % n).find(|&i| eligible(pool, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_fn;
    use crate::pattern::supervisor::Worker;

    fn pool(n: usize) -> Pool {
        let workers: Vec<Worker> = (0..n)
            .map(|i| {
                let name: &'static str = Box::leak(format!("w{i}").into_boxed_str());
                Worker::new(agent_fn(name, |_, _| async move { Ok(Value::Null) }))
            })
            .collect();
        Pool::new(&workers, 42)
    }

    #[test]
    fn round_robin_takes_each_in_turn_and_skips_the_quarantined() {
        let mut p = pool(3);
        p.slots[1].state = WorkerState::Quarantined;
        let picks: Vec<_> = (0..4)
            .map(|_| Strategy::RoundRobin.pick(&mut p, None, None, &Value::Null))
            .collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
    }

    #[test]
    fn a_reassigned_task_avoids_its_worker_unless_it_is_the_only_one() {
        let mut p = pool(2);
        assert_eq!(
            Strategy::RoundRobin.pick(&mut p, Some(0), None, &Value::Null),
            Some(1)
        );
        assert_eq!(
            Strategy::LeastLoaded.pick(&mut p, Some(1), None, &Value::Null),
            Some(0)
        );
        p.slots[1].state = WorkerState::Quarantined;
        assert_eq!(
            Strategy::PowerOfTwo.pick(&mut p, Some(0), None, &Value::Null),
            Some(0)
        );
        p.slots[0].state = WorkerState::Quarantined;
        assert_eq!(
            Strategy::RoundRobin.pick(&mut p, None, None, &Value::Null),
            None
        );
    }

    #[test]
    fn least_loaded_and_power_of_two_prefer_idle_workers() {
        let mut p = pool(4);
        for (i, load) in [5, 0, 3, 7].into_iter().enumerate() {
            p.slots[i].in_flight = load;
        }
        assert_eq!(
            Strategy::LeastLoaded.pick(&mut p, None, None, &Value::Null),
            Some(1)
        );
        // Of two draws, never the busiest of all when both differ.
        for _ in 0..100 {
            let picked = Strategy::PowerOfTwo
                .pick(&mut p, None, None, &Value::Null)
                .unwrap();
            assert_ne!(picked, 3, "worker 3 is never less loaded than another");
        }
    }
}

#[cfg(test)]
mod capability_tests {
    use super::*;
    use crate::agent_fn;
    use crate::pattern::router::CapabilityRouter;
    use crate::pattern::supervisor::Worker;
    use serde_json::json;

    #[test]
    fn capability_asks_the_router_among_the_active_workers() {
        let workers: Vec<Worker> = ["ocr", "tr"]
            .into_iter()
            .map(|n| Worker::new(agent_fn(n, |_, _| async move { Ok(Value::Null) })))
            .collect();
        let mut p = Pool::new(&workers, 1);
        let router = CapabilityRouter::new()
            .agent("ocr", ["ocr"])
            .agent("tr", ["translate"]);
        let task = json!({"capability": "translate"});
        let pick = |p: &mut Pool| Strategy::Capability.pick(p, None, Some(&router), &task);
        assert_eq!(pick(&mut p), Some(1));
        p.slots[1].state = WorkerState::Quarantined;
        assert_eq!(pick(&mut p), None, "no active worker translates");
        assert_eq!(Strategy::Capability.pick(&mut p, None, None, &task), None);
    }
}
