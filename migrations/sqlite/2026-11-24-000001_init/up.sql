-- creditmeter schema, SQLite flavour. Money is stored as integer minor units (cents), never REAL.
CREATE TABLE orgs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    edition TEXT NOT NULL,
    licences BIGINT NOT NULL DEFAULT 0,
    add_on_credits BIGINT NOT NULL DEFAULT 0,
    additional_limit BIGINT NOT NULL DEFAULT 0,
    billing_anchor DATE,
    webhook_url TEXT,
    created_at TIMESTAMP NOT NULL
);

-- R11: edition, licences and add-on credits in force from an org-local day on.
CREATE TABLE allowance_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    effective_from DATE NOT NULL,
    edition TEXT NOT NULL,
    licences BIGINT NOT NULL,
    add_on_credits BIGINT NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    UNIQUE (org_id, effective_from)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- R2: every change of the additional limit; also "the limit at time t" (R12) and the anchor (R7).
CREATE TABLE limit_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    changed_at TIMESTAMP NOT NULL,
    changed_by TEXT NOT NULL,
    old_limit BIGINT NOT NULL,
    new_limit BIGINT NOT NULL
);
CREATE INDEX limit_changes_by_org_time ON limit_changes (org_id, changed_at);

-- R6: price plans by the date they take effect; the default plan of R5 is in force from the start.
CREATE TABLE price_plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    effective_from DATE NOT NULL UNIQUE,
    plan_json TEXT NOT NULL,
    published_at TIMESTAMP NOT NULL
);
INSERT INTO price_plans (effective_from, plan_json, published_at) VALUES (
    '1970-01-01',
    '{"currency":"USD","block":1000,"tiers":[{"up_to":25000,"price":"0.14"},{"up_to":100000,"price":"0.06"},{"up_to":250000,"price":"0.05"},{"up_to":500000,"price":"0.025"}]}',
    '1970-01-01 00:00:00'
);

-- The read model: one row per org-day. amount_minor is derived from `additional` with the day's plan.
CREATE TABLE daily_usage (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    local_day DATE NOT NULL,
    credits BIGINT NOT NULL DEFAULT 0,
    free_credits BIGINT NOT NULL DEFAULT 0,
    additional BIGINT NOT NULL DEFAULT 0,
    amount_minor BIGINT NOT NULL DEFAULT 0,
    plan_id BIGINT NOT NULL REFERENCES price_plans(id),
    PRIMARY KEY (org_id, local_day)
);

CREATE TABLE daily_breakdown (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    local_day DATE NOT NULL,
    operation TEXT NOT NULL,
    client TEXT NOT NULL,
    credits BIGINT NOT NULL DEFAULT 0,
    additional BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, local_day, operation, client)
);

-- Raw events: idempotency keys (R9) and the audit window; pruned, never read by pages.
CREATE TABLE usage_events (
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
CREATE INDEX usage_events_by_recorded ON usage_events (recorded_at);

-- R7/R8: issued monthly statements, frozen.
CREATE TABLE statements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    number TEXT NOT NULL UNIQUE,
    period_start DATE NOT NULL,
    period_end DATE NOT NULL,
    currency TEXT NOT NULL,
    total_minor BIGINT NOT NULL,
    lines_json TEXT NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    UNIQUE (org_id, period_start)
);
