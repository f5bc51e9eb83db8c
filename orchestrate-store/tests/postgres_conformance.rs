//! The PostgreSQL store passes the store conformance suite, each case in a
//! schema of its own. Skipped (with a message) when
//! `ORCHESTRATE_TEST_POSTGRES_URL` is unset.
#![cfg(feature = "postgres")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orchestrate_store::postgres::{PostgresConfig, PostgresStore};
use orchestrate_testing::store_conformance::Subject;

/// Drops the case's schema when the case ends.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(PostgresStore::drop_schema(&url, &name));
            }
        })
        .join();
    }
}

fn unique_schema(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn subject(clock: orchestrate_core::store::ManualClock) -> Subject {
    let url = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL").unwrap();
    let name = unique_schema("conformance");
    let config = PostgresConfig::default()
        .with_schema(&name)
        .with_clock(Arc::new(clock));
    let store = PostgresStore::connect_with(&url, config).await.unwrap();
    Subject::keeping(Arc::new(store), Schema { url, name })
}

orchestrate_testing::store_conformance!(subject, requires_env = "ORCHESTRATE_TEST_POSTGRES_URL");
