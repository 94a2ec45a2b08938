-- A wake-up hint for idle workers (`LISTEN steward_events`): one NOTIFY per
-- statement that inserts events, not per row (NOTIFY takes a global lock at
-- commit). Workers poll too, so a lost hint only costs a poll's wait.
CREATE FUNCTION steward_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('steward_events', '');
  RETURN NULL;
END;
$$;
CREATE TRIGGER steward_events_notify AFTER INSERT ON steward_events
  FOR EACH STATEMENT EXECUTE FUNCTION steward_events_notify();
