-- Credits and additional credits of each named user per org and local day, for cost by user.
-- Only usage that names a user is kept here; the rest of a day is "unspecified".
CREATE TABLE daily_user_breakdown (
    org_id BIGINT NOT NULL REFERENCES orgs(id),
    local_day DATE NOT NULL,
    user_ref TEXT NOT NULL,
    credits BIGINT NOT NULL DEFAULT 0,
    additional BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, local_day, user_ref)
);
