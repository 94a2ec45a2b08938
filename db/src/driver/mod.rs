//! What differs between SQLite and PostgreSQL, behind one trait.
//!
//! Everything else in the crate is written once, generic over a
//! [`Driver`]: the statements (with `?` placeholders), the row types
//! (`sqlx::FromRow`), the transactions. A driver says how its database is
//! opened, how it takes the work's lock (`BEGIN ...`), the few pieces of
//! SQL its dialect writes differently ([`Dialect`]), and how a statement
//! runs on one of its connections ([`Exec`]: the one place a bound value
//! meets `sqlx`'s concrete types).

use std::borrow::Cow;

use steward::engine::store::StoreError;

use crate::OpenError;

pub mod postgres;
mod record;
pub mod sqlite;

pub use postgres::Postgres;
pub use sqlite::Sqlite;

/// A database Steward keeps its state in.
///
/// The futures are run on the store's own single-threaded runtime, never
/// spawned, so they need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Driver: Sized + Send + Sync + 'static {
    type Db: sqlx::Database<Connection = Self::Conn>;
    type Conn: Exec + sqlx::Connection<Database = Self::Db>;

    /// How a unit of work or a batch begins its transaction.
    const BEGIN: &'static str;
    /// The dialect's pieces.
    const DIALECT: Dialect;

    /// A pool on the database at `target` (created if needed), migrated.
    async fn connect(target: &str) -> Result<sqlx::Pool<Self::Db>, OpenError>;
    /// The driver's state for a store on `pool`.
    fn new() -> Self;
    /// Wakes [`Driver::wait`] when events are inserted, where the database
    /// can say so (PostgreSQL: `LISTEN steward_events`).
    async fn listen(&self, pool: &sqlx::Pool<Self::Db>) -> Result<(), StoreError>;
    /// Waits up to `timeout`, less if woken: true if woken.
    async fn wait(&self, timeout: std::time::Duration) -> Result<bool, StoreError>;
    /// Lets go of what the driver holds, on the store's runtime.
    fn close(&mut self) {}
}

/// How a dialect writes the statements that differ.
pub struct Dialect {
    /// The current time, as a column value.
    pub now: &'static str,
    /// A bound RFC 3339 text as a time column (`occurred_at`, a list's
    /// bounds), and `occurred_at` back as text.
    pub time_in: &'static str,
    pub time_out: &'static str,
    /// A bound JSON text as a `payload`, and back.
    pub payload_in: &'static str,
    pub payload_out: &'static str,
    /// The values before the change (`previous`), as text or NULL.
    pub previous_out: &'static str,
    /// An event's columns as the API shows them (`EventRow`).
    pub event_cols: &'static str,
    /// Ties of `occurred_at`: in the order received (the column).
    pub order: &'static str,
    /// Whether one statement may both delete and insert (a data-modifying
    /// `WITH`: PostgreSQL), saving a round trip per throttled event.
    pub modifying_ctes: bool,
    /// What a claim adds to the pending events' query: a condition and a
    /// lock. PostgreSQL takes only the first pending event of each key (an
    /// event whose key has an earlier one pending, perhaps locked by
    /// another worker, waits for it), and locks what it takes, skipping
    /// what another worker has locked. SQLite has one writer, whose batch
    /// holds the database: it takes events in order.
    pub claim: (&'static str, &'static str),
    /// A row lock a read-then-write takes (`FOR UPDATE`), where writers
    /// share the database.
    pub lock: &'static str,
    /// Planner settings for the claim's statement (and the console's
    /// lists), and their reset after.
    pub claim_plan: Option<(&'static str, &'static str)>,
    /// How a query names the pending events by tenant's index
    /// (`steward_events_pending_tenant`): SQLite's planner, without
    /// statistics, would read every pending row of the status index and
    /// sort them; PostgreSQL's finds it by itself.
    pub by_tenant: &'static str,
    /// The tenant as the fair share's index holds it: `tenant` (SQLite), or
    /// the expression `(tenant || '')` (PostgreSQL), which the claim's
    /// per-key check never names, so the planner cannot take that index for
    /// it (it did, with statistics older than a burst of inserts: 57 ms a
    /// claim of 100 events at 20,000 pending, against 1 ms through
    /// `steward_events_pending_key`; migration 0021). `{}` is the column.
    pub fair_tenant: &'static str,
    /// Counts the marks of a window (tenant, key, after) in a throttle or
    /// a `count` clause. Where workers share the work it first takes a lock
    /// on the key until the batch ends, so that workers counting one window
    /// wait for each other (PostgreSQL: one function, migration 0023).
    pub window_count: &'static str,
    /// Rows bound as one JSON array of arrays of texts.
    pub rows: JsonRows,
    /// How due work (timers, approvals) is numbered in the order it was set.
    pub seq: Seq,
}

/// How a store numbers due work (timers, approvals) in the order it was
/// set.
pub struct Seq {
    /// A statement taking the next number apart from the insert (SQLite: a
    /// counter row), if there is one.
    pub fetch: Option<&'static str>,
    /// The number in an insert: `?` (bound, from `fetch`) or an expression
    /// (PostgreSQL: the sequence, no round trip of its own).
    pub inline: &'static str,
}

/// How a dialect reads rows bound as one JSON text, an array of arrays of
/// texts (or nulls): `[["acme", "e1"], ...]`.
#[derive(Clone, Copy)]
pub enum JsonRows {
    Sqlite,
    Postgres,
}

