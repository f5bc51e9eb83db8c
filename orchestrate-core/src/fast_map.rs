//! The hash map of the hot paths.

use std::collections::{HashMap, HashSet};

/// A `HashMap` with foldhash: its keys here (execution ids, step ids, bus
/// topics) are hashed several times per step, and std's SipHash costs
/// several times more. foldhash is seeded per process, so crafted keys
/// still cannot be aimed at one bucket in advance.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with foldhash, for the same reasons.
pub(crate) type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;
