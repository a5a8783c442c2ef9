-- R9 keys and the raw audit trail have different lifetimes (SPEC §6 Growth): a key is kept until
-- the period of its day is closed, a raw event for the audit window. A call without an id has no key.
CREATE TABLE usage_keys (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    event_id TEXT NOT NULL,
    local_day DATE NOT NULL,
    PRIMARY KEY (org_id, event_id)
);
-- Ids the server generated for calls without one start with a control character (U+0001).
INSERT INTO usage_keys (org_id, event_id, local_day)
    SELECT org_id, event_id, local_day FROM usage_events WHERE left(event_id, 1) <> chr(1);
ALTER TABLE usage_events DROP CONSTRAINT usage_events_pkey;
ALTER TABLE usage_events ADD COLUMN id BIGSERIAL PRIMARY KEY;
ALTER TABLE usage_events ALTER COLUMN event_id DROP NOT NULL;
UPDATE usage_events SET event_id = NULL WHERE left(event_id, 1) = chr(1);
