-- A throttle's (or a `count` clause's) window counted with its key locked
-- first, in one round trip where it took two. Workers counting the same
-- window wait for each other on the lock until the batch ends. The count is
-- a statement of its own in a VOLATILE function, so it takes its snapshot
-- after the lock is granted and sees the marks of the worker it waited for.
CREATE FUNCTION steward_window_count(p_tenant TEXT, p_key TEXT, p_after TEXT)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_key));
    RETURN (
        SELECT COUNT(*) FROM steward_throttles
        WHERE tenant = p_tenant AND key = p_key AND at > p_after COLLATE "C"
    );
END
$$;
