//! The in-memory store passes the store conformance suite.

use std::sync::Arc;

use orchestrate_core::store::{MemoryStore, MemoryStoreConfig};
use orchestrate_testing::store_conformance::Subject;

orchestrate_testing::store_conformance!(|clock| async move {
    let config = MemoryStoreConfig {
        clock: Arc::new(clock),
        ..MemoryStoreConfig::default()
    };
    Subject::new(Arc::new(MemoryStore::with_config(config)))
});
