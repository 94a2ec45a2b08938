//! PostgreSQL: workers share the database (claims lock what they take and
//! skip what others took), a sequence numbers due work, inserted events
//! wake a listening worker (`LISTEN steward_events`).

use sqlx::postgres::{PgArguments, PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::Executor;
use steward::engine::store::StoreError;

use super::{arguments, Dialect, Driver, Exec, JsonRows, Query, Rowed, Seq};
use crate::{unavailable, OpenError};

/// The PostgreSQL driver: the listener, once the worker listens.
pub struct Postgres {
    listener: tokio::sync::Mutex<Option<PgListener>>,
}

impl Driver for Postgres {
    type Db = sqlx::Postgres;
    type Conn = sqlx::PgConnection;

    const BEGIN: &'static str = "BEGIN ISOLATION LEVEL READ COMMITTED";
    const DIALECT: Dialect = Dialect {
        now: "clock_timestamp()",
        time_in: "CAST(? AS TIMESTAMPTZ)",
        time_out: "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        payload_in: "CAST(? AS JSONB)",
        payload_out: "payload::text",
        previous_out: "previous::text",
        // Times as the API shows them: RFC 3339, to the microsecond, UTC.
        event_cols: "id, type, \
             to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS occurred_at, \
             key, payload::text AS payload, status, reason, \
             to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS received_at, \
             to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS processed_at, seq",
        order: "seq",
        modifying_ctes: true,
        // `(SELECT ... LIMIT 1) IS NULL`, not `NOT EXISTS`: the planner may
        // turn the latter into an anti-join, which with statistics taken
        // before a burst of inserts (a few pending rows, it believes) reads
        // every pending row once per candidate: 123 s for one claim over
        // 20,000 pending events, measured. The subquery is looked up by key
        // for each candidate, through `steward_events_pending_key`.
        claim: (
            "AND (SELECT 1 FROM steward_events p WHERE p.status = 'pending' \
             AND p.tenant = e.tenant AND p.key = e.key \
             AND (p.occurred_at, p.seq) < (e.occurred_at, e.seq) LIMIT 1) IS NULL",
            "FOR UPDATE SKIP LOCKED",
        ),
        lock: "FOR UPDATE",
        // And the candidates read in order from
        // `steward_events_pending_order` until the batch is full, rather
        // than all pending rows sorted (which the same stale statistics
        // make look cheaper): 1.7 ms against 81 ms over 20,000 pending
        // events.
        claim_plan: Some((
            "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off",
            "SET LOCAL enable_sort = on; SET LOCAL enable_bitmapscan = on",
        )),
        by_tenant: "",
        fair_tenant: "({} || '')",
        window_count: "SELECT steward_window_count(?, ?, ?)",
        rows: JsonRows::Postgres,
        seq: Seq {
            fetch: None,
            inline: "nextval('steward_due_seq')",
        },
    };

    async fn connect(url: &str) -> Result<sqlx::PgPool, OpenError> {
        // The batch's transaction, the listener, and a spare for what runs
        // between batches. No JIT: Steward's statements are short, and with
        // a large backlog the claim's estimated cost passes
        // `jit_above_cost`, which compiled it again at every claim (10 ms
        // of a 11 ms claim, measured).
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| OpenError::Connect(e.to_string()))?
            .options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| OpenError::Migrate(e.to_string()))?;
        Ok(pool)
    }

    fn new() -> Postgres {
        Postgres {
            listener: tokio::sync::Mutex::new(None),
        }
    }

    async fn listen(&self, pool: &sqlx::PgPool) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(pool).await.map_err(unavailable)?;
        listener
            .listen("steward_events")
            .await
            .map_err(unavailable)?;
        *self.listener.lock().await = Some(listener);
        Ok(())
    }

    /// A lost connection is re-established by the listener; until then this
    /// waits the timeout.
    async fn wait(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        let mut slot = self.listener.lock().await;
        match slot.as_mut() {
            Some(listener) => Ok(matches!(
                tokio::time::timeout(timeout, listener.try_recv()).await,
                Ok(Ok(Some(_)))
            )),
            None => {
                tokio::time::sleep(timeout).await;
                Ok(false)
            }
        }
    }

    fn close(&mut self) {
        drop(self.listener.get_mut().take());
    }
}

/// PostgreSQL's placeholders: `$1`, `$2`, ... for `?`.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n: u32 = 0;
    for c in sql.chars() {
        if c == '?' {
            n = n.saturating_add(1);
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

impl Exec for sqlx::PgConnection {
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, sqlx::Error> {
        let args: PgArguments = arguments(&q)?;
        let sql = numbered(&q.sql);
        let done = sqlx::query_with(&sql, args).execute(self).await?;
        Ok(done.rows_affected())
    }

    async fn fetch_all<T: Rowed>(&mut self, q: Query<'_>) -> Result<Vec<T>, sqlx::Error> {
        let args: PgArguments = arguments(&q)?;
        let sql = numbered(&q.sql);
        sqlx::query_as_with(&sql, args).fetch_all(self).await
    }

    async fn fetch_optional<T: Rowed>(&mut self, q: Query<'_>) -> Result<Option<T>, sqlx::Error> {
        let args: PgArguments = arguments(&q)?;
        let sql = numbered(&q.sql);
        sqlx::query_as_with(&sql, args).fetch_optional(self).await
    }

    async fn script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        Executor::execute(self, sqlx::raw_sql(sql)).await.map(drop)
    }
}
