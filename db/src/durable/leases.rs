//! Leases: which worker holds a named duty (the SQLite worker, the scheduler) until when.

use chrono::{DateTime, Utc};
use steward::engine::store::StoreError;

use crate::driver::{Driver, Pooled, Query};
use crate::{parse_time, time_text, unavailable, SqlStore};

impl<D: Driver> SqlStore<D> {
    pub(crate) fn lease_now(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.block(async {
            let done = Query::new(
                "INSERT INTO steward_leases (name, holder, expires_at) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE \
                 SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE steward_leases.holder = excluded.holder OR steward_leases.expires_at < ?",
            )
            .bind(name)
            .bind(holder)
            .bind(time_text(&until))
            .bind(time_text(&now))
            .execute(&mut Pooled(&self.pool))
            .await
            .map_err(unavailable)?;
            Ok(done == 1)
        })
    }

    pub(crate) fn lease_holder_now(
        &self,
        name: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        self.block(async {
            let row: Option<(String, String)> =
                Query::new("SELECT holder, expires_at FROM steward_leases WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&mut Pooled(&self.pool))
                    .await
                    .map_err(unavailable)?;
            match row {
                Some((holder, expires_at)) => Ok(Some((holder, parse_time(&expires_at)?))),
                None => Ok(None),
            }
        })
    }

    pub(crate) fn release_now(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.block(async {
            Query::new("DELETE FROM steward_leases WHERE name = ? AND holder = ?")
                .bind(name)
                .bind(holder)
                .execute(&mut Pooled(&self.pool))
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }
}
