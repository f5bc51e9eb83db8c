//! The in-process bus passes the bus conformance suite.

use std::sync::Arc;

use orchestrate_core::bus::MemoryBus;
use orchestrate_testing::bus_conformance::BusSubject;

orchestrate_testing::bus_conformance!(|| async { BusSubject::new(Arc::new(MemoryBus::new())) });
