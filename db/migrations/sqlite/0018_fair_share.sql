-- Fair share: the tenants with pending events, found by a skip scan, and
-- each tenant's oldest pending events.
CREATE INDEX steward_events_pending_tenant ON steward_events (tenant, occurred_at)
    WHERE status = 'pending';
