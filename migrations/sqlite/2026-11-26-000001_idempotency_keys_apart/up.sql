-- R9 keys and the raw audit trail have different lifetimes (SPEC §6 Growth): a key is kept until
-- the period of its day is closed, a raw event for the audit window. They are apart now, and a call
-- that comes without an id (most live consumes) has no key at all: its raw event is one append at
-- the end of the table, with no key index to extend.
CREATE TABLE usage_keys (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    event_id TEXT NOT NULL,
    local_day DATE NOT NULL,
    PRIMARY KEY (org_id, event_id)
) WITHOUT ROWID;

-- Ids the server generated for calls without one start with a control character (U+0001).
INSERT INTO usage_keys (org_id, event_id, local_day)
    SELECT org_id, event_id, local_day FROM usage_events WHERE substr(event_id, 1, 1) <> char(1);

CREATE TABLE usage_events_new (
    id INTEGER PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    event_id TEXT,
    local_day DATE NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    credits BIGINT NOT NULL,
    free_credits BIGINT NOT NULL,
    additional BIGINT NOT NULL,
    operation TEXT NOT NULL,
    client TEXT NOT NULL,
    user_ref TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
INSERT INTO usage_events_new (org_id, event_id, local_day, occurred_at, credits, free_credits,
        additional, operation, client, user_ref, recorded_at)
    SELECT org_id, CASE WHEN substr(event_id, 1, 1) = char(1) THEN NULL ELSE event_id END,
        local_day, occurred_at, credits, free_credits, additional, operation, client, user_ref,
        recorded_at
    FROM usage_events ORDER BY rowid;
DROP TABLE usage_events;
ALTER TABLE usage_events_new RENAME TO usage_events;
