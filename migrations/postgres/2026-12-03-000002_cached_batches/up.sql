-- Raw events are written only by the ledger, in a transaction that holds a share lock on each of
-- its orgs' rows from its first statement to its commit, and orgs are never deleted: the foreign
-- key's per-row check (a key-share lock on the org row for every event inserted) adds nothing to
-- that, and was the largest part of a batch's write on PostgreSQL.
ALTER TABLE usage_events DROP CONSTRAINT usage_events_org_id_fkey;

-- A usage batch decided on the writer's cached rules and day rows is one statement; when the rows
-- it locks are not as cached (or an id it admits is not new), the statement calls this, so that it
-- fails and writes nothing, and the writer decides the batch again on rows it reads under lock.
CREATE FUNCTION creditmeter_stale_batch() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stale batch: the rows it decided on changed';
END
$$;
