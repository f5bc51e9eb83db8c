//! Damaged SQL stores: a record deleted from the middle of a journal, a
//! tampered record, projection rows with an unknown status, deleted or
//! stale. Each backend is damaged through its own tables; the shared case
//! in `orchestrate_testing::store_damage` checks what the store makes of it.
//! The PostgreSQL case is skipped (with a message) when
//! `ORCHESTRATE_TEST_POSTGRES_URL` is unset.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrate_testing::store_damage::{damaged_store_is_read_reported_and_rebuilt, Damage};

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use orchestrate_store::sqlite::SqliteStore;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    /// The SQLite file, opened beside the store.
    struct File(std::path::PathBuf);

    impl File {
        async fn run(&self, sql: &str, execution: &str, arg: Option<&str>, seq: Option<u64>) {
            let mut conn = SqliteConnectOptions::new()
                .filename(&self.0)
                .connect()
                .await
                .unwrap();
            let mut query =
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).bind(execution.to_owned());
            if let Some(arg) = arg {
                query = query.bind(arg.to_owned());
            }
            if let Some(seq) = seq {
                query = query.bind(i64::try_from(seq).unwrap());
            }
            let done = query.execute(&mut conn).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{sql}");
            conn.close().await.unwrap();
        }
    }

    /// The journal row of execution `?1`, sequence number `?2`.
    const RECORD: &str =
        "key = ((SELECT n FROM orchestrate_journal_ids WHERE execution_id = ?1) << 32) | ?2";

    #[async_trait]
    impl Damage for File {
        async fn delete_record(&self, execution: &str, seq: u64) {
            let sql = format!("DELETE FROM orchestrate_journal WHERE {RECORD}");
            self.run(&sql, execution, None, Some(seq)).await;
        }

        async fn tamper_record(&self, execution: &str, seq: u64) {
            let sql = format!(
                "UPDATE orchestrate_journal SET record = \
                 CAST(replace(CAST(record AS TEXT), 'succeeded', 'succeedex') AS BLOB) WHERE {RECORD}"
            );
            self.run(&sql, execution, None, Some(seq)).await;
        }

        async fn set_projection_status(&self, execution: &str, status: &str) {
            let sql = "UPDATE orchestrate_executions SET status = ?2 WHERE id = ?1";
            self.run(sql, execution, Some(status), None).await;
        }

        async fn delete_projection(&self, execution: &str) {
            let sql = "DELETE FROM orchestrate_executions WHERE id = ?1";
            self.run(sql, execution, None, None).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_column_that_does_not_read_as_its_type_is_a_corrupt_record() {
        use orchestrate_core::store::{Store, StoreError};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("column.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let events =
            orchestrate_testing::store_conformance::journal_carrying("col", &serde_json::json!(1));
        store.append(&"col".into(), &events).await.unwrap();
        // Records are written as version 1, which older builds read.
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT record_version FROM orchestrate_journal")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(versions, [1]);
        conn.close().await.unwrap();
        File(path.clone())
            .run(
                &format!("UPDATE orchestrate_journal SET checksum = 'not a number' WHERE {RECORD}"),
                "col",
                None,
                Some(3),
            )
            .await;
        match store.load(&"col".into(), 0).await {
            Err(StoreError::Corrupt {
                execution,
                seq: 3,
                reason,
                ..
            }) => {
                assert_eq!(execution.as_str(), "col");
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected a corrupt record at seq 3, got {other:?}"),
        }
    }

    /// On a store in use, `verify` reports nothing but damage: an append
    /// landing between its reads of a journal and of its row is no problem.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_on_a_store_in_use_reports_nothing_that_is_not_there() {
        use orchestrate_core::journal::{EventKind, ExecutionStatus};
        use orchestrate_core::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("busy.db")).await.unwrap());
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..40 {
                    let id = format!("busy-{n}");
                    let mut events = orchestrate_testing::store_conformance::journal_carrying(
                        &id,
                        &serde_json::json!(n),
                    );
                    let end = events.len() as u64;
                    let finished = orchestrate_core::journal::Event {
                        execution_id: id.as_str().into(),
                        seq: end,
                        at_us: end,
                        kind: EventKind::ExecutionFinished {
                            status: ExecutionStatus::Succeeded,
                            error: None,
                        },
                    };
                    let id = orchestrate_core::ExecutionId::from(id.as_str());
                    let tail = events.split_off(2);
                    store.append(&id, &events).await.unwrap();
                    for e in tail {
                        store.append(&id, std::slice::from_ref(&e)).await.unwrap();
                    }
                    store.append(&id, &[finished]).await.unwrap();
                }
            })
        };
        let mut reports = 0;
        while !writer.is_finished() {
            let report = store.verify().await.unwrap();
            assert!(report.is_clean(), "{report}");
            reports += 1;
        }
        writer.await.unwrap();
        assert!(reports > 0);
        let report = store.verify().await.unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.executions, 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_sqlite_store_is_read_reported_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.db");
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        damaged_store_is_read_reported_and_rebuilt(store, &File(path)).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use orchestrate_store::postgres::{PostgresConfig, PostgresStore};
    use sqlx::postgres::PgPoolOptions;

    /// A schema of its own on the test server.
    struct Schema {
        url: String,
        name: String,
    }

    impl Schema {
        async fn run(&self, sql: &str, execution: &str, arg: Option<&str>, seq: Option<u64>) {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&self.url)
                .await
                .unwrap();
            let sql = sql.replace("{schema}", &self.name);
            let mut query =
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(execution.to_owned());
            if let Some(arg) = arg {
                query = query.bind(arg.to_owned());
            }
            if let Some(seq) = seq {
                query = query.bind(i64::try_from(seq).unwrap());
            }
            let done = query.execute(&pool).await.unwrap();
            assert_eq!(done.rows_affected(), 1, "{sql}");
            pool.close().await;
        }
    }

    #[async_trait]
    impl Damage for Schema {
        async fn delete_record(&self, execution: &str, seq: u64) {
            let sql =
                "DELETE FROM \"{schema}\".orchestrate_journal WHERE execution_id = $1 AND seq = $2";
            self.run(sql, execution, None, Some(seq)).await;
        }

        async fn tamper_record(&self, execution: &str, seq: u64) {
            let sql = "UPDATE \"{schema}\".orchestrate_journal \
                       SET record = replace(record::text, 'succeeded', 'succeedex')::json \
                       WHERE execution_id = $1 AND seq = $2";
            self.run(sql, execution, None, Some(seq)).await;
        }

        async fn set_projection_status(&self, execution: &str, status: &str) {
            let sql = "UPDATE \"{schema}\".orchestrate_executions SET status = $2 WHERE id = $1";
            self.run(sql, execution, Some(status), None).await;
        }

        async fn delete_projection(&self, execution: &str) {
            let sql = "DELETE FROM \"{schema}\".orchestrate_executions WHERE id = $1";
            self.run(sql, execution, None, None).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_postgres_store_is_read_reported_and_rebuilt() {
        let Ok(url) = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL") else {
            eprintln!("skipped: ORCHESTRATE_TEST_POSTGRES_URL is not set");
            return;
        };
        let name = format!("damage_{}", std::process::id());
        let config = PostgresConfig::default().with_schema(&name);
        let store = Arc::new(PostgresStore::connect_with(&url, config).await.unwrap());
        let schema = Schema {
            url: url.clone(),
            name: name.clone(),
        };
        damaged_store_is_read_reported_and_rebuilt(store, &schema).await;
        PostgresStore::drop_schema(&url, &name).await.unwrap();
    }
}
