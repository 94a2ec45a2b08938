//! Explain traces: why each event did what it did, kept with the event.

use chrono::Utc;
use steward::engine::store::StoreError;

use crate::driver::{Driver, Pooled, Query};
use crate::{time_text, unavailable, SqlStore};

/// An event's explain trace as kept: the trace as JSON, and how many rule
/// errors it holds (the console lists recent errors by it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTrace {
    pub tenant: String,
    pub event: String,
    pub trace: String,
    pub errors: usize,
}

impl<D: Driver> SqlStore<D> {
    pub(crate) fn put_traces_now(&self, traces: &[StoredTrace]) -> Result<(), StoreError> {
        if traces.is_empty() {
            return Ok(());
        }
        let now = time_text(&Utc::now());
        self.block(async {
            let mut c = self.conn().await.map_err(unavailable)?;
            for chunk in traces.chunks(200) {
                let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                let mut q = Query::new(format!(
                    "INSERT INTO steward_traces (tenant, event, trace, errors, created_at) VALUES {rows} \
                     ON CONFLICT (tenant, event) DO UPDATE SET trace = excluded.trace, \
                     errors = excluded.errors, created_at = excluded.created_at"
                ));
                for t in chunk {
                    q = q
                        .bind(&t.tenant)
                        .bind(&t.event)
                        .bind(&t.trace)
                        .bind(i32::try_from(t.errors).unwrap_or(i32::MAX))
                        .bind(&now);
                }
                q.execute(c.get()).await.map_err(unavailable)?;
            }
            Ok(())
        })
    }

    pub(crate) fn trace_now(
        &self,
        tenant: &str,
        event: &str,
    ) -> Result<Option<String>, StoreError> {
        self.block(async {
            Query::new("SELECT trace FROM steward_traces WHERE tenant = ? AND event = ?")
                .bind(tenant)
                .bind(event)
                .scalar_optional(&mut Pooled(&self.pool))
                .await
                .map_err(unavailable)
        })
    }
}
