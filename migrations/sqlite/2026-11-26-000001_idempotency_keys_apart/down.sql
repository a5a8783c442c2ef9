CREATE TABLE usage_events_old (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    event_id TEXT NOT NULL,
    local_day DATE NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    credits BIGINT NOT NULL,
    free_credits BIGINT NOT NULL,
    additional BIGINT NOT NULL,
    operation TEXT NOT NULL,
    client TEXT NOT NULL,
    user_ref TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, event_id)
);
INSERT INTO usage_events_old
    SELECT org_id, COALESCE(event_id, char(1) || 'migrated-' || printf('%012x', id)), local_day,
        occurred_at, credits, free_credits, additional, operation, client, user_ref, recorded_at
    FROM usage_events ORDER BY id;
DROP TABLE usage_events;
ALTER TABLE usage_events_old RENAME TO usage_events;
DROP TABLE usage_keys;
