//! SQLite, the embedded default: one file in WAL mode, one writer, every
//! unit in a `BEGIN IMMEDIATE` transaction; no notifications (a worker
//! polls).

use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::Executor;
use steward::engine::store::StoreError;

use super::{arguments, Dialect, Driver, Exec, JsonRows, Query, Rowed, Seq};
use crate::OpenError;

/// The SQLite driver (no state of its own).
pub struct Sqlite;

impl Driver for Sqlite {
    type Db = sqlx::Sqlite;
    type Conn = sqlx::SqliteConnection;

    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const DIALECT: Dialect = Dialect {
        now: "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        time_in: "?",
        time_out: "occurred_at",
        payload_in: "?",
        payload_out: "payload",
        previous_out: "previous",
        event_cols: "id, type, occurred_at, key, payload, status, reason, received_at, \
                     processed_at, rowid AS seq",
        order: "rowid",
        modifying_ctes: false,
        claim: ("", ""),
        lock: "",
        claim_plan: None,
        by_tenant: "INDEXED BY steward_events_pending_tenant",
        fair_tenant: "{}",
        // SQLite's one writer waits already.
        window_count:
            "SELECT COUNT(*) FROM steward_throttles WHERE tenant = ? AND key = ? AND at > ?",
        rows: JsonRows::Sqlite,
        seq: Seq {
            fetch: Some(
                "UPDATE steward_seq SET value = value + 1 WHERE name = 'due' RETURNING value",
            ),
            inline: "?",
        },
    };

    async fn connect(path: &str) -> Result<sqlx::SqlitePool, OpenError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| OpenError::Migrate(e.to_string()))?;
        Ok(pool)
    }

    fn new() -> Sqlite {
        Sqlite
    }

    async fn listen(&self, _pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
        Ok(())
    }

    async fn wait(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        tokio::time::sleep(timeout).await;
        Ok(false)
    }
}

impl Exec for sqlx::SqliteConnection {
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, sqlx::Error> {
        let args: SqliteArguments<'_> = arguments(&q)?;
        let done = sqlx::query_with(&q.sql, args).execute(self).await?;
        Ok(done.rows_affected())
    }

    async fn fetch_all<T: Rowed>(&mut self, q: Query<'_>) -> Result<Vec<T>, sqlx::Error> {
        let args: SqliteArguments<'_> = arguments(&q)?;
        sqlx::query_as_with(&q.sql, args).fetch_all(self).await
    }

    async fn fetch_optional<T: Rowed>(&mut self, q: Query<'_>) -> Result<Option<T>, sqlx::Error> {
        let args: SqliteArguments<'_> = arguments(&q)?;
        sqlx::query_as_with(&q.sql, args).fetch_optional(self).await
    }

    async fn script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        Executor::execute(self, sqlx::raw_sql(sql)).await.map(drop)
    }
}
