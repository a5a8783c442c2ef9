-- Read on PostgreSQL only (see the PostgreSQL migration of the same name): on SQLite the usage
-- writer knows that nothing changed from PRAGMA data_version. The column is here so that one
-- schema serves both backends.
ALTER TABLE orgs ADD COLUMN rules_version BIGINT NOT NULL DEFAULT 0;
