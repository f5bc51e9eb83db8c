//! The SQLite store passes the store conformance suite.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use orchestrate_store::sqlite::{SqliteConfig, SqliteStore};
use orchestrate_testing::store_conformance::Subject;

orchestrate_testing::store_conformance!(|clock| async move {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::default().with_clock(Arc::new(clock));
    let store = SqliteStore::open_with(dir.path().join("conformance.db"), config)
        .await
        .unwrap();
    Subject::keeping(Arc::new(store), dir)
});
