//! Steward's durable stores: the engine's [`Store`] contract kept in SQLite
//! (the embedded default) or PostgreSQL, with `sqlx` and versioned
//! migrations (`db/migrations/{sqlite,postgres}`).
//!
//! One type, [`SqlStore`], written once over a [`Driver`]: [`SqliteStore`]
//! (WAL, one writer, `BEGIN IMMEDIATE` for every unit) and [`PgStore`]
//! (workers share the database: claims lock and skip, a sequence, `LISTEN`).
//! What differs between them is in `driver/` (the dialect's pieces of SQL,
//! how a statement is bound and run); what a worker does with a store is in
//! `durable/`, a module per concern; the control plane, the API's and the
//! console's queries and tenancy are modules of their own. Statements are
//! written with `?` placeholders ([`driver::Query`]), rows are read as
//! `sqlx::FromRow` types. What the state means stays in the engine's
//! `runtime.rs`: a store only keeps it.
//!
//! Suspended work is kept in its stored form (`engine::stored`): a timer's or
//! an approval's continuation as JSON naming the ruleset version, the rule,
//! the block by its step id, the event and the `let`s. It resumes under the
//! version that made it; one whose version, rule or step is gone comes due
//! as [`Due::Cancelled`] with the reason.
//!
//! The store's methods are synchronous, as the engine's are: each runs its
//! queries to the end on the store's own single-threaded `tokio` runtime.

pub mod api;
pub mod capture;
pub mod console;
pub mod control;
pub mod driver;
mod durable;
pub mod links;
pub mod sealed;
pub mod tenancy;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use driver::Driver;
use steward::engine::store::{Cause, StoreError};
use steward::engine::stored::Versions;
use steward::engine::Ruleset;

use durable::Deferred;
pub use durable::{
    Attempt, Delivery, Durable, PendingEvent, PushError, StoredTrace, Undelivered, WebhookHeaders,
};

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("the database's migrations failed: {0}")]
    Migrate(String),
    #[error("cannot start the database's runtime: {0}")]
    Runtime(String),
}

/// A time as the tables keep it: fixed width, to the nanosecond, sortable.
fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("`{text}` is not a time: {e}")))
}

fn unavailable(e: sqlx::Error) -> StoreError {
    match &e {
        // A serialization failure, or a deadlock between workers' locks.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01")) => {
            StoreError::Conflict(Cause::new(e))
        }
        // A row another worker or request inserted first (SQLite: 2067 and
        // 1555, a unique key or a primary key).
        sqlx::Error::Database(d)
            if matches!(d.code().as_deref(), Some("23505" | "2067" | "1555")) =>
        {
            StoreError::Duplicate(Cause::new(e))
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(Cause::new(e)),
    }
}

/// Where the engine keeps its state: `--database URL`, else the
/// environment's `DATABASE_URL`, else the SQLite file `./steward.db`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Sqlite(String),
    Postgres(String),
}

impl Target {
    /// `postgres://...` or `postgresql://...` for PostgreSQL; `sqlite://PATH`
    /// or a plain path for SQLite.
    pub fn parse(url: &str) -> Target {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Target::Postgres(url.to_string())
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Target::Sqlite(path.to_string())
        }
    }

    /// The target `--database` names, else `DATABASE_URL`, else `./steward.db`.
    pub fn choose(database: Option<&str>) -> Target {
        match database {
            Some(url) => Target::parse(url),
            None => match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => Target::parse(&url),
                _ => Target::Sqlite("steward.db".to_string()),
            },
        }
    }

    /// Runs the migrations (creating the SQLite file if needed).
    pub fn migrate(&self) -> Result<(), OpenError> {
        let rt = runtime()?;
        match self {
            Target::Sqlite(path) => rt.block_on(driver::Sqlite::connect(path)).map(drop),
            Target::Postgres(url) => rt.block_on(driver::Postgres::connect(url)).map(drop),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "the SQLite file {path}"),
            // Credentials stay out of messages.
            Target::Postgres(url) => {
                let host = url.rsplit('@').next().unwrap_or(url);
                let host = host.split("://").last().unwrap_or(host);
                write!(f, "PostgreSQL at {host}")
            }
        }
    }
}

/// The engine's state in a database: SQLite (the embedded default: WAL
/// mode, one writer, every unit in a `BEGIN IMMEDIATE` transaction) or
/// PostgreSQL, by its [`Driver`].
pub struct SqlStore<D: Driver> {
    rt: tokio::runtime::Runtime,
    pool: sqlx::Pool<D::Db>,
    driver: D,
    tx: tokio::sync::Mutex<Option<sqlx::Transaction<'static, D::Db>>>,
    deferred: std::sync::Mutex<Deferred>,
    due_hint: std::sync::Mutex<Option<Option<DateTime<Utc>>>>,
    /// Where the next claim's round of tenants starts (fair share).
    next_tenant: std::sync::Mutex<String>,
    versions: std::sync::Mutex<Versions>,
    /// Actions written waiting for delivery, since the worker last asked
    /// ([`Durable::take_outbox_writes`]).
    outbox_writes: std::sync::atomic::AtomicU64,
}

/// The engine's state in a SQLite file.
pub type SqliteStore = SqlStore<driver::Sqlite>;

/// The engine's state in PostgreSQL.
pub type PgStore = SqlStore<driver::Postgres>;

fn runtime() -> Result<tokio::runtime::Runtime, OpenError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OpenError::Runtime(e.to_string()))
}

impl<D: Driver> SqlStore<D> {
    /// Opens the database at `target` (a SQLite file, created if needed; a
    /// PostgreSQL URL) and runs its migrations. `rules` is known from the
    /// start (see `use_rules`).
    pub fn open(target: &str, rules: Arc<Ruleset>) -> Result<SqlStore<D>, OpenError> {
        let rt = runtime()?;
        let pool = rt.block_on(D::connect(target))?;
        let mut versions = Versions::new();
        versions.insert(rules);
        Ok(SqlStore {
            rt,
            pool,
            driver: D::new(),
            tx: tokio::sync::Mutex::new(None),
            deferred: std::sync::Mutex::new(Deferred::default()),
            due_hint: std::sync::Mutex::new(None),
            next_tenant: std::sync::Mutex::new(String::new()),
            versions: std::sync::Mutex::new(versions),
            outbox_writes: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

impl<D: Driver> Drop for SqlStore<D> {
    /// What the driver holds (PostgreSQL's listener) gives its connection
    /// back on the store's runtime.
    fn drop(&mut self) {
        let _context = self.rt.enter();
        self.driver.close();
    }
}

impl<D: Driver> SqlStore<D> {
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, Versions> {
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
