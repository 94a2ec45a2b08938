//! What the test suites share: [`Scratch`], a PostgreSQL database of a
//! test run's own, so that runs (and the suites of one run) never see each
//! other's rows.

#![allow(clippy::panic, reason = "test support: a test fails by panicking")]

/// A database of this run's own on the PostgreSQL at `DATABASE_URL`
/// (default `postgres://postgres@127.0.0.1:5432/test`), dropped when the
/// value is. When the server cannot be reached, a test is skipped with a
/// message, except under `CI`, where it fails loudly.
pub struct Scratch {
    admin: String,
    name: String,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime for the scratch database: {e}"))
}

impl Scratch {
    /// Creates the database, named `steward_{what}_{pid}_{nanos}`; `None`
    /// (said on stderr) when PostgreSQL is unreachable and `CI` is not set.
    pub fn create(what: &str) -> Option<Scratch> {
        let admin = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!(
            "steward_{what}_{}_{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let created = rt().block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        });
        match created {
            Ok(()) => Some(Scratch { admin, name }),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL at DATABASE_URL is unreachable and CI is set: {e}")
            }
            Err(e) => {
                eprintln!("skipped: PostgreSQL at DATABASE_URL is unreachable ({e})");
                None
            }
        }
    }

    /// The URL of this run's database.
    pub fn url(&self) -> String {
        match self.admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", self.name),
            None => format!("{}/{}", self.admin, self.name),
        }
    }

    /// The URL the database was made from (`DATABASE_URL`), to act on the
    /// server itself (end this database's connections, say).
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = rt().block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await?;
            Ok::<_, sqlx::Error>(())
        });
    }
}
