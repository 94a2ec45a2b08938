//! Retention: what finished long enough ago is deleted, a bounded number of rows at a time.

use chrono::{DateTime, Utc};
use steward::engine::store::StoreError;

use crate::driver::{Driver, Pooled, Query};
use crate::{time_text, unavailable, SqlStore};

impl<D: Driver> SqlStore<D> {
    pub(crate) fn prune_now(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
        let before_text = time_text(&before);
        let statements = [
            format!(
                "DELETE FROM steward_events WHERE (tenant, id) IN (SELECT tenant, id FROM steward_events \
                 WHERE status <> 'pending' AND processed_at < {} LIMIT ?)",
                D::DIALECT.time_in
            ),
            "DELETE FROM steward_handled WHERE (tenant, id) IN (SELECT tenant, id FROM steward_handled \
             WHERE handled_at < ? LIMIT ?)".to_string(),
            "DELETE FROM steward_actions WHERE (tenant, key) IN (SELECT tenant, key FROM steward_actions \
             WHERE status IN ('delivered', 'dead') AND finished_at < ? LIMIT ?)".to_string(),
            "DELETE FROM steward_traces WHERE (tenant, event) IN (SELECT tenant, event FROM steward_traces \
             WHERE created_at < ? LIMIT ?)".to_string(),
            "DELETE FROM steward_approvals_ended WHERE (tenant, id) IN (SELECT tenant, id \
             FROM steward_approvals_ended WHERE ended_at < ? LIMIT ?)".to_string(),
            // Window marks whose window has passed (keys not seen since).
            "DELETE FROM steward_throttles WHERE (tenant, key, at, n) IN (SELECT tenant, key, at, n \
             FROM steward_throttles WHERE expires < ? LIMIT ?)".to_string(),
        ];
        self.block(async {
            let mut gone = 0;
            for sql in &statements {
                let done = Query::new(sql.as_str())
                    .bind(&before_text)
                    .bind(limit)
                    .execute(&mut Pooled(&self.pool))
                    .await
                    .map_err(unavailable)?;
                gone += done;
            }
            Ok(gone)
        })
    }
}
