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