impl JsonRows {
    /// `SELECT` of `first` (bound values or expressions, before the rows'
    /// columns) and the rows' `width` columns, from the JSON text bound
    /// after whatever `first` binds.
    pub fn select(self, first: &[&str], width: usize) -> String {
        let mut columns: Vec<String> = first.iter().map(|c| c.to_string()).collect();
        match self {
            JsonRows::Sqlite => {
                columns.extend((0..width).map(|i| format!("json_extract(value, '$[{i}]')")));
                // `WHERE true`: SQLite reads an `ON CONFLICT` after a bare
                // `FROM` as a join's `ON`.
                format!("SELECT {} FROM json_each(?) WHERE true", columns.join(", "))
            }
            JsonRows::Postgres => {
                columns.extend((0..width).map(|i| format!("r ->> {i}")));
                format!(
                    "SELECT {} FROM jsonb_array_elements(CAST(? AS JSONB)) AS t(r)",
                    columns.join(", ")
                )
            }
        }
    }
}

/// A value bound to a statement.
#[derive(Clone, Debug)]
pub enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Int32(Option<i32>),
    Bool(Option<bool>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Arg::Int32(Some(v))
    }
}

impl From<Option<i32>> for Arg<'_> {
    fn from(v: Option<i32>) -> Self {
        Arg::Int32(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(Some(v))
    }
}

impl From<Option<bool>> for Arg<'_> {
    fn from(v: Option<bool>) -> Self {
        Arg::Bool(v)
    }
}

/// A row type both databases decode: a `#[derive(sqlx::FromRow)]` struct
/// or a tuple.
pub trait Rowed:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<T> Rowed for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// A connection statements run on.
#[allow(async_fn_in_trait)]
pub trait Exec: Send {
    /// Runs `q`; how many rows it changed.
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, sqlx::Error>;
    async fn fetch_all<T: Rowed>(&mut self, q: Query<'_>) -> Result<Vec<T>, sqlx::Error>;
    async fn fetch_optional<T: Rowed>(&mut self, q: Query<'_>) -> Result<Option<T>, sqlx::Error>;
    /// Runs statements that bind nothing (settings), as one text.
    async fn script(&mut self, sql: &str) -> Result<(), sqlx::Error>;
}

/// A statement with `?` placeholders and what it binds (the driver writes
/// the placeholders its database reads when it runs it).
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub sql: Cow<'a, str>,
    pub args: Vec<Arg<'a>>,
    /// Where in the source the statement is written (see [`record`]).
    site: &'static std::panic::Location<'static>,
}

impl<'a> Query<'a> {
    #[track_caller]
    pub fn new(sql: impl Into<Cow<'a, str>>) -> Query<'a> {
        Query {
            sql: sql.into(),
            args: Vec::new(),
            site: std::panic::Location::caller(),
        }
    }

    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Query<'a> {
        self.args.push(value.into());
        self
    }

    pub async fn execute(self, c: &mut impl Exec) -> Result<u64, sqlx::Error> {
        c.execute(self).await
    }

    pub async fn fetch_all<T: Rowed>(self, c: &mut impl Exec) -> Result<Vec<T>, sqlx::Error> {
        c.fetch_all(self).await
    }

    pub async fn fetch_optional<T: Rowed>(
        self,
        c: &mut impl Exec,
    ) -> Result<Option<T>, sqlx::Error> {
        c.fetch_optional(self).await
    }

    pub async fn fetch_one<T: Rowed>(self, c: &mut impl Exec) -> Result<T, sqlx::Error> {
        c.fetch_optional(self)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The first column of the one row.
    pub async fn scalar<T>(self, c: &mut impl Exec) -> Result<T, sqlx::Error>
    where
        (T,): Rowed,
    {
        Ok(self.fetch_one::<(T,)>(c).await?.0)
    }

    /// The first column of the row, if there is one.
    pub async fn scalar_optional<T>(self, c: &mut impl Exec) -> Result<Option<T>, sqlx::Error>
    where
        (T,): Rowed,
    {
        Ok(self.fetch_optional::<(T,)>(c).await?.map(|(v,)| v))
    }

    /// The first column of every row.
    pub async fn scalars<T>(self, c: &mut impl Exec) -> Result<Vec<T>, sqlx::Error>
    where
        (T,): Rowed,
    {
        Ok(self
            .fetch_all::<(T,)>(c)
            .await?
            .into_iter()
            .map(|(v,)| v)
            .collect())
    }
}

/// A statement's bound values as a driver's arguments (every statement
/// that runs is bound here first, which is where it is recorded).
fn arguments<'q, A>(q: &'q Query<'_>) -> Result<A, sqlx::Error>
where
    A: sqlx::Arguments<'q> + Default,
    Option<&'q str>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    Option<i64>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    Option<i32>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
    Option<bool>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
{
    record::ran(<A::Database as sqlx::Database>::NAME, q.site);
    let mut args = A::default();
    for a in &q.args {
        match a {
            Arg::Text(v) => args.add(v.as_deref()),
            Arg::Int(v) => args.add(*v),
            Arg::Int32(v) => args.add(*v),
            Arg::Bool(v) => args.add(*v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// Statements on a connection of the pool's, taken for each.
pub struct Pooled<'a, DB: sqlx::Database>(pub &'a sqlx::Pool<DB>);

impl<DB> Exec for Pooled<'_, DB>
where
    DB: sqlx::Database,
    DB::Connection: Exec,
{
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, sqlx::Error> {
        self.0.acquire().await?.execute(q).await
    }

    async fn fetch_all<T: Rowed>(&mut self, q: Query<'_>) -> Result<Vec<T>, sqlx::Error> {
        self.0.acquire().await?.fetch_all(q).await
    }

    async fn fetch_optional<T: Rowed>(&mut self, q: Query<'_>) -> Result<Option<T>, sqlx::Error> {
        self.0.acquire().await?.fetch_optional(q).await
    }

    async fn script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.0.acquire().await?.script(sql).await
    }
}
