-- R13/R14: alert thresholds (percentages, comma-separated, ascending), a budget per billing period
-- in the plan currency's minor units, whether calls stop at it, and the webhook's signing secret.
ALTER TABLE orgs ADD COLUMN alert_thresholds TEXT NOT NULL DEFAULT '50,80,100';
ALTER TABLE orgs ADD COLUMN budget_minor BIGINT;
ALTER TABLE orgs ADD COLUMN budget_stop BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE orgs ADD COLUMN webhook_secret TEXT;

-- The first crossing of a threshold: of the daily additional limit on a local day (`scope_start`
-- is that day), or of the budget in a billing period (`scope_start` is the period's first day).
-- The unique key makes it once, whichever server saw it.
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    kind TEXT NOT NULL,
    scope_start DATE NOT NULL,
    threshold INTEGER NOT NULL,
    crossed_at TIMESTAMP NOT NULL,
    used BIGINT NOT NULL,
    of_total BIGINT NOT NULL,
    UNIQUE (org_id, kind, scope_start, threshold)
);

-- The webhook outbox: one row per event, written in the transaction that records what it tells.
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_org ON webhook_deliveries (org_id, id);

-- Every delivery attempt: when, the receiver's status (none when it failed before answering),
-- how long it took, and the error.
CREATE TABLE webhook_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries(id),
    attempted_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    latency_ms BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);

-- The audit log of alert, budget and webhook settings (limit changes have their own table).
CREATE TABLE settings_changes (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    changed_at TIMESTAMP NOT NULL,
    changed_by TEXT NOT NULL,
    setting TEXT NOT NULL,
    old_value TEXT NOT NULL,
    new_value TEXT NOT NULL
);
CREATE INDEX settings_changes_by_org ON settings_changes (org_id, changed_at);

-- Thresholds and the budget are rules the usage writer decides with: they raise rules_version too.
DROP TRIGGER orgs_rules ON orgs;
CREATE TRIGGER orgs_rules BEFORE UPDATE OF timezone, edition, licences, add_on_credits,
    additional_limit, alert_thresholds, budget_minor, budget_stop ON orgs
    FOR EACH ROW EXECUTE FUNCTION creditmeter_org_row_changed();
